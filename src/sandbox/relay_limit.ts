/**
 * How much a guest may have in flight through the server: each service call or statement holds
 * its arguments in the server's memory until it ends, and a guest need not wait for its answers,
 * so one guest's calls at once are bounded (1,000, with 64 MiB of arguments).
 *
 * @module
 */

/** Calls one guest may have in flight at once, and the bytes of their arguments. */
const RELAY_LIMIT = { calls: 1000, bytes: 64 * 2 ** 20 } as const;

/**
 * The calls one guest has in flight through the server.
 *
 * @example
 * ```ts
 * import { RelayLimit } from "./relay_limit.ts";
 * const limit = new RelayLimit("x", (text) => console.warn(text));
 * limit.admit(100, "service calls"); // undefined: taken
 * limit.release(100);
 * ```
 */
export class RelayLimit {
  readonly #extension: string;
  readonly #warn: (text: string) => void;
  #calls = 0;
  #bytes = 0;
  /** Whether the log said the guest passed the limit (once, until its calls drain). */
  #warned = false;

  /**
   * @param extension the guest's extension, as errors name it
   * @param warn where the first refusal is logged
   */
  constructor(extension: string, warn: (text: string) => void) {
    this.#extension = extension;
    this.#warn = warn;
  }

  /**
   * Takes one more call of `bytes` (release it with {@link RelayLimit.release}), or answers the
   * error to refuse it with.
   */
  admit(bytes: number, what: string): string | undefined {
    if (this.#calls < RELAY_LIMIT.calls && this.#bytes + bytes <= RELAY_LIMIT.bytes) {
      this.#calls++;
      this.#bytes += bytes;
      return undefined;
    }
    const error =
      `too many ${what} in flight from extension ${this.#extension} (at most ${RELAY_LIMIT.calls} service calls and statements, ${
        RELAY_LIMIT.bytes / 2 ** 20
      } MiB of arguments)`;
    if (!this.#warned) {
      this.#warned = true;
      this.#warn(`${error}: the server refuses more until some end`);
    }
    return error;
  }

  /** A call of `bytes` taken by {@link RelayLimit.admit} ended. */
  release(bytes: number): void {
    this.#calls--;
    this.#bytes -= bytes;
    if (this.#calls === 0) this.#warned = false;
  }
}
