/**
 * The core extension against a real server: serverstatus, health while starting and stopping,
 * 503 for a slice that has not started, graceful drain of requests in flight.
 */
import assert from "node:assert/strict";
import { FeatureManager } from "@inmanta/server";
import { getJson, startTestServer, tempDir, writeExtension } from "./helpers.ts";

interface Gates {
  start: PromiseWithResolvers<void>;
  prestop: PromiseWithResolvers<void>;
  slow: PromiseWithResolvers<void>;
  events: string[];
  listeners: (() => void)[];
}

const GATED = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
const gates = globalThis.coreGates;
const note = (event) => { gates.events.push(event); for (const f of gates.listeners.splice(0)) f(); };
export const slow = method({ path: "/slow", operation: "GET", returns: z.string() });
export const quick = method({ path: "/quick", operation: "GET", returns: z.string() });
class Gated extends ServerSlice {
  getDependencies() { return ["core.server"]; }
  async start() { note("starting"); await gates.start.promise; }
  async prestop() { note("prestop"); await gates.prestop.promise; }
  @handle(slow)
  async slow() { note("slow request"); await gates.slow.promise; return "done"; }
  @handle(quick)
  quick() { return "quick"; }
}
export function setup(app) { app.registerSlice(new Gated("gated.main")); }
`;

function gates(): Gates {
  const g: Gates = {
    start: Promise.withResolvers(),
    prestop: Promise.withResolvers(),
    slow: Promise.withResolvers(),
    events: [],
    listeners: [],
  };
  (globalThis as unknown as { coreGates: Gates }).coreGates = g;
  return g;
}

function until(g: Gates, event: string): Promise<void> {
  return new Promise((resolve) => {
    const check = () => g.events.includes(event) ? resolve() : g.listeners.push(check);
    check();
  });
}

Deno.test("serverstatus lists product, version, extensions, slices and features", async () => {
  await using root = await tempDir();
  await writeExtension(
    root.path,
    "feat",
    `import { FeatureManager, ServerSlice } from "@inmanta/server";
class Features extends FeatureManager {
  getFeatures() { return [{ slice: "feat.main", name: "dashboards", description: "Dashboards", value: true }]; }
}
export function setup(app) {
  app.setFeatureManager(new Features());
  app.registerSlice(new ServerSlice("feat.main"));
}
`,
  );
  await using test = await startTestServer({ roots: [root.path], enable: ["feat"] });
  const { status, body } = await getJson(`${test.url}/api/v1/serverstatus`);
  assert.equal(status, 200);
  const data = body.data as Record<string, unknown>;
  assert.equal(data.product, "inmanta-server (Deno)");
  assert.equal(data.version, "0.1.0");
  assert.deepEqual(data.extensions, [
    {
      name: "core",
      version: "0.1.0",
      source: "builtin",
      isolation: "none",
      permissions: "all of the server's",
      status: "loaded",
      schema_version: null,
    },
    {
      name: "feat",
      version: "unversioned",
      source: `${root.path}/inmanta_ext/feat/extension.ts`,
      isolation: "process",
      permissions: `read=${root.path}/inmanta_ext/feat`,
      status: "loaded",
      schema_version: null,
    },
  ]);
  assert.deepEqual(data.slices, [
    { name: "core.transport", status: "started", dependencies: [], dependedBy: [] },
    {
      name: "core.server",
      status: "started",
      dependencies: ["core.transport"],
      dependedBy: [],
    },
    { name: "core.database", status: "started", dependencies: [], dependedBy: [] },
    { name: "feat.main", status: "started", dependencies: [], dependedBy: [] },
  ]);
  assert.deepEqual(data.features, [
    { slice: "feat.main", name: "dashboards", description: "Dashboards", value: true },
  ]);
  assert.ok(new FeatureManager().enabled("anything"));
});

Deno.test("a second feature manager is refused, naming both extensions", async () => {
  await using root = await tempDir();
  const source = `import { FeatureManager } from "@inmanta/server";
export function setup(app) { app.setFeatureManager(new FeatureManager()); }
`;
  await writeExtension(root.path, "fm_one", source);
  await writeExtension(root.path, "fm_two", source);
  const test = await startTestServer({
    roots: [root.path],
    enable: ["fm_one", "fm_two"],
    start: false,
  });
  await assert.rejects(
    test.server.start(),
    /extension fm_two sets the feature manager, but extension fm_one already did/,
  );
});

Deno.test("health and endpoints answer 503 while starting, 200 once started", async () => {
  const g = gates();
  await using root = await tempDir();
  await writeExtension(root.path, "gated", GATED);
  const test = await startTestServer({
    roots: [root.path],
    enable: ["gated"],
    start: false,
    isolation: "none",
  });
  const starting = test.server.start();
  await until(g, "starting");

  const health = await getJson(`${test.url}/api/v2/health`);
  assert.deepEqual([health.status, health.body], [503, { message: "server is starting" }]);
  const quick = await getJson(`${test.url}/api/v2/quick`);
  assert.deepEqual([quick.status, quick.body], [
    503,
    { message: "slice gated.main is not started (starting)" },
  ]);
  const status = await getJson(`${test.url}/api/v1/serverstatus`);
  const slices = (status.body.data as { slices: { name: string; status: string }[] }).slices;
  assert.equal(slices.find((s) => s.name === "gated.main")?.status, "starting");

  g.start.resolve();
  await starting;
  const up = await getJson(`${test.url}/api/v2/health`);
  assert.deepEqual([up.status, up.body], [200, { data: { status: "up" } }]);
  g.prestop.resolve();
  g.slow.resolve();
  await test.stop();
});

Deno.test("stopping: new requests get 503, requests in flight complete", async () => {
  const g = gates();
  g.start.resolve();
  await using root = await tempDir();
  await writeExtension(root.path, "gated", GATED);
  const test = await startTestServer({ roots: [root.path], enable: ["gated"], isolation: "none" });
  const url = test.url;

  const inFlight = getJson(`${url}/api/v2/slow`);
  await until(g, "slow request");
  const stopping = test.server.stop();
  await until(g, "prestop");

  const health = await getJson(`${url}/api/v2/health`);
  assert.deepEqual([health.status, health.body.message], [503, "server is stopping"]);
  const quick = await getJson(`${url}/api/v2/quick`);
  assert.equal(quick.status, 503);

  g.slow.resolve();
  const done = await inFlight;
  assert.deepEqual([done.status, done.body], [200, { data: "done" }]);
  g.prestop.resolve();
  await stopping;
  assert.equal(test.server.state, "stopped");
  await assert.rejects(fetch(`${url}/api/v2/health`));
});
