/**
 * The host side of extensions' databases: runs the statements each extension's Kysely compiled,
 * on that extension's own engine, and keeps its open transactions by id. An in-process
 * extension's driver calls it directly; a sandboxed one's requests arrive on its channel and go
 * through {@link DatabaseHost.handle}, which trusts nothing in them.
 *
 * @module
 */
import { DatabaseError } from "../errors.ts";
import type { Engine, EngineSession } from "./engine.ts";
import {
  type DatabaseRequest,
  type DatabaseResponse,
  validateRequest,
  type WireQuery,
} from "./wire.ts";

interface Transaction {
  extension: string;
  session: EngineSession;
}

/** Decides whether this instance runs a cluster task's tick (see cluster.ts). */
export type ClusterClaim = (task: string) => Promise<boolean>;

/** Runs extensions' statements on their own engines. */
export class DatabaseHost {
  readonly #engines = new Map<string, Engine>();
  readonly #transactions = new Map<string, Transaction>();
  /** How often each extension's transactions were all released (a begin under way is too). */
  readonly #released = new Map<string, number>();
  #claim: ClusterClaim = () => Promise.resolve(true);

  /** Gives `extension` its engine (its database). */
  add(extension: string, engine: Engine): void {
    this.#engines.set(extension, engine);
  }

  /** Sets who decides cluster tasks; without one every instance runs them (embedded database). */
  setClusterClaim(claim: ClusterClaim): void {
    this.#claim = claim;
  }

  /** Whether `extension` has a database. */
  has(extension: string): boolean {
    return this.#engines.has(extension);
  }

  /** The SQL dialect of `extension`'s database. */
  dialect(extension: string): "sqlite" | "postgres" {
    return this.#engine(extension).dialect;
  }

  /** The engine of `extension`, for the server's own use (migrations bookkeeping, status). */
  engine(extension: string): Engine {
    return this.#engine(extension);
  }

  /** Runs one statement of `extension`, inside transaction `tx` when given. */
  async execute(extension: string, query: WireQuery, tx?: string): Promise<DatabaseResponse> {
    const engine = this.#engine(extension);
    return await engine.execute(query, tx === undefined ? undefined : this.#tx(extension, tx));
  }

  /** Opens a transaction of `extension`; resolves with its id. */
  async begin(extension: string): Promise<string> {
    const released = this.#released.get(extension) ?? 0;
    const session = await this.#engine(extension).begin();
    if ((this.#released.get(extension) ?? 0) !== released) {
      // Its sandbox died while it waited: nobody would ever end it, and it holds the database.
      await this.#engine(extension).rollback(session);
      throw new DatabaseError(
        "database.transaction_lost",
        `extension ${extension}: its sandbox ended while the transaction began`,
      );
    }
    const id = crypto.randomUUID();
    this.#transactions.set(id, { extension, session });
    return id;
  }

  /** Commits transaction `tx` of `extension`. */
  async commit(extension: string, tx: string): Promise<void> {
    const session = this.#tx(extension, tx);
    this.#transactions.delete(tx);
    await this.#engine(extension).commit(session);
  }

  /** Rolls back transaction `tx` of `extension`. */
  async rollback(extension: string, tx: string): Promise<void> {
    const session = this.#tx(extension, tx);
    this.#transactions.delete(tx);
    await this.#engine(extension).rollback(session);
  }

  /** Rolls back every open transaction of `extension`: its sandbox died or was stopped. */
  async releaseAll(extension: string): Promise<void> {
    this.#released.set(extension, (this.#released.get(extension) ?? 0) + 1);
    const mine = [...this.#transactions].filter(([, t]) => t.extension === extension);
    for (const [id] of mine) this.#transactions.delete(id);
    await Promise.all(mine.map(([, t]) => this.#engine(extension).rollback(t.session)));
  }

  /** Whether this instance runs this tick of cluster task `task` of `extension`. */
  claim(extension: string, task: string): Promise<boolean> {
    return this.#claim(`${extension}:${task}`);
  }

  /**
   * Answers one request that arrived on `extension`'s channel. The request is validated first;
   * the extension is the channel's, never what the request says.
   *
   * @throws {DatabaseError} for a malformed request or a failed statement
   */
  async handle(extension: string, request: unknown): Promise<DatabaseResponse> {
    const r: DatabaseRequest = validateRequest(extension, request);
    switch (r.op) {
      case "execute":
        return await this.execute(extension, { sql: r.sql, parameters: r.parameters }, r.tx);
      case "begin":
        return { tx: await this.begin(extension) };
      case "commit":
        await this.commit(extension, r.tx);
        return {};
      case "rollback":
        await this.rollback(extension, r.tx);
        return {};
      case "claim":
        return { claimed: await this.claim(extension, r.task) };
    }
  }

  /** Rolls back every transaction and closes every engine. */
  async close(): Promise<void> {
    const extensions = new Set([...this.#transactions.values()].map((t) => t.extension));
    for (const extension of extensions) await this.releaseAll(extension);
    await Promise.all([...this.#engines.values()].map((e) => e.close().catch(() => {})));
    this.#engines.clear();
  }

  #engine(extension: string): Engine {
    const engine = this.#engines.get(extension);
    if (!engine) {
      throw new DatabaseError(
        "database.none",
        `extension ${extension} has no database: list core.database in a slice's getDependencies()`,
      );
    }
    return engine;
  }

  #tx(extension: string, tx: string): EngineSession {
    const transaction = this.#transactions.get(tx);
    // Another extension's id is answered as unknown: it must not learn that it exists.
    if (!transaction || transaction.extension !== extension) {
      throw new DatabaseError(
        "database.transaction_unknown",
        `extension ${extension}: no open transaction ${tx}`,
      );
    }
    return transaction.session;
  }
}
