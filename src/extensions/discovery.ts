/**
 * Finds the module of each enabled extension: `extension.<name>.source` when set, otherwise
 * `inmanta_ext/<name>/extension.ts` in the roots of `server.extension_path`.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Config } from "../config/config.ts";
import { ExtensionError } from "../errors.ts";

/** Where an extension's module is. */
export interface ExtensionSpec {
  /** Extension name (the `<name>` of `inmanta_ext/<name>`). */
  name: string;
  /** Module specifier to import: a `file:` or `https:` URL, or a `jsr:` specifier. */
  specifier: string;
  /** How it was found. */
  origin: "local" | "path" | "url" | "jsr";
  /** The extension's folder on disk (`inmanta_ext/<name>`), for local ones. */
  directory?: string;
  /** The module itself, when it was given already imported (it then runs in-process). */
  module?: unknown;
  /** `extension.<name>.source` as written, when the specifier was pinned from it. */
  source?: string;
  /** For a remote source: its package as the registry has it (see package_info.ts). */
  package?: RemotePackage;
}

/** A remote extension's package: the version a range resolved to and what its deno.json says. */
export interface RemotePackage {
  /** Base URL of the registry. */
  registry: string;
  /** `@scope/name`. */
  name: string;
  /** The exact version. */
  version: string;
  /** The range its deno.json pins for `@inmanta/server`, if any. */
  coreRange?: string;
  /** Where that was read, as `jsr:@scope/name@version/deno.json`. */
  file: string;
}

const NAME = /^[a-z_][a-z0-9_]*$/;

/** Checks an extension name: a lower-case identifier, as a Python package name would be. */
export function checkExtensionName(name: string): void {
  if (!NAME.test(name)) {
    throw new ExtensionError(
      "extension.name",
      `extension name '${name}' is not a lower-case identifier (a-z, 0-9, _)`,
    );
  }
}

/** The roots of `server.extension_path`, resolved against the working directory. */
export function extensionRoots(config: Config): string[] {
  return config.string("server", "extension_path").split(":").map((p) => p.trim())
    .filter((p) => p !== "").map((p) => resolve(p));
}

/** Paths the server process was not allowed to look at, for the "not found" message. */
type Denied = string[];

async function isFile(path: string, denied?: Denied): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      denied?.push(path);
    }
    return false;
  }
}

/** Says why a lookup may have missed: the server process may not read where it looked. */
function deniedHint(denied: Denied): string {
  if (denied.length === 0) return "";
  const folders = [...new Set(denied.map((p) => dirname(p)))];
  return `; the server process may not read ${denied.join(", ")} (grant it with --allow-read=${
    folders.join(",")
  } or move the extension under a folder it may read)`;
}

/**
 * The extensions found under the roots of `server.extension_path` (`inmanta_ext/<name>/
 * extension.ts`), sorted; unreadable roots are skipped.
 */
export async function availableExtensions(config: Config): Promise<string[]> {
  const found = new Set<string>();
  for (const root of extensionRoots(config)) {
    try {
      for await (const entry of Deno.readDir(join(root, "inmanta_ext"))) {
        if (
          entry.isDirectory && await isFile(join(root, "inmanta_ext", entry.name, "extension.ts"))
        ) {
          found.add(entry.name);
        }
      }
    } catch {
      // A root without inmanta_ext/ holds no extension.
    }
  }
  return [...found].sort();
}

/** Finds every enabled extension; an extension that cannot be found is an ExtensionError. */
export async function discoverExtensions(
  config: Config,
  names: string[],
  modules: Record<string, unknown> = {},
): Promise<ExtensionSpec[]> {
  const roots = extensionRoots(config);
  const specs: ExtensionSpec[] = [];
  for (const name of names) {
    checkExtensionName(name);
    if (modules[name] !== undefined) {
      specs.push({ name, specifier: `module:${name}`, origin: "path", module: modules[name] });
      continue;
    }
    const source = config.string(`extension.${name}`, "source");
    specs.push(source ? await fromSource(name, source) : await fromRoots(name, roots));
  }
  return specs;
}

async function fromRoots(name: string, roots: string[]): Promise<ExtensionSpec> {
  const candidates = roots.map((root) => join(root, "inmanta_ext", name, "extension.ts"));
  const found: string[] = [];
  const denied: Denied = [];
  for (const candidate of candidates) if (await isFile(candidate, denied)) found.push(candidate);
  if (found.length > 1) {
    throw new ExtensionError(
      "extension.duplicate",
      `extension ${name} is found in more than one root of server.extension_path: ${
        found.join(" and ")
      }`,
    );
  }
  if (found.length === 0) {
    throw new ExtensionError(
      "extension.not_found",
      `extension ${name} is enabled but not found; looked for ${
        candidates.join(", ") || "(server.extension_path is empty)"
      }${deniedHint(denied)}`,
    );
  }
  return {
    name,
    specifier: pathToFileURL(found[0]).href,
    origin: "local",
    directory: dirname(found[0]),
  };
}

async function fromSource(name: string, source: string): Promise<ExtensionSpec> {
  const option = `extension.${name}.source`;
  if (source.startsWith("jsr:")) {
    if (!/^jsr:@[a-z0-9-]+\/[a-z0-9-]+(@[^/]+)?(\/.*)?$/.test(source)) {
      throw new ExtensionError(
        "extension.source",
        `${option} = ${source}: not a jsr:@scope/package@range specifier`,
      );
    }
    return { name, specifier: source, origin: "jsr", source };
  }
  if (/^https?:/.test(source)) {
    try {
      return { name, specifier: new URL(source).href, origin: "url", source };
    } catch {
      throw new ExtensionError("extension.source", `${option} = ${source}: not a valid URL`);
    }
  }
  let path: string;
  try {
    path = source.startsWith("file:") ? fileURLToPath(source) : resolve(source);
  } catch {
    throw new ExtensionError("extension.source", `${option} = ${source}: not a valid file URL`);
  }
  // A folder may be an extension root, the extension's own folder, or hold extension.ts.
  const candidates = [
    path,
    join(path, "inmanta_ext", name, "extension.ts"),
    join(path, "extension.ts"),
  ];
  const denied: Denied = [];
  for (const candidate of candidates) {
    if (await isFile(candidate, denied)) {
      return {
        name,
        specifier: pathToFileURL(candidate).href,
        origin: "path",
        directory: dirname(candidate),
      };
    }
  }
  throw new ExtensionError(
    "extension.not_found",
    `${option} = ${source}: no extension module; looked for ${candidates.join(", ")}${
      deniedHint(denied)
    }`,
  );
}
