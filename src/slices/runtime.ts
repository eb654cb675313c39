/**
 * The slice runtime: what the server does to a slice, written once and run by the server and by
 * every guest (Worker or subprocess) alike. It attaches loggers and static mounts, gives each
 * slice its view of the others (services through {@link Remote}s), and owns every status change
 * through {@link runPhase}, which runs one lifecycle phase against the lifecycle's real deadline.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { describeError, SliceError } from "../errors.ts";
import type { StaticMount } from "../http/static.ts";
import type { Logger } from "../log.ts";
import { calleeError, checkServiceCall, remote } from "./services.ts";
import { INTERNALS, type ServerSlice, type SliceServer } from "./slice.ts";

/** A lifecycle phase. */
export type Phase = "prestart" | "start" | "prestop" | "stop";

/** A phase did not finish by its deadline. */
export class PhaseTimeout extends Error {
  /** @param phase the phase that ran out of time */
  constructor(readonly phase: Phase) {
    super(`did not finish ${phase} in time`);
  }
}

/** Resolves with `work`, or rejects with PhaseTimeout once `deadline` (ms since epoch) passes. */
async function until<T>(phase: Phase, work: () => T | Promise<T>, deadline: number): Promise<T> {
  const signal = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const onAbort = () => reject(new PhaseTimeout(phase));
  signal.addEventListener("abort", onAbort, { once: true });
  Promise.resolve().then(work).then(resolve, reject);
  try {
    return await promise;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * Runs one phase of one slice and sets its status. `prestart` and `start` throw what the slice
 * threw (or {@link PhaseTimeout}); `prestop` and `stop` log failures and never throw: a slice
 * that fails to stop must not keep the others running.
 *
 * @param slice the slice
 * @param phase the phase
 * @param deadline ms since epoch after which the phase is abandoned
 * @param log where stop failures go
 * @param view what `prestart` receives (required for it)
 */
export async function runPhase(
  slice: ServerSlice,
  phase: Phase,
  deadline: number,
  log: Logger,
  view?: SliceServer,
): Promise<void> {
  const internals = slice[INTERNALS];
  internals.deadline = deadline;
  switch (phase) {
    case "prestart":
      internals.setStatus("starting");
      await until(phase, () => slice.prestart(view!), deadline);
      return;
    case "start":
      await until(phase, () => slice.start(), deadline);
      internals.setStatus("started");
      return;
    case "prestop":
      internals.setStatus("stopping");
      internals.scheduler.cancel(false);
      await bounded(slice, phase, () => slice.prestop(), deadline, log);
      return;
    case "stop": {
      await bounded(slice, phase, () => slice.stop(), deadline, log);
      internals.scheduler.cancel(true);
      const abandoned = await internals.scheduler.drain(deadline);
      if (abandoned > 0) {
        log.error(
          `slice ${slice.name}: ${abandoned} background task(s) still running at the stop deadline; abandoned`,
        );
      }
      internals.setStatus("stopped");
      return;
    }
  }
}

async function bounded(
  slice: ServerSlice,
  phase: Phase,
  work: () => unknown,
  deadline: number,
  log: Logger,
): Promise<void> {
  try {
    await until(phase, work, deadline);
  } catch (error) {
    if (error instanceof PhaseTimeout) {
      log.error(`slice ${slice.name} did not finish ${phase} in time; abandoned`);
    } else {
      log.error(`slice ${slice.name} ${phase} failed: ${describeError(error)}`);
    }
  }
}

/** Finds a slice by name, wherever it runs (a sandboxed one is a proxy here). */
export type SliceLookup = (name: string) => ServerSlice | undefined;

/**
 * Makes a service call from `from` to slice `to`: checks it (marked, a declared dependency, not
 * stopped) and hands it to the callee, whose errors come back with their message only.
 */
export async function callService(
  lookup: SliceLookup,
  from: { name: string; getDependencies(): string[] },
  to: string,
  member: string,
  args: unknown[],
): Promise<unknown> {
  const callee = lookup(to);
  const internals = callee?.[INTERNALS];
  checkServiceCall(
    from.name,
    from.getDependencies(),
    callee && {
      name: to,
      status: callee.state,
      reason: internals!.failure,
      offers: (m) => internals!.offers(m),
    },
    to,
    member,
  );
  try {
    return await internals!.serve(from.name, member, args);
  } catch (error) {
    throw calleeError(error);
  }
}

/**
 * What `prestart` of `slice` receives: the configuration and `getSlice`, which returns a Remote
 * of any loaded slice (calls through {@link callService}).
 *
 * @param route makes a call to a slice `lookup` does not know here (another guest's); when absent
 *   such a slice is not loaded
 */
export function sliceView(
  slice: ServerSlice,
  config: Config,
  lookup: SliceLookup,
  exists: (name: string) => boolean,
  route?: (to: string, member: string, args: unknown[]) => Promise<unknown>,
): SliceServer {
  return {
    config,
    getSlice: (name: string) => {
      if (!exists(name)) {
        throw new SliceError(
          "slice.not_found",
          `slice ${name} is not loaded (asked for by slice ${slice.name})`,
        );
      }
      return remote((member, args) =>
        lookup(name) || !route
          ? callService(lookup, slice, name, member, args)
          : route(name, member, args)
      );
    },
  };
}

/**
 * Attaches slices to a runtime: each gets a logger naming it, and its static mounts (those it
 * declared and those it adds later) go to `mount`.
 */
export function attachSlices(
  slices: readonly ServerSlice[],
  logger: Logger,
  mount: (mount: StaticMount, slice: ServerSlice) => void,
): void {
  for (const slice of slices) {
    const internals = slice[INTERNALS];
    internals.attach(logger.child(slice.name));
    for (const m of internals.mounts) mount(m, slice);
    internals.onMount = (m) => mount(m, slice);
  }
}
