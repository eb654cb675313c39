/**
 * The HTTP application: API methods routed by hono, arguments decoded and validated, answers
 * in the `{"data": ...}` / `{"message": ...}` envelopes, then static content.
 *
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { describeError, HttpError } from "../errors.ts";
import type { Logger } from "../log.ts";
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
}

/** A request handler, as Deno.serve takes it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

type Shape = Record<string, z.ZodType>;

/** Unwraps optional/default/nullable wrappers to see whether a field is an array. */
function isArraySchema(schema: z.ZodType): boolean {
  let current: z.ZodType | undefined = schema;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current instanceof z.ZodArray) return true;
    current = (current as unknown as { _zod: { def: { innerType?: z.ZodType } } })._zod.def
      .innerType;
  }
  return false;
}

function issueText(error: z.ZodError): string {
  return error.issues.slice(0, 5).map((issue) => {
    const field = issue.path.map(String).join(".");
    return field
      ? `invalid argument '${field}': ${issue.message}`
      : `invalid arguments: ${issue.message}`;
  }).join("; ");
}

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
  app.notFound((c) => failure(404, `no route for ${c.req.method} ${c.req.path}`));

  const operationsByUrl = new Map<string, Set<string>>();
  for (const route of options.routes) {
    const { method } = route;
    operationsByUrl.set(
      method.url,
      (operationsByUrl.get(method.url) ?? new Set()).add(method.operation),
    );
    const shape: Shape = method.args instanceof z.ZodObject ? method.args.shape : {};
    const arrayKeys = new Set(Object.keys(shape).filter((k) => isArraySchema(shape[k])));
    const inQuery = QUERY_OPERATIONS.has(method.operation);
    const handlers: MiddlewareHandler[] = [];
    if (!inQuery) {
      const maxSize = method.maxBodySize ?? options.maxBodySize;
      handlers.push(bodyLimit({
        maxSize,
        onError: () => failure(413, `request body is larger than ${maxSize} bytes`),
      }));
    }
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
      if (route.handler.forward) return await route.handler.forward(c.req.raw);
      const raw: Record<string, unknown> | Response = inQuery
        ? decodeQuery(c.req.url, arrayKeys)
        : await decodeBody(c.req.raw);
      if (raw instanceof Response) return raw;
      Object.assign(raw, c.req.param());
      const parsed = await method.args.safeParseAsync(raw);
      if (!parsed.success) return failure(400, issueText(parsed.error));
      const request = c.req.raw;
      const data = await route.handler.call(parsed.data, {
        request,
        // Lazy: touching request.signal costs every request, and few handlers need it.
        get signal() {
          return request.signal;
        },
      });
      // A handler may answer for itself (the OpenAPI document is not enveloped).
      if (data instanceof Response) return data;
      return Response.json({ data: data ?? null }, { status: method.status });
    });
    app.on(method.operation, [method.url], ...(handlers as [MiddlewareHandler]));
  }
  // After every method, so that a 405 never shadows a route of another path.
  for (const [url, operations] of operationsByUrl) {
    const allow = [...operations, ...(operations.has("GET") ? ["HEAD"] : [])].join(", ");
    app.all(url, (c) => {
      const response = failure(405, `${c.req.method} is not allowed on ${url}; use ${allow}`);
      response.headers.set("allow", allow);
      return response;
    });
  }
  app.on(["GET", "HEAD"], "*", async (c) => {
    const pathname = new URL(c.req.url).pathname;
    return await options.statics.serve(c.req.raw, pathname) ?? c.notFound();
  });
  return app.fetch;
}

function decodeQuery(url: string, arrayKeys: Set<string>): Record<string, unknown> {
  const params = new URL(url).searchParams;
  const out: Record<string, unknown> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    out[key] = values.length > 1 || arrayKeys.has(key) ? values : values[0];
  }
  return out;
}

async function decodeBody(request: Request): Promise<Record<string, unknown> | Response> {
  const text = await request.text();
  if (text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    return failure(400, `request body is not valid JSON: ${describeError(error)}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return failure(400, "request body must be a JSON object of arguments");
  }
  return body as Record<string, unknown>;
}
