/**
 * The extension the operations tests (metrics, logs) run: a fast route that logs, a failing
 * one, one with its own status, a scheduled task and background tasks.
 */
import { startServer, type TestServer, writeExtension } from "./helpers.ts";

/** An extension with a fast route, a failing one, a scheduled task and a background task. */
export const OPS_EXTENSION =
  `import { handle, HttpError, method, ServerSlice } from "@inmanta/server";
import { z } from "@inmanta/server/zod";
export const hello = method({ path: "/ops/hello/:name", operation: "GET", args: z.object({ name: z.string() }) });
export const boom = method({ path: "/ops/boom", operation: "GET" });
export const teapot = method({ path: "/ops/teapot", operation: "POST" });
class Ops extends ServerSlice {
  getDependencies() { return ["core.server"]; }
  start() {
    this.schedule(function tick() { globalThis.opsTicked?.(); }, 3600, { initialDelay: 0 });
    this.schedule(function fails() { throw new Error("task fails on purpose"); }, 3600, { initialDelay: 0 });
    this.addBackgroundTask(Promise.resolve());
    this.addBackgroundTask(Promise.reject(new Error("background fails on purpose")));
  }
  @handle(hello)
  hello({ name }) { this.logger.info("saying hello to " + name); return "hello " + name; }
  @handle(boom)
  async boom() { await Promise.resolve(); throw new Error("boom on purpose"); }
  @handle(teapot)
  teapot() { throw new HttpError(418, "I am a teapot"); }
}
export function setup(app) { app.registerSlice(new Ops("ops.main")); }
`;

/** Starts a server with the ops extension in-process. */
export async function opsServer(root: string, config = ""): Promise<TestServer> {
  await writeExtension(root, "ops", OPS_EXTENSION);
  return await startServer({ roots: [root], enable: ["ops"], isolation: "none", config });
}

/** `name{labels} value` lines of an exposition, as a map from `name{labels}` to the value. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}
