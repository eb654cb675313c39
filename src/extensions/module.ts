/**
 * An extension's module: importing it, checking it, running its `setup`, and the record the
 * server keeps of it once loaded. The same code runs in the server and in every guest.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ApplicationContext } from "../application.ts";
import { describeError, ExtensionError, InmantaError } from "../errors.ts";
import { isMethod, type MethodDefinition } from "../protocol/method.ts";
import type { ExtensionSpec } from "./discovery.ts";

/** Where an extension runs. */
export type Isolation = "none" | "worker" | "process";

/** An extension after `setup` ran. */
export interface LoadedExtension {
  /** Extension name. */
  name: string;
  /** Version from its deno.json or `export const version`, or `unversioned`. */
  version: string;
  /** Where it was loaded from. */
  source: string;
  /**
   * `none`: in the server's isolate; `worker`: in a Worker with only its granted permissions;
   * `process`: in a `deno` subprocess with only its granted permissions.
   */
  isolation: Isolation;
  /** The permissions it runs with, as Deno flags say them. */
  permissions: string;
  /** `failed` once its sandbox failed (it threw at top level, died or stopped answering). */
  status: "loaded" | "failed";
  /** Why it failed. */
  failure?: string;
  /** The API methods its module exports, which some slice must handle. */
  methods: MethodDefinition[];
}

/** What an extension module may export. */
export interface ExtensionModule {
  setup?: unknown;
  coreVersion?: unknown;
  version?: unknown;
  [name: string]: unknown;
}

/** What an extension's deno.json says. */
export interface PackageInfo {
  version?: string;
  coreRange?: string;
  file?: string;
}

/** Reads `version` and the range pinned for `@inmanta/server` from the extension's deno.json. */
export async function packageInfo(spec: ExtensionSpec): Promise<PackageInfo> {
  if (!spec.directory) return {};
  // The package's deno.json sits beside extension.ts or at the root above inmanta_ext/.
  const candidates = [
    join(spec.directory, "deno.json"),
    join(dirname(dirname(spec.directory)), "deno.json"),
  ];
  for (const file of candidates) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch {
      continue;
    }
    let json: { name?: unknown; version?: unknown; imports?: Record<string, unknown> };
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ExtensionError(
        "extension.manifest",
        `extension ${spec.name}: ${file} is not valid JSON: ${describeError(error)}`,
      );
    }
    const pinned = json.imports?.["@inmanta/server"];
    const range = typeof pinned === "string"
      ? /^jsr:@inmanta\/server@(.+)$/.exec(pinned)?.[1]
      : undefined;
    // A deno.json without a name is a workspace or project file, not the extension's.
    if (typeof json.name !== "string" && range === undefined) continue;
    return {
      version: typeof json.version === "string" ? json.version : undefined,
      coreRange: range,
      file,
    };
  }
  return {};
}

/** Imports an extension's module; a failure is an ExtensionError naming the extension. */
export async function importExtension(spec: ExtensionSpec): Promise<ExtensionModule> {
  try {
    return await import(spec.specifier);
  } catch (error) {
    throw new ExtensionError(
      "extension.import",
      `extension ${spec.name}: cannot import ${displaySource(spec)}: ${firstLine(error)}`,
      { cause: error },
    );
  }
}

/**
 * Checks an imported extension (core range, `setup`) and runs its `setup`. Returns its version
 * and the methods its module exports.
 */
export async function setUpExtension(
  spec: ExtensionSpec,
  module: ExtensionModule,
  context: ApplicationContext,
  info: PackageInfo,
  checkCore: (exported: unknown) => void | Promise<void>,
): Promise<{ version: string; methods: MethodDefinition[] }> {
  // Before setup: an incompatible extension must not run any of its code's effects.
  await checkCore(module.coreVersion);
  if (typeof module.setup !== "function") {
    throw new ExtensionError(
      "extension.setup",
      `extension ${spec.name}: ${
        displaySource(spec)
      } does not export a function setup(application)`,
    );
  }
  try {
    await module.setup(context);
  } catch (error) {
    // Our own errors already name the extension and the slice; keep their code.
    if (error instanceof InmantaError) throw error;
    throw new ExtensionError(
      "extension.setup_failed",
      `extension ${spec.name}: setup failed: ${firstLine(error)}`,
      { cause: error },
    );
  }
  return {
    version: info.version ??
      (typeof module.version === "string" ? module.version : "unversioned"),
    methods: Object.values(module).filter(isMethod),
  };
}

/** The source of an extension as operators wrote it: a path for local files. */
export function displaySource(spec: ExtensionSpec): string {
  return spec.specifier.startsWith("file:") ? fileURLToPath(spec.specifier) : spec.specifier;
}

function firstLine(error: unknown): string {
  return describeError(error).split("\n")[0];
}

/**
 * The record of an extension, loaded or failed: the one place such a record is built.
 *
 * @param spec where it came from
 * @param fields what is known of it
 */
export function extensionRecord(
  spec: ExtensionSpec,
  fields: {
    isolation: Isolation;
    permissions: string;
    version?: string;
    failure?: string;
    methods?: MethodDefinition[];
  },
): LoadedExtension {
  return {
    name: spec.name,
    version: fields.version ?? (fields.failure ? "unknown" : "unversioned"),
    source: displaySource(spec),
    isolation: fields.isolation,
    permissions: fields.permissions,
    status: fields.failure ? "failed" : "loaded",
    ...(fields.failure ? { failure: fields.failure } : {}),
    methods: fields.methods ?? [],
  };
}
