/**
 * core.database with real server processes run as `deno task serve` runs them: a SIGKILL of the
 * server during a write loop loses no committed row, and two instances on one PostgreSQL list
 * each other, run an instance task each, share a cluster task (one run per tick), and the
 * survivor takes the cluster task once a killed instance's lease expires.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BASE_MIGRATIONS, store } from "./fixtures/db_extension.ts";
import { getJson, type Running, serve, tempDir, writeExtension } from "./helpers.ts";
import { postgresAvailable, startPostgres } from "./postgres_cluster.ts";

const withPostgres = await postgresAvailable();

async function start(
  config: string,
  root: string,
  state: string,
): Promise<{ run: Running; url: string }> {
  const file = join(root, `server-${crypto.randomUUID()}.cfg`);
  await Deno.writeTextFile(file, config);
  const run = serve(["--config", file, "--port", "0"], [root, state], { write: [state] });
  const line = await run.line(/server running at http:\/\//);
  return { run, url: /server running at (\S+)/.exec(line)![1] };
}

/** Retries `check` until it returns a value (the condition is the synchronisation, not time). */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  seconds = 20,
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test("[embedded] SIGKILL of the server during a write loop loses no committed row", async () => {
  await using root = await tempDir();
  await using state = await tempDir();
  await writeExtension(root.path, "shop", store("shop", BASE_MIGRATIONS));
  const config = `[server]
enabled_extensions = shop
extension_path = ${root.path}
state_dir = ${state.path}
[extension.shop]
isolation = none
`;
  const first = await start(config, root.path, state.path);
  const committed: string[] = [];
  const writing = (async () => {
    for (let i = 0;; i++) {
      const name = `row-${String(i).padStart(5, "0")}`;
      try {
        const r = await fetch(`${first.url}/api/v2/shop/items`, {
          method: "POST",
          body: JSON.stringify({ name }),
          headers: { "content-type": "application/json" },
        });
        await r.body?.cancel();
        if (r.status === 200) committed.push(name);
      } catch {
        return; // the server is gone
      }
    }
  })();
  await until("100 committed rows", () => Promise.resolve(committed.length >= 100 || undefined));
  first.run.process.kill("SIGKILL");
  await first.run.process.status;
  await writing;
  const second = await start(config, root.path, state.path);
  try {
    const rows = (await getJson(`${second.url}/api/v2/shop/items`)).body.data as string[];
    const kept = new Set(rows);
    assert.deepEqual(committed.filter((name) => !kept.has(name)), []);
  } finally {
    second.run.process.kill("SIGTERM");
    await second.run.process.status;
  }
});

const TICKER = `import { ServerSlice } from "@inmanta/server";
import { sql } from "kysely";

class Ticker extends ServerSlice {
  getDependencies() { return ["core.database"]; }
  start() {
    const db = this.database;
    this.schedule(async function clusterTick() {
      const at = Date.now();
      await sql\`insert into ticks (at, pid) values (\${at}, \${Deno.pid})\`.execute(db);
    }, 1, { scope: "cluster", initialDelay: 0 });
    this.schedule(async function instanceBeat() {
      await sql\`insert into beats (pid) values (\${Deno.pid})\`.execute(db);
    }, 1, { initialDelay: 0 });
  }
}

export function setup(application) {
  application.registerMigrations({
    "0001_ticks": { async up(db) {
      await sql\`create table ticks (at bigint not null, pid integer not null)\`.execute(db);
      await sql\`create table beats (pid integer not null)\`.execute(db);
    } },
  });
  application.registerSlice(new Ticker("ticker.main"));
}
`;

Deno.test({
  name:
    "[postgresql] two instances: both listed, instance task on each, cluster task once per tick, taken over after SIGKILL",
  ignore: !withPostgres,
  fn: async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    await using pg = await startPostgres();
    const database = await pg.createDatabase();
    await writeExtension(root.path, "ticker", TICKER);
    const config = `[server]
enabled_extensions = ticker
extension_path = ${root.path}
state_dir = ${state.path}
[extension.ticker]
isolation = none
${pg.config(database)}lease_seconds = 2
`;
    const sql = pg.superuser(database);
    const a = await start(config, root.path, state.path);
    const b = await start(config, root.path, state.path);
    const servers = [a, b];
    try {
      const listed = await until("both instances in serverstatus", async () => {
        const status = await getJson(`${a.url}/api/v1/serverstatus`);
        const instances = (status.body.data as { instances?: { address: string }[] }).instances;
        // An instance writes its address with the first heartbeat after it listens.
        return instances?.length === 2 && instances.every((i) => i.address !== "starting")
          ? instances
          : undefined;
      });
      assert.deepEqual(listed.map((i) => i.address).sort(), [a.url, b.url].sort());
      const ticks = async () =>
        (await sql`select at, pid from ext_ticker.ticks order by at`).map((r) => ({
          tick: Number(r.at),
          pid: Number(r.pid),
        }));
      await until("four cluster ticks", async () => (await ticks()).length >= 4 || undefined);
      const beats = await sql`select distinct pid from ext_ticker.beats`;
      assert.deepEqual(
        beats.map((r) => Number(r.pid)).sort(),
        [a.run.process.pid, b.run.process.pid].sort(),
        "the instance task runs on both",
      );
      const before = await ticks();
      const holder = before[0].pid;
      assert.ok(before.every((t) => t.pid === holder), "one instance holds the cluster task");
      const victim = servers.find((s) => s.run.process.pid === holder)!;
      const survivor = servers.find((s) => s !== victim)!;
      victim.run.process.kill("SIGKILL");
      await victim.run.process.status;
      const after = await until("the survivor's cluster ticks", async () => {
        const all = await ticks();
        return all.filter((t) => t.pid === survivor.run.process.pid).length >= 2 ? all : undefined;
      });
      // One holder at a time: every run of the killed instance precedes every run of the
      // survivor (a tick run twice would interleave them), and the survivor took over only after
      // the lease expired.
      const pids = after.map((t) => t.pid);
      const switchAt = pids.indexOf(survivor.run.process.pid);
      assert.ok(pids.slice(0, switchAt).every((p) => p === holder), `one holder: ${pids}`);
      assert.ok(pids.slice(switchAt).every((p) => p !== holder), `one holder: ${pids}`);
      assert.ok(after[switchAt].tick - after[switchAt - 1].tick >= 1000, "taken after the lease");
      for (const pid of [holder, survivor.run.process.pid]) {
        const own = after.filter((t) => t.pid === pid).map((t) => t.tick);
        for (let i = 1; i < own.length; i++) {
          const gap = own[i] - own[i - 1];
          assert.ok(gap >= 500 && gap < 3000, `about 1 s apart, at most one tick missed: ${own}`);
        }
      }
      const status = await until("the dead instance leaves serverstatus", async () => {
        const r = await getJson(`${survivor.url}/api/v1/serverstatus`);
        const instances = (r.body.data as { instances: { address: string }[] }).instances;
        return instances.length === 1 ? instances : undefined;
      });
      assert.equal(status[0].address, survivor.url);
    } finally {
      for (const s of servers) {
        try {
          s.run.process.kill("SIGTERM");
        } catch {
          // already killed
        }
        await s.run.process.status;
      }
      await sql.end();
    }
  },
});
