/**
 * A fresh attacker's attempts against a real server, in `process` mode and then `worker` mode:
 * extensions granted nothing (or a narrow grant) try to reach files, processes, the network, the
 * server's state and other extensions. Each attempt must fail inside the attacker only; the
 * server and another extension go on.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  eventually,
  extensionStatus as extension,
  getJson,
  guestPids,
  PROJECT,
  startServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";

const VICTIM = `import { handle, method, ServerSlice } from "@inmanta/server";
export const hi = method({ path: "/victim", operation: "GET" });
class Victim extends ServerSlice { @handle(hi) hi() { return "ok"; } }
export function setup(app) { app.registerSlice(new Victim("victim.main")); }
`;

/**
 * Frames a batch as a process guest's channel does (length, JSON length, buffer count, buffer
 * lengths, JSON, buffers), or posts it as a Worker guest's does: raw access to the channel.
 */
const FORGE = `
function forge(messages, buffers = []) {
  const batch = { json: JSON.stringify(messages), buffers };
  if (typeof WorkerGlobalScope !== "undefined") return globalThis.postMessage(batch);
  const json = new TextEncoder().encode(batch.json);
  const head = 4 * (3 + buffers.length);
  const size = head + json.length + buffers.reduce((n, b) => n + b.byteLength, 0);
  const frame = new Uint8Array(size);
  const view = new DataView(frame.buffer);
  view.setUint32(0, size - 4);
  view.setUint32(4, json.length);
  view.setUint32(8, buffers.length);
  buffers.forEach((b, i) => view.setUint32(12 + 4 * i, b.byteLength));
  frame.set(json, head);
  let at = head + json.length;
  for (const b of buffers) { frame.set(new Uint8Array(b), at); at += b.byteLength; }
  for (let done = 0; done < frame.length;) done += Deno.stdout.writeSync(frame.subarray(done));
}
`;

/**
 * Answers with a stream, then pushes chunks nobody pulled for every request id it may have had:
 * the server would queue them all (the client reads nothing) until its memory runs out.
 */
const FLOODER = `import { handle, method, ServerSlice } from "@inmanta/server";
${FORGE}
export const flood = method({ path: "/flood", operation: "GET" });
class Flooder extends ServerSlice {
  @handle(flood) flood() {
    const body = new ReadableStream({ pull() { return new Promise(() => {}); } });
    setTimeout(() => {
      // Every id it may have been given, twice in one batch: the server takes a batch whole,
      // so the second chunk of its stream comes before the server could pull again.
      forge(
        Array.from({ length: 1024 }, (_, i) => ({ t: "chunk", id: (i >> 1) + 1, body: i })),
        Array.from({ length: 1024 }, () => new ArrayBuffer(1024)),
      );
    }, 100);
    return new Response(body);
  }
}
export function setup(app) { app.registerSlice(new Flooder("flooder.main")); }
`;

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: chunks pushed without a pull fail the guest, not the server's memory`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "victim", VICTIM);
    await writeExtension(root.path, "flooder", FLOODER);
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "flooder"],
      isolation,
    });
    // The client never reads the body: every chunk the server accepted would stay queued.
    const response = await fetch(`${test.url}/api/v2/flood`);
    assert.equal(response.status, 200);
    const failed = await eventually(async () => {
      const e = await extension(test.url, "flooder");
      return e.status === "failed" ? e : undefined;
    }, "the flooder to fail");
    assert.match(failed.reason!, /chunk of stream \d+ that was not asked for/);
    await response.body?.cancel().catch(() => {});
    const victim = await getJson(`${test.url}/api/v2/victim`);
    assert.deepEqual([victim.status, victim.body], [200, { data: "ok" }]);
  });
}

/**
 * Every attempt an extension granted nothing makes at what is not its own: files of another
 * extension, of the server, its state and /proc; imports and fetches of files (JSON, text,
 * modules, the server's own modules not loaded in the guest), Workers from another folder or
 * with more permissions; the server's port; spawning and signalling; the environment; FFI;
 * writes; system information; permission prompts. Each answers what it got.
 */
function prober(targets: Record<string, string>): string {
  return `import { handle, method, ServerSlice } from "@inmanta/server";
import process from "node:process";
import { z } from "@inmanta/server/zod";
const T = ${JSON.stringify(targets)};
export const probe = method({
  path: "/probe", operation: "GET",
  args: z.object({ pid: z.coerce.number(), port: z.coerce.number(), other: z.coerce.number() }),
});
async function attempt(fn) {
  try { return "GOT: " + String(JSON.stringify(await fn())).slice(0, 200); }
  catch (e) { return "refused: " + e?.name + ": " + String(e?.message).split("\\n")[0].slice(0, 200); }
}
const worker = (url, options) => new Promise((resolve, reject) => {
  const w = new Worker(url, { type: "module", ...options });
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
  w.onerror = (e) => { e.preventDefault(); reject(new Error(e.message)); w.terminate(); };
});
class Prober extends ServerSlice {
  @handle(probe) async probe({ pid, port, other }) {
    const victim = T.victim, server = "127.0.0.1:" + port;
    const attempts = {
      readVictim: () => Deno.readTextFile(victim + "/secret.json"),
      readThroughDotDot: () => Deno.readTextFile(T.own + "/../victim/secret.json"),
      readConfig: () => Deno.readTextFile(T.config),
      listStateDir: () => Array.fromAsync(Deno.readDir(T.state)),
      readEmbeddedDatabase: () => Deno.readFile(T.state + "/data/victim.sqlite3"),
      readServerEnviron: () => Deno.readTextFile("/proc/" + pid + "/environ"),
      readServerCmdline: () => Deno.readTextFile("/proc/" + pid + "/cmdline"),
      readOwnEnviron: () => Deno.readTextFile("/proc/self/environ"),
      statPasswd: () => Deno.stat("/etc/passwd"),
      realPathVictim: () => Deno.realPath(victim),
      importJson: () => import("file://" + victim + "/secret.json", { with: { type: "json" } }),
      importPasswdAsJson: () => import("file:///etc/passwd", { with: { type: "json" } }),
      importText: () => import("file://" + victim + "/secret.json", { with: { type: "text" } }),
      importModule: () => import("file://" + victim + "/leak.ts"),
      importServerModule: () => import("file://" + T.project + "/src/auth/token_cli.ts"),
      importConfigAsJson: () => import("file://" + T.config, { with: { type: "json" } }),
      fetchFile: () => fetch("file://" + victim + "/secret.json").then((r) => r.text()),
      workerFromVictim: () => worker("file://" + victim + "/leak.ts"),
      workerWithMorePermissions: () => worker(
        "data:text/javascript," + encodeURIComponent("postMessage(Deno.readTextFileSync('/etc/hostname'))"),
        { deno: { permissions: { read: true } } },
      ),
      connectServer: () => Deno.connect({ hostname: "127.0.0.1", port }),
      fetchServer: () => fetch("http://" + server + "/api/v1/serverstatus").then((r) => r.status),
      webSocketServer: () => new Promise((resolve, reject) => {
        const ws = new WebSocket("ws://" + server + "/");
        ws.onopen = () => resolve("open");
        ws.onerror = (e) => reject(new Error(e.message));
      }),
      listen: () => Deno.listen({ port: 0 }).addr,
      listenUnix: () => Deno.listen({ transport: "unix", path: T.own + "/s.sock" }).addr,
      spawn: () => new Deno.Command("ps").output(),
      signalOtherGuest: () => Deno.kill(other, "SIGCONT"),
      signalServer: () => Deno.kill(pid, "SIGCONT"),
      nodeSignalServer: () => process.kill(pid, "SIGCONT"),
      readEnvironment: () => Deno.env.toObject(),
      nodeEnvironment: () => ({ ...process.env }),
      setEnvironment: () => Deno.env.set("INMANTA_SERVER_BIND_PORT", "1"),
      dlopen: () => Deno.dlopen("libc.so.6", {}),
      writeVictim: () => Deno.writeTextFile(victim + "/pwn.txt", "x"),
      writeOwnFolder: () => Deno.writeTextFile(T.own + "/pwn.txt", "x"),
      makeTempDir: () => Deno.makeTempDir(),
      symlinkOut: () => Deno.symlink("/etc", T.own + "/etc"),
      chmodOwn: () => Deno.chmod(T.own + "/extension.ts", 0o777),
      hostname: () => Deno.hostname(),
      memoryInfo: () => Deno.systemMemoryInfo(),
      networkInterfaces: () => Deno.networkInterfaces(),
      askForRead: () => Deno.permissions.request({ name: "read" }).then((s) =>
        s.state === "granted" ? "granted" : Promise.reject(new Error(s.state))
      ),
      openKv: () => Deno.openKv(),
      // Stored in the server's Deno cache folder: the Cache API has no quota, Web Storage has.
      cacheApi: () => caches.open("x").then((c) => c.put("https://a/", new Response("x"))),
      storageBeyondQuota: () => localStorage.setItem("x", "y".repeat(11 << 20)),
    };
    const out = {};
    for (const [name, fn] of Object.entries(attempts)) out[name] = await attempt(fn);
    return out;
  }
}
export function setup(app) { app.registerSlice(new Prober("prober.main")); }
`;
}

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: an extension granted nothing reaches nothing outside itself`, async () => {
    await using root = await tempDir();
    const victim = await writeExtension(root.path, "victim", VICTIM, {
      "secret.json": '{"secret": "S3CRET"}',
      "leak.ts":
        'export const secret = "S3CRET"; if (typeof WorkerGlobalScope !== "undefined") postMessage(secret);',
    });
    const own = join(root.path, "inmanta_ext", "prober");
    const state = join(root.path, "state");
    await Deno.mkdir(join(state, "data"), { recursive: true });
    await Deno.writeTextFile(join(state, "data", "victim.sqlite3"), "S3CRET");
    const config = join(root.path, "server.json");
    await Deno.writeTextFile(config, '{"secret": "S3CRET"}');
    await writeExtension(
      root.path,
      "prober",
      prober({ victim, own, state, config, project: PROJECT.replace(/\/$/, "") }),
    );
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "prober"],
      isolation,
      config: `[server]\nstate_dir = ${state}\n`,
    });
    const cwd = Deno.cwd();
    // The victim's own process (a sibling of the prober's) or, for a Worker, the server's.
    const other = isolation === "process" ? (await guestPids("victim"))[0] : Deno.pid;
    const r = await getJson(
      `${test.url}/api/v2/probe?pid=${Deno.pid}&port=${new URL(test.url).port}&other=${other}`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const got = Object.entries(r.body.data as Record<string, string>)
      .filter(([, outcome]) => !outcome.startsWith("refused: "));
    assert.deepEqual(got, [], "what the prober got");
    assert.equal(JSON.stringify(r.body).includes("S3CRET"), false, "no secret in any error");
    assert.equal(Deno.cwd(), cwd);
    await assert.rejects(Deno.stat(join(own, "pwn.txt")), Deno.errors.NotFound);
    const after = await getJson(`${test.url}/api/v2/victim`);
    assert.deepEqual([after.status, after.body], [200, { data: "ok" }]);
    assert.notEqual((await extension(test.url, "prober")).status, "failed");
  });
}

Deno.test("escape [worker]: a Worker guest cannot signal the server's process nor move its working directory", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "victim", VICTIM);
  await writeExtension(
    root.path,
    "mover",
    `import { handle, method, ServerSlice } from "@inmanta/server";
import process from "node:process";
export const go = method({ path: "/mover", operation: "POST" });
class Mover extends ServerSlice {
  @handle(go) go() {
    const out = [];
    const own = new URL(".", import.meta.url).pathname;
    for (const [name, fn] of [
      // Deno lets any code signal its own process: a Worker's is the server's.
      ["Deno.kill", () => Deno.kill(Deno.pid, "SIGCONT")],
      ["process.kill", () => process.kill(process.pid, "SIGCONT")],
      // Its own folder is readable, so Deno lets it become the working directory.
      ["Deno.chdir", () => Deno.chdir(own)],
      ["Deno.permissions.request", () => Deno.permissions.requestSync({ name: "read" })],
      // The server's terminal and log.
      ["Deno.stderr", () => Deno.stderr.writeSync(new TextEncoder().encode("ERROR   core.server: forged\\n"))],
      ["Deno.stdin", () => Deno.stdin.setRaw(true)],
      ["internals", () => Deno[Deno.internal].core.ops],
      ["redefine", () => Object.defineProperty(Deno, "chdir", { value: () => {} })],
      ["Worker", () => new Worker("data:text/javascript,Deno.chdir(" + JSON.stringify(own) + ")", { type: "module" })],
    ]) {
      try { fn(); out.push(name + ": done"); } catch (e) { out.push(name + ": " + e.name); }
    }
    return out;
  }
}
export function setup(app) { app.registerSlice(new Mover("mover.main")); }
`,
  );
  await using test = await startServer({
    roots: [root.path],
    enable: ["victim", "mover"],
    isolation: "worker",
  });
  const cwd = Deno.cwd();
  const r = await getJson(`${test.url}/api/v2/mover`, { method: "POST" });
  assert.deepEqual(r.body.data, [
    "Deno.kill: NotCapable",
    "process.kill: NotCapable",
    "Deno.chdir: NotCapable",
    "Deno.permissions.request: NotCapable",
    "Deno.stderr: NotCapable",
    "Deno.stdin: NotCapable",
    "internals: TypeError",
    "redefine: TypeError",
    "Worker: ReferenceError",
  ]);
  assert.equal(Deno.cwd(), cwd);
  const after = await getJson(`${test.url}/api/v2/victim`);
  assert.deepEqual([after.status, after.body], [200, { data: "ok" }]);
});

/**
 * Raw frames on the channel, well-formed but naming what is not the guest's: a log record under
 * another extension's name, mounts over another's route and around everything, a service call
 * made in another slice's name. `step` picks the forgery; each is sent after start.
 */
const FORGER = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
${FORGE}
export const go = method({ path: "/forge", operation: "POST", args: z.object({ step: z.string() }) });
class Forger extends ServerSlice {
  @handle(go) go({ step }) {
    const steps = {
      log: [{ t: "log", level: "error", source: "victim.main", message: "forged by the forger" }],
      mounts: ["/api/v2/victim", "/", "/api", "/api/v1/serverstatus"].map((location) => ({ t: "mount", slice: "forger.main", location, start: false })),
      svc: [{ t: "svc", id: 1, from: "victim.main", to: "core.server", member: "getServerStatus", body: 0 }],
    };
    setTimeout(() => forge(steps[step], [new ArrayBuffer(3)]), 50);
    return step;
  }
}
export function setup(app) { app.registerSlice(new Forger("forger.main")); }
`;

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: forged frames speak for the forger only`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "victim", VICTIM);
    await writeExtension(root.path, "forger", FORGER);
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "forger"],
      isolation,
      config: "[server]\nboot_failure = continue\n",
    });
    const forge = (step: string) =>
      getJson(`${test.url}/api/v2/forge`, { method: "POST", body: JSON.stringify({ step }) });
    const victimAnswers = async () => {
      const r = await getJson(`${test.url}/api/v2/victim`);
      assert.deepEqual([r.status, r.body], [200, { data: "ok" }]);
    };

    assert.equal((await forge("log")).status, 200);
    const record = await eventually(
      () => Promise.resolve(test.logs.find((r) => r.message === "forged by the forger")),
      "the forged record",
    );
    assert.match(record.source, /^forger\./, "logged under the forger's name");

    assert.equal((await forge("mounts")).status, 200);
    // Whether the mounts were refused or the forger failed, nothing it mounted answers.
    await eventually(async () => {
      const status = await getJson(`${test.url}/api/v1/serverstatus`);
      return status.status === 200 ? true : undefined;
    }, "serverstatus");
    await victimAnswers();
    const root200 = await fetch(`${test.url}/api/v3/anything`);
    await root200.body?.cancel();
    assert.notEqual(root200.status, 200);

    // Mounts go through the same ownership checks as the API's: the forger serves nothing of
    // another's, whether or not they were refused.
    assert.notEqual((await extension(test.url, "forger")).status, "failed");
    assert.equal((await forge("svc")).status, 200);
    const failed = await eventually(async () => {
      const e = await extension(test.url, "forger");
      return e.status === "failed" ? e : undefined;
    }, "the forger to fail");
    // Before, this rejected a promise nobody awaited: the whole server process ended.
    assert.match(
      failed.reason!,
      /svc could not be handled: it named slice victim\.main, which is not one of its own/,
    );
    await victimAnswers();
    assert.notEqual((await extension(test.url, "victim")).status, "failed");
  });
}

/** Answers with headers that lie about the body or the connection. */
const LIAR = `import { handle, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
${FORGE}
export const lie = method({ path: "/lie/:how", operation: "GET", args: z.object({ how: z.string() }) });
const HOW = {
  longer: [["content-length", "100000"]],
  shorter: [["content-length", "1"]],
  negative: [["content-length", "-1"]],
  chunked: [["transfer-encoding", "chunked"]],
  upgrade: [["connection", "upgrade"], ["upgrade", "websocket"]],
  close: [["connection", "close"]],
  twice: [["content-length", "3"], ["content-length", "4"]],
};
class Liar extends ServerSlice {
  @handle(lie) lie({ how }) {
    return new Response("0123456789", { headers: HOW[how] });
  }
}
export function setup(app) { app.registerSlice(new Liar("liar.main")); }
`;

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: headers that lie about the body break at most that response`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "victim", VICTIM);
    await writeExtension(root.path, "liar", LIAR);
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "liar"],
      isolation,
    });
    for (const how of ["longer", "shorter", "negative", "chunked", "upgrade", "close", "twice"]) {
      const answered = await fetch(`${test.url}/api/v2/lie/${how}`, {
        signal: AbortSignal.timeout(5000),
      }).then(async (r) => `${r.status} ${await r.text()}`).catch((e) => `error ${e.name}`);
      assert.doesNotMatch(answered, /TimeoutError/, `${how}: ${answered}`);
      const victim = await getJson(`${test.url}/api/v2/victim`);
      assert.deepEqual([how, victim.status, victim.body], [how, 200, { data: "ok" }]);
    }
  });
}

Deno.test("escape [process]: write to its own folder stretches to nothing outside it", async () => {
  await using root = await tempDir();
  const victim = await writeExtension(root.path, "victim", VICTIM, {
    "secret.json": '{"secret": "S3CRET"}',
  });
  const own = await writeExtension(
    root.path,
    "linker",
    `import { handle, method, ServerSlice } from "@inmanta/server";
const victim = ${JSON.stringify(victim)};
const own = new URL(".", import.meta.url).pathname;
export const go = method({ path: "/linker", operation: "POST" });
class Linker extends ServerSlice {
  @handle(go) async go() {
    const out = {};
    for (const [name, fn] of Object.entries({
      hardLink: () => Deno.link(victim + "/secret.json", own + "stolen.json"),
      symlink: () => Deno.symlink(victim, own + "victim"),
      renameOut: () => Deno.rename(own + "extension.ts", victim + "/extension2.ts"),
      writeThroughDotDot: () => Deno.writeTextFile(own + "../victim/pwn.txt", "x"),
      readStolen: () => Deno.readTextFile(own + "stolen.json"),
    })) {
      try { out[name] = "GOT: " + String(await fn()); } catch (e) { out[name] = e.name; }
    }
    return out;
  }
}
export function setup(app) { app.registerSlice(new Linker("linker.main")); }
`,
  );
  await using test = await startServer({
    roots: [root.path],
    enable: ["victim", "linker"],
    config: `[extension.linker]\npermissions = write=${own}\n`,
  });
  const r = await getJson(`${test.url}/api/v2/linker`, { method: "POST" });
  assert.deepEqual(r.body.data, {
    hardLink: "NotCapable",
    symlink: "NotCapable",
    renameOut: "NotCapable",
    writeThroughDotDot: "NotCapable",
    readStolen: "NotFound",
  });
  await assert.rejects(Deno.stat(join(victim, "pwn.txt")), Deno.errors.NotFound);
});

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: a response that never ends, not marked streaming(), ends for its client when the server stops`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "drip",
      `import { handle, method, ServerSlice } from "@inmanta/server";
export const drip = method({ path: "/drip", operation: "GET" });
class Drip extends ServerSlice {
  @handle(drip) drip() {
    return new Response(new ReadableStream({
      pull: (c) => new Promise((r) => setTimeout(() => { c.enqueue(new Uint8Array(1)); r(); }, 20)),
    }));
  }
}
export function setup(app) { app.registerSlice(new Drip("drip.main")); }
`,
    );
    const test = await startServer({
      roots: [root.path],
      enable: ["drip"],
      isolation,
      config: "[server]\nshutdown_timeout = 1\n",
    });
    const response = await fetch(`${test.url}/api/v2/drip`);
    const reader = response.body!.getReader();
    assert.equal((await reader.read()).done, false);
    const reading = (async () => {
      try {
        while (!(await reader.read()).done) { /* drain */ }
      } catch { /* cut off */ }
    })();
    await test.stop();
    // The client's stream ends too: it held its connection open forever before.
    await reading;
  });
}

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: a guest's log lines cannot pass for another source's records`, async () => {
    await using root = await tempDir();
    await writeExtension(
      root.path,
      "scribe",
      `import { handle, method, ServerSlice } from "@inmanta/server";
export const go = method({ path: "/scribe", operation: "POST" });
class Scribe extends ServerSlice {
  @handle(go) go() {
    this.logger.info("fine\\nERROR   core.server: forged by the scribe");
    console.log("also fine\\r\\nERROR   victim.main: forged by the scribe\\x1b[2K\\rERROR   core.server: x");
    return "written";
  }
}
export function setup(app) { app.registerSlice(new Scribe("scribe.main")); }
`,
    );
    await using test = await startServer({ roots: [root.path], enable: ["scribe"], isolation });
    assert.equal((await getJson(`${test.url}/api/v2/scribe`, { method: "POST" })).status, 200);
    const records = await eventually(() => {
      const found = test.logs.filter((r) => r.message.includes("forged by the scribe"));
      return Promise.resolve(found.length === 2 ? found : undefined);
    }, "both records");
    for (const record of records) {
      assert.match(record.source, /^scribe\./);
      // Every line after the first is indented: no line of the text log starts with a level.
      assert.doesNotMatch(record.message, /\n(?! {4})/);
      assert.equal(record.message.includes("\r") || record.message.includes("\u001b"), false);
    }
  });
}

/**
 * Service calls in flight that hold their arguments in the server's memory: the callee (its own
 * other slice) never answers. `shared`: one 8 MiB argument sent once, named by 64 calls of one
 * batch (each call unpacked its own copy: the server grew by 1.4 GiB). `many`: 80 calls, each
 * with its own 1 MiB, in two batches, not waiting for any answer.
 */
const AMPLIFIER = `import { handle, method, ServerSlice, service } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
import { serialize } from "node:v8";
${FORGE}
export const go = method({ path: "/amplify", operation: "POST", args: z.object({ how: z.string() }) });
class Sink extends ServerSlice {
  @service hold() { return new Promise(() => {}); }
}
const call = (id, body) => ({ t: "svc", id, from: "amplifier.main", to: "amplifier.sink", member: "hold", body });
const argument = (bytes) => {
  const packed = serialize([new Uint8Array(bytes)]);
  return packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.byteLength);
};
class Amplifier extends ServerSlice {
  getDependencies() { return ["amplifier.sink"]; }
  @handle(go) go({ how }) {
    setTimeout(() => {
      if (how === "shared") {
        forge(Array.from({ length: 64 }, (_, i) => call(1000 + i, 0)), [argument(8 << 20)]);
      } else {
        for (let batch = 0; batch < 2; batch++) {
          forge(
            Array.from({ length: 40 }, (_, i) => call(2000 + 40 * batch + i, i)),
            Array.from({ length: 40 }, () => argument(1 << 20)),
          );
        }
      }
    }, 50);
    return how;
  }
}
export function setup(app) {
  app.registerSlice(new Sink("amplifier.sink"));
  app.registerSlice(new Amplifier("amplifier.main"));
}
`;

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: service calls in flight cannot fill the server's memory`, async (t) => {
    await using root = await tempDir();
    await writeExtension(root.path, "victim", VICTIM);
    await writeExtension(root.path, "amplifier", AMPLIFIER);
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "amplifier"],
      isolation,
    });
    const amplify = (how: string) =>
      getJson(`${test.url}/api/v2/amplify`, { method: "POST", body: JSON.stringify({ how }) });
    const victimAnswers = async () => {
      const victim = await getJson(`${test.url}/api/v2/victim`);
      assert.deepEqual([victim.status, victim.body], [200, { data: "ok" }]);
    };

    await t.step("at most 64 MiB of arguments in flight: the rest are refused", async () => {
      assert.equal((await amplify("many")).status, 200);
      const warning = await eventually(
        () =>
          Promise.resolve(
            test.logs.find((r) => /^too many service calls in flight/.test(r.message)),
          ),
        "the refusal",
      );
      assert.match(warning.message, /from extension amplifier \(at most 1000 .*64 MiB/);
      assert.notEqual((await extension(test.url, "amplifier")).status, "failed");
      await victimAnswers();
    });

    await t.step("one body named by many messages fails the guest", async () => {
      assert.equal((await amplify("shared")).status, 200);
      const failed = await eventually(async () => {
        const e = await extension(test.url, "amplifier");
        return e.status === "failed" ? e : undefined;
      }, "the amplifier to fail");
      assert.match(failed.reason!, /its body 0 is named by more than one message/);
      await victimAnswers();
    });
  });
}

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`escape [${isolation}]: the configuration a guest sees holds no secret, registered or not`, async () => {
    await using root = await tempDir();
    await writeExtension(root.path, "victim", VICTIM);
    await writeExtension(
      root.path,
      "reader",
      `import { handle, method, ServerSlice } from "@inmanta/server";
let config;
export const go = method({ path: "/reader", operation: "GET" });
class Reader extends ServerSlice {
  @handle(go) go() {
    return JSON.stringify([...config.snapshot()].map(([s, o]) => [s, [...o]]));
  }
}
export function setup(app) { config = app.config; app.registerSlice(new Reader("reader.main")); }
`,
    );
    await using test = await startServer({
      roots: [root.path],
      enable: ["victim", "reader"],
      isolation,
      config: `[auth_jwt_default]
key = S3CRET-default
[auth_jwt_keycloak]
key = S3CRET-keycloak
[database]
password = S3CRET-database
[notifications]
smtp_password = S3CRET-smtp
api_token = S3CRET-token
[extension.victim]
anything = S3CRET-victim
[extension.reader]
mine = visible
`,
    });
    const r = await getJson(`${test.url}/api/v2/reader`);
    assert.equal(r.status, 200);
    const seen = r.body.data as string;
    assert.match(seen, /"mine",\{"value":"visible"/);
    assert.deepEqual(seen.match(/S3CRET-[a-z]+/g) ?? [], []);
  });
}
