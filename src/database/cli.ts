/**
 * `deno task db status [--config FILE] [--config-dir DIR]`: the schema version of each
 * extension's database, read from the database itself (the embedded files under
 * `server.state_dir`, or the extensions' schemas on PostgreSQL), without starting a server.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { registerCoreOptions } from "../core/options.ts";
import { describeError } from "../errors.ts";
import { MIGRATIONS_TABLE } from "./migrations.ts";
import { readDatabaseSettings } from "./options.ts";
import { registerDatabaseOptions } from "./options.ts";

/** One extension's database as the status lists it. */
export interface DatabaseStatusRow {
  /** Extension name. */
  extension: string;
  /** Its last applied migration, or null. */
  schemaVersion: string | null;
  /** How many migrations it recorded. */
  migrations: number;
  /** When the last one was applied. */
  appliedAt: string | null;
}

function summarise(extension: string, rows: { name: string; applied_at: string }[]) {
  const last = rows.at(-1);
  return {
    extension,
    schemaVersion: last?.name ?? null,
    migrations: rows.length,
    appliedAt: last ? String(last.applied_at) : null,
  };
}

function embedded(stateDir: string): DatabaseStatusRow[] {
  const rows: DatabaseStatusRow[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(stateDir)];
  } catch {
    return rows; // no state folder yet: no extension has a database
  }
  for (const entry of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
    if (!entry.isFile || !entry.name.endsWith(".sqlite3")) continue;
    const db = new DatabaseSync(join(stateDir, entry.name), { readOnly: true });
    try {
      const has = db.prepare("select 1 from sqlite_master where name = ?").get(MIGRATIONS_TABLE);
      const applied = has
        ? db.prepare(`select name, applied_at from ${MIGRATIONS_TABLE} order by name`).all()
        : [];
      rows.push(summarise(entry.name.replace(/\.sqlite3$/, ""), applied as never));
    } finally {
      db.close();
    }
  }
  return rows;
}

async function postgresql(settings: ReturnType<typeof readDatabaseSettings>) {
  const { PostgresAdmin } = await import("./postgres_admin.ts");
  const admin = new PostgresAdmin({
    host: settings.host,
    port: settings.port,
    database: settings.name,
    username: settings.username,
    password: settings.password,
    max: 1,
  });
  try {
    await admin.open();
    const extensions = await admin.sql<{ extension: string }[]>`
      select extension from inmanta_server.extension_roles order by extension`;
    const rows: DatabaseStatusRow[] = [];
    for (const { extension } of extensions) {
      const schema = `ext_${extension}`;
      const [has] = await admin.sql`select 1 from information_schema.tables
        where table_schema = ${schema} and table_name = ${MIGRATIONS_TABLE}`;
      const applied = has
        ? await admin.sql.unsafe(
          `select name, applied_at from "${schema}".${MIGRATIONS_TABLE} order by name`,
        )
        : [];
      rows.push(summarise(extension, applied as never));
    }
    return rows;
  } finally {
    await admin.close();
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { config: { type: "string" }, "config-dir": { type: "string" } },
    allowPositionals: true,
  });
  if (positionals[0] !== "status" || positionals.length !== 1) {
    console.error("usage: deno task db status [--config FILE] [--config-dir DIR]");
    Deno.exit(2);
  }
  const config = await loadConfig({ configFile: values.config, configDir: values["config-dir"] });
  registerCoreOptions(config);
  registerDatabaseOptions(config);
  const settings = readDatabaseSettings(config);
  const where = settings.engine === "embedded"
    ? `embedded database in ${resolve(settings.stateDir)}`
    : `PostgreSQL ${settings.host}:${settings.port}/${settings.name} as ${settings.username}`;
  const rows = settings.engine === "embedded"
    ? embedded(settings.stateDir)
    : await postgresql(settings);
  console.log(where);
  if (rows.length === 0) {
    console.log("no extension has a database yet");
    return;
  }
  const width = Math.max(9, ...rows.map((r) => r.extension.length));
  const versionWidth = Math.max(14, ...rows.map((r) => (r.schemaVersion ?? "none").length));
  console.log(
    `${"extension".padEnd(width)}  ${"schema_version".padEnd(versionWidth)}  migrations  applied`,
  );
  for (const r of rows) {
    console.log(
      `${r.extension.padEnd(width)}  ${(r.schemaVersion ?? "none").padEnd(versionWidth)}  ${
        String(r.migrations).padStart(10)
      }  ${r.appliedAt ?? "-"}`,
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`inmanta db: ${describeError(error)}`);
    Deno.exit(1);
  }
}
