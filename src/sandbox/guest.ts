/**
 * The inside of a sandbox, whatever carries it (a Worker or a subprocess): imports the extension,
 * runs `setup`, and then serves the server's lifecycle calls, forwarded requests and service
 * calls for the slices `setup` registered, through the same slice runtime the server uses.
 *
 * @module
 */
import { Registry } from "../application.ts";
import { FeatureList } from "../features.ts";
import { isErrorCode } from "../error_codes.ts";
import { Config } from "../config/config.ts";
import { ExtensionError, SliceError } from "../errors.ts";
import type { ExtensionSpec } from "../extensions/discovery.ts";
import { type ExtensionModule, importExtension, setUpExtension } from "../extensions/module.ts";
import { StaticTable } from "../http/static.ts";
import { errorResponse } from "../http/errors.ts";
import { isStreaming } from "../http/transport.ts";
import process from "node:process";
import { Logger } from "../log.ts";
import { isRequestId, runWithRequestId } from "../request_id.ts";
import type { MethodDefinition } from "../protocol/method.ts";
import { Invoker } from "../protocol/invoke.ts";
import { schemaOf } from "../protocol/openapi.ts";
import { collectRoutes, routeKey } from "../protocol/routes.ts";
import { attachSlices, callService, runPhase, sliceView } from "../slices/runtime.ts";
import { serviceNames } from "../slices/services.ts";
import { INTERNALS, type ServerSlice, type SliceServer } from "../slices/slice.ts";
import type { BackgroundCounts } from "../scheduler/scheduler.ts";
import type { DatabaseRequest, DatabaseResponse } from "../database/wire.ts";
import { Channel } from "./channel.ts";
import { LogBudget } from "./log_budget.ts";
import {
  type Batch,
  decodeHostBatch,
  describe,
  type ErrorDescriptor,
  type FromGuest,
  type MethodDescriptor,
  packValue,
  type ToGuest,
  unpackValue,
} from "./messages.ts";

/** How often the guest says it is alive; the server declares it hung after its own timeout. */
const HEARTBEAT_MS = 200;
/** Bodies up to this size (by content-length) cross in one message. */
const BUFFERED = 1 << 20;

/** What carries batches between this guest and the server. */
export interface GuestPort {
  /** Sends a batch to the server. */
  post(batch: Batch): void;
}

function descriptor(method: MethodDefinition): MethodDescriptor {
  return {
    operation: method.operation,
    path: method.path,
    apiVersion: method.apiVersion,
    clientTypes: [...method.clientTypes],
    summary: method.summary,
    description: method.description,
    status: method.status,
    enforceAuth: method.enforceAuth,
    maxBodySize: method.maxBodySize,
    args: schemaOf(method.args, "input"),
    returns: schemaOf(method.returns, "output"),
  };
}

/** One guest: the extension it runs and its slices. */
export class Guest {
  readonly #channel: Channel<FromGuest>;
  readonly #logger = new Logger("silent");
  readonly #slices = new Map<string, ServerSlice>();
  readonly #invokers = new Map<string, Invoker>();
  readonly #streams = new Map<number, ReadableStreamDefaultReader<Uint8Array>>();
  readonly #calls = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #decoder = new TextDecoder();
  readonly #compatibility = Promise.withResolvers<ErrorDescriptor | undefined>();
  #statics = new StaticTable();
  #config: Config | undefined;
  #everySlice = new Set<string>();
  #nextCall = 0;
  #lastTasks = "";
  #lastBackground = "";
  #name = "";
  #registry: Registry | undefined;
  #databaseAttached = false;
  #logBudget: LogBudget = this.#budget(1000);

  /** Log records per second this guest sends; what it drops is reported in one record. */
  #budget(rate: number): LogBudget {
    return new LogBudget(rate, (dropped) =>
      this.#channel.send({
        t: "log",
        level: "warning",
        source: this.#name || "guest",
        message:
          `${dropped} log record(s) dropped in the guest (server.sandbox_log_rate = ${rate}/s)`,
      }));
  }

  /** @param port where batches to the server go */
  constructor(port: GuestPort) {
    this.#channel = new Channel<FromGuest>((batch) => port.post(batch));
    this.#logger.onRecord(({ level, source, message, requestId }) => {
      // Dropped here already: a flood must not fill this guest's memory and the channel with
      // records the server drops anyway (it holds the same budget, which a guest cannot lift).
      if (!this.#logBudget.allow()) return;
      this.#channel.send({
        t: "log",
        level,
        source,
        message: message.slice(0, 16 * 1024),
        ...(requestId === undefined ? {} : { requestId }),
      });
    });
    setInterval(() => this.#beat(), HEARTBEAT_MS);
  }

  /** The logger of this guest: records cross to the server. */
  get logger(): Logger {
    return this.#logger;
  }

  /** Takes a batch from the server. */
  receive(batch: Batch): void {
    this.#channel.acknowledgeSoon();
    for (const message of decodeHostBatch(batch)) this.#dispatch(message);
  }

  #dispatch(message: ToGuest): void {
    switch (message.t) {
      case "api":
        // Log lines written while handling it carry the request's id, as in the server.
        if (isRequestId(message.requestId)) {
          void runWithRequestId(message.requestId, (m) => this.#api(m), message);
        } else void this.#api(message);
        return;
      case "req":
        if (isRequestId(message.requestId)) {
          void runWithRequestId(message.requestId, (m) => this.#request(m), message);
        } else void this.#request(message);
        return;
      case "call":
        void this.#call(message);
        return;
      case "pull":
        void this.#pull(message.id);
        return;
      case "cancel":
        this.#streams.get(message.id)?.cancel().catch(() => {});
        this.#streams.delete(message.id);
        return;
      case "svc":
        void this.#serve(message);
        return;
      case "svcres":
      case "dbres": {
        // The answer to a call this guest made (a service of another slice, its database).
        const call = this.#calls.get(message.id);
        this.#calls.delete(message.id);
        if (!call) return;
        if (message.error !== undefined) call.reject(new Error(message.error));
        else call.resolve(message.body ? unpackValue(message.body) : undefined);
        return;
      }
      case "migrate":
        void this.#migrate(message);
        return;
      case "status":
        void this.#status(message);
        return;
      case "compat":
        this.#compatibility.resolve(message.error);
        return;
      case "load":
        void this.#load(message);
        return;
    }
  }

  /** What this guest uses, for the server's metrics (sent once a second). */
  #usage(): { cpuSeconds: number; rssBytes: number; heapUsedBytes: number } {
    const cpu = process.cpuUsage();
    const memory = Deno.memoryUsage();
    return {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
    };
  }

  #beats = 0;

  #beat(): void {
    const usage = ++this.#beats % 5 === 0 ? { usage: this.#usage() } : {};
    const tasks: Record<string, ReturnType<ServerSlice["scheduledTasks"]>> = {};
    const background: Record<string, BackgroundCounts> = {};
    for (const [name, slice] of this.#slices) {
      tasks[name] = slice.scheduledTasks();
      background[name] = slice[INTERNALS].backgroundCounts();
    }
    // Task lists cross only when they changed: a heartbeat costs the same with 1 or 1,000 tasks.
    const text = JSON.stringify(tasks);
    const counts = JSON.stringify(background);
    const changed = {
      ...(text === this.#lastTasks ? {} : { tasks }),
      ...(counts === this.#lastBackground ? {} : { background }),
    };
    this.#lastTasks = text;
    this.#lastBackground = counts;
    this.#channel.send({ t: "beat", ...changed, ...usage });
  }

  async #load(message: Extract<ToGuest, { t: "load" }>): Promise<void> {
    this.#name = message.name;
    const env = message.env;
    const config = new Config(
      [new Map(message.config.map(([s, o]) => [s, new Map(o)]))],
      (name) => env[name],
    );
    this.#config = config;
    this.#logBudget.close();
    this.#logBudget = this.#budget(message.logRate);
    const registry = new Registry(config);
    this.#registry = registry;
    const spec: ExtensionSpec = {
      name: message.name,
      specifier: message.specifier,
      origin: "path",
    };
    let module: ExtensionModule;
    try {
      module = await importExtension(spec);
    } catch (error) {
      this.#channel.send({
        t: "loaded",
        importFailed: true,
        error: describe(error),
        slices: [],
        methods: [],
      });
      return;
    }
    try {
      const { version, methods } = await setUpExtension(
        spec,
        module,
        registry.contextFor(message.name),
        { coreRange: message.coreRange, version: message.version, file: message.manifest },
        async (exported) => {
          this.#channel.send({
            t: "compat",
            exported: typeof exported === "string"
              ? exported
              : exported === undefined
              ? null
              : false,
          });
          const error = await this.#compatibility.promise;
          if (error) {
            throw new ExtensionError(
              isErrorCode(error.code) ? error.code : "extension.incompatible",
              error.message,
            );
          }
        },
      );
      // Locations declared before the slices cross go with them; later ones follow as mounts.
      const declared = new Map<string, { location: string; start: boolean }[]>(
        registry.slices.map((slice) => [slice.name, []]),
      );
      attachSlices(registry.slices, this.#logger, (mount, slice) => {
        this.#statics.add(mount, slice.name);
        const announced = {
          location: mount.location,
          start: mount.kind === "directory" && mount.start,
        };
        const early = declared.get(slice.name);
        if (early) early.push(announced);
        else this.#channel.send({ t: "mount", slice: slice.name, ...announced });
      });
      for (const slice of registry.slices) this.#slices.set(slice.name, slice);
      const routes = collectRoutes(registry.slices, [{ name: message.name, methods }]);
      for (const route of routes) {
        this.#invokers.set(
          routeKey(route.method),
          new Invoker(route, this.#logger.child(message.name)),
        );
      }
      this.#channel.send({
        t: "loaded",
        version,
        slices: registry.slices.map((slice) => ({
          name: slice.name,
          dependencies: slice.getDependencies(),
          dependedBy: slice.getDependedBy(),
          handles: routes.filter((r) => r.slice === slice).map((r) => descriptor(r.method)),
          services: serviceNames(slice),
          mounts: declared.get(slice.name) ?? [],
        })),
        methods: methods.map(descriptor),
        features: registry.featureOwner ? registry.featureManager.getFeatures() : undefined,
        migrations: Object.keys(registry.migrations(message.name) ?? {}).length > 0,
      });
      declared.clear();
    } catch (error) {
      this.#slices.clear();
      this.#channel.send({ t: "loaded", error: describe(error), slices: [], methods: [] });
    }
  }

  /** What `prestart` of `slice` receives: local slices directly, others through the server. */
  #view(slice: ServerSlice): SliceServer {
    return sliceView(
      slice,
      this.#config!,
      (name) => this.#slices.get(name),
      (name) => this.#everySlice.has(name) || this.#slices.has(name),
      (to, member, args) =>
        this.#ask((id) => ({ t: "svc", id, from: slice.name, to, member, body: packValue(args) })),
    );
  }

  /** Sends one request for the extension's own database; the server runs it. */
  #sendDatabase = (request: DatabaseRequest): Promise<DatabaseResponse> =>
    this.#ask((id) => ({ t: "db", id, body: packValue(request) })) as Promise<DatabaseResponse>;

  /** Answers server request `id` with what `work` gives (or the error it throws). */
  async #answer(id: number, work: () => unknown): Promise<void> {
    try {
      this.#channel.send({ t: "svcres", id, body: packValue(await work()) });
    } catch (error) {
      this.#channel.send({ t: "svcres", id, error: describe(error).message, body: null });
    }
  }

  /** Sends a call of this guest to the server; resolves with the value of its answer. */
  #ask(message: (id: number) => FromGuest): Promise<unknown> {
    const id = ++this.#nextCall;
    const call = Promise.withResolvers<unknown>();
    this.#calls.set(id, call);
    this.#channel.send(message(id));
    return call.promise;
  }

  /** A slice's `getStatus()`; the server bounds how long it waits and checks what it gets. */
  #status(message: Extract<ToGuest, { t: "status" }>): Promise<void> {
    return this.#answer(message.id, () => this.#slices.get(message.slice)?.getStatus() ?? {});
  }

  #migrate(message: Extract<ToGuest, { t: "migrate" }>): Promise<void> {
    return this.#answer(message.id, async () => {
      // Loaded when needed: a guest without a database does not load Kysely.
      const { migrateGuest } = await import("../database/guest.ts");
      return await migrateGuest(
        this.#registry?.migrations(this.#name),
        this.#name,
        message.version,
        message.dialect,
        this.#sendDatabase,
      );
    });
  }

  async #call(message: Extract<ToGuest, { t: "call" }>): Promise<void> {
    const slice = this.#slices.get(message.slice);
    if (message.slices) this.#everySlice = new Set(message.slices);
    if (message.features) this.#registry?.followFeatures(new FeatureList(message.features));
    if (message.dialect && !this.#databaseAttached) {
      // Before the first prestart: `this.database` is there from prestart on. Loaded when needed:
      // a guest without a database does not load Kysely.
      this.#databaseAttached = true;
      const { attachGuestDatabase } = await import("../database/guest.ts");
      attachGuestDatabase(
        [...this.#slices.values()],
        this.#name,
        message.dialect,
        this.#sendDatabase,
      );
    }
    try {
      if (!slice) throw new SliceError("sandbox.slice", `no slice ${message.slice} here`);
      await runPhase(slice, message.op, message.until, this.#logger, this.#view(slice));
      this.#channel.send({ t: "done", id: message.id });
    } catch (error) {
      if (error instanceof Error && error.stack) {
        this.#logger.child(message.slice).debug(error.stack);
      }
      this.#channel.send({ t: "done", id: message.id, error: describe(error) });
    }
  }

  /** A service call into one of this guest's slices, from a slice anywhere. */
  #serve(message: Extract<ToGuest, { t: "svc" }>): Promise<void> {
    return this.#answer(message.id, () => {
      const args = unpackValue(message.body);
      if (!Array.isArray(args)) throw new Error("service arguments are not a list");
      // The server checked the caller's dependencies; here the callee's own checks run again.
      return callService(
        (name) => this.#slices.get(name),
        { name: message.from, getDependencies: () => [message.to] },
        message.to,
        message.member,
        args,
      );
    });
  }

  /** A request for static content: API calls come routed, as `api` messages. */
  async #request(message: Extract<ToGuest, { t: "req" }>): Promise<void> {
    let response: Response;
    const pathname = new URL(message.url).pathname;
    try {
      const request = new Request(message.url, {
        method: message.method,
        headers: message.headers,
        body: message.body,
      });
      response = await this.#statics.serve(request, pathname) ??
        errorResponse(404, `no such file: ${pathname}`);
    } catch (error) {
      this.#logger.error(
        `request ${message.method} ${pathname} failed: ${describe(error).message}`,
      );
      response = errorResponse(500, "internal server error");
    }
    await this.#respond(message.id, response);
  }

  /** An API call the server routed: no Request, no router, no Response unless needed. */
  async #api(message: Extract<ToGuest, { t: "api" }>): Promise<void> {
    const { url, method } = message;
    const query = url.indexOf("?");
    const invoker = this.#invokers.get(message.key);
    if (!invoker) {
      return this.#respond(
        message.id,
        errorResponse(404, "no such method"),
      );
    }
    const outcome = await invoker.invoke({
      method,
      path: url.slice(url.indexOf("/", url.indexOf("//") + 2), query >= 0 ? query : undefined),
      params: message.params,
      search: query >= 0 ? url.slice(query) : "",
      body: message.body ? this.#decoder.decode(message.body) : "",
      request: () => new Request(url, { method, headers: message.headers, body: message.body }),
    });
    if ("json" in outcome) {
      this.#channel.send({ t: "json", id: message.id, status: outcome.status, json: outcome.json });
    } else {
      await this.#respond(message.id, outcome.response);
    }
  }

  async #respond(id: number, response: Response): Promise<void> {
    const status = response.status;
    const headers = [...response.headers];
    const length = Number(response.headers.get("content-length") ?? NaN);
    const longLived = isStreaming(response);
    if (!response.body || (!longLived && length <= BUFFERED)) {
      const body = response.body ? await response.arrayBuffer() : null;
      this.#channel.send({ t: "res", id, status, headers, body });
      return;
    }
    this.#streams.set(id, response.body.getReader());
    this.#channel.send({ t: "res", id, status, headers, body: null, stream: true, longLived });
  }

  async #pull(id: number): Promise<void> {
    const reader = this.#streams.get(id);
    if (!reader) return;
    try {
      const { done, value } = await reader.read();
      if (done) {
        this.#streams.delete(id);
        this.#channel.send({ t: "end", id });
        return;
      }
      // A buffer of exactly this chunk (a view may share a larger one).
      this.#channel.send({ t: "chunk", id, body: value.slice().buffer });
    } catch (error) {
      this.#streams.delete(id);
      this.#channel.send({ t: "end", id, error: describe(error).message });
    }
  }
}

/**
 * Removes what guests of one process would share with each other or with the server: the Cache
 * API, Web Storage and BroadcastChannel (a Worker's are its process's).
 */
export function removeSharedState(): void {
  for (const name of ["caches", "localStorage", "sessionStorage", "BroadcastChannel"]) {
    try {
      delete (globalThis as Record<string, unknown>)[name];
    } catch {
      // not configurable here: nothing to share
    }
  }
}

/**
 * Makes the guest's `console` write log records of the guest (source `<extension>.console`),
 * which cross the channel: a process guest's stdout is the channel, and a Worker's console is
 * the server's own output.
 */
export function routeConsole(guest: Guest): void {
  const log = guest.logger.child("console");
  const format = (args: unknown[]) =>
    args.map((a) => typeof a === "string" ? a : Deno.inspect(a, { depth: 4 })).join(" ");
  Object.assign(console, {
    log: (...args: unknown[]) => log.info(format(args)),
    info: (...args: unknown[]) => log.info(format(args)),
    debug: (...args: unknown[]) => log.debug(format(args)),
    warn: (...args: unknown[]) => log.warning(format(args)),
    error: (...args: unknown[]) => log.error(format(args)),
  });
}

/**
 * Takes from a Worker guest what Deno lets any code do to its own process without a permission,
 * which in a Worker is the server's: signal it (`Deno.kill(Deno.pid)`, `process.kill`), move its
 * working directory into a folder the guest may read (its own), prompt at its terminal for more
 * permissions, use its standard streams, or start Workers whose fresh scope has no guard. Locked (not writable, not configurable) before the extension's code
 * runs. `node:worker_threads` still starts Workers: the README says what worker mode cannot hold.
 */
export function guardSharedProcess(): void {
  const self = Deno.pid;
  const refuse = (what: string): never => {
    throw new Deno.errors.NotCapable(
      `${what} is refused: this extension runs in the server's process (isolation = worker)`,
    );
  };
  const lock = (target: object, name: string | symbol, value: unknown) =>
    Object.defineProperty(target, name, { value, writable: false, configurable: false });
  const kill = Deno.kill;
  lock(Deno, "kill", (pid: number, signal?: Deno.Signal) => {
    if (pid === self) refuse(`Deno.kill(${pid})`);
    return kill(pid, signal);
  });
  lock(Deno, "chdir", () => refuse("Deno.chdir()"));
  // Deno's internals (`core.ops` among them) would reach the operations behind these guards.
  lock(Deno, (Deno as unknown as { internal: symbol }).internal, undefined);
  // A prompt would ask the operator at the server's terminal, in the server's name.
  lock(Deno.permissions, "request", () => refuse("Deno.permissions.request()"));
  lock(Deno.permissions, "requestSync", () => refuse("Deno.permissions.requestSync()"));
  // The server's own standard streams: its terminal, its log (the console goes to the channel).
  for (const stream of ["stdin", "stdout", "stderr"]) {
    Object.defineProperty(Deno, stream, {
      get: () => refuse(`Deno.${stream}`),
      configurable: false,
    });
  }
  const nodeKill = process.kill.bind(process);
  lock(process, "kill", (pid: number, signal?: string | number) => {
    if (pid === self) refuse(`process.kill(${pid})`);
    return nodeKill(pid, signal);
  });
  for (const name of ["Worker", "SharedWorker"]) {
    try {
      delete (globalThis as Record<string, unknown>)[name];
    } catch {
      // not configurable here
    }
  }
}
