/**
 * The example extension: one slice with one endpoint, one static folder and one scheduled task.
 * Copy it to start an extension of your own.
 *
 * @module
 */
import { type ApplicationContext, handle, type Output, ServerSlice } from "@inmanta/server";
import { greet } from "./api.ts";

/** Greets, serves its static page under /greeter/ and reports how many greetings it served. */
export class GreeterSlice extends ServerSlice {
  #served = 0;
  #reported = 0;

  override getDependencies(): string[] {
    return ["core.server"];
  }

  /** As in Inmanta: the listener opens only once this slice serves. */
  override getDependedBy(): string[] {
    return ["core.transport"];
  }

  override start(): void {
    this.addStaticHandler("/greeter", new URL("./static/", import.meta.url));
    this.schedule(() => this.#report(), 60, { initialDelay: 60, name: "report greetings" });
  }

  /** What `serverstatus` shows of this slice (Inmanta's `get_status()`). */
  override getStatus(): Record<string, unknown> {
    return { greetings_served: this.#served };
  }

  #report(): void {
    if (this.#served === this.#reported) return;
    this.logger.info(`${this.#served - this.#reported} greeting(s) served in the last minute`);
    this.#reported = this.#served;
  }

  @handle(greet)
  greet({ name, shout }: Output<typeof greet.args>): Output<typeof greet.returns> {
    this.#served++;
    const message = `hello ${name}`;
    return { message: shout ? message.toUpperCase() : message };
  }
}

/** Registers the greeter slice. */
export function setup(application: ApplicationContext): void {
  application.registerSlice(new GreeterSlice("new_extension.greeter"));
}
