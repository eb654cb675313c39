/**
 * An extension's migrations: Kysely `Migration` objects registered by name, applied in the
 * names' order, each in its own transaction together with the row that records it in the
 * extension's own database. A failing migration leaves the database as it was before it; a
 * database that records a migration the extension does not have (the extension was rolled
 * back) is refused.
 *
 * @module
 */
import { type Kysely, sql } from "kysely";
import { DatabaseError, describeError } from "../errors.ts";
import type { Migrations } from "./migration_check.ts";

export type { Migration, Migrations } from "./migration_check.ts";

/** The table, in each extension's own database, that records its applied migrations. */
export const MIGRATIONS_TABLE = "inmanta_migrations";

/** What applying did. */
export interface MigrationOutcome {
  /** The last applied migration, or null when none is. */
  schemaVersion: string | null;
  /** The migrations this run applied. */
  applied: string[];
}

/** Names in the order they are applied: by code point, so `0002` < `0010` < `a`. */
export function migrationOrder(migrations: Migrations): string[] {
  return Object.keys(migrations).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// deno-lint-ignore no-explicit-any
type AnyDb = Kysely<any>;

/** The migrations recorded in an extension's database, in order; none when it has no table. */
export async function recordedMigrations(db: AnyDb): Promise<string[]> {
  await ensureTable(db);
  const rows = await db.selectFrom(MIGRATIONS_TABLE).select("name").orderBy("name").execute();
  return rows.map((r) => String(r.name));
}

async function ensureTable(db: AnyDb): Promise<void> {
  await db.schema.createTable(MIGRATIONS_TABLE).ifNotExists()
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("applied_at", "text", (c) => c.notNull())
    .execute();
}

/** Options of {@link applyMigrations}. */
export interface ApplyOptions {
  /** The extension, for messages. */
  extension: string;
  /** The extension's version, for the rollback message. */
  version: string;
  /** The engine's dialect: on PostgreSQL, instances starting together take turns. */
  dialect: "sqlite" | "postgres";
}

/**
 * Applies the pending migrations of one extension on its own Kysely.
 *
 * @throws {DatabaseError} `database.rollback` when the database is newer than the extension,
 *   `database.migration` naming the migration that failed and why
 */
export async function applyMigrations(
  db: AnyDb,
  migrations: Migrations,
  options: ApplyOptions,
): Promise<MigrationOutcome> {
  const { extension, version, dialect } = options;
  const names = migrationOrder(migrations);
  const known = new Set(names);
  let recorded: string[];
  try {
    recorded = await db.transaction().execute(async (trx) => {
      if (dialect === "postgres") await lock(trx);
      return await recordedMigrations(trx);
    });
  } catch (error) {
    throw new DatabaseError(
      "database.migration",
      `extension ${extension}: cannot read its applied migrations: ${describeError(error)}`,
    );
  }
  const unknown = recorded.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new DatabaseError(
      "database.rollback",
      `extension ${extension} ${version} is older than its database: the database records migration ${
        unknown.at(-1)
      } (schema_version ${recorded.at(-1)}), which this version does not have (its last is ${
        names.at(-1) ?? "none"
      }); to roll back, restore the backup taken before the upgrade`,
    );
  }
  const last = recorded.at(-1);
  const done = new Set(recorded);
  const pending = names.filter((name) => !done.has(name));
  const early = pending.find((name) => last !== undefined && name < last);
  if (early) {
    throw new DatabaseError(
      "database.migration",
      `extension ${extension}: migration ${early} sorts before ${last}, which is already applied; name new migrations after the last one`,
    );
  }
  const applied: string[] = [];
  for (const name of pending) {
    try {
      const ran = await db.transaction().execute(async (trx) => {
        if (dialect === "postgres") {
          await lock(trx);
          // Another instance may have applied it while this one waited for the lock.
          const seen = await trx.selectFrom(MIGRATIONS_TABLE).select("name")
            .where("name", "=", name).executeTakeFirst();
          if (seen) return false;
        }
        await migrations[name].up(trx);
        await trx.insertInto(MIGRATIONS_TABLE)
          .values({ name, applied_at: new Date().toISOString() }).execute();
        return true;
      });
      if (ran) applied.push(name);
    } catch (error) {
      throw new DatabaseError(
        "database.migration",
        `extension ${extension}: migration ${name} failed, nothing of it was applied: ${
          describeError(error)
        }`,
        { cause: error },
      );
    }
  }
  return {
    schemaVersion: names.filter((n) => done.has(n) || applied.includes(n)).at(-1) ?? null,
    applied,
  };
}

/** Serialises migrations of instances that start together (held until the transaction ends). */
async function lock(db: AnyDb): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('inmanta.migrations'))`.execute(db);
}
