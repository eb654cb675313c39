/**
 * `GET /metrics` and the per-extension figures against a real server: valid exposition
 * (promtool), counters that move by exactly the requests made, tasks, sandbox reports and auth.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { SignJWT } from "jose";
import {
  externalBinary,
  getJson,
  logged,
  startServer,
  tempDir,
  type TestServer,
  writeExtension,
} from "./helpers.ts";
import { OPS_EXTENSION, opsServer, samples } from "./ops_fixture.ts";

async function scrape(test: TestServer, init?: RequestInit): Promise<string> {
  const response = await fetch(`${test.url}/metrics`, init);
  if (response.status !== 200) {
    const errors = test.logs.filter((r) => r.level === "error").map((r) => r.message);
    assert.fail(`/metrics answered ${response.status}: ${await response.text()} ${errors}`);
  }
  assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  return await response.text();
}

const HELLO = 'extension="ops",slice="ops.main",route="/api/v2/ops/hello/:name",method="GET"';
const BOOM = 'extension="ops",slice="ops.main",route="/api/v2/ops/boom",method="GET"';
const TEAPOT = 'extension="ops",slice="ops.main",route="/api/v2/ops/teapot",method="POST"';

Deno.test("metrics: counters move by exactly the requests made, by route template and status", async () => {
  const used = process.cpuUsage();
  await using root = await tempDir();
  await using test = await opsServer(root.path);
  const before = samples(await scrape(test));
  // The process's CPU time since it started (this test's server runs in it), not since the
  // first scrape.
  assert.ok(before.get("process_cpu_seconds_total")! >= (used.user + used.system) / 1e6);
  const get = async (path: string, init?: RequestInit) => {
    const response = await fetch(`${test.url}${path}`, init);
    await response.body?.cancel();
    return response.status;
  };
  for (const name of ["a", "b", "c"]) assert.equal(await get(`/api/v2/ops/hello/${name}`), 200);
  assert.equal(await get("/api/v2/ops/boom"), 500);
  assert.equal(await get("/api/v2/ops/boom"), 500);
  assert.equal(await get("/api/v2/ops/teapot", { method: "POST" }), 418);
  assert.equal(await get("/api/v2/ops/nowhere"), 404);
  const after = samples(await scrape(test));
  const moved = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);

  assert.equal(moved(`inmanta_http_requests_total{${HELLO},status="200"}`), 3);
  assert.equal(moved(`inmanta_http_requests_total{${BOOM},status="500"}`), 2);
  assert.equal(moved(`inmanta_http_requests_total{${TEAPOT},status="418"}`), 1);
  assert.equal(moved(`inmanta_handler_errors_total{${BOOM}}`), 2);
  assert.equal(moved(`inmanta_handler_errors_total{${HELLO}}`), 0);
  assert.equal(moved(`inmanta_http_request_duration_seconds_count{${HELLO}}`), 3);
  assert.equal(moved(`inmanta_http_request_duration_seconds_bucket{${HELLO},le="+Inf"}`), 3);
  // Milliseconds are read off Date.now(): three fast answers may sum to 0.
  assert.ok(after.get(`inmanta_http_request_duration_seconds_sum{${HELLO}}`)! >= 0);
  assert.equal(after.get(`inmanta_http_requests_in_flight{${HELLO}}`), 0);
  // Raw paths never become labels.
  assert.ok(![...after.keys()].some((k) => k.includes("/ops/hello/a")));
  // The core's own routes are counted too: the scrapes above are not API routes.
  assert.equal(after.get('inmanta_extension_up{extension="ops",isolation="none"}'), 1);
  assert.ok((after.get("process_resident_memory_bytes") ?? 0) > 0);
  assert.ok((after.get("process_cpu_seconds_total") ?? 0) > 0);
});

Deno.test("metrics: scheduled and background tasks are counted per slice", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "ops", OPS_EXTENSION);
  const slice = 'extension="ops",slice="ops.main"';
  // Both tasks run once at start; the scheduler settles its figures in the same turn.
  const ticked = Promise.withResolvers<void>();
  (globalThis as { opsTicked?: () => void }).opsTicked = ticked.resolve;
  await using test = await startServer({
    roots: [root.path],
    enable: ["ops"],
    isolation: "none",
    start: false,
  });
  const failed = logged(test, (r) => r.message.startsWith("scheduled task fails failed"));
  const background = logged(test, (r) => r.message.includes("background fails on purpose"));
  await test.server.start();
  await Promise.all([ticked.promise, failed, background]);
  const after = samples(await scrape(test));
  assert.equal(after.get(`inmanta_scheduled_task_runs_total{${slice},task="tick"}`), 1);
  assert.equal(after.get(`inmanta_scheduled_task_runs_total{${slice},task="fails"}`), 1);
  assert.equal(after.get(`inmanta_scheduled_task_running{${slice},task="fails"}`), 0);
  assert.equal(after.get(`inmanta_background_tasks_running{${slice}}`), 0);
  assert.equal(after.get(`inmanta_scheduled_task_failures_total{${slice},task="tick"}`), 0);
  assert.equal(after.get(`inmanta_scheduled_task_failures_total{${slice},task="fails"}`), 1);
  assert.ok(after.has(`inmanta_scheduled_task_duration_seconds_total{${slice},task="tick"}`));
  assert.equal(after.get(`inmanta_background_tasks_started_total{${slice}}`), 2);
  assert.equal(after.get(`inmanta_background_tasks_failed_total{${slice}}`), 1);
});

/** Debian's promtool; the exposition test skips (loudly) without it unless CI is set. */
const PROMTOOL = externalBinary("promtool", "prometheus");

Deno.test({
  name: "metrics: the exposition passes promtool check metrics",
  ignore: !PROMTOOL,
}, async () => {
  await using root = await tempDir();
  await using test = await opsServer(root.path);
  await (await fetch(`${test.url}/api/v2/ops/hello/x`)).body?.cancel();
  test.server.sandboxMetrics.report("ops", {
    cpuSeconds: 1.5,
    rssBytes: 50e6,
    heapUsedBytes: 10e6,
    state: "running",
    restarts: 1,
    startedAt: Date.now() - 1000,
  });
  const text = await scrape(test);
  const child = new Deno.Command(PROMTOOL!, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, said);
  assert.equal(said.trim(), "", said);
});

Deno.test("metrics: sandbox reports show as per-sandbox metrics and in the console figures", async () => {
  await using root = await tempDir();
  await using test = await opsServer(root.path);
  const startedAt = Date.now() - 5000;
  const report = (cpuSeconds: number, restarts: number, at: number, lastFailure?: string) =>
    test.server.sandboxMetrics.report("ops", {
      cpuSeconds,
      rssBytes: 64 * 2 ** 20,
      heapUsedBytes: 12 * 2 ** 20,
      state: "running",
      restarts,
      startedAt: at,
      lastFailure,
    });
  report(2, 0, startedAt);
  let seen = samples(await scrape(test));
  assert.equal(seen.get('inmanta_sandbox_cpu_seconds_total{extension="ops"}'), 2);
  assert.equal(seen.get('inmanta_sandbox_resident_memory_bytes{extension="ops"}'), 64 * 2 ** 20);
  assert.equal(seen.get('inmanta_sandbox_heap_used_bytes{extension="ops"}'), 12 * 2 ** 20);
  assert.equal(seen.get('inmanta_sandbox_state{extension="ops",state="running"}'), 1);
  assert.equal(seen.get('inmanta_sandbox_state{extension="ops",state="failed"}'), 0);
  assert.equal(seen.get('inmanta_sandbox_start_time_seconds{extension="ops"}'), startedAt / 1000);
  assert.ok(seen.get('inmanta_sandbox_uptime_seconds{extension="ops"}')! >= 5);

  // A restart: the new run's CPU adds to the old one's, so the counter never goes down.
  report(0.5, 1, Date.now(), "heap limit reached");
  seen = samples(await scrape(test));
  assert.equal(seen.get('inmanta_sandbox_cpu_seconds_total{extension="ops"}'), 2.5);
  assert.equal(seen.get('inmanta_sandbox_restarts_total{extension="ops"}'), 1);

  const { status, body } = await getJson(`${test.url}/api/v2/extension-metrics`);
  assert.equal(status, 200);
  const data = body.data as {
    buckets: number[];
    extensions: { extension: string; sandbox?: { restarts: number; lastFailure?: string } }[];
  };
  const ops = data.extensions.find((e) => e.extension === "ops")!;
  assert.equal(ops.sandbox?.restarts, 1);
  assert.equal(ops.sandbox?.lastFailure, "heap limit reached");
  assert.equal(data.extensions.find((e) => e.extension === "core")?.sandbox, undefined);
});

Deno.test("metrics: the console figures count requests and 5xx per extension", async () => {
  await using root = await tempDir();
  await using test = await opsServer(root.path);
  for (const path of ["/api/v2/ops/hello/x", "/api/v2/ops/boom", "/api/v2/ops/hello/y"]) {
    await (await fetch(`${test.url}${path}`)).body?.cancel();
  }
  const { body } = await getJson(`${test.url}/api/v2/extension-metrics`);
  const data = body.data as {
    buckets: number[];
    extensions: { extension: string; requests: number; errors: number; latency: number[] }[];
  };
  const ops = data.extensions.find((e) => e.extension === "ops")!;
  assert.equal(ops.requests, 3);
  assert.equal(ops.errors, 1);
  assert.equal(ops.latency.length, data.buckets.length + 1);
  assert.equal(ops.latency.at(-1), 3);
});

Deno.test("metrics: with server.auth on, /metrics needs a token unless server.metrics_open", async () => {
  const key = "a-metrics-test-secret-of-more-than-32-characters";
  const auth = (open: boolean) =>
    `[server]\nauth = true\nmetrics_open = ${open}\n[auth_jwt_default]\nkey = ${key}\n`;
  {
    await using test = await startServer({ config: auth(false) });
    const refused = await fetch(`${test.url}/metrics`);
    assert.equal(refused.status, 401);
    assert.ok((await refused.json()).message);
    const token = await new SignJWT({ "urn:inmanta:ct": ["api"] })
      .setProtectedHeader({ alg: "HS256" }).setIssuer("https://localhost:8888/")
      .setAudience("https://localhost:8888/").sign(new TextEncoder().encode(key));
    await scrape(test, { headers: { authorization: `Bearer ${token}` } });
  }
  {
    await using test = await startServer({ config: auth(true) });
    await scrape(test);
  }
});

Deno.test("metrics: with server.metrics off, routes are not counted but /metrics still answers", async () => {
  await using root = await tempDir();
  await using test = await opsServer(root.path, "[server]\nmetrics = false\n");
  await (await fetch(`${test.url}/api/v2/ops/hello/x`)).body?.cancel();
  const text = await scrape(test);
  assert.ok(!text.includes("ops/hello"));
  assert.match(text, /^process_cpu_seconds_total /m);
  // No family that Deno never feeds (it would be HELP and TYPE lines without samples).
  assert.doesNotMatch(text, /^# TYPE nodejs_(gc|active|eventloop)_/m);
  const other = await fetch(`${test.url}/metrics/other`);
  assert.equal(other.status, 404);
  await other.body?.cancel();
});

Deno.test("metrics: a process sandbox reports its own figures and its failure", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "ops", OPS_EXTENSION);
  await using test = await startServer({
    roots: [root.path],
    enable: ["ops"],
    isolation: "process",
  });
  // The guest reports once a second with its heartbeat: wait for the first report.
  const deadline = Date.now() + 20_000;
  let seen = samples(await scrape(test));
  while (!seen.has('inmanta_sandbox_heap_used_bytes{extension="ops"}') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    seen = samples(await scrape(test));
  }
  assert.ok((seen.get('inmanta_sandbox_heap_used_bytes{extension="ops"}') ?? 0) > 0);
  assert.ok((seen.get('inmanta_sandbox_resident_memory_bytes{extension="ops"}') ?? 0) > 0);
  assert.equal(seen.get('inmanta_sandbox_state{extension="ops",state="running"}'), 1);
  // Background tasks are counted in the guest and cross with its heartbeats.
  const slice = 'extension="ops",slice="ops.main"';
  assert.equal(seen.get(`inmanta_background_tasks_started_total{${slice}}`), 2);
  assert.equal(seen.get(`inmanta_background_tasks_failed_total{${slice}}`), 1);
  assert.equal(seen.get(`inmanta_background_tasks_running{${slice}}`), 0);
});
