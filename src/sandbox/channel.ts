/**
 * The channel between the server and a guest: messages batched per microtask (under load one
 * transfer carries many requests), and, for subprocess guests, the framing of those batches on a
 * byte stream.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { type Batch, LIMITS } from "./messages.ts";

/**
 * Sends messages in batches: everything sent in one microtask goes in one transfer, as one JSON
 * string (far cheaper to clone than many small objects) plus the request and response bodies,
 * which are handed over apart.
 */
export class Channel<T extends object> {
  readonly #post: (batch: Batch) => void;
  readonly #windowed: boolean;
  #queue: T[] = [];
  #buffers: ArrayBuffer[] = [];
  #scheduled = false;
  #inFlight = false;
  #acking = false;

  /**
   * @param post where batches go
   * @param windowed keep one batch in flight at a time: what is sent meanwhile waits for
   *   `acknowledge()` and goes in the next batch. Requests arrive one per event-loop turn, so
   *   without this every request cost a transfer of its own.
   */
  constructor(post: (batch: Batch) => void, windowed = false) {
    this.#post = post;
    this.#windowed = windowed;
  }

  /** The other side took the batch in flight: post what waited for it. */
  acknowledge(): void {
    this.#inFlight = false;
    if (this.#queue.length > 0) this.#schedule();
  }

  /** Posts a batch soon even if nothing is queued, so the other side sees its batch taken. */
  acknowledgeSoon(): void {
    this.#acking = true;
    this.#schedule();
  }

  /** Queues a message; its `body`, if any, travels beside the JSON. */
  send(message: T): void {
    const body = (message as { body?: unknown }).body;
    if (body instanceof ArrayBuffer) {
      this.#buffers.push(body);
      message = { ...message, body: this.#buffers.length - 1 };
    }
    this.#queue.push(message);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Posts what is queued now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 && !this.#acking) return;
    this.#acking = false;
    if (this.#windowed) this.#inFlight = true;
    const batch: Batch = { json: JSON.stringify(this.#queue), buffers: this.#buffers };
    this.#queue = [];
    this.#buffers = [];
    this.#post(batch);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One batch as a frame on a byte stream: the length of what follows (u32), the JSON's length,
 * the number of bodies and each body's length (u32 each), then the JSON and the bodies.
 */
export function encodeFrame(batch: Batch): Uint8Array {
  const json = encoder.encode(batch.json);
  const head = 4 * (3 + batch.buffers.length);
  let size = head + json.length;
  for (const buffer of batch.buffers) size += buffer.byteLength;
  const frame = new Uint8Array(size);
  const view = new DataView(frame.buffer);
  view.setUint32(0, size - 4);
  view.setUint32(4, json.length);
  view.setUint32(8, batch.buffers.length);
  batch.buffers.forEach((b, i) => view.setUint32(12 + 4 * i, b.byteLength));
  frame.set(json, head);
  let at = head + json.length;
  for (const buffer of batch.buffers) {
    frame.set(new Uint8Array(buffer), at);
    at += buffer.byteLength;
  }
  return frame;
}

/**
 * Reassembles frames from the chunks of a byte stream. A frame larger than the batch limit, or
 * whose parts do not add up, is a ProtocolError: the stream cannot be trusted past it.
 */
export class FrameReader {
  #chunks: Uint8Array[] = [];
  #length = 0;
  readonly #limit: number;

  /** @param limit largest frame accepted, in bytes */
  constructor(limit: number = LIMITS.batchBytes) {
    this.#limit = limit;
  }

  /**
   * Adds bytes read from the stream; returns the batches they complete.
   *
   * @throws {ProtocolError} `sandbox.frame` on an oversized or inconsistent frame
   */
  push(chunk: Uint8Array): Batch[] {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    const batches: Batch[] = [];
    while (this.#length >= 4) {
      const size = this.#peekSize();
      if (size > this.#limit || size < 8) {
        throw new ProtocolError("sandbox.frame", `invalid frame of ${size} bytes on the channel`);
      }
      if (this.#length < 4 + size) break;
      const frame = this.#take(4 + size);
      batches.push(parseFrame(frame));
    }
    return batches;
  }

  #peekSize(): number {
    const first = this.#chunks[0].length >= 4 ? this.#chunks[0] : this.#gather(4);
    return new DataView(first.buffer, first.byteOffset, 4).getUint32(0);
  }

  /** The first `n` bytes, joined (the chunks stay). */
  #gather(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    for (const chunk of this.#chunks) {
      const part = chunk.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (at === n) break;
    }
    return out;
  }

  /** Removes and returns the first `n` bytes. */
  #take(n: number): Uint8Array {
    const out = this.#chunks[0].length >= n ? this.#chunks[0].subarray(0, n) : this.#gather(n);
    let left = n;
    while (left > 0) {
      const chunk = this.#chunks[0];
      if (chunk.length <= left) {
        this.#chunks.shift();
        left -= chunk.length;
      } else {
        this.#chunks[0] = chunk.subarray(left);
        left = 0;
      }
    }
    this.#length -= n;
    return out;
  }
}

function parseFrame(frame: Uint8Array): Batch {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const jsonLength = view.getUint32(4);
  const count = view.getUint32(8);
  const head = 4 * (3 + count);
  if (head > frame.length) {
    throw new ProtocolError("sandbox.frame", "invalid frame: more bodies than bytes");
  }
  let at = head + jsonLength;
  const lengths: number[] = [];
  for (let i = 0; i < count; i++) lengths.push(view.getUint32(12 + 4 * i));
  const total = lengths.reduce((a, b) => a + b, at);
  if (total !== frame.length) {
    throw new ProtocolError("sandbox.frame", "invalid frame: its parts do not add up");
  }
  const json = decoder.decode(frame.subarray(head, head + jsonLength));
  const buffers = lengths.map((length) => {
    const buffer = frame.slice(at, at + length).buffer;
    at += length;
    return buffer;
  });
  return { json, buffers };
}
