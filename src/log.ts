/**
 * A small levelled logger writing one line per record to stderr. The server and its tests share
 * it; tests capture records with {@link Logger.capture} instead of scraping stderr.
 *
 * @module
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warning" | "error";

const LEVELS: Record<LogLevel | "silent", number> = {
  debug: 10,
  info: 20,
  warning: 30,
  error: 40,
  silent: 100,
};

/** One log record. */
export interface LogRecord {
  /** Severity of the record. */
  level: LogLevel;
  /** Who logged it: `server`, an extension or a slice name. */
  source: string;
  /** One line. */
  message: string;
}

/** Parses a level name (case-insensitive; `warn` and `critical` accepted as Python users write). */
export function parseLogLevel(value: string): LogLevel {
  const v = value.trim().toLowerCase();
  if (v === "warn") return "warning";
  if (v === "critical") return "error";
  if (v in LEVELS && v !== "silent") return v as LogLevel;
  throw new RangeError(`unknown log level '${value}' (use debug, info, warning or error)`);
}

interface LogState {
  level: number;
  sinks: ((record: LogRecord) => void)[];
}

/** Levelled logger; `child(source)` gives a logger that names its source in every line. */
export class Logger {
  readonly #state: LogState;
  readonly #source: string;

  /**
   * Makes a logger that writes at `level` and above.
   *
   * @param level least severe level written (`silent`: none; sinks still get every record)
   * @param source name written in each line
   */
  constructor(level: LogLevel | "silent" = "info", source = "server", state?: LogState) {
    this.#state = state ?? { level: LEVELS[level], sinks: [] };
    this.#source = source;
  }

  /** A logger that shares this one's level and sinks, naming another source. */
  child(source: string): Logger {
    return new Logger("info", source, this.#state);
  }

  /** Sets the least severe level written, for this logger and every logger it shares state with. */
  setLevel(level: LogLevel | "silent"): void {
    this.#state.level = LEVELS[level];
  }

  /** Hands every record (of any level) to `sink` from now on. */
  onRecord(sink: (record: LogRecord) => void): void {
    this.#state.sinks.push(sink);
  }

  /** Keeps every record (of any level) from now on in the returned array; for tests. */
  capture(): LogRecord[] {
    const records: LogRecord[] = [];
    this.#state.sinks.push((r) => records.push(r));
    return records;
  }

  /** Writes a record. */
  log(level: LogLevel, message: string): void {
    const record = { level, source: this.#source, message };
    for (const sink of this.#state.sinks) sink(record);
    if (LEVELS[level] < this.#state.level) return;
    console.error(`${level.toUpperCase().padEnd(7)} ${this.#source}: ${message}`);
  }

  /** Writes a debug record. */
  debug(message: string): void {
    this.log("debug", message);
  }
  /** Writes an info record. */
  info(message: string): void {
    this.log("info", message);
  }
  /** Writes a warning record. */
  warning(message: string): void {
    this.log("warning", message);
  }
  /** Writes an error record. */
  error(message: string): void {
    this.log("error", message);
  }
}
