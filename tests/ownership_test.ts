/**
 * Ownership of URLs and static locations: first owner wins, core first. An extension cannot
 * replace the console's `/console/app.js`, shadow another extension's `/greeting/:name` with a
 * literal `/greeting/admin`, route HEAD on core's serverstatus, or claim a location at run time.
 * The loser fails by its boot_failure policy; the owner keeps serving.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getJson, PROJECT, startServer, tempDir, writeExtension } from "./helpers.ts";

const THIEVES: Record<string, { source: string; error: RegExp }> = {
  console_thief: {
    source: `import { ServerSlice } from "@inmanta/server";
class Thief extends ServerSlice {
  constructor(name) {
    super(name);
    this.addStaticContent("/console/app.js", "steal(token)", "text/javascript");
  }
}
export function setup(app) { app.registerSlice(new Thief("console_thief.main")); }
`,
    error:
      /static location \/console\/app\.js is at, inside or around \/console, served by ui\.\w+: a location belongs to its first owner/,
  },
  shadow: {
    source: `import { handle, method, ServerSlice } from "@inmanta/server";
export const admin = method({ path: "/greeting/admin", operation: "GET" });
class Shadow extends ServerSlice {
  @handle(admin)
  admin() { return { message: "pwned" }; }
}
export function setup(app) { app.registerSlice(new Shadow("shadow.main")); }
`,
    error:
      /extension shadow \(slice shadow\.main\) routes \/api\/v2\/greeting\/admin, which overlaps \/api\/v2\/greeting\/:name of extension new_extension/,
  },
  headgrab: {
    source: `import { handle, method, ServerSlice } from "@inmanta/server";
export const head = method({ path: "/serverstatus", operation: "HEAD", apiVersion: 1 });
class Grab extends ServerSlice {
  @handle(head)
  head() { return null; }
}
export function setup(app) { app.registerSlice(new Grab("headgrab.main")); }
`,
    error:
      /routes \/api\/v1\/serverstatus, which overlaps \/api\/v1\/serverstatus of extension core/,
  },
};

for (const isolation of ["process", "worker", "none"] as const) {
  for (const [name, thief] of Object.entries(THIEVES)) {
    Deno.test(`[isolation=${isolation}] ownership: ${name} cannot take what another owns`, async () => {
      await using root = await tempDir();
      await writeExtension(root.path, name, thief.source);
      const roots = [join(PROJECT, "extensions"), root.path];
      const enable = ["ui", "new_extension", name];
      const config = `[extension.${name}]\nisolation = ${isolation}\n`;
      await assert.rejects(startServer({ roots, enable, config }), thief.error);
      await using test = await startServer({
        roots,
        enable,
        config: `${config}boot_failure = continue\n`,
      });
      const status = await getJson(`${test.url}/api/v1/serverstatus`);
      const extensions = (status.body.data as {
        extensions: { name: string; status: string; reason: string | null }[];
      }).extensions;
      const loser = extensions.find((e) => e.name === name)!;
      assert.equal(loser.status, "failed");
      assert.match(loser.reason!, thief.error);
      // The owners keep what they own.
      const app = await fetch(`${test.url}/console/app.js`);
      assert.equal(app.status, 200);
      assert.doesNotMatch(await app.text(), /steal\(token\)/);
      const admin = await getJson(`${test.url}/api/v2/greeting/admin`);
      assert.deepEqual([admin.status, admin.body], [200, { data: { message: "hello admin" } }]);
      assert.equal(
        (await fetch(`${test.url}/api/v1/serverstatus`, { method: "HEAD" })).status,
        200,
      );
    });
  }
}

Deno.test("ownership: a claim at run time, inside a handler, is refused with a clear error", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "late",
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const grab = method({ path: "/late/grab", operation: "POST" });
class Late extends ServerSlice {
  @handle(grab)
  grab() {
    this.addStaticContent("/console/app.js", "steal(token)", "text/javascript");
    return "took it";
  }
}
export function setup(app) { app.registerSlice(new Late("late.main")); }
`,
  );
  await using test = await startServer({
    roots: [join(PROJECT, "extensions"), root.path],
    enable: ["ui", "late"],
    isolation: "none",
  });
  const grab = await getJson(`${test.url}/api/v2/late/grab`, { method: "POST" });
  assert.equal(grab.status, 500);
  assert.ok(
    test.logs.some((r) =>
      /static location \/console\/app\.js is at, inside or around/.test(r.message)
    ),
  );
  assert.doesNotMatch(await (await fetch(`${test.url}/console/app.js`)).text(), /steal\(token\)/);
});
