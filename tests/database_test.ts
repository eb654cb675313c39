/**
 * core.database against a real server, on the embedded database and on a throw-away
 * PostgreSQL: rows survive a restart, each extension has its own database, migrations apply
 * once and a failing one changes nothing, a rolled-back extension is refused, and on
 * PostgreSQL one extension cannot reach another's tables nor take another role.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { BASE_MIGRATIONS, type MigrationBodies, store } from "./fixtures/db_extension.ts";
import { getJson, PROJECT, startServer, tempDir, writeExtension } from "./helpers.ts";
import { postgresAvailable, type PostgresCluster, startPostgres } from "./postgres_cluster.ts";

const withPostgres = await postgresAvailable();
let cluster: PostgresCluster | undefined;

interface Engine {
  name: "embedded" | "postgresql";
  /** A fresh database: config text for it. */
  fresh(stateDir: string): Promise<{ config: string; database?: string }>;
  /** The tables of an extension's database. */
  tables(stateDir: string, database: string | undefined, extension: string): Promise<string[]>;
  /** The migrations its database records. */
  recorded(stateDir: string, database: string | undefined, extension: string): Promise<string[]>;
}

const embedded: Engine = {
  name: "embedded",
  fresh: (stateDir) => Promise.resolve({ config: `[server]\nstate_dir = ${stateDir}\n` }),
  tables(stateDir, _db, extension) {
    const db = new DatabaseSync(join(stateDir, `${extension}.sqlite3`));
    try {
      return Promise.resolve(
        db.prepare("select name from sqlite_master where type = 'table' order by name").all()
          .map((r) => String(r.name)),
      );
    } finally {
      db.close();
    }
  },
  recorded(stateDir, _db, extension) {
    const db = new DatabaseSync(join(stateDir, `${extension}.sqlite3`));
    try {
      return Promise.resolve(
        db.prepare("select name from inmanta_migrations order by name").all()
          .map((r) => String(r.name)),
      );
    } finally {
      db.close();
    }
  },
};

const postgresql: Engine = {
  name: "postgresql",
  async fresh(stateDir) {
    cluster ??= await startPostgres();
    const database = await cluster.createDatabase();
    return { config: `[server]\nstate_dir = ${stateDir}\n${cluster.config(database)}`, database };
  },
  async tables(_dir, database, extension) {
    const sql = cluster!.superuser(database);
    try {
      const rows = await sql`select table_name from information_schema.tables
        where table_schema = ${"ext_" + extension} order by table_name`;
      return rows.map((r) => String(r.table_name));
    } finally {
      await sql.end();
    }
  },
  async recorded(_dir, database, extension) {
    const sql = cluster!.superuser(database);
    try {
      const rows = await sql.unsafe(
        `select name from ext_${extension}.inmanta_migrations order by name`,
      );
      return rows.map((r) => String(r.name));
    } finally {
      await sql.end();
    }
  },
};

const ENGINES = withPostgres ? [embedded, postgresql] : [embedded];

async function serve(
  root: string,
  config: string,
  stores: Record<string, MigrationBodies>,
  extra = "",
  isolation: "none" | "worker" | "process" = "none",
) {
  for (const [name, migrations] of Object.entries(stores)) {
    await writeExtension(root, name, store(name, migrations));
  }
  return await startServer({
    roots: [root],
    enable: Object.keys(stores),
    isolation,
    config: config + extra,
  });
}

async function post(url: string, body: unknown) {
  return await getJson(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
}

for (const engine of ENGINES) {
  for (const isolation of ["none", "worker", "process"] as const) {
    Deno.test(`[${engine.name}] [isolation=${isolation}] rows survive a restart; serverstatus shows schema_version`, async () => {
      await using root = await tempDir();
      await using state = await tempDir();
      const { config } = await engine.fresh(state.path);
      {
        await using test = await serve(root.path, config, { shop: BASE_MIGRATIONS }, "", isolation);
        assert.equal((await post(`${test.url}/api/v2/shop/items`, { name: "apple" })).status, 200);
        const status = await getJson(`${test.url}/api/v1/serverstatus`);
        const shop = (status.body.data as { extensions: Record<string, unknown>[] }).extensions
          .find((e) => e.name === "shop")!;
        assert.equal(shop.schema_version, "0002_count");
        const core = (status.body.data as { extensions: Record<string, unknown>[] }).extensions
          .find((e) => e.name === "core")!;
        assert.equal(core.schema_version, null);
        assert.doesNotMatch(JSON.stringify(status.body), /password/);
      }
      await using again = await serve(root.path, config, { shop: BASE_MIGRATIONS }, "", isolation);
      assert.deepEqual((await getJson(`${again.url}/api/v2/shop/items`)).body.data, ["apple"]);
      assert.ok(
        !again.logs.some((l) => l.message.includes("applied migrations")),
        "nothing applied twice",
      );
    });
  }

  Deno.test(`[${engine.name}] each extension has its own database`, async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    const { config } = await engine.fresh(state.path);
    await using test = await serve(root.path, config, {
      alpha: BASE_MIGRATIONS,
      beta: BASE_MIGRATIONS,
    });
    await post(`${test.url}/api/v2/alpha/items`, { name: "only-alpha" });
    assert.deepEqual((await getJson(`${test.url}/api/v2/beta/items`)).body.data, []);
    assert.deepEqual((await getJson(`${test.url}/api/v2/alpha/items`)).body.data, ["only-alpha"]);
    if (engine.name === "embedded") {
      const files = [...Deno.readDirSync(state.path)].map((e) => e.name).filter((n) =>
        n.endsWith(".sqlite3")
      ).sort();
      assert.deepEqual(files, ["alpha.sqlite3", "beta.sqlite3"]);
      const attach = await post(`${test.url}/api/v2/beta/sql`, {
        sql: `attach database '${join(state.path, "alpha.sqlite3")}' as alpha`,
      });
      assert.match(String((attach.body.data as { error: string }).error), /ATTACH.* are refused/);
    }
  });

  Deno.test(`[${engine.name}] a failing migration changes nothing and fails only its extension`, async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    const { config, database } = await engine.fresh(state.path);
    const broken = {
      ...BASE_MIGRATIONS,
      "0003_broken":
        `await db.schema.createTable("half").addColumn("x", "integer").execute(); await db.insertInto("items").values({ name: "ghost" }).execute(); await sql\`select * from no_such_table\`.execute(db);`,
    };
    {
      await using test = await serve(
        root.path,
        config,
        { good: BASE_MIGRATIONS, bad: broken },
        `
[extension.bad]
boot_failure = continue
`,
      );
      const status = await getJson(`${test.url}/api/v1/serverstatus`);
      const bad = (status.body.data as { extensions: Record<string, unknown>[] }).extensions
        .find((e) => e.name === "bad")!;
      assert.equal(bad.status, "failed");
      assert.match(
        String(bad.reason),
        /extension bad: migration 0003_broken failed, nothing of it was applied: .*no_such_table/,
      );
      assert.equal((await getJson(`${test.url}/api/v2/good/items`)).status, 200);
      assert.equal((await getJson(`${test.url}/api/v2/health`)).status, 503);
    }
    assert.deepEqual(await engine.tables(state.path, database, "bad"), [
      "inmanta_migrations",
      "items",
    ]);
    assert.deepEqual(await engine.recorded(state.path, database, "bad"), [
      "0001_items",
      "0002_count",
    ]);
    await using again = await tempDir();
    await assert.rejects(
      serve(again.path, config, { bad: broken }),
      /extension bad: migration 0003_broken failed/,
    );
  });

  Deno.test(`[${engine.name}] an extension older than its database is refused, naming both`, async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    const { config } = await engine.fresh(state.path);
    {
      await using _test = await serve(root.path, config, { shop: BASE_MIGRATIONS });
    }
    const { "0002_count": _, ...older } = BASE_MIGRATIONS;
    // Another folder: the same file path would be the module already imported.
    await using olderRoot = await tempDir();
    await assert.rejects(
      serve(olderRoot.path, config, { shop: older }),
      /extension shop unversioned is older than its database: the database records migration 0002_count .*its last is 0001_items.*restore the backup/,
    );
  });
}

for (const isolation of ["none", "process"] as const) {
  Deno.test(`[isolation=${isolation}] the example extension counts greetings in its database`, async () => {
    await using state = await tempDir();
    const start = () =>
      startServer({
        roots: [join(PROJECT, "extensions")],
        enable: ["new_extension"],
        isolation,
        config: `[server]\nstate_dir = ${state.path}\n`,
      });
    {
      await using test = await start();
      for (const name of ["a", "b"]) await getJson(`${test.url}/api/v2/greeting/${name}`);
      assert.deepEqual((await getJson(`${test.url}/api/v2/greetings`)).body, {
        data: { total: 2 },
      });
      const status = await getJson(`${test.url}/api/v1/serverstatus`);
      const example = (status.body.data as { extensions: Record<string, unknown>[] }).extensions
        .find((e) => e.name === "new_extension")!;
      assert.equal(example.schema_version, "0001_counter");
    }
    await using again = await start();
    await getJson(`${again.url}/api/v2/greeting/c`);
    assert.deepEqual((await getJson(`${again.url}/api/v2/greetings`)).body, { data: { total: 3 } });
  });
}

Deno.test("deno task db status lists each extension's schema version", async () => {
  await using root = await tempDir();
  await using state = await tempDir();
  const { config } = await embedded.fresh(state.path);
  {
    await using _test = await serve(root.path, config, { shop: BASE_MIGRATIONS });
  }
  const file = join(root.path, "db.cfg");
  await Deno.writeTextFile(file, config);
  const task = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json"))).tasks.db as string;
  const flags = task.split(" ").filter((w) => w.startsWith("--allow-")).map((f) =>
    f.startsWith("--allow-read=") || f.startsWith("--allow-write=")
      ? `${f},${root.path},${state.path}`
      : f
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "src/database/cli.ts", "status", "--config", file],
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, new RegExp(`embedded database in ${state.path}`));
  assert.match(text, /^shop\s+0002_count\s+2\s+\d{4}-/m);
});

if (withPostgres) {
  Deno.test("[postgresql] an extension cannot read another's tables nor change role", async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    const { config, database } = await postgresql.fresh(state.path);
    await using test = await serve(root.path, config, {
      alpha: BASE_MIGRATIONS,
      beta: BASE_MIGRATIONS,
    });
    await post(`${test.url}/api/v2/alpha/items`, { name: "secret" });
    const ask = async (text: string) =>
      (await post(`${test.url}/api/v2/beta/sql`, { sql: text })).body.data as {
        rows?: Record<string, unknown>[];
        error?: string;
      };
    assert.match(
      String((await ask("select * from ext_alpha.items")).error),
      /permission denied for schema ext_alpha/,
    );
    assert.match(
      String((await ask("insert into ext_alpha.items (name) values ('x')")).error),
      /permission denied/,
    );
    assert.match(
      String((await ask("select * from inmanta_server.extension_roles")).error),
      /permission denied/,
    );
    assert.match(
      String((await ask(`set role ${database}_ext_alpha`)).error),
      /permission denied to set role/,
    );
    assert.match(String((await ask("set role inmanta")).error), /permission denied to set role/);
    assert.match(
      String((await ask("set session authorization inmanta")).error),
      /permission denied/,
    );
    assert.equal((await ask("reset role")).error, undefined);
    assert.deepEqual((await ask("select current_user as who")).rows, [{
      who: `${database}_ext_beta`,
    }]);
    assert.deepEqual((await getJson(`${test.url}/api/v2/alpha/items`)).body.data, ["secret"]);
  });
}

if (withPostgres) {
  Deno.test("[postgresql] a statement past database.statement_timeout is cancelled", async () => {
    await using root = await tempDir();
    await using state = await tempDir();
    const { config } = await postgresql.fresh(state.path);
    await using test = await serve(
      root.path,
      config,
      { slow: BASE_MIGRATIONS },
      // The [database] section is the config's last: this option joins it.
      `statement_timeout = 0.5
`,
    );
    const answer = await post(`${test.url}/api/v2/slow/sql`, { sql: "select pg_sleep(30)" });
    assert.match(
      String((answer.body.data as { error: string }).error),
      /statement timed out after 0.5s/,
    );
    const after = await post(`${test.url}/api/v2/slow/sql`, { sql: "select 1 as one" });
    assert.deepEqual((after.body.data as { rows: unknown[] }).rows, [{ one: 1 }]);
  });
}

Deno.test({
  name: "stop the throw-away PostgreSQL",
  ignore: !withPostgres,
  fn: async () => {
    await cluster?.[Symbol.asyncDispose]();
  },
});
