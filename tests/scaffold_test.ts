/**
 * `deno task new-extension`: the files it writes, and the names and folders it refuses. The
 * scaffold's own test, check and `deno publish --dry-run` tasks run in jsr_e2e_test.ts, against
 * the local registry.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
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

Deno.test("scaffold: the files of a new extension; bad names and folders refused", async (t) => {
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
  // Narrow permissions: imports only from JSR and the local registry.
  assert.match(manifest.tasks.test, /--allow-import=jsr\.io:443,127\.0\.0\.1 /);
  assert.ok(manifest.tasks.serve && manifest.tasks.dev);
  for (
    const file of [
      "README.md",
      "LICENSE",
      "dev.cfg",
      "inmanta_ext/greeter_plus/api.ts",
      "inmanta_ext/greeter_plus/static/index.html",
    ]
  ) {
    assert.ok((await Deno.stat(join(dir, file))).isFile, file);
  }
  // The template generates the Inmanta idiom: after core.server, before core.transport.
  const source = await Deno.readTextFile(join(dir, "inmanta_ext/greeter_plus/extension.ts"));
  assert.match(source, /getDependencies\(\): string\[\] \{\s+return \["core\.server"\];/);
  assert.match(source, /getDependedBy\(\): string\[\] \{\s+return \["core\.transport"\];/);

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
