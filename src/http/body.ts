/**
 * Reading request bodies with a deadline, so that a client that never finishes its body ties up
 * nothing: it gets 408 and its stream is cancelled.
 *
 * @module
 */
import { HttpError } from "../errors.ts";

/** The whole body of `request` (empty without one), or HttpError 408 after `seconds`. */
export async function readBody(request: Request, seconds: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), seconds * 1000);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), expired]);
      if (next === "expired") {
        reader.cancel().catch(() => {});
        throw new HttpError(408, `request body not received within ${seconds}s`);
      }
      if (next.done) break;
      chunks.push(next.value);
      size += next.value.length;
    }
  } finally {
    clearTimeout(timer);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}
