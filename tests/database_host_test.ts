/**
 * The database host and the guest driver, in-process against real engines: the Kysely a guest
 * gets (the same driver a sandbox uses, with its requests handed to the host directly), its
 * transactions, the refusals and the statement timeout of the embedded engine, and migrations.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sql } from "kysely";
import { channelDatabase, hostedDatabase } from "../src/database/channel_dialect.ts";
import { DatabaseHost } from "../src/database/database_host.ts";
import { applyMigrations, type Migrations } from "../src/database/migrations.ts";
import { SqliteEngine } from "../src/database/sqlite_engine.ts";
import { tempDir } from "./helpers.ts";

async function embedded(dir: string, extension = "shop", statementTimeout = 30) {
  const host = new DatabaseHost();
  const engine = new SqliteEngine({
    extension,
    file: join(dir, `${extension}.sqlite3`),
    statementTimeout,
  });
  await engine.open();
  host.add(extension, engine);
  return { host, engine, [Symbol.asyncDispose]: () => host.close() };
}

Deno.test("a guest's Kysely queries and runs transactions through the host", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const kysely = hostedDatabase(db.host, "shop");
  await kysely.schema.createTable("items").addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("name", "text").addColumn("data", "blob").execute();
  const inserted = await kysely.insertInto("items")
    .values({ id: 1, name: "one", data: new Uint8Array([0, 1, 255]) }).executeTakeFirst();
  assert.equal(inserted.numInsertedOrUpdatedRows, 1n);
  await kysely.transaction().execute(async (trx) => {
    await trx.insertInto("items").values({ id: 2, name: "two" }).execute();
  });
  await assert.rejects(
    kysely.transaction().execute(async (trx) => {
      await trx.insertInto("items").values({ id: 3, name: "three" }).execute();
      throw new Error("changed my mind");
    }),
    /changed my mind/,
  );
  const rows = await kysely.selectFrom("items").selectAll().orderBy("id").execute();
  assert.deepEqual(rows.map((r) => r.name), ["one", "two"]);
  assert.deepEqual(rows[0].data, new Uint8Array([0, 1, 255]));
  const raw = await sql<{ n: number }>`select count(*) as n from items`.execute(kysely);
  assert.equal(raw.rows[0].n, 2);
});

Deno.test("the embedded engine refuses ATTACH, VACUUM INTO and VACUUM", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const kysely = hostedDatabase(db.host, "shop");
  const other = join(dir.path, "other.sqlite3");
  await assert.rejects(
    sql`attach database ${sql.lit(other)} as other`.execute(kysely),
    /ATTACH, VACUUM and VACUUM INTO are refused/,
  );
  await assert.rejects(
    sql`vacuum into ${sql.lit(other)}`.execute(kysely),
    /ATTACH, VACUUM and VACUUM INTO are refused/,
  );
  await assert.rejects(Deno.stat(other), Deno.errors.NotFound);
  await assert.rejects(sql`vacuum`.execute(kysely), /refused/);
});

Deno.test("a statement past the timeout is stopped, its transaction rolled back, the next one runs", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path, "shop", 0.5);
  const kysely = hostedDatabase(db.host, "shop");
  await sql`create table t (x integer)`.execute(kysely);
  const pid = db.engine.pid;
  await assert.rejects(
    kysely.transaction().execute(async (trx) => {
      await sql`insert into t values (1)`.execute(trx);
      await sql`with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c`
        .execute(trx);
    }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "database.timeout");
      assert.match(error.message, /extension shop: statement timed out after 0.5s/);
      return true;
    },
  );
  const rows = await kysely.selectFrom("t").selectAll().execute();
  assert.deepEqual(rows, []);
  assert.notEqual(db.engine.pid, pid, "a new process serves the file");
});

Deno.test("releaseAll rolls back a dead guest's transaction and frees the database", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const kysely = hostedDatabase(db.host, "shop");
  await sql`create table t (x integer)`.execute(kysely);
  const tx = await db.host.begin("shop");
  await db.host.execute("shop", { sql: "insert into t values (?)", parameters: [1] }, tx);
  const waiting = kysely.selectFrom("t").selectAll().execute();
  await db.host.releaseAll("shop");
  assert.deepEqual(await waiting, []);
  await assert.rejects(db.host.commit("shop", tx), /no open transaction/);
});

Deno.test("the host trusts nothing a guest sends", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  await using _other = await embedded(dir.path, "other");
  const tx = await db.host.begin("shop");
  await assert.rejects(
    db.host.handle("other", { op: "execute", extension: "shop", sql: "select 1", parameters: [] }),
    /extension other: invalid database request: it names extension shop, not its own/,
  );
  await assert.rejects(
    db.host.handle("shop", { op: "drop", extension: "shop" }),
    /invalid database request: unknown op drop/,
  );
  await assert.rejects(
    db.host.handle("shop", { op: "execute", extension: "shop", sql: "", parameters: [] }),
    /sql must be a non-empty string/,
  );
  db.host.add("other", db.host.engine("shop"));
  await assert.rejects(
    db.host.handle("other", { op: "commit", extension: "other", tx }),
    /extension other: no open transaction/,
  );
  await db.host.rollback("shop", tx);
});

Deno.test("a guest Kysely over a message channel (as a sandbox carries it) gets the same answers", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  // What a sandbox does: the request and the answer cross a structured-clone boundary.
  const { port1, port2 } = new MessageChannel();
  port2.onmessage = async ({ data }) => {
    try {
      port2.postMessage({ id: data.id, response: await db.host.handle("shop", data.request) });
    } catch (error) {
      port2.postMessage({ id: data.id, error: (error as Error).message });
    }
  };
  const waiting = new Map<number, PromiseWithResolvers<unknown>>();
  port1.onmessage = ({ data }) => {
    const w = waiting.get(data.id)!;
    if (data.error) w.reject(new Error(data.error));
    else w.resolve(data.response);
  };
  let next = 0;
  const kysely = channelDatabase("shop", "sqlite", (request) => {
    const id = next++;
    const w = Promise.withResolvers<unknown>();
    waiting.set(id, w);
    port1.postMessage({ id, request });
    return w.promise as never;
  });
  try {
    await sql`create table t (x integer primary key)`.execute(kysely);
    await kysely.transaction().execute(async (trx) => {
      await trx.insertInto("t").values({ x: 1 }).execute();
      await trx.insertInto("t").values({ x: 2 }).execute();
    });
    await assert.rejects(kysely.insertInto("t").values({ x: 1 }).execute(), /UNIQUE constraint/);
    assert.deepEqual(await kysely.selectFrom("t").select("x").execute(), [{ x: 1 }, { x: 2 }]);
  } finally {
    port1.close();
    port2.close();
  }
});

const MIGRATIONS: Migrations = {
  "0001_init": {
    async up(db) {
      await db.schema.createTable("counter").addColumn("n", "integer").execute();
    },
  },
  "0002_seed": {
    async up(db) {
      await db.insertInto("counter").values({ n: 0 }).execute();
    },
  },
};

Deno.test("migrations apply in order, once, each with its record; a failing one changes nothing", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const kysely = hostedDatabase(db.host, "shop");
  const options = { extension: "shop", version: "1.0.0", dialect: "sqlite" as const };
  assert.deepEqual(await applyMigrations(kysely, MIGRATIONS, options), {
    schemaVersion: "0002_seed",
    applied: ["0001_init", "0002_seed"],
  });
  assert.deepEqual(await applyMigrations(kysely, MIGRATIONS, options), {
    schemaVersion: "0002_seed",
    applied: [],
  });
  const broken: Migrations = {
    ...MIGRATIONS,
    "0003_broken": {
      async up(db) {
        await db.schema.createTable("half").addColumn("x", "integer").execute();
        await db.insertInto("counter").values({ n: 99 }).execute();
        await sql`select * from no_such_table`.execute(db);
      },
    },
  };
  await assert.rejects(
    applyMigrations(kysely, broken, { ...options, version: "1.1.0" }),
    /extension shop: migration 0003_broken failed, nothing of it was applied: .*no such table/,
  );
  const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`
    .execute(kysely);
  assert.ok(!tables.rows.some((t) => t.name === "half"));
  assert.deepEqual(await kysely.selectFrom("counter").select("n").execute(), [{ n: 0 }]);
  const { "0002_seed": _, ...older } = MIGRATIONS;
  await assert.rejects(
    applyMigrations(kysely, older, { ...options, version: "0.9.0" }),
    /extension shop 0.9.0 is older than its database: the database records migration 0002_seed .*its last is 0001_init/,
  );
});

Deno.test("concurrent statements are pipelined; a transaction waits for them and runs alone", async () => {
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const kysely = hostedDatabase(db.host, "shop");
  await sql`create table t (x integer)`.execute(kysely);
  const inserts = Array.from({ length: 200 }, (_, i) => kysely.insertInto("t").values({ x: i }));
  const seen: number[] = [];
  const transaction = kysely.transaction().execute(async (trx) => {
    const before = await trx.selectFrom("t").select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    await trx.insertInto("t").values({ x: -1 }).execute();
    const after = await trx.selectFrom("t").select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    seen.push(Number(before.n), Number(after.n));
  });
  await Promise.all([
    ...inserts.slice(0, 100).map((q) => q.execute()),
    transaction,
    ...inserts.slice(100).map((q) => q.execute()),
  ]);
  // Nothing else ran between the transaction's two counts.
  assert.equal(seen[1], seen[0] + 1);
  const total = await kysely.selectFrom("t").select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  assert.equal(Number(total.n), 201);
});

Deno.test("a guest runtime's slices get this.database, migrations and cluster claims over a channel", async () => {
  const { Registry } = await import("../src/application.ts");
  const { Config, ServerSlice } = await import("@inmanta/server");
  const { attachGuestDatabase, migrateGuest } = await import("../src/database/guest.ts");
  await using dir = await tempDir();
  await using db = await embedded(dir.path);
  const claimed: string[] = [];
  db.host.setClusterClaim((task) => {
    claimed.push(task);
    return Promise.resolve(true);
  });
  // The channel: requests and answers are structured-cloned, as between a sandbox and the host.
  const send = (request: Parameters<typeof db.host.handle>[1]) =>
    db.host.handle("shop", structuredClone(request)).then((r) => structuredClone(r));
  const registry = new Registry(new Config());
  class Store extends ServerSlice<{ items: { name: string } }> {
    override getDependencies() {
      return ["core.database"];
    }
  }
  const context = registry.contextFor("shop");
  context.registerMigrations({
    "0001_items": {
      async up(db) {
        await db.schema.createTable("items").addColumn("name", "text").execute();
      },
    },
  });
  const store = new Store("shop.store");
  context.registerSlice(store);
  assert.throws(() => store.database, /slice shop.store: this.database needs core.database/);
  const outcome = await migrateGuest(registry.migrations("shop"), "shop", "1.0.0", "sqlite", send);
  assert.deepEqual(outcome, { schemaVersion: "0001_items", applied: ["0001_items"] });
  attachGuestDatabase(registry.slices, "shop", "sqlite", send);
  await store.database.transaction().execute(async (trx) => {
    await trx.insertInto("items").values({ name: "a" }).execute();
  });
  assert.deepEqual(await store.database.selectFrom("items").selectAll().execute(), [{ name: "a" }]);
  let ran = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  store.schedule(
    function sweep() {
      ran++;
      resolve();
    },
    3600,
    { scope: "cluster", initialDelay: 0 },
  );
  await promise;
  assert.equal(ran, 1);
  assert.deepEqual(claimed, ["shop:shop.store:sweep"]);
  store[(await import("../src/slices/slice.ts")).INTERNALS].scheduler.cancel(true);
});
