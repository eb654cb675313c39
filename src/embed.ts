/**
 * Embedding the server: `Server`, configuration loading and the INI parser, for programs that
 * run a server themselves (the command line in main.ts is one).
 *
 * @example
 * ```ts
 * import { loadConfig, Server } from "@inmanta/server/server";
 *
 * const server = new Server({ config: await loadConfig() });
 * await server.start();
 * await server.stop();
 * ```
 *
 * Everything authors import from `@inmanta/server` is exported here too.
 *
 * @module
 */
export * from "./mod.ts";
export { convertOption, envName } from "./config/config.ts";
export { parseIni, serialiseIni } from "./config/ini.ts";
export { loadConfig, type LoadOptions } from "./config/load.ts";
export type { ExtensionSpec, RemotePackage } from "./extensions/discovery.ts";
export type { Isolation, LoadedExtension } from "./extensions/module.ts";
export { parseLogFormat, parseLogLevel } from "./log.ts";
export {
  SANDBOX_STATES,
  SandboxMetrics,
  type SandboxReport,
  type SandboxSample,
  type SandboxState,
} from "./metrics/sandboxes.ts";
export { Server, type ServerOptions, type ServerState } from "./server.ts";
