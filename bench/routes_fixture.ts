/**
 * The 200 routes the micro-benchmarks dispatch to: `GET /api/v2/ext<e>/item<i>/:id` over 20
 * slices, each answering `{ id }`, as the load benchmark's extensions do.
 */
import { method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
import type { Route } from "../src/protocol/routes.ts";
import { INTERNALS } from "../src/slices/slice.ts";

/** Routes in the benchmarks. */
export const ROUTES = 200;

class Bench extends ServerSlice {
  constructor(i: number) {
    super(`ext${i}.bench`);
    this[INTERNALS].setStatus("started");
  }
}

/** {@link ROUTES} routes over 20 started slices, ready for `buildApp`. */
export function benchRoutes(): Route[] {
  return Array.from({ length: ROUTES }, (_, i) => {
    const m = method({
      path: `/ext${i % 20}/item${i}/:id`,
      operation: "GET",
      args: z.object({ id: z.string() }),
    });
    return {
      method: m,
      handler: { method: m, call: (args: unknown) => ({ id: (args as { id: string }).id }) },
      slice: new Bench(i % 20),
    };
  });
}
