/**
 * The HTTP application: API methods found by the radix router, arguments decoded and validated,
 * answers in the `{"data": ...}` / `{"message": ...}` envelopes; then 405 for known paths, static
 * content, and 404.
 *
 * @module
 */
import type { Authenticator } from "../auth/auth.ts";
import { describeError, HttpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Invoker, type Outcome, toResponse } from "../protocol/invoke.ts";
import { QUERY_OPERATIONS } from "../protocol/method.ts";
import type { Route } from "../protocol/routes.ts";
import { INTERNALS } from "../slices/slice.ts";
import { readBody, readText } from "./body.ts";
import { errorResponse } from "./errors.ts";
import { type Leaf, Router } from "./router.ts";
import type { StaticTable } from "./static.ts";

/** What the application is built from. */
export interface AppOptions {
  /** Every API route. */
  routes: Route[];
  /** Static mounts. */
  statics: StaticTable;
  /** Where handler errors are logged. */
  log: Logger;
  /** Default request body limit in bytes. */
  maxBodySize: number;
  /** Seconds a client has to send a request body before it gets 408. */
  bodyTimeout: number;
  /** Checks tokens of methods that enforce auth; none when `server.auth` is off. */
  auth?: Authenticator;
  /** Wraps each route's endpoint once, when the router is built (metrics, access log). */
  instrument?: (route: Route, endpoint: Endpoint) => Endpoint;
}

/** A request handler, as Deno.serve takes it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** One routed method: the request, its decoded path parameters and its query string. */
export type Endpoint = (
  request: Request,
  path: string,
  params: Record<string, string>,
  search: string,
) => Response | Promise<Response>;

/** Characters of a path that `new URL()` would change: dot segments, escapes, backslashes. */
const NEEDS_PARSING = /\/\.|%|\\|[^\x21-\x7e]/;

const failure = errorResponse;

/** Builds the fetch handler. */
export function buildApp(options: AppOptions): FetchHandler {
  const { log } = options;
  const router = new Router<Endpoint>();
  for (const route of options.routes) {
    const answer = endpoint(route, options);
    router.add(
      route.method.operation,
      route.method.url,
      options.instrument ? options.instrument(route, answer) : answer,
    );
  }

  const failed = (request: Request, path: string, error: unknown): Response => {
    if (error instanceof HttpError) return failure(error.status, error.message);
    const where = `${request.method} ${path}`;
    if (error instanceof Deno.errors.NotCapable) {
      log.error(`permission denied in ${where}: ${describeError(error).split("\n")[0]}`);
    } else {
      log.error(
        `${where} failed: ${
          error instanceof Error && error.stack ? error.stack : describeError(error)
        }`,
      );
    }
    return failure(500, "internal server error");
  };

  const allowed = new WeakMap<Leaf<Endpoint>, string>();
  const notAllowed = (request: Request, leaf: Leaf<Endpoint>): Response => {
    let allow = allowed.get(leaf);
    if (allow === undefined) {
      const operations = [...leaf.byOperation.keys()];
      if (operations.includes("GET")) operations.push("HEAD");
      allow = operations.join(", ");
      allowed.set(leaf, allow);
    }
    const response = failure(405, `${request.method} is not allowed on ${leaf.url}; use ${allow}`);
    response.headers.set("allow", allow);
    return response;
  };

  // A miss costs no more than a hit: no promise, no URL object, one prebuilt answer shape.
  const fallback = (request: Request, path: string): Response | Promise<Response> => {
    if (request.method === "GET" || request.method === "HEAD") {
      // The URL parser resolves dot segments (also encoded ones) and backslashes before static
      // lookup; a path with none of those (or of anything it would escape) is already its own
      // pathname.
      const pathname = NEEDS_PARSING.test(path) ? new URL(request.url).pathname : path;
      const served = options.statics.serve(request, pathname);
      if (served !== undefined) return served;
    }
    return failure(404, `no route for ${request.method} ${path}`);
  };

  return (request) => {
    const url = request.url;
    const start = url.indexOf("/", url.indexOf("://") + 3);
    const query = start < 0 ? -1 : url.indexOf("?", start);
    const path = start < 0 ? "/" : query < 0 ? url.slice(start) : url.slice(start, query);
    const match = router.find(path);
    if (match === undefined) {
      try {
        const answer = fallback(request, path);
        return answer instanceof Promise ? answer.catch((e) => failed(request, path, e)) : answer;
      } catch (error) {
        return failed(request, path, error);
      }
    }
    const { leaf, values } = match;
    const operation = request.method;
    const handle = leaf.byOperation.get(operation) ??
      (operation === "HEAD" ? leaf.byOperation.get("GET") : undefined);
    if (handle === undefined) return notAllowed(request, leaf);
    const params: Record<string, string> = {};
    for (let i = 0; i < values.length; i++) params[leaf.params[i]] = values[i];
    try {
      const answer = handle(request, path, params, query < 0 ? "" : url.slice(query));
      return answer instanceof Promise ? answer.catch((e) => failed(request, path, e)) : answer;
    } catch (error) {
      return failed(request, path, error);
    }
  };
}

/** The endpoint of one route: availability, auth, body limit, then the call. */
function endpoint(route: Route, options: AppOptions): Endpoint {
  const { method, slice } = route;
  const inQuery = QUERY_OPERATIONS.has(method.operation);
  const maxSize = method.maxBodySize ?? options.maxBodySize;
  const auth = method.enforceAuth ? options.auth : undefined;
  const invoker = new Invoker(route, options.log);
  const forward = route.handler.forward;

  const unavailable = (): Response => {
    const internals = slice[INTERNALS];
    const why = internals.failure;
    const message = why
      ? `slice ${slice.name} failed: ${why}`
      : `slice ${slice.name} is not started (${slice.state})`;
    // A sandbox that restarts says when to come back; anything else may be down for good.
    const retry = internals.retryAfter();
    return retry === undefined
      ? failure(503, message)
      : failure(503, message, { "retry-after": String(retry) });
  };

  const call = (
    request: Request,
    path: string,
    params: Record<string, string>,
    search: string,
    body: string,
  ): Response | Promise<Response> => {
    const outcome = invoker.invoke({
      method: request.method,
      path,
      params,
      search,
      body,
      request,
    });
    return outcome instanceof Promise ? outcome.then(toResponse) : toResponse(outcome as Outcome);
  };

  const withBody = async (
    request: Request,
    path: string,
    params: Record<string, string>,
  ): Promise<Response> => {
    if (auth) await auth.check(request, method.clientTypes);
    if (forward) {
      return await forward(request, params, await readBody(request, options.bodyTimeout, maxSize));
    }
    return await call(
      request,
      path,
      params,
      "",
      await readText(request, options.bodyTimeout, maxSize),
    );
  };

  const authorised = async (
    request: Request,
    path: string,
    params: Record<string, string>,
    search: string,
  ): Promise<Response> => {
    await auth!.check(request, method.clientTypes);
    if (forward) return await forward(request, params);
    return await call(request, path, params, search, "");
  };

  return (request, path, params, search) => {
    if (slice.state !== "started") return unavailable();
    if (!inQuery) return withBody(request, path, params);
    if (auth) return authorised(request, path, params, search);
    if (forward) return forward(request, params);
    return call(request, path, params, search, "");
  };
}
