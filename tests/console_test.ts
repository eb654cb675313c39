/**
 * The web console in a real browser: Debian's chromium, driven by playwright-core, against a
 * real server with the console, the example extension and an extension whose slice fails.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SignJWT } from "jose";
import {
  externalBinary,
  logged,
  PROJECT,
  startServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";
import { OPS_EXTENSION } from "./ops_fixture.ts";

/** Debian's chromium; the browser tests skip (loudly) without it unless CI is set. */
const CHROMIUM = externalBinary("chromium", "chromium");

/** Runs the browser driver against `url`; returns what it saw. */
async function drive(url: string, artifacts: string, token?: string) {
  await Deno.mkdir(artifacts, { recursive: true });
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-lock",
      "tests/browser/console_driver.ts",
      url,
      artifacts,
      CHROMIUM!,
      ...(token ? [token] : []),
    ],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(code, 0, decode(stderr));
  return JSON.parse(decode(stdout));
}

Deno.test({
  name: "console: shows the server, its extensions, slices, endpoints and tasks",
  ignore: !CHROMIUM,
}, async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "broken",
    `import { ServerSlice } from "@inmanta/server";
class Broken extends ServerSlice {
  start() { setTimeout(() => { throw new Error("broken on purpose"); }, 0); }
}
export function setup(app) { app.registerSlice(new Broken("broken.main")); }
`,
  );
  await using test = await startServer({
    roots: [join(PROJECT, "extensions"), root.path],
    enable: ["ui", "new_extension", "broken"],
    start: false,
    // Its timer may fire before or after its start is reported done (a process sandbox's last
    // message can be lost with it): either way it is one failed extension, not a failed start.
    config: "[extension.broken]\nboot_failure = continue\n",
  });
  const failed = logged(test, (r) => r.message.startsWith("extension broken failed"));
  await test.server.start();
  await failed;

  const artifacts = join(PROJECT, "tests/artifacts");
  const seen = await drive(test.url, artifacts);

  assert.deepEqual(seen.errors, [], "no console errors");
  assert.equal(seen.version, "0.1.0");
  assert.match(seen.health, /degraded/);
  assert.ok(
    seen.extensions.some((row: string) => row.includes("new_extension") && row.includes("process")),
  );
  assert.ok(
    seen.extensions.some((row: string) => /broken.*failed.*broken on purpose/s.test(row)),
  );
  assert.ok(seen.slices.some((row: string) => /broken\.main\s*failed/.test(row)));
  // Each slice's getStatus() beside its lifecycle state.
  assert.ok(
    seen.slices.some((row: string) =>
      /^core\.transport\s*started.*listening.*127\.0\.0\.1:\d+.*in_flight/s.test(row)
    ),
    JSON.stringify(seen.slices),
  );
  assert.deepEqual(
    seen.graphNodes.find((n: { slice: string }) => n.slice === "broken.main"),
    { slice: "broken.main", class: "node failed" },
  );
  assert.equal(seen.graphNodes.length, seen.slices.length);
  assert.ok(seen.endpoints.some((e: string) => e.includes("/api/v2/scheduled-tasks")));
  assert.match(seen.tried, /^200\n[\s\S]*"message": "hello browser"/);
  assert.ok(
    seen.tasks.some((t: string) =>
      t.includes("new_extension.greeter") && t.includes("report greetings") &&
      t.includes("every 60s")
    ),
  );
  assert.equal(seen.firstFocus, "Skip to content");
  assert.ok(seen.widthAt375 <= 375, `the page is ${seen.widthAt375}px wide at 375px`);
  assert.ok((await Deno.stat(join(artifacts, "console.png"))).size > 10_000);
});

Deno.test({
  name: "console: with server.auth on, it asks for a token and then shows the server",
  ignore: !CHROMIUM,
}, async () => {
  const key = "a-console-test-secret-of-more-than-32-characters";
  await using test = await startServer({
    roots: [join(PROJECT, "extensions")],
    enable: ["ui", "new_extension"],
    config: `[server]\nauth = true\n[auth_jwt_default]\nkey = ${key}\n`,
  });
  const token = await new SignJWT({ "urn:inmanta:ct": ["api"] })
    .setProtectedHeader({ alg: "HS256" }).setIssuer("https://localhost:8888/")
    .setAudience("https://localhost:8888/").sign(new TextEncoder().encode(key));
  const seen = await drive(test.url, join(PROJECT, "tests/artifacts/auth"), token);
  assert.equal(seen.askedForToken, true);
  assert.equal(seen.loginHidden, true);
  assert.ok(seen.extensions.some((row: string) => row.includes("new_extension")));
  assert.match(seen.tried, /^200\n[\s\S]*"message": "hello browser"/);
  // Only the first, unauthenticated reads fail (the browser logs their 401s).
  for (const error of seen.errors) assert.match(error, /401/);
});

Deno.test({
  name: "console: the Operations table shows rates, errors, latency, resources and a live chart",
  ignore: !CHROMIUM,
}, async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "ops", OPS_EXTENSION);
  await using test = await startServer({
    roots: [join(PROJECT, "extensions"), root.path],
    enable: ["ui", "ops"],
    config: "[extension.ops]\nisolation = none\n[extension.ui]\nisolation = none\n",
  });
  // The sandbox host reports sandboxes; here the test plays the host for the ops extension.
  test.server.sandboxMetrics.report("ops", {
    cpuSeconds: 1.25,
    rssBytes: 64 * 2 ** 20,
    heapUsedBytes: 12 * 2 ** 20,
    state: "restarting",
    restarts: 2,
    startedAt: Date.now() - 60_000,
    lastFailure: "heap limit reached",
  });
  const artifacts = join(PROJECT, "tests/artifacts");
  await Deno.mkdir(artifacts, { recursive: true });
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-lock",
      "tests/browser/operations_driver.ts",
      test.url,
      artifacts,
      CHROMIUM!,
    ],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(code, 0, decode(stderr));
  const seen = JSON.parse(decode(stdout));

  assert.deepEqual(seen.headers.slice(0, 9), [
    "Extension",
    "Requests/s",
    "Errors (5xx)",
    "p50",
    "p99",
    "CPU",
    "Memory",
    "Restarts",
    "Last failure",
  ]);
  const [name, rate, errors, p50, p99, cpu, memory, restarts, lastFailure] = seen.cells;
  assert.equal(name, "ops");
  assert.ok(Number(rate) > 0, `rate ${rate}`);
  // Every other request fails.
  assert.match(errors, /^\d+(\.\d)?%$/);
  assert.ok(Number(errors.slice(0, -1)) >= 25 && Number(errors.slice(0, -1)) <= 75, errors);
  assert.match(p50, /^\d+(\.\d+)? (µs|ms)$/);
  assert.match(p99, /^\d+(\.\d+)? (µs|ms)$/);
  assert.equal(cpu, "0.0%");
  assert.equal(memory, "64.0 MiB (heap 12.0 MiB)");
  assert.equal(restarts, "2 (restarting)");
  assert.equal(lastFailure, "heap limit reached");
  assert.ok(seen.chart.points >= 3 && seen.chart.painted > 0, JSON.stringify(seen.chart));
  assert.match(seen.chart.label, /^ops: requests per second over the last 5 minutes, peak /);
  assert.match(seen.process, /^Server process: CPU .*resident memory \d+\.\d MiB/);
  // In-process extensions share the server's figures.
  assert.equal(seen.core[4], "in server");
  // The failing route's 500s are the only errors the browser reports.
  for (const error of seen.errors) assert.match(error, /500/);
});
