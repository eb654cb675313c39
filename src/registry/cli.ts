/**
 * `deno task registry DIR [--port N] [--hostname H]`: serves a folder of extension packages as a
 * JSR registry; point the server at it with `JSR_URL=http://H:N`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { serveRegistry } from "./registry.ts";

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "4873" }, hostname: { type: "string" } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error("usage: deno task registry DIR [--port N] [--hostname H]");
    Deno.exit(2);
  }
  const registry = await serveRegistry(positionals[0], {
    port: Number(values.port),
    hostname: values.hostname,
    onRequest: (path) => console.error(`GET ${path}`),
  });
  console.error(
    `serving ${positionals[0]} as a JSR registry at ${registry.url} (JSR_URL=${registry.url})`,
  );
}
