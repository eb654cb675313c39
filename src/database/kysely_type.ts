/**
 * The type of `this.database`: a Kysely (npm `kysely`) over the extension's own database, typed
 * by its tables (`ServerSlice<MyTables>`). Imported as a type only, so that loading
 * `@inmanta/server` does not load Kysely: an extension without a database never pays for it.
 *
 * @module
 */
import type { Kysely } from "kysely";

/** `this.database`: a Kysely over the extension's own database. */
export type Database<DB> = Kysely<DB>;
