/**
 * Faults under load, in a reduced and bounded form of the wrk scenario: concurrent clients
 * drive a real server process while one sandboxed extension crashes and another hangs; then
 * SIGTERM arrives during load with an event stream open. Every request is counted on both sides.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serve, tempDir, writeExtension } from "./helpers.ts";

const HEALTHY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const ping = method({ path: "/ping", operation: "GET" });
let handled = 0;
class H extends ServerSlice {
  @handle(ping) ping() { handled++; return "pong"; }
  stop() { this.logger.info("handled " + handled); }
}
export function setup(app) { app.registerSlice(new H("healthy.main")); }
`;
const CRASHY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const crash = method({ path: "/crash", operation: "POST" });
export const c = method({ path: "/c", operation: "GET" });
class C extends ServerSlice {
  @handle(crash) crash() { setTimeout(() => { throw new Error("crashed under load"); }, 0); return "ok"; }
  @handle(c) c() { return "c"; }
}
export function setup(app) { app.registerSlice(new C("crashy.main")); }
`;
const HANGY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const hang = method({ path: "/hang", operation: "POST" });
export const h = method({ path: "/h", operation: "GET" });
class G extends ServerSlice {
  @handle(hang) hang() { for (;;) {} }
  @handle(h) h() { return "h"; }
}
export function setup(app) { app.registerSlice(new G("hangy.main")); }
`;
const EVENTS = `import { handle, method, ServerSlice, streaming } from "@inmanta/server";
export const events = method({ path: "/events", operation: "GET" });
class E extends ServerSlice {
  @handle(events) events() {
    const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(": open\\n\\n")); } });
    return streaming(new Response(body, { headers: { "content-type": "text/event-stream" } }));
  }
}
export function setup(app) { app.registerSlice(new E("events.main")); }
`;

type Tally = Record<string, Record<string, number>>;

/** `clients` loops request `paths` round-robin until `running()` is false; tallies by status. */
async function load(
  url: string,
  paths: string[],
  clients: number,
  running: () => boolean,
): Promise<Tally> {
  const tally: Tally = {};
  const count = (path: string, outcome: string) => {
    tally[path] ??= {};
    tally[path][outcome] = (tally[path][outcome] ?? 0) + 1;
  };
  await Promise.all(Array.from({ length: clients }, async (_, client) => {
    for (let i = client; running(); i++) {
      const path = paths[i % paths.length];
      try {
        const response = await fetch(`${url}${path}`);
        await response.body?.cancel();
        count(path, String(response.status));
      } catch {
        count(path, "error");
      }
    }
  }));
  return tally;
}

async function server(extensions: Record<string, [string, string]>, extra = "") {
  const root = await tempDir();
  for (const [name, [source]] of Object.entries(extensions)) {
    await writeExtension(root.path, name, source);
  }
  const cfg = join(root.path, "load.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]
enabled_extensions = ${Object.keys(extensions).join(",")}
extension_path = ${root.path}
sandbox_heartbeat_timeout = 1
${extra}
${
      Object.entries(extensions).map(([n, [, iso]]) => `[extension.${n}]\nisolation = ${iso}\n`)
        .join("")
    }`,
  );
  const running = serve(["--config", cfg, "--port", "0"], [root.path]);
  const url = /server running at (\S+)/.exec(await running.line(/server running at/))![1];
  return { root, running, url };
}

Deno.test("load: a crash and a hang under load fail only their extensions", async () => {
  const { root, running, url } = await server({
    healthy: [HEALTHY, "worker"],
    crashy: [CRASHY, "worker"],
    hangy: [HANGY, "worker"],
  });
  await using _ = root;
  let go = true;
  const traffic = load(url, ["/api/v2/ping", "/api/v2/c", "/api/v2/h"], 16, () => go);
  const crashed = running.line(/extension crashy failed/);
  const hung = running.line(/extension hangy failed/);
  await fetch(`${url}/api/v2/crash`, { method: "POST" }).then((r) => r.body?.cancel());
  const hanging = fetch(`${url}/api/v2/hang`, { method: "POST" });
  await Promise.all([crashed, hung]);
  const afterFailure = load(url, ["/api/v2/ping", "/api/v2/c", "/api/v2/h"], 16, () => go);
  // Let the load run past the failures for a while, measured in requests, not time.
  await load(
    url,
    ["/api/v2/ping"],
    4,
    (() => {
      let n = 0;
      return () => n++ < 400;
    })(),
  );
  go = false;
  const [during, after] = await Promise.all([traffic, afterFailure]);
  if (Deno.env.get("LOAD_REPORT")) console.log(JSON.stringify({ during, after }));
  assert.equal((await hanging).status, 503);

  for (const tally of [during, after]) {
    assert.deepEqual(Object.keys(tally["/api/v2/ping"]), ["200"], JSON.stringify(tally));
    for (const path of ["/api/v2/c", "/api/v2/h"]) {
      for (const outcome of Object.keys(tally[path])) {
        assert.ok(
          ["200", "503"].includes(outcome),
          `${path}: ${outcome} in ${JSON.stringify(tally)}`,
        );
      }
    }
  }
  assert.deepEqual(Object.keys(after["/api/v2/c"]), ["503"]);
  assert.deepEqual(Object.keys(after["/api/v2/h"]), ["503"]);
  running.process.kill("SIGTERM");
  assert.equal((await running.process.status).code, 0);
});

Deno.test("load: SIGTERM during load loses no accepted request; event streams end", async () => {
  const { root, running, url } = await server(
    { healthy: [HEALTHY, "worker"], events: [EVENTS, "none"] },
    "shutdown_timeout = 5",
  );
  await using _ = root;
  const stream = await fetch(`${url}/api/v2/events`);
  const reader = stream.body!.getReader();
  assert.match(new TextDecoder().decode((await reader.read()).value), /: open/);

  let sent = 0;
  let exited = false;
  running.process.status.then(() => exited = true);
  const traffic = load(url, ["/api/v2/ping"], 16, () => {
    if (++sent === 300) running.process.kill("SIGTERM");
    return !exited;
  });
  const ended = (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return true;
  })();
  const status = await running.process.status;
  const tally = await traffic;
  assert.equal(status.code, 0);
  assert.equal(await ended, true, "the event stream ended");
  const handled = Number(/handled (\d+)/.exec(running.stderr())![1]);
  const ok = tally["/api/v2/ping"]["200"];
  assert.equal(ok, handled, `client got ${ok} answers of 200, server handled ${handled}`);
  if (Deno.env.get("LOAD_REPORT")) console.log(JSON.stringify({ sent, handled, tally }));
  for (const outcome of Object.keys(tally["/api/v2/ping"])) {
    assert.ok(["200", "503", "error"].includes(outcome), JSON.stringify(tally));
  }
});
