/**
 * The command line as users run it: a real `deno run main.ts` subprocess with the serve task's
 * permissions, on the default configuration and on bad ones.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getJson, PROJECT, serve, serveFlags, tempDir, writeExtension } from "./helpers.ts";

async function run(
  args: string[],
  extraRead: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...serveFlags(extraRead), "main.ts", ...args],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

Deno.test("main: --help", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: deno task serve \[options\]/);
  for (const flag of ["--config FILE", "--config-dir DIR", "--port N", "--log-level LEVEL"]) {
    assert.ok(stdout.includes(flag), flag);
  }
  assert.match(
    stdout,
    /server\.bind_port\s+port to listen on; 0 picks a free one \(int, default 8888\)/,
  );
  assert.match(stdout, /extension\.<name>\.restart\s+never or on-failure/);
});

Deno.test("main: the default configuration serves core and the example extension", async () => {
  const server = serve(["--port", "0"]);
  const line = await server.line(/server running at http:\/\//);
  const url = /server running at (\S+)/.exec(line)![1];

  const status = await getJson(`${url}/api/v1/serverstatus`);
  const data = status.body.data as { extensions: { name: string }[]; slices: { name: string }[] };
  assert.deepEqual(data.extensions.map((e) => e.name), ["core", "ui", "new_extension"]);
  assert.ok(data.slices.some((s) => s.name === "new_extension.greeter"));
  const greeting = await getJson(`${url}/api/v2/greeting/world?shout=true`);
  assert.deepEqual(greeting.body, { data: { message: "HELLO WORLD" } });
  const page = await fetch(`${url}/greeter/`);
  assert.match(await page.text(), /<h1>Greeter<\/h1>/);

  server.process.kill("SIGINT");
  const { code } = await server.process.status;
  assert.equal(code, 0);
  assert.match(server.stderr(), /SIGINT received: shutting down/);
  assert.match(server.stderr(), /server stopped/);
});

Deno.test("main: SIGTERM drains requests in flight before any prestop (listener first, as Inmanta), then prestop and stop, exits 0", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "drain",
    `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const wait = method({ path: "/wait", operation: "GET", returns: z.string() });
class Drain extends ServerSlice {
  prestop() { this.logger.info("prestop ran"); }
  stop() { this.logger.info("stop ran"); }
  @handle(wait)
  async wait() {
    // Answers only once the server got SIGTERM: the request is in flight during shutdown.
    const { promise, resolve } = Promise.withResolvers();
    Deno.addSignalListener("SIGTERM", resolve);
    this.logger.info("request waiting for shutdown");
    await promise;
    Deno.removeSignalListener("SIGTERM", resolve);
    this.logger.info("request completed");
    return "completed during shutdown";
  }
}
export function setup(app) { app.registerSlice(new Drain("drain.main")); }
`,
  );
  const cfg = join(root.path, "drain.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = drain\nextension_path = ${root.path}\n[extension.drain]\nisolation = none\n`,
  );
  const server = serve(["--config", cfg, "--port", "0"], [root.path]);
  const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
  const inFlight = getJson(`${url}/api/v2/wait`);
  await server.line(/request waiting for shutdown/);
  server.process.kill("SIGTERM");
  const response = await inFlight;
  assert.deepEqual([response.status, response.body], [200, { data: "completed during shutdown" }]);
  assert.equal((await server.process.status).code, 0);
  const log = server.stderr();
  assert.ok(log.indexOf("request completed") < log.indexOf("prestop ran"), log);
  assert.ok(log.indexOf("prestop ran") < log.indexOf("stop ran"), log);
  assert.match(log, /server stopped/);
});

Deno.test("main: a sandbox gets its INMANTA_* overrides, but no secrets and no other's", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "peek_env",
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const peek = method({ path: "/peek-env", operation: "GET" });
let seen = {};
class Peek extends ServerSlice {
  @handle(peek) peek() { return seen; }
}
export function setup(app) {
  app.registerDefaultOptions("extension.peek_env", { level: { type: "int", default: 1, help: "" } });
  seen = {
    level: app.config.int("extension.peek_env", "level"),
    note: app.config.string("extension.peek_env", "note"),
    timeout: app.config.get("server", "shutdown_timeout"),
    key: app.config.get("auth_jwt_default", "key") ?? null,
    other: app.config.get("extension.peek", "token") ?? null,
  };
  app.registerSlice(new Peek("peek_env.main"));
}
`,
  );
  const cfg = join(root.path, "env.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = peek_env\nextension_path = ${root.path}\n` +
      `[extension.peek_env]\nnote = from the file\n`,
  );
  const server = serve(["--config", cfg, "--port", "0"], [root.path], {
    env: {
      INMANTA_EXTENSION_PEEK_ENV_LEVEL: "7",
      INMANTA_SERVER_SHUTDOWN_TIMEOUT: "3",
      INMANTA_AUTH_JWT_DEFAULT_KEY: "a-signing-key-of-at-least-32-characters!",
      INMANTA_EXTENSION_PEEK_TOKEN: "not yours",
    },
  });
  const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
  const r = await getJson(`${url}/api/v2/peek-env`);
  assert.deepEqual(r.body, {
    data: { level: 7, note: "from the file", timeout: "3", key: null, other: null },
  });
  server.process.kill("SIGTERM");
  assert.equal((await server.process.status).code, 0);
});

Deno.test("main: start-up errors print one line and exit 1", async (t) => {
  await using root = await tempDir();
  const write = async (name: string, text: string) => {
    const file = join(root.path, name);
    await Deno.writeTextFile(file, text);
    return file;
  };
  const cases: [string, string[], RegExp][] = [
    [
      "unknown extension",
      ["--config", await write("unknown.cfg", "[server]\nenabled_extensions = ghost\n")],
      /^inmanta: start-up failed \(boot_failure = abort\): extension ghost is enabled but not found; looked for .*inmanta_ext\/ghost\/extension\.ts$/,
    ],
    [
      "malformed configuration",
      ["--config", await write("bad.cfg", "[server]\nbind_port 8888\n")],
      /^inmanta: start-up failed: .*bad\.cfg:2: expected 'key = value', got 'bind_port 8888'$/,
    ],
    [
      "a value of the wrong type",
      ["--config", await write("type.cfg", "[server]\nbind_port = lots\n")],
      /^inmanta: start-up failed: .*type\.cfg:2: option server\.bind_port = 'lots' is not an integer$/,
    ],
    ["an unknown flag", ["--prot", "1"], /^inmanta: Unknown option '--prot'.*\(see --help\)$/],
    ["a bad port", ["--port", "http"], /^inmanta: --port http: not a port number \(0-65535\)$/],
  ];
  for (const [name, args, pattern] of cases) {
    await t.step(name, async () => {
      const { code, stderr } = await run(args, [root.path]);
      assert.equal(code, 1, stderr);
      const lines = stderr.trim().split("\n");
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0], pattern);
    });
  }
});
