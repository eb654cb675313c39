/**
 * A JSR-protocol registry serving a folder of packages: for air-gapped sites (`deno task
 * registry DIR`, then point Deno at it with `JSR_URL`) and for the tests of loading from JSR.
 *
 * The folder holds `@scope/name/<version>/...` with each version's `deno.json` (its `exports`).
 * The registry serves `/@scope/name/meta.json`, `/@scope/name/<version>_meta.json` (a manifest of
 * `sha256-<hex>` checksums, computed when the registry starts) and the files themselves.
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

/** Options of {@link serveRegistry}. */
export interface RegistryOptions {
  /** Address to bind; default 127.0.0.1. */
  hostname?: string;
  /** Port; default 0 (a free one). */
  port?: number;
  /** Called with each request's path, for logs. */
  onRequest?: (path: string) => void;
}

interface Version {
  manifest: Record<string, { size: number; checksum: string }>;
  exports: Record<string, string>;
  /** The version's import map, applied to its modules as JSR does when publishing. */
  imports: Record<string, string>;
}

const SPECIFIER =
  /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bexport\s*\*\s*from\s*)(["'])([^"'\n]+)\2/g;

/** Rewrites bare specifiers mapped by the package's `imports`, as JSR does when publishing. */
function rewrite(source: string, imports: Record<string, string>): string {
  return source.replace(SPECIFIER, (whole, lead: string, quote: string, specifier: string) => {
    if (specifier.startsWith(".") || specifier.startsWith("/") || /^[a-z]+:/.test(specifier)) {
      return whole;
    }
    let target = imports[specifier];
    if (target === undefined) {
      const prefix = Object.keys(imports).filter((k) => k.endsWith("/") && specifier.startsWith(k))
        .sort((a, b) => b.length - a.length)[0];
      if (prefix) target = imports[prefix] + specifier.slice(prefix.length);
    }
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

async function readVersion(dir: string): Promise<Version> {
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
  for await (const path of files(dir)) {
    const bytes = await published(path, imports);
    manifest[`/${relative(dir, path).split(sep).join("/")}`] = {
      size: bytes.length,
      checksum: `sha256-${await sha256(bytes)}`,
    };
  }
  return { manifest, exports, imports };
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

/** Reads the packages of `root` (checksums are taken now) and serves them. */
export async function serveRegistry(
  root: string,
  options: RegistryOptions = {},
): Promise<Registry> {
  const packages = new Map<string, Map<string, Version>>();
  for await (const scope of Deno.readDir(root)) {
    if (!scope.isDirectory || !scope.name.startsWith("@")) continue;
    for await (const name of Deno.readDir(join(root, scope.name))) {
      if (!name.isDirectory) continue;
      const versions = new Map<string, Version>();
      for await (const version of Deno.readDir(join(root, scope.name, name.name))) {
        if (version.isDirectory && semver.valid(version.name)) {
          versions.set(
            version.name,
            await readVersion(join(root, scope.name, name.name, version.name)),
          );
        }
      }
      packages.set(`${scope.name}/${name.name}`, versions);
    }
  }

  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    options.onRequest?.(path);
    const match = /^\/(@[^/]+\/[^/]+)\/(.+)$/.exec(path);
    const versions = match ? packages.get(match[1]) : undefined;
    if (!match || !versions) return new Response("not found", { status: 404 });
    const [, pkg, rest] = match;
    if (rest === "meta.json") {
      const all = [...versions.keys()];
      const [scope, name] = pkg.slice(1).split("/");
      return Response.json({
        scope,
        name,
        latest: semver.rsort(all)[0] ?? null,
        versions: Object.fromEntries(all.map((v) => [v, {}])),
      });
    }
    const meta = /^([^/]+)_meta\.json$/.exec(rest);
    if (meta) {
      const version = versions.get(meta[1]);
      return version
        ? Response.json({ manifest: version.manifest, exports: version.exports })
        : new Response("not found", { status: 404 });
    }
    const slash = rest.indexOf("/");
    const version = versions.get(rest.slice(0, slash));
    const file = rest.slice(slash);
    if (!version || !(file in version.manifest) || file.includes("..")) {
      return new Response("not found", { status: 404 });
    }
    // Read now: a file changed since the checksums were taken no longer matches them.
    const body = await published(join(root, pkg, rest.slice(0, slash), file), version.imports);
    const type = /\.(ts|mts|tsx)$/.test(file)
      ? "application/typescript"
      : file.endsWith(".json")
      ? "application/json"
      : /\.(js|mjs)$/.test(file)
      ? "text/javascript"
      : "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  });
  const close = () => server.shutdown();
  return {
    url: `http://${server.addr.hostname}:${server.addr.port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
