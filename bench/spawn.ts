/**
 * Starting a server (or a baseline) as a child process for the benchmarks.
 */
import { fileURLToPath } from "node:url";

/** The project folder. */
export const PROJECT: string = fileURLToPath(new URL("..", import.meta.url));

/** A child that printed `server running at <url>`. */
export interface Running {
  child: Deno.ChildProcess;
  url: string;
  /** performance.now() when it was spawned. */
  started: number;
}

/**
 * Runs `deno <args>` in `cwd` (the project by default) and waits until it says where it
 * listens; with `cpus` (such as "0"), pinned to those CPUs with taskset.
 */
export async function spawnServer(
  args: string[],
  cpus?: string,
  cwd: string = PROJECT,
): Promise<Running> {
  const started = performance.now();
  const child = new Deno.Command(cpus ? "taskset" : "deno", {
    args: cpus ? ["-c", cpus, "deno", ...args] : args,
    cwd,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let url: string | undefined;
  while (!url) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`deno ${args.join(" ")} ended before listening:\n${text}`);
    text += value;
    url = /server running at (\S+)/.exec(text)?.[1];
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return { child, url, started };
}
