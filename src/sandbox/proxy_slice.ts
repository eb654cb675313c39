/**
 * A slice that lives in a guest, as the server sees it: ordering, lifecycle, endpoints, static
 * content and services work as for an in-process slice, and each crosses to the guest through
 * a narrow port (its sandbox).
 *
 * @module
 */
import { z } from "zod";
import { addHandler, method, type MethodDefinition } from "../protocol/method.ts";
import { routeKey } from "../protocol/routes.ts";
import type { BackgroundCounts, ScheduledTaskInfo } from "../scheduler/scheduler.ts";
import { INTERNALS, ServerSlice } from "../slices/slice.ts";
import type { MethodDescriptor, SliceDescriptor, SlicePhase } from "./messages.ts";

/** What a proxy needs of its sandbox. */
export interface GuestPort {
  /** Runs a lifecycle phase of the slice in the guest. */
  call(slice: string, op: SlicePhase, until: number): Promise<void>;
  /** Hands a request to the guest (`api`: a method the server already routed). */
  forward(
    request: Request,
    api?: { key: string; params: Record<string, string> },
    body?: Uint8Array,
  ): Promise<Response>;
  /** Calls a service of the slice in the guest. */
  callService(from: string, to: string, member: string, args: unknown[]): Promise<unknown>;
  /** Scheduled tasks of each slice, as the guest last reported them. */
  readonly tasks: Record<string, ScheduledTaskInfo[]>;
  /** Background task counts of each slice, as the guest last reported them. */
  readonly background: Record<string, BackgroundCounts>;
  /** Seconds until the sandbox serves again, while it restarts; undefined otherwise. */
  retryAfter(): number | undefined;
  /** What a slice's `getStatus()` in the guest returns. */
  status(slice: string): Promise<Record<string, unknown>>;
}

/** A slice in a guest, as the server sees it. */
export class ProxySlice extends ServerSlice {
  readonly #descriptor: SliceDescriptor;
  readonly #port: GuestPort;

  /** A method as the server keeps it: its schemas already checked in the guest. */
  static method(descriptor: MethodDescriptor): MethodDefinition {
    const definition = method({
      path: descriptor.path,
      operation: descriptor.operation,
      apiVersion: descriptor.apiVersion,
      args: z.any(),
      clientTypes: descriptor.clientTypes as never,
      summary: descriptor.summary,
      description: descriptor.description,
      status: descriptor.status,
      enforceAuth: descriptor.enforceAuth,
      maxBodySize: descriptor.maxBodySize,
    });
    return { ...definition, jsonSchemas: { args: descriptor.args, returns: descriptor.returns } };
  }

  /**
   * @param descriptor the slice as its guest described it (checked by the sandbox)
   * @param port its sandbox
   */
  constructor(descriptor: SliceDescriptor, port: GuestPort) {
    super(descriptor.name);
    this.#descriptor = descriptor;
    this.#port = port;
    this.#shape = shape(descriptor);
    for (const handled of descriptor.handles) {
      const definition = ProxySlice.method(handled);
      const key = routeKey(definition);
      addHandler(this, {
        method: definition,
        call: () => {
          throw new Error("a sandboxed method is forwarded, not called");
        },
        forward: (request, params, body) => port.forward(request, { key, params }, body),
      });
    }
    const internals = this[INTERNALS];
    const services = new Set(descriptor.services);
    internals.offers = (member) => services.has(member);
    internals.serve = (from, member, args) => port.callService(from, this.name, member, args);
    internals.backgroundCounts = () =>
      port.background[this.name] ?? { started: 0, running: 0, failed: 0 };
    internals.retryAfter = () => port.retryAfter();
  }

  readonly #shape: string;

  /**
   * Whether a new guest's slice of this name declares what the server relies on as this one
   * did: the routes, the service checks and the start order were built from it.
   */
  declaresAsBefore(descriptor: SliceDescriptor): boolean {
    return shape(descriptor) === this.#shape;
  }

  /** Locations this proxy forwards already (a restarted guest announces them again). */
  readonly #mounted = new Set<string>();

  /** Serves the guest's static content at `location` (it announced a mount). */
  mountForward(location: string, start: boolean): void {
    if (this.#mounted.has(location)) return;
    this.#mounted.add(location);
    this[INTERNALS].mount({
      kind: "proxy",
      location,
      start,
      forward: (request) => this.#port.forward(request),
    });
  }

  /** A new guest runs the slice: it goes through prestart and start again. */
  revive(): void {
    const internals = this[INTERNALS];
    internals.failure = undefined;
    internals.setStatus("registered");
  }

  /** The guest failed: so did this slice, if it had started. */
  fail(reason: string): void {
    const internals = this[INTERNALS];
    internals.failure = reason;
    if (this.status === "started" || this.status === "starting") internals.setStatus("failed");
  }

  override getDependencies(): string[] {
    return this.#descriptor.dependencies;
  }
  override getDependedBy(): string[] {
    return this.#descriptor.dependedBy;
  }
  override prestart(): Promise<void> {
    return this.#port.call(this.name, "prestart", this[INTERNALS].deadline);
  }
  override start(): Promise<void> {
    return this.#port.call(this.name, "start", this[INTERNALS].deadline);
  }
  override prestop(): Promise<void> {
    return this.#port.call(this.name, "prestop", this[INTERNALS].deadline);
  }
  override stop(): Promise<void> {
    return this.#port.call(this.name, "stop", this[INTERNALS].deadline);
  }
  override getStatus(): Promise<Record<string, unknown>> {
    return this.#port.status(this.name);
  }
  override scheduledTasks(): ScheduledTaskInfo[] {
    return this.#port.tasks[this.name] ?? [];
  }
}

/** What the server relies on of a guest's slice: its dependencies, endpoints and services. */
function shape(slice: SliceDescriptor): string {
  return JSON.stringify([
    [...slice.dependencies].sort(),
    [...slice.dependedBy].sort(),
    slice.handles.map((m) => `${m.operation} v${m.apiVersion} ${m.path}`).sort(),
    [...slice.services].sort(),
  ]);
}
