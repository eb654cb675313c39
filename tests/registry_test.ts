/**
 * The local registry (`deno task registry`): packages copied into its folder are served without a
 * restart, `publish` copies a package and refuses a version already there, `--help` answers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { rewrite, serveRegistry } from "../src/registry/registry.ts";
import { forgetCached, PROJECT, tempDir } from "./helpers.ts";

async function task(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "registry", ...args],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  return { code, text: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

async function writePackage(dir: string, version: string) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "deno.json"),
    JSON.stringify({ name: "@acme/thing", version, exports: "./mod.ts" }),
  );
  await Deno.writeTextFile(join(dir, "mod.ts"), `export const version = "${version}";\n`);
}

Deno.test("registry: publish, served without a restart, --help", async (t) => {
  await using work = await tempDir();
  const root = join(work.path, "registry");
  await using registry = await serveRegistry(root);
  await forgetCached(registry.url);
  const versions = async () => {
    const answer = await fetch(`${registry.url}/@acme/thing/meta.json`);
    return answer.ok ? Object.keys((await answer.json()).versions).sort() : answer.status;
  };

  await t.step("an unknown package is 404", async () => {
    assert.equal(await versions(), 404);
  });
  await t.step("publish copies the package; the running registry serves it", async () => {
    const source = join(work.path, "thing");
    await writePackage(source, "1.0.0");
    const first = await task(["publish", source, "--to", root]);
    assert.equal(first.code, 0, first.text);
    assert.match(first.text, /published @acme\/thing@1\.0\.0 into /);
    assert.deepEqual(await versions(), ["1.0.0"]);
    const meta = await (await fetch(`${registry.url}/@acme/thing/1.0.0_meta.json`)).json();
    assert.deepEqual(Object.keys(meta.manifest).sort(), ["/deno.json", "/mod.ts"]);
    await writePackage(source, "1.1.0");
    assert.equal((await task(["publish", source, "--to", root])).code, 0);
    assert.deepEqual(await versions(), ["1.0.0", "1.1.0"]);
  });
  await t.step("a version already there is refused", async () => {
    const again = await task(["publish", join(work.path, "thing"), "--to", root]);
    assert.equal(again.code, 2);
    assert.match(again.text, /@acme\/thing@1\.1\.0 is already in .*: bump "version" first/);
  });
  await t.step("--help and a bad option", async () => {
    const help = await task(["--help"]);
    assert.equal(help.code, 0, help.text);
    assert.match(help.text, /deno task registry publish PACKAGE_DIR/);
    const bad = await task(["--bogus"]);
    assert.equal(bad.code, 2);
    assert.match(bad.text, /registry: Unknown option '--bogus'.*\(see --help\)/);
  });
});

Deno.test("registry: bare specifiers are rewritten as JSR publishes them", () => {
  const imports = { "@inmanta/server": "jsr:@inmanta/server@^0.1.0", "hono/": "npm:/hono@4/" };
  assert.equal(
    rewrite(
      `import { a } from "@inmanta/server";\nimport { z } from "@inmanta/server/zod";\nimport "hono/x";\nimport "./local.ts";\n`,
      imports,
    ),
    `import { a } from "jsr:@inmanta/server@^0.1.0";\nimport { z } from "jsr:@inmanta/server@^0.1.0/zod";\nimport "npm:/hono@4/x";\nimport "./local.ts";\n`,
  );
});
