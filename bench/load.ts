/**
 * Load benchmark: wrk against a raw Deno.serve (the baseline), a plain hono app with the same
 * routes, and the server with 200 routes over 20 extensions, in-process and sandboxed, plus a
 * static file and the 404 path. Every figure is reported as a ratio to the baseline measured in
 * the same run. `deno task bench` runs it; `--quick` runs each target briefly (CI smoke).
 */
import { join } from "node:path";
import { PROJECT, spawnServer } from "./spawn.ts";

const QUICK = Deno.args.includes("--quick");
const DURATION = QUICK ? "1s" : "5s";
const CONNECTIONS = 50;
/** Targets are measured in interleaved rounds; each figure is the median round. */
const ROUNDS = QUICK ? 1 : 5;

/**
 * With two or more CPUs and taskset, the server runs on CPU 0 and wrk on CPU 1, so that they do
 * not take turns on the same core: run-to-run spread drops from about 15% to a few percent.
 */
async function pinning(): Promise<{ server?: string; wrk?: string }> {
  if (navigator.hardwareConcurrency < 2) return {};
  try {
    const probe = await new Deno.Command("taskset", {
      args: ["-c", "0", "true"],
      stdout: "null",
      stderr: "null",
    }).output();
    return probe.success ? { server: "0", wrk: "1" } : {};
  } catch {
    return {};
  }
}
const PIN = await pinning();

interface Result {
  target: string;
  requestsPerSecond: number;
  p50ms: number;
  p99ms: number;
  non2xx: number;
  /** Median over the rounds of this target's rate over the baseline's in the same round. */
  ratio?: number;
  /** Lowest and highest of those per-round ratios. */
  ratioRange?: [number, number];
}

async function ensureWrk(): Promise<void> {
  try {
    await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    console.error("wrk is missing: installing Debian's package");
    const apt = await new Deno.Command("apt-get", { args: ["install", "-y", "wrk"] }).output();
    if (!apt.success) throw new Error("cannot install wrk (apt-get install -y wrk)");
  }
}

/** Writes 20 extensions with 10 GET routes each (and a static folder) under `root`. */
export async function writeExtensions(root: string): Promise<void> {
  for (let e = 0; e < 20; e++) {
    const dir = join(root, "inmanta_ext", `ext${e}`);
    await Deno.mkdir(join(dir, "static"), { recursive: true });
    await Deno.writeTextFile(join(dir, "static", "index.html"), "<h1>bench</h1>\n".repeat(20));
    const methods = Array.from(
      { length: 10 },
      (_, r) =>
        `export const m${r} = method({ path: "/ext${e}/item${r}/:id", operation: "GET", args: z.object({ id: z.string() }) });`,
    );
    const handlers = Array.from(
      { length: 10 },
      (_, r) => `  @handle(m${r}) h${r}({ id }) { return { id }; }`,
    );
    await Deno.writeTextFile(
      join(dir, "extension.ts"),
      `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
${methods.join("\n")}
class Bench extends ServerSlice {
${handlers.join("\n")}
  prestart() { this.addStaticHandler("/static${e}", new URL("./static/", import.meta.url)); }
}
export function setup(app) { app.registerSlice(new Bench("ext${e}.main")); }
`,
    );
  }
}

interface Target {
  name: string;
  args: string[];
  path: string;
  /** A sandboxed server runs two busy threads (main and worker): it is not pinned to one CPU. */
  unpinned?: boolean;
}

async function run(target: Target): Promise<Result> {
  const pin = target.unpinned ? {} : PIN;
  const { child, url } = await spawnServer(target.args, pin.server);
  const wrk = async (duration: string) => {
    const args = ["-t1", `-c${CONNECTIONS}`, `-d${duration}`, "--latency", `${url}${target.path}`];
    const command = pin.wrk
      ? new Deno.Command("taskset", { args: ["-c", pin.wrk, "wrk", ...args], stdout: "piped" })
      : new Deno.Command("wrk", { args, stdout: "piped" });
    return new TextDecoder().decode((await command.output()).stdout);
  };
  await wrk("1s"); // warm-up (JIT, connections)
  const out = await wrk(DURATION);
  child.kill("SIGTERM");
  await child.status;
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]];
  };
  return {
    target: target.name,
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50ms: ms("50%"),
    p99ms: ms("99%"),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
  };
}

if (import.meta.main) {
  await ensureWrk();
  const root = await Deno.makeTempDir({ prefix: "inmanta-bench-" });
  await writeExtensions(root);
  const enabled = Array.from({ length: 20 }, (_, e) => `ext${e}`).join(",");
  const config = async (isolation: string) => {
    const file = join(root, `${isolation}.cfg`);
    await Deno.writeTextFile(
      file,
      `[server]\nenabled_extensions = ${enabled}\nextension_path = ${root}\n` +
        Array.from({ length: 20 }, (_, e) => `[extension.ext${e}]\nisolation = ${isolation}\n`)
          .join(""),
    );
    return file;
  };
  const serve = (cfg: string) => [
    "run",
    "--allow-read",
    "--allow-net=127.0.0.1",
    "--allow-env=INMANTA_*,JSR_URL",
    "--allow-run=deno",
    "main.ts",
    "--config",
    cfg,
    "--port",
    "0",
  ];
  const inProcess = await config("none");
  const sandboxed = await config("worker");
  const route = "/api/v2/ext7/item3/abc";
  const targets: Target[] = [
    {
      name: "raw Deno.serve (baseline)",
      args: ["run", "--allow-net=127.0.0.1", "bench/targets/raw.ts"],
      path: route,
    },
    {
      name: "plain hono, 200 routes",
      args: ["run", "--allow-net=127.0.0.1", "bench/targets/hono.ts"],
      path: route,
    },
    { name: "server in-process, 200 routes / 20 extensions", args: serve(inProcess), path: route },
    {
      name: "server sandboxed (worker), 200 routes / 20 extensions, unpinned",
      args: serve(sandboxed),
      path: route,
      unpinned: true,
    },
    { name: "static file (in-process)", args: serve(inProcess), path: "/static7/index.html" },
    { name: "404 path", args: serve(inProcess), path: "/api/v2/nothing/here" },
  ];
  const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7);
  const chosen = targets.filter((t, i) => i === 0 || !only || t.name.includes(only));
  const rounds: Result[][] = chosen.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [i, target] of chosen.entries()) {
      const result = await run(target);
      rounds[i].push(result);
      console.error(
        `round ${round}/${ROUNDS} ${target.name}: ${Math.round(result.requestsPerSecond)} req/s`,
      );
    }
  }
  const median = (values: number[]) => values.toSorted((a, b) => a - b)[values.length >> 1];
  const results = rounds.map((measured) => {
    const rate = median(measured.map((r) => r.requestsPerSecond));
    // Each round pairs the target with a baseline measured minutes apart at most, which
    // cancels most of this VM's drift between runs.
    const ratios = measured.map((r, round) =>
      r.requestsPerSecond / rounds[0][round].requestsPerSecond
    );
    return {
      ...measured.find((r) => r.requestsPerSecond === rate)!,
      ratio: median(ratios),
      ratioRange: [Math.min(...ratios), Math.max(...ratios)] as [number, number],
    };
  });
  await Deno.remove(root, { recursive: true });

  const percent = (x: number) => `${(x * 100).toFixed(0)}%`;
  const rows = results.map((r) =>
    `| ${r.target} | ${Math.round(r.requestsPerSecond)} | ${percent(r.ratio)} | ${
      percent(r.ratioRange[0])
    }–${percent(r.ratioRange[1])} | ${r.p50ms.toFixed(2)} | ${r.p99ms.toFixed(2)} |`
  );
  console.log(
    [
      `wrk -t1 -c${CONNECTIONS} -d${DURATION}, median of ${ROUNDS} interleaved rounds${
        PIN.server ? ", server on CPU 0 and wrk on CPU 1" : ""
      }, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
      "",
      "| target | req/s | vs raw | per round | p50 ms | p99 ms |",
      "| --- | --- | --- | --- | --- | --- |",
      ...rows,
    ].join("\n"),
  );
  await Deno.mkdir(join(PROJECT, "bench", "results"), { recursive: true });
  await Deno.writeTextFile(
    join(PROJECT, "bench", "results", "latest.json"),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        duration: DURATION,
        connections: CONNECTIONS,
        rounds: ROUNDS,
        pinned: PIN.server !== undefined,
        results,
      },
      null,
      2,
    ),
  );
}
