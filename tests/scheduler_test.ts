/**
 * Scheduling against a real server: interval tasks (no overlap, errors logged, initial delay),
 * cron tasks, background tasks awaited on stop and abandoned past the stop timeout.
 */
import assert from "node:assert/strict";
import { getJson, logged, startServer, tempDir, writeExtension } from "./helpers.ts";

interface State {
  ticks: number;
  slowRuns: number;
  running: number;
  maxRunning: number;
  failures: number;
  cronRuns: number;
  late: number;
  release: PromiseWithResolvers<void>;
  events: string[];
  listeners: (() => void)[];
}

const SCHED = `import { ServerSlice } from "@inmanta/server";
const state = globalThis.schedState;
const changed = () => { for (const f of state.listeners.splice(0)) f(); };
class Sched extends ServerSlice {
  start() {
    this.schedule(function tick() { state.ticks++; changed(); }, 0.01, { initialDelay: 0 });
    this.schedule(async function slow() {
      state.running++;
      state.maxRunning = Math.max(state.maxRunning, state.running);
      await new Promise((r) => setTimeout(r, 30));
      state.running--;
      state.slowRuns++;
      changed();
    }, 0.005, { initialDelay: 0 });
    this.schedule(function broken() { state.failures++; changed(); throw new Error("task broke"); }, 0.01, { initialDelay: 0 });
    this.schedule(function never() { state.late++; }, 3600);
    this.scheduleCron(function everySecond() { state.cronRuns++; changed(); }, "* * * * * *");
    this.addBackgroundTask(async () => {
      await state.release.promise;
      state.events.push("background finished");
    });
    this.addBackgroundTask((signal) => new Promise((resolve) => {
      if (globalThis.schedHang) {
        signal.addEventListener("abort", () => { state.events.push("hung task aborted"); resolve(); });
      } else resolve();
    }));
  }
  stop() { state.events.push("stop called"); changed(); }
}
export function setup(app) { app.registerSlice(new Sched("sched.main")); }
`;

function freshState(): State {
  const state: State = {
    ticks: 0,
    slowRuns: 0,
    running: 0,
    maxRunning: 0,
    failures: 0,
    cronRuns: 0,
    late: 0,
    release: Promise.withResolvers<void>(),
    events: [],
    listeners: [],
  };
  (globalThis as unknown as { schedState: State }).schedState = state;
  return state;
}

function until(state: State, predicate: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => predicate() ? resolve() : state.listeners.push(check);
    check();
  });
}

Deno.test("scheduling: intervals, cron, errors, background tasks", async () => {
  const state = freshState();
  await using root = await tempDir();
  await writeExtension(root.path, "sched", SCHED);
  const test = await startServer({ roots: [root.path], enable: ["sched"], isolation: "none" });

  await until(state, () => state.ticks >= 5 && state.slowRuns >= 3 && state.failures >= 3);
  assert.equal(state.maxRunning, 1, "a slow task never overlaps itself");
  assert.equal(state.late, 0, "initialDelay defaults to the interval");
  assert.ok(
    test.logs.some((r) =>
      r.level === "error" && r.source === "sched.main" &&
      r.message === "scheduled task broken failed: task broke"
    ),
  );
  await until(state, () => state.cronRuns >= 1);

  const tasks = test.server.getSlice("sched.main").scheduledTasks();
  assert.deepEqual(tasks.map((t) => [t.name, t.schedule]), [
    ["tick", "every 0.01s"],
    ["slow", "every 0.005s"],
    ["broken", "every 0.01s"],
    ["never", "every 3600s"],
    ["everySecond", "* * * * * *"],
  ]);
  assert.ok(tasks[2].failures >= 3 && tasks[2].lastRun !== null);
  assert.equal(tasks[3].lastRun, null);
  assert.ok(tasks[3].nextRun !== null);

  const stopped = test.stop();
  await until(state, () => state.events.includes("stop called"));
  assert.deepEqual(state.events, ["stop called"], "stop waits for the background task");
  state.release.resolve();
  await stopped;
  assert.deepEqual(state.events, ["stop called", "background finished"]);
  const ticks = state.ticks;
  const after = test.server.getSlice("sched.main").scheduledTasks();
  assert.ok(after.every((t) => t.nextRun === null && !t.running));
  // Nothing is planned any more: a fresh event loop turn adds no tick.
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(state.ticks, ticks);
});

Deno.test("scheduling: background tasks still running at the stop deadline are abandoned", async () => {
  const state = freshState();
  state.release.resolve();
  (globalThis as unknown as { schedHang: boolean }).schedHang = true;
  await using root = await tempDir();
  await writeExtension(root.path, "sched", SCHED);
  const test = await startServer({
    roots: [root.path],
    enable: ["sched"],
    isolation: "none",
    config: "[server]\nslice_stop_timeout = 300ms\n",
  });
  await test.stop();
  assert.ok(state.events.includes("hung task aborted"));
  assert.ok(
    test.logs.some((r) =>
      r.message ===
        "slice sched.main: 1 background task(s) still running at the stop deadline; abandoned"
    ),
  );
  (globalThis as unknown as { schedHang: boolean }).schedHang = false;
});

Deno.test("scheduling: an invalid cron expression names the slice", async () => {
  freshState();
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "badcron",
    `import { ServerSlice } from "@inmanta/server";
class C extends ServerSlice { start() { this.scheduleCron(() => {}, "every tuesday"); } }
export function setup(app) { app.registerSlice(new C("badcron.main")); }
`,
  );
  const test = await startServer({ roots: [root.path], enable: ["badcron"], start: false });
  await assert.rejects(
    test.server.start(),
    /^SliceError: slice badcron\.main start failed: slice badcron\.main: invalid cron expression 'every tuesday': /,
  );
});

const FIDELITY = `import { ServerSlice } from "@inmanta/server";
function report() {}
function nightly() {}
function dropped() {}
class Tasks extends ServerSlice {
  start() {
    this.schedule(report, 3600);
    this.schedule(report, 3600);
    this.schedule(report, 1800);
    this.scheduleCron(nightly, "0 3 * * *", { name: "nightly report" });
    this.scheduleCron(nightly, "0 3 * * *", { name: "nightly report" });
    this.scheduleCron(dropped, "0 4 * * *");
    const first = this.removeCron(dropped, "0 4 * * *");
    this.logger.info(\`removeCron: \${first} then \${this.removeCron(dropped, "0 4 * * *")}\`);
    this.schedule(async (signal) => {
      this.logger.info("long run started");
      await new Promise((resolve) => signal.addEventListener("abort", () => {
        this.logger.info(\`long run aborted: \${signal.reason?.message}\`);
        resolve();
      }));
    }, 3600, { initialDelay: 0, name: "long run" });
    const logger = this.logger;
    this.schedule(async function stubborn() {
      logger.info("stubborn run started");
      await new Promise(() => {}); // ignores its signal: never ends on its own
    }, 3600, { initialDelay: 0 });
  }
}
export function setup(app) { app.registerSlice(new Tasks("tasks.main")); }
`;

interface TaskRow {
  slice: string;
  name: string;
  schedule: string;
}

/** The scheduled tasks once `count` are listed (a sandbox reports them with its heartbeat). */
async function listedTasks(url: string, count: number): Promise<TaskRow[]> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const rows = (await getJson(`${url}/api/v2/scheduled-tasks`)).body.data as TaskRow[];
    const ours = rows.filter((r) => r.slice === "tasks.main");
    if (ours.length >= count) return ours;
    // Waits for the sandbox's next heartbeat (every 200 ms), which carries its task list.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the scheduled tasks were never listed");
}

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] scheduling as Inmanta: one task per fn and schedule, removeCron, names listed, cancelOnStop aborts a run at prestop without waiting`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "tasks", FIDELITY);
    const test = await startServer({
      roots: [root.path],
      enable: ["tasks"],
      isolation,
      start: false,
      // Were the runs awaited, stop would hang here and log them abandoned.
      config: "[server]\nslice_stop_timeout = 60\nshutdown_timeout = 120\n",
    });
    const long = logged(test, (r) => r.message === "long run started");
    const stubborn = logged(test, (r) => r.message === "stubborn run started");
    await test.server.start();
    // Fails at once, rather than waiting for its logs forever, if the extension did not load.
    assert.equal(test.server.getSlice("tasks.main").state, "started");
    await Promise.all([long, stubborn]);
    assert.ok(test.logs.some((r) => r.message === "removeCron: true then false"));

    const rows = await listedTasks(test.url, 5);
    assert.deepEqual(rows.map((r) => [r.name, r.schedule]), [
      ["report", "every 3600s"],
      ["report", "every 1800s"],
      ["nightly report", "0 3 * * *"],
      ["long run", "every 3600s"],
      ["stubborn", "every 3600s"],
    ]);

    await test.stop();
    assert.ok(test.logs.some((r) => r.message === "long run aborted: cancelled at prestop"));
    assert.ok(
      !test.logs.some((r) => r.message.includes("still running at the stop deadline")),
      "cancelled runs are not waited for",
    );
    assert.ok(!test.logs.some((r) => r.message.includes("failed: cancelled")));
  });
}

const GREEDY = `import { handle, method, ServerSlice } from "@inmanta/server";
export const limits = method({ path: "/greedy/limits", operation: "GET" });
const release = Promise.withResolvers();
class Greedy extends ServerSlice {
  #refused = {};
  start() {
    try {
      for (let i = 0; i <= 10000; i++) this.schedule(() => {}, 3600, { name: "t" + i });
    } catch (error) { this.#refused.scheduled = error.code + ": " + error.message; }
    try {
      for (let i = 0; i <= 100000; i++) this.addBackgroundTask(release.promise);
    } catch (error) { this.#refused.background = error.code + ": " + error.message; }
  }
  prestop() { release.resolve(); }
  @handle(limits)
  limits() { return { ...this.#refused, tasks: this.scheduledTasks().length }; }
}
export function setup(app) { app.registerSlice(new Greedy("greedy.main")); }
`;

for (const isolation of ["none", "process"] as const) {
  Deno.test(`[isolation=${isolation}] a slice gets a clear error past 10,000 scheduled or 100,000 running background tasks`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "greedy", GREEDY);
    await using test = await startServer({ roots: [root.path], enable: ["greedy"], isolation });
    const { body } = await getJson(`${test.url}/api/v2/greedy/limits`);
    assert.deepEqual(body.data, {
      scheduled: "slice.too_many_tasks: slice greedy.main: at most 10000 scheduled tasks per slice",
      background:
        "slice.too_many_tasks: slice greedy.main: at most 100000 background tasks may run at once per slice",
      tasks: 10000,
    });
    // The server and the guest still answer.
    assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 200);
  });
}
