/**
 * The web console in a real browser: Debian's chromium, driven by playwright-core, against a
 * real server with the console, the example extension and an extension whose slice fails.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { logged, PROJECT, startTestServer, tempDir, writeExtension } from "./helpers.ts";

Deno.test("console: shows the server, its extensions, slices, endpoints and tasks", async () => {
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
  await using test = await startTestServer({
    roots: [join(PROJECT, "extensions"), root.path],
    enable: ["ui", "new_extension", "broken"],
    start: false,
  });
  const failed = logged(test, (r) => r.message.startsWith("extension broken failed"));
  await test.server.start();
  await failed;

  const artifacts = join(PROJECT, "tests/artifacts");
  await Deno.mkdir(artifacts, { recursive: true });
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", "tests/browser/console_driver.ts", test.url, artifacts],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(code, 0, decode(stderr));
  const seen = JSON.parse(decode(stdout));

  assert.deepEqual(seen.errors, [], "no console errors");
  assert.equal(seen.version, "0.1.0");
  assert.match(seen.health, /degraded/);
  assert.ok(
    seen.extensions.some((row: string) => row.includes("new_extension") && row.includes("worker")),
  );
  assert.ok(
    seen.extensions.some((row: string) => /broken.*failed.*broken on purpose/s.test(row)),
  );
  assert.ok(seen.slices.some((row: string) => /broken\.main\s*failed/.test(row)));
  assert.deepEqual(
    seen.graphNodes.find((n: { slice: string }) => n.slice === "broken.main"),
    { slice: "broken.main", class: "node failed" },
  );
  assert.equal(seen.graphNodes.length, seen.slices.length);
  assert.ok(seen.endpoints.some((e: string) => e.includes("/api/v2/scheduled-tasks")));
  assert.match(seen.tried, /^200\n[\s\S]*"message": "hello browser"/);
  assert.ok(
    seen.tasks.some((t: string) =>
      t.includes("new_extension.greeter") && t.includes("reportGreetings") &&
      t.includes("every 60s")
    ),
  );
  assert.equal(seen.firstFocus, "Skip to content");
  assert.ok(seen.widthAt375 <= 375, `the page is ${seen.widthAt375}px wide at 375px`);
  assert.ok((await Deno.stat(join(artifacts, "console.png"))).size > 10_000);
});
