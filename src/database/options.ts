/**
 * The `database` section and `server.state_dir`: Inmanta's option names for the PostgreSQL
 * connection, and what the embedded database needs.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { ConfigError } from "../errors.ts";

/** Registers the database options with their defaults and help. */
export function registerDatabaseOptions(config: Config): void {
  config.registerDefaultOptions("server", {
    state_dir: {
      type: "string",
      default: "data",
      help: "where the embedded database (one file per extension) and other server state live",
    },
  });
  config.registerDefaultOptions("database", {
    host: {
      type: "string",
      default: "",
      help: "empty: the embedded database; set: PostgreSQL at this host (or unix socket folder)",
    },
    port: { type: "int", default: 5432, help: "PostgreSQL port" },
    name: { type: "string", default: "inmanta", help: "PostgreSQL database name" },
    username: {
      type: "string",
      default: "inmanta",
      help: "PostgreSQL role of the server: creates a role and a schema per extension",
    },
    password: { type: "string", default: "", help: "password of database.username", secret: true },
    connection_pool_max_size: {
      type: "int",
      default: 10,
      help: "PostgreSQL connections per extension and server instance",
    },
    statement_timeout: {
      type: "duration",
      default: 30,
      help: "seconds a statement may run before it is stopped (both engines)",
    },
    lease_seconds: {
      type: "duration",
      default: 30,
      help: "seconds without a heartbeat after which an instance's cluster tasks go to another",
    },
  });
}

/** The database settings, read and checked. */
export interface DatabaseSettings {
  /** `embedded` (node:sqlite files) or `postgresql`. */
  engine: "embedded" | "postgresql";
  /** Folder of the embedded files. */
  stateDir: string;
  /** PostgreSQL host, port, database, admin role and password. */
  host: string;
  /** PostgreSQL port. */
  port: number;
  /** PostgreSQL database. */
  name: string;
  /** The server's role. */
  username: string;
  /** Its password; never logged nor shown. */
  password: string;
  /** Connections per extension. */
  poolSize: number;
  /** Seconds per statement. */
  statementTimeout: number;
  /** Seconds of silence before an instance's cluster tasks move. */
  leaseSeconds: number;
}

/**
 * Reads the database settings.
 *
 * @throws {ConfigError} naming the option when a value is out of range
 */
export function readDatabaseSettings(config: Config): DatabaseSettings {
  const positive = (option: string) => {
    const value = config.duration("database", option);
    if (!(value > 0)) {
      throw new ConfigError("config.value", `database.${option} = ${value}: must be above 0`);
    }
    return value;
  };
  const poolSize = config.int("database", "connection_pool_max_size");
  if (poolSize < 1) {
    throw new ConfigError(
      "config.value",
      `database.connection_pool_max_size = ${poolSize}: must be at least 1`,
    );
  }
  const host = config.string("database", "host");
  return {
    engine: host ? "postgresql" : "embedded",
    stateDir: config.string("server", "state_dir"),
    host,
    port: config.int("database", "port"),
    name: config.string("database", "name"),
    username: config.string("database", "username"),
    password: config.string("database", "password"),
    poolSize,
    statementTimeout: positive("statement_timeout"),
    leaseSeconds: positive("lease_seconds"),
  };
}
