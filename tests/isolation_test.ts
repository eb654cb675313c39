/**
 * What a sandbox holds against a hostile guest, through the real server (`main.ts` as
 * `deno task serve` runs it): a process guest that exhausts its heap, holds gigabytes of
 * ArrayBuffers, loops forever (synchronously and on microtasks), exits, signals itself, tries
 * to signal the server, or writes garbage on its channel fails alone, with the reason in
 * serverstatus; health says degraded; another extension answers every request meanwhile;
 * SIGTERM still exits 0 and leaves no child; SIGKILL of the server leaves no child either.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  eventually,
  extensionStatuses,
  getJson,
  guestProcesses,
  logged,
  serve,
  startServer,
  tempDir,
  writeExtension,
} from "./helpers.ts";

/** Each attack, run when its endpoint is called (or at start, with `atStart`). */
const ATTACKS: Record<string, { body: string; reason: RegExp; modes: string[] }> = {
  heap: {
    body: "const hoard = []; for (;;) hoard.push(new Array(1e7).fill(0.5));",
    // On a loaded machine the collector's last tries can outlast the heartbeat limit.
    reason: /^(heap limit of 64 MiB reached|no heartbeat for 10s)/,
    modes: ["process"],
  },
  buffers: {
    body:
      // Responsive all along (it yields between buffers): only its resident size gives it away.
      "const hoard = []; for (let i = 0; i < 32; i++) { hoard.push(new Uint8Array(64 << 20).fill(1)); await new Promise((r) => setTimeout(r, 0)); } await new Promise(() => {});",
    reason: /^(resident memory of [\d.]+ MiB passed its limit of 192 MiB|heap limit|no heartbeat)/,
    modes: ["process"],
  },
  spin: {
    body: "for (;;) {}",
    reason: /^no heartbeat for 10s/,
    modes: ["process", "worker"],
  },
  microtasks: {
    body:
      "const again = () => Promise.resolve().then(again); again(); await new Promise(() => {});",
    // A promise loop also grows its memory: whichever limit it reaches first.
    reason: /^(no heartbeat for 10s|resident memory of [\d.]+ MiB passed|heap limit)/,
    modes: ["process", "worker"],
  },
  exit: {
    body: "Deno.exit(3);",
    reason: /^exited with code 3/,
    modes: ["process"],
  },
  suicide: {
    body: "Deno.kill(Deno.pid, 'SIGKILL'); await new Promise(() => {});",
    reason: /^killed by SIGKILL$/,
    modes: ["process"],
  },
  garbage: {
    body: `if (typeof WorkerGlobalScope !== "undefined") globalThis.postMessage(42);
      else Deno.stdout.writeSync(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      await new Promise(() => {});`,
    reason: /^invalid (frame|batch)/,
    modes: ["process", "worker"],
  },
};

function hostile(name: string, body: string, atStart: boolean): string {
  return `import { handle, method, ServerSlice } from "@inmanta/server";
export const go = method({ path: "/${name}/go", operation: "POST" });
const attack = async () => { ${body} };
class Hostile extends ServerSlice {
  ${atStart ? "async start() { await attack(); }" : ""}
  @handle(go)
  async go() { await attack(); return "survived"; }
}
export function setup(app) { app.registerSlice(new Hostile("${name}.main")); }
`;
}

const KILLER = `import { handle, method, ServerSlice } from "@inmanta/server";
export const go = method({ path: "/killer/go", operation: "POST" });
class Killer extends ServerSlice {
  @handle(go)
  go() {
    const tried = [];
    for (const signal of ["SIGTERM", "SIGKILL", "SIGSTOP", "SIGUSR1"]) {
      try { Deno.kill(Deno.ppid, signal); tried.push(signal + ": sent"); }
      catch (error) { tried.push(signal + ": " + error.name); }
    }
    try { Deno.chdir("/"); tried.push("chdir: done"); } catch (error) { tried.push("chdir: " + error.name); }
    return tried;
  }
}
export function setup(app) { app.registerSlice(new Killer("killer.main")); }
`;

const GOOD = `import { handle, method, ServerSlice } from "@inmanta/server";
export const ping = method({ path: "/ping", operation: "GET" });
class Good extends ServerSlice {
  @handle(ping)
  ping() { return "pong"; }
}
export function setup(app) { app.registerSlice(new Good("good.main")); }
`;

/** The guests of a server whose extensions live under `root`, as ps lists them. */
async function guestsUnder(root: string): Promise<string[]> {
  return (await guestProcesses()).filter((line) => line.includes(root));
}

for (const mode of ["process", "worker"]) {
  for (const atStart of [false, true]) {
    const when = atStart ? "during start-up (boot_failure = continue)" : "after start";
    Deno.test(`isolation=${mode}: hostile guests ${when} fail alone`, async () => {
      await using root = await tempDir();
      const names = Object.keys(ATTACKS).filter((n) => ATTACKS[n].modes.includes(mode));
      for (const name of names) {
        await writeExtension(root.path, name, hostile(name, ATTACKS[name].body, atStart));
      }
      await writeExtension(root.path, "good", GOOD);
      await writeExtension(root.path, "killer", KILLER);
      const enabled = ["good", "killer", ...names];
      const cfg = join(root.path, "server.cfg");
      await Deno.writeTextFile(
        cfg,
        `[server]
enabled_extensions = ${enabled.join(", ")}
extension_path = ${root.path}
isolation = ${mode}
sandbox_heartbeat_timeout = 10
boot_failure = continue
${names.map((n) => `[extension.${n}]\nmemory_limit = 64\n`).join("")}`,
      );
      const server = serve(["--config", cfg, "--port", "0"], [root.path]);
      const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];

      // Another extension answers every request while the attacks run.
      let stop = false;
      const answered: number[] = [];
      const pinging = (async () => {
        while (!stop) {
          answered.push(
            (await fetch(`${url}/api/v2/ping`).then((r) =>
              r.body?.cancel().then(() => r.status)
            )) ?? 0,
          );
        }
      })();
      if (!atStart) {
        for (const name of names) {
          void fetch(`${url}/api/v2/${name}/go`, { method: "POST" }).then((r) => r.body?.cancel());
        }
      }
      const killer = await getJson(`${url}/api/v2/killer/go`, { method: "POST" });
      assert.equal(killer.status, 200, `${JSON.stringify(killer.body)}\n${server.stderr()}`);
      for (const line of killer.body.data as string[]) assert.match(line, /: NotCapable$/);

      const failed = await eventually(async () => {
        const list = await extensionStatuses(url);
        const bad = list.filter((e) => names.includes(e.name));
        return bad.every((e) => e.status === "failed") ? bad : undefined;
      }, "every hostile guest to fail");
      for (const extension of failed) {
        assert.match(
          extension.reason!,
          ATTACKS[extension.name].reason,
          `${extension.name}: ${extension.reason}\n${server.stderr()}`,
        );
      }
      const others = (await extensionStatuses(url)).filter((e) => !names.includes(e.name));
      assert.deepEqual(others.map((e) => e.status), ["loaded", "loaded", "loaded"]);
      const health = await getJson(`${url}/api/v2/health`);
      assert.equal(health.status, 503);
      assert.equal(health.body.message, "server is degraded");
      stop = true;
      await pinging;
      assert.ok(answered.length > 0);
      assert.deepEqual([...new Set(answered)], [200]);
      for (const name of names) {
        assert.match(server.stderr(), new RegExp(`extension ${name} failed: `));
      }

      server.process.kill("SIGTERM");
      assert.equal((await server.process.status).code, 0);
      if (mode === "process") {
        assert.deepEqual(await guestsUnder(root.path), []);
      }
    });
  }
}

Deno.test("isolation=process: when the server is SIGKILLed, its guests exit too", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "good", GOOD);
  await writeExtension(root.path, "spin", hostile("spin", "for (;;) {}", false));
  const cfg = join(root.path, "server.cfg");
  await Deno.writeTextFile(
    cfg,
    `[server]\nenabled_extensions = good, spin\nextension_path = ${root.path}\n`,
  );
  const server = serve(["--config", cfg, "--port", "0"], [root.path]);
  const url = /server running at (\S+)/.exec(await server.line(/server running at/))![1];
  assert.equal((await guestsUnder(root.path)).length, 2);
  // One guest busy in a loop (it cannot read its channel), one idle.
  void fetch(`${url}/api/v2/spin/go`, { method: "POST" }).catch(() => {});
  await eventually(async () => {
    const list = await extensionStatuses(url);
    return list.find((e) => e.name === "spin")?.status === "loaded" ? true : undefined;
  }, "spin to be loaded");
  server.process.kill("SIGKILL");
  await server.process.status;
  await eventually(
    async () => (await guestsUnder(root.path)).length === 0 ? true : undefined,
    "every guest to exit",
  );
});

Deno.test("isolation=process: a guest that floods the log is held to its rate", async () => {
  await using root = await tempDir();
  await writeExtension(root.path, "good", GOOD);
  await writeExtension(
    root.path,
    "chatty",
    `import { handle, method, ServerSlice } from "@inmanta/server";
export const go = method({ path: "/chatty/go", operation: "POST" });
class Chatty extends ServerSlice {
  @handle(go)
  go() { for (let i = 0; i < 20000; i++) this.logger.info("line " + i); return "said it"; }
}
export function setup(app) { app.registerSlice(new Chatty("chatty.main")); }
`,
  );
  await using test = await startServer({
    roots: [root.path],
    enable: ["good", "chatty"],
    config: "[server]\nsandbox_log_rate = 100\n",
  });
  // Dropped in the guest already (the server holds the same budget for a guest that lies).
  const dropped = logged(
    test,
    (r) =>
      r.source.startsWith("chatty") &&
      /^\d+ log record\(s\) dropped in the guest \(server\.sandbox_log_rate = 100\/s\)$/.test(
        r.message,
      ),
  );
  const said = await getJson(`${test.url}/api/v2/chatty/go`, { method: "POST" });
  assert.equal(said.status, 200);
  await fetch(`${test.url}/api/v2/ping`).then((r) => r.text());
  await dropped;
  const lines = test.logs.filter((r) => r.source.startsWith("chatty") && /^line /.test(r.message));
  // 100 a second: the flood spans a second or two.
  assert.ok(lines.length <= 300, `${lines.length} lines passed`);
  assert.equal((await getJson(`${test.url}/api/v2/ping`)).status, 200);
});
