/**
 * Request ids, the access log and JSON logs: ids come back in `X-Request-Id` and in the log
 * lines written while handling the request; `log.format = json` writes one object per line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { logged, serve, startServer, tempDir, writeExtension } from "./helpers.ts";
import { OPS_EXTENSION, opsServer } from "./ops_fixture.ts";

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] request ids: a sane client id comes back and is in the handler's log line`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "ops", OPS_EXTENSION);
    await using test = await startServer({ roots: [root.path], enable: ["ops"], isolation });
    const said = logged(test, (r) => r.message === "saying hello to ann");
    const response = await fetch(`${test.url}/api/v2/ops/hello/ann`, {
      headers: { "x-request-id": "client-id-42" },
    });
    await response.body?.cancel();
    assert.equal(response.headers.get("x-request-id"), "client-id-42");
    // From a sandbox the line crosses the channel after the answer: wait for it.
    const line = await said;
    assert.equal(line.source, "ops.main");
    assert.equal(line.requestId, "client-id-42");
  });
}

Deno.test("request ids: made when absent or not sane, different per request, on every answer", async () => {
  await using root = await tempDir();
  await using test = await opsServer(root.path);
  const idOf = async (path: string, sent?: string) => {
    const response = await fetch(`${test.url}${path}`, {
      headers: sent === undefined ? {} : { "x-request-id": sent },
    });
    await response.body?.cancel();
    return response.headers.get("x-request-id");
  };
  const first = await idOf("/api/v2/ops/hello/a");
  const second = await idOf("/api/v2/ops/hello/b");
  assert.ok(first && second && first !== second);
  const insane = await idOf("/api/v2/ops/hello/c", "two words\u00e9");
  assert.ok(insane && insane !== "two words\u00e9");
  assert.equal(await idOf("/api/v2/ops/hello/d", "x".repeat(129)) === "x".repeat(129), false);
  // Failures, 404s, the core's own answers and /metrics carry one too.
  for (const path of ["/api/v2/ops/boom", "/nowhere", "/api/v2/health", "/metrics"]) {
    assert.match((await idOf(path, "same-id")) ?? "", /^same-id$/, path);
  }
  // The handler's failure is logged under the request's id.
  await idOf("/api/v2/ops/boom", "boom-id");
  assert.ok(
    test.logs.some((r) => r.requestId === "boom-id" && r.message.includes("boom on purpose")),
  );
});

Deno.test("access log: off by default; on, one line per answer with route template and extension", async () => {
  await using root = await tempDir();
  {
    await using test = await opsServer(root.path);
    await (await fetch(`${test.url}/api/v2/ops/hello/x`)).body?.cancel();
    assert.equal(test.logs.filter((r) => r.source === "access").length, 0);
  }
  await using test = await opsServer(root.path, "[log]\naccess_log = true\n");
  await (await fetch(`${test.url}/api/v2/ops/hello/x`, { headers: { "x-request-id": "acc-1" } }))
    .body?.cancel();
  await (await fetch(`${test.url}/nowhere`, { headers: { "x-request-id": "acc-2" } })).body
    ?.cancel();
  const lines = test.logs.filter((r) => r.source === "access");
  assert.equal(lines.length, 2);
  const [hello, missing] = lines;
  assert.equal(hello.requestId, "acc-1");
  assert.equal(hello.level, "info");
  assert.deepEqual(
    { ...hello.fields, duration_ms: typeof hello.fields?.duration_ms },
    {
      method: "GET",
      route: "/api/v2/ops/hello/:name",
      status: 200,
      extension: "ops",
      duration_ms: "number",
    },
  );
  assert.match(hello.message, /^GET \/api\/v2\/ops\/hello\/:name 200 [\d.]+ms ops$/);
  assert.equal(missing.requestId, "acc-2");
  assert.deepEqual([missing.fields?.route, missing.fields?.status], ["-", 404]);
});

Deno.test("log.format: an unknown format is a start-up error naming the option", async () => {
  await assert.rejects(
    startServer({ config: "[log]\nformat = yaml\n" }),
    /log\.format = yaml: unknown log format 'yaml' \(use text or json\)/,
  );
});

Deno.test("log.format = json: every line of a real server's stderr is one JSON object", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "ops", OPS_EXTENSION);
  const cfg = join(root.path, "json.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = ops\nextension_path = ${root.path}\n` +
      `[extension.ops]\nisolation = none\n[log]\nformat = json\naccess_log = true\n`,
  );
  const server = serve(["--config", cfg, "--port", "0"], [root.path]);
  const running = JSON.parse(await server.line(/server running at/));
  const url = /server running at (\S+)/.exec(running.message)![1];
  const response = await fetch(`${url}/api/v2/ops/hello/json`, {
    headers: { "x-request-id": "json-id-7" },
  });
  await response.body?.cancel();
  await server.line(/"logger":"access"/);
  server.process.kill("SIGTERM");
  assert.equal((await server.process.status).code, 0);

  const lines = server.stderr().split("\n").filter((l) => l !== "");
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const record of records) {
    for (const key of ["time", "level", "logger", "message"]) assert.ok(key in record, key);
    assert.ok(!Number.isNaN(Date.parse(record.time as string)));
  }
  const hello = records.find((r) => r.message === "saying hello to json");
  assert.deepEqual(
    [hello?.logger, hello?.level, hello?.request_id],
    ["ops.main", "INFO", "json-id-7"],
  );
  const access = records.find((r) => r.logger === "access");
  assert.equal(access?.request_id, "json-id-7");
  assert.equal(access?.route, "/api/v2/ops/hello/:name");
  assert.ok(records.some((r) => r.message === "server stopped" && !("request_id" in r)));
});
