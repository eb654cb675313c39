/**
 * `deno task dev`: the server under --watch restarts when a local extension changes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getJson, PROJECT, tempDir, writeExtension } from "./helpers.ts";

const TASK = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json"))).tasks.dev as string;

Deno.test("dev: editing a local extension restarts the server", async () => {
  await using root = await tempDir();
  await using logs = await tempDir();
  const version = (n: number) =>
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const which = method({ path: "/which", operation: "GET" });
class W extends ServerSlice { @handle(which) which() { return ${n}; } }
export function setup(app) { app.registerSlice(new W("watched.main")); }
`;
  await writeExtension(root.path, "watched", version(1));
  const cfg = join(logs.path, "dev.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = watched\nextension_path = ${root.path}\nbind_port = 0\n`,
  );
  // The dev task's flags, watching the temporary extension root instead of extensions/.
  const flags = TASK.split(" ").slice(2, -1).map((f) =>
    f.startsWith("--watch=")
      ? `--watch=${root.path}`
      : f.startsWith("--allow-read=")
      ? `${f},${root.path},${logs.path}`
      : f
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "main.ts", "--config", cfg],
    cwd: PROJECT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const nextUrl = async (after: number): Promise<string> => {
    for (;;) {
      const urls = [...text.matchAll(/server running at (\S+)/g)].map((m) => m[1]);
      if (urls.length > after) return urls[after];
      const { value, done } = await lines.read();
      if (done) throw new Error(`dev server ended:\n${text}`);
      text += value;
    }
  };
  const first = await nextUrl(0);
  assert.deepEqual((await getJson(`${first}/api/v2/which`)).body, { data: 1 });
  await Deno.writeTextFile(join(root.path, "inmanta_ext/watched/extension.ts"), version(2));
  const second = await nextUrl(1);
  assert.match(text, /Restarting! File change detected/);
  assert.deepEqual((await getJson(`${second}/api/v2/which`)).body, { data: 2 });
  // Under --watch, SIGTERM ends the run and the watcher waits for changes; Ctrl-C ends it.
  child.kill("SIGINT");
  await child.status;
  await lines.cancel().catch(() => {});
});
