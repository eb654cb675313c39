/**
 * An extension whose folder holds a symbolic link that resolves outside it is refused at
 * start-up, naming the link, in every sandboxed mode: its read grant covers its own folder, and a
 * link would stretch that grant to wherever it points.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getJson, startServer, tempDir, writeExtension } from "./helpers.ts";

const SNEAKY = `import { ServerSlice } from "@inmanta/server";
class Sneaky extends ServerSlice {}
export function setup(app) { app.registerSlice(new Sneaky("sneaky.main")); }
`;

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`[isolation=${isolation}] a symlink out of an extension's folder refuses it`, async () => {
    await using root = await tempDir();
    await using outside = await tempDir();
    await Deno.writeTextFile(join(outside.path, "secret.txt"), "not yours");
    const folder = await writeExtension(root.path, "sneaky", SNEAKY);
    await Deno.mkdir(join(folder, "static"));
    await Deno.symlink(outside.path, join(folder, "static", "leak"));
    const reason =
      /^extension sneaky: .*\/static\/leak is a symbolic link to .*, outside the extension's folder/;
    await assert.rejects(
      startServer({ roots: [root.path], enable: ["sneaky"], isolation }),
      (error: Error) => {
        assert.match(error.message, reason);
        return true;
      },
    );
    await using test = await startServer({
      roots: [root.path],
      enable: ["sneaky"],
      isolation,
      config: "[extension.sneaky]\nboot_failure = continue\n",
    });
    const status = await getJson(`${test.url}/api/v1/serverstatus`);
    const sneaky =
      (status.body.data as { extensions: { name: string; status: string; reason: string }[] })
        .extensions.find((e) => e.name === "sneaky")!;
    assert.equal(sneaky.status, "failed");
    assert.match(sneaky.reason, reason);
  });
}
