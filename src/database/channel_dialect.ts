/**
 * The guest side of an extension's database: a Kysely dialect whose driver compiles nothing
 * itself (Kysely did) and sends each compiled statement, with its transaction id, through a
 * function. In-process that function calls the {@link DatabaseHost} directly; in a sandbox it
 * posts the request on the channel and the host answers. Either way the extension's code needs
 * no network or file permission for its own database.
 *
 * @module
 */
import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import type { DatabaseHost } from "./database_host.ts";
import type { DatabaseResponse, DatabaseSend } from "./wire.ts";

class ChannelConnection implements DatabaseConnection {
  tx: string | undefined;
  constructor(readonly extension: string, readonly send: DatabaseSend) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const response = await this.send({
      op: "execute",
      extension: this.extension,
      sql: compiledQuery.sql,
      parameters: [...compiledQuery.parameters],
      ...(this.tx === undefined ? {} : { tx: this.tx }),
    });
    return toQueryResult<R>(response);
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    // Rows cross the channel in one answer; a stream yields them as one chunk.
    yield await this.executeQuery<R>(compiledQuery);
  }
}

/** A Kysely result from a host's answer (counts travel as decimal strings). */
function toQueryResult<R>(response: DatabaseResponse): QueryResult<R> {
  return {
    rows: (response.rows ?? []) as R[],
    ...(response.numAffectedRows === undefined
      ? {}
      : { numAffectedRows: BigInt(response.numAffectedRows) }),
    ...(response.insertId === undefined ? {} : { insertId: BigInt(response.insertId) }),
  };
}

class ChannelDriver implements Driver {
  constructor(readonly extension: string, readonly send: DatabaseSend) {}

  async init(): Promise<void> {}

  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(new ChannelConnection(this.extension, this.send));
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as ChannelConnection;
    const { tx } = await this.send({ op: "begin", extension: this.extension });
    c.tx = tx;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as ChannelConnection;
    const tx = c.tx!;
    c.tx = undefined;
    await this.send({ op: "commit", extension: this.extension, tx });
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as ChannelConnection;
    const tx = c.tx!;
    c.tx = undefined;
    await this.send({ op: "rollback", extension: this.extension, tx });
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {}
}

/** A Kysely dialect that sends `extension`'s statements through `send`. */
export class ChannelDialect implements Dialect {
  /**
   * @param extension whose database the statements are for
   * @param dialect the SQL dialect of that database (the host says which)
   * @param send carries one request to the host and back
   */
  constructor(
    readonly extension: string,
    readonly dialect: "sqlite" | "postgres",
    readonly send: DatabaseSend,
  ) {}

  /** The driver that sends compiled statements. */
  createDriver(): Driver {
    return new ChannelDriver(this.extension, this.send);
  }

  /** SQLite's or PostgreSQL's compiler. */
  createQueryCompiler(): QueryCompiler {
    return this.dialect === "sqlite" ? new SqliteQueryCompiler() : new PostgresQueryCompiler();
  }

  /** SQLite's or PostgreSQL's adapter. */
  createAdapter(): DialectAdapter {
    return this.dialect === "sqlite" ? new SqliteAdapter() : new PostgresAdapter();
  }

  /** SQLite's or PostgreSQL's introspector. */
  // deno-lint-ignore no-explicit-any
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.dialect === "sqlite" ? new SqliteIntrospector(db) : new PostgresIntrospector(db);
  }
}

/**
 * The Kysely of `extension` whose statements go through `send`.
 *
 * @example
 * ```ts ignore
 * const db = channelDatabase("shop", "sqlite", (request) => channel.ask({ type: "db", request }));
 * await db.selectFrom("orders").selectAll().execute();
 * ```
 */
// deno-lint-ignore no-explicit-any
export function channelDatabase<DB = any>(
  extension: string,
  dialect: "sqlite" | "postgres",
  send: DatabaseSend,
): Kysely<DB> {
  return new Kysely<DB>({ dialect: new ChannelDialect(extension, dialect, send) });
}

/**
 * The Kysely of an in-process extension: the same driver, calling the host directly (each
 * request still goes through {@link DatabaseHost.handle}'s checks, so both paths are one).
 */
// deno-lint-ignore no-explicit-any
export function hostedDatabase<DB = any>(host: DatabaseHost, extension: string): Kysely<DB> {
  return channelDatabase<DB>(
    extension,
    host.dialect(extension),
    (request) => host.handle(extension, request),
  );
}
