/**
 * The restart policy of a sandbox (`extension.<name>.restart`, `server.restart`,
 * `server.restart_max_failures`, `server.restart_window`) and its backoff: the delay before each
 * new start doubles from one second to a minute, and after too many failures in the window the
 * extension stays failed.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { ConfigError } from "../errors.ts";

/** When a failed sandbox is started again. */
export interface RestartPolicy {
  /** Failures within {@link RestartPolicy.windowSeconds} after which it stays failed. */
  maxFailures: number;
  /** The window failures are counted in, in seconds. */
  windowSeconds: number;
}

/** The first delay before a restart, in ms; each failure in the window doubles it. */
const FIRST_DELAY_MS = 1000;
/** The longest delay before a restart, in ms. */
const MAX_DELAY_MS = 60_000;

/**
 * The restart policy of extension `name`, or undefined when it is not restarted (`never`).
 *
 * @throws {ConfigError} `config.restart` naming the option, for a value other than `never` or
 *   `on-failure` or limits below one
 */
export function restartPolicy(config: Config, name: string): RestartPolicy | undefined {
  const own = config.string(`extension.${name}`, "restart");
  const value = own || config.string("server", "restart");
  if (value !== "never" && value !== "on-failure") {
    throw new ConfigError(
      "config.restart",
      `${own ? `extension.${name}` : "server"}.restart = ${value}: use never or on-failure`,
    );
  }
  if (value === "never") return undefined;
  const maxFailures = config.int("server", "restart_max_failures");
  const windowSeconds = config.duration("server", "restart_window");
  if (!(maxFailures >= 1) || !(windowSeconds > 0)) {
    throw new ConfigError(
      "config.restart",
      `server.restart_max_failures = ${maxFailures}, server.restart_window = ${windowSeconds}: use at least 1 failure and a window above 0 seconds`,
    );
  }
  return { maxFailures, windowSeconds };
}

/**
 * Counts a sandbox's failures and says how long to wait before starting it again.
 *
 * @example
 * ```ts
 * import { Backoff } from "./restart.ts";
 * const backoff = new Backoff({ maxFailures: 3, windowSeconds: 300 });
 * backoff.failed(0); // 1000: the first restart comes after a second
 * backoff.failed(5000); // 2000
 * backoff.failed(9000); // undefined: a third failure in 300 s, it stays failed
 * ```
 */
export class Backoff {
  readonly #policy: RestartPolicy;
  #failures: number[] = [];

  /** @param policy the limits */
  constructor(policy: RestartPolicy) {
    this.#policy = policy;
  }

  /** The failures counted in the window as of the last {@link Backoff.failed}. */
  get failures(): number {
    return this.#failures.length;
  }

  /**
   * Records a failure at `now` (ms): the delay in ms before the next start, or undefined when
   * the failures in the window reached the limit and the sandbox stays failed.
   */
  failed(now: number = Date.now()): number | undefined {
    const since = now - this.#policy.windowSeconds * 1000;
    this.#failures = [...this.#failures.filter((t) => t > since), now];
    if (this.#failures.length >= this.#policy.maxFailures) return undefined;
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (this.#failures.length - 1));
  }
}
