/**
 * Profiles one load target: starts it with `deno run --cpu-prof`, puts wrk on it, stops it, and
 * prints self time per function aggregated over the whole V8 profile (top 25), so that the
 * cost of a path can be read without a browser.
 *
 * Run: `deno run -A bench/profile.ts [--target=endpoint|greeting|404|static|body64|raw|raw-body64]
 * [--duration=5s] [--isolation=none|worker|process]` (`body<KiB>`: a POST of that many KiB of
 * JSON; `--isolation`: the extensions' mode, `none` by default; the profile is the server's side).
 */
import { join } from "node:path";
import { writeExtensions } from "./load.ts";
import { PROJECT, spawnServer } from "./spawn.ts";
import { ensureWrk, postScript, wrk } from "./wrk.ts";

const flag = (name: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const TARGET = flag("target") ?? "endpoint";
const DURATION = flag("duration") ?? "5s";
const ISOLATION = flag("isolation") ?? "none";
const PATHS: Record<string, string> = {
  raw: "/api/v2/ext7/item3/abc",
  endpoint: "/api/v2/ext7/item3/abc",
  greeting: "/api/v2/greeting/world?shout=true",
  "404": "/api/v2/nothing/here",
  static: "/greeter/",
};
const KIB = Number(/body(\d+)$/.exec(TARGET)?.[1] ?? 0);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

if (import.meta.main) {
  await ensureWrk();
  const root = await Deno.makeTempDir({ prefix: "inmanta-profile-" });
  await writeExtensions(root);
  const names = [...Array.from({ length: 20 }, (_, e) => `ext${e}`), "new_extension"];
  const config = join(root, "profile.cfg");
  await Deno.writeTextFile(
    config,
    `[server]\nenabled_extensions = ${names.join(",")}\n` +
      `extension_path = ${root}:${join(PROJECT, "extensions")}\n` +
      names.map((n) => `[extension.${n}]\nisolation = ${ISOLATION}\n`).join(""),
  );
  const profiles = join(root, "profiles");
  const args = TARGET.startsWith("raw")
    ? ["run", `--cpu-prof`, `--cpu-prof-dir=${profiles}`, "-A", "bench/targets/raw.ts"]
    : [
      "run",
      "--cpu-prof",
      `--cpu-prof-dir=${profiles}`,
      "-A",
      "main.ts",
      "--config",
      config,
      "--port",
      "0",
    ];
  if (TARGET.startsWith("raw")) args.splice(-1, 1, "bench/targets/raw.ts");
  const script = KIB
    ? await postScript(
      root,
      "body",
      JSON.stringify({
        items: Array.from({ length: Math.floor(KIB * 1024 / 67) }, (_, i) =>
          String(i).padStart(64, "x")),
      }),
    )
    : undefined;
  const path = KIB ? "/api/v2/ext0/echo" : PATHS[TARGET];
  const connections = KIB ? 10 : 50;
  const { child, url } = await spawnServer(args, "0");
  await wrk({ url: `${url}${path}`, connections, duration: "1s", cpus: "1", script });
  const report = await wrk({
    url: `${url}${path}`,
    connections,
    duration: DURATION,
    cpus: "1",
    script,
  });
  child.kill("SIGTERM");
  await child.status;
  const self = new Map<string, number>();
  let total = 0;
  for await (const entry of Deno.readDir(profiles)) {
    const profile: Profile = JSON.parse(await Deno.readTextFile(join(profiles, entry.name)));
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const frame = byId.get(id)!.callFrame;
      const where = frame.url ? ` ${frame.url.replace(/^.*\//, "")}:${frame.lineNumber + 1}` : "";
      const key = `${frame.functionName || "(anonymous)"}${where}`;
      const dt = profile.timeDeltas[i] ?? 0;
      self.set(key, (self.get(key) ?? 0) + dt);
      if (key !== "(idle)") total += dt;
    });
  }
  // The warm-up's requests are in the profile too: about one second's worth more.
  const requests = report.requests * (1 + 1 / parseFloat(DURATION));
  console.log(
    `${TARGET}: ${Math.round(report.requestsPerSecond)} req/s; ${
      (total / requests).toFixed(2)
    } µs of JavaScript (not idle) per request; share of it per function:`,
  );
  self.delete("(idle)");
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${(us / total * 100).toFixed(1).padStart(5)}%  ${key}`);
  }
  await Deno.remove(root, { recursive: true });
}
