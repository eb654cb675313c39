/**
 * The HTTP application: API methods routed by hono, arguments decoded and validated, answers
 * in the `{"data": ...}` / `{"message": ...}` envelopes, then static content.
 *
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Context, MiddlewareHandler } from "hono";
import type { Authenticator } from "../auth/auth.ts";
import { readBody } from "./body.ts";

const DECODER = new TextDecoder();
import { describeError, HttpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Invoker, toResponse } from "../protocol/invoke.ts";
import { QUERY_OPERATIONS } from "../protocol/method.ts";
import type { Route } from "../protocol/routes.ts";
import { INTERNALS } from "../slices/slice.ts";
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
}

/** A request handler, as Deno.serve takes it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

function failure(status: number, message: string): Response {
  return Response.json({ message }, { status });
}

/** Builds the fetch handler. */
export function buildApp(options: AppOptions): FetchHandler {
  const app = new Hono({ strict: false });

  app.onError((error, c) => {
    if (error instanceof HttpError) return failure(error.status, error.message);
    if (error instanceof Deno.errors.NotCapable) {
      options.log.error(
        `permission denied in ${c.req.method} ${c.req.path}: ${
          describeError(error).split("\n")[0]
        }`,
      );
      return failure(500, "internal server error");
    }
    options.log.error(
      `${c.req.method} ${c.req.path} failed: ${
        error instanceof Error && error.stack ? error.stack : describeError(error)
      }`,
    );
    return failure(500, "internal server error");
  });

  const operationsByUrl = new Map<string, Set<string>>();
  for (const route of options.routes) {
    const { method } = route;
    operationsByUrl.set(
      method.url,
      (operationsByUrl.get(method.url) ?? new Set()).add(method.operation),
    );
    const inQuery = QUERY_OPERATIONS.has(method.operation);
    const handlers: MiddlewareHandler[] = [];
    if (!inQuery) {
      const maxSize = method.maxBodySize ?? options.maxBodySize;
      handlers.push(bodyLimit({
        maxSize,
        onError: () => failure(413, `request body is larger than ${maxSize} bytes`),
      }));
    }
    const invoker = new Invoker(route, options.log);
    handlers.push(async (c: Context) => {
      if (route.slice.status !== "started") {
        const why = route.slice[INTERNALS].failure;
        return failure(
          503,
          why
            ? `slice ${route.slice.name} failed: ${why}`
            : `slice ${route.slice.name} is not started (${route.slice.status})`,
        );
      }
      const request = c.req.raw;
      if (options.auth && method.enforceAuth) await options.auth.check(request, method.clientTypes);
      const forward = route.handler.forward;
      if (forward) return await forward(request, c.req.param());
      const url = request.url;
      const query = url.indexOf("?");
      return toResponse(
        await invoker.invoke({
          method: request.method,
          path: c.req.path,
          params: c.req.param(),
          search: inQuery && query >= 0 ? url.slice(query) : "",
          body: inQuery ? "" : DECODER.decode(await readBody(request, options.bodyTimeout)),
          request: () => request,
          signal: () => request.signal,
        }),
      );
    });
    app.on(method.operation, [method.url], ...(handlers as [MiddlewareHandler]));
  }
  // What no method matches goes to a second router, so that the API router holds only the
  // methods (a smaller match on every request): wrong operations on known paths (405), then
  // static content, then 404.
  const fallback = new Hono({ strict: false });
  const notFound = (c: Context) => failure(404, `no route for ${c.req.method} ${c.req.path}`);
  fallback.notFound(notFound);
  for (const [url, operations] of operationsByUrl) {
    const allow = [...operations, ...(operations.has("GET") ? ["HEAD"] : [])].join(", ");
    fallback.all(url, (c) => {
      const response = failure(405, `${c.req.method} is not allowed on ${url}; use ${allow}`);
      response.headers.set("allow", allow);
      return response;
    });
  }
  fallback.on(["GET", "HEAD"], "*", async (c) => {
    const pathname = new URL(c.req.url).pathname;
    return await options.statics.serve(c.req.raw, pathname) ?? notFound(c);
  });
  app.notFound((c) => fallback.fetch(c.req.raw));
  return app.fetch;
}
