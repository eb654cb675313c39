/**
 * The example extension's API: each method declared once, handled by the slice in extension.ts
 * and called by clients (tests/kit_test.ts). Not re-exported by extension.ts, so JSR asks for no
 * spelled-out types here: zod infers them.
 *
 * @module
 */
import { method } from "@inmanta/server";
import { z } from "@inmanta/server/zod";

/** `GET /api/v2/greeting/:name?shout=true` answers `{"data": {"message": "hello <name>"}}`. */
export const greet = method({
  path: "/greeting/:name",
  operation: "GET",
  apiVersion: 2,
  args: z.object({ name: z.string().min(1), shout: z.stringbool().default(false) }),
  returns: z.object({ message: z.string() }),
  clientTypes: ["api"],
  summary: "Greet someone",
});

/** `GET /api/v2/greetings` answers how many greetings were served, ever (kept in the database). */
export const greetings = method({
  path: "/greetings",
  operation: "GET",
  apiVersion: 2,
  returns: z.object({ total: z.number() }),
  clientTypes: ["api"],
  summary: "How many greetings this server has served, across restarts",
});
