/**
 * Recurring and background work of one slice. Interval tasks never overlap themselves (the next
 * run is planned when the previous one ends), cron tasks use croner with overrun protection, and
 * every running call is tracked so that stopping can await it and, past a deadline, abandon it.
 *
 * @module
 */
import { Cron } from "croner";
import { describeError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** Options of `ServerSlice.schedule` (a recurring task). */
export interface ScheduleOptions {
  /** Seconds before the first run; defaults to the interval, as in Inmanta. */
  initialDelay?: number;
  /** Stop planning runs at prestop (default) rather than at stop. */
  cancelOnStop?: boolean;
  /** The task's name (default: the function's); names a cluster task across instances. */
  name?: string;
  /**
   * `instance` (default): every server instance runs the task. `cluster`: of the instances that
   * share a PostgreSQL, one runs each tick; on the embedded database this is `instance`.
   */
  scope?: "instance" | "cluster";
}

/** Decides whether this instance runs this tick of a cluster task (see core.database). */
export type ClusterClaim = (task: string) => Promise<boolean>;

/** What a scheduled task looks like from outside, for status pages. */
export interface ScheduledTaskInfo {
  /** The function's name, or `anonymous`. */
  name: string;
  /** `every 5s` or the cron expression. */
  schedule: string;
  /** When the last run started, or null. */
  lastRun: string | null;
  /** When the next run is planned, or null when none is. */
  nextRun: string | null;
  /** Whether a run is in progress. */
  running: boolean;
  /** Runs so far and how many of them threw. */
  runs: number;
  /** Runs that threw. */
  failures: number;
  /** Seconds spent in runs that ended, summed (for `/metrics`). */
  seconds: number;
}

/** How many background tasks a slice started, has running, and saw fail. */
export interface BackgroundCounts {
  /** Tasks added so far. */
  started: number;
  /** Tasks not yet settled. */
  running: number;
  /** Tasks that rejected. */
  failed: number;
}

interface Task {
  info: ScheduledTaskInfo;
  cancelOnStop: boolean;
  cancel(): void;
}

/** The tasks of one slice. */
export class TaskScheduler {
  readonly #logger: () => Logger;
  readonly #tasks: Task[] = [];
  readonly #running = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  #closed = false;
  #claim: ClusterClaim | undefined;

  /** @param logger gives the logger that errors of tasks are written to */
  constructor(logger: () => Logger) {
    this.#logger = logger;
  }

  /** Aborted when the slice's stop deadline passes; background tasks should honour it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Sets who decides cluster tasks' ticks; without one, this instance runs them all. */
  setClusterClaim(claim: ClusterClaim): void {
    this.#claim = claim;
  }

  /** Runs `fn` every `interval` seconds, never overlapping itself. */
  interval(fn: () => unknown, interval: number, options: ScheduleOptions = {}): void {
    if (!(interval > 0)) throw new RangeError(`schedule interval must be > 0, got ${interval}`);
    const info = this.#info(fn, `every ${interval}s`);
    if (options.name) info.name = options.name;
    if (options.scope === "cluster") {
      const task = fn;
      fn = async () => {
        if (this.#claim && !(await this.#claim(info.name))) return;
        await task();
      };
    } else if (options.scope !== undefined && options.scope !== "instance") {
      throw new RangeError(`schedule scope must be instance or cluster, got ${options.scope}`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    const plan = (delaySeconds: number) => {
      if (cancelled || this.#closed) return;
      info.nextRun = new Date(Date.now() + delaySeconds * 1000).toISOString();
      timer = setTimeout(async () => {
        const began = Date.now();
        await this.#run(fn, info);
        plan(Math.max(0, interval - (Date.now() - began) / 1000));
      }, delaySeconds * 1000);
    };
    this.#tasks.push({
      info,
      cancelOnStop: options.cancelOnStop ?? true,
      cancel: () => {
        cancelled = true;
        clearTimeout(timer);
        info.nextRun = null;
      },
    });
    plan(options.initialDelay ?? interval);
  }

  /** Runs `fn` on a cron expression (croner syntax, seconds optional); runs never overlap. */
  cron(fn: () => unknown, expression: string): void {
    const info = this.#info(fn, expression);
    // The Cron constructor validates the expression and throws a TypeError naming the problem.
    const job: Cron = new Cron(expression, { protect: true }, async () => {
      await this.#run(fn, info);
      info.nextRun = job.nextRun()?.toISOString() ?? null;
    });
    info.nextRun = job.nextRun()?.toISOString() ?? null;
    this.#tasks.push({
      info,
      cancelOnStop: true,
      cancel: () => {
        job.stop();
        info.nextRun = null;
      },
    });
  }

  /** Tracks a promise, or runs a function given the abort signal and tracks its promise. */
  background(task: Promise<unknown> | ((signal: AbortSignal) => unknown)): void {
    const counts = this.#background;
    counts.started++;
    counts.running++;
    const promise = Promise.resolve().then(() =>
      typeof task === "function" ? task(this.#abort.signal) : task
    ).catch((error) => {
      counts.failed++;
      this.#logger().error(`background task failed: ${describeError(error)}`);
    }).finally(() => counts.running--);
    this.#track(promise);
  }

  readonly #background: BackgroundCounts = { started: 0, running: 0, failed: 0 };

  /** The background tasks' counts, for `/metrics`. */
  backgroundCounts(): BackgroundCounts {
    return { ...this.#background };
  }

  /** Stops planning runs: only `cancelOnStop` tasks at prestop, all of them at stop. */
  cancel(all: boolean): void {
    if (all) this.#closed = true;
    for (const task of this.#tasks) if (all || task.cancelOnStop) task.cancel();
  }

  /**
   * Waits for running calls and background tasks until `deadline` (ms since epoch); then
   * aborts the signal and returns how many were abandoned.
   */
  async drain(deadline: number): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), Math.max(0, deadline - Date.now()));
    });
    while (this.#running.size > 0) {
      const outcome = await Promise.race([Promise.allSettled([...this.#running]), expired]);
      if (outcome === "expired") break;
    }
    clearTimeout(timer);
    const abandoned = this.#running.size;
    if (abandoned > 0) this.#abort.abort(new Error("slice stop deadline passed"));
    return abandoned;
  }

  /** The scheduled tasks, for status pages. */
  list(): ScheduledTaskInfo[] {
    return this.#tasks.map((t) => ({ ...t.info }));
  }

  #info(fn: () => unknown, schedule: string): ScheduledTaskInfo {
    return {
      name: fn.name || "anonymous",
      schedule,
      lastRun: null,
      nextRun: null,
      running: false,
      runs: 0,
      failures: 0,
      seconds: 0,
    };
  }

  async #run(fn: () => unknown, info: ScheduledTaskInfo): Promise<void> {
    info.lastRun = new Date().toISOString();
    info.running = true;
    info.runs++;
    const began = performance.now();
    const run = (async () => {
      try {
        await fn();
      } catch (error) {
        info.failures++;
        this.#logger().error(`scheduled task ${info.name} failed: ${describeError(error)}`);
      } finally {
        info.running = false;
        info.seconds += (performance.now() - began) / 1000;
      }
    })();
    this.#track(run);
    await run;
  }

  #track(promise: Promise<unknown>): void {
    this.#running.add(promise);
    promise.finally(() => this.#running.delete(promise));
  }
}
