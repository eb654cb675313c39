/**
 * The package behind a remote extension (`jsr:` or a JSR-layout `https:` URL): which version a
 * range resolves to now, and the name, version and core range its deno.json declares. The
 * specifier is then pinned to that exact version, so that Deno imports it (a range would be
 * resolved from Deno's cached version list and never see a newer version).
 *
 * @module
 */
import type { ExtensionSpec, RemotePackage } from "./discovery.ts";
import { checkCompatibility } from "./compat.ts";
import { PackageError, type PackageStore, parseJsr, registryUrl } from "./packages.ts";

/** `<registry>/@scope/name/<version>/<path>`: a file of a JSR package, by URL. */
const JSR_LAYOUT =
  /^(https?:\/\/[^/]+(?:\/[^@][^/]*)*)\/(@[a-z0-9-]+\/[a-z0-9-]+)\/([^/_]+)(\/.*)$/;

/** A URL of a file in a JSR-layout registry taken apart, or undefined. */
export function parsePackageUrl(
  url: string,
): { registry: string; name: string; version: string; path: string } | undefined {
  const match = JSR_LAYOUT.exec(url);
  return match
    ? { registry: match[1], name: match[2], version: match[3], path: match[4] }
    : undefined;
}

/** Reads name, version and core range from a version's deno.json (or jsr.json). */
async function readPackage(
  store: PackageStore,
  registry: string,
  name: string,
  version: string,
): Promise<RemotePackage> {
  for (const file of ["/deno.json", "/jsr.json"]) {
    const bytes = await store.file(registry, name, version, file);
    if (!bytes) continue;
    const where = `jsr:${name}@${version}${file}`;
    let json: { name?: unknown; version?: unknown; imports?: Record<string, unknown> };
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new PackageError(`${where} is not valid JSON`);
    }
    const pinned = json.imports?.["@inmanta/server"];
    return {
      registry,
      name: typeof json.name === "string" ? json.name : name,
      version: typeof json.version === "string" ? json.version : version,
      coreRange: typeof pinned === "string"
        ? /^jsr:\/?@inmanta\/server@([^/]+)/.exec(pinned)?.[1]
        : undefined,
      file: where,
    };
  }
  return { registry, name, version, file: `jsr:${name}@${version}` };
}

/**
 * Resolves a remote extension's package and pins its specifier to the version found; local
 * ones are left alone. A failure is a PackageError naming the registry and the package.
 */
export async function resolvePackage(spec: ExtensionSpec, store: PackageStore): Promise<void> {
  if (spec.origin === "jsr") {
    const jsr = parseJsr(spec.specifier);
    if (!jsr) return;
    const registry = registryUrl();
    const version = await store.resolve(registry, jsr.name, jsr.range);
    spec.package = await readPackage(store, registry, jsr.name, version);
    spec.specifier = `jsr:${jsr.name}@${version}${jsr.subpath}`;
  } else if (spec.origin === "url") {
    const url = parsePackageUrl(spec.specifier);
    if (!url) return;
    // Not every https: source is a JSR package: without a manifest it is only a module.
    const manifest = await store.manifest(url.registry, url.name, url.version).catch(() =>
      undefined
    );
    if (!manifest) return;
    spec.package = await readPackage(store, url.registry, url.name, url.version);
  }
}

/** Refuses a remote extension whose deno.json pins a core range this server is not in. */
export function checkPackage(spec: ExtensionSpec): void {
  const pkg = spec.package;
  if (!pkg?.coreRange) return;
  checkCompatibility(
    `${spec.name} ${pkg.version}`,
    pkg.coreRange,
    `${pkg.file} imports "@inmanta/server"`,
  );
}
