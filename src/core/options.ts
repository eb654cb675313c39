/**
 * The options core declares.
 *
 * @module
 */
import type { Config } from "../config/config.ts";

/** Registers the `server` section's options with their defaults and help. */
export function registerCoreOptions(config: Config): void {
  config.registerDefaultOptions("server", {
    enabled_extensions: {
      type: "list",
      default: [],
      help: "comma-separated names of the extensions to load; core is always loaded",
    },
    extension_path: {
      type: "string",
      default: "extensions",
      help: "colon-separated folders that hold inmanta_ext/<name>/extension.ts",
    },
    bind_address: {
      type: "list",
      default: ["127.0.0.1"],
      help: "comma-separated addresses to listen on",
    },
    package_cache: {
      type: "string",
      default: "data/packages",
      help:
        "folder where version lists, manifests and files of JSR/https packages are kept, so the server starts offline",
    },
    bind_port: { type: "int", default: 8888, help: "port to listen on; 0 picks a free one" },
    shutdown_timeout: {
      type: "duration",
      default: 10,
      help: "seconds for prestop and stop of all slices before the rest is abandoned",
    },
    slice_start_timeout: {
      type: "duration",
      default: 60,
      help: "seconds each slice's prestart and start may take",
    },
    slice_stop_timeout: {
      type: "duration",
      default: 10,
      help: "seconds each slice's prestop and stop (with its background tasks) may take",
    },
    request_body_timeout: {
      type: "duration",
      default: 30,
      help: "seconds a client has to send a request body; slower ones get 408",
    },
    max_body_size: {
      type: "int",
      default: 10 * 1024 * 1024,
      help: "largest request body in bytes; larger ones get 413",
    },
    log_level: { type: "string", default: "info", help: "debug, info, warning or error" },
    isolation: {
      type: "string",
      default: "process",
      help:
        "default isolation of extensions: process (a deno subprocess each), worker (a Worker each) or none (in-process)",
    },
    boot_failure: {
      type: "string",
      default: "abort",
      help:
        "abort: an extension that fails to load or start stops start-up; continue: it is reported failed and the rest serves",
    },
    ssl_cert_file: { type: "string", default: "", help: "PEM certificate: serve HTTPS" },
    ssl_key_file: { type: "string", default: "", help: "PEM private key of ssl_cert_file" },
    sandbox_heartbeat_timeout: {
      type: "duration",
      default: 5,
      help:
        "a sandboxed extension silent this long (a busy loop) is failed and its endpoints answer 503",
    },
    sandbox_log_rate: {
      type: "int",
      default: 1000,
      help: "log records per second a sandboxed extension may write; more are dropped and counted",
    },
    metrics: {
      type: "bool",
      default: true,
      help:
        "count API requests per route for /metrics and the console; off: /metrics has only process, task and sandbox figures",
    },
    metrics_open: {
      type: "bool",
      default: false,
      help: "true: /metrics answers without a token even when server.auth is on",
    },
    restart: {
      type: "string",
      default: "never",
      help:
        "never, or on-failure: a process sandbox that fails after it started is started again, with backoff (1 s doubling to 60 s)",
    },
    restart_max_failures: {
      type: "int",
      default: 5,
      help:
        "with restart = on-failure: after this many failures in restart_window the extension stays failed",
    },
    restart_window: {
      type: "duration",
      default: 300,
      help: "seconds in which restart_max_failures failures leave an extension failed",
    },
    sandbox_request_timeout: {
      type: "duration",
      default: 30,
      help: "a request a sandboxed extension has not answered in this time gets 503",
    },
  });
  config.registerDefaultOptions("log", {
    format: {
      type: "string",
      default: "text",
      help: "text, or json: one object per line with time, level, logger, message and request_id",
    },
    access_log: {
      type: "bool",
      default: false,
      help: "one line per answered request: method, route template, status, duration, extension",
    },
  });
}
