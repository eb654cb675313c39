/**
 * The OpenAPI document as code generators want it: a bearer security scheme when `server.auth`
 * is on (and no security on open methods), the error answers each method can give, operationIds
 * from the handlers' names, `servers` and `license`; `redocly lint` finds no error in it.
 */
import assert from "node:assert/strict";
import { startTestServer } from "@inmanta/server/testing";
import { join } from "node:path";
import { getJson, PROJECT, tempDir, writeExtension } from "./helpers.ts";

const ITEMS = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const putItem = method({
  path: "/items/:id", operation: "PUT",
  args: z.object({ id: z.string(), title: z.string() }), returns: z.object({ id: z.string() }),
});
export const ping = method({ path: "/ping", operation: "GET", enforceAuth: false });
class Items extends ServerSlice {
  @handle(putItem) putItem({ id }) { return { id }; }
  @handle(ping) ping() { return "pong"; }
}
export function setup(app) { app.registerSlice(new Items("items.main")); }
`;

/** `redocly lint` (npm @redocly/cli, installed by .ci/run into .tools/) with its recommended rules. */
async function lint(doc: unknown): Promise<void> {
  const local = join(PROJECT, ".tools/redocly/node_modules/.bin/redocly");
  const binary = await Deno.stat(local).then(() => local, () => undefined);
  if (!binary) {
    if (Deno.env.get("CI")) throw new Error(`${local} is missing: .ci/run installs @redocly/cli`);
    console.warn(
      "SKIPPED redocly lint: npm package @redocly/cli is not installed (.ci/run installs it)",
    );
    return;
  }
  await using dir = await tempDir();
  const file = join(dir.path, "openapi.json");
  await Deno.writeTextFile(file, JSON.stringify(doc));
  const { code, stdout, stderr } = await new Deno.Command(binary, {
    args: ["lint", "--format=stylish", file],
    env: { NO_COLOR: "1", REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, text);
  assert.doesNotMatch(text, /\berror\b/i, text);
}

type Operation = {
  operationId: string;
  security?: unknown[];
  responses: Record<string, unknown>;
};

Deno.test("openapi: security, error answers, operationIds, servers, license", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "items", ITEMS);
  await using test = await startTestServer({
    extensions: [{ name: "items", path: root.path, isolation: "none" }],
    config: `[server]\nauth = true\n[auth_jwt_default]\nkey = ${"k".repeat(40)}\n`,
  });
  const { status, body } = await getJson(`${test.url}/api/v2/docs/openapi.json`);
  assert.equal(status, 200);
  const doc = body as {
    info: { license: { name: string } };
    servers: { url: string }[];
    components: { securitySchemes: Record<string, unknown> };
    paths: Record<string, Record<string, Operation>>;
  };
  assert.equal(doc.info.license.name, "Apache-2.0");
  assert.deepEqual(doc.servers, [{ url: test.url }]);
  assert.deepEqual(doc.components.securitySchemes, {
    bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
  });
  const put = doc.paths["/api/v2/items/{id}"].put;
  assert.equal(put.operationId, "putItem");
  assert.deepEqual(put.security, [{ bearer: [] }]);
  assert.deepEqual(Object.keys(put.responses), [
    "200",
    "400",
    "401",
    "403",
    "408",
    "413",
    "431",
    "500",
    "503",
  ]);
  const ping = doc.paths["/api/v2/ping"].get;
  assert.deepEqual([ping.operationId, ping.security], ["ping", []]);
  assert.deepEqual(Object.keys(ping.responses), ["200", "431", "500", "503"]);
  await lint(body);
  const ids = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
  assert.equal(new Set(ids).size, ids.length, `operationIds are unique: ${ids.join(", ")}`);
});
