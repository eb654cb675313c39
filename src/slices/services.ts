/**
 * Services between slices: a slice offers methods marked with {@link service}; another slice
 * that depends on it gets a {@link Remote} of it from `server.getSlice(name)` in `prestart`.
 * Every call goes through the same checks whatever the isolation of either side: the method is
 * marked, the callee is a declared dependency of the caller, and the callee has not stopped.
 *
 * @module
 */
import { SliceError } from "../errors.ts";

const SERVICES = new WeakSet<object>();

/**
 * Marks a slice method as a service other slices may call through `server.getSlice(name)`
 * (a TC39 method decorator). Across an isolation boundary, arguments and results must be
 * structured-cloneable, and an exception reaches the caller as an error with the same message.
 *
 * @example
 * ```ts
 * import { service, ServerSlice } from "@inmanta/server";
 * class Counter extends ServerSlice {
 *   #count = 0;
 *   @service
 *   increment(by: number): number {
 *     return this.#count += by;
 *   }
 * }
 * ```
 */
export function service<This, A extends unknown[], R>(
  value: (this: This, ...args: A) => R,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => R>,
): void {
  if (context.static || context.private) {
    throw new SliceError(
      "slice.service",
      `@service must decorate a public instance method, not ${String(context.name)}`,
    );
  }
  SERVICES.add(value);
}

/** Whether `member` of `slice` is a method marked with {@link service}. */
export function isService(slice: object, member: string): boolean {
  // Read through descriptors: a getter (such as `database`) is never a service, and is not run.
  for (let o: object | null = slice; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, member);
    if (descriptor) return typeof descriptor.value === "function" && SERVICES.has(descriptor.value);
  }
  return false;
}

/** The names of the methods of `slice` marked with {@link service}. */
export function serviceNames(slice: object): string[] {
  const names = new Set<string>();
  for (
    let proto = Object.getPrototypeOf(slice);
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name !== "constructor" && isService(slice, name)) names.add(name);
    }
  }
  return [...names];
}

/**
 * Another slice as `getSlice` returns it: each of its methods returns a Promise. Only the ones
 * marked {@link service} may be called; any other member rejects with an error naming both
 * slices and the member.
 */
export type Remote<T> = {
  readonly [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: T[K] extends
    (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** Carries one service call to the slice behind a {@link Remote}. */
export type ServiceCall = (member: string, args: unknown[]) => Promise<unknown>;

/**
 * A {@link Remote} whose every member is an async function handing its call to `call`.
 * `then` is not a member, so that awaiting a Remote yields it.
 */
export function remote<T>(call: ServiceCall): Remote<T> {
  return new Proxy(Object.freeze({}), {
    get(_target, member) {
      if (typeof member !== "string" || member === "then") return undefined;
      return (...args: unknown[]) => call(member, args);
    },
  }) as Remote<T>;
}

/** What a service call needs to know about the callee. */
export interface CalleeState {
  /** Its name. */
  name: string;
  /** Its lifecycle status. */
  status: string;
  /** Why it failed, when it did (a sandbox that restarts says so here). */
  reason?: string;
  /** Whether `member` is a marked service method. */
  offers(member: string): boolean;
}

/**
 * Checks a service call before it is made.
 *
 * @param from the calling slice's name
 * @param dependencies the calling slice's `getDependencies()`
 * @param callee the slice called, or undefined when it is not loaded
 * @param to the name of the slice called
 * @param member the method called
 * @throws {SliceError} naming both slices (and the member) when the call is not allowed
 */
export function checkServiceCall(
  from: string,
  dependencies: readonly string[],
  callee: CalleeState | undefined,
  to: string,
  member: string,
): void {
  if (!callee) {
    throw new SliceError(
      "service.not_loaded",
      `slice ${from} called ${to}.${member}(), but slice ${to} is not loaded`,
    );
  }
  if (!dependencies.includes(to)) {
    throw new SliceError(
      "service.not_dependency",
      `slice ${from} called ${to}.${member}(), but ${to} is not in its getDependencies()`,
    );
  }
  if (!callee.offers(member)) {
    throw new SliceError(
      "service.not_service",
      `slice ${from} called ${to}.${member}(), which is not a method of ${to} marked @service`,
    );
  }
  if (callee.status === "stopped" || callee.status === "failed") {
    throw new SliceError(
      "service.stopped",
      `slice ${from} called ${to}.${member}(), but slice ${to} is ${callee.status}${
        callee.reason ? ` (${callee.reason})` : ""
      }`,
    );
  }
}

/** An error a callee threw, as the caller gets it: the same message, no stack of the callee. */
export function calleeError(error: unknown): Error {
  if (error instanceof SliceError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const copy = new Error(message);
  if (error instanceof Error && error.name !== "Error") copy.name = error.name;
  return copy;
}
