/**
 * What each isolation mode costs: req/s of one sandboxed endpoint as a ratio to a raw
 * Deno.serve in the same round, CPU time per request of the server and its guests (from /proc,
 * which does not depend on the core count), memory per sandbox (RSS and PSS, the shared Deno
 * binary counted once), and boot to healthy with 20 sandboxes. `deno run -A bench/isolation.ts`
 * (`--quick`: one short round, CI smoke). Writes bench/results/isolation.json.
 */
import { join } from "node:path";
import { PROJECT, spawnServer } from "./spawn.ts";

const QUICK = Deno.args.includes("--quick");
const ROUNDS = QUICK ? 1 : 5;
const DURATION = QUICK ? "1s" : "5s";
const MODES = ["none", "worker", "process"] as const;
const TICKS = 100; // USER_HZ on Linux

const PING = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const ping = method({ path: "/__NAME__/:n", operation: "GET", args: z.object({ n: z.string() }) });
class Ping extends ServerSlice {
  getDependencies() { return ["core.server"]; }
  @handle(ping)
  ping({ n }) { return { n }; }
}
export function setup(app) { app.registerSlice(new Ping("__NAME__.main")); }
`;

async function writeConfig(root: string, mode: string, count: number): Promise<string> {
  const names = Array.from({ length: count }, (_, i) => `ping${i}`);
  for (const name of names) {
    const dir = join(root, "inmanta_ext", name);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "extension.ts"), PING.replaceAll("__NAME__", name));
  }
  const file = join(root, `${mode}-${count}.cfg`);
  await Deno.writeTextFile(
    file,
    `[server]\nenabled_extensions = ${names.join(",")}\nextension_path = ${root}\n` +
      `isolation = ${mode}\n`,
  );
  return file;
}

/** Every process whose parent is `pid` (its guests), from /proc. */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry.name));
    } catch { /* gone */ }
  }
  return out;
}

/** CPU seconds (user + system) of a process. */
function cpuSeconds(pid: number): number {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

/** RSS and PSS of a process in KiB, from smaps_rollup. */
function memory(pid: number): { rss: number; pss: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1]);
  return { rss: field("Rss"), pss: field("Pss") };
}

async function wrk(url: string): Promise<{ rps: number; p99: number; requests: number }> {
  const { stdout } = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${DURATION}`, "--latency", url],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)![1]);
  const requests = Number(/(\d+) requests in/.exec(text)![1]);
  const p99m = /99%\s+([\d.]+)(us|ms|s)/.exec(text)!;
  const p99 = Number(p99m[1]) * (p99m[2] === "us" ? 0.001 : p99m[2] === "s" ? 1000 : 1);
  return { rps, p99, requests };
}

async function measure(args: string[], path: string) {
  console.error(`measuring ${args.join(" ")}`);
  const server = await spawnServer(args);
  try {
    const pids = () => [server.child.pid, ...children(server.child.pid)];
    const before = pids().reduce((n, p) => n + cpuSeconds(p), 0);
    const result = await wrk(`${server.url}${path}`);
    const after = pids().reduce((n, p) => n + cpuSeconds(p), 0);
    return { ...result, cpuPerRequestUs: ((after - before) / result.requests) * 1e6 };
  } finally {
    server.child.kill("SIGTERM");
    await server.child.status;
  }
}

const root = await Deno.makeTempDir({ prefix: "inmanta-bench-isolation-" });
try {
  const rounds: Record<string, { rps: number; p99: number; cpuPerRequestUs: number }[]> = {};
  const ratios: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const raw = await measure(["run", "-A", "bench/targets/raw.ts"], "/");
    (rounds.raw ??= []).push(raw);
    for (const mode of MODES) {
      const cfg = await writeConfig(root, mode, 1);
      const got = await measure(
        ["run", "-A", "main.ts", "--config", cfg, "--port", "0"],
        "/api/v2/ping0/7",
      );
      (rounds[mode] ??= []).push(got);
      (ratios[mode] ??= []).push(got.rps / raw.rps);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const throughput = Object.fromEntries(
    Object.entries(rounds).map(([target, rs]) => [target, {
      rps: Math.round(median(rs.map((r) => r.rps))),
      p99ms: median(rs.map((r) => r.p99)),
      cpuPerRequestUs: Number(median(rs.map((r) => r.cpuPerRequestUs)).toFixed(1)),
      ratio: ratios[target] ? Number(median(ratios[target]).toFixed(3)) : 1,
    }]),
  );

  // Memory and boot: 20 sandboxes of each mode.
  const footprint: Record<string, unknown> = {};
  for (const mode of MODES) {
    const cfg = await writeConfig(root, mode, QUICK ? 2 : 20);
    const count = QUICK ? 2 : 20;
    const server = await spawnServer(["run", "-A", "main.ts", "--config", cfg, "--port", "0"]);
    const bootMs = Math.round(performance.now() - server.started);
    const guests = children(server.child.pid).filter((pid) => {
      try {
        return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("guest_process");
      } catch {
        return false;
      }
    });
    const serverMemory = memory(server.child.pid);
    const guestMemory = guests.map(memory);
    footprint[mode] = {
      sandboxes: count,
      bootToHealthyMs: bootMs,
      serverRssMiB: Math.round(serverMemory.rss / 1024),
      perGuestRssMiB: guests.length
        ? Number((guestMemory.reduce((n, m) => n + m.rss, 0) / guests.length / 1024).toFixed(1))
        : undefined,
      perGuestPssMiB: guests.length
        ? Number((guestMemory.reduce((n, m) => n + m.pss, 0) / guests.length / 1024).toFixed(1))
        : undefined,
    };
    server.child.kill("SIGTERM");
    await server.child.status;
  }
  const report = { rounds: ROUNDS, duration: DURATION, throughput, footprint };
  await Deno.mkdir(join(PROJECT, "bench/results"), { recursive: true });
  await Deno.writeTextFile(
    join(PROJECT, "bench/results/isolation.json"),
    JSON.stringify(report, null, 2),
  );
  console.log(JSON.stringify(report, null, 2));
} finally {
  await Deno.remove(root, { recursive: true });
}
