/**
 * What the host needs of a database engine to serve one extension: run a statement, alone or
 * in a transaction, and close. The embedded (SQLite) and PostgreSQL engines implement it.
 *
 * @module
 */
import type { DatabaseResponse, WireQuery } from "./wire.ts";

/** An open transaction of an engine; opaque outside it. */
export interface EngineSession {
  /** Set once the transaction can no longer commit (its statement timed out, its process died). */
  readonly lost?: string;
}

/** The database of one extension. */
export interface Engine {
  /** Which SQL dialect the statements must be compiled for. */
  readonly dialect: "sqlite" | "postgres";
  /** Runs one statement, inside `session` when given. */
  execute(query: WireQuery, session?: EngineSession): Promise<DatabaseResponse>;
  /** Opens a transaction; statements of the same engine outside it wait (SQLite) or not (PostgreSQL). */
  begin(): Promise<EngineSession>;
  /** Commits; throws if the transaction was lost. */
  commit(session: EngineSession): Promise<void>;
  /** Rolls back; never throws for a transaction that is already gone. */
  rollback(session: EngineSession): Promise<void>;
  /** Closes connections and processes; pending statements fail. */
  close(): Promise<void>;
}

/**
 * A first-come, first-served shared/exclusive lock: statements outside a transaction share it
 * (they are pipelined to the one connection), a transaction holds it alone from begin to end.
 */
export class Gate {
  #shared = 0;
  #exclusive = false;
  readonly #queue: { exclusive: boolean; grant: () => void }[] = [];

  /** Resolves with the release function once the lock is held (shared or alone). */
  acquire(exclusive: boolean): Promise<() => void> {
    const { promise, resolve } = Promise.withResolvers<() => void>();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (exclusive) this.#exclusive = false;
      else this.#shared--;
      this.#drain();
    };
    this.#queue.push({
      exclusive,
      grant: () => {
        if (exclusive) this.#exclusive = true;
        else this.#shared++;
        resolve(release);
      },
    });
    this.#drain();
    return promise;
  }

  /** Grants waiters in order: shared ones while no transaction holds it, one transaction alone. */
  #drain(): void {
    while (this.#queue.length > 0 && !this.#exclusive) {
      const head = this.#queue[0];
      if (head.exclusive && this.#shared > 0) return;
      this.#queue.shift();
      head.grant();
      if (head.exclusive) return;
    }
  }
}

/** The first line of an SQL text, shortened, for error messages. */
export function sqlSnippet(sql: string): string {
  const line = sql.replace(/\s+/g, " ").trim();
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}
