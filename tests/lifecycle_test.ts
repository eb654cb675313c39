/**
 * Slice ordering and lifecycle against real servers: order, cycles, missing dependencies,
 * failing and hanging starts and stops. Every test runs twice: with the extension in-process
 * (isolation = none) and in its sandbox (isolation = worker); slices report through their
 * logger, which crosses the sandbox boundary.
 */
import assert from "node:assert/strict";
import { type LogRecord, SliceError } from "@inmanta/server";
import { startServer, tempDir, writeExtension } from "./helpers.ts";

const MODES = ["none", "worker", "process"] as const;

/** The lifecycle events the recorder slices logged, in order. */
function events(logs: LogRecord[]): string[] {
  return logs.filter((r) => r.message.startsWith("event: ")).map((r) => r.message.slice(7));
}

/**
 * An extension whose slices log every lifecycle call as `event: ...`. `spec` maps a slice name
 * to its dependencies, dependents and behaviour in start and stop.
 */
function recorder(
  ext: string,
  spec: Record<string, { deps?: string[]; dependedBy?: string[]; start?: string; stop?: string }>,
): string {
  return `import { ServerSlice } from "@inmanta/server";
const spec = ${JSON.stringify(spec)};
const behave = async (how) => {
  if (how === "throw") throw new Error("boom");
  if (how === "hang") await new Promise(() => {});
};
class Recorder extends ServerSlice {
  note(event) { this.logger.info("event: " + event); }
  getDependencies() { return spec[this.name.split(".")[1]].deps ?? []; }
  getDependedBy() { return spec[this.name.split(".")[1]].dependedBy ?? []; }
  prestart(server) { this.note("prestart " + this.name); this.config = server.config; }
  async start() { this.note("start " + this.name); await behave(spec[this.name.split(".")[1]].start); }
  prestop() { this.note("prestop " + this.name + (this.isStopping ? " stopping" : "")); }
  async stop() { this.note("stop " + this.name); await behave(spec[this.name.split(".")[1]].stop); }
}
export function setup(application) {
  for (const name of Object.keys(spec)) application.registerSlice(new Recorder("${ext}." + name));
}
`;
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] order: dependencies and dependents, ties in registration order`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "ord",
      recorder("ord", {
        c: { deps: ["ord.b"] },
        a: {},
        b: { deps: ["core.server"] },
        d: { dependedBy: ["ord.a"] },
        e: { deps: ["other.missing"] },
      }),
    );
    const test = await startServer({ roots: [root.path], enable: ["ord"], isolation });
    // core.transport last: it starts after every slice that does not depend on it.
    assert.deepEqual(test.server.slices.map((s) => s.name), [
      "core.server",
      "core.database",
      "ord.b",
      "ord.c",
      "ord.d",
      "ord.a",
      "ord.e",
      "core.transport",
    ]);
    assert.ok(
      test.logs.some((r) =>
        r.level === "warning" &&
        r.message ===
          "slice ord.e depends on other.missing, which is not loaded; ignored for ordering"
      ),
    );
    await test.stop();
    const ours = ["ord.b", "ord.c", "ord.d", "ord.a", "ord.e"];
    const reversed = [...ours].reverse();
    assert.deepEqual(events(test.logs), [
      ...ours.map((n) => `prestart ${n}`),
      ...ours.map((n) => `start ${n}`),
      ...reversed.map((n) => `prestop ${n} stopping`),
      ...reversed.map((n) => `stop ${n}`),
    ]);
    assert.ok(test.server.slices.every((s) => s.state === "stopped"));
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] order: a dependency cycle is a start-up error that prints the cycle`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "cyc",
      recorder("cyc", {
        a: { deps: ["cyc.c"] },
        b: { deps: ["cyc.a"] },
        c: { deps: ["cyc.b"] },
        free: {},
      }),
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["cyc"],
      start: false,
      isolation,
    });
    await assert.rejects(test.server.start(), (error: unknown) => {
      assert.ok(error instanceof SliceError);
      assert.equal(error.code, "slice.cycle");
      assert.equal(
        error.message,
        "dependency cycle between slices: cyc.a -> cyc.c -> cyc.b -> cyc.a (each depends on the next)",
      );
      return true;
    });
    assert.deepEqual(events(test.logs), []);
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] start failure: slices already started are stopped in reverse, error names the slice`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "sf",
      recorder("sf", {
        one: {},
        two: { deps: ["sf.one"] },
        bad: { deps: ["sf.two"], start: "throw" },
        after: { deps: ["sf.bad"] },
      }),
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["sf"],
      start: false,
      isolation,
    });
    await assert.rejects(test.server.start(), (error: unknown) => {
      assert.ok(error instanceof SliceError);
      assert.equal(error.code, "slice.start_failed");
      assert.equal(error.message, "slice sf.bad start failed: boom");
      return true;
    });
    assert.deepEqual(events(test.logs), [
      "prestart sf.one",
      "prestart sf.two",
      "prestart sf.bad",
      "prestart sf.after",
      "start sf.one",
      "start sf.two",
      "start sf.bad",
      "prestop sf.two stopping",
      "prestop sf.one stopping",
      "stop sf.two",
      "stop sf.one",
    ]);
    assert.equal(test.server.getSlice("sf.bad").state, "failed");
    assert.equal(test.server.getSlice("sf.after").state, "registered");
    // The port never opened: the listener starts after every other slice.
    assert.equal(test.server.getSlice("core.transport").state, "registered");
    assert.equal(test.server.getSlice("core.server").state, "stopped");
    assert.equal(test.server.state, "failed");
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] start timeout: a hanging start names the slice`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "hs",
      recorder("hs", { first: {}, stuck: { start: "hang" } }),
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["hs"],
      start: false,
      isolation,
      config: "[server]\nslice_start_timeout = 200ms\n",
    });
    await assert.rejects(test.server.start(), (error: unknown) => {
      assert.ok(error instanceof SliceError);
      assert.equal(error.code, "slice.start_timeout");
      assert.equal(error.message, "slice hs.stuck did not finish start within 0.2s");
      return true;
    });
    assert.ok(events(test.logs).includes("stop hs.first"));
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] stop timeout: a hanging stop is named and abandoned, the others still stop`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "hstop",
      recorder("hstop", {
        base: {},
        stuck: { deps: ["hstop.base"], stop: "hang" },
      }),
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["hstop"],
      isolation,
      config: "[server]\nslice_stop_timeout = 200ms\n",
    });
    await test.stop();
    assert.ok(
      test.logs.some((r) =>
        r.level === "error" &&
        r.message === "slice hstop.stuck did not finish stop in time; abandoned"
      ),
    );
    assert.deepEqual(events(test.logs).slice(-2), ["stop hstop.stuck", "stop hstop.base"]);
    assert.equal(test.server.getSlice("hstop.base").state, "stopped");
    assert.equal(test.server.state, "stopped");
  });
}
