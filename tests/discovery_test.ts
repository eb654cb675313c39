/**
 * Discovery errors an operator can act on: an extension the server process may not read is
 * reported as such, not only as "not found".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serve, tempDir } from "./helpers.ts";

Deno.test("discovery: 'not found' names a read permission the server lacks", async () => {
  await using config = await tempDir();
  await using hidden = await tempDir();
  await Deno.mkdir(join(hidden.path, "inmanta_ext", "secret"), { recursive: true });
  await Deno.writeTextFile(
    join(hidden.path, "inmanta_ext", "secret", "extension.ts"),
    "export function setup() {}\n",
  );
  const cfg = join(config.path, "hidden.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = secret\nextension_path = ${hidden.path}\n`,
  );
  // The server may read its configuration's folder, not the extension's.
  const server = serve(["--config", cfg, "--port", "0"], [config.path]);
  assert.equal((await server.process.status).code, 1);
  const folder = join(hidden.path, "inmanta_ext", "secret");
  assert.ok(
    server.stderr().includes(
      `extension secret is enabled but not found; looked for ${folder}/extension.ts; the server process may not read ${folder}/extension.ts (grant it with --allow-read=${folder} or move the extension under a folder it may read)`,
    ),
    server.stderr(),
  );
});
