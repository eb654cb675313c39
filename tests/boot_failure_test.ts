/**
 * The failure policy (`server.boot_failure`, `extension.<name>.boot_failure`): with continue, an
 * extension that fails to load or start is reported failed, health says degraded, the rest serves.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { abortedByBootFailure } from "../src/server.ts";
import { getJson, startServer, tempDir, writeExtension } from "./helpers.ts";

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
  extensions: { name: string; status: string; source?: string; reason: string | null }[];
  slices: { name: string; state: string; status: Record<string, unknown>; reason: string | null }[];
}

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] boot_failure = continue: a failing start is isolated`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "healthy", PING);
    await writeExtension(root.path, "badstart", BAD_START);
    await using test = await startServer({
      roots: [root.path],
      enable: ["badstart", "healthy"],
      isolation,
      config: "[server]\nboot_failure = continue\n",
    });
    const status = (await getJson(`${test.url}/api/v1/serverstatus`)).body.data as Status;
    const bad = status.extensions.find((e) => e.name === "badstart")!;
    assert.equal(bad.status, "failed");
    assert.equal(bad.reason, "slice badstart.main: start failed: database unreachable");
    assert.deepEqual(
      status.slices.filter((s) => s.name.startsWith("badstart")).map((
        s,
      ) => [s.name, s.state, s.reason]),
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
  await using test = await startServer({
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
      reason: "extension nosetup: setup failed: no config",
      schema_version: null,
      restarts: 0,
      last_failure: "extension nosetup: setup failed: no config",
    },
  );
  assert.deepEqual((await getJson(`${test.url}/api/v2/ping`)).body, { data: "pong" });

  const strict = await startServer({
    roots: [root.path],
    enable: ["nosetup", "healthy"],
    start: false,
  });
  await assert.rejects(
    strict.server.start(),
    /^ExtensionError: extension nosetup: setup failed: no config$/,
  );
});

/** Broken extensions, written the way each breaks, and the reason the server gives. */
const BROKEN: Record<string, { write(root: string): Promise<unknown>; reason: RegExp }> = {
  "an import error": {
    write: (root) => writeExtension(root, "broken", "throw new Error('kaboom at import');\n"),
    reason: /^extension broken: cannot import .*extension\.ts: kaboom at import/,
  },
  "a missing setup": {
    write: (root) => writeExtension(root, "broken", "export const version = '1.0.0';\n"),
    reason: /^extension broken: .*extension\.ts does not export a function setup\(application\)/,
  },
  "a missing extension.ts": {
    write: (root) => Deno.mkdir(join(root, "inmanta_ext", "broken"), { recursive: true }),
    reason: /^extension broken is enabled but not found; looked for .*extension\.ts/,
  },
};

for (const isolation of ["none", "worker", "process"] as const) {
  for (const [kind, broken] of Object.entries(BROKEN)) {
    Deno.test(`[isolation=${isolation}] ${kind}: one behaviour in every mode, the policy is named`, async (t) => {
      await using root = await tempDir();
      await writeExtension(root.path, "healthy", PING);
      await broken.write(root.path);
      await t.step("abort (the default): start-up stops, naming the extension", async () => {
        const test = await startServer({
          roots: [root.path],
          enable: ["broken", "healthy"],
          start: false,
          isolation,
        });
        await assert.rejects(test.server.start(), (error: unknown) => {
          // One line naming the extension and the cause; the command line adds the policy.
          const message = (error as Error).message;
          assert.match(message, broken.reason);
          assert.ok(!message.includes("\n"), message);
          assert.ok(abortedByBootFailure(error));
          return true;
        });
        await test.stop();
      });
      await t.step("continue: only it fails, the rest serves, health is degraded", async () => {
        await using test = await startServer({
          roots: [root.path],
          enable: ["broken", "healthy"],
          isolation,
          config: "[extension.broken]\nboot_failure = continue\n",
        });
        const status = (await getJson(`${test.url}/api/v1/serverstatus`)).body.data as Status;
        const failed = status.extensions.find((e) => e.name === "broken")!;
        assert.equal(failed.status, "failed");
        assert.match(failed.reason!, broken.reason);
        assert.ok(!failed.reason!.includes("boot_failure"), failed.reason!);
        assert.ok(
          test.logs.some((r) =>
            r.message.startsWith(
              "extension broken failed to load (boot_failure = continue: the rest starts): ",
            )
          ),
        );
        assert.deepEqual((await getJson(`${test.url}/api/v2/ping`)).body, { data: "pong" });
        const health = await getJson(`${test.url}/api/v2/health`);
        assert.deepEqual([health.status, health.body], [503, {
          data: { status: "degraded", failed: ["broken"] },
          message: "server is degraded",
        }]);
      });
    });
  }
}

Deno.test("no extension enabled: the log names the ones found and the option, as Inmanta", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "healthy", PING);
  await writeExtension(root.path, "another", PING);
  await using test = await startServer({ roots: [root.path] });
  assert.ok(
    test.logs.some((r) =>
      r.level === "warning" &&
      r.message ===
        "extensions found on server.extension_path but none enabled: another, healthy; enable them with server.enabled_extensions = another,healthy"
    ),
  );
});

Deno.test("boot_failure: an unknown value is a clear error", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "healthy", PING);
  const test = await startServer({
    roots: [root.path],
    enable: ["healthy"],
    config: "[server]\nboot_failure = maybe\n",
    start: false,
  });
  await assert.rejects(test.server.start(), /server\.boot_failure = maybe: use abort or continue/);
});
