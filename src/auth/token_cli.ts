/**
 * `deno task token --client-type api [--client-type agent] [--config FILE]`: prints a token for
 * an operator, signed with the configured HS256 key.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { InmantaError } from "../errors.ts";
import { issueToken } from "./auth.ts";
import { registerAuthOptions } from "./options.ts";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "client-type": { type: "string", multiple: true },
      config: { type: "string" },
      "config-dir": { type: "string" },
    },
  });
  const types = (values["client-type"] ?? []).flatMap((t) => t.split(",")).filter(Boolean);
  if (types.length === 0) {
    console.error("usage: deno task token --client-type api [--client-type agent] [--config FILE]");
    Deno.exit(2);
  }
  try {
    const config = await loadConfig({ configFile: values.config, configDir: values["config-dir"] });
    registerAuthOptions(config);
    console.log(await issueToken(config, types));
  } catch (error) {
    if (!(error instanceof InmantaError)) throw error;
    console.error(`token: ${error.message}`);
    Deno.exit(1);
  }
}
