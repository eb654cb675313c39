/**
 * Restarts under attack: hostile or unlucky process guests (one that crashes after every start,
 * one that hangs or changes its slices on a new start, one whose folder vanished), requests and
 * service calls in flight when a guest dies, static content and scheduled tasks across a restart,
 * counters that must never go down, and SIGTERM to a real server while a restart is pending or
 * under way. Each checks that no guest process is left behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseHost } from "../src/database/database_host.ts";
import { SqliteEngine } from "../src/database/sqlite_engine.ts";
import {
  eventually,
  extensionStatus,
  getJson,
  guestPids,
  serve,
  startServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";

/** The value of one series of `/metrics`. */
async function metric(url: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Counts its starts in a file of its folder; crashes 200 ms after every start. */
const LOOPER = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/looper/pid", operation: "GET" });
class Looper extends ServerSlice {
  async start() {
    const runs = Number(await Deno.readTextFile("runs").catch(() => "0")) + 1;
    await Deno.writeTextFile("runs", String(runs));
    setTimeout(() => Deno.exit(3), 200);
  }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Looper("looper.main")); }
`;

Deno.test("restart attack: a guest that crashes after every start stays failed, counted once per restart, nothing left running", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "looper", LOOPER);
  await using test = await startServer({
    roots: [root.path],
    enable: ["looper"],
    config: `[server]
restart = on-failure
restart_max_failures = 3
[extension.looper]
permissions = write=${dir}
`,
  });
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "looper");
    return /stays failed/.test(e.reason ?? "") ? e : undefined;
  }, "looper to stay failed");
  assert.equal(failed.restarts, 2);
  assert.equal(failed.last_failure, "exited with code 3");
  assert.equal(await Deno.readTextFile(join(dir, "runs")), "3");
  assert.equal(await metric(test.url, `inmanta_sandbox_restarts_total{extension="looper"}`), 2);
  assert.equal(
    await metric(test.url, `inmanta_sandbox_state{extension="looper",state="failed"}`),
    1,
  );
  assert.deepEqual(await guestPids("looper"), [], "no guest left running");
  const after = await getJson(`${test.url}/api/v2/looper/pid`);
  assert.equal(after.status, 503);
  assert.equal(after.headers.get("retry-after"), null);
});

/**
 * Registers a slice whose name, or whose endpoint, depends on how often setup ran (counted in a
 * file of its folder): `mode = name` or `mode = route`.
 */
const SHIFTY = `import { handle, method, ServerSlice } from "@inmanta/server";
// Not exported: a module's exports must all have handlers, and each run handles other ones.
const one = method({ path: "/shifty/one", operation: "GET" });
const two = method({ path: "/shifty/two", operation: "GET" });
const crash = method({ path: "/shifty/crash", operation: "POST" });
class First extends ServerSlice {
  @handle(one) one() { return 1; }
  @handle(crash) crash() { Deno.exit(9); }
}
class Second extends ServerSlice {
  @handle(two) two() { return 2; }
  @handle(crash) crash() { Deno.exit(9); }
}
export function setup(app) {
  const runs = Number((() => { try { return Deno.readTextFileSync("runs"); } catch { return "0"; } })()) + 1;
  Deno.writeTextFileSync("runs", String(runs));
  const byName = app.config.string("extension.shifty", "mode") === "name";
  if (runs === 1) app.registerSlice(new First("shifty.main"));
  else app.registerSlice(byName ? new First("shifty.other") : new Second("shifty.main"));
}
`;

for (const mode of ["name", "route"]) {
  Deno.test(`restart attack: a guest whose setup registers other slices (${mode}) on a new start stays failed and says why`, async () => {
    await using root = await tempDir();
    const dir = await writeExtension(root.path, "shifty", SHIFTY);
    await using test = await startServer({
      roots: [root.path],
      enable: ["shifty"],
      config: `[server]
restart = on-failure
[extension.shifty]
permissions = write=${dir}
mode = ${mode}
`,
    });
    assert.deepEqual((await getJson(`${test.url}/api/v2/shifty/one`)).body, { data: 1 });
    const crashed = await fetch(`${test.url}/api/v2/shifty/crash`, { method: "POST" });
    await crashed.body?.cancel();
    const failed = await eventually(async () => {
      const e = await extensionStatus(test.url, "shifty");
      return e.restarts === 1 && !/restarting (in|now)/.test(e.reason ?? "") ? e : undefined;
    }, "shifty to fail its restart");
    assert.equal(failed.status, "failed");
    assert.match(
      failed.reason ?? "",
      mode === "name"
        ? /^its slices changed from shifty.main to shifty.other on restart$/
        : /^slice shifty.main changed its endpoints, services or dependencies on restart$/,
    );
    const one = await getJson(`${test.url}/api/v2/shifty/one`);
    assert.equal(one.status, 503, JSON.stringify(one.body));
    assert.equal(one.headers.get("retry-after"), null, "it stays failed");
    assert.deepEqual(await guestPids("shifty"), []);
  });
}

/** Starts once; its second start hangs, its third serves. */
const SLOWPOKE = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/slowpoke/pid", operation: "GET" });
class Slowpoke extends ServerSlice {
  async start() {
    const runs = Number(await Deno.readTextFile("runs").catch(() => "0")) + 1;
    await Deno.writeTextFile("runs", String(runs));
    if (runs === 2) await new Promise(() => {});
  }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Slowpoke("slowpoke.main")); }
`;

Deno.test("restart attack: a new start that hangs past slice_start_timeout counts as a failure and the backoff goes on", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "slowpoke", SLOWPOKE);
  await using test = await startServer({
    roots: [root.path],
    enable: ["slowpoke"],
    config: `[server]
restart = on-failure
slice_start_timeout = 1
[extension.slowpoke]
permissions = write=${dir}
`,
  });
  const first = (await getJson(`${test.url}/api/v2/slowpoke/pid`)).body.data as number;
  assert.deepEqual(await guestPids("slowpoke"), [first]);
  Deno.kill(first, "SIGKILL");
  const third = await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/slowpoke/pid`);
    return answer.status === 200 ? answer.body.data as number : undefined;
  }, "slowpoke to serve again");
  assert.notEqual(third, first);
  assert.equal(await Deno.readTextFile(join(dir, "runs")), "3");
  const e = await extensionStatus(test.url, "slowpoke");
  assert.equal(e.status, "loaded");
  assert.equal(e.restarts, 2);
  assert.equal(
    e.last_failure,
    "restart 1 failed: slice slowpoke.main did not finish start within 1s",
  );
  assert.deepEqual(await guestPids("slowpoke"), [third], "the hung guest was ended");
});

const PLAIN = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/vanish/pid", operation: "GET" });
class Plain extends ServerSlice {
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Plain("vanish.main")); }
`;

Deno.test("restart attack: a guest whose folder vanished cannot be started again: it stays failed, the server lives on", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "vanish", PLAIN);
  await using test = await startServer({
    roots: [root.path],
    enable: ["vanish"],
    config: `[server]\nrestart = on-failure\nrestart_max_failures = 2\n`,
  });
  const pid = (await getJson(`${test.url}/api/v2/vanish/pid`)).body.data as number;
  await Deno.remove(dir, { recursive: true });
  Deno.kill(pid, "SIGKILL");
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "vanish");
    return e.status === "failed" && !/restarting (in|now)/.test(e.reason ?? "") ? e : undefined;
  }, "vanish to stay failed");
  assert.match(failed.reason ?? "", /stays failed/);
  assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 503);
  assert.deepEqual(await guestPids("vanish"), []);
});

/**
 * A guest with a request that never ends, a service that never answers, static content, a
 * scheduled task, and an endpoint that calls `core.server` through the Remote it took in prestart.
 */
const BUSY = `import { handle, method, ServerSlice, service } from "@inmanta/server";
export const pid = method({ path: "/busy/pid", operation: "GET" });
export const hang = method({ path: "/busy/hang", operation: "GET" });
export const status = method({ path: "/busy/status", operation: "GET" });
class Busy extends ServerSlice {
  #core;
  getDependencies() { return ["core.server"]; }
  prestart(server) { this.#core = server.getSlice("core.server"); }
  start() {
    this.addStaticContent("/busy/hello.txt", "hello", "text/plain");
    this.schedule(function tick() {}, 1, { initialDelay: 0 });
  }
  @service
  async never() { await new Promise(() => {}); }
  @handle(pid)
  pid() { return Deno.pid; }
  @handle(hang)
  async hang() { await new Promise(() => {}); }
  @handle(status)
  async status() { return (await this.#core.getServerStatus()).version; }
}
export function setup(app) { app.registerSlice(new Busy("busy.main")); }
`;

/** Calls busy.main's service that never answers; says what the call rejected with. */
const WAITER = `import { handle, method, ServerSlice } from "@inmanta/server";
export const wait = method({ path: "/waiter/wait", operation: "GET" });
class Waiter extends ServerSlice {
  #busy;
  getDependencies() { return ["busy.main"]; }
  prestart(server) { this.#busy = server.getSlice("busy.main"); }
  @handle(wait)
  async wait() {
    try { return await this.#busy.never(); } catch (error) { return error.message; }
  }
}
export function setup(app) { app.registerSlice(new Waiter("waiter.main")); }
`;

async function busyServer(root: string) {
  await writeExtension(root, "busy", BUSY);
  await writeExtension(root, "waiter", WAITER);
  return await startServer({
    roots: [root],
    enable: ["busy", "waiter"],
    // A request the guest never answers ends after a minute: long enough to tell a hang.
    config: `[server]\nrestart = on-failure\nsandbox_request_timeout = 60\n`,
  });
}

Deno.test("restart attack: requests and service calls in flight when the guest dies end at once with 503 and Retry-After, not a hang", async () => {
  await using root = await tempDir();
  await using test = await busyServer(root.path);
  const pid = (await getJson(`${test.url}/api/v2/busy/pid`)).body.data as number;
  const hanging = getJson(`${test.url}/api/v2/busy/hang`);
  const waiting = getJson(`${test.url}/api/v2/waiter/wait`);
  // Both reached the server and wait on the guest (the server counts requests in flight).
  await eventually(async () => {
    const text = await (await fetch(`${test.url}/metrics`)).text();
    const busy = (route: string) =>
      new RegExp(`^inmanta_http_requests_in_flight\\{[^}]*route="${route}"[^}]*\\} 1$`, "m")
        .test(text);
    return busy("/api/v2/busy/hang") && busy("/api/v2/waiter/wait") ? true : undefined;
  }, "both requests to be in flight");
  Deno.kill(pid, "SIGKILL");
  const hung = await hanging;
  assert.equal(hung.status, 503);
  assert.equal(
    hung.body.message,
    "extension busy is restarting after a failure: killed by SIGKILL",
  );
  assert.ok(Number(hung.headers.get("retry-after")) >= 1);
  const waited = await waiting;
  assert.equal(waited.status, 200);
  assert.deepEqual(waited.body, {
    data: "extension busy is restarting after a failure: killed by SIGKILL",
  });
});

Deno.test("restart attack: after a restart static content serves again, the scheduled task is listed once, and the guest's own service calls work", async () => {
  await using root = await tempDir();
  await using test = await busyServer(root.path);
  const tasks = async () =>
    ((await getJson(`${test.url}/api/v2/scheduled-tasks`)).body.data as {
      slice: string;
      name: string;
      runs: number;
    }[]).filter((t) => t.slice === "busy.main");
  const ran = await eventually(async () => {
    const listed = await tasks();
    return listed.length === 1 && listed[0].runs >= 2 ? listed[0].runs : undefined;
  }, "busy's task to run twice");
  const version = (await getJson(`${test.url}/api/v2/busy/status`)).body.data;
  assert.equal(typeof version, "string");
  const pid = (await getJson(`${test.url}/api/v2/busy/pid`)).body.data as number;
  Deno.kill(pid, "SIGKILL");
  const hello = await fetch(`${test.url}/busy/hello.txt`);
  await hello.body?.cancel();
  assert.equal(hello.status, 503);
  await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/busy/pid`);
    return answer.status === 200 ? true : undefined;
  }, "busy to serve again");
  assert.equal(await (await fetch(`${test.url}/busy/hello.txt`)).text(), "hello");
  assert.deepEqual((await getJson(`${test.url}/api/v2/busy/status`)).body, { data: version });
  // Listed once, and its runs never go down: the new guest's add to its predecessor's (as
  // background task counts and CPU seconds do).
  const listed = await tasks();
  assert.deepEqual(listed.map((t) => t.name), ["tick"], "listed while the new guest starts");
  assert.ok(listed[0].runs >= ran, `runs ${listed[0].runs} after ${ran} before the restart`);
  const runs = await metric(
    test.url,
    `inmanta_scheduled_task_runs_total{extension="busy",slice="busy.main",task="tick"}`,
  );
  assert.ok(runs !== undefined && runs >= ran, `runs_total ${runs} after ${ran} before`);
  await eventually(async () => {
    const again = await tasks();
    return again.length === 1 && again[0].runs > ran ? true : undefined;
  }, "busy's task to run again");
  assert.deepEqual((await guestPids("busy")).length, 1);
});

/** Crashes on request; counts its starts in a file; its second start never ends. */
const STUBBORN = `import { handle, method, ServerSlice } from "@inmanta/server";
export const crash = method({ path: "/stubborn/crash", operation: "POST" });
class Stubborn extends ServerSlice {
  async start() {
    const runs = Number(await Deno.readTextFile("runs").catch(() => "0")) + 1;
    await Deno.writeTextFile("runs", String(runs));
    if (runs > 1) await new Promise(() => {});
  }
  @handle(crash)
  crash() { Deno.exit(5); }
}
export function setup(app) { app.registerSlice(new Stubborn("stubborn.main")); }
`;

for (const when of ["in the backoff", "while the new guest loads", "while the new guest starts"]) {
  Deno.test(`restart attack: SIGTERM ${when}: exit 0, no guest left, nothing restarted after`, async () => {
    await using root = await tempDir();
    const dir = await writeExtension(root.path, "stubborn", STUBBORN);
    const cfg = join(root.path, "server.cfg");
    await Deno.writeTextFile(
      cfg,
      `[server]
enabled_extensions = stubborn
extension_path = ${root.path}
restart = on-failure
shutdown_timeout = 3
slice_start_timeout = 30
[extension.stubborn]
permissions = write=${dir}
`,
    );
    const server = serve(["--config", cfg, "--port", "0"], [root.path], { write: [dir] });
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    const first = await guestPids("stubborn");
    assert.equal(first.length, 1);
    const crashed = await fetch(`${url}/api/v2/stubborn/crash`, { method: "POST" });
    await crashed.body?.cancel();
    assert.equal(crashed.status, 503);
    if (when !== "in the backoff") {
      await server.line(/starting a new guest \(restart 1\)/);
      if (when === "while the new guest starts") {
        await eventually(async () => {
          const runs = await Deno.readTextFile(join(dir, "runs"));
          return runs === "2" ? true : undefined;
        }, "the second start to begin");
      }
    }
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0, server.stderr());
    const after = server.stderr().split(/SIGTERM received/)[1] ?? "";
    assert.match(server.stderr(), /server stopped/);
    assert.doesNotMatch(after, /starting a new guest|serves again/, server.stderr());
    await eventually(
      async () => (await guestPids("stubborn")).length === 0 ? true : undefined,
      "no stubborn guest to be left",
    );
  });
}

/** Floods its log (800 lines a second) and burns CPU from the moment it starts. */
const NOISY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/noisy/pid", operation: "GET" });
class Noisy extends ServerSlice {
  start() {
    this.flood = setInterval(() => {
      const until = Date.now() + 15;
      while (Date.now() < until) Math.random();
      for (let i = 0; i < 20; i++) this.logger.info("noise " + i);
    }, 25);
  }
  prestop() { clearInterval(this.flood); }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Noisy("noisy.main")); }
`;

Deno.test("restart attack: a guest that floods its log across restarts: CPU seconds never go down, the log stays bounded", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "noisy", NOISY);
  await using test = await startServer({
    roots: [root.path],
    enable: ["noisy"],
    config: `[server]\nrestart = on-failure\nsandbox_log_rate = 100\n`,
  });
  const cpu = () => metric(test.url, `inmanta_sandbox_cpu_seconds_total{extension="noisy"}`);
  const before = await eventually(async () => {
    const seconds = await cpu();
    return seconds !== undefined && seconds > 0.2 ? seconds : undefined;
  }, "noisy to report its CPU");
  const noisyPid = await getJson(`${test.url}/api/v2/noisy/pid`);
  assert.equal(noisyPid.status, 200, JSON.stringify(noisyPid.body));
  const pid = noisyPid.body.data as number;
  Deno.kill(pid, "SIGKILL");
  const readings: number[] = [];
  await eventually(async () => {
    readings.push((await cpu())!);
    const answer = await getJson(`${test.url}/api/v2/noisy/pid`);
    return answer.status === 200 ? true : undefined;
  }, "noisy to serve again");
  const last = readings.at(-1)!;
  await eventually(async () => {
    const seconds = (await cpu())!;
    readings.push(seconds);
    return seconds > last ? true : undefined;
  }, "the new guest to report its CPU");
  for (const [i, seconds] of readings.entries()) {
    assert.ok(seconds >= (readings[i - 1] ?? before), `CPU seconds went down: ${readings}`);
  }
  const noise = test.logs.filter((r) => r.message.startsWith("noise ")).length;
  assert.ok(noise > 0, "some noise got through");
  assert.ok(
    test.logs.some((r) =>
      /^extension noisy logged too much: \d+ record\(s\) dropped/.test(r.message) ||
      /^\d+ log record\(s\) dropped in the guest/.test(r.message)
    ),
    "the drop is said",
  );
});

/** Its handler ends its Worker's event loop with an uncaught error. */
const FRAGILE = `import { handle, method, ServerSlice } from "@inmanta/server";
export const boom = method({ path: "/fragile/boom", operation: "POST" });
export const ping = method({ path: "/fragile/ping", operation: "GET" });
class Fragile extends ServerSlice {
  @handle(boom)
  boom() { setTimeout(() => { throw new Error("boom"); }, 0); return "ok"; }
  @handle(ping)
  ping() { return "pong"; }
}
export function setup(app) { app.registerSlice(new Fragile("fragile.main")); }
`;

Deno.test("restart attack: a worker that fails with restart = on-failure stays failed, without Retry-After", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "fragile", FRAGILE);
  await using test = await startServer({
    roots: [root.path],
    enable: ["fragile"],
    isolation: "worker",
    config: "[server]\nrestart = on-failure\n",
  });
  assert.deepEqual((await getJson(`${test.url}/api/v2/fragile/ping`)).body, { data: "pong" });
  await getJson(`${test.url}/api/v2/fragile/boom`, { method: "POST" });
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "fragile");
    return e.status === "failed" ? e : undefined;
  }, "fragile to fail");
  assert.equal(failed.restarts, 0);
  assert.doesNotMatch(failed.reason ?? "", /restarting/);
  const ping = await getJson(`${test.url}/api/v2/fragile/ping`);
  assert.equal(ping.status, 503);
  assert.equal(ping.headers.get("retry-after"), null);
  assert.match(ping.body.message as string, /extension fragile failed: .*boom/);
});

/** Crashes 100 ms after its first start only. */
const EARLY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/early/pid", operation: "GET" });
class Early extends ServerSlice {
  async start() {
    const runs = Number(await Deno.readTextFile("runs").catch(() => "0")) + 1;
    await Deno.writeTextFile("runs", String(runs));
    if (runs === 1) setTimeout(() => Deno.exit(4), 100);
  }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Early("early.main")); }
`;

/** Starts after early (it depends on it), slowly: the server is still starting meanwhile. */
const LATE = `import { ServerSlice } from "@inmanta/server";
class Late extends ServerSlice {
  getDependencies() { return ["early.main"]; }
  async start() { await new Promise((resolve) => setTimeout(resolve, 2500)); }
}
export function setup(app) { app.registerSlice(new Late("late.main")); }
`;

Deno.test("restart attack: a guest that crashes while the server is still starting is restarted once the backoff passed", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "early", EARLY);
  await writeExtension(root.path, "late", LATE);
  await using test = await startServer({
    roots: [root.path],
    enable: ["early", "late"],
    config: `[server]
restart = on-failure
[extension.early]
permissions = write=${dir}
`,
  });
  const pid = await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/early/pid`);
    return answer.status === 200 ? answer.body.data as number : undefined;
  }, "early to serve");
  assert.deepEqual(await guestPids("early"), [pid]);
  const e = await extensionStatus(test.url, "early");
  assert.equal(e.status, "loaded");
  assert.equal(e.restarts, 1);
  assert.equal(e.last_failure, "exited with code 4");
  const status = await getJson(`${test.url}/api/v1/serverstatus`);
  const slices = (status.body.data as { slices: { name: string; state: string }[] }).slices;
  assert.deepEqual(
    slices.filter((s) => s.name === "early.main" || s.name === "late.main").map((s) => s.state),
    ["started", "started"],
  );
  assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 200);
});

Deno.test("restart attack: a guest whose module no longer imports (edited meanwhile) counts the import as a failure and stays failed", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "vanish", PLAIN);
  await using test = await startServer({
    roots: [root.path],
    enable: ["vanish"],
    config: `[server]\nrestart = on-failure\nrestart_max_failures = 2\n`,
  });
  const pid = (await getJson(`${test.url}/api/v2/vanish/pid`)).body.data as number;
  await Deno.writeTextFile(join(dir, "extension.ts"), "export function setup( {\n");
  Deno.kill(pid, "SIGKILL");
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "vanish");
    return e.status === "failed" && !/restarting (in|now)/.test(e.reason ?? "") ? e : undefined;
  }, "vanish to stay failed");
  assert.match(
    failed.reason ?? "",
    /^it could not be set up again: .*extension\.ts.*; it stays failed after 2 failures within 300s$/,
  );
  assert.deepEqual(await guestPids("vanish"), []);
});

/** Writes thousands of lines a second straight to its stderr, across a restart. */
const SPEW = `import { handle, method, ServerSlice } from "@inmanta/server";
export const pid = method({ path: "/spew/pid", operation: "GET" });
class Spew extends ServerSlice {
  start() {
    const lines = new TextEncoder().encode("spew\\n".repeat(100));
    this.flood = setInterval(() => Deno.stderr.writeSync(lines), 10);
  }
  prestop() { clearInterval(this.flood); }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Spew("spew.main")); }
`;

Deno.test("restart attack: what a guest writes to its stderr counts against sandbox_log_rate, across restarts", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "spew", SPEW);
  await using test = await startServer({
    roots: [root.path],
    enable: ["spew"],
    config: `[server]\nrestart = on-failure\nsandbox_log_rate = 50\n`,
  });
  const started = Date.now();
  const pid = (await getJson(`${test.url}/api/v2/spew/pid`)).body.data as number;
  await eventually(
    () => test.logs.some((r) => /^extension spew logged too much/.test(r.message)) || undefined,
    "the drop to be said",
  );
  Deno.kill(pid, "SIGKILL");
  await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/spew/pid`);
    return answer.status === 200 && answer.body.data !== pid ? true : undefined;
  }, "spew to serve again");
  await eventually(
    () =>
      test.logs.filter((r) => /^extension spew logged too much/.test(r.message)).length >= 2 ||
      undefined,
    "the new guest's drop to be said",
  );
  const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
  const spewed = test.logs.filter((r) => r.message === "spew").length;
  assert.ok(spewed > 0, "some lines got through");
  assert.ok(spewed <= 50 * seconds, `${spewed} lines in about ${seconds}s`);
});

/** An endless event stream, one event per read. */
const EVENTS = `import { handle, method, ServerSlice, streaming } from "@inmanta/server";
export const events = method({ path: "/events/stream", operation: "GET" });
export const pid = method({ path: "/events/pid", operation: "GET" });
class Events extends ServerSlice {
  @handle(events) events() {
    let n = 0;
    const body = new ReadableStream({
      pull(c) { c.enqueue(new TextEncoder().encode(\`data: \${n++}\\n\\n\`)); },
    });
    return streaming(new Response(body, { headers: { "content-type": "text/event-stream" } }));
  }
  @handle(pid) pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Events("events.main")); }
`;

Deno.test("restart attack: a stream being read when its guest dies ends with an error, and a new one streams from the new guest", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "events", EVENTS);
  await using test = await startServer({
    roots: [root.path],
    enable: ["events"],
    config: `[server]\nrestart = on-failure\n`,
  });
  const pid = (await getJson(`${test.url}/api/v2/events/pid`)).body.data as number;
  const response = await fetch(`${test.url}/api/v2/events/stream`);
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  assert.ok((await reader.read()).value, "a first event");
  Deno.kill(pid, "SIGKILL");
  // Reads until the stream breaks: it must, rather than hang.
  const ended = await (async () => {
    try {
      for (;;) if ((await reader.read()).done) return "done";
    } catch (error) {
      return (error as Error).name;
    }
  })();
  assert.ok(ended === "done" || ended === "TypeError", ended);
  await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/events/pid`);
    return answer.status === 200 ? true : undefined;
  }, "events to serve again");
  const again = (await fetch(`${test.url}/api/v2/events/stream`)).body!.getReader();
  assert.match(new TextDecoder().decode((await again.read()).value), /^data: 0/);
  await again.cancel();
});

/** Exhausts its heap shortly after every start. */
const HOG = `import { ServerSlice } from "@inmanta/server";
class Hog extends ServerSlice {
  start() {
    setTimeout(() => {
      const kept = [];
      for (;;) kept.push(new Array(100_000).fill(kept.length));
    }, 100);
  }
}
export function setup(app) { app.registerSlice(new Hog("hog.main")); }
`;

Deno.test("restart attack: a guest that exhausts its heap after every start is restarted, then stays failed", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "hog", HOG);
  await using test = await startServer({
    roots: [root.path],
    enable: ["hog"],
    config: `[server]
restart = on-failure
restart_max_failures = 2
[extension.hog]
memory_limit = 32
`,
  });
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "hog");
    return /stays failed/.test(e.reason ?? "") ? e : undefined;
  }, "hog to stay failed");
  assert.equal(failed.restarts, 1);
  assert.match(failed.last_failure ?? "", /^heap limit of 32 MiB reached|^resident memory/);
  assert.deepEqual(await guestPids("hog"), []);
});

/** Holds a transaction open on request; a second one waits for it; counts rows. */
const LEDGER = `import { handle, method, ServerSlice } from "@inmanta/server";
import { sql } from "kysely";
export const hold = method({ path: "/ledger/hold", operation: "POST" });
export const count = method({ path: "/ledger/count", operation: "GET" });
export const pid = method({ path: "/ledger/pid", operation: "GET" });
class Ledger extends ServerSlice {
  getDependencies() { return ["core.database"]; }
  @handle(hold)
  async hold() {
    this.logger.info("beginning");
    await this.database.transaction().execute(async (trx) => {
      await sql\`insert into entries (at) values (\${Date.now()})\`.execute(trx);
      this.logger.info("holding");
      await new Promise(() => {});
    });
  }
  @handle(count)
  async count() {
    return (await sql\`select count(*) as n from entries\`.execute(this.database)).rows[0].n;
  }
  @handle(pid) pid() { return Deno.pid; }
}
export function setup(app) {
  app.registerMigrations({
    "0001_entries": { async up(db) {
      await db.schema.createTable("entries").addColumn("at", "integer").execute();
    } },
  });
  app.registerSlice(new Ledger("ledger.main"));
}
`;

Deno.test("restart attack: transactions a dead guest held or waited for are all rolled back: the new guest's database is free", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "ledger", LEDGER);
  await using test = await startServer({
    roots: [root.path],
    enable: ["ledger"],
    config: `[server]
restart = on-failure
sandbox_request_timeout = 60
[database]
statement_timeout = 5
`,
  });
  assert.deepEqual((await getJson(`${test.url}/api/v2/ledger/count`)).body, { data: 0 });
  const pid = (await getJson(`${test.url}/api/v2/ledger/pid`)).body.data as number;
  // One transaction holds the database; the second waits for it to end.
  const holding = [1, 2].map(() => getJson(`${test.url}/api/v2/ledger/hold`, { method: "POST" }));
  // The first holds the database and the second asked for its own (it left with "beginning").
  const said = (message: string) => test.logs.filter((r) => r.message === message).length;
  await eventually(
    () => said("holding") === 1 && said("beginning") === 2 || undefined,
    "both transactions to be asked for",
  );
  Deno.kill(pid, "SIGKILL");
  for (const answer of await Promise.all(holding)) assert.equal(answer.status, 503);
  const counted = await eventually(async () => {
    const answer = await getJson(`${test.url}/api/v2/ledger/count`);
    return answer.status === 503 ? undefined : answer;
  }, "ledger to answer again");
  assert.deepEqual(counted.body, { data: 0 }, "nothing committed, and the database is free");
});

Deno.test("restart attack: a transaction still beginning when its guest died is rolled back once it began", async () => {
  await using dir = await tempDir();
  const host = new DatabaseHost();
  const engine = new SqliteEngine({
    extension: "shop",
    file: join(dir.path, "shop.sqlite3"),
    statementTimeout: 2,
  });
  await engine.open();
  host.add("shop", engine);
  const run = (sql: string) =>
    host.handle("shop", { op: "execute", extension: "shop", sql, parameters: [] });
  try {
    await run("create table t (x integer)");
    await host.handle("shop", { op: "begin", extension: "shop" });
    // The second waits for the first; the guest that asked for both dies meanwhile.
    const second = host.handle("shop", { op: "begin", extension: "shop" });
    await host.releaseAll("shop");
    await assert.rejects(
      second,
      /^DatabaseError: extension shop: its sandbox ended while the transaction began$/,
    );
    // Its new guest finds the database free.
    assert.deepEqual((await run("select count(*) as n from t")).rows, [{ n: 0 }]);
  } finally {
    await host.close();
  }
});
