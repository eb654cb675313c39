/**
 * The endpoint mechanism against a real server: decoding, validation, envelopes, statuses,
 * start-up checks of the method table, and the OpenAPI document. Every test runs with the
 * extension in-process (isolation = none) and in its sandbox (isolation = worker).
 */
import assert from "node:assert/strict";
import { method, ProtocolError } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
import { getJson, logged, startServer, tempDir, writeExtension } from "./helpers.ts";

const API = await Deno.readTextFile(new URL("./fixtures/api_extension.ts", import.meta.url));

const MODES = ["none", "worker", "process"] as const;

async function apiServer(isolation: typeof MODES[number]) {
  const root = await tempDir();
  await writeExtension(root.path, "api", API);
  const test = await startServer({ roots: [root.path], enable: ["api"], isolation });
  return {
    url: test.url,
    test,
    async [Symbol.asyncDispose]() {
      await test.stop();
      await root[Symbol.asyncDispose]();
    },
  };
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] endpoints: arguments, envelopes and statuses`, async (t) => {
    await using api = await apiServer(isolation);
    const { url } = api;

    await t.step("path and query arguments, coerced and validated", async () => {
      const r = await getJson(`${url}/api/v2/echo/42?tags=a&tags=b&q=x`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { data: { id: 42, tags: ["a", "b"], q: "x" } });
      const one = await getJson(`${url}/api/v2/echo/7?tags=solo`);
      assert.deepEqual(one.body, { data: { id: 7, tags: ["solo"] } });
    });
    await t.step("fields the method does not declare: 400 naming them (as Inmanta)", async () => {
      const query = await getJson(`${url}/api/v2/echo/7?tags=solo&unknown=x&other=y`);
      assert.deepEqual([query.status, query.body], [400, {
        message:
          "request contains fields 'unknown', 'other' that are not declared in method GET /api/v2/echo/:id",
      }]);
      const body = await getJson(`${url}/api/v2/items`, {
        method: "POST",
        body: JSON.stringify({ name: "box", count: 3, colour: "red" }),
        headers: { "content-type": "application/json" },
      });
      assert.deepEqual([body.status, body.body], [400, {
        message:
          "request contains fields 'colour' that are not declared in method POST /api/v2/items",
      }]);
    });
    await t.step("a schema that accepts more on purpose (z.looseObject) gets it", async () => {
      const r = await getJson(`${url}/api/v2/loose`, {
        method: "POST",
        body: JSON.stringify({ name: "a", extra: 1 }),
      });
      assert.deepEqual([r.status, r.body], [200, { data: ["name", "extra"] }]);
    });
    await t.step(
      "returns: a mismatch is a 500 and a log line naming method and field (as Inmanta)",
      async () => {
        const line = logged(api.test, (r) => r.message.includes("/api/v2/bad-answer"));
        const r = await getJson(`${url}/api/v2/bad-answer`);
        assert.deepEqual([r.status, r.body], [500, {
          message:
            "internal server error: the answer of GET /api/v2/bad-answer does not match its declared return type",
        }]);
        const record = await line;
        assert.equal(record.level, "error");
        assert.match(
          record.message,
          /^method GET \/api\/v2\/bad-answer returned a value that does not match its returns schema: field 'count': /,
        );
      },
    );
    await t.step(
      "returns: the parsed value is sent (defaults filled in, undeclared fields dropped)",
      async () => {
        const r = await getJson(`${url}/api/v2/parsed-answer`);
        assert.deepEqual([r.status, r.body], [200, { data: { shown: "yes", note: "filled in" } }]);
      },
    );
    await t.step("JSON body with a declared status", async () => {
      const r = await getJson(`${url}/api/v2/items`, {
        method: "POST",
        body: JSON.stringify({ name: "box", count: 3 }),
        headers: { "content-type": "application/json" },
      });
      assert.equal(r.status, 201);
      assert.deepEqual(r.body, { data: { name: "box", count: 3 } });
    });
    await t.step("a handler returning nothing answers data null", async () => {
      const r = await getJson(`${url}/api/v2/items/box`, { method: "DELETE" });
      assert.deepEqual([r.status, r.body], [200, { data: null }]);
    });
    await t.step("invalid arguments: 400 naming the field", async () => {
      const r = await getJson(`${url}/api/v2/echo/notanumber`);
      assert.equal(r.status, 400);
      assert.match(r.body.message as string, /^invalid argument 'id': /);
      const body = await getJson(`${url}/api/v2/items`, {
        method: "POST",
        body: JSON.stringify({ name: "box", count: 0 }),
      });
      assert.equal(body.status, 400);
      assert.match(body.body.message as string, /^invalid argument 'count': Too small/);
      const missing = await getJson(`${url}/api/v2/items`, { method: "POST", body: "{}" });
      assert.match(
        missing.body.message as string,
        /invalid argument 'name'.*invalid argument 'count'/,
      );
    });
    await t.step("malformed JSON and a body that is not an object: 400", async () => {
      const r = await getJson(`${url}/api/v2/items`, { method: "POST", body: "{nope" });
      assert.equal(r.status, 400);
      assert.match(r.body.message as string, /^request body is not valid JSON: /);
      const list = await getJson(`${url}/api/v2/items`, { method: "POST", body: "[1,2]" });
      assert.deepEqual([list.status, list.body.message], [
        400,
        "request body must be a JSON object of arguments",
      ]);
    });
    await t.step("unknown route: 404", async () => {
      const r = await getJson(`${url}/api/v2/nothing/here`);
      assert.deepEqual([r.status, r.body], [404, {
        message: "no route for GET /api/v2/nothing/here",
      }]);
      const version = await getJson(`${url}/api/v1/echo/1`);
      assert.equal(version.status, 404);
    });
    await t.step("routing: literal before parameter, decoding, trailing slash, HEAD", async () => {
      const get = async (path: string) => {
        const r = await getJson(`${url}/api/v2${path}`);
        return [r.status, r.body];
      };
      const names = (first: string, last: string) => [200, { data: { first, last } }];
      assert.deepEqual(await get("/names/ada/lovelace"), names("ada", "lovelace"));
      assert.deepEqual(await get("/names/latest/info"), [200, { data: "info" }]);
      // The literal branch fails at its last segment, so the parameters take the path.
      assert.deepEqual(await get("/names/latest/doe"), names("latest", "doe"));
      assert.deepEqual(await get("/names/a%20b/c%2Fd"), names("a b", "c/d"));
      assert.deepEqual(await get("/names/ada/lovelace/"), names("ada", "lovelace"));
      assert.deepEqual(await get("/names/latest/%69nfo"), [200, { data: "info" }]);
      assert.deepEqual(await get("/names/ada"), [404, {
        message: "no route for GET /api/v2/names/ada",
      }]);
      assert.equal((await get("/names//x"))[0], 404);
      const head = await fetch(`${url}/api/v2/echo/1`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
    });
    await t.step("wrong operation on a known path: 405 with Allow", async () => {
      const r = await getJson(`${url}/api/v2/echo/1`, { method: "POST", body: "{}" });
      assert.equal(r.status, 405);
      assert.equal(r.headers.get("allow"), "GET, HEAD");
      assert.equal(r.body.message, "POST is not allowed on /api/v2/echo/:id; use GET, HEAD");
      const del = await getJson(`${url}/api/v2/items`, { method: "DELETE" });
      assert.deepEqual([del.status, del.headers.get("allow")], [405, "POST"]);
    });
    await t.step("body too large: 413, by declared length and by streamed size", async () => {
      const big = JSON.stringify({ blob: "x".repeat(2000) });
      const r = await getJson(`${url}/api/v2/upload`, { method: "PUT", body: big });
      assert.deepEqual([r.status, r.body], [413, {
        message: "request body is larger than 1024 bytes",
      }]);
      const stream = new Blob([big]).stream();
      const chunked = await getJson(`${url}/api/v2/upload`, { method: "PUT", body: stream });
      assert.equal(chunked.status, 413);
      const small = await getJson(`${url}/api/v2/upload`, {
        method: "PUT",
        body: '{"blob":"abc"}',
      });
      assert.deepEqual(small.body, { data: { size: 3 } });
    });
    await t.step("handler throws: 500 without the stack, which goes to the log", async () => {
      const r = await getJson(`${url}/api/v1/fail`);
      assert.deepEqual([r.status, r.body], [500, { message: "internal server error" }]);
      assert.ok(!JSON.stringify(r.body).includes("secret"));
      const logged = api.test.logs.find((l) => l.message.includes("secret internal detail"));
      assert.ok(logged);
      assert.equal(logged.level, "error");
      assert.match(
        logged.message,
        /^GET \/api\/v1\/fail failed: Error: secret internal detail\n\s+at /,
      );
    });
    await t.step("HttpError: the handler's own status and message", async () => {
      const r = await getJson(`${url}/api/v2/teapot`);
      assert.deepEqual([r.status, r.body], [418, { message: "I'm a teapot" }]);
    });
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] endpoints: the OpenAPI 3.1 document lists every method`, async () => {
    await using api = await apiServer(isolation);
    const r = await getJson(`${api.url}/api/v2/docs/openapi.json`);
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, "3.1.0");
    const paths = r.body.paths as Record<string, Record<string, Record<string, unknown>>>;
    assert.deepEqual(Object.keys(paths).sort(), [
      "/api/v1/fail",
      "/api/v1/serverstatus",
      "/api/v2/bad-answer",
      "/api/v2/docs/openapi.json",
      "/api/v2/echo/{id}",
      "/api/v2/extension-metrics",
      "/api/v2/health",
      "/api/v2/items",
      "/api/v2/items/{name}",
      "/api/v2/loose",
      "/api/v2/names/latest/info",
      "/api/v2/names/{first}/{last}",
      "/api/v2/parsed-answer",
      "/api/v2/scheduled-tasks",
      "/api/v2/teapot",
      "/api/v2/upload",
    ]);
    const echo = paths["/api/v2/echo/{id}"].get;
    assert.equal(echo.summary, "Echo the arguments");
    assert.deepEqual(
      (echo.parameters as { name: string; in: string }[]).map((p) => `${p.in}:${p.name}`),
      ["path:id", "query:tags", "query:q"],
    );
    const create = paths["/api/v2/items"].post;
    assert.ok("201" in (create.responses as object));
    assert.deepEqual(
      (create.requestBody as {
        content: { "application/json": { schema: { required: string[] } } };
      })
        .content["application/json"].schema.required,
      ["name", "count"],
    );
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] method table: duplicate and missing handlers are start-up errors`, async (t) => {
    await using root = await tempDir();
    await writeExtension(root.path, "api", API);
    await writeExtension(
      root.path,
      "copycat",
      `import { handle, ServerSlice } from "@inmanta/server";
import { echo } from "../api/extension.ts";
class Copy extends ServerSlice {
  @handle(echo)
  echo() { return {}; }
}
export function setup(app) { app.registerSlice(new Copy("copycat.main")); }
`,
    );
    await writeExtension(
      root.path,
      "forgetful",
      `import { method, ServerSlice } from "@inmanta/server";
export const orphan = method({ path: "/orphan", operation: "GET" });
export function setup(app) { app.registerSlice(new ServerSlice("forgetful.main")); }
`,
    );
    await t.step("two slices handle the same method", async () => {
      const test = await startServer({
        roots: [root.path],
        enable: ["api", "copycat"],
        start: false,
        isolation,
        config: `[extension.copycat]\npermissions = read=${root.path}\n`,
      });
      await assert.rejects(test.server.start(), (e: unknown) => {
        assert.ok(e instanceof ProtocolError);
        assert.equal(e.code, "method.duplicate_handler");
        assert.equal(
          e.message,
          "method GET /api/v2/echo/:id is handled by two slices: api.main and copycat.main",
        );
        return true;
      });
    });
    await t.step("a method nobody handles", async () => {
      const test = await startServer({
        roots: [root.path],
        enable: ["forgetful"],
        start: false,
        isolation,
      });
      await assert.rejects(test.server.start(), (e: unknown) => {
        assert.ok(e instanceof ProtocolError);
        assert.equal(e.code, "method.unhandled");
        assert.match(
          e.message,
          /^method GET \/api\/v2\/orphan exported by extension forgetful has no handler/,
        );
        return true;
      });
    });
  });
}

for (const isolation of MODES) {
  Deno.test(`[isolation=${isolation}] clientTypes: only Inmanta's api, agent, compiler; another is a start-up error naming the method`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "typo",
      `import { handle, method, ServerSlice } from "@inmanta/server";
export const report = method({ path: "/report", operation: "GET", clientTypes: ["agent", "robot"] });
class Typo extends ServerSlice {
  @handle(report)
  report() { return "ok"; }
}
export function setup(app) { app.registerSlice(new Typo("typo.main")); }
`,
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["typo"],
      start: false,
      isolation,
    });
    await assert.rejects(
      test.server.start(),
      /extension typo: .*method GET \/report: unknown client type 'robot': use api, agent, compiler/,
    );
    await test.stop();
  });
}

Deno.test("method(): clientTypes take Inmanta's client types only", () => {
  for (const clientTypes of [["api"], ["agent"], ["compiler"], ["api", "agent", "compiler"]]) {
    assert.deepEqual(
      method({ path: "/x", operation: "GET", clientTypes }).clientTypes,
      clientTypes,
    );
  }
  for (const clientTypes of [["API"], ["admin"], []]) {
    assert.throws(() => method({ path: "/x", operation: "GET", clientTypes }), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, "method.client_types");
      assert.match(e.message, /^method GET \/x: /);
      return true;
    });
  }
});

Deno.test("method(): a bad definition is an error where it is written", () => {
  const bad = (options: Parameters<typeof method>[0], message: RegExp) =>
    assert.throws(() => method(options), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, "method.path");
      assert.match(e.message, message);
      return true;
    });
  bad({ path: "items", operation: "GET" }, /^method GET items: path must start with '\/'$/);
  bad(
    { path: "/items/v:id", operation: "GET", args: z.object({ id: z.string() }) },
    /^method GET \/items\/v:id: 'v:id' is not a parameter: write a whole segment ':name'$/,
  );
  bad(
    { path: "/items/:id", operation: "GET", args: z.object({ name: z.string() }) },
    /path parameter 'id' is not in the argument schema/,
  );
  assert.equal(
    method({ path: "/items/:id", operation: "GET", args: z.object({ id: z.string() }) }).url,
    "/api/v2/items/:id",
  );
});
