/**
 * Services between slices: a slice in each isolation mode calls the `@service` methods of a
 * slice in each other mode (3×3), with arguments and results of several types, a thrown error,
 * an unmarked method, an undeclared dependency, core.server's getServerStatus(), and a call after
 * stop.
 */
import assert from "node:assert/strict";
import { getJson, startServer, tempDir, writeExtension } from "./helpers.ts";

const MODES = ["none", "worker", "process"] as const;

const PROVIDER = `import { service, ServerSlice } from "@inmanta/server";
class Provider extends ServerSlice {
  @service
  echo(value) { return value; }
  @service
  async add(a, b) { return a + b; }
  @service
  fail(message) { throw new TypeError(message); }
  plain() { return "should not be reachable"; }
}
export function setup(app) { app.registerSlice(new Provider("provider.main")); }
`;

const CONSUMER = `import { handle, method, ServerSlice } from "@inmanta/server";
export const run = method({ path: "/services/run", operation: "GET" });
const outcome = async (work) => {
  try {
    return { ok: await work() };
  } catch (error) {
    return { error: error.message, name: error.name, stack: String(error.stack ?? "") };
  }
};
class Consumer extends ServerSlice {
  getDependencies() { return ["provider.main", "core.server"]; }
  async prestart(server) {
    this.provider = server.getSlice("provider.main");
    this.core = server.getSlice("core.server");
    globalThis.remoteProvider = this.provider;
  }
  @handle(run)
  async run() {
    const p = this.provider;
    const date = await p.echo(new Date(86400000));
    const bytes = await p.echo(new Uint8Array([1, 2, 255]));
    const map = await p.echo(new Map([["k", { deep: [1, null] }]]));
    return {
      number: await p.echo(42),
      text: await p.echo("hé"),
      nested: await p.echo({ a: [1, 2, { b: null }], t: true }),
      date: date instanceof Date ? date.toISOString() : "not a date",
      bytes: bytes instanceof Uint8Array ? [...bytes] : "not bytes",
      map: map instanceof Map ? [...map] : "not a map",
      undef: (await p.echo(undefined)) === undefined,
      sum: await p.add(2, 3),
      thrown: await outcome(() => p.fail("boom")),
      unmarked: await outcome(() => p.plain()),
      lifecycle: await outcome(() => p.stop()),
      notCloneable: await outcome(() => p.echo(() => 1)),
      status: (await this.core.getServerStatus()).product,
      stranger: await globalThis.strangerCall,
    };
  }
}
class Stranger extends ServerSlice {
  prestart(server) {
    const remote = server.getSlice("provider.main");
    globalThis.strangerCall = outcome(() => remote.echo(1));
  }
}
export function setup(app) {
  app.registerSlice(new Stranger("consumer.stranger"));
  app.registerSlice(new Consumer("consumer.main"));
}
`;

for (const provider of MODES) {
  for (const consumer of MODES) {
    Deno.test(`services: a ${consumer} slice calls a ${provider} slice`, async () => {
      await using root = await tempDir();
      await writeExtension(root.path, "provider", PROVIDER);
      await writeExtension(root.path, "consumer", CONSUMER);
      await using test = await startServer({
        roots: [root.path],
        enable: ["provider", "consumer"],
        config: `[extension.provider]\nisolation = ${provider}\n` +
          `[extension.consumer]\nisolation = ${consumer}\n`,
      });
      const { status, body } = await getJson(`${test.url}/api/v2/services/run`);
      assert.equal(status, 200, JSON.stringify(body));
      const data = body.data as Record<string, unknown>;
      assert.equal(data.number, 42);
      assert.equal(data.text, "hé");
      assert.deepEqual(data.nested, { a: [1, 2, { b: null }], t: true });
      assert.equal(data.date, "1970-01-02T00:00:00.000Z");
      assert.deepEqual(data.bytes, [1, 2, 255]);
      assert.deepEqual(data.map, [["k", { deep: [1, null] }]]);
      assert.equal(data.undef, true);
      assert.equal(data.sum, 5);
      const thrown = data.thrown as { error: string; stack: string };
      assert.equal(thrown.error, "boom");
      // The callee's stack stays with the callee.
      assert.doesNotMatch(thrown.stack, /Provider|provider\/extension/);
      assert.match(
        (data.unmarked as { error: string }).error,
        /^slice consumer\.main called provider\.main\.plain\(\), which is not a method of provider\.main marked @service$/,
      );
      assert.match(
        (data.lifecycle as { error: string }).error,
        /^slice consumer\.main called provider\.main\.stop\(\), which is not a method of provider\.main marked @service$/,
      );
      assert.ok((data.notCloneable as { error?: string }).error, "a function cannot cross");
      assert.match(String(data.status), /^inmanta-server/);
      assert.equal(
        (data.stranger as { error: string }).error,
        "slice consumer.stranger called provider.main.echo(), but provider.main is not in its getDependencies()",
      );
    });
  }
}

for (const provider of MODES) {
  Deno.test(`services: a call to a stopped ${provider} slice names both slices`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "provider", PROVIDER);
    await writeExtension(root.path, "consumer", CONSUMER);
    const test = await startServer({
      roots: [root.path],
      enable: ["provider", "consumer"],
      config: `[extension.provider]\nisolation = ${provider}\n` +
        `[extension.consumer]\nisolation = none\n`,
    });
    const remote = (globalThis as unknown as { remoteProvider: { echo(v: number): unknown } })
      .remoteProvider;
    assert.equal(await remote.echo(7), 7);
    await test.stop();
    await assert.rejects(
      Promise.resolve(remote.echo(7)),
      /^SliceError: slice consumer\.main called provider\.main\.echo\(\), but slice provider\.main is stopped$/,
    );
  });
}

Deno.test("services: getSlice of a slice that is not loaded names both", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "lonely",
    `import { ServerSlice } from "@inmanta/server";
class Lonely extends ServerSlice {
  prestart(server) { server.getSlice("nobody.main"); }
}
export function setup(app) { app.registerSlice(new Lonely("lonely.main")); }
`,
  );
  for (const isolation of MODES) {
    await assert.rejects(
      startServer({ roots: [root.path], enable: ["lonely"], isolation }),
      /slice lonely\.main prestart failed: slice nobody\.main is not loaded \(asked for by slice lonely\.main\)/,
    );
  }
});
