/**
 * The test kit: start a server with chosen extensions in a test, call it with a typed client,
 * stop it with `await using`, and check what a sandboxed extension was denied.
 *
 * @example
 * ```ts
 * import { startTestServer } from "@inmanta/server";
 * import { greet } from "./extension.ts";
 *
 * Deno.test("greets", async () => {
 *   await using test = await startTestServer({
 *     extensions: [{ name: "greeter", path: new URL("./", import.meta.url) }],
 *   });
 *   const { message } = await test.client.call(greet, { name: "world" });
 * });
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { Client } from "./client.ts";
import { Config } from "./config/config.ts";
import { parseIni } from "./config/ini.ts";
import { Logger, type LogRecord } from "./log.ts";
import { Server } from "./server.ts";

/** An extension for a test server. */
export interface TestExtension {
  /** Extension name (its slices are named `<name>.<slice>`). */
  name: string;
  /** Its module, its folder or a root holding `inmanta_ext/<name>/`; or a `jsr:`/`https:` source. */
  path?: string | URL;
  /** An already imported module with `setup` (runs in-process). */
  module?: { setup: (application: never) => unknown; [key: string]: unknown };
  /** `process` (the default), `worker` or `none`. */
  isolation?: "process" | "worker" | "none";
  /** Its permission grant, as `extension.<name>.permissions`. */
  permissions?: string;
}

/** Options of {@link startTestServer}. */
export interface TestServerOptions {
  /** The extensions to load besides core. */
  extensions?: TestExtension[];
  /** More configuration, as INI text. */
  config?: string;
}

/** A running test server. */
export interface TestServer extends AsyncDisposable {
  /** The server. */
  server: Server;
  /** Its base URL. */
  url: string;
  /** A typed client for it. */
  client: Client;
  /** Every log record so far. */
  logs: LogRecord[];
  /** Stops the server (also done by `await using`). */
  stop(): Promise<void>;
}

/** A denied access a sandboxed extension ran into. */
export interface Denial {
  /** The extension. */
  extension: string;
  /** The permission kind: read, write, net, env, run, ffi, sys or import. */
  kind: string;
  /** What it tried to reach, e.g. `/etc/hostname`. */
  target: string | undefined;
}

/**
 * Starts a server on 127.0.0.1 port 0 with `extensions`, logging nothing to the console (the
 * records are in `logs`).
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const extensions = options.extensions ?? [];
  const lines = [
    "[server]",
    "bind_address = 127.0.0.1",
    "bind_port = 0",
    "extension_path =",
    `enabled_extensions = ${extensions.map((e) => e.name).join(",")}`,
  ];
  // Extensions' embedded databases go to a folder of this server's own, removed on stop.
  const stateDir = await Deno.makeTempDir({ prefix: "inmanta-state-" }).catch(() => undefined);
  if (stateDir) lines.push(`state_dir = ${stateDir}`);
  const modules: Record<string, TestExtension["module"]> = {};
  for (const extension of extensions) {
    lines.push(`[extension.${extension.name}]`);
    if (extension.module) modules[extension.name] = extension.module;
    if (extension.path !== undefined) {
      const path = extension.path instanceof URL && extension.path.protocol === "file:"
        ? fileURLToPath(extension.path)
        : String(extension.path);
      lines.push(`source = ${path}`);
    }
    if (extension.isolation || extension.module) {
      lines.push(`isolation = ${extension.module ? "none" : extension.isolation}`);
    }
    if (extension.permissions) lines.push(`permissions = ${extension.permissions}`);
  }
  const config = new Config([
    parseIni(lines.join("\n"), "<test server>"),
    parseIni(options.config ?? "", "<test config>"),
  ]);
  const logger = new Logger("silent");
  const logs = logger.capture();
  const server = new Server({ config, logger, modules });
  const removeState = () =>
    stateDir ? Deno.remove(stateDir, { recursive: true }).catch(() => {}) : Promise.resolve();
  try {
    await server.start();
  } catch (error) {
    await removeState();
    throw error;
  }
  // In a test, an extension that failed in its sandbox is an error, not a degraded server.
  const failed = server.extensions.filter((e) => e.status === "failed");
  if (failed.length > 0) {
    await server.stop();
    await removeState();
    throw new Error(failed.map((e) => e.failure ?? `extension ${e.name} failed`).join("; "));
  }
  const url = server.url;
  const stop = async () => {
    await server.stop();
    await removeState();
  };
  return { server, url, client: new Client(url), logs, stop, [Symbol.asyncDispose]: stop };
}

const DENIED =
  /^permission denied in \S+ \S+: Requires (?<kind>\w+) access(?: to "(?<target>[^"]*)")?/;

/** The accesses extensions were denied, from a test server's log. */
export function deniedAccess(test: TestServer, extension?: string): Denial[] {
  const out: Denial[] = [];
  for (const record of test.logs) {
    const match = DENIED.exec(record.message);
    if (!match || (extension && record.source !== extension)) continue;
    out.push({ extension: record.source, kind: match.groups!.kind, target: match.groups!.target });
  }
  return out;
}

/** Throws unless `extension` was denied `kind` access (to `target`, when given). */
export function assertDenied(
  test: TestServer,
  extension: string,
  kind: string,
  target?: string,
): void {
  const found = deniedAccess(test, extension).some((d) =>
    d.kind === kind && (target === undefined || d.target === target)
  );
  if (!found) {
    throw new Error(
      `extension ${extension} was not denied ${kind} access${
        target ? ` to ${target}` : ""
      }; denials: ${JSON.stringify(deniedAccess(test))}`,
    );
  }
}

export { Client, ClientError, type ClientOptions } from "./client.ts";
// The types the kit's own types name (the server, its slices, its configuration...): the same
// symbols as in `@inmanta/server` and `@inmanta/server/server`.
export type * from "./embed.ts";
