/**
 * Runs the slices' lifecycle: prestart on all, start in order; prestop on all in reverse,
 * stop in reverse. Each call has a deadline that names the slice that hung.
 *
 * @module
 */
import { describeError, SliceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Phase, PhaseTimeout, runPhase } from "./runtime.ts";
import { INTERNALS, type ServerSlice, type SliceServer } from "./slice.ts";

/** Per-slice deadlines, in seconds. */
export interface LifecycleTimeouts {
  /** For each of prestart and start. */
  start: number;
  /** For each of prestop and stop (background tasks included). */
  stop: number;
}

/** Drives the lifecycle of an ordered list of slices. */
export class Lifecycle {
  readonly #order: ServerSlice[];
  readonly #log: Logger;
  readonly #timeouts: LifecycleTimeouts;
  #started: ServerSlice[] = [];

  /**
   * @param order slices in start order
   * @param log the server's logger
   * @param timeouts per-slice deadlines
   */
  constructor(
    order: ServerSlice[],
    log: Logger,
    timeouts: LifecycleTimeouts,
    tolerate: (slice: ServerSlice) => boolean = () => false,
  ) {
    this.#order = order;
    this.#log = log;
    this.#timeouts = timeouts;
    this.#tolerate = tolerate;
  }

  readonly #tolerate: (slice: ServerSlice) => boolean;

  /**
   * Runs one phase of a slice whose failures are tolerated (boot_failure = continue): a failure
   * marks it failed instead of ending start-up. Returns whether it went well.
   */
  async #tolerant(slice: ServerSlice, phase: Phase, server: (s: ServerSlice) => SliceServer) {
    try {
      await this.#run(slice, phase, server);
      return true;
    } catch (error) {
      slice[INTERNALS].failure = this.#cause(phase, error);
      return false;
    }
  }

  #run(slice: ServerSlice, phase: Phase, server: (s: ServerSlice) => SliceServer) {
    const deadline = Date.now() + this.#timeouts.start * 1000;
    return runPhase(slice, phase, deadline, this.#log, server(slice));
  }

  /** Why `slice` cannot start because a slice it needs failed, if one did. */
  #failedDependency(slice: ServerSlice): string | undefined {
    for (const other of this.#order) {
      if (other.state !== "failed" || other === slice) continue;
      if (
        slice.getDependencies().includes(other.name) || other.getDependedBy().includes(slice.name)
      ) return `depends on slice ${other.name}, which failed`;
    }
    return undefined;
  }

  /**
   * Prestarts then starts every slice. On failure, the slices already started are stopped in
   * reverse order and a SliceError naming the failing slice is thrown. A slice whose sandbox
   * failed (its internals carry a failure) is isolated instead: it stays failed, the rest starts.
   */
  async start(server: (slice: ServerSlice) => SliceServer): Promise<void> {
    let phase: Phase = "prestart";
    let current: ServerSlice | undefined;
    try {
      for (current of this.#order) {
        const slice = current;
        if (this.#tolerate(slice)) await this.#tolerant(slice, phase, server);
        else await this.#run(slice, phase, server);
      }
      phase = "start";
      for (current of this.#order) {
        const slice = current;
        if (!slice[INTERNALS].failure) {
          const blocked = this.#failedDependency(slice);
          if (blocked) slice[INTERNALS].failure = blocked;
        }
        if (!slice[INTERNALS].failure) {
          if (this.#tolerate(slice)) await this.#tolerant(slice, phase, server);
          else await this.#run(slice, phase, server);
        }
        if (current[INTERNALS].failure) {
          current[INTERNALS].setStatus("failed");
          this.#log.error(`slice ${current.name} failed: ${current[INTERNALS].failure}`);
          continue;
        }
        current[INTERNALS].setStatus("started");
        this.#started.push(current);
        this.#log.debug(`slice ${current.name} started`);
      }
    } catch (error) {
      const slice = current!;
      const cause = this.#cause(phase, error);
      slice[INTERNALS].setStatus("failed");
      slice[INTERNALS].failure = cause;
      if (!(error instanceof PhaseTimeout) && error instanceof Error && error.stack) {
        this.#log.debug(error.stack);
      }
      for (const s of this.#order) {
        if (s.state === "starting" && s !== slice) s[INTERNALS].setStatus("registered");
      }
      if (this.#started.length > 0) {
        this.#log.error(`slice ${slice.name} ${cause}; stopping the slices already started`);
        await this.stop(Date.now() + this.#timeouts.stop * 1000 * this.#started.length);
      }
      throw this.#startError(slice, phase, error);
    }
  }

  /** Why a prestart or start failed, as the end of a sentence naming the slice. */
  #cause(phase: Phase, error: unknown): string {
    return error instanceof PhaseTimeout
      ? `did not finish ${phase} within ${this.#timeouts.start}s`
      : `${phase} failed: ${describeError(error)}`;
  }

  /** The start-up error of `slice`, whose `phase` threw `error` or timed out. */
  #startError(slice: ServerSlice, phase: Phase, error: unknown): SliceError {
    return new SliceError(
      error instanceof PhaseTimeout ? "slice.start_timeout" : "slice.start_failed",
      `slice ${slice.name} ${this.#cause(phase, error)}`,
      { cause: error },
    );
  }

  /**
   * Runs prestart on `slices` then start, in start order: the slices of a sandbox that was
   * started again. Throws a SliceError naming the slice and the cause, as at start-up; the
   * caller fails them.
   */
  async rerun(
    slices: readonly ServerSlice[],
    server: (slice: ServerSlice) => SliceServer,
  ): Promise<void> {
    const order = this.#order.filter((s) => slices.includes(s));
    // As at start-up, a slice whose dependency failed does not start (its restart counts as a
    // failure, and a later one may find the dependency back).
    for (const slice of order) {
      const blocked = this.#failedDependency(slice);
      if (blocked) throw new SliceError("slice.start_failed", `slice ${slice.name} ${blocked}`);
    }
    for (const phase of ["prestart", "start"] as const) {
      for (const slice of order) {
        try {
          await this.#run(slice, phase, server);
        } catch (error) {
          throw this.#startError(slice, phase, error);
        }
      }
    }
  }

  /**
   * Prestops then stops the started slices in reverse order. Nothing is waited for past
   * `deadline` (ms since epoch): what hangs is logged by name and abandoned.
   */
  async stop(deadline: number): Promise<void> {
    const slices = [...this.#started].reverse();
    this.#started = [];
    const until = () => Math.min(Date.now() + this.#timeouts.stop * 1000, deadline);
    for (const slice of slices) await runPhase(slice, "prestop", until(), this.#log);
    for (const slice of slices) await runPhase(slice, "stop", until(), this.#log);
  }
}
