/**
 * The inside of a sandbox: runs in a Worker whose `deno.permissions` are the extension's grant.
 * It imports the extension, runs `setup`, and then serves the server's lifecycle calls and
 * forwarded requests for the slices `setup` registered. Importing the library here first means
 * the extension's own `import "@inmanta/server"` needs no read permission.
 *
 * @module
 */
import { Registry } from "../application.ts";
import { Config } from "../config/config.ts";
import { ExtensionError, SliceError } from "../errors.ts";
import type { ExtensionSpec } from "../extensions/discovery.ts";
import { type ExtensionModule, importExtension, setUpExtension } from "../extensions/host.ts";
import { StaticTable } from "../http/static.ts";
import { isStreaming } from "../http/transport.ts";
import { Logger } from "../log.ts";
import type { MethodDefinition } from "../protocol/method.ts";
import { Invoker } from "../protocol/invoke.ts";
import { schemaOf } from "../protocol/openapi.ts";
import { collectRoutes, type Route } from "../protocol/routes.ts";
import { prestopSlice, stopSlice } from "../slices/lifecycle.ts";
import { INTERNALS, type ServerSlice, type SliceServer } from "../slices/slice.ts";
import {
  type Batch,
  Channel,
  describe,
  EnvLink,
  type ErrorDescriptor,
  type FromSandbox,
  type MethodDescriptor,
  type Port,
  type ToSandbox,
} from "./protocol.ts";
import "../mod.ts";

const scope = globalThis as unknown as Port & {
  onmessage: ((event: MessageEvent<Batch | { envBuffer: SharedArrayBuffer }>) => void) | null;
};
let envLink: EnvLink | undefined;
const channel = new Channel<FromSandbox>(scope);
const logger = new Logger("silent");
logger.onRecord(({ level, source, message }) => channel.send({ t: "log", level, source, message }));

let slices = new Map<string, ServerSlice>();
const compatibility = Promise.withResolvers<ErrorDescriptor | undefined>();
const invokers = new Map<string, Invoker>();
const decoder = new TextDecoder();
let statics: StaticTable | undefined;
let view: SliceServer | undefined;

/** How often the sandbox says it is alive; the server declares it hung after its own timeout. */
const HEARTBEAT_MS = 200;

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

async function load(message: Extract<ToSandbox, { t: "load" }>): Promise<void> {
  // INMANTA_* overrides come from the server, which may read them (the sandbox may not).
  const config = new Config(
    [new Map(message.config.map(([s, o]) => [s, new Map(o)]))],
    (name) => envLink?.ask({ postMessage: (m) => scope.postMessage(m, []) }, name),
  );
  const registry = new Registry(config);
  const spec: ExtensionSpec = {
    name: message.name,
    specifier: message.specifier,
    origin: "path",
  };
  let module: ExtensionModule;
  try {
    module = await importExtension(spec);
  } catch (error) {
    channel.send({
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
        channel.send({
          t: "compat",
          exported: typeof exported === "string" ? exported : exported === undefined ? null : false,
        });
        const error = await compatibility.promise;
        if (error) throw new ExtensionError(error.code ?? "extension.incompatible", error.message);
      },
    );
    const table = new StaticTable();
    for (const slice of registry.slices) {
      const internals = slice[INTERNALS];
      internals.attach(logger.child(slice.name));
      const announce = (location: string, start: boolean) =>
        channel.send({ t: "mount", slice: slice.name, location, start });
      const add = (mount: Parameters<StaticTable["add"]>[0]) => {
        table.add(mount, slice.name);
        announce(mount.location, mount.kind === "directory" && mount.start);
      };
      for (const mount of internals.mounts) add(mount);
      internals.onMount = add;
      slices.set(slice.name, slice);
    }
    const routes: Route[] = collectRoutes(registry.slices, [{ name: message.name, methods }]);
    for (const route of routes) {
      invokers.set(
        `${route.method.operation} ${route.method.url}`,
        new Invoker(route, logger.child(message.name)),
      );
    }
    statics = table;
    view = {
      config,
      getSlice: <T extends ServerSlice>(name: string): T => {
        const slice = slices.get(name);
        if (!slice) {
          throw new SliceError(
            "slice.not_reachable",
            `slice ${name} is not reachable from sandboxed extension ${message.name}`,
          );
        }
        return slice as T;
      },
    };
    channel.send({
      t: "loaded",
      version,
      slices: registry.slices.map((slice) => ({
        name: slice.name,
        dependencies: slice.getDependencies(),
        dependedBy: slice.getDependedBy(),
        handles: routes.filter((r) => r.slice === slice).map((r) => descriptor(r.method)),
      })),
      methods: methods.map(descriptor),
      features: registry.featureOwner ? registry.featureManager.getFeatures() : undefined,
    });
  } catch (error) {
    slices = new Map();
    channel.send({ t: "loaded", error: describe(error), slices: [], methods: [] });
  }
}

async function call(message: Extract<ToSandbox, { t: "call" }>): Promise<void> {
  const slice = slices.get(message.slice);
  try {
    if (!slice) throw new ExtensionError("sandbox.slice", `no slice ${message.slice} here`);
    switch (message.op) {
      case "prestart":
        slice[INTERNALS].setStatus("starting");
        await slice.prestart(view!);
        break;
      case "start":
        await slice.start();
        slice[INTERNALS].setStatus("started");
        break;
      case "prestop":
        await prestopSlice(slice, logger, message.until);
        break;
      case "stop":
        await stopSlice(slice, logger, message.until);
        break;
    }
    channel.send({ t: "done", id: message.id });
  } catch (error) {
    if (error instanceof Error && error.stack) logger.child(message.slice).debug(error.stack);
    channel.send({ t: "done", id: message.id, error: describe(error) });
  }
}

/** A request for static content: API calls come routed, as `api` messages. */
async function request(message: Extract<ToSandbox, { t: "req" }>): Promise<void> {
  let response: Response;
  try {
    const request = new Request(message.url, {
      method: message.method,
      headers: message.headers,
      body: message.body,
    });
    response = await statics!.serve(request, new URL(message.url).pathname) ??
      Response.json({ message: `no such file: ${new URL(message.url).pathname}` }, {
        status: 404,
      });
  } catch (error) {
    logger.error(`request ${message.method} ${message.url} failed: ${describe(error).message}`);
    response = Response.json({ message: "internal server error" }, { status: 500 });
  }
  await respond(message.id, response);
}

/** Bodies up to this size (by content-length) cross in one message. */
const BUFFERED = 1 << 20;
/** Streamed bodies, by response id, read one chunk per `pull` from the server. */
const streams = new Map<number, ReadableStreamDefaultReader<Uint8Array>>();

async function respond(id: number, response: Response): Promise<void> {
  const status = response.status;
  const headers = [...response.headers];
  const length = Number(response.headers.get("content-length") ?? NaN);
  const longLived = isStreaming(response);
  if (!response.body || (!longLived && length <= BUFFERED)) {
    const body = response.body ? await response.arrayBuffer() : null;
    channel.send({ t: "res", id, status, headers, body });
    return;
  }
  streams.set(id, response.body.getReader());
  channel.send({ t: "res", id, status, headers, body: null, stream: true, longLived });
}

async function pull(id: number): Promise<void> {
  const reader = streams.get(id);
  if (!reader) return;
  try {
    const { done, value } = await reader.read();
    if (done) {
      streams.delete(id);
      channel.send({ t: "end", id });
      return;
    }
    // Transfer a buffer of exactly this chunk (a view may share a larger one).
    channel.send({ t: "chunk", id, body: value.slice().buffer });
  } catch (error) {
    streams.delete(id);
    channel.send({ t: "end", id, error: describe(error).message });
  }
}

/** An API call the server routed: no Request, no router, no Response unless needed. */
async function api(message: Extract<ToSandbox, { t: "api" }>): Promise<void> {
  const { url, method } = message;
  const query = url.indexOf("?");
  const outcome = await invokers.get(message.key)!.invoke({
    method,
    path: url.slice(url.indexOf("/", url.indexOf("//") + 2), query >= 0 ? query : undefined),
    params: message.params,
    search: query >= 0 ? url.slice(query) : "",
    body: message.body ? decoder.decode(message.body) : "",
    request: () => new Request(url, { method, headers: message.headers, body: message.body }),
  });
  if ("json" in outcome) {
    channel.send({ t: "json", id: message.id, status: outcome.status, json: outcome.json });
  } else {
    await respond(message.id, outcome.response);
  }
}

scope.onmessage = (event) => {
  const data = event.data;
  if ("envBuffer" in data) {
    envLink = new EnvLink(data.envBuffer);
    return;
  }
  channel.acknowledgeSoon();
  for (const message of Channel.decode<ToSandbox>(data)) {
    if (message.t === "api") void api(message);
    else if (message.t === "compat") compatibility.resolve(message.error);
    else if (message.t === "req") void request(message);
    else if (message.t === "call") void call(message);
    else if (message.t === "pull") void pull(message.id);
    else if (message.t === "cancel") {
      streams.get(message.id)?.cancel().catch(() => {});
      streams.delete(message.id);
    } else if (message.t === "load") void load(message);
  }
};

setInterval(() => {
  const tasks: Record<string, ReturnType<ServerSlice["scheduledTasks"]>> = {};
  for (const [name, slice] of slices) tasks[name] = slice.scheduledTasks();
  channel.send({ t: "beat", tasks });
}, HEARTBEAT_MS);
