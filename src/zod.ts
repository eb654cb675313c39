/**
 * The `z` the server validates with: one zod instance for the server and its extensions, so
 * that the schemas an extension declares are the ones the server parses and documents. Types of
 * a schema: `Output<typeof schema>` and `Input<typeof schema>` from `@inmanta/server`.
 *
 * @example
 * ```ts
 * import { z } from "@inmanta/server/zod";
 *
 * const Item = z.object({ name: z.string().min(1) });
 * ```
 *
 * @module
 */
import { z as zod } from "zod";

/** zod (npm `zod`, version pinned by the server), the same instance the server uses. */
export const z: typeof zod = zod;
