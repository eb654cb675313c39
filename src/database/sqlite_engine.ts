/**
 * The embedded engine: one SQLite file per extension, served by a child `deno` process that may
 * only read and write that file. One connection per file, so a transaction owns the database
 * until it ends and other statements of the extension wait for it. A statement that outlives
 * the statement timeout has its process killed (its transaction rolls back, as after a crash)
 * and the next statement starts a new one.
 *
 * @module
 */
import type { ErrorCode } from "../error_codes.ts";
import { fileURLToPath } from "node:url";
import { DatabaseError } from "../errors.ts";
import { type Engine, type EngineSession, Gate, sqlSnippet } from "./engine.ts";
import { decodeValue, encodeValue } from "./sqlite_codec.ts";
import type { DatabaseResponse, WireQuery } from "./wire.ts";

const CHILD = new URL("./sqlite_child.ts", import.meta.url);

interface Pending {
  resolve(answer: Record<string, unknown>): void;
  reject(error: Error): void;
  sql: string;
}

interface Child {
  process: Deno.ChildProcess;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Unanswered statements, oldest first (a Map keeps insertion order). */
  pending: Map<number, Pending>;
  sessions: Set<SqliteSession>;
  /** Lines not yet written. */
  queued: string[];
  /** The timeout of the oldest unanswered statement. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set once the process opened the file: statement timeouts run from then on. */
  ready: boolean;
}

class SqliteSession implements EngineSession {
  lost: string | undefined;
  constructor(readonly child: Child, readonly release: () => void) {}
}

/**
 * The deno to run the child with: this one when the server may run it by path, else `deno` as
 * found on PATH (the serve task grants `--allow-run=deno`, which Deno resolves on PATH).
 */
function denoCommand(): string {
  const exec = Deno.execPath();
  return Deno.permissions.querySync({ name: "run", command: exec }).state === "granted"
    ? exec
    : "deno";
}

/** Options of {@link SqliteEngine}. */
export interface SqliteEngineOptions {
  /** The extension, for messages. */
  extension: string;
  /** The database file. */
  file: string;
  /** Seconds a statement may run (and wait for a transaction of the same extension). */
  statementTimeout: number;
}

/** One extension's embedded database. */
export class SqliteEngine implements Engine {
  /** Statements are compiled for SQLite. */
  readonly dialect = "sqlite" as const;
  readonly #options: SqliteEngineOptions;
  readonly #gate = new Gate();
  #child: Child | undefined;
  #nextId = 1;
  #closed = false;

  /** @param options the file, the extension and the timeout */
  constructor(options: SqliteEngineOptions) {
    this.#options = options;
  }

  /** The pid of the process serving the file, once one runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.#child?.process.pid;
  }

  /** Starts the process and checks the file opens: a start-up error names the file. */
  async open(): Promise<void> {
    await this.execute({ sql: "select 1 as ok", parameters: [] });
  }

  async execute(query: WireQuery, session?: EngineSession): Promise<DatabaseResponse> {
    if (session) {
      const s = this.#session(session);
      if (s.lost) throw this.#error("database.transaction_lost", s.lost);
      return this.#answer(await this.#send(query, s.child));
    }
    const release = await this.#acquire(query.sql, false);
    try {
      return this.#answer(await this.#send(query));
    } finally {
      release();
    }
  }

  async begin(): Promise<EngineSession> {
    const release = await this.#acquire("BEGIN", true);
    try {
      const child = this.#spawn();
      const session = new SqliteSession(child, release);
      child.sessions.add(session);
      await this.#send({ sql: "BEGIN IMMEDIATE", parameters: [] }, child);
      return session;
    } catch (error) {
      release();
      throw error;
    }
  }

  async commit(session: EngineSession): Promise<void> {
    const s = this.#session(session);
    try {
      if (s.lost) throw this.#error("database.transaction_lost", s.lost);
      await this.#send({ sql: "COMMIT", parameters: [] }, s.child);
    } finally {
      this.#end(s);
    }
  }

  async rollback(session: EngineSession): Promise<void> {
    const s = this.#session(session);
    try {
      if (!s.lost) await this.#send({ sql: "ROLLBACK", parameters: [] }, s.child);
    } catch {
      // The transaction is gone either way; a process that died took it with it.
    } finally {
      this.#end(s);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    await child.writer.close().catch(() => {});
    await child.process.status;
  }

  #session(session: EngineSession): SqliteSession {
    if (!(session instanceof SqliteSession)) throw new TypeError("not a session of this engine");
    return session;
  }

  #end(session: SqliteSession): void {
    session.child.sessions.delete(session);
    if (!session.lost) session.lost = "the transaction has ended";
    session.release();
  }

  /** Waits for the database to be free of transactions, at most the statement timeout. */
  async #acquire(sql: string, exclusive: boolean): Promise<() => void> {
    const ms = this.#options.statementTimeout * 1000;
    const lock = this.#gate.acquire(exclusive);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), ms);
    });
    const outcome = await Promise.race([lock, expired]);
    clearTimeout(timer);
    if (outcome === "expired") {
      lock.then((release) => release());
      throw this.#error(
        "database.timeout",
        `waited ${this.#options.statementTimeout}s for a transaction to end before: ${
          sqlSnippet(sql)
        }`,
      );
    }
    return outcome;
  }

  #answer(answer: Record<string, unknown>): DatabaseResponse {
    if (answer.rows) return { rows: answer.rows as Record<string, unknown>[] };
    return {
      rows: [],
      numAffectedRows: answer.changes as string,
      insertId: answer.lastInsertRowid as string,
    };
  }

  #error(code: ErrorCode, why: string): DatabaseError {
    return new DatabaseError(code, `extension ${this.#options.extension}: ${why}`);
  }

  #spawn(): Child {
    if (this.#closed) throw this.#error("database.closed", "the database is closed");
    if (this.#child) return this.#child;
    const file = this.#options.file;
    const files = [file, `${file}-wal`, `${file}-shm`, `${file}-journal`].join(",");
    const script = CHILD.protocol === "file:" ? fileURLToPath(CHILD) : CHILD.href;
    const process = new Deno.Command(denoCommand(), {
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--no-lock",
        "--no-prompt",
        `--allow-read=${files}`,
        `--allow-write=${files}`,
        script,
        file,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const child: Child = {
      process,
      writer: process.stdin.getWriter(),
      pending: new Map(),
      sessions: new Set(),
      queued: [],
      timer: undefined,
      ready: false,
    };
    this.#child = child;
    this.#read(child);
    return child;
  }

  /** Reads answers; when the process ends, fails what waits on it. */
  async #read(child: Child): Promise<void> {
    const stderr = new Response(child.process.stderr).text();
    let buffer = "";
    try {
      const decoder = new TextDecoder();
      for await (const chunk of child.process.stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const answer = JSON.parse(buffer.slice(0, newline), decodeValue);
          buffer = buffer.slice(newline + 1);
          if (answer.ready === true) {
            child.ready = true;
            this.#watch(child);
            continue;
          }
          const pending = child.pending.get(answer.id);
          child.pending.delete(answer.id);
          this.#watch(child);
          if (answer.error !== undefined) {
            pending?.reject(this.#error("database.statement", answer.error));
          } else pending?.resolve(answer);
        }
      }
    } catch {
      // A killed process ends its stream abruptly; handled below.
    }
    const why = (await stderr.catch(() => "")).trim().split("\n").at(-1) || "it exited";
    this.#lose(child, `the database process of ${this.#options.file} ended: ${why}`);
  }

  /** Forgets a process: its waiting statements fail and its transactions are lost. */
  #lose(child: Child, why: string): void {
    if (this.#child === child) this.#child = undefined;
    clearTimeout(child.timer);
    for (const pending of child.pending.values()) pending.reject(this.#error("database.lost", why));
    child.pending.clear();
    // Their owner lock is released now: the database is free again, and the guest learns that
    // its transaction is gone from its next statement or its commit.
    for (const session of child.sessions) {
      session.lost ??= `the transaction was rolled back: ${why}`;
      session.release();
    }
  }

  /**
   * Sends one statement to the process. Statements are pipelined (the process runs them in
   * order); the timeout watches the one the process is running, which is the oldest unanswered.
   */
  #send(query: WireQuery, child?: Child): Promise<Record<string, unknown>> {
    const target = child ?? this.#spawn();
    if (child && this.#child !== child) {
      return Promise.reject(
        this.#error("database.transaction_lost", "the transaction was rolled back"),
      );
    }
    const id = this.#nextId++;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) =>
      target.pending.set(id, { resolve, reject, sql: query.sql })
    );
    if (target.pending.size === 1) this.#watch(target);
    const line = JSON.stringify({ id, sql: query.sql, parameters: query.parameters }, encodeValue);
    target.queued.push(line);
    if (target.queued.length === 1) queueMicrotask(() => this.#flush(target));
    return answer;
  }

  /** Writes the statements queued in this turn of the event loop in one write. */
  #flush(target: Child): void {
    const text = target.queued.join("\n") + "\n";
    target.queued = [];
    target.writer.write(new TextEncoder().encode(text)).catch(() => {});
  }

  /** (Re)arms the timeout for the oldest unanswered statement of `target`. */
  #watch(target: Child): void {
    clearTimeout(target.timer);
    if (!target.ready) return;
    const head = target.pending.entries().next();
    if (head.done) return;
    const [id, pending] = head.value;
    const seconds = this.#options.statementTimeout;
    target.timer = setTimeout(() => {
      const why = `statement timed out after ${seconds}s and was stopped: ${
        sqlSnippet(pending.sql)
      }`;
      for (const session of target.sessions) {
        session.lost ??= `the transaction was rolled back: ${why}`;
      }
      pending.reject(this.#error("database.timeout", why));
      target.pending.delete(id);
      this.#lose(target, `the database process was stopped after a statement timed out`);
      try {
        target.process.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, seconds * 1000);
  }
}
