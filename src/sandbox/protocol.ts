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
    maxBodySize: number;
    /** From the extension's deno.json, read by the server. */
    version?: string;
    coreRange?: string;
    manifest?: string;
  }
  | { t: "call"; id: number; slice: string; op: SliceOperation; until: number }
  | {
    t: "req";
    id: number;
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
  | {
    t: "res";
    id: number;
    status: number;
    headers: [string, string][];
    body: ArrayBuffer | null;
  }
  | { t: "log"; level: LogLevel; source: string; message: string }
  | { t: "mount"; slice: string; location: string; start: boolean }
  | { t: "beat"; tasks: Record<string, ScheduledTaskInfo[]> };

/** Something messages can be posted to. */
export interface Port {
  postMessage(message: unknown, transfer: Transferable[]): void;
}

/** Sends messages in batches: everything sent in one microtask goes in one postMessage. */
export class Channel<T> {
  readonly #port: Port;
  #queue: T[] = [];
  #transfer: Transferable[] = [];
  #scheduled = false;

  /** @param port where batches are posted */
  constructor(port: Port) {
    this.#port = port;
  }

  /** Queues a message; `transfer` lists buffers handed over without copying. */
  send(message: T, transfer?: Transferable[]): void {
    this.#queue.push(message);
    if (transfer) this.#transfer.push(...transfer);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Posts what is queued now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    const transfer = this.#transfer;
    this.#queue = [];
    this.#transfer = [];
    this.#port.postMessage(batch, transfer);
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
