/**
 * The method table: which slice handles which method. A method handled twice, or exported by an
 * extension and handled by nobody, is a start-up error.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { ServerSlice } from "../slices/slice.ts";
import { type BoundHandler, handlersOf, type MethodDefinition } from "./method.ts";

/** One API method with the slice that handles it. */
export interface Route {
  /** The method. */
  method: MethodDefinition;
  /** Its handler. */
  handler: BoundHandler;
  /** The slice the handler belongs to; requests get 503 until it started. */
  slice: ServerSlice;
}

const key = (m: MethodDefinition) => `${m.operation} ${m.url}`;

/** Collects the routes of `slices` and checks them against the methods extensions export. */
export function collectRoutes(
  slices: readonly ServerSlice[],
  extensions: readonly { name: string; methods: readonly MethodDefinition[] }[],
): Route[] {
  const routes: Route[] = [];
  const byKey = new Map<string, ServerSlice>();
  for (const slice of slices) {
    for (const handler of handlersOf(slice)) {
      const other = byKey.get(key(handler.method));
      if (other) {
        throw new ProtocolError(
          "method.duplicate_handler",
          `method ${key(handler.method)} is handled by two slices: ${other.name} and ${slice.name}`,
        );
      }
      byKey.set(key(handler.method), slice);
      routes.push({ method: handler.method, handler, slice });
    }
  }
  for (const extension of extensions) {
    for (const method of extension.methods) {
      if (!byKey.has(key(method))) {
        throw new ProtocolError(
          "method.unhandled",
          `method ${
            key(method)
          } exported by extension ${extension.name} has no handler: decorate a slice method with @handle()`,
        );
      }
    }
  }
  return routes;
}
