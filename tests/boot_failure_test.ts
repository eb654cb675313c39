/**
 * The failure policy (`server.boot_failure`, `extension.<name>.boot_failure`): with continue, an
 * extension that fails to load or start is reported failed, health says degraded, the rest serves.
 */
import assert from "node:assert/strict";
import { getJson, startTestServer, tempDir, writeExtension } from "./helpers.ts";

const PING = `import { handle, method, ServerSlice } from "@inmanta/server";
export const ping = method({ path: "/ping", operation: "GET" });
class P extends ServerSlice { @handle(ping) ping() { return "pong"; } }
export function setup(app) { app.registerSlice(new P("healthy.main")); }
`;

const BAD_START = `import { handle, method, ServerSlice } from "@inmanta/server";
export const broken = method({ path: "/broken", operation: "GET" });
class Bad extends ServerSlice {
  start() { throw new Error("database unreachable"); }
  @handle(broken) broken() { return "never"; }
}
class After extends ServerSlice { getDependencies() { return ["badstart.main"]; } }
export function setup(app) {
  app.registerSlice(new Bad("badstart.main"));
  app.registerSlice(new After("badstart.after"));
}
`;

interface Status {
  extensions: { name: string; status: string; source?: string; failure?: string }[];
  slices: { name: string; status: string; failure?: string }[];
}

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] boot_failure = continue: a failing start is isolated`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "healthy", PING);
    await writeExtension(root.path, "badstart", BAD_START);
    await using test = await startTestServer({
      roots: [root.path],
      enable: ["badstart", "healthy"],
      isolation,
      config: "[server]\nboot_failure = continue\n",
    });
    const status = (await getJson(`${test.url}/api/v1/serverstatus`)).body.data as Status;
    const bad = status.extensions.find((e) => e.name === "badstart")!;
    assert.equal(bad.status, "failed");
    assert.equal(bad.failure, "slice badstart.main: start failed: database unreachable");
    assert.deepEqual(
      status.slices.filter((s) => s.name.startsWith("badstart")).map((
        s,
      ) => [s.name, s.status, s.failure]),
      [
        ["badstart.main", "failed", "start failed: database unreachable"],
        ["badstart.after", "failed", "depends on slice badstart.main, which failed"],
      ],
    );
    assert.deepEqual((await getJson(`${test.url}/api/v2/ping`)).body, { data: "pong" });
    const broken = await getJson(`${test.url}/api/v2/broken`);
    assert.equal(broken.status, 503);
    const health = await getJson(`${test.url}/api/v2/health`);
    assert.deepEqual([health.status, health.body.message], [503, "server is degraded"]);
  });
}

Deno.test("boot_failure per extension: one continues, the default still aborts", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "healthy", PING);
  await writeExtension(
    root.path,
    "nosetup",
    "export function setup() { throw new Error('no config'); }\n",
  );
  await using test = await startTestServer({
    roots: [root.path],
    enable: ["nosetup", "healthy"],
    config: "[extension.nosetup]\nboot_failure = continue\n",
  });
  const status = (await getJson(`${test.url}/api/v1/serverstatus`)).body.data as Status;
  assert.deepEqual(
    status.extensions.find((e) => e.name === "nosetup"),
    {
      name: "nosetup",
      version: "unknown",
      source: status.extensions.find((e) => e.name === "nosetup")!.source,
      isolation: "process",
      permissions: "",
      status: "failed",
      failure: "extension nosetup: setup failed: no config",
      schema_version: null,
    },
  );
  assert.deepEqual((await getJson(`${test.url}/api/v2/ping`)).body, { data: "pong" });

  const strict = await startTestServer({
    roots: [root.path],
    enable: ["nosetup", "healthy"],
    start: false,
  });
  await assert.rejects(
    strict.server.start(),
    /^ExtensionError: extension nosetup: setup failed: no config$/,
  );
});

Deno.test("boot_failure: an unknown value is a clear error", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "healthy", PING);
  const test = await startTestServer({
    roots: [root.path],
    enable: ["healthy"],
    config: "[server]\nboot_failure = maybe\n",
    start: false,
  });
  await assert.rejects(test.server.start(), /server\.boot_failure = maybe: use abort or continue/);
});
