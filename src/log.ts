/**
 * A small levelled logger writing one line per record to stderr, as text or as JSON
 * (`log.format`). The server and its tests share it; tests capture records with
 * {@link Logger.capture} instead of scraping stderr. A record written while a request is handled
 * carries that request's id.
 *
 * @module
 */
import { currentRequestId } from "./request_id.ts";

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
  /** The id of the request being handled when the record was written. */
  requestId?: string;
  /** Structured fields (the access log's method, route, status...); JSON output lists them. */
  fields?: Record<string, string | number>;
}

/** How lines are written: `text` for people, `json` (one object per line) for collectors. */
export type LogFormat = "text" | "json";

/** Parses `log.format`. */
export function parseLogFormat(value: string): LogFormat {
  const v = value.trim().toLowerCase();
  if (v === "text" || v === "json") return v;
  throw new RangeError(`unknown log format '${value}' (use text or json)`);
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
  format: LogFormat;
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
    this.#state = state ?? { level: LEVELS[level], format: "text", sinks: [] };
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

  /** Sets how lines are written, for this logger and every logger it shares state with. */
  setFormat(format: LogFormat): void {
    this.#state.format = format;
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

  /**
   * Writes a record. `requestId` defaults to the request being handled; a sandbox's lines,
   * which arrive outside that request's context, pass the id they were written under, or `null`
   * for none.
   */
  log(
    level: LogLevel,
    message: string,
    requestId: string | null | undefined = currentRequestId(),
    fields?: Record<string, string | number>,
  ): void {
    const record: LogRecord = { level, source: this.#source, message };
    if (typeof requestId === "string") record.requestId = requestId;
    if (fields !== undefined) record.fields = fields;
    for (const sink of this.#state.sinks) sink(record);
    if (LEVELS[level] < this.#state.level) return;
    console.error(this.#state.format === "json" ? jsonLine(record) : textLine(record));
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

function textLine({ level, source, message, requestId }: LogRecord): string {
  const id = requestId === undefined ? "" : ` [${requestId}]`;
  return `${level.toUpperCase().padEnd(7)} ${source}${id}: ${message}`;
}

/** One JSON object: `time`, `level`, `logger`, `message`, `request_id`, then any fields. */
function jsonLine({ level, source, message, requestId, fields }: LogRecord): string {
  return JSON.stringify({
    time: new Date().toISOString(),
    level: level.toUpperCase(),
    logger: source,
    message,
    ...(requestId === undefined ? {} : { request_id: requestId }),
    ...fields,
  });
}
