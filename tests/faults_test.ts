/**
 * Sandboxed extensions that busy-loop, in a handler and in start, in a real server process:
 * the heartbeat finds them, they are reported failed with a reason, their endpoints answer 503,
 * the rest goes on serving, and SIGTERM still shuts the process down cleanly (a Worker stuck in
 * a loop cannot be terminated, so these run in a subprocess that ends with it).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getJson, serve, tempDir, writeExtension } from "./helpers.ts";

const FINE = `import { handle, method, ServerSlice } from "@inmanta/server";
export const ping = method({ path: "/ping", operation: "GET" });
class Fine extends ServerSlice { @handle(ping) ping() { return "pong"; } }
export function setup(app) { app.registerSlice(new Fine("fine.main")); }
`;

const SPIN = `import { handle, method, ServerSlice } from "@inmanta/server";
export const spin = method({ path: "/spin", operation: "GET" });
export const still = method({ path: "/still", operation: "GET" });
class Spin extends ServerSlice {
  start() { if (this.spinInStart) for (;;) {} }
  @handle(spin)
  spin() { for (;;) {} }
  @handle(still)
  still() { return "here"; }
}
export function setup(app) {
  const slice = new Spin("spin.main");
  slice.spinInStart = app.config.bool("extension.spin", "in_start");
  app.registerSlice(slice);
}
`;

async function start(inStart: boolean) {
  const root = await tempDir();
  await writeExtension(root.path, "fine", FINE);
  await writeExtension(root.path, "spin", SPIN);
  const cfg = join(root.path, "server.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]
enabled_extensions = spin, fine
extension_path = ${root.path}
sandbox_heartbeat_timeout = 1
[extension.spin]
in_start = ${inStart}
boot_failure = continue
`,
  );
  const server = serve(["--config", cfg, "--port", "0"], [root.path]);
  const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
  return { root, server, url };
}

async function spinFailure(url: string): Promise<string> {
  const status = await getJson(`${url}/api/v1/serverstatus`);
  const data = status.body.data as {
    extensions: { name: string; status: string; reason: string | null }[];
  };
  const spin = data.extensions.find((e) => e.name === "spin")!;
  assert.equal(spin.status, "failed");
  return spin.reason!;
}

Deno.test("faults: a handler in an endless loop fails its extension, not the server", async () => {
  const { root, server, url } = await start(false);
  await using _ = root;
  assert.equal((await getJson(`${url}/api/v2/still`)).status, 200);
  const spun = await getJson(`${url}/api/v2/spin`);
  assert.equal(spun.status, 503);
  assert.match(spun.body.message as string, /^extension spin failed: no heartbeat for 1s/);
  assert.match(await spinFailure(url), /^no heartbeat for 1s: the extension is busy/);
  const still = await getJson(`${url}/api/v2/still`);
  assert.equal(still.status, 503);
  assert.deepEqual((await getJson(`${url}/api/v2/ping`)).body, { data: "pong" });
  server.process.kill("SIGTERM");
  assert.equal((await server.process.status).code, 0);
  assert.match(server.stderr(), /server stopped/);
});

Deno.test("faults: a start in an endless loop fails its extension; the rest starts", async () => {
  const { root, server, url } = await start(true);
  await using _ = root;
  assert.match(await spinFailure(url), /^no heartbeat for 1s/);
  assert.deepEqual((await getJson(`${url}/api/v2/ping`)).body, { data: "pong" });
  const still = await getJson(`${url}/api/v2/still`);
  assert.equal(still.status, 503);
  const health = await getJson(`${url}/api/v2/health`);
  assert.deepEqual([health.status, health.body.message], [503, "server is degraded"]);
  server.process.kill("SIGTERM");
  assert.equal((await server.process.status).code, 0);
});
