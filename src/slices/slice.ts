/**
 * ServerSlice: the unit of server functionality an extension registers.
 *
 * @module
 */
import type { Database } from "../database/kysely_type.ts";
import type { Config } from "../config/config.ts";
import { SliceError } from "../errors.ts";
import type { FeatureManager } from "../features.ts";
import { Logger } from "../log.ts";
import {
  type BackgroundCounts,
  type CronOptions,
  type ScheduledTaskInfo,
  type ScheduleOptions,
  type TaskFunction,
  TaskScheduler,
} from "../scheduler/scheduler.ts";
import type { StaticMount } from "../http/static.ts";
import { isService, type Remote } from "./services.ts";

/** Where a slice is in its lifecycle (`state` in `serverstatus`). */
export type SliceState =
  | "registered"
  | "starting"
  | "started"
  | "stopping"
  | "stopped"
  | "failed";

/**
 * The lifecycle state under its former name.
 *
 * @deprecated use {@link SliceState}: `status` now means what `getStatus()` returns.
 */
export type SliceStatus = SliceState;

/** Options of {@link ServerSlice.addStaticHandler}. */
export interface StaticHandlerOptions {
  /**
   * Answer `defaultFilename` for paths under the location that hold no file, as single-page
   * applications need for their client-side routes.
   */
  fallback?: boolean;
}

/** What `prestart` receives: access to the other slices and the configuration. */
export interface SliceServer {
  /**
   * The slice with this name, as a {@link Remote}: its methods marked `@service` may be called
   * (each returns a Promise), whatever the isolation of either slice. Throws a SliceError naming
   * it when it is not loaded.
   */
  getSlice<T extends ServerSlice = ServerSlice>(name: string): Remote<T>;
  /** The loaded configuration. */
  readonly config: Config;
}

const NAME = /^(?<extension>[a-z_][a-z0-9_]*)\.[a-z0-9_][a-z0-9_.-]*$/i;

/** The part of a slice only the server touches. */
export interface SliceInternals {
  /** The slice's scheduler (its tasks, background work and their abort signal). */
  readonly scheduler: TaskScheduler;
  /** Static mounts the slice declared. */
  mounts: StaticMount[];
  /** Called when a mount is added, once the slice is attached to a server. */
  onMount: ((mount: StaticMount) => void) | undefined;
  /** Adds a mount (any kind, including proxies of a sandbox's static content). */
  mount(mount: StaticMount): void;
  /** Sets the logger; called when the server takes the slice. */
  attach(logger: Logger): void;
  /** Sets the lifecycle state. */
  setStatus(state: SliceState): void;
  /** Why the slice failed, if it did. */
  failure: string | undefined;
  /** Whether `member` is a service other slices may call (a proxy answers for its guest). */
  offers(member: string): boolean;
  /** Runs service `member` for slice `from` (a proxy hands it to its guest). */
  serve(from: string, member: string, args: unknown[]): Promise<unknown>;
  /** The deadline (ms since epoch) of the lifecycle phase running now. */
  deadline: number;
  /** The extension's Kysely, set by core.database when the slice lists it (see `database`). */
  // deno-lint-ignore no-explicit-any
  database: Database<any> | undefined;
  /** Gives the server's feature manager; set when the slice is registered. */
  features: (() => FeatureManager) | undefined;
  /**
   * The slice's background task counts, for `/metrics`: its scheduler's, unless a proxy of a
   * sandboxed slice replaces this with what its sandbox reported.
   */
  backgroundCounts: () => BackgroundCounts;
  /**
   * Seconds after which a request the slice cannot serve now may be tried again (`Retry-After`
   * of the 503): set by a proxy whose sandbox restarts; undefined when no retry is expected.
   */
  retryAfter: () => number | undefined;
}

/** Symbol under which a slice keeps its internals; not part of the public API. */
export const INTERNALS: unique symbol = Symbol("inmanta.slice.internals");

/**
 * Base class of server slices. Override the lifecycle methods you need; each may be async.
 *
 * @example
 * ```ts
 * import { ServerSlice } from "@inmanta/server";
 * class GreeterSlice extends ServerSlice {
 *   override getDependencies(): string[] { return ["core.server"]; }
 *   override async start(): Promise<void> {}
 * }
 * new GreeterSlice("new_extension.greeter");
 * ```
 */
// deno-lint-ignore no-explicit-any
export class ServerSlice<DB = any> {
  /** `<extension>.<slice>`. */
  readonly name: string;
  /** The extension part of the name. */
  readonly extensionName: string;
  #state: SliceState = "registered";
  #logger: Logger;
  readonly #internals: SliceInternals;

  /**
   * Makes a slice; the name must be `<extension-name>.<slice-name>`.
   *
   * @param name `<extension-name>.<slice-name>`
   */
  constructor(name: string) {
    const match = typeof name === "string" ? NAME.exec(name) : null;
    if (!match) {
      throw new SliceError(
        "slice.name",
        `slice name '${name}' is not of the form <extension>.<slice> (letters, digits, _)`,
      );
    }
    this.name = name;
    this.extensionName = match.groups!.extension;
    this.#logger = new Logger("info", name);
    const internals: SliceInternals = {
      scheduler: new TaskScheduler(() => this.#logger, `slice ${name}`),
      mounts: [],
      onMount: undefined,
      mount: (mount) => this.#mount(mount),
      failure: undefined,
      database: undefined,
      features: undefined,
      attach: (logger) => {
        this.#logger = logger;
      },
      setStatus: (state) => {
        this.#state = state;
      },
      deadline: 0,
      offers: (member) => isService(this, member),
      // Arguments and result are cloned as they would be across a boundary, so that a service
      // behaves the same whatever the isolation of either slice.
      serve: async (_from, member, args) =>
        structuredClone(
          await (this as unknown as Record<string, (...a: unknown[]) => unknown>)[member](
            ...structuredClone(args),
          ),
        ),
      backgroundCounts: () => internals.scheduler.backgroundCounts(),
      retryAfter: () => undefined,
    };
    this.#internals = internals;
  }

  /** Server-only internals.
   * @ignore
   */
  get [INTERNALS](): SliceInternals {
    return this.#internals;
  }

  /** Where the slice is in its lifecycle (`state` in `serverstatus`). */
  get state(): SliceState {
    return this.#state;
  }

  /**
   * The lifecycle state under its former name.
   *
   * @deprecated use {@link ServerSlice.state}; `serverstatus` shows `getStatus()` as `status`.
   */
  get status(): SliceState {
    return this.#state;
  }

  /** True from `prestop` on: stop taking new work, but stay functional. */
  get isStopping(): boolean {
    return this.#state === "stopping" || this.#state === "stopped";
  }

  /**
   * The server's feature manager (Inmanta's `feature_manager`), from `prestart` on: ask
   * `this.featureManager.enabled(name)` before offering a feature.
   */
  get featureManager(): FeatureManager {
    const features = this.#internals.features;
    if (!features) {
      throw new SliceError(
        "slice.feature_manager",
        `slice ${this.name}: featureManager is available once the slice is registered (from prestart on)`,
      );
    }
    return features();
  }

  /**
   * What `serverstatus` shows as this slice's `status`, as Inmanta's `get_status()`: a small
   * JSON-serialisable object (counts, connection state). Default `{}`. May be async; it must
   * not take long, since every status request waits for it.
   */
  getStatus(): Record<string, unknown> | Promise<Record<string, unknown>> {
    return {};
  }

  /** This slice's logger: every line names the slice. */
  get logger(): Logger {
    return this.#logger;
  }

  /** Aborted when the slice's stop deadline passes; pass it to long-running work. */
  get signal(): AbortSignal {
    return this.#internals.scheduler.signal;
  }

  /**
   * The extension's own database, a Kysely typed by the slice (`extends ServerSlice<MyTables>`),
   * from `prestart` on in a slice that lists `core.database` in `getDependencies()`.
   *
   * @throws {SliceError} `slice.database` when the slice does not list core.database
   * @ignore Its type is Kysely's (npm `kysely`), whose own documentation is at https://kysely.dev.
   */
  get database(): Database<DB> {
    const database = this.#internals.database;
    if (!database) {
      throw new SliceError(
        "slice.database",
        `slice ${this.name}: this.database needs core.database in getDependencies(); it is set from prestart on`,
      );
    }
    return database as Database<DB>;
  }

  /** Slices that must start before this one (and stop after it). */
  getDependencies(): string[] {
    return [];
  }

  /** Slices that must start after this one (and stop before it). */
  getDependedBy(): string[] {
    return [];
  }

  /** Called on every slice, in start order, before any `start`; collect references here. */
  prestart(_server: SliceServer): void | Promise<void> {}

  /** Starts the slice; it serves requests once this returns. */
  start(): void | Promise<void> {}

  /** Called on every slice, in stop order, before any `stop`; the slice stays functional. */
  prestop(): void | Promise<void> {}

  /** Stops the slice; its background tasks are awaited after this returns. */
  stop(): void | Promise<void> {}

  /**
   * Runs `fn` every `intervalSeconds`, never overlapping itself; errors are logged. The first
   * run is after `initialDelay` seconds (default: the interval). With `cancelOnStop` (default)
   * no run starts after prestop and a run in progress is aborted through the `AbortSignal` it
   * was given, without waiting for it; otherwise runs go on until stop, which awaits them.
   * The same `fn` on the same schedule twice is one task (as in Inmanta); `name` is what
   * `/api/v2/scheduled-tasks` shows (default the function's name). With `scope: "cluster"` one
   * instance of those sharing a PostgreSQL runs each tick (on the embedded database, this one).
   */
  schedule(fn: TaskFunction, intervalSeconds: number, options: ScheduleOptions = {}): void {
    this.#internals.scheduler.interval(fn, intervalSeconds, {
      ...options,
      // A cluster task is known to every instance by its slice and name.
      name: options.name ?? (fn.name || undefined),
    });
  }

  /**
   * Runs `fn` on a cron expression (five or six fields); runs never overlap. Options and
   * duplicates as for {@link ServerSlice.schedule}.
   */
  scheduleCron(fn: TaskFunction, expression: string, options: CronOptions = {}): void {
    try {
      this.#internals.scheduler.cron(fn, expression, options);
    } catch (error) {
      if (error instanceof SliceError) throw error;
      throw new SliceError(
        "slice.cron",
        `slice ${this.name}: invalid cron expression '${expression}': ${(error as Error).message}`,
      );
    }
  }

  /**
   * Removes the task `scheduleCron(fn, expression)` made; a run in progress finishes. Returns
   * whether there was one.
   */
  removeCron(fn: TaskFunction, expression: string): boolean {
    return this.#internals.scheduler.removeCron(fn, expression);
  }

  /**
   * Tracks a task that stop awaits; past the stop timeout it is abandoned and the slice's
   * `signal` is aborted. A function is called with that signal.
   */
  addBackgroundTask(task: Promise<unknown> | ((signal: AbortSignal) => unknown)): void {
    this.#internals.scheduler.background(task);
  }

  /** The scheduled tasks of this slice with their last and next runs. */
  scheduledTasks(): ScheduledTaskInfo[] {
    return this.#internals.scheduler.list();
  }

  /**
   * Serves the directory `path` under the URL prefix `location`; `defaultFilename` answers
   * for directories (default `index.html`), `start` redirects `/` to `location` (as Inmanta),
   * and `{ fallback: true }` answers `defaultFilename` for paths under `location` that hold no
   * file (single-page applications).
   */
  addStaticHandler(
    location: string,
    path: string | URL,
    defaultFilename = "index.html",
    start = false,
    options: StaticHandlerOptions = {},
  ): void {
    this.#mount({
      kind: "directory",
      location,
      root: path,
      defaultFilename,
      start,
      fallback: options.fallback ?? false,
    });
  }

  /** Serves one in-memory document at `location`. */
  addStaticContent(location: string, content: string | Uint8Array, contentType: string): void {
    this.#mount({ kind: "content", location, content, contentType });
  }

  #mount(mount: StaticMount): void {
    this.#internals.mounts.push(mount);
    this.#internals.onMount?.(mount);
  }
}
