/**
 * What crosses between an extension and the host that runs its statements: the requests a
 * guest's Kysely driver sends and the results it gets back. The same shapes serve an
 * in-process extension (a function call) and a sandboxed one (a message on its channel), and
 * the host validates every request as if it came from a hostile guest.
 *
 * @module
 */
import { DatabaseError } from "../errors.ts";

/** A compiled statement: SQL text with positional parameters. */
export interface WireQuery {
  /** The SQL, with `?` (embedded) or `$n` (PostgreSQL) placeholders as Kysely compiled it. */
  sql: string;
  /** The parameter values, in order. */
  parameters: readonly unknown[];
}

/** One request of a guest to the host that runs its statements. */
export type DatabaseRequest =
  | { op: "execute"; extension: string; sql: string; parameters: unknown[]; tx?: string }
  | { op: "begin"; extension: string }
  | { op: "commit"; extension: string; tx: string }
  | { op: "rollback"; extension: string; tx: string }
  | { op: "claim"; extension: string; task: string };

/**
 * The answer to a request: rows and counts for `execute` (counts as decimal strings so that
 * they survive JSON), the transaction id for `begin`, whether the task is this instance's for
 * `claim`, nothing for `commit` and `rollback`.
 */
export interface DatabaseResponse {
  /** Rows of an `execute`. */
  rows?: Record<string, unknown>[];
  /** Rows an insert, update or delete touched, as a decimal string. */
  numAffectedRows?: string;
  /** The rowid of the last insert (embedded database), as a decimal string. */
  insertId?: string;
  /** The id of the transaction `begin` opened. */
  tx?: string;
  /** `claim`: true when this instance runs the cluster task this tick. */
  claimed?: boolean;
}

/** Sends one request and resolves with its response; how it travels is the caller's business. */
export type DatabaseSend = (request: DatabaseRequest) => Promise<DatabaseResponse>;

const OPS = new Set(["execute", "begin", "commit", "rollback", "claim"]);

/**
 * Checks a request that came from a guest: its shape, and that it speaks for the extension the
 * channel belongs to (a guest cannot name another extension's database).
 *
 * @param extension the extension whose channel carried the request
 * @param value the request as received
 * @throws {DatabaseError} `database.request` naming the extension and what is wrong
 */
export function validateRequest(extension: string, value: unknown): DatabaseRequest {
  const bad = (why: string) =>
    new DatabaseError(
      "database.request",
      `extension ${extension}: invalid database request: ${why}`,
    );
  if (typeof value !== "object" || value === null) throw bad("not an object");
  const r = value as Record<string, unknown>;
  if (typeof r.op !== "string" || !OPS.has(r.op)) throw bad(`unknown op ${String(r.op)}`);
  if (r.extension !== extension) {
    throw bad(`it names extension ${String(r.extension)}, not its own`);
  }
  const isText = (v: unknown) => typeof v === "string" && v.length > 0 && v.length < 1_000_000;
  switch (r.op) {
    case "execute":
      if (!isText(r.sql)) throw bad("sql must be a non-empty string");
      if (!Array.isArray(r.parameters)) throw bad("parameters must be an array");
      if (r.tx !== undefined && !isText(r.tx)) throw bad("tx must be a string");
      break;
    case "commit":
    case "rollback":
      if (!isText(r.tx)) throw bad("tx must be a string");
      break;
    case "claim":
      if (!isText(r.task)) throw bad("task must be a string");
      break;
  }
  return r as DatabaseRequest;
}
