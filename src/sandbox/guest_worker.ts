/**
 * The entry point of a guest in a Worker (`isolation = worker`): the Worker's permissions are
 * the extension's grant. Importing the library first means the extension's own
 * `import "@inmanta/server"` needs no read permission.
 *
 * @module
 */
import "../mod.ts";
import { guardSharedProcess, Guest, removeSharedState } from "./guest.ts";
import type { Batch } from "./messages.ts";

const scope = globalThis as unknown as {
  postMessage(message: unknown, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent<Batch>) => void) | null;
};
removeSharedState();
guardSharedProcess();
const guest = new Guest({ post: (batch) => scope.postMessage(batch, batch.buffers) });
scope.onmessage = (event) => guest.receive(event.data);
