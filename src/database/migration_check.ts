/**
 * The shape of an extension's migrations and the check of what `registerMigrations` receives;
 * free of Kysely at run time, so that registering costs an extension nothing.
 *
 * @module
 */
import { DatabaseError } from "../errors.ts";

/**
 * One migration: Kysely's `Migration` shape (`kysely/migration`). `up` gets a Kysely (as Kysely's
 * own `Migration` types it, `Kysely<any>`) inside the migration's transaction; `down` is never run by the server (rolling back is restoring a backup).
 */
export interface Migration {
  /** Changes the schema (and data) forward. */
  // deno-lint-ignore no-explicit-any
  up(db: any): Promise<void>;
  /** Not used by the server; kept so that Kysely migration files work unchanged. */
  // deno-lint-ignore no-explicit-any
  down?(db: any): Promise<void>;
}

/** What `application.registerMigrations` takes: migrations by name, applied in name order. */
export type Migrations = Record<string, Migration>;

/**
 * Checks what an extension registers and adds it to what it registered before.
 *
 * @throws {DatabaseError} `database.migrations` naming the extension and the entry
 */
export function addMigrations(extension: string, into: Migrations, value: unknown): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DatabaseError(
      "database.migrations",
      `extension ${extension}: registerMigrations needs an object of migrations by name`,
    );
  }
  for (const [name, migration] of Object.entries(value)) {
    if (typeof (migration as Migration)?.up !== "function") {
      throw new DatabaseError(
        "database.migrations",
        `extension ${extension}: migration ${name} has no up(db) function`,
      );
    }
    if (Object.hasOwn(into, name)) {
      throw new DatabaseError(
        "database.migrations",
        `extension ${extension}: migration ${name} is registered twice`,
      );
    }
    into[name] = migration as Migration;
  }
}
