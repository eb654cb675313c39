/**
 * The entry point of a guest in a subprocess (`isolation = process`): framed batches come in on
 * stdin and go out on stdout. Console output becomes log records (stdout is the channel); a
 * closed stdin means the server is gone, and the guest exits at once.
 *
 * @module
 */
import "../mod.ts";
import { encodeFrame, FrameReader } from "./channel.ts";
import { Guest, routeConsole } from "./guest.ts";

// The Cache API has no quota in Deno: a guest granted nothing would fill the disk holding the
// server's module cache and state (Web Storage stays: Deno caps it at 10 MB per origin).
delete (globalThis as { caches?: unknown }).caches;

const writer = Deno.stdout.writable.getWriter();
const guest = new Guest({
  post: (batch) => {
    writer.write(encodeFrame(batch)).catch(() => Deno.exit(0));
  },
});

routeConsole(guest);

const frames = new FrameReader();
try {
  for await (const chunk of Deno.stdin.readable) {
    for (const batch of frames.push(chunk)) guest.receive(batch);
  }
} finally {
  // The server closed the channel (it stopped, or it was killed): nothing is left to serve.
  Deno.exit(0);
}
