/**
 * What the sandbox host tells the metrics about each sandboxed extension. The host calls
 * {@link SandboxMetrics.report} (on `Server.sandboxMetrics`) whenever it learns something: a
 * heartbeat, a start, a crash, a restart; `/metrics` and the console read the last report.
 * In-process extensions (`isolation = none`) have no sandbox and are not reported: they share the
 * process figures.
 *
 * Where the figures come from: a `process` sandbox's heartbeat can carry its own
 * `process.cpuUsage()` and `Deno.memoryUsage()` (`rss`, `heapUsed`), neither of which needs a
 * permission; a Worker shares the server's process, so its `rssBytes` is the process's, its heap
 * its own isolate's, and its CPU seconds cannot be told apart from the server's (report 0). A
 * guest may lie about its own figures; they are reports, not limits.
 *
 * @module
 */

/** Where a sandbox is in its life. */
export type SandboxState = "starting" | "running" | "restarting" | "failed" | "stopped";

/** Every state, in the order the exposition lists them. */
export const SANDBOX_STATES: readonly SandboxState[] = [
  "starting",
  "running",
  "restarting",
  "failed",
  "stopped",
];

/** One report of a sandbox. */
export interface SandboxSample {
  /** CPU seconds (user + system) the sandbox used since it (last) started. */
  cpuSeconds: number;
  /** Resident memory in bytes (a `process` sandbox's own; a Worker's is the server's). */
  rssBytes: number;
  /** V8 heap in use, bytes. */
  heapUsedBytes: number;
  /** Its state. */
  state: SandboxState;
  /** Restarts since the server started. */
  restarts: number;
  /** When it (last) started, ms since epoch. */
  startedAt: number;
  /** Why it last failed, if it ever did. */
  lastFailure?: string;
}

/** A sandbox's last report, with its extension and isolation. */
export interface SandboxReport extends SandboxSample {
  /** The extension. */
  extension: string;
}

/**
 * The sandboxes' last reports. CPU seconds keep counting across restarts (a counter must not go
 * down): each restart adds the seconds the previous run had used.
 *
 * @example
 * ```ts
 * import { SandboxMetrics } from "./sandboxes.ts";
 * const sandboxes = new SandboxMetrics();
 * sandboxes.report("greeter", {
 *   cpuSeconds: 0.25, rssBytes: 40e6, heapUsedBytes: 8e6, state: "running", restarts: 0,
 *   startedAt: Date.now(),
 * });
 * ```
 */
export class SandboxMetrics {
  readonly #reports = new Map<string, SandboxReport>();
  /** CPU seconds of the runs before the current one, per extension. */
  readonly #cpuBefore = new Map<string, number>();

  /** Records what the host knows of `extension`'s sandbox now. */
  report(extension: string, sample: SandboxSample): void {
    const previous = this.#reports.get(extension);
    let before = this.#cpuBefore.get(extension) ?? 0;
    // A new run (a restart, or a report of less CPU than before) starts from zero again.
    if (
      previous &&
      (sample.startedAt !== previous.startedAt || sample.cpuSeconds < previous.cpuSeconds)
    ) {
      before += previous.cpuSeconds;
      this.#cpuBefore.set(extension, before);
    }
    this.#reports.set(extension, { ...sample, extension });
  }

  /** Forgets `extension` (it is no longer loaded). */
  remove(extension: string): void {
    this.#reports.delete(extension);
    this.#cpuBefore.delete(extension);
  }

  /** The last report of every sandbox, CPU seconds summed over its runs. */
  list(): SandboxReport[] {
    return [...this.#reports.values()].map((r) => ({
      ...r,
      cpuSeconds: r.cpuSeconds + (this.#cpuBefore.get(r.extension) ?? 0),
    }));
  }

  /** The last report of `extension`'s sandbox, if any. */
  get(extension: string): SandboxReport | undefined {
    return this.list().find((r) => r.extension === extension);
  }
}
