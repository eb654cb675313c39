/**
 * `deno task registry`: a local JSR registry for air-gapped sites and offline authoring. It
 * serves a folder of packages and this checkout as `@inmanta/server`, and copies extension
 * packages into that folder (`publish`). Point Deno at it with `JSR_URL=http://H:N`.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { VERSION } from "../version.ts";
import { publishTo, PublishError, serveRegistry } from "./registry.ts";

const USAGE = `Usage:
  deno task registry [DIR] [--port N] [--hostname H]
      serve the packages in DIR (default: registry/ in this checkout), and this checkout as
      @inmanta/server@${VERSION}; packages added to DIR are served without a restart
  deno task registry publish PACKAGE_DIR [--to DIR]
      copy the package in PACKAGE_DIR (its deno.json name, version, publish.include) into DIR

Then run Deno with JSR_URL=http://H:N (default http://127.0.0.1:4873).`;

const PROJECT = fileURLToPath(new URL("../../", import.meta.url));

/** Paths on the command line are the user's, not the checkout's (where `deno task` runs). */
function userPath(path: string): string {
  return resolve(Deno.env.get("INIT_CWD") ?? Deno.cwd(), path);
}

function fail(message: string): never {
  console.error(`registry: ${message}`);
  Deno.exit(2);
}

/** The checkout as a package: its deno.json `publish.include`. */
async function ownPackage() {
  const config = JSON.parse(await Deno.readTextFile(join(PROJECT, "deno.json")));
  return {
    name: config.name as string,
    version: config.version as string,
    dir: PROJECT,
    include: config.publish?.include as string[] | undefined,
  };
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        port: { type: "string", default: "4873" },
        hostname: { type: "string", default: "127.0.0.1" },
        to: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    fail(`${(error as Error).message.split("\n")[0]} (see --help)`);
  }
  const { values, positionals } = parsed;
  const defaultDir = join(PROJECT, "registry");
  if (values.help) {
    console.log(USAGE);
  } else if (positionals[0] === "publish") {
    if (positionals.length !== 2) fail("publish needs one PACKAGE_DIR (see --help)");
    const to = values.to ? userPath(values.to) : defaultDir;
    try {
      const { name, version, dir } = await publishTo(to, userPath(positionals[1]));
      console.log(`published ${name}@${version} into ${dir}`);
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      fail(error.message);
    }
  } else {
    if (positionals.length > 1) fail("one DIR at most (see --help)");
    if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
      fail(`--port ${values.port}: not a port number`);
    }
    const dir = positionals[0] ? userPath(positionals[0]) : defaultDir;
    await Deno.mkdir(dir, { recursive: true });
    const registry = await serveRegistry(dir, {
      port: Number(values.port),
      hostname: values.hostname,
      onRequest: (path) => console.error(`GET ${path}`),
      extra: [await ownPackage()],
    });
    console.error(`serving ${dir} and @inmanta/server@${VERSION} at ${registry.url}`);
    console.error(`use it with: JSR_URL=${registry.url}`);
  }
}
