/**
 * A guest's log as the server writes it: how many records it may write per second
 * (`server.sandbox_log_rate`: a guest writing a million lines must not slow the server's log for
 * everyone else; what is dropped is counted and reported once the second is over), and each
 * message as one record of the server's log.
 *
 * @module
 */

/**
 * A per-second budget of log records.
 *
 * @example
 * ```ts
 * import { LogBudget } from "./log_budget.ts";
 * const budget = new LogBudget(2, (dropped) => console.warn(`${dropped} dropped`));
 * budget.allow(); // true
 * budget.allow(); // true
 * budget.allow(); // false: reported as 1 dropped once the second is over
 * budget.close();
 * ```
 */
export class LogBudget {
  readonly #rate: number;
  readonly #report: (dropped: number) => void;
  #window = 0;
  #count = 0;
  #dropped = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param rate records allowed per second
   * @param report told how many records were dropped in a second that dropped some
   */
  constructor(rate: number, report: (dropped: number) => void) {
    this.#rate = rate;
    this.#report = report;
  }

  /** The records allowed per second. */
  get rate(): number {
    return this.#rate;
  }

  /** Whether one more record may be written this second. */
  allow(): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#window) {
      this.#flush();
      this.#window = second;
      this.#count = 0;
    }
    if (++this.#count <= this.#rate) return true;
    // The first record dropped this second: say how many were, once the second is over.
    if (this.#dropped++ === 0) {
      this.#timer = setTimeout(() => this.#flush(), 1000 - (Date.now() % 1000));
    }
    return false;
  }

  /** Reports what is still unreported and stops the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#flush();
  }

  #flush(): void {
    if (this.#dropped === 0) return;
    this.#report(this.#dropped);
    this.#dropped = 0;
  }
}

/**
 * A guest's log message as one record of the server's text log: each line after the first is
 * indented (a line of its own would read as a record of any source, `ERROR   core.server: ...`),
 * and control characters (carriage returns, terminal escapes, which rewrite what an operator's
 * terminal shows) are written as `\xNN`.
 */
export function oneRecord(message: string): string {
  return message.replace(/\r?\n/g, "\n    ").replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
