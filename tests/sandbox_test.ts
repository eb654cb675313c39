/**
 * Sandboxing against real Workers: grants, denied access of every kind, large bodies,
 * concurrent requests, and faults (top-level throw, dying worker) that fail only their extension.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as kit from "@inmanta/server/testing";
import { ConfigError, type LogRecord } from "@inmanta/server";
import { describeGrant, parseGrant } from "../src/sandbox/grant.ts";
import { getJson, logged, startServer, tempDir, writeExtension } from "./helpers.ts";

const NOSY = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
const probe = method({ path: "/nosy/:kind", operation: "GET", args: z.object({ kind: z.string() }) });
export { probe };
class Nosy extends ServerSlice {
  @handle(probe)
  async probe({ kind }) {
    switch (kind) {
      case "read": return (await Deno.readTextFile("/etc/hostname")).length > 0;
      case "write": await Deno.writeTextFile("/tmp/inmanta-nosy.txt", "x"); return true;
      case "net": (await Deno.connect({ hostname: "127.0.0.1", port: Number(this.port) })).close(); return true;
      case "env": return Deno.env.get("HOME") !== undefined;
      case "run": return (await new Deno.Command("true").output()).success;
      case "ffi": Deno.dlopen("libc.so.6", {}); return true;
      case "sys": return Deno.hostname().length > 0;
      case "ok": return "fine";
    }
  }
}
export function setup(app) {
  const slice = new Nosy("nosy.main");
  slice.port = app.config.string("extension.nosy", "probe_port");
  app.registerSlice(slice);
}
`;

function denial(logs: LogRecord[], kind: string): LogRecord | undefined {
  return logs.find((r) =>
    r.source === "nosy" && r.level === "error" &&
    r.message.startsWith(`permission denied in GET /api/v2/nosy/${kind}: `)
  );
}

Deno.test("grants: parsing, defaults and clear errors", () => {
  const grant = parseGrant(
    "read=/srv/data, ./static; net=api.example.com:443; env=HOME,USER; run; sys=none",
    "extension.x.permissions",
    "/ext/x",
  );
  assert.deepEqual(grant.read, ["/ext/x", "/srv/data", join(Deno.cwd(), "static")]);
  assert.deepEqual(grant.net, ["api.example.com:443"]);
  assert.deepEqual(grant.env, ["HOME", "USER"]);
  assert.equal(grant.run, true);
  assert.equal(grant.sys, false);
  assert.equal(grant.write, false);
  assert.equal(
    describeGrant(grant),
    `read=/ext/x,/srv/data,${
      join(Deno.cwd(), "static")
    }; net=api.example.com:443; env=HOME,USER; run=all`,
  );
  assert.equal(describeGrant(parseGrant("", "o")), "none");
  assert.deepEqual(parseGrant("", "o", "/ext/y").read, ["/ext/y"]);
  assert.equal(parseGrant("read=all", "o", "/ext/y").read, true);
  assert.throws(
    () => parseGrant("read=/a; disk=/b", "extension.x.permissions"),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        "extension.x.permissions: unknown permission kind 'disk' (use read, write, net, env, run, ffi, sys, import)",
  );
});

Deno.test("sandbox: denied access of every kind fails that request with 500 and is logged", async (t) => {
  await using root = await tempDir();
  await writeExtension(root.path, "nosy", NOSY);
  await using test = await startServer({
    roots: [root.path],
    enable: ["nosy"],
    config: `[extension.nosy]\nprobe_port = 1\n`,
  });
  for (
    const [kind, permission] of [
      ["read", 'read access to "/etc/hostname"'],
      ["write", 'write access to "/tmp/inmanta-nosy.txt"'],
      ["net", 'net access to "127.0.0.1:1"'],
      ["env", 'env access to "HOME"'],
      ["run", 'run access to "true"'],
      ["ffi", "ffi access"],
      ["sys", 'sys access to "hostname"'],
    ]
  ) {
    await t.step(kind, async () => {
      const r = await getJson(`${test.url}/api/v2/nosy/${kind}`);
      assert.deepEqual([r.status, r.body], [500, { message: "internal server error" }]);
      const record = denial(test.logs, kind);
      assert.ok(record, `no denial logged for ${kind}`);
      assert.ok(record.message.includes(`Requires ${permission}`), record.message);
    });
  }
  await t.step("the server and the extension go on serving", async () => {
    const r = await getJson(`${test.url}/api/v2/nosy/ok`);
    assert.deepEqual([r.status, r.body], [200, { data: "fine" }]);
    const health = await getJson(`${test.url}/api/v2/health`);
    assert.equal(health.status, 200);
  });
});

Deno.test("sandbox: what is granted is allowed, and only that (with the public test kit)", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "nosy", NOSY);
  await using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of probe) conn.close();
  })();
  await using test = await kit.startTestServer({
    extensions: [{
      name: "nosy",
      path: root.path,
      permissions: `read=/etc/hostname; env=HOME; net=127.0.0.1:${probe.addr.port}`,
    }],
    config: `[extension.nosy]\nprobe_port = ${probe.addr.port}\n`,
  });
  for (const kind of ["read", "env", "net"]) {
    const r = await getJson(`${test.url}/api/v2/nosy/${kind}`);
    assert.deepEqual([kind, r.status, r.body], [kind, 200, { data: true }]);
  }
  const write = await getJson(`${test.url}/api/v2/nosy/write`);
  assert.equal(write.status, 500);
  kit.assertDenied(test, "nosy", "write", "/tmp/inmanta-nosy.txt");
  assert.deepEqual(kit.deniedAccess(test).map((d) => d.kind), ["write"]);
  const status = await getJson(`${test.url}/api/v1/serverstatus`);
  const nosy = (status.body.data as { extensions: Record<string, string>[] }).extensions[1];
  assert.equal(
    nosy.permissions,
    `read=${root.path}/inmanta_ext/nosy,/etc/hostname; net=127.0.0.1:${probe.addr.port}; env=HOME`,
  );
  probe.close();
  await accepting.catch(() => {});
});

Deno.test("sandbox: secrets and other extensions' sections stay in the server", async () => {
  const PEEK = `import { handle, method, ServerSlice } from "@inmanta/server";
export const peek = method({ path: "/peek", operation: "GET" });
let seen = {};
class Peek extends ServerSlice {
  @handle(peek) peek() { return seen; }
}
export function setup(app) {
  seen = {
    key: app.config.get("auth_jwt_default", "key") ?? null,
    note: app.config.string("extension.peek", "note"),
    other: app.config.get("extension.other", "token") ?? null,
    issuer: app.config.string("auth_jwt_default", "issuer"),
  };
  app.registerSlice(new Peek("peek.main"));
}
`;
  await using root = await tempDir();
  await writeExtension(root.path, "peek", PEEK);
  const key = "a-signing-key-of-at-least-32-characters!";
  for (const isolation of ["worker", "none"] as const) {
    await using test = await startServer({
      roots: [root.path],
      enable: ["peek"],
      isolation,
      config: `[auth_jwt_default]\nkey = ${key}\nissuer = https://example.test/\n` +
        `[extension.peek]\nnote = visible\n[extension.other]\ntoken = theirs\n`,
    });
    const r = await getJson(`${test.url}/api/v2/peek`);
    // In-process code has the server's trust (and its memory) anyway; a sandbox does not.
    assert.deepEqual(r.body, {
      data: {
        key: isolation === "worker" ? null : key,
        note: "visible",
        other: isolation === "worker" ? null : "theirs",
        issuer: "https://example.test/",
      },
    });
  }
});

Deno.test("sandbox: a grant beyond the server's own permissions is a clear start-up error", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "greedy", "export function setup() {}\n");
  const test = await startServer({
    roots: [root.path],
    enable: ["greedy"],
    start: false,
    config: "[extension.greedy]\npermissions = ffi\n",
  });
  await assert.rejects(
    test.server.start(),
    /^ExtensionError: extension greedy: its grant \(read=.*; ffi=all\) exceeds the server process's own permissions/,
  );
});

const ECHO = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const upload = method({
  path: "/blob", operation: "POST", maxBodySize: 20 * 1024 * 1024,
  args: z.object({ data: z.string() }), returns: z.object({ size: z.number(), tail: z.string() }),
});
export const wait = method({ path: "/wait/:n", operation: "GET", args: z.object({ n: z.coerce.number() }) });
class Echo extends ServerSlice {
  @handle(upload)
  upload({ data }) { return { size: data.length, tail: data.slice(-5) }; }
  @handle(wait)
  async wait({ n }) { await new Promise((r) => setTimeout(r, n % 7)); return n; }
}
export function setup(app) { app.registerSlice(new Echo("echo.main")); }
`;

Deno.test("sandbox: 10 MB bodies and many concurrent requests cross the boundary", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "echo", ECHO);
  await using test = await startServer({
    roots: [root.path],
    enable: ["echo"],
    config: "[server]\nmax_body_size = 33554432\n",
  });
  const data = "x".repeat(10 * 1024 * 1024 - 5) + "-end!";
  const r = await getJson(`${test.url}/api/v2/blob`, {
    method: "POST",
    body: JSON.stringify({ data }),
  });
  assert.deepEqual([r.status, r.body], [200, { data: { size: 10 * 1024 * 1024, tail: "-end!" } }]);

  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, n) => getJson(`${test.url}/api/v2/wait/${n}`)),
  );
  assert.deepEqual(answers.map((a) => a.body.data), Array.from({ length: 200 }, (_, n) => n));
});

const STREAMS = `import { handle, method, ServerSlice, streaming } from "@inmanta/server";
export const events = method({ path: "/events", operation: "GET" });
export const cancelled = method({ path: "/cancelled", operation: "GET" });
export const big = method({ path: "/big", operation: "GET" });
const gone = Promise.withResolvers();
class Streams extends ServerSlice {
  // An endless event stream: one event per read, so nothing runs ahead of the client.
  @handle(events) events() {
    let n = 0;
    const body = new ReadableStream({
      pull(c) { c.enqueue(new TextEncoder().encode(\`data: \${n++}\\n\\n\`)); },
      cancel() { gone.resolve(n); },
    });
    return streaming(new Response(body, { headers: { "content-type": "text/event-stream" } }));
  }
  @handle(cancelled) async cancelled() { return await gone.promise; }
  // 3 MiB of unknown length: streamed, not buffered.
  @handle(big) big() {
    let left = 3;
    const body = new ReadableStream({
      pull(c) { if (left-- > 0) c.enqueue(new Uint8Array(1 << 20).fill(65 + left)); else c.close(); },
    });
    return new Response(body);
  }
}
export function setup(app) { app.registerSlice(new Streams("streams.main")); }
`;

Deno.test("sandbox: response bodies stream out of the sandbox; cancel and shutdown reach it", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "streams", STREAMS);
  const test = await startServer({ roots: [root.path], enable: ["streams"] });
  try {
    const big = await fetch(`${test.url}/api/v2/big`);
    const bytes = new Uint8Array(await big.arrayBuffer());
    assert.equal(bytes.length, 3 << 20);
    assert.deepEqual([bytes[0], bytes[(1 << 20) + 1], bytes[bytes.length - 1]], [67, 66, 65]);

    const events = await fetch(`${test.url}/api/v2/events`);
    assert.equal(events.headers.get("content-type"), "text/event-stream");
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("data: 2\n\n")) text += (await reader.read()).value;
    assert.ok(text.startsWith("data: 0\n\ndata: 1\n\n"));
    await reader.cancel();
    // The extension's own stream learns that the client left.
    const cancelled = await getJson(`${test.url}/api/v2/cancelled`);
    assert.equal(typeof cancelled.body.data, "number");

    // A stream still open at shutdown is ended, not waited for.
    const open = await fetch(`${test.url}/api/v2/events`);
    await open.body!.getReader().read();
    const stopped = test.stop().then(() => "stopped");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const guard = new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 15_000));
    assert.equal(await Promise.race([stopped, guard]), "stopped");
    clearTimeout(timer);
  } finally {
    await test.stop();
  }
});

Deno.test("sandbox: a module that throws at top level fails only its extension (boot_failure = continue)", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "echo", ECHO);
  await writeExtension(root.path, "explodes", "throw new Error('kaboom at import');\n");
  // By default (boot_failure = abort) start-up stops, naming it.
  await assert.rejects(
    startServer({ roots: [root.path], enable: ["explodes", "echo"] }),
    /^ExtensionError: extension explodes: cannot import .*: kaboom at import$/,
  );
  await using test = await startServer({
    roots: [root.path],
    enable: ["explodes", "echo"],
    config: "[extension.explodes]\nboot_failure = continue\n",
  });
  const status = await getJson(`${test.url}/api/v1/serverstatus`);
  const extensions = (status.body.data as { extensions: Record<string, string>[] }).extensions;
  assert.equal(extensions[1].name, "explodes");
  assert.equal(extensions[1].status, "failed");
  assert.match(extensions[1].reason, /^extension explodes: cannot import .*: kaboom at import$/);
  assert.equal((await getJson(`${test.url}/api/v2/wait/1`)).status, 200);
  const health = await getJson(`${test.url}/api/v2/health`);
  assert.deepEqual([health.status, health.body.message], [503, "server is degraded"]);
});

Deno.test("sandbox: a worker that dies fails its extension; its endpoints answer 503", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "echo", ECHO);
  await writeExtension(
    root.path,
    "fragile",
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const crash = method({ path: "/crash", operation: "POST" });
export const alive = method({ path: "/alive", operation: "GET" });
class Fragile extends ServerSlice {
  @handle(crash)
  crash() { setTimeout(() => { throw new Error("uncaught in a timer"); }, 0); return "bye"; }
  @handle(alive)
  alive() { return "yes"; }
}
export function setup(app) { app.registerSlice(new Fragile("fragile.main")); }
`,
  );
  await using test = await startServer({ roots: [root.path], enable: ["fragile", "echo"] });
  assert.equal((await getJson(`${test.url}/api/v2/alive`)).status, 200);
  const failing = logged(test, (r) => r.message.startsWith("extension fragile failed"));
  await getJson(`${test.url}/api/v2/crash`, { method: "POST" });
  await failing;
  const failed = await getJson(`${test.url}/api/v2/alive`);
  assert.equal(failed.status, 503);
  assert.match(
    failed.body.message as string,
    /^slice fragile\.main failed: extension fragile failed: uncaught error: /,
  );
  const status = await getJson(`${test.url}/api/v1/serverstatus`);
  const data = status.body.data as {
    extensions: Record<string, string>[];
    slices: Record<string, string>[];
  };
  assert.equal(data.extensions[1].status, "failed");
  assert.match(data.extensions[1].reason, /uncaught in a timer/);
  assert.equal(data.slices.find((s) => s.name === "fragile.main")?.state, "failed");
  assert.equal((await getJson(`${test.url}/api/v2/wait/2`)).status, 200);
});
