/**
 * The core extension against a real server: serverstatus, health while starting and stopping,
 * 503 for a slice that has not started, graceful drain of requests in flight.
 */
import assert from "node:assert/strict";
import { FeatureManager } from "@inmanta/server";
import { getJson, startServer, tempDir, writeExtension } from "./helpers.ts";

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
  await using test = await startServer({ roots: [root.path], enable: ["feat"] });
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
      reason: null,
      schema_version: null,
      restarts: 0,
      last_failure: null,
    },
    {
      name: "feat",
      version: "unversioned",
      source: `${root.path}/inmanta_ext/feat/extension.ts`,
      isolation: "process",
      permissions: `read=${root.path}/inmanta_ext/feat`,
      status: "loaded",
      reason: null,
      schema_version: null,
      restarts: 0,
      last_failure: null,
    },
  ]);
  // Start order: the listener last (as Inmanta's core.transport), core.server not after it.
  const slice = (name: string, dependencies: string[] = []) => ({
    name,
    state: "started",
    status: {},
    dependencies,
    dependedBy: [],
    reason: null,
  });
  const port = test.server.addresses[0].port;
  assert.deepEqual(data.slices, [
    slice("core.server"),
    // Its getStatus(): the embedded engine and where its files are (never a password).
    {
      ...slice("core.database"),
      status: {
        engine: "embedded",
        state_dir: (data.slices as { status: { state_dir: string } }[])[1].status.state_dir,
      },
    },
    slice("feat.main"),
    // Its getStatus(): where it listens, and this very request in flight.
    { ...slice("core.transport"), status: { listening: [`127.0.0.1:${port}`], in_flight: 1 } },
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
  const test = await startServer({
    roots: [root.path],
    enable: ["fm_one", "fm_two"],
    start: false,
  });
  await assert.rejects(
    test.server.start(),
    /extension fm_two sets the feature manager, but extension fm_one already did/,
  );
});

Deno.test("starting: no answer until every slice started, then health is up (as Inmanta)", async () => {
  const g = gates();
  await using root = await tempDir();
  await writeExtension(root.path, "gated", GATED);
  const test = await startServer({
    roots: [root.path],
    enable: ["gated"],
    start: false,
    isolation: "none",
  });
  const starting = test.server.start();
  await until(g, "starting");

  // The listener is the last slice to start: while gated.main starts, no port is open.
  assert.deepEqual(test.server.addresses, []);
  assert.equal(test.server.getSlice("core.transport").state, "starting");
  assert.equal(test.server.getSlice("core.server").state, "started");

  g.start.resolve();
  await starting;
  const up = await getJson(`${test.url}/api/v2/health`);
  assert.deepEqual([up.status, up.body], [200, { data: { status: "up" } }]);
  g.prestop.resolve();
  g.slow.resolve();
  await test.stop();
});

Deno.test("stopping: the listener stops first: 503 and health 'stopping', in-flight requests complete, then the slices' prestop", async () => {
  const g = gates();
  g.start.resolve();
  await using root = await tempDir();
  await writeExtension(root.path, "gated", GATED);
  const test = await startServer({ roots: [root.path], enable: ["gated"], isolation: "none" });
  const url = test.url;

  const inFlight = getJson(`${url}/api/v2/slow`);
  await until(g, "slow request");
  const stopping = test.server.stop();

  const health = await getJson(`${url}/api/v2/health`);
  assert.deepEqual([health.status, health.body], [
    503,
    { data: { status: "stopping", failed: [] }, message: "server is stopping" },
  ]);
  const quick = await getJson(`${url}/api/v2/quick`, { headers: { "x-request-id": "late-1" } });
  assert.deepEqual([quick.status, quick.body], [503, { message: "server is stopping" }]);
  assert.equal(quick.headers.get("x-request-id"), "late-1", "the refusal echoes the request id");
  assert.match(
    health.headers.get("x-request-id")!,
    /^[0-9a-f]{8}-/,
    "an id is made when none came",
  );
  // core.transport drains before any other slice's prestop.
  assert.deepEqual(g.events, ["starting", "slow request"]);

  g.slow.resolve();
  const done = await inFlight;
  assert.deepEqual([done.status, done.body], [200, { data: "done" }]);
  await until(g, "prestop");
  // During the other slices' prestop the port still answers 503.
  assert.equal((await getJson(`${url}/api/v2/health`)).status, 503);
  g.prestop.resolve();
  await stopping;
  assert.equal(test.server.state, "stopped");
  await assert.rejects(fetch(`${url}/api/v2/health`));
});

const IDIOM = `import { FeatureManager, handle, method, ServerSlice } from "@inmanta/server";
export const seen = method({ path: "/idiom/features", operation: "GET" });
class Features extends FeatureManager {
  getFeatures() {
    return [
      { slice: "idiom.ui", name: "dashboards", description: "Dashboards", value: false },
      { slice: "idiom.ui", name: "reports", description: "Reports", value: true },
    ];
  }
}
class Ui extends ServerSlice {
  #seen = {};
  getDependencies() { return ["core.server"]; }
  getDependedBy() { return ["core.transport"]; }
  prestart() {
    const fm = this.featureManager;
    this.#seen = { dashboards: fm.enabled("dashboards"), reports: fm.enabled("reports"), unlisted: fm.enabled("unlisted") };
    this.addStaticContent("/idiom/hello.txt", "hello", "text/plain");
  }
  @handle(seen)
  seen() { return this.#seen; }
}
class NeedsListener extends ServerSlice {
  getDependencies() { return ["core.transport"]; }
}
export function setup(app) {
  app.setFeatureManager(new Features());
  app.registerSlice(new NeedsListener("idiom.after_listener"));
  app.registerSlice(new Ui("idiom.ui"));
}
`;

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] the Inmanta idiom (depends on core.server, depended on by core.transport) starts; the listener opens after every serving slice`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "idiom", IDIOM);
    await using test = await startServer({ roots: [root.path], enable: ["idiom"], isolation });
    assert.deepEqual(test.server.slices.map((s) => s.name), [
      "core.server",
      "core.database",
      "idiom.ui",
      "core.transport",
      // It asked to start after the listener (it serves nothing).
      "idiom.after_listener",
    ]);
    assert.deepEqual(test.server.getSlice("core.server").getDependencies(), []);
    // featureManager from prestart on, the one setFeatureManager set (unlisted: enabled).
    const features = await getJson(`${test.url}/api/v2/idiom/features`);
    assert.deepEqual(features.body, {
      data: { dashboards: false, reports: true, unlisted: true },
    });
    assert.equal(await (await fetch(`${test.url}/idiom/hello.txt`)).text(), "hello");
  });

  Deno.test(`[isolation=${isolation}] a slice sees the feature manager another extension set`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "idiom", IDIOM);
    await writeExtension(
      root.path,
      "reader",
      `import { handle, method, ServerSlice } from "@inmanta/server";
export const seen = method({ path: "/reader/features", operation: "GET" });
class Reader extends ServerSlice {
  #seen = {};
  prestart() {
    const fm = this.featureManager;
    this.#seen = { dashboards: fm.enabled("dashboards"), listed: fm.getFeatures().length };
  }
  @handle(seen)
  seen() { return this.#seen; }
}
export function setup(app) { app.registerSlice(new Reader("reader.main")); }
`,
    );
    // The owner runs in a process of its own; the reader in each mode.
    await using test = await startServer({
      roots: [root.path],
      enable: ["idiom", "reader"],
      config: `[extension.reader]\nisolation = ${isolation}\n`,
    });
    const features = await getJson(`${test.url}/api/v2/reader/features`);
    assert.deepEqual(features.body, { data: { dashboards: false, listed: 2 } });
  });

  Deno.test(`[isolation=${isolation}] a slice that serves endpoints but starts after core.transport is a start-up error naming it`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "late",
      `import { handle, method, ServerSlice } from "@inmanta/server";
export const ping = method({ path: "/late/ping", operation: "GET" });
class Late extends ServerSlice {
  getDependencies() { return ["core.transport"]; }
  @handle(ping) ping() { return "pong"; }
}
export function setup(app) { app.registerSlice(new Late("late.main")); }
`,
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["late"],
      isolation,
      start: false,
    });
    await assert.rejects(test.server.start(), (error: unknown) => {
      assert.equal((error as { code?: string }).code, "slice.transport_order");
      assert.match(
        (error as Error).message,
        /^slice late\.main serves endpoints or static content but starts after core\.transport/,
      );
      return true;
    });
    await test.stop();
  });
}

const STATUS = `import { ServerSlice } from "@inmanta/server";
class Counting extends ServerSlice {
  getStatus() { return { served: 3, backend: "reachable" }; }
}
class Later extends ServerSlice {
  async getStatus() { await Promise.resolve(); return { connected: true }; }
}
class Broken extends ServerSlice {
  getStatus() { throw new Error("no status today"); }
}
export function setup(app) {
  app.registerSlice(new Counting("stat.counting"));
  app.registerSlice(new Later("stat.later"));
  app.registerSlice(new Broken("stat.broken"));
  app.registerSlice(new ServerSlice("stat.plain"));
}
`;

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test({
    name:
      `[isolation=${isolation}] serverstatus: each slice's getStatus() as status, next to its lifecycle state (as Inmanta's get_status)`,
    fn: async () => {
      await using root = await tempDir();
      await writeExtension(root.path, "stat", STATUS);
      await using test = await startServer({ roots: [root.path], enable: ["stat"], isolation });
      const { body } = await getJson(`${test.url}/api/v1/serverstatus`);
      const slices = (body.data as { slices: { name: string; state: string; status: unknown }[] })
        .slices.filter((s) => s.name.startsWith("stat."))
        .map(({ name, state, status }) => ({ name, state, status }));
      assert.deepEqual(slices, [
        { name: "stat.counting", state: "started", status: { served: 3, backend: "reachable" } },
        { name: "stat.later", state: "started", status: { connected: true } },
        {
          name: "stat.broken",
          state: "started",
          status: { error: "getStatus() failed: no status today" },
        },
        { name: "stat.plain", state: "started", status: {} },
      ]);
      assert.ok(
        test.logs.some((r) =>
          r.level === "warning" &&
          r.message === "slice stat.broken: getStatus() failed: no status today"
        ),
      );
    },
  });
}
