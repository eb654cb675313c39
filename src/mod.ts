/**
 * The public API of the Inmanta server for Deno: what extensions import as `@inmanta/server`,
 * and what embeds or tests a server.
 *
 * @example
 * ```ts
 * import { type ApplicationContext, ServerSlice } from "@inmanta/server";
 *
 * class GreeterSlice extends ServerSlice {
 *   override getDependencies(): string[] { return ["core.server"]; }
 * }
 *
 * export function setup(application: ApplicationContext): void {
 *   application.registerSlice(new GreeterSlice("new_extension.greeter"));
 * }
 * ```
 *
 * @module
 */
export { z } from "zod";
export type { ApplicationContext } from "./application.ts";
export {
  Config,
  convertOption,
  envName,
  type EnvReader,
  type OptionSpec,
  type OptionType,
  type OptionValue,
  type RegisteredOption,
} from "./config/config.ts";
export { type IniDocument, type IniValue, parseIni, serialiseIni } from "./config/ini.ts";
export { loadConfig, type LoadOptions } from "./config/load.ts";
export {
  ConfigError,
  ExtensionError,
  HttpError,
  InmantaError,
  ProtocolError,
  SliceError,
} from "./errors.ts";
export type { ExtensionSpec } from "./extensions/discovery.ts";
export type { Isolation, LoadedExtension } from "./extensions/module.ts";
export { type Feature, FeatureManager } from "./features.ts";
export { Logger, type LogLevel, type LogRecord, parseLogLevel } from "./log.ts";
export {
  handle,
  type HandleDecorator,
  type HandlerFunction,
  method,
  type MethodDefinition,
  type MethodOptions,
  type Operation,
  type RequestContext,
} from "./protocol/method.ts";
export type { ScheduledTaskInfo, ScheduleOptions } from "./scheduler/scheduler.ts";
export { Server, type ServerOptions, type ServerState } from "./server.ts";
export { ServerSlice, type SliceServer, type SliceStatus } from "./slices/slice.ts";
export { type Remote, service } from "./slices/services.ts";
export { PRODUCT, VERSION } from "./version.ts";
export { Client, ClientError, type ClientOptions } from "./client.ts";
export { streaming } from "./http/transport.ts";
export {
  assertDenied,
  type Denial,
  deniedAccess,
  startTestServer,
  type TestExtension,
  type TestServer,
  type TestServerOptions,
} from "./testing.ts";
