/**
 * The public test kit and the typed client, used as an extension author would.
 */
import assert from "node:assert/strict";
import type { Server } from "@inmanta/server/server";
import { assertDenied, ClientError, deniedAccess, startTestServer } from "@inmanta/server/testing";
import { greet } from "../extensions/inmanta_ext/new_extension/api.ts";
import * as api from "./fixtures/api_extension.ts";
import { tempDir, writeExtension } from "./helpers.ts";

Deno.test("kit: an extension by path, in its sandbox, called with the typed client", async () => {
  let server: Server;
  {
    await using test = await startTestServer({
      extensions: [{
        name: "new_extension",
        path: new URL("../extensions/inmanta_ext/new_extension/", import.meta.url),
      }],
    });
    server = test.server;
    const { message } = await test.client.call(greet, { name: "kit", shout: "true" });
    assert.equal(message, "HELLO KIT");
    await assert.rejects(test.client.call(greet, { name: "kit", shout: "maybe" }), (e: unknown) => {
      assert.ok(e instanceof ClientError);
      assert.equal(e.status, 400);
      assert.match(e.message, /^invalid argument 'shout': /);
      return true;
    });
    const status = await fetch(`${test.url}/api/v1/serverstatus`).then((r) => r.json());
    assert.equal(status.data.extensions[1].isolation, "process");
  }
  assert.equal(server.state, "stopped", "await using stopped the server");
});

Deno.test("kit: an extension given as a module object runs in-process", async () => {
  await using test = await startTestServer({ extensions: [{ name: "api", module: api }] });
  const echoed = await test.client.call(api.echo, { id: 5, tags: ["a", "b"] });
  assert.deepEqual(echoed, { id: 5, tags: ["a", "b"] });
  const created = await test.client.call(api.create, { name: "box", count: 2 });
  assert.deepEqual(created, { name: "box", count: 2 });
  await assert.rejects(
    test.client.call(api.teapot),
    (e: unknown) => e instanceof ClientError && e.status === 418 && e.message === "I'm a teapot",
  );
});

Deno.test("kit: what a sandboxed extension was denied", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "snoop",
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const peek = method({ path: "/peek", operation: "GET" });
class Snoop extends ServerSlice {
  @handle(peek)
  async peek() { return await Deno.readTextFile("/etc/hostname"); }
}
export function setup(app) { app.registerSlice(new Snoop("snoop.main")); }
`,
  );
  await using test = await startTestServer({
    extensions: [{ name: "snoop", path: root.path }],
  });
  const response = await fetch(`${test.url}/api/v2/peek`);
  assert.equal(response.status, 500);
  await response.body?.cancel();
  assertDenied(test, "snoop", "read", "/etc/hostname");
  assert.deepEqual(deniedAccess(test), [
    { extension: "snoop", kind: "read", target: "/etc/hostname" },
  ]);
  assert.throws(() => assertDenied(test, "snoop", "env"), /was not denied env access/);
});
