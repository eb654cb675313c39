/**
 * A JSR-protocol registry serving a folder of packages: for air-gapped sites (`deno task
 * registry DIR`, then point Deno at it with `JSR_URL`) and for the tests of loading from JSR.
 *
 * The folder holds `@scope/name/<version>/...` with each version's `deno.json` (its `exports`).
 * The registry serves `/@scope/name/meta.json`, `/@scope/name/<version>_meta.json` (a manifest of
 * `sha256-<hex>` checksums) and the files themselves. The folder is read on every request, so a
 * package or version added to it is served at once; a version's checksums are taken the first
 * time it is asked for and kept, because a published version is immutable, as on JSR: a file
 * changed afterwards no longer matches them and Deno refuses it.
 *
 * @module
 */
import { join, relative, sep } from "node:path";
import semver from "semver";

/** A running registry. */
export interface Registry extends AsyncDisposable {
  /** Base URL, to use as `JSR_URL`. */
  url: string;
  /** Stops serving. */
  close(): Promise<void>;
}

/** A package served from a folder outside the registry's (the server's own checkout). */
export interface ExtraPackage {
  /** `@scope/name`. */
  name: string;
  /** The version it is served as. */
  version: string;
  /** Its folder: the one holding its deno.json. */
  dir: string;
  /** Files and folders of `dir` it is made of (deno.json `publish.include`); default all. */
  include?: string[];
}

/** Options of {@link serveRegistry}. */
export interface RegistryOptions {
  /** Address to bind; default 127.0.0.1. */
  hostname?: string;
  /** Port; default 0 (a free one). */
  port?: number;
  /** Called with each request's path, for logs. */
  onRequest?: (path: string) => void;
  /** Packages served beside the folder's (the server's own checkout as `@inmanta/server`). */
  extra?: ExtraPackage[];
}

interface Version {
  dir: string;
  manifest: Record<string, { size: number; checksum: string }>;
  exports: Record<string, string>;
  /** The version's import map, applied to its modules as JSR does when publishing. */
  imports: Record<string, string>;
}

const SPECIFIER =
  /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bexport\s*\*\s*from\s*)(["'])([^"'\n]+)\2/g;

/** The target of a bare specifier in an import map, as Deno and JSR resolve it. */
function mapped(specifier: string, imports: Record<string, string>): string | undefined {
  if (imports[specifier] !== undefined) return imports[specifier];
  // `"pkg": "jsr:@s/pkg@^1"` also maps `pkg/sub` to `jsr:@s/pkg@^1/sub`, as Deno does.
  for (const [key, target] of Object.entries(imports)) {
    if (!key.endsWith("/") && /^(jsr|npm):/.test(target) && specifier.startsWith(`${key}/`)) {
      return target + specifier.slice(key.length);
    }
  }
  const prefix = Object.keys(imports).filter((k) => k.endsWith("/") && specifier.startsWith(k))
    .sort((a, b) => b.length - a.length)[0];
  return prefix ? imports[prefix] + specifier.slice(prefix.length) : undefined;
}

/** Rewrites bare specifiers mapped by the package's `imports`, as JSR does when publishing. */
export function rewrite(source: string, imports: Record<string, string>): string {
  return source.replace(SPECIFIER, (whole, lead: string, quote: string, specifier: string) => {
    if (specifier.startsWith(".") || specifier.startsWith("/") || /^[a-z]+:/.test(specifier)) {
      return whole;
    }
    const target = mapped(specifier, imports);
    return target === undefined || target.startsWith(".")
      ? whole
      : `${lead}${quote}${target}${quote}`;
  });
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function* files(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* files(path);
    else if (entry.isFile) yield path;
  }
}

async function readVersion(dir: string, include?: string[]): Promise<Version> {
  let exports: Record<string, string> = {};
  let imports: Record<string, string> = {};
  try {
    const config = JSON.parse(await Deno.readTextFile(join(dir, "deno.json")));
    exports = typeof config.exports === "string" ? { ".": config.exports } : config.exports ?? {};
    imports = config.imports ?? {};
  } catch {
    // A version without deno.json exports nothing.
  }
  const manifest: Version["manifest"] = {};
  const roots = include?.map((p) => join(dir, p)) ?? [dir];
  for (const root of roots) {
    const info = await Deno.stat(root).catch(() => undefined);
    const paths = info?.isDirectory ? files(root) : info?.isFile ? [root] : [];
    for await (const path of paths) {
      const bytes = await published(path, imports);
      manifest[`/${relative(dir, path).split(sep).join("/")}`] = {
        size: bytes.length,
        checksum: `sha256-${await sha256(bytes)}`,
      };
    }
  }
  return { dir, manifest, exports, imports };
}

/** A file as the registry publishes it: modules with bare specifiers rewritten. */
async function published(
  path: string,
  imports: Record<string, string>,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await Deno.readFile(path);
  if (!/\.(ts|mts|js|mjs|tsx|jsx)$/.test(path)) return bytes;
  return new TextEncoder().encode(rewrite(new TextDecoder().decode(bytes), imports));
}

/** The versions of a package in the folder now (semver-named subfolders). */
async function versionsIn(root: string, pkg: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(join(root, pkg))) {
      if (entry.isDirectory && semver.valid(entry.name)) found.push(entry.name);
    }
  } catch {
    // No such package.
  }
  return found;
}

const CONTENT_TYPES: [RegExp, string][] = [
  [/\.(ts|mts|tsx)$/, "application/typescript"],
  [/\.json$/, "application/json"],
  [/\.(js|mjs)$/, "text/javascript"],
  [/\.html?$/, "text/html; charset=utf-8"],
  [/\.css$/, "text/css"],
];

/** Serves the packages of `root` (read on each request) and the `extra` ones. */
export function serveRegistry(root: string, options: RegistryOptions = {}): Promise<Registry> {
  // Checksums of a version, taken when it is first asked for (published versions never change).
  const taken = new Map<string, Promise<Version>>();
  const extra = new Map((options.extra ?? []).map((p) => [p.name, p]));
  const version = (pkg: string, v: string): Promise<Version> => {
    const key = `${pkg}@${v}`;
    let known = taken.get(key);
    if (!known) {
      const own = extra.get(pkg);
      known = own?.version === v
        ? readVersion(own.dir, own.include)
        : readVersion(join(root, pkg, v));
      taken.set(key, known);
    }
    return known;
  };
  const versions = async (pkg: string): Promise<string[]> => {
    const own = extra.get(pkg);
    return own ? [own.version] : await versionsIn(root, pkg);
  };

  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    options.onRequest?.(path);
    const match = /^\/(@[a-z0-9-]+\/[a-z0-9-]+)\/(.+)$/.exec(path);
    if (!match || path.includes("..")) return new Response("not found", { status: 404 });
    const [, pkg, rest] = match;
    const all = await versions(pkg);
    if (all.length === 0) return new Response("not found", { status: 404 });
    if (rest === "meta.json") {
      const [scope, name] = pkg.slice(1).split("/");
      return Response.json({
        scope,
        name,
        latest: semver.rsort([...all])[0] ?? null,
        versions: Object.fromEntries(all.map((v) => [v, {}])),
      }, { headers: { "cache-control": "no-cache" } });
    }
    const meta = /^([^/]+)_meta\.json$/.exec(rest);
    if (meta) {
      if (!all.includes(meta[1])) return new Response("not found", { status: 404 });
      const { manifest, exports } = await version(pkg, meta[1]);
      return Response.json({ manifest, exports });
    }
    const slash = rest.indexOf("/");
    const v = rest.slice(0, slash);
    if (slash < 0 || !all.includes(v)) return new Response("not found", { status: 404 });
    const served = await version(pkg, v);
    const file = rest.slice(slash);
    if (!(file in served.manifest)) return new Response("not found", { status: 404 });
    // Read now: a file changed since the checksums were taken no longer matches them.
    const body = await published(join(served.dir, file), served.imports);
    const type = CONTENT_TYPES.find(([pattern]) => pattern.test(file))?.[1] ??
      "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  });
  const close = () => server.shutdown();
  return Promise.resolve({
    url: `http://${server.addr.hostname}:${server.addr.port}`,
    close,
    [Symbol.asyncDispose]: close,
  });
}

/** Thrown by {@link publishTo} for a folder that is not a publishable package. */
export class PublishError extends Error {}

/**
 * Copies the package in `source` (its deno.json `name`, `version` and `publish.include`) into a
 * registry folder as `@scope/name/<version>/`, as `deno task registry publish` does. A version
 * already there is refused: published versions are immutable.
 */
export async function publishTo(
  root: string,
  source: string,
): Promise<{ name: string; version: string; dir: string }> {
  let config: { name?: unknown; version?: unknown; publish?: { include?: unknown } };
  try {
    config = JSON.parse(await Deno.readTextFile(join(source, "deno.json")));
  } catch (error) {
    throw new PublishError(
      `${join(source, "deno.json")}: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  const { name, version } = config;
  if (typeof name !== "string" || !/^@[a-z0-9-]+\/[a-z0-9-]+$/.test(name)) {
    throw new PublishError(`${join(source, "deno.json")}: "name" must be @scope/name`);
  }
  if (typeof version !== "string" || !semver.valid(version)) {
    throw new PublishError(`${join(source, "deno.json")}: "version" must be a semver version`);
  }
  const dir = join(root, name, version);
  if (await Deno.stat(dir).then(() => true, () => false)) {
    throw new PublishError(`${name}@${version} is already in ${root}: bump "version" first`);
  }
  const include = Array.isArray(config.publish?.include)
    ? (config.publish.include as unknown[]).filter((p): p is string => typeof p === "string")
    : ["."];
  if (!include.includes("deno.json")) include.push("deno.json");
  for (const entry of include) {
    const from = join(source, entry);
    const info = await Deno.stat(from).catch(() => undefined);
    if (!info) continue;
    const paths = info.isDirectory ? files(from) : [from];
    for await (const path of paths) {
      const to = join(dir, relative(source, path));
      await Deno.mkdir(join(to, ".."), { recursive: true });
      await Deno.copyFile(path, to);
    }
  }
  return { name, version, dir };
}
