/**
 * The PostgreSQL engine: one pool per extension that logs in as the extension's own role, with
 * `search_path` set to its schema. A statement of one extension cannot reach another's tables
 * (its role has no grant on them) nor take another role (it is a member of none), whatever SQL
 * it sends; a shared pool switching with `SET ROLE` could be undone by `RESET ROLE`.
 *
 * @module
 */
import type { ErrorCode } from "../error_codes.ts";
import postgres from "postgres";
import { DatabaseError } from "../errors.ts";
import { type Engine, type EngineSession, sqlSnippet } from "./engine.ts";
import type { DatabaseResponse, WireQuery } from "./wire.ts";

/** How to reach PostgreSQL as one role. */
export interface PostgresLogin {
  /** Host name or address, or a unix socket folder (starts with `/`). */
  host: string;
  /** Port. */
  port: number;
  /** Database name. */
  database: string;
  /** Role to log in as. */
  username: string;
  /** Its password (may be empty where pg_hba trusts the connection). */
  password: string;
  /** Connections at most. */
  max: number;
}

/** Options of {@link PostgresEngine}. */
export interface PostgresEngineOptions {
  /** The extension, for messages. */
  extension: string;
  /** The extension's role and where to connect. */
  login: PostgresLogin;
  /** The extension's schema: its `search_path`. */
  schema: string;
  /** Seconds a statement may run. */
  statementTimeout: number;
}

/** A postgres.js client for one login. */
export function connect(
  login: PostgresLogin,
  connection: Record<string, string | number> = {},
): postgres.Sql {
  return postgres({
    host: login.host,
    port: login.port,
    database: login.database,
    username: login.username,
    password: login.password || undefined,
    max: login.max,
    idle_timeout: 60,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "inmanta-server", ...connection },
  });
}

class PostgresSession implements EngineSession {
  lost: string | undefined;
  constructor(readonly connection: postgres.ReservedSql) {}
}

const COUNTED = new Set(["INSERT", "UPDATE", "DELETE", "MERGE"]);

/** One extension's PostgreSQL schema, through a pool of its own role. */
export class PostgresEngine implements Engine {
  /** Statements are compiled for PostgreSQL. */
  readonly dialect = "postgres" as const;
  readonly #options: PostgresEngineOptions;
  readonly #sql: postgres.Sql;

  /** @param options the login, schema, extension and timeout */
  constructor(options: PostgresEngineOptions) {
    this.#options = options;
    this.#sql = connect(options.login, {
      search_path: options.schema,
      statement_timeout: Math.round(options.statementTimeout * 1000),
    });
  }

  async execute(query: WireQuery, session?: EngineSession): Promise<DatabaseResponse> {
    let target: postgres.Sql | postgres.ReservedSql = this.#sql;
    if (session) {
      const s = this.#session(session);
      if (s.lost) throw this.#error("database.transaction_lost", s.lost);
      target = s.connection;
    }
    return await this.#run(target, query);
  }

  async begin(): Promise<EngineSession> {
    const connection = await this.#sql.reserve();
    try {
      await connection.unsafe("BEGIN");
    } catch (error) {
      connection.release();
      throw this.#error("database.statement", (error as Error).message);
    }
    return new PostgresSession(connection);
  }

  async commit(session: EngineSession): Promise<void> {
    const s = this.#session(session);
    try {
      if (s.lost) throw this.#error("database.transaction_lost", s.lost);
      await this.#run(s.connection, { sql: "COMMIT", parameters: [] });
    } finally {
      this.#end(s);
    }
  }

  async rollback(session: EngineSession): Promise<void> {
    const s = this.#session(session);
    try {
      if (!s.lost) await s.connection.unsafe("ROLLBACK");
    } catch {
      // The connection is gone, and its transaction with it.
    } finally {
      this.#end(s);
    }
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }

  #end(session: PostgresSession): void {
    if (!session.lost) {
      session.lost = "the transaction has ended";
      session.connection.release();
    }
  }

  #session(session: EngineSession): PostgresSession {
    if (!(session instanceof PostgresSession)) throw new TypeError("not a session of this engine");
    return session;
  }

  #error(code: ErrorCode, why: string): DatabaseError {
    return new DatabaseError(code, `extension ${this.#options.extension}: ${why}`);
  }

  /** Runs a statement; past the timeout the server cancels it (the role could `SET` its own). */
  async #run(
    target: postgres.Sql | postgres.ReservedSql,
    query: WireQuery,
  ): Promise<DatabaseResponse> {
    const pending = target.unsafe(
      query.sql,
      query.parameters as postgres.ParameterOrJSON<never>[],
      {
        prepare: true,
      },
    );
    const seconds = this.#options.statementTimeout;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      pending.cancel();
    }, seconds * 1000 + 250);
    try {
      const result = await pending;
      const response: DatabaseResponse = { rows: [...result] };
      if (COUNTED.has(result.command)) response.numAffectedRows = String(result.count);
      return response;
    } catch (error) {
      const e = error as Error & { code?: string };
      if (timedOut || e.code === "57014") {
        throw this.#error(
          "database.timeout",
          `statement timed out after ${seconds}s and was cancelled: ${sqlSnippet(query.sql)}`,
        );
      }
      throw this.#error("database.statement", e.message);
    } finally {
      clearTimeout(timer);
    }
  }
}
