/**
 * The extension loader: owns every `extension.<name>.*` option and the isolation decision. An
 * extension runs in the server's isolate (`none`), in a Worker (`worker`) or in a `deno`
 * subprocess (`process`, the default); whichever it is, the rest of the server sees the same
 * slices.
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ApplicationContext } from "../application.ts";
import { type Config, envName } from "../config/config.ts";
import { ConfigError, ExtensionError } from "../errors.ts";
import type { DatabaseHost } from "../database/database_host.ts";
import type { Feature } from "../features.ts";
import type { SandboxMetrics } from "../metrics/sandboxes.ts";
import type { MigrationOutcome } from "../database/migrations.ts";
import type { Logger } from "../log.ts";
import type { ServerSlice } from "../slices/slice.ts";
import { guestEnvironment, looksSecret } from "../sandbox/environment.ts";
import {
  checkGrantWithin,
  denoFlags,
  describeGrant,
  type Grant,
  parseGrant,
} from "../sandbox/grant.ts";
import { ProcessLink, WorkerLink } from "../sandbox/link.ts";
import { restartPolicy } from "../sandbox/restart.ts";
import { Sandbox } from "../sandbox/sandbox.ts";
import { checkCore } from "./compat.ts";
import type { ExtensionSpec } from "./discovery.ts";
import { prefetch } from "./fetch.ts";
import {
  type ExtensionModule,
  extensionRecord,
  importExtension,
  type Isolation,
  type LoadedExtension,
  type PackageInfo,
  packageInfo,
  setUpExtension,
} from "./module.ts";

/** What the loader needs from the server. */
export interface LoaderOptions {
  /** The server's configuration. */
  config: Config;
  /** The server's logger. */
  log: Logger;
  /** Makes a service call from a sandboxed slice to any slice. */
  callService(from: ServerSlice, to: string, member: string, args: unknown[]): Promise<unknown>;
  /** The names of every loaded slice. */
  sliceNames(): string[];
  /** What runs extensions' statements, once `core.database` is there. */
  database(): DatabaseHost | undefined;
  /** Where sandboxes report their figures. */
  metrics?: SandboxMetrics;
  /** The server's features (what sandboxed slices see as their feature manager's). */
  features?(): Feature[];
  /** Runs prestart then start of a restarted sandbox's slices, in start order. */
  rerun?(slices: ServerSlice[]): Promise<void>;
}

/** An extension made ready to load. */
type Prepared =
  | { kind: "in-process"; info: PackageInfo }
  | { kind: "sandbox"; sandbox: Sandbox };

/** The heap limit of a process sandbox when its configuration sets none, in MiB. */
const DEFAULT_MEMORY_LIMIT = 256;
/** Resident memory a process sandbox may use beyond its heap limit (Deno itself, buffers), MiB. */
const RESIDENT_ALLOWANCE = 128;

/** Registers the options of extension `name` (section `extension.<name>`). */
export function registerExtensionOptions(config: Config, name: string): void {
  config.registerDefaultOptions(`extension.${name}`, {
    source: {
      type: "string",
      default: "",
      help:
        "jsr:@scope/pkg@range, a path or file: URL, or an https: URL of the extension (empty: found in server.extension_path)",
    },
    boot_failure: {
      type: "string",
      default: "",
      help:
        "abort or continue when this extension fails to load or start (empty: server.boot_failure)",
    },
    isolation: {
      type: "string",
      default: "",
      help: "process, worker or none (empty: server.isolation)",
    },
    permissions: {
      type: "string",
      default: "",
      help:
        "Deno permissions granted, e.g. read=./data; net=api.example.com:443; env=HOME (empty: only reading its own folder)",
    },
    memory_limit: {
      type: "int",
      default: DEFAULT_MEMORY_LIMIT,
      help: "MiB of heap of a process sandbox (its resident size may be 128 MiB more)",
    },
    restart: {
      type: "string",
      default: "",
      help: "never or on-failure (empty: server.restart)",
    },
  });
}

/** Loads each extension in the isolation its configuration says. */
export class ExtensionLoader {
  readonly #options: LoaderOptions;
  readonly #prepared = new Map<string, Promise<Prepared>>();
  readonly #sandboxes: Sandbox[] = [];

  /** @param options what the loader needs from the server */
  constructor(options: LoaderOptions) {
    this.#options = options;
  }

  /** The isolation of extension `name`, checked. */
  isolation(spec: ExtensionSpec): Isolation {
    // A module given already imported lives in this isolate: it can only run in-process.
    if (spec.module) return "none";
    const { config } = this.#options;
    const own = config.string(`extension.${spec.name}`, "isolation");
    const value = own || config.string("server", "isolation");
    if (value !== "process" && value !== "worker" && value !== "none") {
      throw new ConfigError(
        "config.isolation",
        `${
          own ? `extension.${spec.name}` : "server"
        }.isolation = ${value}: use process, worker or none`,
      );
    }
    return value;
  }

  /**
   * Starts preparing an extension (fetching it, starting its guest and its import) so that
   * extensions load side by side; `load` then registers them one by one, in order.
   */
  preload(spec: ExtensionSpec): void {
    const prepared = this.#prepare(spec);
    prepared.catch(() => {}); // reported when load() awaits it
    this.#prepared.set(spec.name, prepared);
  }

  /**
   * Loads one extension: imports it, checks it is compatible, runs its `setup`.
   *
   * @throws {ExtensionError} naming the extension and the cause
   */
  async load(spec: ExtensionSpec, context: ApplicationContext): Promise<LoadedExtension> {
    const prepared = await (this.#prepared.get(spec.name) ?? this.#prepare(spec));
    this.#prepared.delete(spec.name);
    if (prepared.kind === "sandbox") return await prepared.sandbox.finish(context);
    const module = (spec.module as ExtensionModule | undefined) ?? await importExtension(spec);
    const { version, methods } = await setUpExtension(
      spec,
      module,
      context,
      prepared.info,
      (exported) => checkCore(spec.name, exported, prepared.info),
    );
    return extensionRecord(spec, {
      isolation: "none",
      permissions: "all of the server's",
      version,
      methods,
    });
  }

  async #prepare(spec: ExtensionSpec): Promise<Prepared> {
    const { config, log } = this.#options;
    const section = `extension.${spec.name}`;
    const isolation = this.isolation(spec);
    const restart = restartPolicy(config, spec.name);
    if (restart && isolation !== "process") {
      // A Worker in an endless loop cannot be ended (its thread runs on), nor can an extension
      // in the server's isolate: only a process is started again.
      log.warning(
        `extension ${spec.name}: restart = on-failure applies to process sandboxes only; with isolation = ${isolation} a failure leaves it failed`,
      );
    }
    const remote = spec.origin === "jsr" || spec.origin === "url";
    if (remote) await prefetch(spec);
    const info = await packageInfo(spec);
    if (isolation === "none") {
      log.warning(
        `extension ${spec.name} runs in-process with all of the server's permissions (${section}.isolation = none)`,
      );
      return { kind: "in-process", info };
    }
    const grant = parseGrant(
      config.string(section, "permissions"),
      `${section}.permissions`,
      spec.directory,
    );
    // The guest imports its own module and resolves "@inmanta/server": a remote source's host,
    // and the host serving this library when it came from JSR, are part of its grant.
    const hosts = [importHost(spec), LIBRARY_HOST].filter((h): h is string => h !== undefined);
    if (hosts.length > 0 && grant.import !== true) {
      grant.import = [...new Set([...(grant.import || []), ...hosts])];
    }
    checkGrantWithin(grant, spec.name);
    if (spec.directory) await refuseEscapingLinks(spec.name, spec.directory);
    const memoryLimit = config.int(section, "memory_limit");
    if (!(memoryLimit >= 16)) {
      throw new ConfigError(
        "config.memory_limit",
        `${section}.memory_limit = ${memoryLimit}: use at least 16 (MiB)`,
      );
    }
    const sandbox = new Sandbox({
      spec,
      isolation,
      grant,
      config,
      log,
      info,
      guestConfig: guestConfig(config, spec.name),
      env: guestEnvironment(inmantaEnvironment(config), {
        extension: spec.name,
        enabled: config.list("server", "enabled_extensions"),
        secrets: new Set(
          config.registeredOptions().filter((o) => o.secret).map((o) => envName(o.section, o.name)),
        ),
      }),
      link: isolation === "worker"
        ? () =>
          new WorkerLink(
            spec.name,
            { ...grant } as Deno.PermissionOptionsObject,
            describeGrant(grant),
          )
        : () =>
          new ProcessLink({
            name: spec.name,
            flags: [
              ...processFlags(spec, memoryLimit, info),
              ...denoFlags(grant),
            ],
            env: childEnvironment(grant),
            cwd: spec.directory ?? Deno.cwd(),
            memoryLimit,
          }),
      rssLimitKiB: isolation === "process" ? (memoryLimit + RESIDENT_ALLOWANCE) * 1024 : undefined,
      callService: this.#options.callService,
      sliceNames: this.#options.sliceNames,
      database: this.#options.database,
      metrics: this.#options.metrics,
      restart: isolation === "process" ? restart : undefined,
      rerun: this.#options.rerun,
      features: this.#options.features,
    });
    this.#sandboxes.push(sandbox);
    sandbox.begin();
    return { kind: "sandbox", sandbox };
  }

  /**
   * Applies a sandboxed extension's migrations in its sandbox; undefined for an extension that
   * runs in-process (its migrations run in the server).
   */
  migrate(
    extension: string,
    dialect: "sqlite" | "postgres",
  ): Promise<MigrationOutcome> | undefined {
    return this.#sandboxes.find((s) => s.name === extension)?.migrate(dialect);
  }

  /** Whether a sandboxed extension registered migrations in its setup. */
  hasMigrations(extension: string): boolean {
    return this.#sandboxes.find((s) => s.name === extension)?.hasMigrations ?? false;
  }

  /** Every sandbox started so far. */
  get sandboxes(): readonly Sandbox[] {
    return this.#sandboxes;
  }

  /** Restarts no sandbox from now on (the server is stopping). */
  endRestarts(): void {
    for (const sandbox of this.#sandboxes) sandbox.endRestarts();
  }

  /** Ends every sandbox. */
  close(): void {
    for (const sandbox of this.#sandboxes.splice(0)) sandbox.terminate();
  }
}

/** The host this library is served from, when it is not a local file (a JSR registry). */
const LIBRARY_HOST = import.meta.url.startsWith("file:")
  ? undefined
  : new URL(import.meta.url).host;

/** The project's deno.json (its import map gives guests the same `@inmanta/server`). */
const PROJECT_CONFIG = import.meta.url.startsWith("file:")
  ? fileURLToPath(new URL("../../deno.json", import.meta.url))
  : undefined;

/** The host a remote extension is imported from, which its guest must be allowed to import. */
function importHost(spec: ExtensionSpec): string | undefined {
  if (spec.origin === "url") return new URL(spec.specifier).host;
  if (spec.origin !== "jsr") return undefined;
  return new URL(readEnv("JSR_URL") || "https://jsr.io").host;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // not allowed to read it: treated as unset
  }
}

/** `deno run` flags of a process guest besides its permissions. */
function processFlags(spec: ExtensionSpec, memoryLimit: number, info: PackageInfo): string[] {
  return [
    "--quiet",
    "--no-prompt",
    "--no-lock",
    // From a local checkout: the project's import map, and nothing fetched. From JSR (embedded
    // in an extension's own project): that extension's deno.json, and the library's guest module
    // fetched from the registry the library came from.
    ...(PROJECT_CONFIG
      ? ["--cached-only", "--config", PROJECT_CONFIG]
      : info.file
      ? ["--config", info.file]
      : []),
    // Its own origin: Cache API and Web Storage are its own, never another extension's.
    `--location=https://${spec.name.replaceAll("_", "-")}.extension.invalid/`,
    `--v8-flags=--max-old-space-size=${memoryLimit}`,
  ];
}

/**
 * The whole environment of a process guest: where Deno's cache is, the JSR registry, and the
 * variables its grant names. Nothing else of the server's environment.
 */
function childEnvironment(grant: Grant): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  // Deno resolves a program to run through PATH before it checks the run grant (the guest
  // cannot read PATH without an env grant).
  const path = readEnv("PATH");
  if (path) env.PATH = path;
  const home = readEnv("HOME");
  const cache = readEnv("DENO_DIR") ??
    (readEnv("XDG_CACHE_HOME") ?? (home ? join(home, ".cache") : undefined));
  if (readEnv("DENO_DIR")) env.DENO_DIR = readEnv("DENO_DIR")!;
  else if (cache) env.DENO_DIR = join(cache, "deno");
  const registry = readEnv("JSR_URL");
  if (registry) env.JSR_URL = registry;
  if (Array.isArray(grant.env)) {
    for (const name of grant.env) {
      if (name.includes("*")) continue;
      const value = readEnv(name);
      if (value !== undefined) env[name] = value;
    }
  }
  return env;
}

/** The `INMANTA_*` variables the server sees (all of them when it may list its environment). */
function inmantaEnvironment(config: Config): Record<string, string> {
  try {
    return Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([name]) => name.startsWith("INMANTA_")),
    );
  } catch {
    // Only INMANTA_* may be read, one by one: the registered options' variables.
    const out: Record<string, string> = {};
    for (const option of config.registeredOptions()) {
      const name = envName(option.section, option.name);
      const value = config.readEnv(name);
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
}

/**
 * The configuration a guest gets: no secrets (the token signing key), and no other extension's
 * section, where they keep their own secrets. Options nobody registered (an `[auth_jwt_other]`
 * key, a section another tool reads) are judged by their names, as environment variables are.
 */
function guestConfig(config: Config, name: string): [string, [string, unknown][]][] {
  const own = `extension.${name}`;
  return [...config.snapshot({ secrets: false })]
    .filter(([section]) => !section.startsWith("extension.") || section === own)
    .map(([s, o]) => [
      s,
      [...o].filter(([option]) => s === own || !looksSecret(envName(s, option))),
    ]);
}

/**
 * Refuses an extension whose folder holds a symbolic link that resolves outside it: its grant
 * reads its own folder, and a link would stretch that to anywhere.
 *
 * @throws {ExtensionError} `extension.symlink` naming the link and where it points
 */
export async function refuseEscapingLinks(name: string, directory: string): Promise<void> {
  const root = await Deno.realPath(directory).catch(() => resolve(directory));
  const inside = (path: string) => {
    const rel = relative(root, path);
    return rel === "" || (!rel.startsWith("..") && !rel.startsWith("/"));
  };
  const queue = [directory];
  let seen = 0;
  while (queue.length > 0 && seen < 10_000) {
    const dir = queue.pop()!;
    for await (const entry of Deno.readDir(dir)) {
      seen++;
      const path = join(dir, entry.name);
      if (entry.isSymlink) {
        const target = await Deno.realPath(path).catch(() => undefined);
        if (target === undefined || !inside(target)) {
          throw new ExtensionError(
            "extension.symlink",
            `extension ${name}: ${path} is a symbolic link to ${
              target ?? (await Deno.readLink(path).catch(() => "?"))
            }, outside the extension's folder ${directory}`,
          );
        }
      } else if (entry.isDirectory) queue.push(path);
    }
  }
}
