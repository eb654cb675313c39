/**
 * Restarts of failed sandboxes (`restart = on-failure`): the backoff and its limit, a process
 * guest killed from outside that is started again and serves (through its routes and through a
 * `Remote` another slice took before the crash), one that fails every new start and stays
 * failed, and the options' errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Config, parseIni } from "@inmanta/server/server";
import { registerCoreOptions } from "../src/core/options.ts";
import { registerExtensionOptions } from "../src/extensions/loader.ts";
import { Backoff, restartPolicy } from "../src/sandbox/restart.ts";
import { GuestCounts } from "../src/sandbox/guest_counts.ts";
import {
  eventually,
  extensionStatus,
  getJson,
  guestPids,
  startServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";

Deno.test("restart: the delay doubles from 1 s to 60 s, and too many failures in the window end it", () => {
  const backoff = new Backoff({ maxFailures: 10, windowSeconds: 1000 });
  const delays = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => backoff.failed(i * 1000));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  assert.equal(backoff.failed(9000), undefined, "the tenth failure within the window");

  // Failures older than the window no longer count: the delay starts over.
  const window = new Backoff({ maxFailures: 3, windowSeconds: 10 });
  assert.equal(window.failed(0), 1000);
  assert.equal(window.failed(5_000), 2000);
  assert.equal(window.failed(20_000), 1000);
  assert.equal(window.failed(21_000), 2000);
  assert.equal(window.failed(22_000), undefined);
});

Deno.test("restart: task counts carry across guests and never go down", () => {
  const counts = new GuestCounts();
  const task = (runs: number, failures: number) => ({
    name: "tick",
    schedule: "every 1s",
    lastRun: null,
    nextRun: "2026-11-29T00:00:00.000Z",
    running: true,
    runs,
    failures,
    seconds: runs / 10,
  });
  counts.takeTasks({ "x.main": [task(5, 1)] }, false);
  counts.takeBackground({ "x.main": { started: 3, running: 2, failed: 1 } });
  counts.newGuest();
  // Until the new guest's slices schedule again, the old task stays listed, not running.
  assert.deepEqual(counts.tasks["x.main"].map((t) => [t.runs, t.running, t.nextRun]), [
    [5, false, null],
  ]);
  assert.deepEqual(counts.background["x.main"], { started: 3, running: 0, failed: 1 });
  counts.takeTasks({ "x.main": [] }, true);
  assert.equal(counts.tasks["x.main"].length, 1, "kept while restarting");
  counts.takeTasks({ "x.main": [task(2, 0)] }, false);
  assert.deepEqual(
    counts.tasks["x.main"].map((t) => [t.runs, t.failures, t.seconds]),
    [[7, 1, 0.7]],
  );
  counts.takeBackground({ "x.main": { started: 1, running: 1, failed: 0 } });
  assert.deepEqual(counts.background["x.main"], { started: 4, running: 1, failed: 1 });
});

Deno.test("restart: the policy comes from extension.<name>.restart, else server.restart", () => {
  const config = (ini: string) => {
    const c = new Config([parseIni(ini, "restart.cfg")]);
    registerCoreOptions(c);
    registerExtensionOptions(c, "x");
    return c;
  };
  assert.equal(restartPolicy(config(""), "x"), undefined);
  assert.deepEqual(restartPolicy(config("[server]\nrestart = on-failure"), "x"), {
    maxFailures: 5,
    windowSeconds: 300,
  });
  assert.equal(
    restartPolicy(config("[server]\nrestart = on-failure\n[extension.x]\nrestart = never"), "x"),
    undefined,
  );
  assert.throws(
    () => restartPolicy(config("[extension.x]\nrestart = always"), "x"),
    /^ConfigError: extension\.x\.restart = always: use never or on-failure$/,
  );
  assert.throws(
    () => restartPolicy(config("[server]\nrestart = on-failure\nrestart_max_failures = 0"), "x"),
    /server\.restart_max_failures = 0/,
  );
});

const PHOENIX = `import { handle, method, ServerSlice, service } from "@inmanta/server";
export const pid = method({ path: "/phoenix/pid", operation: "GET" });
class Phoenix extends ServerSlice {
  getDependencies() { return ["core.server"]; }
  @service
  whoami() { return Deno.pid; }
  @handle(pid)
  pid() { return Deno.pid; }
}
export function setup(app) { app.registerSlice(new Phoenix("phoenix.main")); }
`;

/** Holds a Remote of phoenix.main from its one prestart, before any crash. */
const CALLER = `import { handle, method, ServerSlice } from "@inmanta/server";
export const via = method({ path: "/caller/pid", operation: "GET" });
class Caller extends ServerSlice {
  #phoenix;
  getDependencies() { return ["phoenix.main"]; }
  prestart(server) { this.#phoenix = server.getSlice("phoenix.main"); }
  @handle(via)
  async via() {
    try { return await this.#phoenix.whoami(); } catch (error) { return error.message; }
  }
}
export function setup(app) { app.registerSlice(new Caller("caller.main")); }
`;

for (const callerIsolation of ["process", "none"]) {
  Deno.test(`restart: a process guest killed from outside serves again; a Remote from ${callerIsolation} reaches it`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "phoenix", PHOENIX);
    await writeExtension(root.path, "caller", CALLER);
    await using test = await startServer({
      roots: [root.path],
      enable: ["phoenix", "caller"],
      config:
        `[extension.phoenix]\nrestart = on-failure\n[extension.caller]\nisolation = ${callerIsolation}\n`,
    });
    const first = await getJson(`${test.url}/api/v2/phoenix/pid`);
    assert.equal(first.status, 200);
    const pid = first.body.data as number;
    assert.notEqual(pid, Deno.pid, "the guest is a process of its own");
    assert.deepEqual((await getJson(`${test.url}/api/v2/caller/pid`)).body, { data: pid });

    Deno.kill(pid, "SIGKILL");
    // Down until the backoff's first second has passed: 503 with Retry-After, and the Remote
    // says why.
    const down = await getJson(`${test.url}/api/v2/phoenix/pid`);
    assert.equal(down.status, 503, JSON.stringify(down.body));
    // Whether the server already marked the slice down or the sandbox answers itself.
    assert.match(down.body.message as string, /extension phoenix is restarting after a failure: /);
    assert.ok(Number(down.headers.get("retry-after")) >= 1, "Retry-After in whole seconds");
    assert.equal(down.headers.get("content-type"), "application/json");
    assert.deepEqual((await getJson(`${test.url}/api/v2/caller/pid`)).body, {
      data:
        "slice caller.main called phoenix.main.whoami(), but slice phoenix.main is failed (extension phoenix is restarting after a failure: killed by SIGKILL)",
    });

    // Every answer until it serves again is a 503 that says when to retry, whether the slice
    // waits for its new guest or the new guest is starting.
    const again = await eventually(async () => {
      const answer = await getJson(`${test.url}/api/v2/phoenix/pid`);
      if (answer.status === 200) return answer.body.data as number;
      assert.equal(answer.status, 503);
      assert.ok(
        Number(answer.headers.get("retry-after")) >= 1,
        `Retry-After on ${JSON.stringify(answer.body)}`,
      );
      return undefined;
    }, "phoenix to serve again");
    assert.notEqual(again, pid, "a new guest serves");
    assert.deepEqual((await getJson(`${test.url}/api/v2/caller/pid`)).body, { data: again });
    assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 200);
    assert.deepEqual(await extensionStatus(test.url, "phoenix"), {
      ...(await extensionStatus(test.url, "phoenix")),
      status: "loaded",
      reason: null,
      restarts: 1,
      last_failure: "killed by SIGKILL",
    });
    const metrics = await (await fetch(`${test.url}/metrics`)).text();
    assert.match(metrics, /^inmanta_sandbox_restarts_total\{extension="phoenix"\} 1$/m);
    assert.match(metrics, /^inmanta_sandbox_state\{extension="phoenix",state="running"\} 1$/m);
    assert.ok(
      test.logs.some((r) => r.message === "extension phoenix serves again (restart 1)"),
      "the restart is logged",
    );
  });
}

/** Starts once (then crashes on request); every later start throws. Counts its runs in a file. */
const DOOMED = `import { handle, method, ServerSlice } from "@inmanta/server";
export const crash = method({ path: "/doomed/crash", operation: "POST" });
class Doomed extends ServerSlice {
  async start() {
    const runs = Number(await Deno.readTextFile("runs").catch(() => "0")) + 1;
    await Deno.writeTextFile("runs", String(runs));
    if (runs > 1) throw new Error("start " + runs + " refused");
  }
  @handle(crash)
  crash() { Deno.exit(7); }
}
export function setup(app) { app.registerSlice(new Doomed("doomed.main")); }
`;

Deno.test("restart: a sandbox that fails every new start stays failed after restart_max_failures", async () => {
  await using root = await tempDir();
  const dir = await writeExtension(root.path, "doomed", DOOMED);
  await using test = await startServer({
    roots: [root.path],
    enable: ["doomed"],
    config: `[server]
restart = on-failure
restart_max_failures = 3
[extension.doomed]
permissions = write=${dir}
`,
  });
  const crashed = await fetch(`${test.url}/api/v2/doomed/crash`, { method: "POST" });
  await crashed.body?.cancel();
  assert.equal(crashed.status, 503);

  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "doomed");
    return /stays failed/.test(e.reason ?? "") ? e : undefined;
  }, "doomed to stay failed");
  assert.equal(failed.status, "failed");
  assert.equal(
    failed.reason,
    "restart 2 failed: slice doomed.main start failed: start 3 refused; it stays failed after 3 failures within 300s",
  );
  assert.equal(failed.restarts, 2);
  assert.equal(await Deno.readTextFile(join(dir, "runs")), "3", "one start, then two restarts");
  const after = await fetch(`${test.url}/api/v2/doomed/crash`, { method: "POST" });
  await after.body?.cancel();
  assert.equal(after.status, 503);
  assert.equal(after.headers.get("retry-after"), null, "no retry for what stays failed");
  const health = await getJson(`${test.url}/api/v2/health`);
  assert.equal(health.status, 503);
  assert.deepEqual(health.body.data, { status: "degraded", failed: ["doomed"] });
  assert.ok(test.logs.some((r) =>
    r.message ===
      "extension doomed failed 3 times within 300s (server.restart_max_failures = 3): it stays failed"
  ));
});

Deno.test("restart: a worker is not restarted, and the server says so at start", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "phoenix", PHOENIX);
  await using test = await startServer({
    roots: [root.path],
    enable: ["phoenix"],
    isolation: "worker",
    config: "[server]\nrestart = on-failure\n",
  });
  assert.ok(test.logs.some((r) =>
    r.message ===
      "extension phoenix: restart = on-failure applies to process sandboxes only; with isolation = worker a failure leaves it failed"
  ));
});

Deno.test("restart: a new start whose dependency failed does not start, and says why", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "phoenix", PHOENIX);
  await writeExtension(root.path, "caller", CALLER);
  await using test = await startServer({
    roots: [root.path],
    enable: ["phoenix", "caller"],
    config: `[server]
restart_max_failures = 2
[extension.caller]
restart = on-failure
`,
  });
  const pid = (await getJson(`${test.url}/api/v2/phoenix/pid`)).body.data as number;
  Deno.kill(pid, "SIGKILL"); // phoenix is not restarted: it stays failed
  await eventually(async () => {
    const e = await extensionStatus(test.url, "phoenix");
    return e.status === "failed" ? e : undefined;
  }, "phoenix to fail");
  const [caller] = await guestPids("caller");
  Deno.kill(caller, "SIGKILL");
  const failed = await eventually(async () => {
    const e = await extensionStatus(test.url, "caller");
    return /stays failed/.test(e.reason ?? "") ? e : undefined;
  }, "caller to stay failed");
  assert.equal(
    failed.reason,
    "restart 1 failed: slice caller.main depends on slice phoenix.main, which failed; it stays failed after 2 failures within 300s",
  );
});
