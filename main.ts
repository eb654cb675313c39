/**
 * The command line: `deno task serve [--config FILE] [--config-dir DIR] [--port N]
 * [--log-level LEVEL]` (src/cli.ts, also published as `jsr:@inmanta/server/cli`).
 *
 * @module
 */
import { runCli } from "./src/cli.ts";

if (import.meta.main) await runCli(Deno.args);
