/**
 * Static content: directories and in-memory documents mounted under URL prefixes. Requests
 * never leave a mounted directory: `..`, encoded separators, NUL bytes and symlinks that point
 * outside are answered 404, as missing files are.
 *
 * @module
 */
import { join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { getMimeType } from "hono/utils/mime";
import { OwnershipError, SliceError } from "../errors.ts";

/** A static mount declared by a slice. */
export type StaticMount =
  | {
    kind: "directory";
    location: string;
    root: string | URL;
    defaultFilename: string;
    start: boolean;
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
  realRoot: Promise<string | undefined>;
  defaultFilename: string;
  owner: string;
  forward?: (request: Request) => Promise<Response>;
}

interface ContentEntry {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  etag: string;
  owner: string;
}

const TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".mts": "application/typescript; charset=utf-8",
  ".map": "application/json",
  ".wasm": "application/wasm",
};

/** Files up to this size are answered from one read instead of a stream. */
const SMALL_FILE = 256 * 1024;
/** How many small files are kept in memory (the oldest goes first). */
const CACHED_FILES = 256;
/** How many resolved paths are remembered, and for how long (ms). */
const RESOLVED_PATHS = 1024;
const RESOLVED_FOR = 1000;

function contentType(path: string): string {
  const dot = path.lastIndexOf(".");
  const ext = dot >= 0 ? path.slice(dot).toLowerCase() : "";
  return TYPES[ext] ?? getMimeType(path) ?? "application/octet-stream";
}

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
  if (!header) return false;
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
  readonly #files = new Map<string, { etag: string; body: Uint8Array<ArrayBuffer> }>();
  /**
   * Requested path → real path checked to lie inside its mount (and its content type), for up
   * to RESOLVED_FOR ms:
   * resolving symlinks walks every component of the path, which cost more than the rest of
   * the answer. A symlink changed on disk is seen again within that time.
   */
  readonly #resolved = new Map<string, { real: string; type: string; until: number }>();
  #directories: DirectoryEntry[] = [];
  readonly #contents = new Map<string, ContentEntry>();

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
    const prefixes = mount.start && location !== "/" ? [location, "/"] : [location];
    for (const prefix of prefixes) {
      const taken = this.#directories.find((d) => d.prefix === prefix);
      if (taken) {
        throw new SliceError(
          "static.duplicate",
          `slice ${owner}: static location ${prefix} is already served by ${taken.owner}`,
        );
      }
      this.#directories.push({
        prefix,
        root,
        realRoot: root ? Deno.realPath(root).catch(() => undefined) : Promise.resolve(undefined),
        defaultFilename: mount.kind === "directory" ? mount.defaultFilename : "",
        owner,
        forward: mount.kind === "proxy" ? mount.forward : undefined,
      });
    }
    // Longest prefix first, so that /ui/docs wins over /ui and / comes last.
    this.#directories.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Answers a GET or HEAD request, or returns undefined when no mount covers its path. */
  async serve(request: Request, pathname: string): Promise<Response | undefined> {
    const content = this.#contents.size > 0
      ? this.#contents.get(pathname.replace(/(.)\/+$/, "$1"))
      : undefined;
    if (content) {
      const headers = { "content-type": content.contentType, etag: content.etag };
      if (notModified(request, content.etag)) return new Response(null, { status: 304, headers });
      return new Response(request.method === "HEAD" ? null : content.body, { headers });
    }
    for (const dir of this.#directories) {
      const rest = dir.prefix === "/"
        ? pathname
        : pathname === dir.prefix || pathname.startsWith(`${dir.prefix}/`)
        ? pathname.slice(dir.prefix.length)
        : undefined;
      if (rest === undefined) continue;
      if (dir.forward) return await dir.forward(request);
      return await this.#serveFile(request, dir, rest) ?? notFound(pathname);
    }
    return undefined;
  }

  async #serveFile(
    request: Request,
    dir: DirectoryEntry,
    rest: string,
  ): Promise<Response | undefined> {
    const realRoot = await dir.realRoot;
    if (!realRoot) return undefined;
    const key = `${dir.prefix}\0${rest}`;
    const now = Date.now();
    let known = this.#resolved.get(key);
    let info: Deno.FileInfo;
    // Synchronous on purpose: a local stat takes microseconds, while each async file call
    // goes through Deno's blocking thread pool, which cost more than the whole answer.
    try {
      if (known && known.until > now) {
        info = Deno.statSync(known.real);
      } else {
        const found = resolveFile(request, dir, realRoot, rest);
        if (!found || found instanceof Response) return found;
        info = found.info;
        known = { real: found.path, type: contentType(found.path), until: now + RESOLVED_FOR };
        this.#resolved.delete(key);
        if (this.#resolved.size >= RESOLVED_PATHS) {
          this.#resolved.delete(this.#resolved.keys().next().value!);
        }
        this.#resolved.set(key, known);
      }
    } catch {
      this.#resolved.delete(key);
      return undefined;
    }
    if (!info.isFile) {
      this.#resolved.delete(key);
      return undefined;
    }
    const path = known.real;
    const mtime = info.mtime?.getTime() ?? 0;
    const etag = `W/"${info.size.toString(16)}-${mtime.toString(16)}"`;
    if (notModified(request, etag)) return new Response(null, { status: 304, headers: { etag } });
    const headers: Record<string, string> = {
      "content-type": known.type,
      "content-length": String(info.size),
      etag,
      "cache-control": "no-cache",
    };
    if (request.method === "HEAD") return new Response(null, { headers });
    // Small files in one read, kept while their size and mtime stay the same: a file stream
    // costs more per request than the file itself.
    if (info.size <= SMALL_FILE) {
      let cached = this.#files.get(path);
      if (!cached || cached.etag !== etag) {
        cached = { etag, body: Deno.readFileSync(path) };
        if (this.#files.size >= CACHED_FILES) this.#files.delete(this.#files.keys().next().value!);
        this.#files.set(path, cached);
      }
      return new Response(cached.body, { headers });
    }
    const file = await Deno.open(path, { read: true });
    return new Response(file.readable, { headers });
  }
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
