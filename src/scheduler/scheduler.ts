/**
 * Recurring and background work of one slice. Interval tasks never overlap themselves (the next
 * run is planned when the previous one ends), cron tasks use croner with overrun protection, and
 * every running call is tracked so that stopping can await it and, past a deadline, abandon it.
 *
 * @module
 */
import { Cron } from "croner";
import { describeError, SliceError } from "../errors.ts";
import type { Logger } from "../log.ts";

/**
 * A scheduled function. It gets an AbortSignal that is aborted when the run is cancelled (at
 * prestop for `cancelOnStop` tasks) or abandoned (past the slice's stop deadline).
 */
export type TaskFunction = (signal: AbortSignal) => unknown;

/** Scheduled tasks one slice may have (`schedule` and `scheduleCron` together). */
export const MAX_SCHEDULED_TASKS = 10_000;

/** Background tasks one slice may have running at once. */
export const MAX_RUNNING_BACKGROUND_TASKS = 100_000;

/** Options of `ServerSlice.scheduleCron` (a recurring task on a cron expression). */
export interface CronOptions {
  /**
   * At prestop (default true): plan no more runs and abort a run in progress through its
   * signal, without waiting for it. False: runs go on until stop, which awaits them.
   */
  cancelOnStop?: boolean;
  /** What status pages show; default the function's name, or `anonymous`. */
  name?: string;
}

/** Options of `ServerSlice.schedule` (a recurring task). */
export interface ScheduleOptions extends CronOptions {
  /** Seconds before the first run; defaults to the interval, as in Inmanta. */
  initialDelay?: number;
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
  /** The name given when it was scheduled, else the function's name, else `anonymous`. */
  name: string;
  /** `every 5s` or the cron expression. */
  schedule: string;
  /** When the last run started, or null. */
  lastRun: string | null;
  /** When the next run is planned, or null when none is. */
  nextRun: string | null;
  /** Whether a run is in progress (a run cancelled at prestop is let go and no longer counts). */
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
  fn: TaskFunction;
  /** The function as scheduled, when `fn` wraps it (a cluster task): what makes it the same. */
  source?: TaskFunction;
  /** The schedule, and for intervals the first delay: what makes two calls the same task. */
  key: string;
  kind: "interval" | "cron";
  info: ScheduledTaskInfo;
  cancelOnStop: boolean;
  /** The run in progress, if any. */
  current: Run | undefined;
  cancel(): void;
}

interface Run {
  promise: Promise<void>;
  controller: AbortController;
  /** Set when the run was cancelled on purpose, so that its abort is not logged as a failure. */
  cancelled: boolean;
}

/** The tasks of one slice. */
export class TaskScheduler {
  readonly #logger: () => Logger;
  readonly #owner: string;
  readonly #tasks: Task[] = [];
  readonly #running = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  #closed = false;
  #claim: ClusterClaim | undefined;

  /**
   * @param logger gives the logger that errors of tasks are written to
   * @param owner the slice, as errors name it
   */
  constructor(logger: () => Logger, owner = "slice") {
    this.#logger = logger;
    this.#owner = owner;
  }

  /**
   * Refuses one more scheduled task past {@link MAX_SCHEDULED_TASKS}: a slice (a guest above
   * all) scheduling without end must get a clear error, not slow the server down.
   */
  #roomForTask(): void {
    if (this.#tasks.length < MAX_SCHEDULED_TASKS) return;
    throw new SliceError(
      "slice.too_many_tasks",
      `${this.#owner}: at most ${MAX_SCHEDULED_TASKS} scheduled tasks per slice`,
    );
  }

  /** Aborted when the slice's stop deadline passes; background tasks should honour it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Sets who decides cluster tasks' ticks; without one, this instance runs them all. */
  setClusterClaim(claim: ClusterClaim): void {
    this.#claim = claim;
  }

  /**
   * Runs `fn` every `interval` seconds, never overlapping itself. The same `fn` with the same
   * interval and initial delay again is the same task (as Inmanta's scheduler): not added twice.
   * With `scope: "cluster"`, a tick runs only on the instance the cluster claim gives it to.
   */
  interval(original: TaskFunction, interval: number, options: ScheduleOptions = {}): void {
    if (!(interval > 0)) throw new RangeError(`schedule interval must be > 0, got ${interval}`);
    if (
      options.scope !== undefined && options.scope !== "instance" && options.scope !== "cluster"
    ) {
      throw new RangeError(`schedule scope must be instance or cluster, got ${options.scope}`);
    }
    const initialDelay = options.initialDelay ?? interval;
    const schedule = `every ${interval}s`;
    if (this.#duplicate(original, "interval", `${schedule} after ${initialDelay}s`)) return;
    this.#roomForTask();
    const info = this.#info(original, schedule, options.name);
    const claimed: TaskFunction = async (signal) => {
      if (this.#claim && !(await this.#claim(info.name))) return;
      await original(signal);
    };
    const fn = options.scope === "cluster" ? claimed : original;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    const task: Task = {
      fn,
      source: original,
      key: `${schedule} after ${initialDelay}s`,
      kind: "interval",
      info,
      cancelOnStop: options.cancelOnStop ?? true,
      current: undefined,
      cancel: () => {
        cancelled = true;
        clearTimeout(timer);
        info.nextRun = null;
      },
    };
    const plan = (delaySeconds: number) => {
      if (cancelled || this.#closed) return;
      info.nextRun = new Date(Date.now() + delaySeconds * 1000).toISOString();
      timer = setTimeout(async () => {
        const began = Date.now();
        await this.#run(task);
        plan(Math.max(0, interval - (Date.now() - began) / 1000));
      }, delaySeconds * 1000);
    };
    this.#tasks.push(task);
    plan(initialDelay);
  }

  /**
   * Runs `fn` on a cron expression (croner syntax, seconds optional); runs never overlap. The
   * same `fn` on the same expression again is the same task.
   */
  cron(fn: TaskFunction, expression: string, options: CronOptions = {}): void {
    if (this.#duplicate(fn, "cron", expression)) return;
    this.#roomForTask();
    const info = this.#info(fn, expression, options.name);
    const task: Task = {
      fn,
      key: expression,
      kind: "cron",
      info,
      cancelOnStop: options.cancelOnStop ?? true,
      current: undefined,
      cancel: () => {
        job.stop();
        info.nextRun = null;
      },
    };
    // The Cron constructor validates the expression and throws a TypeError naming the problem.
    const job: Cron = new Cron(expression, { protect: true }, async () => {
      await this.#run(task);
      info.nextRun = job.nextRun()?.toISOString() ?? null;
    });
    info.nextRun = job.nextRun()?.toISOString() ?? null;
    this.#tasks.push(task);
  }

  /** Removes the cron task of `fn` on `expression`; returns whether there was one. */
  removeCron(fn: TaskFunction, expression: string): boolean {
    const index = this.#tasks.findIndex((t) =>
      t.kind === "cron" && t.fn === fn && t.key === expression
    );
    if (index < 0) return false;
    this.#tasks[index].cancel();
    this.#tasks.splice(index, 1);
    return true;
  }

  #duplicate(fn: TaskFunction, kind: Task["kind"], key: string): boolean {
    const existing = this.#tasks.find((t) =>
      t.kind === kind && (t.source ?? t.fn) === fn && t.key === key
    );
    if (existing) {
      this.#logger().debug(
        `scheduled task ${existing.info.name} (${existing.info.schedule}) is already scheduled; not added again`,
      );
    }
    return existing !== undefined;
  }

  /** Tracks a promise, or runs a function given the abort signal and tracks its promise. */
  background(task: Promise<unknown> | ((signal: AbortSignal) => unknown)): void {
    const counts = this.#background;
    if (counts.running >= MAX_RUNNING_BACKGROUND_TASKS) {
      throw new SliceError(
        "slice.too_many_tasks",
        `${this.#owner}: at most ${MAX_RUNNING_BACKGROUND_TASKS} background tasks may run at once per slice`,
      );
    }
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

  /**
   * Stops planning runs: only `cancelOnStop` tasks at prestop, all of them at stop. At prestop
   * a `cancelOnStop` task's run in progress is aborted through its signal and no longer
   * awaited (as Inmanta cancels it); the others' runs are awaited by {@link drain}.
   */
  cancel(all: boolean): void {
    if (all) this.#closed = true;
    for (const task of this.#tasks) {
      if (!all && !task.cancelOnStop) continue;
      task.cancel();
      const run = task.current;
      if (!all && run) {
        run.cancelled = true;
        task.current = undefined;
        task.info.running = false;
        this.#running.delete(run.promise);
        run.controller.abort(new DOMException("cancelled at prestop", "AbortError"));
      }
    }
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

  #info(fn: TaskFunction, schedule: string, name: string | undefined): ScheduledTaskInfo {
    return {
      name: name || fn.name || "anonymous",
      schedule,
      lastRun: null,
      nextRun: null,
      running: false,
      runs: 0,
      failures: 0,
      seconds: 0,
    };
  }

  async #run(task: Task): Promise<void> {
    const { info } = task;
    info.lastRun = new Date().toISOString();
    info.running = true;
    info.runs++;
    const began = performance.now();
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.#abort.signal]);
    const run: Run = { promise: Promise.resolve(), controller, cancelled: false };
    // Current before it starts: a task that throws at once settles before the next line.
    task.current = run;
    run.promise = (async () => {
      try {
        await task.fn(signal);
      } catch (error) {
        if (run.cancelled) {
          this.#logger().debug(`scheduled task ${info.name} cancelled at prestop`);
        } else {
          info.failures++;
          this.#logger().error(`scheduled task ${info.name} failed: ${describeError(error)}`);
        }
      } finally {
        if (task.current === run) {
          task.current = undefined;
          info.running = false;
        }
        info.seconds += (performance.now() - began) / 1000;
      }
    })();
    this.#track(run.promise);
    await run.promise;
  }

  #track(promise: Promise<unknown>): void {
    this.#running.add(promise);
    promise.finally(() => this.#running.delete(promise));
  }
}
