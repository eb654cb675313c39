/**
 * Hostile input against a real server: every case gets a clear 4xx and the server goes on.
 */
import assert from "node:assert/strict";
import { getJson, rawStatus, startServer, tempDir, writeExtension } from "./helpers.ts";

const API = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const put = method({
  path: "/things/:id", operation: "PUT", maxBodySize: 65536,
  args: z.object({ id: z.coerce.number().int(), name: z.string(), tags: z.array(z.string()).optional() }),
});
class Things extends ServerSlice { @handle(put) put(args) { return args; } }
export function setup(app) { app.registerSlice(new Things("things.main")); }
`;

async function raw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode(request));
    const buffer = new Uint8Array(65536);
    const n = await conn.read(buffer);
    return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] hostile input gets a clear 4xx`, async (t) => {
    await using root = await tempDir();
    await writeExtension(root.path, "things", API);
    await using test = await startServer({
      roots: [root.path],
      enable: ["things"],
      isolation,
      config: "[server]\nrequest_body_timeout = 1\n",
    });
    const url = `${test.url}/api/v2/things/1`;
    const put = (body: BodyInit) => getJson(url, { method: "PUT", body });

    await t.step("malformed JSON", async () => {
      const r = await put('{"name": "x",');
      assert.equal(r.status, 400);
      assert.match(r.body.message as string, /^request body is not valid JSON: /);
    });
    await t.step("wrong types name the field", async () => {
      const r = await put('{"name": 5, "tags": "a"}');
      assert.equal(r.status, 400);
      assert.match(r.body.message as string, /invalid argument 'name'.*invalid argument 'tags'/);
    });
    await t.step(
      "undeclared fields are refused by name (as Inmanta), nothing is polluted",
      async () => {
        const r = await put('{"name": "x", "admin": true, "__proto__": {"polluted": 1}}');
        assert.deepEqual([r.status, r.body], [400, {
          message:
            "request contains fields 'admin', '__proto__' that are not declared in method PUT /api/v2/things/:id",
        }]);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
      },
    );
    await t.step("deep nesting", async () => {
      const deep = `{"name": "x", "tags": ${"[".repeat(20000)}${"]".repeat(20000)}}`;
      const r = await put(deep);
      assert.equal(r.status, 400);
    });
    await t.step("a huge body: 413 before it is read in full", async () => {
      const huge = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"name": "'));
        },
        pull(controller) {
          controller.enqueue(new Uint8Array(65536).fill(120)); // never ends
        },
      });
      const r = await getJson(url, { method: "PUT", body: huge });
      assert.deepEqual([r.status, r.body], [413, {
        message: "request body is larger than 65536 bytes",
      }]);
    });
    await t.step("huge headers", async () => {
      const response = await raw(
        test.url,
        `GET /api/v2/health HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(200_000)}\r\n\r\n`,
      );
      assert.match(response, /^HTTP\/1\.1 4\d\d /);
    });
    await t.step("NUL bytes and encoded traversal in paths", async () => {
      for (const target of ["/api/v2/things/%00", "/api/%2e%2e/v2/health", "/%00", "/..%2f..%2f"]) {
        const status = await rawStatus(test.url, target);
        assert.ok(status >= 400 && status < 500, `${target} answered ${status}`);
      }
    });
    await t.step("a body that never finishes is timed out", async () => {
      const response = await raw(
        test.url,
        `PUT /api/v2/things/1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"name":`,
      );
      assert.match(response, /^HTTP\/1\.1 408 /);
      assert.match(response, /request body not received within 1s/);
    });
    await t.step("and the server still serves", async () => {
      const r = await put('{"name": "after"}');
      assert.deepEqual([r.status, r.body], [200, { data: { id: 1, name: "after" } }]);
    });
  });
}
