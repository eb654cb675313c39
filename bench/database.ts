/**
 * Database benchmark: an endpoint doing one indexed select, served by the server in-process on
 * the embedded database and on PostgreSQL, against a raw Deno.serve running the same select
 * itself (node:sqlite on its main thread; a postgres.js pool); plus the cost a sandbox adds per
 * query: the same Kysely select from a Worker whose driver posts each statement to the host
 * (the path a sandboxed extension's statements take), against the in-process driver.
 *
 * `deno run -A bench/database.ts [--quick]`; PostgreSQL runs in a throw-away cluster
 * (tests/postgres_cluster.ts) and is skipped when initdb is missing.
 */
import { join } from "node:path";
import { hostedDatabase } from "../src/database/channel_dialect.ts";
import { DatabaseHost } from "../src/database/database_host.ts";
import { SqliteEngine } from "../src/database/sqlite_engine.ts";
import { findPostgres, startPostgres } from "../tests/postgres_cluster.ts";
import { spawnServer } from "./spawn.ts";

const QUICK = Deno.args.includes("--quick");
const DURATION = QUICK ? "1s" : "5s";
const ROUNDS = QUICK ? 1 : 3;
const ROWS = 10_000;

const EXTENSION = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const item = method({
  path: "/bench/items/:name", operation: "GET", apiVersion: 2,
  args: z.object({ name: z.string() }),
});
class Bench extends ServerSlice {
  getDependencies() { return ["core.database"]; }
  @handle(item)
  async item({ name }) {
    return await this.database.selectFrom("items").select(["name", "count"])
      .where("name", "=", name).executeTakeFirst();
  }
}
export function setup(app) {
  app.registerMigrations({ "0001_items": { async up(db) {
    await db.schema.createTable("items").addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("count", "integer").execute();
    for (let i = 0; i < ${ROWS}; i += 500) {
      await db.insertInto("items").values(Array.from({ length: 500 }, (_, j) => ({
        name: "item" + (i + j), count: i + j }))).execute();
    }
  } } });
  app.registerSlice(new Bench("bench.main"));
}
`;

interface Target {
  name: string;
  args: string[];
}

async function wrk(target: Target): Promise<{ rps: number; p50: number; p99: number }> {
  const { child, url } = await spawnServer(target.args);
  const run = async (duration: string) => {
    const out = await new Deno.Command("wrk", {
      args: ["-t1", "-c50", `-d${duration}`, "--latency", `${url}/api/v2/bench/items/item4242`],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout);
  };
  await run("1s");
  const out = await run(DURATION);
  child.kill("SIGTERM");
  await child.status;
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]] : NaN;
  };
  if (/Non-2xx/.test(out)) throw new Error(`${target.name}: errors\n${out}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: ms("50%"),
    p99: ms("99%"),
  };
}

/** Mean µs per select, run one after another, over `count` selects. */
async function perQuery(select: () => Promise<unknown>, count: number): Promise<number> {
  for (let i = 0; i < 200; i++) await select();
  const start = performance.now();
  for (let i = 0; i < count; i++) await select();
  return ((performance.now() - start) / count) * 1000;
}

/** The extra cost per query of a Worker's driver posting statements to the host. */
async function sandboxCost(file: string): Promise<{ direct: number; worker: number }> {
  const host = new DatabaseHost();
  const engine = new SqliteEngine({ extension: "bench", file, statementTimeout: 30 });
  await engine.open();
  host.add("bench", engine);
  const db = hostedDatabase(host, "bench");
  const count = QUICK ? 500 : 5000;
  const direct = await perQuery(
    () => db.selectFrom("items").select(["name", "count"]).where("name", "=", "item4242").execute(),
    count,
  );
  const worker = new Worker(new URL("./targets/db_guest.ts", import.meta.url), { type: "module" });
  worker.onmessage = async ({ data }) => {
    if (data.request) {
      try {
        worker.postMessage({ id: data.id, response: await host.handle("bench", data.request) });
      } catch (error) {
        worker.postMessage({ id: data.id, error: (error as Error).message });
      }
    }
  };
  const done = new Promise<number>((resolve) => {
    const listener = ({ data }: MessageEvent) => {
      if (data.result !== undefined) resolve(data.result);
    };
    worker.addEventListener("message", listener);
  });
  worker.postMessage({ start: count });
  const inWorker = await done;
  worker.terminate();
  await host.close();
  return { direct, worker: inWorker };
}

if (import.meta.main) {
  const root = await Deno.makeTempDir({ prefix: "inmanta-bench-db-" });
  await Deno.mkdir(join(root, "inmanta_ext", "bench"), { recursive: true });
  await Deno.writeTextFile(join(root, "inmanta_ext", "bench", "extension.ts"), EXTENSION);
  const serve = async (name: string, database: string) => {
    const file = join(root, `${name}.cfg`);
    await Deno.writeTextFile(
      file,
      `[server]\nenabled_extensions = bench\nextension_path = ${root}\nstate_dir = ${root}/state\n` +
        `[extension.bench]\nisolation = none\n${database}`,
    );
    return ["run", "-A", "main.ts", "--config", file, "--port", "0"];
  };
  const targets: Target[] = [];
  // Seeds the embedded file through a first server start (its migration).
  const embeddedArgs = await serve("embedded", "");
  const seed = await spawnServer(embeddedArgs);
  seed.child.kill("SIGTERM");
  await seed.child.status;
  const sqliteFile = join(root, "state", "bench.sqlite3");
  targets.push(
    {
      name: "raw Deno.serve + node:sqlite on its main thread",
      args: ["run", "-A", "bench/targets/raw_db.ts", sqliteFile],
    },
    { name: "server in-process, embedded", args: embeddedArgs },
  );
  let cluster: Awaited<ReturnType<typeof startPostgres>> | undefined;
  if (await findPostgres()) {
    cluster = await startPostgres();
    const database = await cluster.createDatabase();
    const pgArgs = await serve("postgres", cluster.config(database));
    const pgSeed = await spawnServer(pgArgs);
    pgSeed.child.kill("SIGTERM");
    await pgSeed.child.status;
    const superuser = cluster.superuser(database);
    await superuser.unsafe(`alter role postgres set search_path = ext_bench`);
    await superuser.end();
    targets.push(
      {
        name: "raw Deno.serve + postgres.js pool",
        args: [
          "run",
          "-A",
          "bench/targets/raw_db.ts",
          `postgres://inmanta:${cluster.password}@127.0.0.1:${cluster.port}/${database}?search_path=ext_bench`,
        ],
      },
      { name: "server in-process, PostgreSQL", args: pgArgs },
    );
  } else console.error("initdb not found: PostgreSQL targets skipped (Debian package postgresql)");
  const results = new Map<string, { rps: number; p50: number; p99: number }[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) {
      const r = await wrk(target);
      results.set(target.name, [...(results.get(target.name) ?? []), r]);
      console.error(`round ${round + 1}/${ROUNDS} ${target.name}: ${Math.round(r.rps)} req/s`);
    }
  }
  const cost = await sandboxCost(sqliteFile);
  await cluster?.[Symbol.asyncDispose]();
  await Deno.remove(root, { recursive: true });
  const median = <T>(values: T[], key: (v: T) => number) =>
    values.toSorted((a, b) => key(a) - key(b))[values.length >> 1];
  const lines = [
    `wrk -t1 -c50 -d${DURATION}, median of ${ROUNDS} rounds, GET of one row by primary key (${ROWS} rows), ${Deno.build.target}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
    "",
    "| target | req/s | p50 ms | p99 ms |",
    "| --- | --- | --- | --- |",
  ];
  for (const [name, runs] of results) {
    const r = median(runs, (x) => x.rps);
    lines.push(`| ${name} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  }
  lines.push(
    "",
    `one select after another on the embedded database: in-process driver ${
      cost.direct.toFixed(1)
    } µs, ` +
      `from a Worker over postMessage ${cost.worker.toFixed(1)} µs: the sandbox adds ${
        (cost.worker - cost.direct).toFixed(1)
      } µs per query`,
  );
  console.log(lines.join("\n"));
}
