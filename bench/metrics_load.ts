/**
 * Metrics on against off, end to end: the in-process server with 200 routes under wrk, with
 * `server.metrics` on (the default) and off, in interleaved rounds. Besides requests per second,
 * each run reads the server process's CPU time (/proc/<pid>/stat) and divides it by the requests
 * wrk completed: CPU time per request barely moves when other processes load the machine, while
 * throughput swings by tens of percent between minutes on a shared VM. Run:
 * `deno run --allow-run --allow-read --allow-write --allow-net=127.0.0.1 --allow-env bench/metrics_load.ts`
 */
import { join } from "node:path";
import { writeExtensions } from "./load.ts";
import { spawnServer } from "./spawn.ts";

const QUICK = Deno.args.includes("--quick");
const ROUNDS = QUICK ? 1 : 6;
const SECONDS = QUICK ? 1 : 4;
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** utime + stime of `pid`, in ms (read with cat: Deno lets only --allow-all read /proc). */
async function cpuMs(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`] }).output();
  const fields = new TextDecoder().decode(stdout).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function wrk(url: string, seconds: number): Promise<{ requests: number; rate: number }> {
  const { stdout } = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, url],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(stdout);
  return {
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? 0),
    rate: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? 0),
  };
}

const root = await Deno.makeTempDir({ prefix: "inmanta-bench-" });
await writeExtensions(root);
const enabled = Array.from({ length: 20 }, (_, e) => `ext${e}`).join(",");
const config = async (metrics: boolean) => {
  const file = join(root, `metrics-${metrics}.cfg`);
  await Deno.writeTextFile(
    file,
    `[server]\nenabled_extensions = ${enabled}\nextension_path = ${root}\nmetrics = ${metrics}\n` +
      Array.from({ length: 20 }, (_, e) => `[extension.ext${e}]\nisolation = none\n`).join(""),
  );
  return file;
};
const variants = [
  { name: "metrics on", cfg: await config(true) },
  { name: "metrics off", cfg: await config(false) },
];
const results = variants.map(() => ({ cpuUs: [] as number[], rate: [] as number[] }));
for (let round = 1; round <= ROUNDS; round++) {
  for (const [i, variant] of variants.entries()) {
    const { child, url } = await spawnServer([
      "run",
      "--allow-read",
      "--allow-net=127.0.0.1",
      "--allow-env=INMANTA_*,JSR_URL",
      "--allow-run=deno",
      "main.ts",
      "--config",
      variant.cfg,
      "--port",
      "0",
    ]);
    const target = `${url}/api/v2/ext7/item3/abc`;
    await wrk(target, 1); // warm up
    const before = await cpuMs(child.pid);
    const { requests, rate } = await wrk(target, SECONDS);
    const used = await cpuMs(child.pid) - before;
    child.kill("SIGTERM");
    await child.status;
    results[i].cpuUs.push((used * 1000) / requests);
    results[i].rate.push(rate);
    console.error(
      `round ${round}/${ROUNDS} ${variant.name}: ${Math.round(rate)} req/s, ${
        ((used * 1000) / requests).toFixed(2)
      } µs CPU a request`,
    );
  }
}
await Deno.remove(root, { recursive: true });

const median = (values: number[]) => values.toSorted((a, b) => a - b)[values.length >> 1];
const [on, off] = results;
const kept = (cpuOff: number, cpuOn: number) => `${((cpuOff / cpuOn) * 100).toFixed(1)}%`;
console.log(`wrk -t1 -c50 -d${SECONDS}s, ${ROUNDS} interleaved rounds, in-process, 200 routes\n`);
console.log("| variant | CPU µs a request (min / median) | req/s (median) |");
console.log("| --- | --- | --- |");
for (const [i, r] of results.entries()) {
  console.log(
    `| ${variants[i].name} | ${Math.min(...r.cpuUs).toFixed(2)} / ${median(r.cpuUs).toFixed(2)} | ${
      Math.round(median(r.rate))
    } |`,
  );
}
console.log(
  `\nthroughput kept with metrics on (CPU per request, off / on): ${
    kept(Math.min(...off.cpuUs), Math.min(...on.cpuUs))
  } (min), ${kept(median(off.cpuUs), median(on.cpuUs))} (median); cost ${
    (median(on.cpuUs) - median(off.cpuUs)).toFixed(2)
  } µs a request`,
);
