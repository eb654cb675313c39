/**
 * What wraps every request the application answers: its id (taken or made, then echoed in
 * `X-Request-Id`), the async context that carries the id into log lines, and, when
 * `log.access_log` is on, one access-log line.
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { ROUTED } from "./metrics/routes.ts";
import { REQUEST_ID_HEADER, requestIdOf, runWithRequestId } from "./request_id.ts";

/** A request handler, as Deno.serve takes it. */
export type Handler = (request: Request) => Response | Promise<Response>;

/** Sets the id header; a response with immutable headers (`Response.redirect`) is copied. */
function tagged(response: Response, id: string): Response {
  try {
    response.headers.set(REQUEST_ID_HEADER, id);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.set(REQUEST_ID_HEADER, id);
    return copy;
  }
}

/**
 * Wraps `app`: each request runs under its id and its response carries it. With `access`, each
 * answer is also logged (method, route template, status, duration, extension) on that logger.
 */
export function withRequestIds(app: Handler, access?: Logger): Handler {
  if (access) return withAccessLog(app, access);
  return (request) => {
    const id = requestIdOf(request);
    const answer = runWithRequestId(id, app, request);
    if (answer instanceof Promise) return answer.then((response) => tagged(response, id));
    return tagged(answer, id);
  };
}

function withAccessLog(app: Handler, access: Logger): Handler {
  const log = (request: Request, id: string, status: number, began: number) => {
    const route = ROUTED.get(request);
    const ms = Math.round((performance.now() - began) * 1000) / 1000;
    const routeName = route?.route ?? "-";
    const extension = route?.extension ?? "-";
    access.log(
      "info",
      `${request.method} ${routeName} ${status} ${ms}ms ${extension}`,
      id,
      { method: request.method, route: routeName, status, duration_ms: ms, extension },
    );
  };
  return (request) => {
    const began = performance.now();
    const id = requestIdOf(request);
    const answer = runWithRequestId(id, app, request);
    if (answer instanceof Promise) {
      return answer.then((response) => {
        log(request, id, response.status, began);
        return tagged(response, id);
      });
    }
    log(request, id, answer.status, began);
    return tagged(answer, id);
  };
}
