/**
 * The server: configuration → discovery → loading → slice graph → lifecycle → HTTP.
 *
 * @module
 */
import { Registry } from "./application.ts";
import type { Authenticator } from "./auth/auth.ts";
import { registerAuthOptions } from "./auth/options.ts";
import type { Config } from "./config/config.ts";
import { registerCoreOptions } from "./core/options.ts";
import type { DatabaseSlice } from "./database/database_slice.ts";
import { registerDatabaseOptions } from "./database/options.ts";
import type { CoreView, Health } from "./core/slices.ts";
import { sliceStatus } from "./core/status.ts";
import {
  ConfigError,
  describeError,
  ExtensionError,
  HttpError,
  InmantaError,
  OwnershipError,
} from "./errors.ts";
import { resolve } from "node:path";
import {
  availableExtensions,
  checkExtensionName,
  discoverExtensions,
  type ExtensionSpec,
} from "./extensions/discovery.ts";
import type { ExtensionLoader } from "./extensions/loader.ts";
import { extensionRecord, type LoadedExtension } from "./extensions/module.ts";
import { checkPackage, resolvePackage } from "./extensions/package_info.ts";
import { PackageStore } from "./extensions/packages.ts";
import { serveRemoteFoldersWith, StaticTable } from "./http/static.ts";
import { configureRemoteStatic, remoteStatic } from "./http/static_remote.ts";
import { HttpTransport } from "./http/transport.ts";
import type { AppOptions } from "./http/api.ts";
import { Logger, parseLogFormat } from "./log.ts";
import type { MetricsModule, MetricsService } from "./metrics/service.ts";
import { SandboxMetrics } from "./metrics/sandboxes.ts";
import { handlersOf } from "./protocol/method.ts";
import { collectRoutes, type Route } from "./protocol/routes.ts";
import type { openApiDocument } from "./protocol/openapi.ts";
import { startOrder } from "./slices/graph.ts";
import { Lifecycle } from "./slices/lifecycle.ts";
import { attachSlices, callService, sliceView } from "./slices/runtime.ts";
import { INTERNALS, type ServerSlice, type SliceServer } from "./slices/slice.ts";
import { PRODUCT, VERSION } from "./version.ts";

const ABORTED = new WeakSet<object>();

/**
 * Whether `error` stopped start-up because its extension's `boot_failure` is `abort`, so that
 * the command line's one line can name the policy.
 */
export function abortedByBootFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && ABORTED.has(error);
}

/** Where the server is in its life. */
export type ServerState = "created" | "starting" | "running" | "stopping" | "stopped" | "failed";

/** How to build a server. */
export interface ServerOptions {
  /** The loaded configuration. */
  config: Config;
  /** Logger; one at the configured level by default. */
  logger?: Logger;
  /** Extensions given as imported modules (run in-process), by name; for tests and embedding. */
  modules?: Record<string, unknown>;
}

/** One server: create it with a configuration, `start()` it, `stop()` it. */
export class Server {
  /** The configuration. */
  readonly config: Config;
  /** The server's logger. */
  readonly logger: Logger;
  #loader: ExtensionLoader | undefined;
  readonly #registry: Registry;
  readonly #statics = new StaticTable();
  #state: ServerState = "created";
  #extensions: LoadedExtension[] = [];
  #order: ServerSlice[] = [];
  #routes: Route[] = [];
  #lifecycle: Lifecycle | undefined;
  #transport: HttpTransport | undefined;
  #deadline = 0;
  #stopped: Promise<void> | undefined;
  readonly #modules: Record<string, unknown>;
  #metrics: MetricsService | undefined;
  #auth: Authenticator | undefined;
  /**
   * Where the sandbox host reports each sandbox's CPU, memory, state and restarts, for
   * `/metrics` and the console (see {@link SandboxMetrics}).
   */
  readonly sandboxMetrics: SandboxMetrics = new SandboxMetrics();

  /**
   * Makes a server; `start()` starts it.
   *
   * @param options configuration, logger and host
   */
  constructor(options: ServerOptions) {
    this.config = options.config;
    this.logger = options.logger ?? new Logger();
    this.#modules = options.modules ?? {};
    this.#registry = new Registry(this.config);
    registerCoreOptions(this.config);
    registerAuthOptions(this.config);
    registerDatabaseOptions(this.config);
  }

  /**
   * `core.database` (its `host` runs extensions' statements; a sandbox's channel hands them to it).
   *
   * @ignore internal to the server and its sandboxes
   */
  get database(): DatabaseSlice | undefined {
    return this.#database;
  }

  /** Current state. */
  get state(): ServerState {
    return this.#state;
  }

  /** The loaded extensions, core first. */
  get extensions(): readonly LoadedExtension[] {
    return this.#extensions;
  }

  /** The slices in start order (registration order before start). */
  get slices(): readonly ServerSlice[] {
    return this.#order.length > 0 ? this.#order : this.#registry.slices;
  }

  /** The addresses the server listens on, once started. */
  get addresses(): Deno.NetAddr[] {
    return this.#transport?.addresses ?? [];
  }

  /** `http://host:port` of the first address, once started. */
  get url(): string {
    const addr = this.addresses[0];
    if (!addr) throw new InmantaError("server.not_listening", "the server is not listening");
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    const scheme = this.#transport?.tls ? "https" : "http";
    return `${scheme}://${host === "0.0.0.0" ? "127.0.0.1" : host}:${addr.port}`;
  }

  /** The slice with this name. */
  getSlice<T extends ServerSlice = ServerSlice>(name: string): T {
    const slice = this.#registry.get(name);
    if (!slice) {
      throw new InmantaError("slice.not_found", `slice ${name} is not loaded`);
    }
    return slice as T;
  }

  /**
   * Loads the extensions, orders the slices and starts them. Any failure is an InmantaError
   * naming the file, option, extension or slice; what started is stopped again first.
   */
  async start(): Promise<void> {
    if (this.#state !== "created") {
      throw new InmantaError("server.state", `server cannot start: it is ${this.#state}`);
    }
    this.#state = "starting";
    try {
      // Loaded on start: an extension's `import "@inmanta/server"` then stays light in its
      // sandbox (no router, no token code, no sandbox host, no core slices of its own).
      const lookup = (name: string) => this.#registry.get(name);
      this.#loader = new (await import("./extensions/loader.ts")).ExtensionLoader({
        config: this.config,
        log: this.logger,
        callService: (from, to, member, args) => callService(lookup, from, to, member, args),
        sliceNames: () => this.#registry.slices.map((s) => s.name),
        database: () => this.#database?.host,
        metrics: this.sandboxMetrics,
        rerun: (slices) => this.#lifecycle!.rerun(slices, (slice) => this.#sliceView(slice)),
        features: () => this.#registry.featureManager.getFeatures(),
      });
      const { buildApp } = await import("./http/api.ts");
      this.#openApi = (await import("./protocol/openapi.ts")).openApiDocument;
      this.config.validate();
      // Files the configuration names are read now, before any extension code runs: an
      // in-process extension could move the working directory under a relative path.
      const tls = await readTls(this.config);
      const auth = await authenticator(this.config);
      serveRemoteFoldersWith(remoteStatic);
      configureRemoteStatic({
        store: () => this.#packageStore((message) => this.logger.warning(message)),
        error: (message) => this.logger.error(message),
      });
      this.#configureLog();
      // Loaded on start, as the HTTP application is: prom-client stays out of programs that only
      // import the library.
      const { ServerMetrics }: MetricsModule = await import("./metrics/registry.ts");
      this.#metrics = new ServerMetrics({
        slices: () => this.slices,
        extensions: () => this.#extensions,
      }, this.sandboxMetrics);
      await this.#load();
      // Again with the options the extensions registered.
      this.config.validate();
      this.#routes = this.#claimUrls();
      this.#order = startOrder(
        this.#registry.slices,
        this.logger,
        (slice) => handlersOf(slice).length > 0 || slice[INTERNALS].mounts.length > 0,
      );
      this.logger.debug(`start order: ${this.#order.map((s) => s.name).join(", ")}`);
      attachSlices(
        this.#order,
        this.logger,
        (mount, slice) => this.#statics.add(mount, slice.name),
      );
      this.#auth = auth;
      const { withRequestIds } = await import("./requests.ts");
      const accessLog = this.config.bool("log", "access_log");
      this.#transport = new HttpTransport({
        addresses: this.config.list("server", "bind_address"),
        port: this.config.int("server", "bind_port"),
        tls,
        handler: withRequestIds(
          buildApp({
            routes: this.#routes,
            statics: this.#statics,
            log: this.logger,
            maxBodySize: this.config.int("server", "max_body_size"),
            bodyTimeout: this.config.duration("server", "request_body_timeout"),
            auth,
            instrument: await this.#instrument(accessLog),
          }),
          accessLog ? this.logger.child("access") : undefined,
        ),
        log: this.logger.child("core.transport"),
        stopping: (request) => this.#answerWhileStopping(request),
      });
      this.#lifecycle = new Lifecycle(
        this.#order,
        this.logger,
        {
          start: this.config.duration("server", "slice_start_timeout"),
          stop: this.config.duration("server", "slice_stop_timeout"),
        },
        (slice) =>
          slice.extensionName !== "core" && this.#bootFailure(slice.extensionName) === "continue",
      );
      await this.#lifecycle.start((slice) => this.#sliceView(slice));
      // An extension one of whose slices failed under boot_failure = continue is failed too.
      for (const slice of this.#order) {
        const extension = this.#extensions.find((e) => e.name === slice.extensionName);
        if (slice.state === "failed" && extension && extension.status !== "failed") {
          extension.status = "failed";
          extension.failure = `slice ${slice.name}: ${slice[INTERNALS].failure}`;
        }
      }
      this.#state = "running";
    } catch (error) {
      this.#state = "failed";
      await this.#database?.stop().catch(() => {});
      await this.#transport?.close();
      this.#loader?.close();
      throw error;
    }
  }

  /** What `prestart` of `slice` receives. */
  #sliceView(slice: ServerSlice): SliceServer {
    const lookup = (name: string) => this.#registry.get(name);
    return sliceView(slice, this.config, lookup, (name) => lookup(name) !== undefined);
  }

  #openApi?: typeof openApiDocument;
  #database: DatabaseSlice | undefined;

  /**
   * Collects the routes and checks URL and static-location ownership in registration order (core
   * first): an extension that claims what another owns fails by its boot_failure policy.
   */
  #claimUrls(): Route[] {
    for (;;) {
      try {
        const slices = this.#registry.slices;
        const routes = collectRoutes(slices, this.#extensions.filter((e) => e.status === "loaded"));
        const trial = new StaticTable();
        for (const slice of slices) {
          for (const mount of slice[INTERNALS].mounts) trial.add(mount, slice.name);
        }
        return routes;
      } catch (error) {
        if (!(error instanceof OwnershipError)) throw error;
        if (this.#bootFailure(error.extension) === "abort") throw error;
        this.logger.error(
          `extension ${error.extension} failed (boot_failure = continue): ${error.message}`,
        );
        this.#registry.removeExtension(error.extension);
        this.#loader?.sandboxes.find((s) => s.name === error.extension)?.terminate();
        const record = this.#extensions.find((e) => e.name === error.extension);
        if (record) {
          record.status = "failed";
          record.failure = error.message;
        }
      }
    }
  }

  /** Sets `log.format` on the server's logger. */
  #configureLog(): void {
    const format = this.config.string("log", "format");
    try {
      this.logger.setFormat(parseLogFormat(format));
    } catch (error) {
      throw new ConfigError(
        "config.log_format",
        `log.format = ${format}: ${(error as Error).message}`,
      );
    }
  }

  /**
   * Counts each route's requests (`server.metrics`) and names its route in the access log:
   * one wrapper per route, made here once, none when both are off.
   */
  async #instrument(accessLog: boolean): Promise<AppOptions["instrument"]> {
    const counting = this.config.bool("server", "metrics");
    if (!counting && !accessLog) return undefined;
    const { instrument, RouteMetrics } = await import("./metrics/routes.ts");
    return (route, endpoint) => {
      const labels = [
        route.slice.extensionName,
        route.slice.name,
        route.method.url,
        route.method.operation,
      ] as const;
      const metrics = counting ? this.#metrics!.route(...labels) : new RouteMetrics(...labels);
      return instrument(endpoint, metrics, accessLog);
    };
  }

  /** `GET /metrics`: behind authentication when `server.auth` is on, unless `metrics_open`. */
  async #serveMetrics(request: Request): Promise<Response> {
    if (new URL(request.url).pathname !== "/metrics") {
      return Response.json({ message: "no such metrics page: use /metrics" }, { status: 404 });
    }
    if (this.#auth && !this.config.bool("server", "metrics_open")) {
      try {
        await this.#auth.check(request, ["api"]);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        return Response.json({ message: error.message }, { status: error.status });
      }
    }
    const text = await this.#metrics!.exposition();
    return new Response(request.method === "HEAD" ? null : text, {
      headers: { "content-type": this.#metrics!.contentType },
    });
  }

  async #load(): Promise<void> {
    const { CoreServerSlice, TransportSlice } = await import("./core/slices.ts");
    const coreProtocol = await import("./core/protocol.ts");
    const view = this.#coreView();
    this.#registry.register(new TransportSlice(view), "core");
    this.#registry.register(new CoreServerSlice(view), "core");
    const { DatabaseSlice } = await import("./database/database_slice.ts");
    this.#database = new DatabaseSlice({
      slices: () => this.#registry.slices,
      extensions: () => this.#extensions.filter((e) => e.status !== "failed"),
      migrations: (extension) => this.#registry.migrations(extension),
      migrateRemote: (extension, dialect) => this.#loader?.migrate(extension, dialect),
      remoteMigrations: (extension) => this.#loader?.hasMigrations(extension) ?? false,
      bootFailure: (extension) => this.#bootFailure(extension),
      address: () => (this.addresses.length > 0 ? this.url : "starting"),
    });
    this.#registry.register(this.#database, "core");
    this.#extensions.push({
      name: "core",
      version: VERSION,
      source: "builtin",
      isolation: "none",
      permissions: "all of the server's",
      status: "loaded",
      methods: Object.values(coreProtocol),
    });
    const names = [...new Set(this.config.list("server", "enabled_extensions"))]
      .filter((n) => n !== "core");
    names.forEach(checkExtensionName);
    const { registerExtensionOptions } = await import("./extensions/loader.ts");
    for (const name of names) registerExtensionOptions(this.config, name);
    if (names.length === 0) await this.#hintAvailable();
    // Found one by one, so that an extension that is not found is one failing extension, by
    // its boot_failure, as an import error is.
    const specs: (ExtensionSpec | { name: string; error: unknown })[] = [];
    for (const name of names) {
      try {
        specs.push(...await discoverExtensions(this.config, [name], this.#modules));
      } catch (error) {
        specs.push({ name, error });
      }
    }
    const loader = this.#loader!;
    const found = specs.filter((spec): spec is ExtensionSpec => !("error" in spec));
    // Before preload: a range is pinned to the newest matching version, which Deno then fetches.
    await Promise.all(found.map((spec) => this.#resolvePackage(spec)));
    for (const spec of found) loader.preload(spec);
    for (const spec of specs) {
      let loaded: LoadedExtension;
      try {
        if ("error" in spec) throw spec.error;
        this.logger.debug(`loading extension ${spec.name} from ${spec.specifier}`);
        checkPackage(spec);
        loaded = await loader.load(spec, this.#registry.contextFor(spec.name));
        if (spec.package) loaded.version = spec.package.version;
        if (spec.source) loaded.source = spec.source;
      } catch (error) {
        loaded = this.#failedToLoad(spec, error);
      }
      // A host may report a failed extension instead of throwing (a sandbox whose module could
      // not be imported): the same policy applies, whatever the isolation.
      if (loaded.status === "failed" && !("error" in spec)) {
        const known = this.#failedToLoad(
          spec,
          new ExtensionError("extension.load_failed", loaded.failure ?? "failed to load"),
        );
        loaded = { ...loaded, failure: known.failure };
      }
      this.#extensions.push(loaded);
      if (loaded.status === "loaded") {
        this.logger.info(`extension ${loaded.name} ${loaded.version} loaded from ${loaded.source}`);
      }
    }
  }

  /** The cache of remote packages (`server.package_cache`), relative to the working directory. */
  #packageStore(warn: (message: string) => void): PackageStore {
    const cache = this.config.string("server", "package_cache");
    return new PackageStore(cache ? resolve(cache) : undefined, warn);
  }

  /** Pins a remote extension to a version; without the registry nor a cache, Deno decides. */
  async #resolvePackage(spec: ExtensionSpec): Promise<void> {
    if (spec.origin !== "jsr" && spec.origin !== "url") return;
    const warn = (message: string) => this.logger.warning(`extension ${spec.name}: ${message}`);
    try {
      await resolvePackage(spec, this.#packageStore(warn));
    } catch (error) {
      warn(`${(error as Error).message}; importing ${spec.specifier} as Deno resolves it`);
    }
  }

  /**
   * Applies `boot_failure` to an extension that could not be found, imported or set up: with
   * `abort` the error is thrown (and {@link abortedByBootFailure} says why); with `continue` the
   * log says so, its slices are dropped and it is listed as failed.
   */
  #failedToLoad(
    spec: ExtensionSpec | { name: string; error: unknown },
    error: unknown,
  ): LoadedExtension {
    const reason = describeError(error).split("\n")[0];
    const policy = this.#bootFailure(spec.name);
    if (policy === "abort") {
      const thrown = error instanceof InmantaError
        ? error
        : new ExtensionError("extension.load_failed", reason, { cause: error });
      ABORTED.add(thrown);
      throw thrown;
    }
    this.logger.error(
      `extension ${spec.name} failed to load (boot_failure = continue: the rest starts): ${reason}`,
    );
    this.#registry.removeExtension(spec.name);
    if ("error" in spec) {
      return {
        name: spec.name,
        version: "unknown",
        source: "not found",
        isolation: "none",
        permissions: "",
        status: "failed",
        failure: reason,
        methods: [],
      };
    }
    let isolation: LoadedExtension["isolation"] = "none";
    try {
      isolation = this.#loader!.isolation(spec);
    } catch {
      // its isolation option is what failed
    }
    const record = extensionRecord(spec, {
      isolation,
      permissions: "",
      failure: reason,
      version: spec.package?.version,
    });
    if (spec.source) record.source = spec.source;
    return record;
  }

  /**
   * With no extension enabled, names the ones found on `server.extension_path` and the option
   * that enables them, as Inmanta's bootloader does.
   */
  async #hintAvailable(): Promise<void> {
    const found = await availableExtensions(this.config);
    if (found.length === 0) return;
    this.logger.warning(
      `extensions found on server.extension_path but none enabled: ${
        found.join(", ")
      }; enable them with server.enabled_extensions = ${found.join(",")}`,
    );
  }

  /** What a request gets once shutdown began: 503, with the health for health checks. */
  #answerWhileStopping(request: Request): Response | undefined {
    if (new URL(request.url).pathname !== "/api/v2/health") return undefined;
    return Response.json(
      { data: this.#health(), message: "server is stopping" },
      { status: 503, headers: { connection: "close", "cache-control": "no-store" } },
    );
  }

  #health(): Health {
    const failed = this.#extensions.filter((e) => e.status === "failed").map((e) => e.name);
    if (this.#state === "stopping" || this.#state === "stopped") {
      return { status: "stopping", failed };
    }
    // The port opens only once every slice started, so "not started" here means failed.
    const up = failed.length === 0 && this.#order.every((s) => s.state === "started");
    return { status: up ? "up" : "degraded", failed };
  }

  #coreView(): CoreView {
    return {
      status: async () => ({
        product: PRODUCT,
        version: VERSION,
        extensions: this.#extensions.map((
          { name, version, source, isolation, permissions, status, failure },
        ) => {
          const sandbox = this.#loader?.sandboxes.find((s) => s.name === name);
          return {
            name,
            version,
            source,
            isolation,
            permissions,
            status,
            reason: status === "failed" ? failure ?? "failed" : null,
            schema_version: this.#database?.schemaVersion(name) ?? null,
            restarts: sandbox?.restarts ?? 0,
            last_failure: sandbox?.lastFailure ?? (status === "failed" ? failure ?? null : null),
          };
        }),
        ...(this.#database?.instances() ? { instances: this.#database.instances() } : {}),
        slices: await Promise.all(this.slices.map(async (s) => ({
          name: s.name,
          state: s.state,
          status: await sliceStatus(s, this.logger),
          dependencies: s.getDependencies(),
          dependedBy: s.getDependedBy(),
          reason: s[INTERNALS].failure ?? null,
        }))),
        features: this.#registry.featureManager.getFeatures(),
      }),
      health: () => this.#health(),
      tasks: () =>
        this.slices.flatMap((slice) =>
          slice.scheduledTasks().map((task) => ({ slice: slice.name, ...task }))
        ),
      openApi: () =>
        this.#openApi!(
          this.#routes.map((r) => ({ method: r.method, slice: r.slice.name })),
          { title: PRODUCT, version: VERSION },
          { servers: [this.url], auth: this.config.bool("server", "auth") },
        ),
      transport: () => this.#transport!,
      shutdownDeadline: () => this.#deadline,
      metrics: (request) => this.#serveMetrics(request),
      extensionMetrics: () => this.#metrics!.summary(),
    };
  }

  /** `abort` or `continue`: what a failing extension does to start-up. */
  #bootFailure(extension: string): "abort" | "continue" {
    const own = this.config.string(`extension.${extension}`, "boot_failure");
    const value = own || this.config.string("server", "boot_failure");
    if (value !== "abort" && value !== "continue") {
      throw new ConfigError(
        "config.boot_failure",
        `${
          own ? `extension.${extension}` : "server"
        }.boot_failure = ${value}: use abort or continue`,
      );
    }
    return value;
  }

  /**
   * Shuts down gracefully: new requests get 503, prestop runs on every slice (the transport
   * drains requests in flight), then stop. Nothing waits past `server.shutdown_timeout`.
   * Calling it again returns the same promise.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    if (this.#state !== "running") {
      await this.#transport?.close();
      this.#loader?.close();
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#deadline = Date.now() + this.config.duration("server", "shutdown_timeout") * 1000;
    this.#loader?.endRestarts();
    this.#transport?.beginStopping();
    await this.#lifecycle!.stop(this.#deadline);
    this.#loader?.close();
    this.#state = "stopped";
    this.logger.info("server stopped");
  }
}

/** The certificate and key of `server.ssl_cert_file` / `server.ssl_key_file`, when both are set. */
async function readTls(config: Config): Promise<{ cert: string; key: string } | undefined> {
  const certFile = config.string("server", "ssl_cert_file");
  const keyFile = config.string("server", "ssl_key_file");
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new ConfigError(
      "config.tls",
      "server.ssl_cert_file and server.ssl_key_file must be set together",
    );
  }
  const read = async (option: string, file: string) => {
    try {
      return await Deno.readTextFile(file);
    } catch (error) {
      throw new ConfigError(
        "config.tls",
        `server.${option} = ${file}: ${(error as Error).message.split("\n")[0]}`,
      );
    }
  };
  return { cert: await read("ssl_cert_file", certFile), key: await read("ssl_key_file", keyFile) };
}

/** The token checker when `server.auth` is on (the JWT code is loaded only then). */
async function authenticator(config: Config): Promise<Authenticator | undefined> {
  if (!config.bool("server", "auth")) return undefined;
  return await (await import("./auth/auth.ts")).Authenticator.fromConfig(config);
}
