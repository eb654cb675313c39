/**
 * Static content: directories and in-memory documents mounted under URL prefixes. Requests
 * never leave a mounted directory: `..`, encoded separators, NUL bytes and symlinks that point
 * outside are answered 404, as missing files are.
 *
 * @module
 */
import { join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { OwnershipError, SliceError } from "../errors.ts";
import { contentType } from "./mime.ts";

/** A static mount declared by a slice. */
export type StaticMount =
  | {
    kind: "directory";
    location: string;
    root: string | URL;
    defaultFilename: string;
    start: boolean;
    /** Answer `defaultFilename` for paths under `location` that hold no file. */
    fallback?: boolean;
  }
  | { kind: "content"; location: string; content: string | Uint8Array; contentType: string }
  | {
    kind: "proxy";
    location: string;
    start: boolean;
    /** Answers requests under `location` (a slice in a sandbox serves its own files). */
    forward: (request: Request) => Promise<Response>;
  };

interface DirectoryEntry {
  prefix: string;
  root: string;
  /** The real path of `root` once known (undefined: missing), or the promise of it. */
  realRoot: string | undefined | Promise<string | undefined>;
  defaultFilename: string;
  /** Answer the default file for paths that hold no file (single-page applications). */
  fallback: boolean;
  owner: string;
  forward?: (request: Request) => Promise<Response>;
}

interface ContentEntry {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  etag: string;
  owner: string;
}

/** A requested path of a directory mount, resolved to a file inside it. */
interface FileEntry {
  /** The real path, checked to lie inside the mount. */
  real: string;
  /** Content type by the real path's extension. */
  type: string;
  /** Until when (Date.now() ms) the real path is trusted without resolving symlinks again. */
  until: number;
  /** Requests answered since it was resolved; past HOT, the disk is not asked until `until`. */
  hits: number;
  /** Weak ETag of size and mtime. */
  etag: string;
  /** File size in bytes. */
  size: number;
  /** The whole file when it is small (as text when it is UTF-8); large files are streamed. */
  body: string | Uint8Array<ArrayBuffer> | undefined;
  /** Headers of a 200 answer, built once. */
  headers: Record<string, string>;
  /** Headers of a 200 answer to HEAD (with content-length: there is no body to count). */
  headHeaders: Record<string, string>;
}

/** Files up to this size are answered from memory instead of a stream. */
const SMALL_FILE = 256 * 1024;
/** How many resolved paths (and small files) are remembered; the oldest goes first. */
const RESOLVED_PATHS = 1024;
/**
 * How long (ms) a resolved path is trusted, and so how long an edited or replaced file can be
 * served stale at most: resolving symlinks walks every component of the path, which cost more
 * than the rest of the answer.
 */
const RESOLVED_FOR = 1000;
/**
 * After this many requests within RESOLVED_FOR, a path is hot: it is answered from memory
 * without a stat until its window ends (a stat and its FileInfo cost more than the answer).
 * Below it every request checks size and mtime, so that a page reloaded by hand after an edit
 * shows the edit at once.
 */
const HOT = 8;

/** Normalises a location to `/a/b` (no trailing slash; `/` stays `/`). */
function normaliseLocation(location: string, owner: string): string {
  if (typeof location !== "string" || !location.startsWith("/")) {
    throw new SliceError(
      "static.location",
      `slice ${owner}: static location '${location}' must start with '/'`,
    );
  }
  const trimmed = location.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16);
}

function notModified(request: Request, etag: string): boolean {
  const header = request.headers.get("if-none-match");
  if (header === null) return false;
  return header.trim() === "*" ||
    header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag.replace(/^W\//, ""));
}

/** Answers requests under a remote (`jsr:`, `https:`) static folder. */
export type RemoteFolder = (
  owner: string,
  location: string,
  root: string | URL,
  defaultFilename: string,
) => (request: Request) => Promise<Response>;

let remoteFolder: RemoteFolder | undefined;

/**
 * Sets what serves remote static folders (the server sets static_remote.ts's). Installed rather
 * than imported, so that a sandbox, which imports this module, does not load package fetching.
 */
export function serveRemoteFoldersWith(serve: RemoteFolder): void {
  remoteFolder = serve;
}

/** Whether a static root is a remote package folder rather than a local path or file: URL. */
function isRemoteRoot(root: string | URL): boolean {
  return /^(jsr|https?):/.test(root instanceof URL ? root.href : root);
}

function remote(
  mount: Extract<StaticMount, { kind: "directory" }>,
  owner: string,
): (request: Request) => Promise<Response> {
  const location = normaliseLocation(mount.location, owner);
  if (!remoteFolder) {
    const url = mount.root instanceof URL ? mount.root.href : mount.root;
    throw new SliceError(
      "static.remote",
      `slice ${owner}: addStaticHandler(${JSON.stringify(mount.location)}, ${
        JSON.stringify(url)
      }): a folder of a JSR or https package is served by the server process, not from this sandbox`,
    );
  }
  return remoteFolder(owner, location, mount.root, mount.defaultFilename);
}

/** The table of static mounts of a server; lookups pick the longest matching prefix. */
export class StaticTable {
  /**
   * Mount prefix and requested path → the file it resolved to, for up to RESOLVED_FOR ms (a
   * symlink changed on disk is seen again within that time), most recently resolved last.
   */
  readonly #resolved = new Map<string, FileEntry>();
  #directories: DirectoryEntry[] = [];
  /**
   * The same mounts by the first segment of their prefix (`/api` for `/api/docs`), longest
   * prefix first, `/` under "/": a path is compared with the mounts that can hold it only, so
   * that a miss costs the same with 1 or 1,000 mounts.
   */
  #byFirstSegment = new Map<string, DirectoryEntry[]>();
  readonly #contents = new Map<string, ContentEntry>();
  /** Where `/` redirects to, when a mount was added with `start` (and its owner). */
  #start: { location: string; owner: string } | undefined;

  /**
   * Refuses a location at, inside or around one another extension owns (`/` is everybody's
   * fallback, never "around"): first owner wins, so an extension cannot replace, say, the
   * console's `/console/app.js`.
   *
   * @throws {OwnershipError} `static.owned` naming both owners
   */
  #checkOwner(location: string, owner: string, directory: boolean): void {
    const extension = owner.slice(0, owner.indexOf("."));
    const inside = (inner: string, outer: string) =>
      outer !== "/" && (inner === outer || inner.startsWith(`${outer}/`));
    const taken = [
      ...[...this.#contents].map(([at, c]) => ({ at, owner: c.owner, directory: false })),
      ...this.#directories.map((d) => ({ at: d.prefix, owner: d.owner, directory: true })),
    ];
    for (const other of taken) {
      if (other.owner.slice(0, other.owner.indexOf(".")) === extension) continue;
      const clash = other.at === location ||
        (other.directory && inside(location, other.at)) ||
        (directory && inside(other.at, location));
      if (clash) {
        throw new OwnershipError(
          "static.owned",
          extension,
          `slice ${owner}: static location ${location} is at, inside or around ${other.at}, served by ${other.owner}: a location belongs to its first owner`,
        );
      }
    }
  }

  /** Adds a mount of slice `owner`; a location taken by another mount is an error. */
  add(mount: StaticMount, owner: string): void {
    const location = normaliseLocation(mount.location, owner);
    this.#checkOwner(location, owner, mount.kind !== "content");
    if (mount.kind === "directory" && isRemoteRoot(mount.root)) {
      // A folder of a JSR or https package: checked files from memory (static_remote.ts).
      mount = { kind: "proxy", location, start: mount.start, forward: remote(mount, owner) };
    }
    if (mount.kind === "content") {
      const taken = this.#contents.get(location);
      if (taken) {
        throw new SliceError(
          "static.duplicate",
          `slice ${owner}: static content at ${location} is already served by ${taken.owner}`,
        );
      }
      const body = typeof mount.content === "string"
        ? new TextEncoder().encode(mount.content)
        : new Uint8Array(mount.content);
      this.#contents.set(location, {
        body,
        contentType: mount.contentType,
        etag: `"${body.length.toString(16)}-${fnv1a(body)}"`,
        owner,
      });
      return;
    }
    const root = mount.kind === "proxy"
      ? ""
      : mount.root instanceof URL
      ? fileURLToPath(mount.root)
      : resolve(mount.root);
    if (mount.start && location !== "/") {
      if (this.#start) {
        throw new SliceError(
          "static.duplicate",
          `slice ${owner}: / already redirects to ${this.#start.location} (start = true of ${this.#start.owner})`,
        );
      }
      this.#start = { location, owner };
    }
    for (const prefix of [location]) {
      const taken = this.#directories.find((d) => d.prefix === prefix);
      if (taken) {
        throw new SliceError(
          "static.duplicate",
          `slice ${owner}: static location ${prefix} is already served by ${taken.owner}`,
        );
      }
      const entry: DirectoryEntry = {
        prefix,
        root,
        realRoot: undefined,
        defaultFilename: mount.kind === "directory" ? mount.defaultFilename : "",
        fallback: mount.kind === "directory" && mount.fallback === true,
        owner,
        forward: mount.kind === "proxy" ? mount.forward : undefined,
      };
      if (root) {
        const real = Deno.realPath(root).catch(() => undefined);
        entry.realRoot = real;
        void real.then((path) => entry.realRoot = path);
      }
      this.#directories.push(entry);
    }
    // Longest prefix first, so that /ui/docs wins over /ui and / comes last.
    this.#directories.sort((a, b) => b.prefix.length - a.prefix.length);
    this.#byFirstSegment = Map.groupBy(this.#directories, (d) => firstSegment(d.prefix));
  }

  /**
   * Answers a GET or HEAD request, or returns undefined when no mount covers its path. The
   * answer is synchronous when it can be (a miss, a file in memory), so that neither costs a
   * promise.
   */
  serve(request: Request, pathname: string): Response | Promise<Response> | undefined {
    if (this.#contents.size > 0) {
      const content = this.#contents.get(pathname.replace(/(.)\/+$/, "$1"));
      if (content) {
        const headers = { "content-type": content.contentType, etag: content.etag };
        if (notModified(request, content.etag)) {
          return new Response(null, { status: 304, headers });
        }
        return new Response(request.method === "HEAD" ? null : content.body, { headers });
      }
    }
    // As Inmanta's `start`: the root of the server sends the browser to the application.
    if (this.#start !== undefined && pathname === "/") {
      const url = new URL(request.url);
      return Response.redirect(`${url.origin}${this.#start.location}/${url.search}`, 301);
    }
    const candidates = pathname === "/"
      ? undefined
      : this.#byFirstSegment.get(firstSegment(pathname));
    const root = this.#byFirstSegment.get("/");
    if (candidates === undefined && root === undefined) return undefined;
    for (
      const dir of candidates === undefined ? root! : root ? [...candidates, ...root] : candidates
    ) {
      const rest = dir.prefix === "/"
        ? pathname
        : pathname === dir.prefix || pathname.startsWith(`${dir.prefix}/`)
        ? pathname.slice(dir.prefix.length)
        : undefined;
      if (rest === undefined) continue;
      if (dir.forward) return dir.forward(request);
      const realRoot = dir.realRoot;
      if (realRoot instanceof Promise) {
        return realRoot.then((real) => this.#serveOrFallback(request, dir, real, rest, pathname));
      }
      return this.#serveOrFallback(request, dir, realRoot, rest, pathname);
    }
    return undefined;
  }

  /**
   * The file, or for a mount with `fallback` and a path that holds none, its default file: a
   * single-page application routes on the client. Paths under `/api/` never fall back.
   */
  #serveOrFallback(
    request: Request,
    dir: DirectoryEntry,
    realRoot: string | undefined,
    rest: string,
    pathname: string,
  ): Response | Promise<Response> {
    const answer = this.#serveFile(request, dir, realRoot, rest, pathname);
    if (!dir.fallback || pathname.startsWith("/api/")) return answer;
    const orDefault = (response: Response): Response | Promise<Response> => {
      if (response.status !== 404) return response;
      void response.body?.cancel();
      return this.#serveFile(request, dir, realRoot, "/", pathname);
    };
    return answer instanceof Promise ? answer.then(orDefault) : orDefault(answer);
  }

  #serveFile(
    request: Request,
    dir: DirectoryEntry,
    realRoot: string | undefined,
    rest: string,
    pathname: string,
  ): Response | Promise<Response> {
    if (realRoot === undefined) return notFound(pathname);
    const key = `${dir.prefix}\0${rest}`;
    const now = Date.now();
    let entry = this.#resolved.get(key);
    try {
      if (entry === undefined || entry.until <= now) {
        const found = resolveFile(request, dir, realRoot, rest);
        if (found === undefined) {
          this.#resolved.delete(key);
          return notFound(pathname);
        }
        if (found instanceof Response) return found;
        entry = this.#remember(key, found.path, found.info, now, undefined);
      } else if (entry.hits++ < HOT || entry.body === undefined) {
        // Synchronous on purpose: a local stat takes microseconds, while each async file call
        // goes through Deno's blocking thread pool, which cost more than the whole answer.
        entry = this.#remember(key, entry.real, Deno.statSync(entry.real), now, entry);
      }
    } catch {
      this.#resolved.delete(key);
      return notFound(pathname);
    }
    if (entry === undefined) return notFound(pathname);
    if (notModified(request, entry.etag)) {
      return new Response(null, { status: 304, headers: { etag: entry.etag } });
    }
    if (request.method === "HEAD") return new Response(null, { headers: entry.headHeaders });
    if (entry.body !== undefined) return new Response(entry.body, { headers: entry.headers });
    return Deno.open(entry.real, { read: true }).then(
      (file) => new Response(file.readable, { headers: entry.headHeaders }),
      () => notFound(pathname),
    );
  }

  /**
   * Records what `key` resolved to: without `previous` (just resolved) a new window starts;
   * with it (a check within its window) the window stays, and the file is read again only when
   * its size or mtime changed. Returns undefined (and forgets the key) for anything but a file.
   */
  #remember(
    key: string,
    real: string,
    info: Deno.FileInfo,
    now: number,
    previous: FileEntry | undefined,
  ): FileEntry | undefined {
    if (!info.isFile) {
      this.#resolved.delete(key);
      return undefined;
    }
    const etag = `W/"${info.size.toString(16)}-${(info.mtime?.getTime() ?? 0).toString(16)}"`;
    if (previous !== undefined && previous.etag === etag) return previous;
    const end = previous === undefined ? now + RESOLVED_FOR : previous.until;
    const type = contentType(real);
    const entry: FileEntry = {
      real,
      type,
      until: end,
      hits: 1,
      etag,
      size: info.size,
      body: info.size <= SMALL_FILE ? asText(Deno.readFileSync(real)) : undefined,
      headers: { "content-type": type, etag, "cache-control": "no-cache" },
      headHeaders: {
        "content-type": type,
        "content-length": String(info.size),
        etag,
        "cache-control": "no-cache",
      },
    };
    this.#resolved.delete(key);
    if (this.#resolved.size >= RESOLVED_PATHS) {
      this.#resolved.delete(this.#resolved.keys().next().value!);
    }
    this.#resolved.set(key, entry);
    return entry;
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The bytes as a string when they are UTF-8 (they encode back to the same bytes): Deno sends a
 * string body as it is, while it copies a byte array for every response.
 */
function asText(bytes: Uint8Array<ArrayBuffer>): string | Uint8Array<ArrayBuffer> {
  try {
    return UTF8.decode(bytes);
  } catch {
    return bytes;
  }
}

/** `/a` of `/a/b` and of `/a`; `/` of `/`. */
function firstSegment(path: string): string {
  const end = path.indexOf("/", 1);
  return end < 0 ? path : path.slice(0, end);
}

/**
 * The real path of `rest` under a mount and its stat, or undefined when it leaves the mount or
 * does not exist, or a redirect for a directory asked without its slash. Throws on file errors.
 */
function resolveFile(
  request: Request,
  dir: DirectoryEntry,
  realRoot: string,
  rest: string,
): { path: string; info: Deno.FileInfo } | Response | undefined {
  const segments: string[] = [];
  for (const raw of rest.split("/")) {
    if (raw === "") continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === "." || segment === ".." || /[\0/\\]/.test(segment)) return undefined;
    segments.push(segment);
  }
  let path = Deno.realPathSync(join(realRoot, ...segments));
  if (path !== realRoot && !path.startsWith(realRoot + sep)) return undefined;
  let info = Deno.statSync(path);
  if (info.isDirectory) {
    if (!rest.endsWith("/")) {
      const url = new URL(request.url);
      return Response.redirect(`${url.origin}${url.pathname}/${url.search}`, 301);
    }
    path = Deno.realPathSync(join(path, dir.defaultFilename));
    if (!path.startsWith(realRoot + sep)) return undefined;
    info = Deno.statSync(path);
  }
  return { path, info };
}

function notFound(pathname: string): Response {
  return Response.json({ message: `no such file: ${pathname}` }, { status: 404 });
}
