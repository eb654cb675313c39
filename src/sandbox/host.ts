/**
 * The sandbox host: every extension that is not `core` runs in a Worker whose Deno permissions
 * are exactly its grant. In the server its slices are mirrored by proxies, so that ordering,
 * lifecycle, endpoints and static content work as for in-process slices.
 *
 * @module
 */
import { z } from "zod";
import type { ApplicationContext } from "../application.ts";
import { type Config, envName } from "../config/config.ts";
import {
  ConfigError,
  ExtensionError,
  type InmantaError,
  ProtocolError,
  SliceError,
} from "../errors.ts";
import type { ExtensionSpec } from "../extensions/discovery.ts";
import { prefetch } from "../extensions/fetch.ts";
import { checkCore } from "../extensions/compat.ts";
import {
  displaySource,
  type ExtensionHost,
  type LoadedExtension,
  packageInfo,
} from "../extensions/host.ts";
import { InProcessHost } from "../extensions/in_process.ts";
import { type Feature, FeatureManager } from "../features.ts";
import { readBody } from "../http/body.ts";
import { streaming } from "../http/transport.ts";
import type { Logger } from "../log.ts";
import { addHandler, method, type MethodDefinition } from "../protocol/method.ts";
import type { ScheduledTaskInfo } from "../scheduler/scheduler.ts";
import { INTERNALS, ServerSlice } from "../slices/slice.ts";
import { describeGrant, type Grant, parseGrant, workerPermissions } from "./grant.ts";
import {
  type Batch,
  Channel,
  describe,
  EnvLink,
  type ErrorDescriptor,
  type FromSandbox,
  type MethodDescriptor,
  type SliceDescriptor,
  type SliceOperation,
  type ToSandbox,
} from "./protocol.ts";

const ERRORS: Record<string, new (code: string, message: string) => InmantaError> = {
  ConfigError,
  ExtensionError,
  ProtocolError,
  SliceError,
};

/** Rebuilds an error that crossed the boundary, keeping its class and code. */
function rebuild(error: ErrorDescriptor): Error {
  const Class = ERRORS[error.name];
  if (Class) return new Class(error.code ?? "sandbox.error", error.message);
  const plain = new Error(error.message);
  plain.name = error.name;
  return plain;
}

/** The host a remote extension is imported from, which its sandbox must be allowed to import. */
function importHost(spec: ExtensionSpec): string | undefined {
  if (spec.origin === "url") return new URL(spec.specifier).host;
  if (spec.origin !== "jsr") return undefined;
  let registry: string | undefined;
  try {
    registry = Deno.env.get("JSR_URL");
  } catch {
    // Not allowed to read it: Deno itself uses the default registry then too.
  }
  return new URL(registry || "https://jsr.io").host;
}

/** The host this library is served from, when it is not a local file (a JSR registry). */
const LIBRARY_HOST = import.meta.url.startsWith("file:")
  ? undefined
  : new URL(import.meta.url).host;

const JSON_HEADERS: HeadersInit = { "content-type": "application/json" };

/** A sandbox that failed: its pending calls end with this. */
class SandboxFault extends Error {}

function failure(status: number, message: string): Response {
  return Response.json({ message }, { status });
}

/** Loads each extension in the isolation its configuration says (`worker` unless `none`). */
export class SandboxHost implements ExtensionHost {
  readonly #log: Logger;
  readonly #inProcess = new InProcessHost();
  readonly #sandboxes: Sandbox[] = [];

  /** @param log the server's logger */
  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Starts preparing an extension (fetching it, starting its Worker and its import) so that
   * extensions load side by side; `load` then registers them one by one, in order.
   */
  preload(spec: ExtensionSpec, config: Config): void {
    const prepared = this.#prepare(spec, config);
    prepared.catch(() => {}); // reported when load() awaits it
    this.#prepared.set(spec.name, prepared);
  }

  /** Loads one extension. */
  async load(spec: ExtensionSpec, context: ApplicationContext): Promise<LoadedExtension> {
    const prepared = await (this.#prepared.get(spec.name) ?? this.#prepare(spec, context.config));
    this.#prepared.delete(spec.name);
    if (prepared.kind === "in-process") return await this.#inProcess.load(spec, context);
    if (prepared.kind === "failed") return prepared.extension;
    return await prepared.sandbox.finish(context);
  }

  readonly #prepared = new Map<string, Promise<Prepared>>();

  async #prepare(spec: ExtensionSpec, config: Config): Promise<Prepared> {
    const section = `extension.${spec.name}`;
    config.registerDefaultOptions(section, {
      isolation: {
        type: "string",
        default: "worker",
        help: "worker (only the granted permissions) or none (in-process, all of the server's)",
      },
      permissions: {
        type: "string",
        default: "",
        help: "Deno permissions granted, e.g. read=./data; net=api.example.com:443; env=HOME",
      },
    });
    // A module given already imported lives in this isolate: it can only run in-process.
    const isolation = spec.module ? "none" : config.string(section, "isolation");
    const remote = spec.origin === "jsr" || spec.origin === "url";
    if (isolation === "none") {
      if (remote) await prefetch(spec);
      this.#log.warning(
        `extension ${spec.name} runs in-process with all of the server's permissions (${section}.isolation = none)`,
      );
      return { kind: "in-process" };
    }
    if (isolation !== "worker") {
      throw new ConfigError(
        "config.isolation",
        `${section}.isolation = ${isolation}: use worker or none`,
      );
    }
    const grant = parseGrant(
      config.string(section, "permissions"),
      `${section}.permissions`,
      spec.directory,
    );
    // The sandbox imports its own module and resolves "@inmanta/server": a remote source's
    // host, and the host serving this library when it came from JSR, are part of its grant.
    const hosts = [importHost(spec), LIBRARY_HOST].filter((h): h is string => h !== undefined);
    if (hosts.length > 0 && grant.import !== true) {
      grant.import = [...new Set([...(grant.import || []), ...hosts])];
    }
    if (remote) {
      try {
        await prefetch(spec);
      } catch (error) {
        // Like a module that cannot be imported: the extension fails, the server goes on.
        const reason = (error as Error).message;
        this.#log.error(`extension ${spec.name} failed: ${reason}`);
        return {
          kind: "failed",
          extension: {
            name: spec.name,
            version: "unknown",
            source: displaySource(spec),
            isolation: "worker",
            permissions: describeGrant(grant),
            status: "failed",
            failure: reason,
            methods: [],
          },
        };
      }
    }
    const sandbox = new Sandbox(spec, grant, config, this.#log);
    this.#sandboxes.push(sandbox);
    await sandbox.begin();
    return { kind: "sandbox", sandbox };
  }

  /** Terminates every sandbox. */
  close(): Promise<void> {
    for (const sandbox of this.#sandboxes.splice(0)) sandbox.terminate();
    return Promise.resolve();
  }
}

/** An extension made ready to load. */
type Prepared =
  | { kind: "in-process" }
  | { kind: "failed"; extension: LoadedExtension }
  | { kind: "sandbox"; sandbox: Sandbox };

interface Pending {
  deadline: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
  onTimeout(): void;
}

/** A request waiting for the sandbox's answer; failures and timeouts answer 503. */
class Waiting implements Pending {
  readonly deadline: number;
  readonly #sandbox: Sandbox;
  readonly #resolve: (response: Response) => void;
  readonly #timeout: number;

  constructor(sandbox: Sandbox, resolve: (response: Response) => void, timeout: number) {
    this.deadline = Date.now() + timeout * 1000;
    this.#sandbox = sandbox;
    this.#resolve = resolve;
    this.#timeout = timeout;
  }
  resolve(response: unknown): void {
    this.#resolve(response as Response);
  }
  reject(): void {
    const sandbox = this.#sandbox;
    this.#resolve(
      failure(503, `extension ${sandbox.name} failed: ${sandbox.failure ?? "sandbox ended"}`),
    );
  }
  onTimeout(): void {
    this.#resolve(
      failure(503, `extension ${this.#sandbox.name} did not answer within ${this.#timeout}s`),
    );
  }
}

/** One extension in one Worker. */
class Sandbox {
  readonly #spec: ExtensionSpec;
  readonly #grant: Grant;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #pending = new Map<number, Pending>();
  readonly #proxies = new Map<string, ProxySlice>();
  #worker: Worker | undefined;
  #channel: Channel<ToSandbox> | undefined;
  #nextId = 0;
  #lastBeat = Date.now();
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #loaded: PromiseWithResolvers<Extract<FromSandbox, { t: "loaded" }>> = Promise.withResolvers();
  #extension: LoadedExtension | undefined;
  /** Scheduled tasks of each slice, as of the last heartbeat. */
  tasks: Record<string, ScheduledTaskInfo[]> = {};
  /** Why the sandbox failed, once it did. */
  failure: string | undefined;

  constructor(spec: ExtensionSpec, grant: Grant, config: Config, log: Logger) {
    this.#spec = spec;
    this.#grant = grant;
    this.#config = config;
    this.#log = log;
    // Read once: a configuration lookup consults the environment, too slow for every request.
    this.#requestTimeout = config.duration("server", "sandbox_request_timeout");
    this.#bodyTimeout = config.duration("server", "request_body_timeout");
  }

  readonly #requestTimeout: number;
  readonly #bodyTimeout: number;

  get name(): string {
    return this.#spec.name;
  }

  #info: Awaited<ReturnType<typeof packageInfo>> = {};
  readonly #env = new EnvLink();

  /**
   * An `INMANTA_*` override a sandbox asks for, under the rule its configuration follows: no
   * secrets, no other extension's section.
   */
  #readEnv(name: string): string | undefined {
    if (!name.startsWith("INMANTA_")) return undefined;
    const secret = this.#config.registeredOptions().some((o) =>
      o.secret && envName(o.section, o.name) === name
    );
    if (secret) return undefined;
    const prefix = (extension: string) => envName(`extension.${extension}`, "");
    if (name.startsWith("INMANTA_EXTENSION_")) {
      const own = prefix(this.name);
      if (!name.startsWith(own)) return undefined;
      // INMANTA_EXTENSION_A_B_X may be option b_x of extension a or option x of extension a_b.
      const longer = this.#config.list("server", "enabled_extensions").some((other) =>
        other !== this.name && prefix(other).length > own.length && name.startsWith(prefix(other))
      );
      if (longer) return undefined;
    }
    return this.#config.readEnv(name);
  }

  /** Starts the Worker and its import of the extension. */
  async begin(): Promise<void> {
    const info = await packageInfo(this.#spec).catch(() =>
      ({}) as Awaited<ReturnType<typeof packageInfo>>
    );
    this.#info = info;
    try {
      this.#worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
        name: `extension ${this.name}`,
        deno: { permissions: workerPermissions(this.#grant) },
      });
    } catch (error) {
      throw new ExtensionError(
        "extension.permissions",
        `extension ${this.name}: its grant (${
          describeGrant(this.#grant)
        }) exceeds the server process's own permissions; grant the server process these first: ${
          (error as Error).message.split("\n")[0]
        }`,
      );
    }
    const worker = this.#worker;
    this.#channel = new Channel<ToSandbox>(worker, true);
    // Sent before the batched messages (which wait for a microtask), so it arrives first.
    worker.postMessage({ envBuffer: this.#env.buffer });
    worker.onmessage = (event: MessageEvent<Batch | { env: string }>) => {
      const data = event.data;
      if ("env" in data) return this.#env.answer(this.#readEnv(data.env));
      // Every batch from the sandbox follows the one it took from us.
      this.#channel!.acknowledge();
      for (const message of Channel.decode<FromSandbox>(data)) this.#receive(message);
    };
    worker.onerror = (event) => {
      // Keep the worker's uncaught error from ending the server: the sandbox fails instead.
      event.preventDefault();
      this.fail(`uncaught error: ${event.message}`);
    };
    worker.onmessageerror = () => this.fail("a message from the sandbox could not be read");
    const heartbeat = this.#config.duration("server", "sandbox_heartbeat_timeout") * 1000;
    this.#watchdog = setInterval(() => this.#watch(heartbeat), Math.min(250, heartbeat / 4));

    this.#channel.send({
      t: "load",
      name: this.name,
      specifier: this.#spec.specifier,
      // Secrets (the token signing key) stay in the server: a sandbox with them could mint
      // tokens for any client type. Other extensions' sections, where they keep their own
      // secrets, stay out too.
      config: [...this.#config.snapshot({ secrets: false })]
        .filter(([section]) =>
          !section.startsWith("extension.") || section === `extension.${this.name}`
        )
        .map(([s, o]) => [s, [...o]]),
      version: info.version,
      coreRange: info.coreRange,
      manifest: info.file,
    });
  }

  /** Waits for the extension's setup in the sandbox and mirrors its slices in `context`. */
  async finish(context: ApplicationContext): Promise<LoadedExtension> {
    const info = this.#info;
    const loaded = await this.#loaded.promise;

    this.#extension = {
      name: this.name,
      version: loaded.version ?? info.version ?? "unversioned",
      source: displaySource(this.#spec),
      isolation: "worker",
      permissions: describeGrant(this.#grant),
      status: "loaded",
      methods: loaded.methods.map(toMethod),
    };
    if (loaded.error && loaded.importFailed) {
      // A module that throws at top level (or a sandbox that died loading it) fails only itself.
      this.fail(loaded.error.message);
      return this.#extension;
    }
    if (loaded.error) {
      this.terminate();
      throw rebuild(loaded.error);
    }
    for (const descriptor of loaded.slices) {
      const proxy = new ProxySlice(descriptor, this);
      this.#proxies.set(proxy.name, proxy);
      context.registerSlice(proxy);
    }
    if (loaded.features) context.setFeatureManager(new StaticFeatures(loaded.features));
    return this.#extension;
  }

  /** Streamed response bodies, by request id. */
  readonly #streams = new Map<
    number,
    { controller: ReadableStreamDefaultController<Uint8Array>; pulled: () => void }
  >();

  /**
   * The body of streamed response `id`: each pull asks the sandbox for one chunk, so a slow
   * client holds the sandbox back instead of filling the server's memory.
   */
  #stream(id: number): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#streams.set(id, { controller, pulled: () => {} });
      },
      pull: () => {
        const open = this.#streams.get(id);
        if (!open || this.failure) return;
        const { promise, resolve } = Promise.withResolvers<void>();
        open.pulled = resolve;
        this.#channel!.send({ t: "pull", id });
        return promise;
      },
      cancel: () => {
        this.#streams.delete(id);
        if (!this.failure) this.#channel!.send({ t: "cancel", id });
      },
    }, { highWaterMark: 0 });
  }

  #receive(message: FromSandbox): void {
    switch (message.t) {
      case "res": {
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        const init = { status: message.status, headers: message.headers };
        if (!message.stream) return pending.resolve(new Response(message.body, init));
        const response = new Response(this.#stream(message.id), init);
        pending.resolve(message.longLived ? streaming(response) : response);
        return;
      }
      case "chunk": {
        const open = this.#streams.get(message.id);
        open?.controller.enqueue(new Uint8Array(message.body));
        open?.pulled();
        return;
      }
      case "end": {
        const open = this.#streams.get(message.id);
        if (!open) return;
        this.#streams.delete(message.id);
        if (message.error) {
          open.controller.error(new Error(`extension ${this.name}: ${message.error}`));
        } else {
          open.controller.close();
        }
        open.pulled();
        return;
      }
      case "json": {
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        pending.resolve(
          new Response(message.json, { status: message.status, headers: JSON_HEADERS }),
        );
        return;
      }
      case "done": {
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        if (message.error) pending.reject(rebuild(message.error));
        else pending.resolve(undefined);
        return;
      }
      case "compat": {
        let error: ErrorDescriptor | undefined;
        try {
          checkCore(this.name, message.exported ?? undefined, this.#info);
        } catch (failure) {
          error = describe(failure);
        }
        this.#channel!.send({ t: "compat", error });
        return;
      }
      case "beat":
        this.#lastBeat = Date.now();
        this.tasks = message.tasks;
        return;
      case "log":
        this.#log.child(message.source).log(message.level, message.message);
        return;
      case "mount": {
        const proxy = this.#proxies.get(message.slice);
        proxy?.[INTERNALS].mount({
          kind: "proxy",
          location: message.location,
          start: message.start,
          forward: (request) => this.forward(request),
        });
        return;
      }
      case "loaded":
        this.#lastBeat = Date.now();
        this.#loaded.resolve(message);
        return;
    }
  }

  #watch(heartbeatMs: number): void {
    const now = Date.now();
    if (now - this.#lastBeat > heartbeatMs) {
      this.fail(
        `no heartbeat for ${heartbeatMs / 1000}s: the extension is busy (an endless loop?) or hung`,
      );
      return;
    }
    for (const [id, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#pending.delete(id);
        pending.onTimeout();
      }
    }
  }

  /** Runs a lifecycle operation of a slice in the sandbox. */
  call(slice: string, op: SliceOperation, until: number): Promise<void> {
    if (this.failure) return Promise.resolve();
    const id = ++this.#nextId;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, {
        deadline: Number.POSITIVE_INFINITY,
        resolve: () => resolve(),
        reject: (error) => error instanceof SandboxFault ? resolve() : reject(error),
        onTimeout: () => resolve(),
      });
      this.#channel!.send({ t: "call", id, slice, op, until });
    });
  }

  /**
   * Hands a request to the sandbox; answers 503 when it failed or does not answer in time.
   * With `api`, the request is a call of that method the server already routed; `received` is
   * its body when the server read it already (to enforce the method's size limit).
   */
  forward(
    request: Request,
    api?: { key: string; params: Record<string, string> },
    received?: Uint8Array,
  ): Promise<Response> {
    if (this.failure) {
      return Promise.resolve(failure(503, `extension ${this.name} failed: ${this.failure}`));
    }
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
    // Only a buffer the view covers whole can be transferred as the body.
    const body = read === undefined || read.length === 0
      ? null
      : read.byteOffset === 0 && read.byteLength === read.buffer.byteLength
      ? read.buffer as ArrayBuffer
      : read.slice().buffer;
    const id = ++this.#nextId;
    const { promise, resolve } = Promise.withResolvers<Response>();
    this.#pending.set(id, new Waiting(this, resolve, this.#requestTimeout));
    const common = {
      id,
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      body,
    };
    this.#channel!.send(
      api ? { t: "api", key: api.key, params: api.params, ...common } : { t: "req", ...common },
    );
    return promise;
  }

  /** Marks the sandbox failed: its slices fail, pending work ends, its endpoints answer 503. */
  fail(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    this.#log.error(`extension ${this.name} failed: ${reason}`);
    if (this.#extension) {
      this.#extension.status = "failed";
      this.#extension.failure = reason;
    }
    for (const proxy of this.#proxies.values()) {
      proxy[INTERNALS].failure = `extension ${this.name} failed: ${reason}`;
      if (proxy.status === "started") proxy[INTERNALS].setStatus("failed");
    }
    const fault = new SandboxFault(reason);
    for (const pending of this.#pending.values()) pending.reject(fault);
    for (const open of this.#streams.values()) {
      open.controller.error(fault);
      open.pulled();
    }
    this.#streams.clear();
    this.#pending.clear();
    // A sandbox that dies while loading counts as a module that could not be imported.
    this.#loaded.resolve({
      t: "loaded",
      importFailed: true,
      error: { name: "SandboxFault", code: undefined, message: reason },
      slices: [],
      methods: [],
    });
    this.terminate();
  }

  /**
   * Ends the Worker. A Worker stuck in a synchronous loop is not stopped by terminate() and
   * keeps its thread until the process exits; it no longer gets messages or requests.
   */
  terminate(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#worker) {
      this.#worker.onmessage = null;
      this.#worker.terminate();
      this.#worker = undefined;
    }
  }

  /** The stop deadline of one slice, from now. */
  stopDeadline(): number {
    return Date.now() + this.#config.duration("server", "slice_stop_timeout") * 1000;
  }
}

function toMethod(descriptor: MethodDescriptor): MethodDefinition {
  const definition = method({
    path: descriptor.path,
    operation: descriptor.operation,
    apiVersion: descriptor.apiVersion,
    args: z.any(),
    clientTypes: descriptor.clientTypes,
    summary: descriptor.summary,
    description: descriptor.description,
    status: descriptor.status,
    enforceAuth: descriptor.enforceAuth,
    maxBodySize: descriptor.maxBodySize,
  });
  return { ...definition, jsonSchemas: { args: descriptor.args, returns: descriptor.returns } };
}

/** Features an extension in a sandbox declared with setFeatureManager. */
class StaticFeatures extends FeatureManager {
  readonly #features: Feature[];
  constructor(features: Feature[]) {
    super();
    this.#features = features;
  }
  override getFeatures(): Feature[] {
    return this.#features;
  }
}

/** A slice in a sandbox, as the server sees it. */
class ProxySlice extends ServerSlice {
  readonly #descriptor: SliceDescriptor;
  readonly #sandbox: Sandbox;

  constructor(descriptor: SliceDescriptor, sandbox: Sandbox) {
    super(descriptor.name);
    this.#descriptor = descriptor;
    this.#sandbox = sandbox;
    for (const handled of descriptor.handles) {
      const method = toMethod(handled);
      const key = `${method.operation} ${method.url}`;
      addHandler(this, {
        method,
        call: () => {
          throw new Error("a sandboxed method is forwarded, not called");
        },
        forward: (request, params, body) => sandbox.forward(request, { key, params }, body),
      });
    }
  }

  override getDependencies(): string[] {
    return this.#descriptor.dependencies;
  }
  override getDependedBy(): string[] {
    return this.#descriptor.dependedBy;
  }
  override prestart(): Promise<void> {
    return this.#sandbox.call(this.name, "prestart", 0);
  }
  override start(): Promise<void> {
    return this.#sandbox.call(this.name, "start", 0);
  }
  override prestop(): Promise<void> {
    return this.#sandbox.call(this.name, "prestop", this.#sandbox.stopDeadline());
  }
  override stop(): Promise<void> {
    return this.#sandbox.call(this.name, "stop", this.#sandbox.stopDeadline());
  }
  override scheduledTasks(): ScheduledTaskInfo[] {
    return this.#sandbox.tasks[this.name] ?? [];
  }
}
