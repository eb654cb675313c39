/**
 * Messages between the server and an extension's sandbox, and the channel that carries them.
 * Messages are batched per microtask, so that under load one postMessage carries many requests.
 *
 * @module
 */
import type { IniValue } from "../config/ini.ts";
import type { Feature } from "../features.ts";
import type { LogLevel } from "../log.ts";
import type { Operation } from "../protocol/method.ts";
import type { ScheduledTaskInfo } from "../scheduler/scheduler.ts";

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
}

/** An error as it crosses the boundary. */
export interface ErrorDescriptor {
  name: string;
  code: string | undefined;
  message: string;
}

/** Lifecycle operations the server asks of a sandboxed slice. */
export type SliceOperation = "prestart" | "start" | "prestop" | "stop";

/** Server → sandbox. */
export type ToSandbox =
  | {
    t: "load";
    name: string;
    specifier: string;
    config: [string, [string, IniValue][]][];
    /** From the extension's deno.json, read by the server. */
    version?: string;
    coreRange?: string;
    manifest?: string;
  }
  | { t: "call"; id: number; slice: string; op: SliceOperation; until: number }
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
  };

/** Sandbox → server. */
export type FromSandbox =
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
  }
  | { t: "done"; id: number; error?: ErrorDescriptor }
  /**
   * Before setup: the module's `coreVersion` (null when it has none, false when it is not a
   * string), for the server to check (semver stays out of sandboxes).
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
  | { t: "log"; level: LogLevel; source: string; message: string }
  | { t: "mount"; slice: string; location: string; start: boolean }
  | { t: "beat"; tasks: Record<string, ScheduledTaskInfo[]> };

/** Something messages can be posted to. */
export interface Port {
  postMessage(message: unknown, transfer: Transferable[]): void;
}

/** What crosses in one postMessage: the messages as JSON, their bodies handed over apart. */
export interface Batch {
  json: string;
  buffers: ArrayBuffer[];
}

/**
 * Sends messages in batches: everything sent in one microtask goes in one postMessage, as one
 * JSON string (far cheaper to clone than many small objects) plus the request and response
 * bodies, which are transferred, not copied.
 */
export class Channel<T extends object> {
  readonly #port: Port;
  readonly #windowed: boolean;
  #queue: T[] = [];
  #buffers: ArrayBuffer[] = [];
  #scheduled = false;
  #inFlight = false;

  /**
   * @param port where batches are posted
   * @param windowed keep one batch in flight at a time: what is sent meanwhile waits for
   *   `acknowledge()` and goes in the next batch. Requests arrive one per event-loop turn, so
   *   without this every request cost a postMessage of its own.
   */
  constructor(port: Port, windowed = false) {
    this.#port = port;
    this.#windowed = windowed;
  }

  /** The other side took the batch in flight: post what waited for it. */
  acknowledge(): void {
    this.#inFlight = false;
    if (this.#queue.length > 0) this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Queues a message; its `body`, if any, is transferred without copying. */
  send(message: T): void {
    const body = (message as { body?: unknown }).body;
    if (body instanceof ArrayBuffer) {
      this.#buffers.push(body);
      message = { ...message, body: this.#buffers.length - 1 };
    }
    this.#queue.push(message);
    this.#schedule();
  }

  /** Posts a batch soon even if nothing is queued, so the other side sees its batch taken. */
  acknowledgeSoon(): void {
    this.#acking = true;
    this.#schedule();
  }

  #acking = false;

  /** Posts what is queued now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 && !this.#acking) return;
    this.#acking = false;
    if (this.#windowed) this.#inFlight = true;
    const batch: Batch = { json: JSON.stringify(this.#queue), buffers: this.#buffers };
    this.#queue = [];
    this.#buffers = [];
    this.#port.postMessage(batch, batch.buffers);
  }

  /** The messages of a batch received from the other side. */
  static decode<T extends object>(batch: Batch): T[] {
    const messages = JSON.parse(batch.json) as (T & { body?: number | null })[];
    for (const message of messages) {
      if (typeof message.body === "number") {
        (message as { body: ArrayBuffer }).body = batch.buffers[message.body];
      }
    }
    return messages as T[];
  }
}

/** Describes an error for the other side. */
export function describe(error: unknown): ErrorDescriptor {
  if (error instanceof Error) {
    return {
      name: error.name,
      code: (error as { code?: string }).code,
      message: error.message,
    };
  }
  return { name: "Error", code: undefined, message: String(error) };
}

/**
 * Environment overrides (`INMANTA_*`) read synchronously from inside a sandbox, which may not
 * read the environment itself: the worker posts the variable's name and waits on a shared
 * buffer; the server, whose event loop is free, looks it up and answers in the buffer.
 */
export class EnvLink {
  /** Bytes for the answer; a longer value is cut (no option needs 64 KiB). */
  static readonly CAPACITY = 65536;
  readonly buffer: SharedArrayBuffer;
  readonly #state: Int32Array;
  readonly #bytes: Uint8Array;

  /** @param buffer shared with the other side; a new one when omitted */
  constructor(buffer = new SharedArrayBuffer(8 + EnvLink.CAPACITY)) {
    this.buffer = buffer;
    this.#state = new Int32Array(buffer, 0, 2);
    this.#bytes = new Uint8Array(buffer, 8);
  }

  /** Worker side: asks for `name` and blocks until the answer (undefined when unset). */
  ask(
    port: { postMessage(message: unknown): void },
    name: string,
    timeoutMs = 5000,
  ): string | undefined {
    Atomics.store(this.#state, 0, ASKING);
    port.postMessage({ env: name });
    if (Atomics.wait(this.#state, 0, ASKING, timeoutMs) === "timed-out") return undefined;
    const state = Atomics.load(this.#state, 0);
    if (state !== SET) return undefined;
    return new TextDecoder().decode(this.#bytes.slice(0, this.#state[1]));
  }

  /** Server side: answers the pending question and wakes the worker. */
  answer(value: string | undefined): void {
    if (value !== undefined) {
      const { written } = new TextEncoder().encodeInto(value, this.#bytes);
      this.#state[1] = written;
    }
    Atomics.store(this.#state, 0, value === undefined ? UNSET : SET);
    Atomics.notify(this.#state, 0);
  }
}

const ASKING = 1;
const SET = 2;
const UNSET = 3;
