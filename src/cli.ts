/**
 * The command line: `deno task serve [--config FILE] [--config-dir DIR] [--port N]
 * [--log-level LEVEL]`. SIGINT and SIGTERM shut down gracefully and exit 0; a start-up error
 * prints one line naming its cause and exits 1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Config, InmantaError, loadConfig, Logger, parseLogLevel, Server } from "./embed.ts";
import { abortedByBootFailure } from "./server.ts";
import { registerExtensionOptions } from "./extensions/loader.ts";

const USAGE = `Usage: deno task serve [options]

Runs the Inmanta server with the extensions enabled in its configuration.

Options:
  --config FILE       read FILE after the standard configuration files
  --config-dir DIR    read DIR/*.cfg (sorted) after --config
  --port N            listen on port N (overrides server.bind_port; 0 picks a free port)
  --log-level LEVEL   debug, info, warning or error (overrides server.log_level)
  -h, --help          show this help and exit

Configuration is read from /etc/inmanta/inmanta.cfg, /etc/inmanta/inmanta.d/*.cfg,
config/inmanta.cfg, config/inmanta.d/*.cfg, --config, --config-dir, then environment
variables INMANTA_<SECTION>_<OPTION>; later wins.`;

function fail(message: string): never {
  console.error(`inmanta: ${message}`);
  Deno.exit(1);
}

/**
 * Runs the command line: parses `args`, starts the server, and shuts it down on SIGINT or
 * SIGTERM (exit 0); a start-up error prints one line and exits 1.
 *
 * @param args the command line, as `Deno.args`
 */
export async function runCli(args: string[] = Deno.args): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string" },
        "config-dir": { type: "string" },
        port: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(`${(error as Error).message.split("\n")[0]} (see --help)`);
  }
  if (values.help) {
    const config = new Config();
    new Server({ config });
    // Each enabled extension registers these in its own section; list them once, generically.
    registerExtensionOptions(config, "<name>");
    const options = config.registeredOptions().map((o) =>
      `  ${`${o.section}.${o.name}`.padEnd(34)} ${o.help} (${o.type}, default ${
        JSON.stringify(o.default)
      })`
    );
    console.log(`${USAGE}\n\nServer options:\n${options.join("\n")}`);
    return;
  }

  const logger = new Logger();
  let server: Server;
  try {
    const config = await loadConfig({ configFile: values.config, configDir: values["config-dir"] });
    if (values.port !== undefined) {
      if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
        fail(`--port ${values.port}: not a port number (0-65535)`);
      }
      config.override("server", "bind_port", values.port, "--port");
    }
    if (values["log-level"] !== undefined) {
      config.override("server", "log_level", values["log-level"], "--log-level");
    }
    server = new Server({ config, logger });
    try {
      logger.setLevel(parseLogLevel(config.string("server", "log_level")));
    } catch (error) {
      fail(`server.log_level: ${(error as Error).message}`);
    }
    await server.start();
  } catch (error) {
    if (error instanceof InmantaError) {
      // An extension's failure names the policy that made it stop start-up.
      const policy = abortedByBootFailure(error) ? " (boot_failure = abort)" : "";
      fail(`start-up failed${policy}: ${error.message}`);
    }
    logger.debug((error as Error).stack ?? String(error));
    fail(`start-up failed: ${(error as Error).message.split("\n")[0]}`);
  }
  logger.info(`server running at ${server.url}`);

  let stopping = false;
  const shutdown = async (signal: Deno.Signal) => {
    // `deno task` forwards the terminal's signal, so one Ctrl-C may arrive twice; shutdown is
    // bounded by server.shutdown_timeout anyway, so repeats are ignored.
    if (stopping) return;
    stopping = true;
    logger.info(`${signal} received: shutting down`);
    await server.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.main) await runCli();
