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
  startTestServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";

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
  await using test = await startTestServer({
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
  await using test = await startTestServer({
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
