/**
 * Packages on a JSR registry (`JSR_URL`, default https://jsr.io), read the way Deno reads them:
 * `meta.json` lists the versions, `<version>_meta.json` is the version's manifest of sha256
 * checksums, and every file is checked against it. What was read is kept in a cache folder
 * (`server.package_cache`) so that the server starts again offline: a version's manifest and
 * files never change once published, so they are read from the cache first (and checked again);
 * the version list is asked of the registry each time, so a newer version is seen at the next
 * start, and the cached list is the fallback when the registry cannot be reached.
 *
 * @module
 */
import { dirname, join } from "node:path";
import semver from "semver";
import { describeError } from "../errors.ts";

/** A `jsr:` specifier taken apart. */
export interface JsrSpecifier {
  /** `@scope/name`. */
  name: string;
  /** The version range (`*` when none was written). */
  range: string;
  /** The path after the version (`/sub`), or "". */
  subpath: string;
}

const JSR = /^jsr:\/?(@[a-z0-9-]+\/[a-z0-9-]+)(?:@([^/]+))?(\/.*)?$/;

/** Takes a `jsr:@scope/name@range/sub` specifier apart, or returns undefined. */
export function parseJsr(specifier: string): JsrSpecifier | undefined {
  const match = JSR.exec(specifier);
  return match ? { name: match[1], range: match[2] ?? "*", subpath: match[3] ?? "" } : undefined;
}

/** The registry Deno uses for `jsr:` specifiers: `JSR_URL`, else https://jsr.io. */
export function registryUrl(): string {
  let url: string | undefined;
  try {
    url = Deno.env.get("JSR_URL");
  } catch {
    // Without env permission Deno cannot read it either: the default registry.
  }
  return (url || "https://jsr.io").replace(/\/+$/, "");
}

/** One file of a version's manifest. */
export interface ManifestEntry {
  /** Size in bytes. */
  size: number;
  /** `sha256-<hex>`. */
  checksum: string;
}

/** A version's manifest: file path (`/a/b.ts`) → size and checksum. */
export type Manifest = Record<string, ManifestEntry>;

/** Why a package or file could not be read; the message says what and where. */
export class PackageError extends Error {}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256-${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** How long one registry request may take before it counts as unreachable. */
const TIMEOUT_MS = 15_000;

/** Reads packages from registries, through a cache folder. */
export class PackageStore {
  readonly #cache: string | undefined;
  readonly #warn: (message: string) => void;
  /** Manifests read during this run, by `<registry>/<name>/<version>`. */
  readonly #manifests = new Map<string, Promise<Manifest>>();

  /**
   * Makes a store.
   *
   * @param cache folder of the cache; undefined keeps nothing (no offline start)
   * @param warn called when the cache cannot be written or a stale list is used
   */
  constructor(cache: string | undefined, warn: (message: string) => void = () => {}) {
    this.#cache = cache;
    this.#warn = warn;
  }

  #cachePath(registry: string, path: string): string | undefined {
    if (!this.#cache) return undefined;
    const host = new URL(registry).host.replace(/[^a-zA-Z0-9.-]/g, "_");
    return join(this.#cache, host, ...path.split("/").filter((s) => s !== "" && s !== ".."));
  }

  async #readCache(registry: string, path: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const file = this.#cachePath(registry, path);
    if (!file) return undefined;
    try {
      return await Deno.readFile(file);
    } catch {
      return undefined;
    }
  }

  async #writeCache(registry: string, path: string, bytes: Uint8Array): Promise<void> {
    const file = this.#cachePath(registry, path);
    if (!file) return;
    try {
      await Deno.mkdir(dirname(file), { recursive: true });
      await Deno.writeFile(file, bytes);
    } catch (error) {
      this.#warn(
        `cannot keep ${registry}${path} in ${this.#cache} (server.package_cache), so it will not start offline: ${
          describeError(error).split("\n")[0]
        }`,
      );
    }
  }

  async #fetch(url: string): Promise<Uint8Array<ArrayBuffer>> {
    let response: Response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (error) {
      const why = error instanceof Deno.errors.NotCapable
        ? `the server has no net permission for ${new URL(url).host} (add it to --allow-net)`
        : describeError(error).split("\n")[0];
      throw new PackageError(`cannot reach ${url}: ${why}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new PackageError(`${url} answered ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  }

  /**
   * The newest version of `name` that satisfies `range` (yanked ones skipped). The list comes
   * from the registry; when it cannot be reached, from the cache, with a warning.
   */
  async resolve(registry: string, name: string, range: string): Promise<string> {
    const path = `/${name}/meta.json`;
    let text: Uint8Array;
    try {
      text = await this.#fetch(`${registry}${path}`);
      await this.#writeCache(registry, path, text);
    } catch (error) {
      const cached = await this.#readCache(registry, path);
      if (!cached) throw error;
      this.#warn(`${(error as Error).message}; using the versions of ${name} seen before`);
      text = cached;
    }
    let versions: Record<string, { yanked?: boolean }>;
    try {
      versions = JSON.parse(new TextDecoder().decode(text)).versions ?? {};
    } catch {
      throw new PackageError(`${registry}${path} is not JSON`);
    }
    const usable = Object.keys(versions).filter((v) => !versions[v]?.yanked && semver.valid(v));
    const best = semver.maxSatisfying(usable, range, { includePrerelease: false });
    if (!best) {
      throw new PackageError(
        `no version of ${name} at ${registry} satisfies ${range} (there are: ${
          usable.join(", ") || "none"
        })`,
      );
    }
    return best;
  }

  /** The manifest of `name@version`: from the cache, else from the registry. */
  manifest(registry: string, name: string, version: string): Promise<Manifest> {
    const key = `${registry}/${name}/${version}`;
    let known = this.#manifests.get(key);
    if (!known) {
      known = this.#readManifest(registry, name, version);
      known.catch(() => this.#manifests.delete(key));
      this.#manifests.set(key, known);
    }
    return known;
  }

  async #readManifest(registry: string, name: string, version: string): Promise<Manifest> {
    const path = `/${name}/${version}_meta.json`;
    let bytes = await this.#readCache(registry, path);
    if (!bytes) {
      bytes = await this.#fetch(`${registry}${path}`);
      await this.#writeCache(registry, path, bytes);
    }
    try {
      const manifest = JSON.parse(new TextDecoder().decode(bytes)).manifest;
      if (typeof manifest !== "object" || manifest === null) throw new Error("no manifest");
      return manifest as Manifest;
    } catch {
      throw new PackageError(`${registry}${path} is not a version manifest`);
    }
  }

  /**
   * A file of `name@version` (`/path`), checked against the version's manifest: from the
   * cache, else from the registry. A file the manifest does not list is undefined; one whose
   * checksum differs is a PackageError.
   */
  async file(
    registry: string,
    name: string,
    version: string,
    path: string,
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const entry = (await this.manifest(registry, name, version))[path];
    if (!entry) return undefined;
    const where = `/${name}/${version}${path}`;
    const cached = await this.#readCache(registry, where);
    if (cached && await sha256(cached) === entry.checksum) return cached;
    const bytes = await this.#fetch(`${registry}${where}`);
    const actual = await sha256(bytes);
    if (actual !== entry.checksum) {
      throw new PackageError(
        `${registry}${where} does not match its checksum in the version's manifest (${entry.checksum}, got ${actual}): the package may have been tampered with`,
      );
    }
    await this.#writeCache(registry, where, bytes);
    return bytes;
  }
}
