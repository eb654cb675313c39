/**
 * The API for extension authors: what an extension imports as `@inmanta/server`. Beside it, as
 * exports of the same package: `@inmanta/server/zod` (the `z` the server validates with),
 * `@inmanta/server/testing` (the test kit) and `@inmanta/server/server` (embedding a server).
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
// Loaded (not re-exported) with this module: a sandbox preloads mod.ts so that an extension's
// imports of the library need no read permission, and `@inmanta/server/zod` is one of them.
import "./zod.ts";
export type { ApplicationContext } from "./application.ts";
export type { Migration, Migrations } from "./database/migration_check.ts";

export {
  Config,
  type EnvReader,
  type OptionSpec,
  type OptionType,
  type OptionValue,
  type RegisteredOption,
} from "./config/config.ts";
export type { IniDocument, IniValue } from "./config/ini.ts";
export {
  ConfigError,
  ExtensionError,
  HttpError,
  InmantaError,
  ProtocolError,
  SliceError,
} from "./errors.ts";
export { ERROR_CODES, type ErrorCode } from "./error_codes.ts";
export { type Feature, FeatureManager } from "./features.ts";
export { type LogFormat, Logger, type LogLevel, type LogRecord } from "./log.ts";
export {
  handle,
  type HandleDecorator,
  type HandlerFunction,
  type Input,
  method,
  type MethodDefinition,
  type MethodOptions,
  type NoArgs,
  type Operation,
  type Output,
  type RequestContext,
  type Schema,
} from "./protocol/method.ts";
export type {
  CronOptions,
  ScheduledTaskInfo,
  ScheduleOptions,
  TaskFunction,
} from "./scheduler/scheduler.ts";
export {
  ServerSlice,
  type SliceServer,
  type SliceState,
  type SliceStatus,
  type StaticHandlerOptions,
} from "./slices/slice.ts";
export { type Remote, service } from "./slices/services.ts";
export { streaming } from "./http/transport.ts";
export { PRODUCT, VERSION } from "./version.ts";
