/**
 * What a sandbox's guest runtime calls to give its extension the database: the same Kysely and
 * cluster claims as in-process, with every request sent through the sandbox's channel. The
 * sandbox carries `DatabaseRequest`s out and `DatabaseResponse`s (or an error message) back;
 * the host answers them with `DatabaseHost.handle(extension, request)`.
 *
 * @module
 */
import { INTERNALS, type ServerSlice } from "../slices/slice.ts";
import { channelDatabase } from "./channel_dialect.ts";
import type { Migrations } from "./migration_check.ts";
import { applyMigrations, type MigrationOutcome } from "./migrations.ts";
import type { DatabaseSend } from "./wire.ts";

/**
 * Gives the guest's slices that list `core.database` their `this.database`, and every slice
 * its cluster claims. Call it before the slices' `prestart`, once the host said the dialect.
 *
 * @param slices the extension's slices, in the guest
 * @param extension the extension's name
 * @param dialect what the host's engine for it speaks (`DatabaseHost.dialect(extension)`)
 * @param send carries one request to the host and resolves with its answer
 */
export function attachGuestDatabase(
  slices: readonly ServerSlice[],
  extension: string,
  dialect: "sqlite" | "postgres",
  send: DatabaseSend,
): void {
  const database = channelDatabase(extension, dialect, send);
  for (const slice of slices) {
    slice[INTERNALS].scheduler.setClusterClaim(async (task) =>
      (await send({ op: "claim", extension, task: `${slice.name}:${task}` })).claimed === true
    );
    if (slice.getDependencies().includes("core.database")) slice[INTERNALS].database = database;
  }
}

/**
 * Applies the guest's migrations (their code lives in the guest) over the channel: what the
 * host's `migrate(extension, dialect)` asks the sandbox to do before the extension's slices start.
 */
export async function migrateGuest(
  migrations: Migrations | undefined,
  extension: string,
  version: string,
  dialect: "sqlite" | "postgres",
  send: DatabaseSend,
): Promise<MigrationOutcome> {
  return await applyMigrations(channelDatabase(extension, dialect, send), migrations ?? {}, {
    extension,
    version,
    dialect,
  });
}
