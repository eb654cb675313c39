/**
 * What a sandbox's guests report about their slices' tasks, carried across restarts: a new guest
 * counts from zero, so what its predecessors counted (runs, failures, seconds of scheduled tasks;
 * background tasks started and failed) is added to its own, and no counter of `/metrics` goes
 * down when a guest is replaced.
 *
 * @module
 */
import type { BackgroundCounts, ScheduledTaskInfo } from "../scheduler/scheduler.ts";

/**
 * The task figures of one sandbox's slices, over all its guests.
 *
 * @example
 * ```ts
 * import { GuestCounts } from "./guest_counts.ts";
 * const counts = new GuestCounts();
 * counts.takeBackground({ "x.main": { started: 3, running: 1, failed: 1 } });
 * counts.newGuest();
 * counts.takeBackground({ "x.main": { started: 1, running: 1, failed: 0 } });
 * counts.background["x.main"]; // { started: 4, running: 1, failed: 1 }
 * ```
 */
export class GuestCounts {
  /** Scheduled tasks of each slice, as of the last report that carried them. */
  tasks: Record<string, ScheduledTaskInfo[]> = {};
  /** Background task counts of each slice, as of the last report that carried them. */
  background: Record<string, BackgroundCounts> = {};
  /** Scheduled tasks of the guests before this one, per slice, with their counts. */
  #tasksBefore: Record<string, ScheduledTaskInfo[]> = {};
  /** Background counts of the guests before this one, per slice. */
  #backgroundBefore: Record<string, BackgroundCounts> = {};

  /** A new guest starts: what the ones before counted is carried, nothing of it runs now. */
  newGuest(): void {
    // The tasks of the guests before stay listed, not running, until the new one lists its own.
    this.#tasksBefore = Object.fromEntries(
      Object.entries(this.tasks).map((
        [slice, tasks],
      ) => [slice, tasks.map((t) => ({ ...t, running: false, nextRun: null }))]),
    );
    this.tasks = this.#tasksBefore;
    // Nothing of the guests before runs any more.
    this.#backgroundBefore = Object.fromEntries(
      Object.entries(this.background).map(([slice, c]) => [slice, { ...c, running: 0 }]),
    );
    this.background = { ...this.#backgroundBefore };
  }

  /**
   * Takes the guest's scheduled tasks, its predecessors' runs, failures and seconds of the same
   * task added. While `restarting` (its slices have not started again, so have scheduled
   * nothing yet), the tasks of the guests before stay listed.
   */
  takeTasks(tasks: Record<string, ScheduledTaskInfo[]>, restarting: boolean): void {
    const carried = restarting ? this.#tasksBefore : {};
    const slices = new Set([...Object.keys(carried), ...Object.keys(tasks)]);
    this.tasks = Object.fromEntries(
      [...slices].map((slice) => [
        slice,
        (tasks[slice] ?? []).map((task) => {
          const before = this.#tasksBefore[slice]?.find((t) => t.name === task.name);
          return before
            ? {
              ...task,
              runs: before.runs + task.runs,
              failures: before.failures + task.failures,
              seconds: before.seconds + task.seconds,
            }
            : task;
        }).concat(
          (carried[slice] ?? []).filter((before) =>
            !tasks[slice]?.some((t) => t.name === before.name)
          ),
        ),
      ]),
    );
  }

  /** Takes the guest's background counts, its predecessors' started and failed added. */
  takeBackground(counts: Record<string, BackgroundCounts>): void {
    for (const [slice, now] of Object.entries(counts)) {
      const before = this.#backgroundBefore[slice];
      this.background[slice] = before
        ? {
          started: before.started + now.started,
          running: now.running,
          failed: before.failed + now.failed,
        }
        : now;
    }
  }
}
