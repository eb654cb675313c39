/**
 * The embedded database's worker process: one per extension's database file, started by the
 * server with read and write permission on that file (and its journal) only. It reads one JSON
 * request per line on stdin and answers one per line on stdout. node:sqlite is synchronous and
 * cannot be interrupted, so it runs here, where the server can SIGKILL a statement that outlives
 * `database.statement_timeout` without blocking its own event loop.
 *
 * Requests: `{"id", "sql", "parameters"}`. Answers: `{"id", "rows"?, "changes"?,
 * "lastInsertRowid"?}` or `{"id", "error"}`.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { decodeValue, encodeValue } from "./sqlite_codec.ts";

const file = Deno.args[0];
const db = new DatabaseSync(file);
// WAL with synchronous=NORMAL: a committed transaction survives a crash of this process or the
// server (not a power loss between checkpoints); readers and the writer do not block each other.
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
db.exec("PRAGMA busy_timeout = 5000;");
let refused = false;

interface Authorizing {
  setAuthorizer(callback: (action: number, first: string | null) => number): void;
}
// An extension reaches its own file only: ATTACH (and VACUUM INTO, which attaches its target)
// could open any other. Deno already opens a database without attach slots when the process
// lacks full permissions (as here), which also stops plain VACUUM (it attaches a temporary
// database); the authorizer keeps the refusal if that default changes.
// (The codes are SQLite's: SQLITE_ATTACH 24, SQLITE_DENY 1, SQLITE_OK 0; node:sqlite's types
// do not declare setAuthorizer yet.)
(db as unknown as Authorizing).setAuthorizer((action, first) => {
  if (action === 24 && first !== "") {
    refused = true;
    return 1;
  }
  return 0;
});

const REFUSED =
  "ATTACH, VACUUM and VACUUM INTO are refused: an extension reaches only its own database";

function toInput(value: unknown): SQLInputValue {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  return value as SQLInputValue;
}

// Prepared statements by SQL text: an extension runs the same few statements over and over.
const prepared = new Map<string, StatementSync>();

function prepare(sql: string): StatementSync {
  let statement = prepared.get(sql);
  if (statement) return statement;
  statement = db.prepare(sql);
  if (prepared.size >= 256) prepared.delete(prepared.keys().next().value!);
  prepared.set(sql, statement);
  return statement;
}

function run(sql: string, parameters: unknown[]): Record<string, unknown> {
  refused = false;
  try {
    const statement = prepare(sql);
    const args = parameters.map(toInput);
    if (statement.columns().length > 0) return { rows: statement.all(...args) };
    const { changes, lastInsertRowid } = statement.run(...args);
    return { changes: String(changes), lastInsertRowid: String(lastInsertRowid) };
  } catch (error) {
    const message = (error as Error).message;
    return { error: refused || /too many attached databases/.test(message) ? REFUSED : message };
  }
}

function writeAll(bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += Deno.stdout.writeSync(bytes.subarray(done));
}

const encoder = new TextEncoder();
let buffer = "";
// The server's statement timeout starts once this process is ready, not while Deno starts it.
writeAll(encoder.encode('{"ready":true}\n'));
const decoder = new TextDecoder();
for await (const chunk of Deno.stdin.readable) {
  buffer += decoder.decode(chunk, { stream: true });
  let newline: number;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    const request = JSON.parse(line, decodeValue) as { id: number; sql: string; parameters: [] };
    const answer = { id: request.id, ...run(request.sql, request.parameters) };
    // Written at once, so that the server's timeout moves on to the next statement now.
    writeAll(encoder.encode(JSON.stringify(answer, encodeValue) + "\n"));
  }
}
db.close();
