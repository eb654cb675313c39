/**
 * The author's path, end to end and offline, as docs/extensions.md walks it: scaffold
 * `@acme/my-ext`, run its own test and check tasks, publish 0.1.0 into a local registry (the
 * project's own, serving this checkout as `@inmanta/server`), start a real server with
 * `source = jsr:@acme/my-ext@^0.1`, call its JSON-body endpoint, fetch its static page, see the
 * version; publish 0.1.1 and see it after a restart; a 0.2.0 that requires core ^9 is refused
 * naming both versions; tampered files are refused and only that extension fails; with the
 * registry gone, the newest cached match starts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serveRegistry } from "../src/registry/registry.ts";
import { corePackage, forgetCached, getJson, PROJECT, serve, tempDir } from "./helpers.ts";

async function deno(args: string[], cwd: string, env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1", ...env },
  }).output();
  return { code, text: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

interface Extension {
  name: string;
  version: string;
  source: string;
  status: string;
  reason: string | null;
}

Deno.test("JSR end to end: scaffold, publish, load, upgrade, refuse", async (t) => {
  await using work = await tempDir();
  const packages = join(work.path, "registry");
  await Deno.mkdir(packages);
  await using registry = await serveRegistry(packages, { extra: [await corePackage()] });
  await forgetCached(registry.url);
  const env = { JSR_URL: registry.url };
  const ext = join(work.path, "my-ext");
  const manifest = join(ext, "deno.json");

  const publish = async () => {
    const { code, text } = await deno(
      ["task", "registry", "publish", ext, "--to", packages],
      PROJECT,
    );
    assert.equal(code, 0, text);
    return text;
  };
  const setVersion = async (version: string, core?: string) => {
    const json = JSON.parse(await Deno.readTextFile(manifest));
    json.version = version;
    if (core) json.imports["@inmanta/server"] = `jsr:@inmanta/server@${core}`;
    await Deno.writeTextFile(manifest, JSON.stringify(json, null, 2) + "\n");
  };

  const cfg = join(work.path, "server.cfg");
  const configure = (range: string, cache = "cache") =>
    Deno.writeTextFile(
      cfg,
      `[server]
enabled_extensions = my_ext
package_cache = ${join(work.path, cache)}
boot_failure = continue
[extension.my_ext]
source = jsr:@acme/my-ext@${range}
isolation = none
`,
    );
  const start = () =>
    serve(["--config", cfg, "--port", "0"], [work.path], {
      env,
      flags: ["--no-lock", "--allow-import=127.0.0.1", `--allow-write=${work.path}`],
    });
  const status = async (url: string) => {
    const { body } = await getJson(`${url}/api/v1/serverstatus`);
    return (body.data as { extensions: Extension[] }).extensions.find((e) => e.name === "my_ext")!;
  };

  await t.step("scaffold; its own test, check and publish --dry-run, offline", async () => {
    const made = await deno(
      ["task", "new-extension", "my_ext", "--dir", ext, "--scope", "@acme"],
      PROJECT,
    );
    assert.equal(made.code, 0, made.text);
    const tested = await deno(["task", "test"], ext, env);
    assert.equal(tested.code, 0, tested.text);
    const checked = await deno(["task", "check"], ext, env);
    assert.equal(checked.code, 0, checked.text);
    // JSR's "no slow types": the JSON-body endpoint needs no hand-written zod types.
    const dry = await deno(["publish", "--dry-run", "--allow-dirty"], ext, env);
    assert.equal(dry.code, 0, dry.text);
    assert.match(dry.text, /Dry run complete/);
  });

  await t.step("publish 0.1.0 and load it by range", async () => {
    assert.match(await publish(), /published @acme\/my-ext@0\.1\.0/);
    await configure("^0.1");
    const server = start();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    assert.match(server.stderr(), /extension my_ext 0\.1\.0 loaded from jsr:@acme\/my-ext@\^0\.1/);
    const put = await fetch(`${url}/api/v2/my_ext/items/a1`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "first" }),
    });
    assert.deepEqual([put.status, await put.json()], [200, {
      data: { id: "a1", title: "first", done: false },
    }]);
    const page = await fetch(`${url}/my_ext/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<h1>my_ext<\/h1>/);
    const mine = await status(url);
    assert.deepEqual([mine.version, mine.source, mine.status], [
      "0.1.0",
      "jsr:@acme/my-ext@^0.1",
      "loaded",
    ]);
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });

  await t.step("publish 0.1.1: a restart picks it up", async () => {
    await setVersion("0.1.1");
    await publish();
    const server = start();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    assert.equal((await status(url)).version, "0.1.1");
    // Its static files, read (and kept in the package cache) from 0.1.1's manifest.
    const page = await fetch(`${url}/my_ext/`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });

  await t.step("0.2.0 requires core ^9: refused naming both versions", async () => {
    await setVersion("0.2.0", "^9");
    await publish();
    await configure("^0.2");
    await Deno.writeTextFile(cfg, (await Deno.readTextFile(cfg)).replace("continue", "abort"));
    const server = start();
    const { code } = await server.process.status;
    assert.equal(code, 1);
    assert.match(
      server.stderr(),
      /start-up failed \(boot_failure = abort\): extension my_ext 0\.2\.0 requires core \^9 \(jsr:@acme\/my-ext@0\.2\.0\/deno\.json imports "@inmanta\/server"\) but this server is 0\.1\.0/,
    );
  });

  await t.step("tampered files are refused; only that extension fails", async (step) => {
    // The registry took 0.1.1's checksums when it was first asked for them.
    const published = join(packages, "@acme/my-ext/0.1.1/inmanta_ext/my_ext");
    await Deno.writeTextFile(join(published, "static/index.html"), "<h1>owned</h1>\n");
    await configure("0.1.1", "fresh-cache");
    await step.step("a static file: its location answers 503 naming the call", async () => {
      const server = start();
      const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
      const page = await fetch(`${url}/my_ext/`);
      assert.equal(page.status, 503);
      const { message } = await page.json();
      assert.match(
        message,
        /^slice my_ext\.main: addStaticHandler\("\/my_ext", "http:\/\/127\.0\.0\.1:\d+\/@acme\/my-ext\/0\.1\.1\/inmanta_ext\/my_ext\/static\/"\): .*index\.html does not match its checksum/,
      );
      assert.equal((await status(url)).status, "loaded");
      server.process.kill("SIGTERM");
      assert.equal((await server.process.status).code, 0);
    });
    await step.step("a module: the extension fails, the server runs", async () => {
      await setVersion("0.1.2", "^0.1.0");
      await publish();
      await (await fetch(`${registry.url}/@acme/my-ext/0.1.2_meta.json`)).body?.cancel();
      const module = join(packages, "@acme/my-ext/0.1.2/inmanta_ext/my_ext/extension.ts");
      await Deno.writeTextFile(module, (await Deno.readTextFile(module)) + "\n// owned\n");
      await configure("0.1.2");
      const server = start();
      const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
      const mine = await status(url);
      assert.equal(mine.status, "failed");
      assert.match(mine.reason!, /Integrity check failed/);
      server.process.kill("SIGTERM");
      assert.equal((await server.process.status).code, 0);
    });
  });

  await t.step("registry unreachable: the newest cached match starts, with a warning", async () => {
    await registry.close();
    await configure(">=0.1.0 <0.1.2");
    const server = start();
    const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
    assert.match(
      server.stderr(),
      /WARNING +server: extension my_ext: cannot reach http:\/\/127\.0\.0\.1:\d+\/@acme\/my-ext\/meta\.json: .*; using the versions of @acme\/my-ext seen before/,
    );
    assert.equal((await status(url)).version, "0.1.1");
    const page = await fetch(`${url}/my_ext/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<h1>my_ext<\/h1>/);
    server.process.kill("SIGTERM");
    assert.equal((await server.process.status).code, 0);
  });
});
