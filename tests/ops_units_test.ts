/**
 * The pure parts of operations, checked without a server: sandbox reports across restarts,
 * request-id sanity, the route counters and the log line formats.
 */
import assert from "node:assert/strict";
import { Logger } from "../src/log.ts";
import { SandboxMetrics } from "../src/metrics/sandboxes.ts";
import { instrument, LATENCY_BUCKETS, RouteMetrics } from "../src/metrics/routes.ts";
import { currentRequestId, isRequestId, runWithRequestId } from "../src/request_id.ts";

Deno.test("SandboxMetrics: CPU seconds add up over restarts; remove forgets", () => {
  const sandboxes = new SandboxMetrics();
  const sample = { rssBytes: 1, heapUsedBytes: 1, state: "running" as const, restarts: 0 };
  sandboxes.report("a", { ...sample, cpuSeconds: 1, startedAt: 1000 });
  sandboxes.report("a", { ...sample, cpuSeconds: 3, startedAt: 1000 });
  assert.equal(sandboxes.get("a")?.cpuSeconds, 3);
  sandboxes.report("a", { ...sample, cpuSeconds: 0.5, startedAt: 2000, restarts: 1 });
  assert.equal(sandboxes.get("a")?.cpuSeconds, 3.5);
  sandboxes.report("a", { ...sample, cpuSeconds: 1, startedAt: 2000, restarts: 1 });
  assert.equal(sandboxes.get("a")?.cpuSeconds, 4);
  assert.deepEqual(sandboxes.list().map((r) => r.extension), ["a"]);
  sandboxes.remove("a");
  assert.equal(sandboxes.get("a"), undefined);
});

Deno.test("request ids: sane ids only; the id follows async work", async () => {
  for (const ok of ["abc", "a.b_c:d@e+f=g/h-1", "x".repeat(128)]) assert.ok(isRequestId(ok), ok);
  for (const bad of ["", "two words", "x".repeat(129), "new\nline", "é", 42, null]) {
    assert.ok(!isRequestId(bad), String(bad));
  }
  const seen = await runWithRequestId("outer", async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return currentRequestId();
  }, undefined);
  assert.equal(seen, "outer");
  assert.equal(currentRequestId(), undefined);
});

Deno.test("RouteMetrics: one count per answer, by status and bucket, sync and async", async () => {
  const metrics = new RouteMetrics("e", "e.s", "/api/v2/x/:id", "GET");
  const sync = instrument(() => new Response("", { status: 201 }), metrics, false);
  const later = instrument(
    () => Promise.resolve(new Response("", { status: 404 })),
    metrics,
    false,
  );
  const throws = instrument(() => Promise.reject(new Error("x")), metrics, false);
  const request = new Request("http://h/api/v2/x/1");
  sync(request, "", {}, "");
  await later(request, "", {}, "");
  await Promise.resolve(throws(request, "", {}, "")).catch(() => {});
  assert.deepEqual([...metrics.byStatus], [[201, 1], [404, 1], [500, 1]]);
  assert.equal(metrics.total, 3);
  assert.equal(metrics.inFlight, 0);
  assert.equal(metrics.buckets.length, LATENCY_BUCKETS.length + 1);
  assert.equal(metrics.buckets.reduce((a, b) => a + b, 0), 3);
});

Deno.test("Logger: text and JSON lines carry the request id and fields", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    const logger = new Logger("info", "core.server");
    runWithRequestId("rid-1", () => logger.info("in a request"), undefined);
    logger.setFormat("json");
    runWithRequestId("rid-2", () => logger.warning("again"), undefined);
    logger.log("info", "fields", undefined, { status: 200 });
  } finally {
    console.error = original;
  }
  assert.equal(lines[0], "INFO    core.server [rid-1]: in a request");
  const json = JSON.parse(lines[1]);
  assert.deepEqual(
    { ...json, time: typeof json.time },
    {
      time: "string",
      level: "WARNING",
      logger: "core.server",
      message: "again",
      request_id: "rid-2",
    },
  );
  assert.deepEqual(Object.keys(JSON.parse(lines[2])), [
    "time",
    "level",
    "logger",
    "message",
    "status",
  ]);
});
