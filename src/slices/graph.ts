/**
 * Orders slices by their dependencies. Ties keep registration order (core first, then the
 * extensions in `server.enabled_extensions` order, each in the order its setup registered them),
 * so the same configuration always starts in the same order.
 *
 * @module
 */
import { SliceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerSlice } from "./slice.ts";

/** The dependency edges of the slices, with missing ones dropped (and logged). */
export function dependencyEdges(slices: ServerSlice[], log: Logger): Map<string, Set<string>> {
  const names = new Set(slices.map((s) => s.name));
  // before.get(x) = the slices that must start before x
  const before = new Map<string, Set<string>>(slices.map((s) => [s.name, new Set()]));
  const missing = (slice: string, other: string, how: string) =>
    log.warning(`slice ${slice} ${how} ${other}, which is not loaded; ignored for ordering`);
  for (const slice of slices) {
    for (const dep of slice.getDependencies()) {
      if (names.has(dep)) before.get(slice.name)!.add(dep);
      else missing(slice.name, dep, "depends on");
    }
    for (const dependent of slice.getDependedBy()) {
      if (names.has(dependent)) before.get(dependent)!.add(slice.name);
      else missing(slice.name, dependent, "is depended on by");
    }
  }
  for (const [name, deps] of before) {
    if (deps.has(name)) throw new SliceError("slice.cycle", `slice ${name} depends on itself`);
  }
  return before;
}

/** The slice that owns the listener. */
export const TRANSPORT = "core.transport";

/**
 * As in Inmanta, the listener opens after the API behind it is ready: `core.transport` starts
 * after every slice except those that (through their dependencies) must start after it, and
 * stops before them. A slice that serves endpoints or static content may not be one of those.
 *
 * @param before the edges of {@link dependencyEdges}, completed in place
 * @param serves whether a slice serves endpoints or static content
 * @throws {SliceError} `slice.transport_order` naming a serving slice that starts after it
 */
export function transportLast(
  before: Map<string, Set<string>>,
  serves: (name: string) => boolean,
): void {
  const transport = before.get(TRANSPORT);
  if (!transport) return;
  const after = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [name, deps] of before) {
      if (after.has(name) || name === TRANSPORT) continue;
      if (deps.has(TRANSPORT) || [...deps].some((d) => after.has(d))) {
        after.add(name);
        grew = true;
      }
    }
  }
  for (const name of after) {
    if (serves(name)) {
      throw new SliceError(
        "slice.transport_order",
        `slice ${name} serves endpoints or static content but starts after ${TRANSPORT} (through its dependencies); the listener opens only once such slices started: depend on core.server instead`,
      );
    }
  }
  for (const name of before.keys()) {
    if (name !== TRANSPORT && !after.has(name)) transport.add(name);
  }
}

/**
 * Start order of the slices; a cycle is a SliceError that spells the cycle out.
 *
 * @param serves whether a slice serves endpoints or static content (see {@link transportLast})
 */
export function startOrder(
  slices: ServerSlice[],
  log: Logger,
  serves: (slice: ServerSlice) => boolean = () => false,
): ServerSlice[] {
  const before = dependencyEdges(slices, log);
  const byName = new Map(slices.map((s) => [s.name, s]));
  transportLast(before, (name) => serves(byName.get(name)!));
  const index = new Map(slices.map((s, i) => [s.name, i]));
  const pending = new Map([...before].map(([name, deps]) => [name, new Set(deps)]));
  const order: ServerSlice[] = [];
  while (pending.size > 0) {
    let next: string | undefined;
    for (const [name, deps] of pending) {
      if (deps.size === 0 && (next === undefined || index.get(name)! < index.get(next)!)) {
        next = name;
      }
    }
    if (next === undefined) {
      throw new SliceError("slice.cycle", `dependency cycle between slices: ${findCycle(pending)}`);
    }
    pending.delete(next);
    for (const deps of pending.values()) deps.delete(next);
    order.push(slices[index.get(next)!]);
  }
  return order;
}

/** Follows unmet dependencies from any pending slice until one repeats. */
function findCycle(pending: Map<string, Set<string>>): string {
  const start = [...pending.keys()].sort()[0];
  const path: string[] = [];
  const seen = new Map<string, number>();
  let current = start;
  while (!seen.has(current)) {
    seen.set(current, path.length);
    path.push(current);
    current = [...pending.get(current)!].sort()[0];
  }
  const cycle = path.slice(seen.get(current));
  return `${[...cycle, cycle[0]].join(" -> ")} (each depends on the next)`;
}
