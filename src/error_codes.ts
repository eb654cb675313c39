/**
 * Every error code the server raises, each with what it means: the one list. An error's `code`
 * is typed {@link ErrorCode}, so a code used anywhere but listed here does not type-check.
 *
 * @module
 */

/** Each code, with the cause it names. */
export const ERROR_CODES = {
  "config.auth": "the auth section is inconsistent (an algorithm without its key or JWKS file)",
  "config.boot_failure": "a boot_failure option is neither abort nor continue",
  "config.env_ambiguous": "an INMANTA_* variable matches two (section, option) pairs",
  "config.isolation": "an isolation option is not process, worker or none",
  "config.jwks": "the JWKS file of token validation cannot be read or parsed",
  "config.log_format": "log.format is neither text nor json",
  "config.memory_limit": "an extension's memory_limit is below 16 MiB",
  "config.missing": "a required option has no value",
  "config.not_found": "the file --config names does not exist",
  "config.option_conflict": "an option is registered twice with different types or defaults",
  "config.permissions": "an extension's permissions option names an unknown kind or a bad value",
  "config.read": "a configuration file cannot be read",
  "config.restart": "a restart option is not never or on-failure, or its limits are below one",
  "config.syntax": "an INI file has a syntax error (file and line named)",
  "config.tls": "ssl_cert_file and ssl_key_file are not set together, or one cannot be read",
  "config.value": "an option's value does not convert to its type or is out of range",
  "database.closed": "a statement was sent after the database was closed",
  "database.connect": "the database server cannot be reached",
  "database.lost": "the process running the embedded database ended",
  "database.migration": "one migration failed (it was rolled back)",
  "database.migrations": "registerMigrations got something other than migrations by name",
  "database.none": "a slice uses the database without core.database in its dependencies",
  "database.open": "the embedded database file cannot be opened",
  "database.provision": "an extension's role or schema cannot be created",
  "database.request": "a sandbox sent a database request that is malformed or not its own",
  "database.rollback": "the database records a migration this extension version does not have",
  "database.statement": "a statement failed",
  "database.timeout": "a statement ran past database.statement_timeout",
  "database.transaction_lost": "a transaction was rolled back under the caller (a crash)",
  "database.transaction_unknown": "a statement named a transaction that does not exist",
  "extension.core_range": "an extension's pinned @inmanta/server range does not hold this version",
  "extension.duplicate": "two extensions have the same name on the extension path",
  "extension.failed": "an extension's sandbox failed (crash, heap, silence, bad message)",
  "extension.feature_manager": "setFeatureManager was called twice or with something else",
  "extension.fetch": "a remote extension (JSR, https) cannot be fetched",
  "extension.import": "an extension's module cannot be imported",
  "extension.incompatible": "an extension's coreVersion does not match this server",
  "extension.integrity": "a fetched file does not match its recorded checksum",
  "extension.load_failed": "an extension reported a failure while loading",
  "extension.manifest": "an extension's deno.json or a package manifest is not valid",
  "extension.name": "an extension name is not a lower-case identifier",
  "extension.not_found": "an enabled extension is found nowhere on server.extension_path",
  "extension.permissions": "an extension's grant exceeds the server process's own permissions",
  "extension.setup": "an extension's module does not export a setup function",
  "extension.setup_failed": "an extension's setup threw",
  "extension.source": "an extension's source option is not a specifier the server can load",
  "extension.spawn": "an extension's sandbox could not be started",
  "extension.symlink": "an extension's folder holds a link that resolves outside it",
  "method.client_types":
    "a method's clientTypes is empty or names a type other than api, agent, compiler",
  "method.duplicate_handler": "two slices handle the same method",
  "method.handler": "@handle decorates something other than a public instance method",
  "method.invalid": "@handle got something other than a method made by method()",
  "method.operation": "a method's operation is not an HTTP method the server knows",
  "method.path": "a method's path does not start with / or has an invalid segment",
  "method.unhandled": "an extension exports a method no slice handles",
  "method.version": "a method's apiVersion is not a positive integer",
  "route.owned": "an extension claims a route another extension owns",
  "sandbox.error": "a sandboxed extension threw an error of a kind not named here",
  "sandbox.frame": "a process guest wrote bytes that are not a frame",
  "sandbox.message": "a guest sent a message that fails its schema",
  "sandbox.slice": "a guest named a slice that is not its own",
  "server.not_listening": "the server's URL was asked for before it listens",
  "server.state": "the server was started or stopped in the wrong state",
  "service.not_dependency": "a service call to a slice the caller does not depend on",
  "service.not_loaded": "a service call to a slice that is not loaded",
  "service.not_service": "a service call to a member not marked @service",
  "service.stopped": "a service call to a slice that stopped, failed or restarts",
  "slice.cron": "a cron expression is invalid",
  "slice.cycle": "the slices' dependencies form a cycle",
  "slice.database": "a slice read this.database before prestart or without core.database",
  "slice.duplicate": "two slices have the same name",
  "slice.feature_manager": "a slice read featureManager before it was registered",
  "slice.name": "a slice name is not <extension>.<slice>",
  "slice.not_found": "getSlice named a slice that is not loaded",
  "slice.owner": "an extension registered a slice named for another extension",
  "slice.service": "@service is used on something other than a method",
  "slice.start_failed": "a slice's prestart or start threw",
  "slice.start_timeout": "a slice's prestart or start ran past server.slice_start_timeout",
  "slice.too_many_tasks":
    "a slice passed its limit of scheduled tasks (10,000) or running background tasks (100,000)",
  "slice.transport_order": "a slice that serves endpoints starts after core.transport",
  "slice.type": "an extension registered something that is not a ServerSlice",
  "static.duplicate": "a static location is already served by another slice",
  "static.location": "a static location does not start with / or its folder is invalid",
  "static.owned": "an extension claims a static location another extension owns",
  "static.remote": "a sandboxed extension mounts a static folder fetched from JSR",
  "transport.listen": "the server cannot listen on its address and port",
} as const satisfies Record<string, string>;

/**
 * A listed code, `http.<status>` (an `HttpError` a handler throws) or `client.<status>` (an
 * answer with that status, as the typed client reports it).
 */
export type ErrorCode = keyof typeof ERROR_CODES | `http.${number}` | `client.${number}`;

/** Whether `code` is a listed code (a guest may send any string). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" &&
    (Object.hasOwn(ERROR_CODES, code) || /^(http|client)\.[1-5]\d\d$/.test(code));
}
