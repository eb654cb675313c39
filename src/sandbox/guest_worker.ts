/**
 * The entry point of a guest in a Worker (`isolation = worker`): the Worker's permissions are
 * the extension's grant. Importing the library first means the extension's own
 * `import "@inmanta/server"` needs no read permission.
 *
 * @module
 */
import "../mod.ts";
import { guardSharedProcess, Guest, removeSharedState, routeConsole } from "./guest.ts";
import type { Batch } from "./messages.ts";

const scope = globalThis as unknown as {
  postMessage(message: unknown, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent<Batch>) => void) | null;
};
removeSharedState();
guardSharedProcess();
const guest = new Guest({ post: (batch) => scope.postMessage(batch, batch.buffers) });
scope.onmessage = (event) => guest.receive(event.data);
// The Worker's console writes to the server's own output: its records go through the channel
// instead, under the extension's name and its log rate.
routeConsole(guest);
