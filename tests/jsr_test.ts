/**
 * Extensions from JSR: a local JSR-protocol registry (the project's own, as `deno task registry`
 * serves it) on 127.0.0.1 with test packages in several versions, and a real server process that
 * Deno points at it with JSR_URL. Ranges pick the right version; an unknown package and a
 * tampered one fail only their extension with a clear reason; fetched packages start offline.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serveRegistry } from "../src/registry/registry.ts";
import { forgetCached, getJson, serve, tempDir } from "./helpers.ts";

async function writePackage(root: string, pkg: string, version: string, ext: string) {
  const dir = join(root, pkg, version);
  await Deno.mkdir(join(dir, "inmanta_ext", ext), { recursive: true });
  await Deno.writeTextFile(
    join(dir, "deno.json"),
    JSON.stringify({ name: pkg, version, exports: `./inmanta_ext/${ext}/extension.ts` }),
  );
  await Deno.writeTextFile(
    join(dir, "inmanta_ext", ext, "extension.ts"),
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const version = "${version}";
export const which = method({ path: "/${ext}/version", operation: "GET" });
class Versioned extends ServerSlice {
  @handle(which)
  which() { return version; }
}
export function setup(app) { app.registerSlice(new Versioned("${ext}.main")); }
`,
  );
}

Deno.test("JSR: ranges, unknown and tampered packages, offline restart", async (t) => {
  await using packages = await tempDir();
  for (const version of ["1.0.0", "1.2.0", "2.0.0"]) {
    await writePackage(packages.path, "@test/greeter", version, "greeter");
  }
  await writePackage(packages.path, "@test/tampered", "1.0.0", "tampered");
  const registry = await serveRegistry(packages.path);
  await forgetCached(registry.url);
  // The registry takes a version's checksums when it is first asked for it (a published
  // version never changes); changed afterwards, what it serves no longer matches them.
  await (await fetch(`${registry.url}/@test/tampered/1.0.0_meta.json`)).body?.cancel();
  await Deno.writeTextFile(
    join(packages.path, "@test/tampered/1.0.0/inmanta_ext/tampered/extension.ts"),
    "export function setup() { globalThis.owned = true; }\n",
  );
  await using config = await tempDir();
  const cfg = join(config.path, "jsr.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]
enabled_extensions = greeter, bogus, tampered
extension_path = ${config.path}
[extension.greeter]
source = jsr:@test/greeter@^1
[extension.bogus]
source = jsr:@test/nothere@^1
boot_failure = continue
[extension.tampered]
source = jsr:@test/tampered@1
boot_failure = continue
`,
  );
  const run = () =>
    serve(["--config", cfg, "--port", "0"], [config.path], {
      env: { JSR_URL: registry.url },
      flags: ["--no-lock", "--allow-import=127.0.0.1"],
    });

  await t.step("the range picks the highest matching version", async (step) => {
    const server = run();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    const answer = await getJson(`${url}/api/v2/greeter/version`);
    assert.deepEqual([answer.status, answer.body], [200, { data: "1.2.0" }]);
    const status = await getJson(`${url}/api/v1/serverstatus`);
    const extensions = (status.body.data as {
      extensions: {
        name: string;
        version: string;
        source: string;
        status: string;
        reason: string | null;
      }[];
    }).extensions;
    const greeter = extensions.find((e) => e.name === "greeter")!;
    assert.deepEqual([greeter.version, greeter.source, greeter.status], [
      "1.2.0",
      "jsr:@test/greeter@^1",
      "loaded",
    ]);

    await step.step("an unknown package fails its extension with a clear reason", () => {
      const bogus = extensions.find((e) => e.name === "bogus")!;
      assert.equal(bogus.status, "failed");
      assert.equal(
        bogus.reason,
        "extension bogus: cannot fetch jsr:@test/nothere@^1: JSR package not found: @test/nothere",
      );
    });
    await step.step("a tampered package is refused and the server survives", () => {
      const tampered = extensions.find((e) => e.name === "tampered")!;
      assert.equal(tampered.status, "failed");
      assert.match(
        tampered.reason!,
        /^extension tampered: cannot fetch jsr:@test\/tampered@1 \(resolved to 1\.0\.0\): Integrity check failed in package\. The package may have been tampered with\. \(Specifier: http:\/\/127\.0\.0\.1:\d+\/@test\/tampered\/1\.0\.0\/inmanta_ext\/tampered\/extension\.ts\)$/,
      );
    });
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });

  await t.step("an exact version, in-process", async () => {
    await Deno.writeTextFile(
      cfg,
      `[server]\nenabled_extensions = greeter\n[extension.greeter]\nsource = jsr:@test/greeter@2.0.0\nisolation = none\n`,
    );
    const server = run();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    assert.deepEqual((await getJson(`${url}/api/v2/greeter/version`)).body, { data: "2.0.0" });
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });

  await registry.close();

  await t.step("with the registry gone, cached packages start again", async () => {
    await Deno.writeTextFile(
      cfg,
      `[server]\nenabled_extensions = greeter\n[extension.greeter]\nsource = jsr:@test/greeter@^1\n`,
    );
    const server = run();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    assert.deepEqual((await getJson(`${url}/api/v2/greeter/version`)).body, { data: "1.2.0" });
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });
});
