/**
 * Static folders of a remote package: `addStaticHandler(location, root)` with `root` a
 * `jsr:@scope/name@range/folder` specifier or an `https:`/`http:` URL into a JSR-layout registry
 * (what `new URL("./static/", import.meta.url)` is in an extension loaded from JSR). The files
 * are those the version's manifest lists under the folder; each is checked against its sha256
 * checksum before it is served, and kept in memory; the package cache (`server.package_cache`)
 * lets the server start again offline. A failure is logged naming the slice, the call and the
 * URL, and requests under the location answer 503 with that reason. The server installs
 * {@link remoteStatic} into static.ts (`serveRemoteFoldersWith`).
 *
 * @module
 */
import { getMimeType } from "hono/utils/mime";
import { describeError } from "../errors.ts";
import { parsePackageUrl } from "../extensions/package_info.ts";
import { PackageStore, parseJsr, registryUrl } from "../extensions/packages.ts";

/** What the server gives this module: its package cache and where errors are logged. */
export interface RemoteStaticOptions {
  /** A store over the server's package cache. */
  store: () => PackageStore;
  /** Logs one error line. */
  error: (message: string) => void;
}

// Until the server configures it: no cache, errors to the console.
let options: RemoteStaticOptions | undefined;

/** Sets the package cache and logger remote static folders use (the server does, on start). */
export function configureRemoteStatic(next: RemoteStaticOptions): void {
  options = next;
}

interface Served {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
}

/** The package, version and folder a remote root names. */
async function locate(
  root: string,
  store: PackageStore,
): Promise<{ registry: string; name: string; version: string; folder: string }> {
  if (root.startsWith("jsr:")) {
    const jsr = parseJsr(root);
    if (!jsr) throw new Error("not a jsr:@scope/name@range/folder specifier");
    const registry = registryUrl();
    const version = await store.resolve(registry, jsr.name, jsr.range);
    return { registry, name: jsr.name, version, folder: jsr.subpath };
  }
  const url = parsePackageUrl(root);
  if (!url) {
    throw new Error(
      "not a folder of a JSR-layout package (<registry>/@scope/name/<version>/<folder>): its files have no manifest to check them against",
    );
  }
  return { ...url, folder: url.path };
}

/** Reads and checks every file of the folder; keys are paths below it (`/a/b.css`). */
async function load(root: string): Promise<Map<string, Served>> {
  const store = options?.store() ?? new PackageStore(undefined);
  const { registry, name, version, folder } = await locate(root, store);
  const prefix = folder.endsWith("/") ? folder : `${folder}/`;
  const manifest = await store.manifest(registry, name, version);
  const paths = Object.keys(manifest).filter((p) => p.startsWith(prefix));
  if (paths.length === 0) {
    throw new Error(`${name}@${version} has no files under ${prefix}`);
  }
  const files = new Map<string, Served>();
  await Promise.all(paths.map(async (path) => {
    const body = await store.file(registry, name, version, path);
    if (!body) return;
    files.set(path.slice(prefix.length - 1), {
      body,
      type: getMimeType(path) ?? "application/octet-stream",
      etag: `"${manifest[path].checksum}"`,
    });
  }));
  return files;
}

function answer(status: number, message: string): Response {
  return Response.json({ message }, { status });
}

/**
 * Answers requests under `location` from a remote package folder. Loading starts now; a
 * failure is logged once, naming the slice, the call and the URL.
 */
export function remoteStatic(
  owner: string,
  location: string,
  root: string | URL,
  defaultFilename: string,
): (request: Request) => Promise<Response> {
  const url = root instanceof URL ? root.href : root;
  const call = `addStaticHandler(${JSON.stringify(location)}, ${JSON.stringify(url)})`;
  const files = load(url).catch((error) => {
    const reason = `slice ${owner}: ${call}: ${describeError(error).split("\n")[0]}`;
    (options?.error ?? console.error)(reason);
    return reason;
  });
  const base = location === "/" ? "" : location.replace(/\/+$/, "");
  return async (request) => {
    const loaded = await files;
    if (typeof loaded === "string") return answer(503, loaded);
    const { pathname } = new URL(request.url);
    let rest: string;
    try {
      rest = decodeURIComponent(pathname.slice(base.length)) || "/";
    } catch {
      return answer(404, `no such file: ${pathname}`);
    }
    if (rest.split("/").some((s) => s === "..")) return answer(404, `no such file: ${pathname}`);
    const file = loaded.get(rest.endsWith("/") ? `${rest}${defaultFilename}` : rest);
    if (!file && !rest.endsWith("/") && loaded.has(`${rest}/${defaultFilename}`)) {
      const url = new URL(request.url);
      return Response.redirect(`${url.origin}${url.pathname}/${url.search}`, 301);
    }
    if (!file) return answer(404, `no such file: ${pathname}`);
    const headers = { "content-type": file.type, etag: file.etag, "cache-control": "no-cache" };
    if (request.headers.get("if-none-match") === file.etag) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(request.method === "HEAD" ? null : file.body, { headers });
  };
}
