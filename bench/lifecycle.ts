/**
 * Lifecycle benchmark: boot to healthy and resident memory idle (the server and its children)
 * with 1/10/100/1,000 in-process extensions and 1/10/20/50 sandboxed ones per isolation mode
 * (against a raw Deno.serve's boot in the same run), and shutdown with 1000 requests of 200 ms
 * in flight at SIGTERM. Part of `deno task bench`; `--quick` measures less (CI smoke).
 */
import { join } from "node:path";
import { residentMiB } from "./proc.ts";
import { PROJECT, type Running, spawnServer } from "./spawn.ts";

const QUICK = Deno.args.includes("--quick");
/** Sandboxed isolation modes measured; `process` joins with one line once it lands. */
const SANDBOXED: readonly string[] = ["worker", "process"];
const FLAGS = [
  "--allow-read",
  "--allow-net=127.0.0.1",
  "--allow-env=INMANTA_*,JSR_URL",
  "--allow-run=deno",
];

async function writeExtensions(root: string, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `ext${i}`;
    names.push(name);
    const dir = join(root, "inmanta_ext", name);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      join(dir, "extension.ts"),
      `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const slow = method({ path: "/${name}/slow", operation: "GET", args: z.object({ ms: z.coerce.number().default(0), together: z.coerce.number().default(1) }) });
export const busy = method({ path: "/${name}/busy", operation: "GET" });
let inside = 0;
const all = Promise.withResolvers();
class S extends ServerSlice {
  // Requests wait for one another, then each takes ms: all are in flight together.
  @handle(slow) async slow({ ms, together }) {
    if (++inside >= together) all.resolve();
    await all.promise;
    await new Promise((r) => setTimeout(r, ms));
    return "done";
  }
  @handle(busy) busy() { return inside; }
}
export function setup(app) { app.registerSlice(new S("${name}.main")); }
`,
    );
  }
  return names;
}

const start = spawnServer;

async function server(root: string, names: string[], isolation: string): Promise<Running> {
  const cfg = join(root, `${isolation}-${names.length}.cfg`);
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = ${
      names.join(",")
    }\nextension_path = ${root}\nshutdown_timeout = 30\n` +
      // 50 sandboxes starting together on a loaded machine can miss the default 5 s heartbeat.
      "sandbox_heartbeat_timeout = 60\n" +
      names.map((n) => `[extension.${n}]\nisolation = ${isolation}\n`).join(""),
  );
  const running = await start(["run", ...FLAGS, "main.ts", "--config", cfg, "--port", "0"]);
  // "server running" is printed once every slice started: that is healthy.
  return running;
}

async function stop(running: Running): Promise<number> {
  const t0 = performance.now();
  running.child.kill("SIGTERM");
  await running.child.status;
  return performance.now() - t0;
}

if (import.meta.main) {
  const root = await Deno.makeTempDir({ prefix: "inmanta-bench-life-" });
  const all = await writeExtensions(root, QUICK ? 1 : 1000);
  const results: Record<string, unknown>[] = [];
  const row = (what: string, value: number, unit: string, extra: Record<string, unknown> = {}) => {
    results.push({ what, value: Math.round(value * 10) / 10, unit, ...extra });
    console.error(`${what}: ${value.toFixed(1)} ${unit}`);
  };

  const raw = await start(["run", "--allow-net=127.0.0.1", "bench/targets/raw.ts"]);
  const rawBoot = performance.now() - raw.started;
  await stop(raw);
  row("boot raw Deno.serve (baseline)", rawBoot, "ms");

  const base = await server(root, [], "none");
  await new Promise((r) => setTimeout(r, 500));
  const rss0 = await residentMiB(base.child.pid);
  row("resident memory idle, 0 extensions", rss0, "MiB");
  await stop(base);
  const boots: [string, number][] = QUICK
    ? [["none", 1], ...SANDBOXED.map((i): [string, number] => [i, 1])]
    : [
      ["none", 1],
      ["none", 10],
      ["none", 100],
      ["none", 1000],
      ...SANDBOXED.flatMap((i) => [1, 10, 20, 50].map((n): [string, number] => [i, n])),
    ];
  for (const [isolation, count] of boots) {
    const running = await server(root, all.slice(0, count), isolation);
    const ms = performance.now() - running.started;
    const mode = isolation === "none" ? "in-process" : `sandboxed (${isolation})`;
    row(`boot to healthy, ${count} ${mode}`, ms, "ms", {
      perExtensionMs: Math.round((ms - rawBoot) / count * 10) / 10,
    });
    // Idle memory once everything started and settled.
    await new Promise((r) => setTimeout(r, 500));
    const rss = await residentMiB(running.child.pid);
    row(`resident memory idle, ${count} ${mode}`, rss, "MiB", {
      perExtensionMiB: Math.round((rss - rss0) / count * 10) / 10,
    });
    await stop(running);
  }

  // Shutdown under load: every request in flight at SIGTERM completes.
  const inFlight = QUICK ? 100 : 1000;
  const loaded = await server(root, all.slice(0, 1), "none");
  const requests = Array.from(
    { length: inFlight },
    () =>
      fetch(`${loaded.url}/api/v2/ext0/slow?ms=200&together=${inFlight}`).then(async (
        r,
      ) => (await r.text(), r.status))
        .catch(() => 0),
  );
  // SIGTERM once every request is inside its handler (a benchmark may poll).
  while (
    await fetch(`${loaded.url}/api/v2/ext0/busy`).then((r) => r.json()).then((b) => b.data) <
      inFlight
  ) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const shutdown = stop(loaded);
  const statuses = await Promise.all(requests);
  const ok = statuses.filter((s) => s === 200).length;
  row(`shutdown with ${inFlight} requests of 200 ms in flight`, await shutdown, "ms", {
    sent: inFlight,
    answered200: ok,
    lost: inFlight - ok,
  });

  await Deno.remove(root, { recursive: true });
  console.log(
    [
      "| measure | value | notes |",
      "| --- | --- | --- |",
      ...results.map((r) =>
        `| ${r.what} | ${r.value} ${r.unit} | ${
          Object.entries(r).filter(([k]) => !["what", "value", "unit"].includes(k)).map(([k, v]) =>
            `${k} ${v}`
          ).join(", ")
        } |`
      ),
    ].join("\n"),
  );
  await Deno.mkdir(join(PROJECT, "bench", "results"), { recursive: true });
  await Deno.writeTextFile(
    join(PROJECT, "bench", "results", "lifecycle.json"),
    JSON.stringify({ date: new Date().toISOString(), results }, null, 2),
  );
}
