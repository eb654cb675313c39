/**
 * The example extension: one slice with two endpoints, one static folder, one scheduled task,
 * and a counter of greetings kept in its own database (`this.database`, a Kysely). Copy it to
 * start an extension of your own.
 *
 * @module
 */
import { type ApplicationContext, handle, type Output, ServerSlice } from "@inmanta/server";
import type { Kysely } from "kysely";
import { greet, greetings } from "./api.ts";

/** The tables of the extension's database, as its migrations create them. */
export interface GreeterTables {
  /** One row: the greetings served so far. */
  counter: { id: number; total: number };
}

/** Greets, serves its static page under /greeter/ and counts greetings in its database. */
export class GreeterSlice extends ServerSlice<GreeterTables> {
  #served = 0;
  #reported = 0;

  override getDependencies(): string[] {
    return ["core.server", "core.database"];
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
    // Counted after the answer: a database hiccup is logged, never a failed greeting.
    this.addBackgroundTask(() =>
      this.database.updateTable("counter").set((eb) => ({ total: eb("total", "+", 1) }))
        .where("id", "=", 1).execute()
    );
    const message = `hello ${name}`;
    return { message: shout ? message.toUpperCase() : message };
  }

  @handle(greetings)
  async greetings(): Promise<Output<typeof greetings.returns>> {
    const row = await this.database.selectFrom("counter").select("total").where("id", "=", 1)
      .executeTakeFirstOrThrow();
    return { total: Number(row.total) };
  }
}

/** Registers the greeter slice and the migrations of its database. */
export function setup(application: ApplicationContext): void {
  application.registerMigrations({
    "0001_counter": {
      async up(db: Kysely<GreeterTables>) {
        await db.schema.createTable("counter")
          .addColumn("id", "integer", (c) => c.primaryKey())
          .addColumn("total", "integer", (c) => c.notNull())
          .execute();
        await db.insertInto("counter").values({ id: 1, total: 0 }).execute();
      },
    },
  });
  application.registerSlice(new GreeterSlice("new_extension.greeter"));
}
