/**
 * Request ids: every request gets one (the client's `X-Request-Id` when it is sane, else a new
 * one), the response echoes it, and log lines written while the request is handled carry it.
 * The id travels with the request's async work through `AsyncLocalStorage`, so neither the
 * router nor a handler passes it along.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";

const STORE = new AsyncLocalStorage<string>();

/** The header that carries the id both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/** What a client may send as its own id: short, printable, no spaces or separators of logs. */
const SANE = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/**
 * A per-process prefix and a counter make ids unique within a run for the price of an integer
 * increment; a random UUID per request cost measurably more at the request rates served.
 */
const PREFIX = crypto.randomUUID().slice(0, 8);
let counter = 0;

/** The id of the request being handled in this async context, if any. */
export function currentRequestId(): string | undefined {
  return STORE.getStore();
}

/**
 * Runs `fn(arg)` with `id` as the current request id; what it starts (promises, timers) keeps
 * the id. A sandbox runs a forwarded request under the id the server sent with it.
 *
 * @example
 * ```ts
 * import { currentRequestId, runWithRequestId } from "./request_id.ts";
 * runWithRequestId("abc", (x: number) => console.log(currentRequestId(), x), 1); // "abc" 1
 * ```
 */
export function runWithRequestId<A, R>(id: string, fn: (arg: A) => R, arg: A): R {
  return STORE.run(id, fn, arg);
}

/**
 * Whether `value` is an id a request may carry: the test a sandbox's messages must pass before
 * their `requestId` is logged (a guest is not trusted).
 */
export function isRequestId(value: unknown): value is string {
  return typeof value === "string" && SANE.test(value);
}

/** The client's id when it sent a sane one, else a new one. */
export function requestIdOf(request: Request): string {
  const sent = request.headers.get(REQUEST_ID_HEADER);
  if (sent !== null && SANE.test(sent)) return sent;
  return `${PREFIX}-${(++counter).toString(36)}`;
}
