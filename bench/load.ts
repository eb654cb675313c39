/**
 * Load benchmark: wrk against a raw Deno.serve (the baseline) and the server, in interleaved
 * rounds, each figure as a ratio to the baseline of the same round and as CPU time per request
 * of the server process and its children (from /proc), which does not depend on the core count
 * or on what else the machine runs.
 *
 * Sections: `main` (the goals: 200 routes over 20 extensions in-process and sandboxed, the
 * example extension's greeting endpoint, its static page, the 404 path), then how cost grows
 * with `routes` (200 / 2,000 / 20,000), `bodies` (1 KiB / 64 KiB / 1 MiB JSON POST, as MB/s)
 * and `concurrency` (50 / 500 / 5,000 connections). Boot and memory against the number of
 * extensions are in bench/lifecycle.ts.
 *
 * Flags: `--quick` (one short round of the main section: CI smoke), `--rounds=N`,
 * `--duration=3s`, `--only=SECTION[,SECTION]`, `--match=TEXT` (main targets whose name holds
 * it, and the baseline), `--before=GIT-REV` (also runs the in-process targets from that
 * revision's tree, for a before/after in the same run).
 */
import { dirname, join } from "node:path";
import { cpuSeconds } from "./proc.ts";
import { PROJECT, spawnServer } from "./spawn.ts";
import { ensureWrk, postScript, wrk, type WrkReport } from "./wrk.ts";

const flag = (name: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const QUICK = Deno.args.includes("--quick");
const DURATION = flag("duration") ?? (QUICK ? "1s" : "3s");
/** Rounds of the main section (the goals); the growth sections run fewer. */
const ROUNDS = Number(flag("rounds") ?? (QUICK ? 1 : 9));
const GROWTH_ROUNDS = Math.min(ROUNDS, 3);
const SECTIONS = (flag("only") ?? (QUICK ? "main" : "main,routes,bodies,concurrency")).split(",");
const BEFORE = flag("before");

/**
 * Isolation modes measured as sandboxed targets. Each is one line: the server's configuration
 * takes the mode by name (`process` joins once the lead's process isolation lands).
 */
const SANDBOXED: readonly string[] = ["worker", "process"];

/**
 * With two or more CPUs and taskset, the server runs on CPU 0 and wrk on CPU 1, so that they do
 * not take turns on the same core.
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

/** Something to measure: a server to start and a request to send it. */
interface Target {
  name: string;
  /** `deno` arguments that start it. */
  args: string[];
  /** Its working directory (the project by default; another tree for `--before`). */
  cwd?: string;
  /** Path and query of the request. */
  path: string;
  /** wrk Lua script (POST bodies). */
  script?: string;
  /** Request body size in bytes, for MB/s. */
  bodyBytes?: number;
  /** wrk connections; 50 by default. */
  connections?: number;
  /** A sandboxed server runs several busy threads or processes: not pinned to one CPU. */
  unpinned?: boolean;
  /** The baseline of its group: ratios are to it. */
  baseline?: boolean;
  /** The status it answers when it works (200 by default). */
  expect?: number;
}

/** One target's measurement in one round. */
interface Measured extends WrkReport {
  /** CPU seconds of the server and its descendants during the measured run. */
  cpuSeconds: number;
  /** Why the round does not count (the target answered something else than it should). */
  invalid?: string;
}

/**
 * Starts the target, checks that it answers as it should (a sandbox that failed to start under
 * a loaded machine answers 404 or 503, which must not pass for a fast endpoint), warms it up
 * and measures it; a target that does not answer right is started once more, then its round is
 * marked invalid.
 */
async function measure(target: Target, attempt = 1): Promise<Measured> {
  const pin = target.unpinned ? {} : PIN;
  const { child, url } = await spawnServer(target.args, pin.server, target.cwd);
  try {
    if (!target.script) {
      const probe = await fetch(`${url}${target.path}`);
      await probe.body?.cancel();
      if (probe.status !== (target.expect ?? 200)) {
        const invalid = `answered ${probe.status} instead of ${target.expect ?? 200}`;
        console.error(`${target.name}: ${invalid} (attempt ${attempt})`);
        if (attempt < 2) return await measure(target, attempt + 1);
        return {
          requests: NaN,
          requestsPerSecond: NaN,
          p50ms: NaN,
          p99ms: NaN,
          non2xx: 0,
          socketErrors: 0,
          cpuSeconds: NaN,
          invalid,
        };
      }
    }
    const options = {
      url: `${url}${target.path}`,
      connections: target.connections ?? 50,
      script: target.script,
      cpus: pin.wrk,
    };
    await wrk({ ...options, duration: "1s" }); // warm-up (JIT, connections)
    const before = await cpuSeconds(child.pid);
    const report = await wrk({ ...options, duration: DURATION });
    const after = await cpuSeconds(child.pid);
    return { ...report, cpuSeconds: after - before };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

/** A target's figures over all rounds. */
interface Summary {
  target: string;
  requestsPerSecond: number;
  /** Median over rounds of req/s over the baseline's in the same round. */
  ratio: number;
  ratioRange: [number, number];
  /** Median CPU µs per request. */
  cpuPerRequestUs: number;
  /** Median over rounds of CPU per request over the baseline's in the same round. */
  cpuRatio: number;
  cpuRatioRange: [number, number];
  p50ms: number;
  p99ms: number;
  /** MB/s of request bodies, for POST targets. */
  megabytesPerSecond?: number;
  non2xx: number;
  socketErrors: number;
  rounds: Measured[];
  /** Rounds that count (the target and its baseline answered as they should). */
  validRounds: number;
  /** The status it should answer. */
  expect: number;
}

const median = (values: number[]) => {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const cpuPerRequest = (m: Measured) => m.cpuSeconds / m.requests * 1e6;

/**
 * Measures groups of targets in interleaved rounds: in each round every target of a group once,
 * then the next group. A group's first target is its baseline.
 */
async function runRounds(groups: Target[][], rounds: number, label: string): Promise<Summary[][]> {
  const measured = groups.map((group) => group.map((): Measured[] => []));
  for (let round = 1; round <= rounds; round++) {
    for (const [g, group] of groups.entries()) {
      for (const [t, target] of group.entries()) {
        const m = await measure(target);
        measured[g][t].push(m);
        console.error(
          `${label} ${round}/${rounds} ${target.name}: ${Math.round(m.requestsPerSecond)} req/s, ${
            cpuPerRequest(m).toFixed(2)
          } µs CPU/request${m.non2xx ? `, ${m.non2xx} non-2xx` : ""}`,
        );
      }
    }
  }
  return groups.map((group, g) =>
    group.map((target, t) => {
      // Rounds where the target or its baseline did not answer right do not count.
      const valid = measured[g][t].map((r, i) => [r, measured[g][0][i]])
        .filter(([r, b]) => !r.invalid && !b.invalid);
      const runs = valid.map(([r]) => r);
      const base = valid.map(([, b]) => b);
      const ratios = runs.map((r, i) => r.requestsPerSecond / base[i].requestsPerSecond);
      const cpuRatios = runs.map((r, i) => cpuPerRequest(r) / cpuPerRequest(base[i]));
      const rate = median(runs.map((r) => r.requestsPerSecond));
      return {
        target: target.name,
        requestsPerSecond: rate,
        ratio: median(ratios),
        ratioRange: [Math.min(...ratios), Math.max(...ratios)],
        cpuPerRequestUs: median(runs.map(cpuPerRequest)),
        cpuRatio: median(cpuRatios),
        cpuRatioRange: [Math.min(...cpuRatios), Math.max(...cpuRatios)],
        p50ms: median(runs.map((r) => r.p50ms)),
        p99ms: median(runs.map((r) => r.p99ms)),
        megabytesPerSecond: target.bodyBytes ? rate * target.bodyBytes / 1e6 : undefined,
        non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
        socketErrors: runs.reduce((s, r) => s + r.socketErrors, 0),
        rounds: measured[g][t],
        validRounds: runs.length,
        expect: target.expect ?? 200,
      };
    })
  );
}

/**
 * Writes 20 extensions with `perExtension` GET routes each, a static folder each, and a POST
 * endpoint in ext0 (`/api/v2/ext0/echo`, `{"items": [strings]}`) under `root`.
 */
export async function writeExtensions(root: string, perExtension = 10): Promise<void> {
  for (let e = 0; e < 20; e++) {
    const dir = join(root, "inmanta_ext", `ext${e}`);
    await Deno.mkdir(join(dir, "static"), { recursive: true });
    await Deno.writeTextFile(join(dir, "static", "index.html"), "<h1>bench</h1>\n".repeat(20));
    const methods = Array.from(
      { length: perExtension },
      (_, r) =>
        `export const m${r} = method({ path: "/ext${e}/item${r}/:id", operation: "GET", args: z.object({ id: z.string() }) });`,
    );
    const handlers = Array.from(
      { length: perExtension },
      (_, r) => `  @handle(m${r}) h${r}({ id }) { return { id }; }`,
    );
    if (e === 0) {
      methods.push(
        `export const echo = method({ path: "/ext0/echo", operation: "POST", args: z.object({ items: z.array(z.string()) }) });`,
      );
      handlers.push(`  @handle(echo) echo({ items }) { return items.length; }`);
    }
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

/** Starts the server of `tree` (a project checkout) on a configuration file. */
function serve(config: string, tree = PROJECT, unpinned = false): Pick<
  Target,
  "args" | "cwd" | "unpinned"
> {
  return {
    args: [
      "run",
      "--allow-read",
      "--allow-net=127.0.0.1",
      "--allow-env=INMANTA_*,JSR_URL",
      "--allow-run=deno",
      // The example extension keeps its counts in the embedded database, under state_dir.
      `--allow-write=${dirname(config)}`,
      "main.ts",
      "--config",
      config,
      "--port",
      "0",
    ],
    cwd: tree,
    unpinned,
  };
}

/**
 * A configuration with the 20 bench extensions of `root` and the example extension of `tree`,
 * every one in `isolation`.
 */
async function configure(root: string, tree: string, isolation: string, name: string) {
  const names = [...Array.from({ length: 20 }, (_, e) => `ext${e}`), "new_extension"];
  const file = join(root, `${name}.cfg`);
  await Deno.writeTextFile(
    file,
    `[server]\nenabled_extensions = ${names.join(",")}\n` +
      `extension_path = ${root}:${join(tree, "extensions")}\nmax_body_size = 4194304\n` +
      `state_dir = ${join(root, `state-${name}`)}\n` +
      // On a machine loaded by other work, 21 sandboxes starting together missed the default
      // 5 s heartbeat and were failed: the benchmark measures throughput, not hang detection.
      (isolation === "none" ? "" : "sandbox_heartbeat_timeout = 60\n") +
      names.map((n) => `[extension.${n}]\nisolation = ${isolation}\n`).join(""),
  );
  return file;
}

/** Extracts `rev` of this repository into a temporary directory. */
async function checkout(rev: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "inmanta-bench-before-" });
  const archive = new Deno.Command("git", {
    args: ["archive", "--format=tar", rev],
    cwd: PROJECT,
    stdout: "piped",
  }).spawn();
  const tar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  await archive.stdout.pipeTo(tar.stdin);
  if (!(await archive.status).success || !(await tar.status).success) {
    throw new Error(`cannot extract git revision ${rev}`);
  }
  return dir;
}

const percent = (x: number) => `${(x * 100).toFixed(0)}%`;
const times = (x: number) => `${x.toFixed(2)}×`;
const range = (r: [number, number], f: (x: number) => string) => `${f(r[0])}–${f(r[1])}`;

function table(summaries: Summary[], extra?: "mbps"): string {
  const head = extra === "mbps"
    ? "| target | MB/s | vs raw | CPU µs/req | CPU vs raw | p50 ms | p99 ms |"
    : "| target | req/s | vs raw (per round) | CPU µs/req | CPU vs raw (per round) | p50 ms | p99 ms |";
  const rows = summaries.map((s) => {
    const errors = (s.expect < 300 && s.non2xx) || s.socketErrors
      ? ` (${s.non2xx} non-2xx, ${s.socketErrors} socket errors)`
      : "";
    const lost = s.validRounds < s.rounds.length
      ? ` [${s.rounds.length - s.validRounds} of ${s.rounds.length} rounds did not answer right]`
      : "";
    return extra === "mbps"
      ? `| ${s.target}${errors}${lost} | ${s.megabytesPerSecond!.toFixed(1)} | ${
        percent(s.ratio)
      } | ${s.cpuPerRequestUs.toFixed(1)} | ${times(s.cpuRatio)} | ${s.p50ms.toFixed(2)} | ${
        s.p99ms.toFixed(2)
      } |`
      : `| ${s.target}${errors}${lost} | ${Math.round(s.requestsPerSecond)} | ${
        percent(s.ratio)
      } (${range(s.ratioRange, percent)}) | ${s.cpuPerRequestUs.toFixed(2)} | ${
        times(s.cpuRatio)
      } (${range(s.cpuRatioRange, times)}) | ${s.p50ms.toFixed(2)} | ${s.p99ms.toFixed(2)} |`;
  });
  return [head, head.replace(/[^|]+/g, " --- "), ...rows].join("\n");
}

if (import.meta.main) {
  await ensureWrk();
  const root = await Deno.makeTempDir({ prefix: "inmanta-bench-" });
  const cleanup = [root];
  await writeExtensions(root);
  const raw: Target = {
    name: "raw Deno.serve (baseline)",
    args: ["run", "--allow-net=127.0.0.1", "bench/targets/raw.ts"],
    path: "/api/v2/ext7/item3/abc",
    baseline: true,
  };
  const route = "/api/v2/ext7/item3/abc";
  const greeting = "/api/v2/greeting/world?shout=true";
  const inProcess = await configure(root, PROJECT, "none", "none");
  const sections: Record<string, unknown> = {};
  const output: string[] = [
    `wrk -t1 -d${DURATION} on 127.0.0.1${
      PIN.server ? ", server on CPU 0 and wrk on CPU 1 (sandboxed servers unpinned)" : ""
    }, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
  ];

  if (SECTIONS.includes("main")) {
    const page = join(
      PROJECT,
      "extensions",
      "inmanta_ext",
      "new_extension",
      "static",
      "index.html",
    );
    // Two groups: JSON endpoints against raw JSON, and the static page against raw answering the
    // same bytes from memory (a 1 KB answer costs more to send than a 30-byte one, whoever
    // sends it).
    const api: Target[] = [
      raw,
      {
        name: "plain hono, 200 routes",
        args: ["run", "--allow-net=127.0.0.1", "bench/targets/hono.ts"],
        path: route,
      },
      { name: "in-process endpoint, 200 routes / 20 extensions", ...serve(inProcess), path: route },
      {
        name: "greeting endpoint (example extension), in-process",
        ...serve(inProcess),
        path: greeting,
      },
      { name: "404 path", ...serve(inProcess), path: "/api/v2/nothing/here", expect: 404 },
    ];
    const files: Target[] = [
      {
        name: "raw Deno.serve, the same page from memory (baseline)",
        args: ["run", "--allow-net=127.0.0.1", "--allow-read", "bench/targets/raw.ts", page],
        path: "/",
        baseline: true,
      },
      { name: "small static file (example's page)", ...serve(inProcess), path: "/greeter/" },
    ];
    for (const isolation of SANDBOXED) {
      const config = await configure(root, PROJECT, isolation, isolation);
      api.push(
        { name: `sandboxed (${isolation}) endpoint`, ...serve(config, PROJECT, true), path: route },
        {
          name: `greeting endpoint, sandboxed (${isolation})`,
          ...serve(config, PROJECT, true),
          path: greeting,
        },
      );
    }
    if (BEFORE) {
      const tree = await checkout(BEFORE);
      cleanup.push(tree);
      const config = await configure(root, tree, "none", "before");
      for (
        const [name, path] of [
          ["in-process endpoint", route],
          ["greeting endpoint, in-process", greeting],
          ["404 path", "/api/v2/nothing/here"],
        ]
      ) {
        api.push({
          name: `before (${BEFORE}): ${name}`,
          ...serve(config, tree),
          path,
          expect: path.includes("nothing") ? 404 : 200,
        });
      }
      files.push({
        name: `before (${BEFORE}): small static file`,
        ...serve(config, tree),
        path: "/greeter/",
      });
    }
    const match = flag("match");
    const groups = [api, files].map((group) =>
      group.filter((t) => t.baseline || !match || t.name.includes(match))
    );
    const summaries = await runRounds(groups, ROUNDS, "main");
    sections.main = summaries;
    output.push(
      "",
      `Goals: -c50, median of ${ROUNDS} interleaved rounds`,
      "",
      table(summaries.flat()),
    );
  }

  if (SECTIONS.includes("routes")) {
    const groups: Target[][] = [[raw]];
    for (const count of [200, 2000, 20000]) {
      const dir = join(root, `routes${count}`);
      await writeExtensions(dir, count / 20);
      const config = await configure(dir, PROJECT, "none", "none");
      groups[0].push({ name: `in-process, ${count} routes`, ...serve(config), path: route });
    }
    const [summaries] = await runRounds(groups, GROWTH_ROUNDS, "routes");
    sections.routes = summaries;
    output.push("", `Routes: -c50, median of ${GROWTH_ROUNDS} rounds`, "", table(summaries));
  }

  if (SECTIONS.includes("bodies")) {
    const groups: Target[][] = [];
    const configs: [string, string, boolean, string?][] = [["in-process", inProcess, false]];
    if (BEFORE) {
      const tree = await checkout(BEFORE);
      cleanup.push(tree);
      const config = await configure(root, tree, "none", "before-bodies");
      configs.push([`before (${BEFORE}): in-process`, config, false, tree]);
    }
    for (const isolation of SANDBOXED) {
      configs.push([
        `sandboxed (${isolation})`,
        await configure(root, PROJECT, isolation, isolation),
        true,
      ]);
    }
    for (const [label, kib] of [["1 KiB", 1], ["64 KiB", 64], ["1 MiB", 1024]] as const) {
      // Items of 64 characters: `"…",` is 67 bytes.
      const items = Array.from(
        { length: Math.max(1, Math.floor(kib * 1024 / 67)) },
        (_, i) => String(i).padStart(64, "x"),
      );
      const body = JSON.stringify({ items });
      const script = await postScript(root, `body${kib}`, body);
      // Ten connections: fifty 1 MiB bodies in flight measure queueing, not parsing.
      const post = { path: "/api/v2/ext0/echo", script, bodyBytes: body.length, connections: 10 };
      groups.push([
        { ...raw, ...post, name: `raw Deno.serve parsing the JSON, ${label}` },
        ...configs.map(([name, config, unpinned, tree]): Target => ({
          name: `${name}, ${label}`,
          ...serve(config, tree ?? PROJECT, unpinned),
          ...post,
        })),
      ]);
    }
    const summaries = await runRounds(groups, GROWTH_ROUNDS, "bodies");
    sections.bodies = summaries;
    output.push(
      "",
      `Bodies: POST JSON, -c10, median of ${GROWTH_ROUNDS} rounds`,
      "",
      table(summaries.flat(), "mbps"),
    );
  }

  if (SECTIONS.includes("concurrency")) {
    const groups = [50, 500, 5000].map((connections): Target[] => [
      { ...raw, name: `raw Deno.serve, -c${connections}`, connections },
      {
        name: `in-process endpoint, -c${connections}`,
        ...serve(inProcess),
        path: route,
        connections,
      },
    ]);
    const summaries = await runRounds(groups, GROWTH_ROUNDS, "concurrency");
    sections.concurrency = summaries;
    output.push(
      "",
      `Concurrency: median of ${GROWTH_ROUNDS} rounds`,
      "",
      table(summaries.flat()),
    );
  }

  for (const dir of cleanup) await Deno.remove(dir, { recursive: true });
  console.log(output.join("\n"));
  await Deno.mkdir(join(PROJECT, "bench", "results"), { recursive: true });
  await Deno.writeTextFile(
    join(PROJECT, "bench", "results", QUICK ? "quick.json" : "latest.json"),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        duration: DURATION,
        rounds: ROUNDS,
        growthRounds: GROWTH_ROUNDS,
        pinned: PIN.server !== undefined,
        before: BEFORE,
        sections,
      },
      null,
      2,
    ),
  );
}
