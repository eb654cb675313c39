/**
 * One watchdog for every sandbox: fails a guest that stops saying it is alive, ends requests
 * that waited past their deadline, and kills a process guest whose resident memory passes its
 * limit (ArrayBuffers live outside the heap limit). A tick that comes late (the server's own
 * thread was busy) judges nobody: a stalled server must not make innocent guests look dead.
 *
 * @module
 */
import type { Config } from "../config/config.ts";

/** What the watchdog needs of a sandbox. */
export interface Watched {
  /** The extension. */
  readonly name: string;
  /** When the guest last said it is alive (ms since epoch); moved on after a stall. */
  lastBeat: number;
  /** Whether the guest said anything yet (before, it is still loading its modules). */
  readonly heard: boolean;
  /** Set once it failed. */
  readonly failure: string | undefined;
  /** A process guest's pid. */
  readonly pid: number | undefined;
  /** Largest resident size of a process guest, in KiB. */
  readonly rssLimitKiB: number | undefined;
  /** Ends what waited past its deadline. */
  expire(now: number): void;
  /** Fails the sandbox. */
  fail(reason: string): void;
}

const TICK_MS = 250;
const MEMORY_EVERY_MS = 1000;
/** Each watched sandbox with its silence limits (ms): while loading, and once heard. */
const watched = new Map<Watched, { loading: number; running: number }>();
let timer: ReturnType<typeof setInterval> | undefined;
let lastTick = 0;
let lastMemory = 0;
let measuring = false;
let psUsable = true;

/**
 * Watches a sandbox until the returned function is called.
 *
 * @param sandbox what to watch
 * @param config `server.sandbox_heartbeat_timeout` is read from it
 */
export function watch(sandbox: Watched, config: Config): () => void {
  watched.set(sandbox, {
    // Loading compiles and imports the guest's modules before it can say anything: cold, on a
    // busy machine, that takes seconds, so a guest is judged silent only after a minute.
    loading: 60_000,
    running: config.duration("server", "sandbox_heartbeat_timeout") * 1000,
  });
  if (timer === undefined) {
    lastTick = Date.now();
    const started = setInterval(tick, TICK_MS);
    Deno.unrefTimer(started as unknown as number);
    timer = started;
  }
  return () => {
    watched.delete(sandbox);
    if (watched.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

function tick(): void {
  const now = Date.now();
  const late = now - lastTick > TICK_MS * 4;
  lastTick = now;
  for (const [sandbox, limits] of watched) {
    if (sandbox.failure) continue;
    if (late) {
      // The server did not run for a while: nobody could have been heard. Judge from now on.
      sandbox.lastBeat = now;
      continue;
    }
    const silence = sandbox.heard ? limits.running : limits.loading;
    if (now - sandbox.lastBeat > silence) {
      sandbox.fail(
        sandbox.heard
          ? `no heartbeat for ${silence / 1000}s: the extension is busy (an endless loop?) or hung`
          : `its guest did not start within ${silence / 1000}s`,
      );
      continue;
    }
    sandbox.expire(now);
  }
  if (now - lastMemory >= MEMORY_EVERY_MS && !measuring && psUsable) {
    lastMemory = now;
    void measure();
  }
}

/** Reads the resident size of every process guest with one `ps` (Deno refuses /proc). */
async function measure(): Promise<void> {
  // Each with the pid measured: a guest restarted meanwhile is not judged by its predecessor.
  const guests = [...watched.keys()].filter((s) => s.pid !== undefined && !s.failure)
    .map((sandbox) => ({ sandbox, pid: sandbox.pid! }));
  if (guests.length === 0) return;
  measuring = true;
  try {
    const { stdout, success } = await new Deno.Command("ps", {
      args: ["-o", "pid=,rss=", "-p", guests.map((g) => g.pid).join(",")],
      stdout: "piped",
      stderr: "null",
      clearEnv: true,
    }).output();
    if (!success && stdout.length === 0) return;
    const rss = new Map<number, number>();
    for (const line of new TextDecoder().decode(stdout).split("\n")) {
      const [pid, kib] = line.trim().split(/\s+/).map(Number);
      if (pid) rss.set(pid, kib);
    }
    for (const { sandbox: guest, pid } of guests) {
      const used = rss.get(pid);
      if (
        used !== undefined && guest.pid === pid && guest.rssLimitKiB !== undefined &&
        used > guest.rssLimitKiB
      ) {
        guest.fail(
          `resident memory of ${(used / 1024).toFixed(1)} MiB passed its limit of ${
            Math.round(guest.rssLimitKiB / 1024)
          } MiB`,
        );
      }
    }
  } catch {
    // No permission to run ps (or no ps): the heap limit still holds, resident size is unwatched.
    psUsable = false;
  } finally {
    measuring = false;
  }
}
