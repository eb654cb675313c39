/**
 * The messages between the server and a guest (an extension in a Worker or a subprocess), one
 * schema for every transport. The server trusts nothing a guest sends: {@link parseGuestMessage}
 * checks every message (shape, types, sizes, status codes, header names and values, log levels,
 * task lists) before the server acts on it, so a malformed one can only fail its sender.
 *
 * @module
 */
import { deserialize, serialize } from "node:v8";
import { z } from "zod";
import type { IniValue } from "../config/ini.ts";
import type { Feature } from "../features.ts";
import type { LogLevel } from "../log.ts";
import type { Operation } from "../protocol/method.ts";
import {
  type BackgroundCounts,
  MAX_SCHEDULED_TASKS,
  type ScheduledTaskInfo,
} from "../scheduler/scheduler.ts";
import { type ErrorCode, isErrorCode } from "../error_codes.ts";
import {
  ConfigError,
  ExtensionError,
  type InmantaError,
  ProtocolError,
  SliceError,
} from "../errors.ts";

/** A method as it crosses the boundary: its schemas as JSON Schema. */
export interface MethodDescriptor {
  operation: Operation;
  path: string;
  apiVersion: number;
  clientTypes: string[];
  summary: string;
  description: string;
  status: number;
  enforceAuth: boolean;
  maxBodySize: number | undefined;
  args: unknown;
  returns: unknown;
}

/** A slice as it crosses the boundary. */
export interface SliceDescriptor {
  name: string;
  dependencies: string[];
  dependedBy: string[];
  handles: MethodDescriptor[];
  /** The names of its methods marked `@service`. */
  services: string[];
  /** The static locations it declared before it was loaded (later ones come as `mount`). */
  mounts: { location: string; start: boolean }[];
}

/** An error as it crosses the boundary: no stack. */
export interface ErrorDescriptor {
  name: string;
  code: string | undefined;
  message: string;
}

/** Lifecycle phases the server asks of a guest's slice. */
export type SlicePhase = "prestart" | "start" | "prestop" | "stop";

/** Server → guest. */
export type ToGuest =
  | {
    t: "load";
    name: string;
    specifier: string;
    config: [string, [string, IniValue][]][];
    /** The `INMANTA_*` overrides this extension may read (see environment.ts). */
    env: Record<string, string>;
    /** From the extension's deno.json, read by the server. */
    version?: string;
    coreRange?: string;
    manifest?: string;
    /** Log records a second the server takes from it (`server.sandbox_log_rate`). */
    logRate: number;
  }
  /**
   * A lifecycle phase; `until` is the deadline (ms since epoch); with prestart, `slices` (every
   * loaded slice), `dialect` (its database's, when the extension has one) and `features` (the
   * server's feature manager's list, whoever set it).
   */
  | {
    t: "call";
    id: number;
    slice: string;
    op: SlicePhase;
    until: number;
    slices?: string[];
    dialect?: "sqlite" | "postgres";
    features?: Feature[];
  }
  /** What slice `slice`'s `getStatus()` returns; answered by `svcres`. */
  | { t: "status"; id: number; slice: string }
  /** Apply the extension's migrations (their code is in the guest); answered by `svcres`. */
  | { t: "migrate"; id: number; dialect: "sqlite" | "postgres"; version: string }
  /** The answer to a database request: `body` is a packed `DatabaseResponse`. */
  | { t: "dbres"; id: number; error?: string; body: ArrayBuffer | null }
  /** The server's reader of streamed response `id` wants its next chunk. */
  | { t: "pull"; id: number }
  /** The client of streamed response `id` went away (or the server is stopping). */
  | { t: "cancel"; id: number }
  /** The answer to a compatibility question: no error means compatible. */
  | { t: "compat"; error?: ErrorDescriptor }
  | {
    t: "req";
    id: number;
    method: string;
    url: string;
    headers: [string, string][];
    body: ArrayBuffer | null;
    /** The id of the request, for the guest's log lines while it handles it. */
    requestId?: string;
  }
  | {
    /** A call of an API method the server already routed: `key` is `<operation> <url>`. */
    t: "api";
    id: number;
    key: string;
    params: Record<string, string>;
    method: string;
    url: string;
    headers: [string, string][];
    body: ArrayBuffer | null;
    /** The id of the request, for the guest's log lines while it handles it. */
    requestId?: string;
  }
  /** Slice `from` calls service `member` of this guest's slice `to`; `body`: the arguments. */
  | { t: "svc"; id: number; from: string; to: string; member: string; body: ArrayBuffer }
  /** The answer to a service call this guest made: `body` is the result. */
  | { t: "svcres"; id: number; error?: string; body: ArrayBuffer | null };

/** Guest → server. */
export type FromGuest =
  | {
    t: "loaded";
    error?: ErrorDescriptor;
    /** The module could not be imported (it threw at top level, or is missing). */
    importFailed?: boolean;
    slices: SliceDescriptor[];
    methods: MethodDescriptor[];
    version?: string;
    /** Set when setup called setFeatureManager: the features it offers. */
    features?: Feature[];
    /** Whether setup registered migrations. */
    migrations?: boolean;
  }
  | { t: "done"; id: number; error?: ErrorDescriptor }
  /** A statement (or transaction step) for its own database: `body` is a packed request. */
  | { t: "db"; id: number; body: ArrayBuffer }
  /**
   * Before setup: the module's `coreVersion` (null when it has none, false when it is not a
   * string), for the server to check (semver stays out of guests).
   */
  | { t: "compat"; exported: string | null | false }
  | {
    t: "res";
    id: number;
    status: number;
    headers: [string, string][];
    body: ArrayBuffer | null;
    /**
     * The body follows in `chunk` messages, one per `pull`, then `end`: set for bodies of
     * unknown or large size, so that event streams and big files are not buffered.
     */
    stream?: boolean;
    /** The response was marked with `streaming()`: shutdown ends it instead of waiting. */
    longLived?: boolean;
  }
  | { t: "chunk"; id: number; body: ArrayBuffer }
  | { t: "end"; id: number; error?: string }
  | { t: "json"; id: number; status: number; json: string }
  | { t: "log"; level: LogLevel; source: string; message: string; requestId?: string }
  | { t: "mount"; slice: string; location: string; start: boolean }
  /**
   * Alive; `tasks` and `background` (each slice's background task counts) only when they
   * changed since the last beat; `usage`: what the guest says it uses (for metrics only: the
   * limits are enforced from outside).
   */
  | {
    t: "beat";
    tasks?: Record<string, ScheduledTaskInfo[]>;
    background?: Record<string, BackgroundCounts>;
    usage?: { cpuSeconds: number; rssBytes: number; heapUsedBytes: number };
  }
  /** A slice of this guest calls service `member` of slice `to`; `body`: the arguments. */
  | { t: "svc"; id: number; from: string; to: string; member: string; body: ArrayBuffer }
  /** The answer to a service call the server made into this guest. */
  | { t: "svcres"; id: number; error?: string; body: ArrayBuffer | null };

/** What crosses in one transfer: the messages as JSON, their bodies apart. */
export interface Batch {
  json: string;
  buffers: ArrayBuffer[];
}

/** Limits on what a guest may send, beyond which its message is invalid. */
export const LIMITS = {
  /** One batch (JSON and bodies together). */
  batchBytes: 64 * 1024 * 1024,
  /** A name: slice, log source, service member, extension version. */
  name: 256,
  /** One log line. */
  logLine: 16 * 1024,
  /** A URL location, an error message. */
  text: 8 * 1024,
  /** Headers of one response. */
  headers: 200,
  /** One header value. */
  headerValue: 16 * 1024,
  /** Scheduled tasks per slice: what the scheduler allows (a guest reporting more lies). */
  tasks: MAX_SCHEDULED_TASKS,
  /** Slices, methods, features of one extension. */
  items: 10_000,
} as const;

const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const name = z.string().max(LIMITS.name);
const text = z.string().max(LIMITS.text);
const body = z.instanceof(ArrayBuffer);
/** RFC 9110 token: what a header name may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value: visible characters, spaces and tabs; no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const headers = z.array(
  z.tuple([
    z.string().max(LIMITS.name).regex(TOKEN, "header name is not a token"),
    z.string().max(LIMITS.headerValue).regex(FIELD_VALUE, "header value holds CR, LF or NUL"),
  ]),
).max(LIMITS.headers);
/** Statuses a Response may have; a null-body status may carry no body (checked below). */
const status = z.number().int().min(200).max(599);
const NULL_BODY = new Set([204, 205, 304]);
const error = z.object({ name, code: name.optional(), message: text }).strict();

const method = z.object({
  operation: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
  path: text,
  apiVersion: z.number().int().min(1).max(1000),
  clientTypes: z.array(name).max(16),
  summary: text,
  description: z.string().max(LIMITS.logLine),
  status,
  enforceAuth: z.boolean(),
  maxBodySize: z.number().int().positive().optional(),
  args: z.unknown(),
  returns: z.unknown(),
}).strict();

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const task = z.object({
  name,
  schedule: text,
  lastRun: z.string().max(64).nullable(),
  nextRun: z.string().max(64).nullable(),
  running: z.boolean(),
  runs: count,
  failures: count,
}).passthrough();

const fromGuest = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("loaded"),
    error: error.optional(),
    importFailed: z.boolean().optional(),
    slices: z.array(
      z.object({
        name,
        dependencies: z.array(name).max(LIMITS.items),
        dependedBy: z.array(name).max(LIMITS.items),
        handles: z.array(method).max(LIMITS.items),
        services: z.array(name).max(LIMITS.items),
        mounts: z.array(z.object({ location: text, start: z.boolean() }).strict())
          .max(LIMITS.items),
      }).strict(),
    ).max(LIMITS.items),
    methods: z.array(method).max(LIMITS.items),
    version: name.optional(),
    migrations: z.boolean().optional(),
    features: z.array(
      z.object({
        slice: name,
        name,
        description: text,
        value: z.union([z.boolean(), z.number(), z.string().max(LIMITS.text)]),
      }).strict(),
    )
      .max(LIMITS.items).optional(),
  }).strict(),
  z.object({ t: z.literal("done"), id, error: error.optional() }).strict(),
  z.object({ t: z.literal("db"), id, body }).strict(),
  z.object({ t: z.literal("compat"), exported: z.union([name, z.null(), z.literal(false)]) })
    .strict(),
  z.object({
    t: z.literal("res"),
    id,
    status,
    headers,
    body: body.nullable(),
    stream: z.boolean().optional(),
    longLived: z.boolean().optional(),
  }).strict().refine(
    (m) => !NULL_BODY.has(m.status) || (m.body === null && !m.stream) || (m.body?.byteLength === 0),
    "a status of 204, 205 or 304 cannot have a body",
  ),
  z.object({ t: z.literal("chunk"), id, body }).strict(),
  z.object({ t: z.literal("end"), id, error: text.optional() }).strict(),
  z.object({ t: z.literal("json"), id, status, json: z.string() }).strict().refine(
    (m) => !NULL_BODY.has(m.status),
    "a status of 204, 205 or 304 cannot have a body",
  ),
  z.object({
    t: z.literal("log"),
    level: z.enum(["debug", "info", "warning", "error"]),
    source: name,
    message: z.string().max(LIMITS.logLine),
    requestId: z.string().max(LIMITS.name).optional(),
  }).strict(),
  z.object({ t: z.literal("mount"), slice: name, location: text, start: z.boolean() }).strict(),
  z.object({
    t: z.literal("beat"),
    tasks: z.record(name, z.array(task).max(LIMITS.tasks)).optional(),
    background: z.record(
      name,
      z.object({ started: count, running: count, failed: count }).strict(),
    ).optional(),
    usage: z.object({
      cpuSeconds: z.number().finite().nonnegative(),
      rssBytes: z.number().finite().nonnegative(),
      heapUsedBytes: z.number().finite().nonnegative(),
    }).strict().optional(),
  }).strict(),
  z.object({ t: z.literal("svc"), id, from: name, to: name, member: name, body }).strict(),
  z.object({ t: z.literal("svcres"), id, error: text.optional(), body: body.nullable() })
    .strict(),
]);

/**
 * Checks one message a guest sent.
 *
 * @param value a decoded message
 * @returns the message, typed
 * @throws {ProtocolError} `sandbox.message` naming the kind and the first problem
 */
export function parseGuestMessage(value: unknown): FromGuest {
  const result = fromGuest.safeParse(value);
  if (result.success) return result.data as FromGuest;
  const issue = result.error.issues[0];
  const kind = typeof value === "object" && value !== null && "t" in value
    ? JSON.stringify(String((value as { t: unknown }).t)).slice(0, 40)
    : "without a kind";
  const where = issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
  throw new ProtocolError(
    "sandbox.message",
    `invalid message ${kind}${where}: ${issue.message}`.slice(0, 400),
  );
}

const batch = z.object({
  json: z.string().max(LIMITS.batchBytes),
  buffers: z.array(body).max(100_000),
}).strict();

/**
 * Decodes a batch a guest sent: its messages, each checked, with their bodies put back.
 *
 * @throws {ProtocolError} `sandbox.message` when the batch or one of its messages is invalid
 */
export function decodeGuestBatch(value: unknown): FromGuest[] {
  const checked = batch.safeParse(value);
  if (!checked.success) {
    throw new ProtocolError("sandbox.message", "invalid batch: not {json, buffers}");
  }
  let messages: unknown;
  try {
    messages = JSON.parse(checked.data.json);
  } catch {
    throw new ProtocolError("sandbox.message", "invalid batch: its JSON does not parse");
  }
  if (!Array.isArray(messages)) {
    throw new ProtocolError("sandbox.message", "invalid batch: not a list of messages");
  }
  // Each body belongs to one message: a buffer named by many would be unpacked once for each
  // (a 60 MiB argument sent once, held in the server's memory by a thousand service calls).
  const used = new Set<unknown>();
  for (const message of messages) {
    const index = typeof message === "object" && message !== null && "body" in message
      ? (message as { body: unknown }).body
      : undefined;
    if (typeof index !== "number") continue;
    if (used.has(index)) {
      throw new ProtocolError(
        "sandbox.message",
        `invalid batch: its body ${index} is named by more than one message`,
      );
    }
    used.add(index);
  }
  return messages.map((message) => parseGuestMessage(withBody(message, checked.data.buffers)));
}

/** Decodes a batch the server sent (trusted: it comes from the server). */
export function decodeHostBatch(value: Batch): ToGuest[] {
  const messages = JSON.parse(value.json) as unknown[];
  return messages.map((m) => withBody(m, value.buffers)) as ToGuest[];
}

/** Puts a message's body back in place of its index into the batch's buffers. */
function withBody(message: unknown, buffers: ArrayBuffer[]): unknown {
  if (typeof message !== "object" || message === null || !("body" in message)) return message;
  const index = (message as { body: unknown }).body;
  if (typeof index !== "number") return message;
  // An index out of range leaves undefined, which the schema refuses.
  return { ...message, body: Number.isInteger(index) ? buffers[index] : undefined };
}

/** Describes an error for the other side: name, code and message, no stack. */
export function describe(error: unknown): ErrorDescriptor {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: String(error.name).slice(0, LIMITS.name),
      code: typeof code === "string" ? code.slice(0, LIMITS.name) : undefined,
      message: String(error.message).slice(0, LIMITS.text),
    };
  }
  return { name: "Error", code: undefined, message: String(error).slice(0, LIMITS.text) };
}

const ERRORS: Record<string, new (code: ErrorCode, message: string) => InmantaError> = {
  ConfigError,
  ExtensionError,
  ProtocolError,
  SliceError,
};

/** Rebuilds an error that crossed the boundary ({@link describe}d), keeping its class and code. */
export function rebuild(error: ErrorDescriptor): Error {
  const Class = ERRORS[error.name];
  // A guest may send any code: one the server does not list becomes sandbox.error.
  if (Class) {
    return new Class(isErrorCode(error.code) ? error.code : "sandbox.error", error.message);
  }
  const plain = new Error(error.message);
  plain.name = error.name;
  return plain;
}

/**
 * A service call's arguments or result as bytes: V8's structured-clone format, so that what
 * crosses is what `postMessage` could carry (dates, maps, typed arrays), whatever the transport.
 *
 * @throws {Error} when the value is not structured-cloneable (a function, a class instance's
 *   methods)
 */
export function packValue(value: unknown): ArrayBuffer {
  const bytes = serialize(value);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** The value {@link packValue} packed. */
export function unpackValue(buffer: ArrayBuffer): unknown {
  return deserialize(new Uint8Array(buffer));
}
