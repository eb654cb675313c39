/**
 * Shared test helpers: real servers on 127.0.0.1 port 0 with extensions written as real files.
 */
import type { ExtraPackage } from "../src/registry/registry.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Config, Logger, type LogRecord, parseIni, Server } from "@inmanta/server/server";

/** A started (or failed) server for one test. */
export interface TestServer extends AsyncDisposable {
  server: Server;
  url: string;
  logs: LogRecord[];
  stop(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface TestServerOptions {
  /** INI text applied over the test defaults. */
  config?: string;
  /** Extension roots (server.extension_path). */
  roots?: string[];
  /** Extensions to enable. */
  enable?: string[];
  /** Call start(); default true. */
  start?: boolean;
  /** `extension.<name>.isolation` of every enabled extension; default the server's (process). */
  isolation?: "process" | "worker" | "none";
}

/** Builds a server on port 0 with test defaults; starts it unless `start: false`. */
export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  // Extensions' embedded databases go to a folder of this server's own, removed on stop.
  const stateDir = await Deno.makeTempDir({ prefix: "inmanta-state-" });
  const defaults = `[server]
state_dir = ${stateDir}
bind_address = 127.0.0.1
bind_port = 0
enabled_extensions = ${(options.enable ?? []).join(",")}
extension_path = ${(options.roots ?? []).join(":")}
shutdown_timeout = 5
${
    options.isolation === undefined
      ? ""
      : (options.enable ?? []).map((name) =>
        `[extension.${name}]\nisolation = ${options.isolation}\n`
      )
        .join("")
  }`;
  const config = new Config(
    [parseIni(defaults, "<test defaults>"), parseIni(options.config ?? "", "<test config>")],
  );
  const logger = new Logger("silent");
  const logs = logger.capture();
  const server = new Server({ config, logger });
  const stop = async () => {
    await server.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  };
  if (options.start ?? true) {
    try {
      await server.start();
    } catch (error) {
      await Deno.remove(stateDir, { recursive: true }).catch(() => {});
      throw error;
    }
  }
  return {
    server,
    get url() {
      return server.url;
    },
    logs,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A fresh temporary directory, removed when disposed. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "inmanta-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Writes `<root>/inmanta_ext/<name>/extension.ts` (and any extra files) and returns its folder. */
export async function writeExtension(
  root: string,
  name: string,
  source: string,
  files: Record<string, string> = {},
): Promise<string> {
  const dir = join(root, "inmanta_ext", name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "extension.ts"), source);
  for (const [file, text] of Object.entries(files)) {
    await Deno.mkdir(join(dir, file, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, file), text);
  }
  return dir;
}

/** Fetches JSON: status and parsed body. */
export async function getJson(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

/** A promise with its resolve function, for events a test waits on. */
export function deferred<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}

/**
 * Sends a request line as written, without the URL normalisation fetch() does (so `..` and
 * `%2e%2e` reach the server), and returns the status code.
 */
export async function rawStatus(baseUrl: string, target: string, method = "GET"): Promise<number> {
  const { hostname, port } = new URL(baseUrl);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `${method} ${target} HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`,
      ),
    );
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
    const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
    if (!status) throw new Error(`not an HTTP response: ${text.slice(0, 80)}`);
    return Number(status[1]);
  } finally {
    try {
      conn.close();
    } catch {
      // already closed by the server
    }
  }
}

/** Resolves with the first record the server logs from now on that matches `predicate`. */
export function logged(
  test: TestServer,
  predicate: (record: LogRecord) => boolean,
): Promise<LogRecord> {
  const { promise, resolve } = Promise.withResolvers<LogRecord>();
  test.server.logger.onRecord((record) => {
    if (predicate(record)) resolve(record);
  });
  return promise;
}

/** The project folder. */
export const PROJECT = fileURLToPath(new URL("..", import.meta.url));
const TASK = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json"))).tasks.serve as string;
/** The serve task's permission flags, so the tests run the server as `deno task serve` does. */
const SERVE_FLAGS = TASK.split(" ").filter((word) => word.startsWith("--allow-"));

/** A server subprocess. */
export interface Running {
  process: Deno.ChildProcess;
  /** Resolves with the first stderr line matching `pattern`. */
  line(pattern: RegExp): Promise<string>;
  /** All stderr so far. */
  stderr(): string;
}

/** The serve task's flags, with `extraRead` added to what it may read (and `extraWrite` write). */
export function serveFlags(extraRead: string[], extraWrite: string[] = []): string[] {
  return SERVE_FLAGS.map((f) => {
    if (f.startsWith("--allow-read=") && extraRead.length) return `${f},${extraRead.join(",")}`;
    if (f.startsWith("--allow-write=") && extraWrite.length) return `${f},${extraWrite.join(",")}`;
    return f;
  });
}

/** Runs `main.ts` as `deno task serve` does, with `extraRead` added to what it may read. */
export function serve(
  args: string[],
  extraRead: string[] = [],
  extra: { env?: Record<string, string>; flags?: string[]; write?: string[] } = {},
): Running {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...serveFlags(extraRead, extra.write),
      ...(extra.flags ?? []),
      "main.ts",
      ...args,
    ],
    cwd: PROJECT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...extra.env },
  }).spawn();
  let text = "";
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const line = text.split("\n").find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  const reading = (async () => {
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      check();
    }
  })();
  void process.stdout.cancel();
  return {
    process,
    line: (pattern) =>
      new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        check();
        reading.then(() => {
          if (waiters.some((w) => w.pattern === pattern)) {
            reject(new Error(`process ended without printing ${pattern}:\n${text}`));
          }
        });
      }),
    stderr: () => text,
  };
}

/**
 * The path of an external program a test needs (chromium, initdb, promtool), looked up on PATH
 * and in `extraDirs`. When it is missing: with `CI` set this throws (CI installs it, so the test
 * must run); otherwise it warns loudly, naming the Debian package, and the caller skips.
 */
export function externalBinary(
  binary: string,
  debianPackage: string,
  extraDirs: string[] = [],
): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const path = join(dir, binary);
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not in this folder
    }
  }
  if (Deno.env.get("CI")) {
    throw new Error(`${binary} not found (Debian package ${debianPackage}); CI must install it`);
  }
  console.warn(
    `\n*** SKIPPING tests that need ${binary}: not found on PATH. Install Debian package ` +
      `'${debianPackage}' (apt-get install ${debianPackage}) to run them. ***\n`,
  );
  return undefined;
}

/** This checkout as the registry serves it: `@inmanta/server` at its version. */
export async function corePackage(): Promise<ExtraPackage> {
  const config = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json")));
  return {
    name: config.name,
    version: config.version,
    dir: PROJECT,
    include: config.publish.include,
  };
}

/**
 * Forgets what Deno cached from a registry at `url`: the cache is keyed by host and port, and a
 * port reused from an earlier run would otherwise serve that run's package versions.
 */
export async function forgetCached(url: string): Promise<void> {
  const { stdout } = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] })
    .output();
  const cache = JSON.parse(new TextDecoder().decode(stdout)).modulesCache as string;
  const { hostname, port } = new URL(url);
  await Deno.remove(join(cache, "http", `${hostname}_PORT${port}`), { recursive: true })
    .catch(() => {});
}

/** The command lines of the process guests running now, as `ps` lists them (`pid args`). */
export async function guestProcesses(): Promise<string[]> {
  const { stdout } = await new Deno.Command("ps", { args: ["-eo", "pid=,args="], stdout: "piped" })
    .output();
  return new TextDecoder().decode(stdout).split("\n")
    .filter((line) => line.includes("guest_process"));
}

/** The pids of the process guests of extension `name` running now. */
export async function guestPids(name: string): Promise<number[]> {
  const location = `--location=https://${name.replaceAll("_", "-")}.extension.invalid/`;
  return (await guestProcesses()).filter((line) => line.includes(location))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

/**
 * Polls `check` until it returns a value, for state the server changes on its own time (a guest
 * failing, a restart); throws naming `what` after `ms` milliseconds.
 */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An extension as `/api/v1/serverstatus` lists it. */
export interface ExtensionStatus {
  name: string;
  status: string;
  reason: string | null;
  restarts: number;
  last_failure: string | null;
}

/** Every extension as `/api/v1/serverstatus` at `url` lists them. */
export async function extensionStatuses(url: string): Promise<ExtensionStatus[]> {
  const status = await getJson(`${url}/api/v1/serverstatus`);
  return (status.body.data as { extensions: ExtensionStatus[] }).extensions;
}

/** Extension `name` as `/api/v1/serverstatus` at `url` lists it. */
export async function extensionStatus(url: string, name: string): Promise<ExtensionStatus> {
  const found = (await extensionStatuses(url)).find((e) => e.name === name);
  if (!found) throw new Error(`serverstatus lists no extension ${name}`);
  return found;
}
