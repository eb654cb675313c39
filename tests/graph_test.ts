/**
 * The slice graph without a server: core.transport's place in the start order (as Inmanta's
 * listener), checked in milliseconds.
 */
import assert from "node:assert/strict";
import { Logger, ServerSlice } from "@inmanta/server";
import { startOrder } from "../src/slices/graph.ts";

class Slice extends ServerSlice {
  constructor(name: string, readonly deps: string[] = [], readonly by: string[] = []) {
    super(name);
  }
  override getDependencies(): string[] {
    return this.deps;
  }
  override getDependedBy(): string[] {
    return this.by;
  }
}

const names = (slices: ServerSlice[]) => slices.map((s) => s.name);
const quiet = new Logger("silent");

Deno.test("graph: core.transport starts after every slice that does not depend on it", () => {
  const order = startOrder([
    new Slice("core.transport"),
    new Slice("core.server"),
    new Slice("a.one", ["core.server"]),
    new Slice("a.two"),
  ], quiet);
  assert.deepEqual(names(order), ["core.server", "a.one", "a.two", "core.transport"]);
});

Deno.test("graph: the Inmanta idiom (depended on by core.transport) is no cycle", () => {
  const order = startOrder([
    new Slice("core.transport"),
    new Slice("core.server"),
    new Slice("ui.console", ["core.server"], ["core.transport"]),
  ], quiet);
  assert.deepEqual(names(order), ["core.server", "ui.console", "core.transport"]);
});

Deno.test("graph: what depends on core.transport, directly or not, starts after it", () => {
  const order = startOrder([
    new Slice("core.transport"),
    new Slice("core.server"),
    new Slice("a.address_user", ["core.transport"]),
    new Slice("a.after_that", ["a.address_user"]),
    new Slice("a.plain"),
  ], quiet);
  assert.deepEqual(names(order), [
    "core.server",
    "a.plain",
    "core.transport",
    "a.address_user",
    "a.after_that",
  ]);
});

Deno.test("graph: a serving slice after core.transport is an error naming it", () => {
  assert.throws(
    () =>
      startOrder(
        [new Slice("core.transport"), new Slice("a.api", ["core.transport"])],
        quiet,
        (slice) => slice.name === "a.api",
      ),
    /^SliceError: slice a\.api serves endpoints or static content but starts after core\.transport/,
  );
});

Deno.test("graph: depending on and depended on by core.transport is a cycle", () => {
  assert.throws(
    () =>
      startOrder(
        [new Slice("core.transport"), new Slice("a.both", ["core.transport"], ["core.transport"])],
        quiet,
      ),
    /dependency cycle between slices: /,
  );
});
