/**
 * One sandbox: the server's side of one extension's guest (a Worker or a subprocess). It sends
 * the guest its work, checks every message the guest sends before acting on it, and fails the
 * extension (never the server) when the guest misbehaves, dies or goes silent. With
 * `restart = on-failure` it starts a new guest after such a failure, and runs its slices'
 * prestart and start again: the proxies the server holds (routes, mounts, `Remote`s) stay the
 * same objects and reach the new guest.
 *
 * @module
 */
import type { ApplicationContext } from "../application.ts";
import type { Config } from "../config/config.ts";
import { describeError, ExtensionError, ProtocolError, SliceError } from "../errors.ts";
import type { ExtensionSpec } from "../extensions/discovery.ts";
import { checkCore } from "../extensions/compat.ts";
import { extensionRecord, type LoadedExtension, type PackageInfo } from "../extensions/module.ts";
import { type Feature, FeatureList } from "../features.ts";
import { readBody } from "../http/body.ts";
import { streaming } from "../http/transport.ts";
import type { Logger } from "../log.ts";
import { currentRequestId, isRequestId } from "../request_id.ts";
import { errorResponse } from "../http/errors.ts";
import type { BackgroundCounts, ScheduledTaskInfo } from "../scheduler/scheduler.ts";
import type { ServerSlice } from "../slices/slice.ts";
import type { DatabaseHost } from "../database/database_host.ts";
import type { SandboxMetrics, SandboxSample } from "../metrics/sandboxes.ts";
import type { MigrationOutcome } from "../database/migrations.ts";
import { Channel } from "./channel.ts";
import { describeGrant, type Grant } from "./grant.ts";
import type { GuestLink } from "./link.ts";
import {
  decodeGuestBatch,
  describe,
  type ErrorDescriptor,
  type FromGuest,
  packValue,
  rebuild,
  type SlicePhase,
  type ToGuest,
  unpackValue,
} from "./messages.ts";
import { AnswerTimeout, Exchange } from "./exchange.ts";
import { GuestCounts } from "./guest_counts.ts";
import { LogBudget, oneRecord } from "./log_budget.ts";
import { RelayLimit } from "./relay_limit.ts";
import { ProxySlice } from "./proxy_slice.ts";
import { Backoff, type RestartPolicy } from "./restart.ts";
import { watch } from "./watchdog.ts";

const JSON_HEADERS: HeadersInit = { "content-type": "application/json" };

/** What a sandbox needs from the server. */
export interface SandboxOptions {
  /** The extension. */
  spec: ExtensionSpec;
  /** `worker` or `process` (names it in the record). */
  isolation: "worker" | "process";
  /** Its grant. */
  grant: Grant;
  /** The server's configuration. */
  config: Config;
  /** The server's logger. */
  log: Logger;
  /** What the extension's deno.json says. */
  info: PackageInfo;
  /** The configuration the guest gets (no secrets, no other extension's section). */
  guestConfig: [string, [string, unknown][]][];
  /** The `INMANTA_*` overrides the guest may read. */
  env: Record<string, string>;
  /** Starts the guest's transport. */
  link: () => GuestLink;
  /** Largest resident size of a process guest, in KiB (undefined: not watched). */
  rssLimitKiB?: number;
  /** Makes a service call of one of this guest's slices to any slice. */
  callService(from: ServerSlice, to: string, member: string, args: unknown[]): Promise<unknown>;
  /** The names of every loaded slice (what a guest's getSlice may ask for). */
  sliceNames(): string[];
  /** What runs extensions' statements, once `core.database` is there. */
  database(): DatabaseHost | undefined;
  /** Where the sandbox's figures go (`/metrics`). */
  metrics?: SandboxMetrics;
  /** When to start a failed guest again (undefined: never). */
  restart?: RestartPolicy;
  /** The server's features, which the guest's slices see as their feature manager's. */
  features?(): Feature[];
  /** Runs prestart then start of these slices again, in start order (after a restart). */
  rerun?(slices: ServerSlice[]): Promise<void>;
}

/** One extension in one guest. */
export class Sandbox {
  readonly #options: SandboxOptions;
  readonly #proxies = new Map<string, ProxySlice>();
  readonly #requestTimeout: number;
  readonly #bodyTimeout: number;
  readonly #logBudget: LogBudget;
  readonly #log: Logger;
  /** The guest running now (undefined once it ended). */
  #link: GuestLink | undefined;
  #channel: Channel<ToGuest> | undefined;
  /** What the current guest owes: answers and streamed bodies. */
  #exchange = new Exchange(() => {});
  #loaded = Promise.withResolvers<Extract<FromGuest, { t: "loaded" }>>();
  #extension: LoadedExtension | undefined;
  #unwatch: (() => void) | undefined;
  /** When the current guest started (ms since epoch). */
  #startedAt = Date.now();
  /** Set while the extension waits for, or goes through, a restart: when to try, in ms. */
  #down: { retryAt: number } | undefined;
  #backoff: Backoff | undefined;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** False once the server ends the sandbox, or a restart cannot help. */
  #restartable = true;
  /** Whether every slice of the extension started once (only then is a failure restarted). */
  #everStarted = false;
  /** Guests started after the first. */
  restarts = 0;
  /** Why the last guest failed, if one did. */
  lastFailure: string | undefined;
  /** When the guest last said it is alive (ms since epoch). */
  lastBeat: number = Date.now();
  /** Whether the guest said anything yet. */
  heard = false;
  /** Task figures of the slices, over all guests. */
  readonly #counts = new GuestCounts();
  /** Scheduled tasks of each slice, as of the last heartbeat that carried them. */
  get tasks(): Record<string, ScheduledTaskInfo[]> {
    return this.#counts.tasks;
  }
  /** Background task counts of each slice, as of the last heartbeat that carried them. */
  get background(): Record<string, BackgroundCounts> {
    return this.#counts.background;
  }
  /** Why the current guest failed, once it did. */
  failure: string | undefined;

  /** @param options what the sandbox needs from the server */
  constructor(options: SandboxOptions) {
    this.#options = options;
    this.#log = options.log.child(options.spec.name);
    // Read once: a configuration lookup is too slow for every request.
    this.#requestTimeout = options.config.duration("server", "sandbox_request_timeout");
    this.#bodyTimeout = options.config.duration("server", "request_body_timeout");
    const rate = options.config.int("server", "sandbox_log_rate");
    this.#logBudget = new LogBudget(rate, (dropped) =>
      this.#log.warning(
        `extension ${this.name} logged too much: ${dropped} record(s) dropped (server.sandbox_log_rate = ${rate}/s)`,
      ));
  }

  /** The extension's name. */
  get name(): string {
    return this.#options.spec.name;
  }

  /** Largest resident size of a process guest, in KiB. */
  get rssLimitKiB(): number | undefined {
    return this.#options.rssLimitKiB;
  }

  /** The guest's pid, for a process sandbox. */
  get pid(): number | undefined {
    return this.#link?.pid;
  }

  /** Starts the guest and its import of the extension. */
  begin(): void {
    const link = this.#options.link();
    this.#link = link;
    this.#startedAt = Date.now();
    this.heard = false;
    this.lastBeat = Date.now();
    this.#counts.newGuest();
    this.#usage = { cpuSeconds: 0, rssBytes: 0, heapUsedBytes: 0 };
    this.#loaded = Promise.withResolvers();
    const channel = new Channel<ToGuest>((batch) => link.post(batch), true);
    this.#channel = channel;
    this.#exchange = new Exchange((message) => channel.send(message));
    this.#relaying = new RelayLimit(this.name, (text) => this.#log.warning(text));
    // What a guest that was ended says or does no longer counts: a new one may run already.
    link.onBatch = (batch) => {
      if (link === this.#link) this.#take(batch);
    };
    link.onExit = (reason) => {
      if (link === this.#link) this.fail(reason);
    };
    // Its stderr is a log too: a guest writing there must not flood the server's log unbounded.
    link.onStderr = (line) => {
      if (this.#logBudget.allow()) this.#log.warning(oneRecord(line));
    };
    this.#unwatch = watch(this, this.#options.config);
    const { spec, info } = this.#options;
    this.#channel.send({
      t: "load",
      name: spec.name,
      specifier: spec.specifier,
      config: this.#options.guestConfig as [string, [string, never][]][],
      env: this.#options.env,
      version: info.version,
      coreRange: info.coreRange,
      manifest: info.file,
      logRate: this.#logBudget.rate,
    });
  }

  /** Takes a batch from the guest: checked whole before any of it is acted on. */
  #take(batch: unknown): void {
    if (this.failure) return;
    this.heard = true;
    this.lastBeat = Date.now();
    let messages: FromGuest[];
    try {
      messages = decodeGuestBatch(batch);
    } catch (error) {
      return this.fail(describeError(error));
    }
    // Every batch from the guest follows the one it took from us.
    this.#channel!.acknowledge();
    for (const message of messages) {
      try {
        this.#receive(message);
      } catch (error) {
        return this.fail(`its message ${message.t} could not be handled: ${describeError(error)}`);
      }
      if (this.failure) return;
    }
  }

  /**
   * Waits for the extension's setup in the guest and mirrors its slices in `context`.
   *
   * @throws {ExtensionError} naming the extension when it could not be imported or set up
   */
  async finish(context: ApplicationContext): Promise<LoadedExtension> {
    const loaded = await this.#loaded.promise;
    const { spec, isolation, grant, info } = this.#options;
    if (loaded.error) {
      this.terminate();
      throw loaded.importFailed
        ? new ExtensionError("extension.import", loaded.error.message)
        : rebuild(loaded.error);
    }
    this.#extension = extensionRecord(spec, {
      isolation,
      permissions: describeGrant(grant),
      version: loaded.version ?? info.version,
      methods: loaded.methods.map((m) => ProxySlice.method(m)),
    });
    for (const descriptor of loaded.slices) {
      const proxy = new ProxySlice(descriptor, this);
      this.#proxies.set(proxy.name, proxy);
      context.registerSlice(proxy);
      for (const mount of descriptor.mounts) proxy.mountForward(mount.location, mount.start);
    }
    if (loaded.features) context.setFeatureManager(new FeatureList(loaded.features));
    this.hasMigrations = loaded.migrations === true;
    return this.#extension;
  }

  #receive(message: FromGuest): void {
    switch (message.t) {
      case "res": {
        const pending = this.#exchange.settle(message.id);
        if (!pending) return;
        const init = { status: message.status, headers: message.headers };
        if (!message.stream) return pending.resolve(new Response(message.body, init));
        const response = new Response(this.#exchange.stream(message.id), init);
        return pending.resolve(message.longLived ? streaming(response) : response);
      }
      case "json": {
        const pending = this.#exchange.settle(message.id);
        pending?.resolve(
          new Response(message.json, { status: message.status, headers: JSON_HEADERS }),
        );
        return;
      }
      case "chunk":
        return this.#exchange.chunk(message.id, message.body);
      case "end":
        return this.#exchange.end(
          message.id,
          message.error ? new Error(`extension ${this.name}: ${message.error}`) : undefined,
        );
      case "done": {
        const pending = this.#exchange.settle(message.id);
        if (message.error) pending?.reject(rebuild(message.error));
        else pending?.resolve(undefined);
        return;
      }
      case "svcres": {
        const pending = this.#exchange.settle(message.id);
        if (!pending) return;
        if (message.error !== undefined) return pending.reject(new Error(message.error));
        let value: unknown;
        try {
          value = message.body ? unpackValue(message.body) : undefined;
        } catch {
          return pending.reject(new Error(`extension ${this.name} answered an unreadable value`));
        }
        return pending.resolve(value);
      }
      case "svc":
        // Checked here, not in #relay: thrown there it would be an unhandled rejection, which
        // ends the server's process instead of failing this guest.
        return void this.#relay(message, this.#proxy(message.from));
      case "db":
        return void this.#database(message);
      case "compat": {
        let error: ErrorDescriptor | undefined;
        try {
          checkCore(this.name, message.exported ?? undefined, this.#options.info);
        } catch (failure) {
          error = describe(failure);
        }
        this.#channel!.send({ t: "compat", error });
        return;
      }
      case "beat":
        this.lastBeat = Date.now();
        if (message.tasks) {
          this.#ownSlices(Object.keys(message.tasks));
          this.#counts.takeTasks(message.tasks, this.#down !== undefined);
        }
        if (message.background) {
          this.#ownSlices(Object.keys(message.background));
          this.#counts.takeBackground(message.background);
        }
        if (message.usage) {
          this.#usage = {
            ...message.usage,
            // A Worker's CPU cannot be told from the server's.
            cpuSeconds: this.#options.isolation === "worker" ? 0 : message.usage.cpuSeconds,
          };
          this.#report(this.#down ? "restarting" : "running");
        }
        return;
      case "log":
        if (this.#logBudget.allow()) {
          this.#log.child(this.#source(message.source)).log(
            message.level,
            oneRecord(message.message),
            isRequestId(message.requestId) ? message.requestId : null,
          );
        }
        return;
      case "mount":
        // A restarted guest mounts again what its proxy serves already: nothing changes then.
        this.#proxy(message.slice).mountForward(message.location, message.start);
        return;
      case "loaded":
        this.lastBeat = Date.now();
        this.#loaded.resolve(message);
        return;
    }
  }

  /** Checks that a report names only this extension's slices (before they are mirrored here). */
  #ownSlices(names: string[]): void {
    for (const slice of names) {
      if (!slice.startsWith(`${this.name}.`)) {
        throw new ProtocolError(
          "sandbox.slice",
          `it named slice ${slice}, which is not one of its own`,
        );
      }
    }
  }

  /** A log source a guest names: its own extension or one of its slices, nothing else. */
  #source(source: string): string {
    return source === this.name || source.startsWith(`${this.name}.`)
      ? source
      : `${this.name}.${source}`;
  }

  /** One of this guest's slices; a guest naming another's is a protocol error. */
  #proxy(name: string): ProxySlice {
    const proxy = this.#proxies.get(name);
    if (!proxy) {
      throw new ProtocolError(
        "sandbox.slice",
        `it named slice ${name}, which is not one of its own`,
      );
    }
    return proxy;
  }

  /** What the server carries for the current guest (service calls, statements). */
  #relaying = new RelayLimit("", () => {});

  /** A service call from one of this guest's slices, carried to the slice it calls. */
  #relay(message: Extract<FromGuest, { t: "svc" }>, from: ProxySlice): Promise<void> {
    return this.#carry("svcres", message.id, message.body, "service calls", (args) => {
      if (!Array.isArray(args)) throw new Error("service arguments are not a list");
      return this.#options.callService(from, message.to, message.member, args);
    });
  }

  /**
   * A request of the guest for its own database: the host checks it and runs it on this
   * extension's connection (the one the channel belongs to, never one the request names).
   */
  #database(message: Extract<FromGuest, { t: "db" }>): Promise<void> {
    return this.#carry("dbres", message.id, message.body, "statements", (request) => {
      const host = this.#options.database();
      if (!host?.has(this.name)) {
        throw new Error(
          `extension ${this.name} has no database: list core.database in getDependencies()`,
        );
      }
      return host.handle(this.name, request);
    });
  }

  /**
   * Carries what a guest asks the server to do (a service call, a statement) within its
   * {@link RelayLimit}, and answers it with `t` on the channel it came on: the value `work`
   * resolves with, or its error.
   */
  async #carry(
    t: "svcres" | "dbres",
    id: number,
    body: ArrayBuffer,
    what: string,
    work: (value: unknown) => Promise<unknown>,
  ): Promise<void> {
    const channel = this.#channel;
    const bytes = body.byteLength;
    const relaying = this.#relaying;
    const refused = relaying.admit(bytes, what);
    if (refused) return this.#answer(channel, { t, id, error: refused, body: null });
    let answer: ToGuest;
    try {
      answer = { t, id, body: packValue(await work(unpackValue(body))) };
    } catch (error) {
      answer = { t, id, error: describeError(error), body: null };
    } finally {
      relaying.release(bytes);
    }
    this.#answer(channel, answer);
  }

  /**
   * Sends an answer on `channel` unless its guest ended meanwhile: the answer to what a failed
   * guest asked must not reach the guest started after it, whose ids mean other requests.
   */
  #answer(channel: Channel<ToGuest> | undefined, answer: ToGuest): void {
    if (channel === this.#channel && !this.failure) channel!.send(answer);
  }

  /** What slice `slice`'s `getStatus()` in the guest returns. */
  status(slice: string): Promise<Record<string, unknown>> {
    if (this.failure || this.#down) return Promise.resolve({});
    return this.#exchange.ask((id) => ({ t: "status", id, slice }), Date.now() + 5000) as Promise<
      Record<string, unknown>
    >;
  }

  /** Whether setup in the guest registered migrations. */
  hasMigrations = false;

  /** Applies the extension's migrations in the guest (their code is there). */
  migrate(dialect: "sqlite" | "postgres"): Promise<MigrationOutcome> {
    if (this.failure) return Promise.reject(this.#failed());
    const version = this.#extension?.version ?? "unversioned";
    return this.#exchange.ask(
      (id) => ({ t: "migrate", id, dialect, version }),
      Number.POSITIVE_INFINITY,
    ) as Promise<MigrationOutcome>;
  }

  /** Calls service `member` of slice `to` in this guest for slice `from`. */
  callService(from: string, to: string, member: string, args: unknown[]): Promise<unknown> {
    if (this.failure || this.#down) {
      return Promise.reject(
        new SliceError(
          "service.stopped",
          `slice ${from} called ${to}.${member}(), but extension ${this.name} ${this.#downSince()}`,
        ),
      );
    }
    return this.#exchange.ask(
      (id) => ({ t: "svc", id, from, to, member, body: packValue(args) }),
      Date.now() + this.#requestTimeout * 1000,
    );
  }

  /** Runs a lifecycle phase of a slice in the guest, by `until` (ms since epoch). */
  call(slice: string, op: SlicePhase, until: number): Promise<void> {
    if (this.failure) {
      // A failed sandbox has nothing to stop; starting it is what failed.
      if (op === "prestop" || op === "stop") return Promise.resolve();
      return Promise.reject(this.#failed());
    }
    return new Promise<void>((resolve, reject) => {
      const id = this.#exchange.wait({
        deadline: until,
        resolve: () => resolve(),
        reject: (error) => op === "prestop" || op === "stop" ? resolve() : reject(error),
      });
      const slices = op === "prestart" ? this.#options.sliceNames() : undefined;
      const database = op === "prestart" ? this.#options.database() : undefined;
      const dialect = database?.has(this.name) ? database.dialect(this.name) : undefined;
      const features = op === "prestart" ? this.#options.features?.() : undefined;
      this.#channel!.send({ t: "call", id, slice, op, until, slices, dialect, features });
    });
  }

  #failed(): ExtensionError {
    return new ExtensionError("extension.failed", `extension ${this.name} ${this.#downSince()}`);
  }

  /** Why the extension does not serve now, as the end of a sentence naming it. */
  #downSince(): string {
    return this.#down
      ? `is restarting after a failure: ${this.lastFailure}`
      : `failed: ${this.failure ?? this.lastFailure ?? "sandbox ended"}`;
  }

  /** Seconds until the extension may serve again while it restarts (at least 1); else undefined. */
  retryAfter(): number | undefined {
    if (!this.#down) return undefined;
    return Math.max(1, Math.ceil((this.#down.retryAt - Date.now()) / 1000));
  }

  /** The answer to a request the extension cannot serve now: 503, with Retry-After when it restarts. */
  #unavailable(): Response {
    const message = `extension ${this.name} ${this.#downSince()}`;
    const seconds = this.retryAfter();
    if (seconds === undefined) return errorResponse(503, message);
    return errorResponse(503, message, { "retry-after": String(seconds) });
  }

  /**
   * Hands a request to the guest; answers 503 when it failed or does not answer in time. With
   * `api`, the request is a call of that method the server already routed; `received` is its
   * body when the server read it already (to enforce the method's size limit).
   */
  forward(
    request: Request,
    api?: { key: string; params: Record<string, string> },
    received?: Uint8Array,
  ): Promise<Response> {
    if (this.failure || this.#down) return Promise.resolve(this.#unavailable());
    // Most calls have no body (or the server read it already): no extra await for them.
    if (received !== undefined || request.body === null) {
      return this.#send(request, api, received);
    }
    return readBody(request, this.#bodyTimeout).then((read) => this.#send(request, api, read));
  }

  #send(
    request: Request,
    api: { key: string; params: Record<string, string> } | undefined,
    read: Uint8Array | undefined,
  ): Promise<Response> {
    // Only a buffer the view covers whole can be handed over as the body.
    const body = read === undefined || read.length === 0
      ? null
      : read.byteOffset === 0 && read.byteLength === read.buffer.byteLength
      ? read.buffer as ArrayBuffer
      : read.slice().buffer;
    const { promise, resolve } = Promise.withResolvers<Response>();
    const id = this.#exchange.wait({
      deadline: Date.now() + this.#requestTimeout * 1000,
      resolve: resolve as (value: unknown) => void,
      reject: (error) =>
        resolve(
          error instanceof AnswerTimeout
            ? errorResponse(
              503,
              `extension ${this.name} did not answer within ${this.#requestTimeout}s`,
            )
            : this.#unavailable(),
        ),
    });
    const requestId = currentRequestId();
    const common = {
      id,
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      body,
      ...(requestId === undefined ? {} : { requestId }),
    };
    this.#channel!.send(
      api ? { t: "api", key: api.key, params: api.params, ...common } : { t: "req", ...common },
    );
    return promise;
  }

  /** Ends what waited longer than its deadline (called by the watchdog). */
  expire(now: number): void {
    this.#exchange.expire(now);
  }

  /**
   * Marks the guest failed: its slices fail, pending work ends, its endpoints answer 503. With
   * `restart = on-failure`, an extension whose slices had all started gets a new guest after
   * the backoff's delay, unless it failed too often.
   */
  fail(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    this.lastFailure = reason;
    this.#log.error(`extension ${this.name} failed: ${reason}`);
    const { delay, outlook } = this.#nextRestart();
    this.#down = delay === undefined ? undefined : { retryAt: Date.now() + delay };
    if (this.#extension) {
      this.#extension.status = "failed";
      this.#extension.failure = reason + outlook;
    }
    for (const proxy of this.#proxies.values()) {
      proxy.fail(`extension ${this.name} ${this.#downSince()}`);
    }
    this.#exchange.endAll(this.#failed());
    // A guest that dies while loading counts as a module that could not be imported.
    this.#loaded.resolve({
      t: "loaded",
      importFailed: true,
      error: {
        name: "ExtensionError",
        code: "extension.failed",
        message: `extension ${this.name} failed: ${reason}`,
      },
      slices: [],
      methods: [],
    });
    this.#endGuest();
    this.#report(delay === undefined ? "failed" : "restarting");
    if (delay !== undefined) {
      this.#restartTimer = setTimeout(() => {
        // Whatever goes wrong in a restart fails this extension, never the server.
        this.#restart().catch((error) => this.fail(`restart failed: ${describeError(error)}`));
      }, delay);
    }
  }

  /**
   * What follows a failure: the delay before the next guest in ms (none: it stays failed), and
   * how the extension's reason ends to say so.
   */
  #nextRestart(): { delay?: number; outlook: string } {
    const policy = this.#options.restart;
    if (!policy || !this.#restartable) return { outlook: "" };
    this.#everStarted ||= this.#proxies.size > 0 &&
      [...this.#proxies.values()].every((p) => p.state === "started");
    if (!this.#everStarted) return { outlook: "" };
    this.#backoff ??= new Backoff(policy);
    const delay = this.#backoff.failed();
    if (delay !== undefined) return { delay, outlook: `; restarting in ${delay / 1000}s` };
    const failures = this.#backoff.failures;
    this.#log.error(
      `extension ${this.name} failed ${failures} times within ${policy.windowSeconds}s (server.restart_max_failures = ${policy.maxFailures}): it stays failed`,
    );
    return {
      outlook: `; it stays failed after ${failures} failures within ${policy.windowSeconds}s`,
    };
  }

  /** Starts a new guest and runs its slices' prestart and start; a failure on the way counts. */
  async #restart(): Promise<void> {
    this.#restartTimer = undefined;
    if (!this.#restartable) return;
    this.restarts++;
    this.failure = undefined;
    this.#log.info(`extension ${this.name}: starting a new guest (restart ${this.restarts})`);
    if (this.#extension) {
      this.#extension.failure = `${this.lastFailure}; restarting now (restart ${this.restarts})`;
    }
    try {
      this.begin();
    } catch (error) {
      // No guest could be started (deno gone from PATH?): a failure like any other.
      this.#link = undefined;
      return this.fail(`its guest could not be started again: ${describeError(error)}`);
    }
    this.#report("restarting");
    const loaded = await this.#loaded.promise;
    if (this.failure || !this.#restartable) return; // fail() decided what comes next
    if (loaded.error) return this.fail(`it could not be set up again: ${loaded.error.message}`);
    const before = [...this.#proxies.keys()].sort().join(", ");
    const after = loaded.slices.map((s) => s.name).sort().join(", ");
    if (before !== after) {
      this.#restartable = false;
      return this.fail(`its slices changed from ${before} to ${after || "none"} on restart`);
    }
    // The server routes, orders and checks service calls by what the first guest declared.
    const changed = loaded.slices.find((s) => !this.#proxies.get(s.name)!.declaresAsBefore(s));
    if (changed) {
      this.#restartable = false;
      return this.fail(
        `slice ${changed.name} changed its endpoints, services or dependencies on restart`,
      );
    }
    for (const proxy of this.#proxies.values()) proxy.revive();
    try {
      await this.#options.rerun?.([...this.#proxies.values()]);
    } catch (error) {
      return this.fail(`restart ${this.restarts} failed: ${describeError(error)}`);
    }
    if (this.failure || !this.#restartable) return;
    this.#down = undefined;
    if (this.#extension) {
      this.#extension.status = "loaded";
      this.#extension.failure = undefined;
    }
    this.#report("running");
    this.#log.info(`extension ${this.name} serves again (restart ${this.restarts})`);
  }

  #usage: Pick<SandboxSample, "cpuSeconds" | "rssBytes" | "heapUsedBytes"> = {
    cpuSeconds: 0,
    rssBytes: 0,
    heapUsedBytes: 0,
  };

  /** Reports the sandbox's figures and state to `/metrics`. */
  #report(state: SandboxSample["state"]): void {
    this.#options.metrics?.report(this.name, {
      ...this.#usage,
      state,
      restarts: this.restarts,
      startedAt: this.#startedAt,
      ...(this.lastFailure ? { lastFailure: this.lastFailure } : {}),
    });
  }

  /** Ends the guest running now, if one is. */
  #endGuest(): void {
    // A guest that dies mid-transaction leaves it rolled back.
    void this.#options.database()?.releaseAll(this.name).catch(() => {});
    this.#unwatch?.();
    this.#unwatch = undefined;
    const link = this.#link;
    this.#link = undefined;
    link?.terminate();
  }

  /** No more restarts (the server is stopping): a guest that fails from now on stays failed. */
  endRestarts(): void {
    this.#restartable = false;
    clearTimeout(this.#restartTimer);
    if (!this.#down) return;
    // A restart that was coming will not: say so, rather than "restarting in 2s".
    this.#down = undefined;
    if (this.#extension) {
      this.#extension.failure = `${this.lastFailure}; not restarted: the server is stopping`;
    }
    this.#report("failed");
  }

  /** Ends the sandbox: its guest, and any restart to come. */
  terminate(): void {
    this.endRestarts();
    this.#logBudget.close();
    this.#endGuest();
    // The ended guest's exit is no longer heard (its link is gone): a stream it still sent, one
    // that never ends above all, ends now instead of holding its connection open forever.
    this.#exchange.endStreams(
      new ExtensionError("extension.failed", `extension ${this.name} ended with the server`),
    );
  }
}
