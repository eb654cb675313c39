/**
 * `deno task new-extension` as an author uses it: the scaffold's own tests, checks and
 * `deno publish --dry-run` pass, with `@inmanta/server` fetched from a local JSR registry that
 * serves this very library (JSR itself is out of reach here, and this is the same path).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serveRegistry } from "../src/registry/registry.ts";
import { PROJECT, tempDir } from "./helpers.ts";

async function deno(args: string[], cwd: string, env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1", ...env },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return { code, text };
}

const SCAFFOLD = [
  "run",
  "--allow-read",
  "--allow-write",
  join(PROJECT, "src/scaffold/new_extension.ts"),
];

Deno.test("scaffold: a new extension tests, checks and publishes (dry run)", async (t) => {
  await using packages = await tempDir();
  const core = join(packages.path, "@inmanta/server/0.1.0");
  await Deno.mkdir(core, { recursive: true });
  for (const entry of ["src", "deno.json", "LICENSE", "README.md"]) {
    await new Deno.Command("cp", { args: ["-r", join(PROJECT, entry), core] }).output();
  }
  await using registry = await serveRegistry(packages.path);
  const env = { JSR_URL: registry.url };
  await using work = await tempDir();
  const dir = join(work.path, "greeter_plus");

  const made = await deno(
    [...SCAFFOLD, "greeter_plus", "--dir", dir, "--scope", "@acme"],
    work.path,
  );
  assert.equal(made.code, 0, made.text);
  const manifest = JSON.parse(await Deno.readTextFile(join(dir, "deno.json")));
  assert.equal(manifest.name, "@acme/greeter-plus");
  assert.equal(manifest.version, "0.1.0");
  assert.equal(manifest.exports, "./inmanta_ext/greeter_plus/extension.ts");
  assert.equal(manifest.imports["@inmanta/server"], "jsr:@inmanta/server@^0.1.0");
  for (const file of ["README.md", "LICENSE", "inmanta_ext/greeter_plus/static/index.html"]) {
    assert.ok((await Deno.stat(join(dir, file))).isFile, file);
  }

  await t.step("its own deno task test", async () => {
    const { code, text } = await deno(["task", "test"], dir, env);
    assert.equal(code, 0, text);
    assert.match(text, /ok \| 2 passed \| 0 failed/);
  });
  await t.step("its own deno task check", async () => {
    const { code, text } = await deno(["task", "check"], dir, env);
    assert.equal(code, 0, text);
  });
  await t.step("deno publish --dry-run", async () => {
    const { code, text } = await deno(["publish", "--dry-run"], dir, env);
    assert.equal(code, 0, text);
    assert.match(text, /Dry run complete/);
  });
  await t.step("bad names and existing folders are refused", async () => {
    for (
      const [args, message] of [
        [["Bad-Name"], /'Bad-Name' is not a valid extension name: use a lower-case identifier/],
        [["9lives"], /'9lives' is not a valid extension name/],
        [["greeter_plus", "--dir", dir], /already exists: choose another --dir or remove it/],
        [["fine", "--scope", "acme"], /'acme' is not a JSR scope/],
      ] as const
    ) {
      const { code, text } = await deno([...SCAFFOLD, ...args], work.path);
      assert.equal(code, 2, text);
      assert.match(text, message);
    }
  });
});
