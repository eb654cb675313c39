/**
 * What the server waits for from one guest: answers by id, each with a deadline, and the bodies
 * of streamed responses, pulled one chunk at a time. A new guest (after a restart) gets a new
 * exchange; the old one ends with everything it still waited for.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { ToGuest } from "./messages.ts";

/** An answer waited for. */
export interface Waiting {
  /** When to give up, ms since epoch. */
  deadline: number;
  /** Takes the answer. */
  resolve(value: unknown): void;
  /** Takes the failure: {@link AnswerTimeout} once the deadline passed. */
  reject(error: Error): void;
}

/** The guest did not answer by the deadline. */
export class AnswerTimeout extends Error {}

interface OpenStream {
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** Resolves the pull waiting for the next chunk. */
  pulled: () => void;
  /** A pull was sent and its chunk has not come yet. */
  asked: boolean;
}

/**
 * The answers and streams one guest owes the server.
 *
 * @example
 * ```ts
 * import { Exchange } from "./exchange.ts";
 * const exchange = new Exchange(() => {});
 * const answer = exchange.ask((id) => ({ t: "status", id, slice: "x.main" }), Date.now() + 1000);
 * exchange.settle(1)?.resolve({ ok: true }); // answer resolves with { ok: true }
 * ```
 */
export class Exchange {
  readonly #send: (message: ToGuest) => void;
  readonly #pending = new Map<number, Waiting>();
  readonly #streams = new Map<number, OpenStream>();
  #nextId = 0;
  #ended = false;

  /** @param send sends a message to the guest */
  constructor(send: (message: ToGuest) => void) {
    this.#send = send;
  }

  /** Registers an answer to wait for; returns its id, for the message that asks. */
  wait(waiting: Waiting): number {
    const id = ++this.#nextId;
    if (this.#ended) {
      waiting.reject(new Error("the guest ended"));
      return id;
    }
    this.#pending.set(id, waiting);
    return id;
  }

  /** Sends `message(id)` and resolves with what the answer to it carries. */
  ask(message: (id: number) => ToGuest, deadline: number): Promise<unknown> {
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const id = this.wait({ deadline, resolve, reject });
    if (!this.#ended) this.#send(message(id));
    return promise;
  }

  /** Takes what waits for answer `id` (a guest answering what it was not asked is ignored). */
  settle(id: number): Waiting | undefined {
    const waiting = this.#pending.get(id);
    this.#pending.delete(id);
    return waiting;
  }

  /** The body of streamed response `id`: each pull asks the guest for one chunk. */
  stream(id: number): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#streams.set(id, { controller, pulled: () => {}, asked: false });
      },
      pull: () => {
        const open = this.#streams.get(id);
        if (!open || this.#ended) return;
        const { promise, resolve } = Promise.withResolvers<void>();
        open.pulled = resolve;
        open.asked = true;
        this.#send({ t: "pull", id });
        return promise;
      },
      cancel: () => {
        this.#streams.delete(id);
        if (!this.#ended) this.#send({ t: "cancel", id });
      },
    }, { highWaterMark: 0 });
  }

  /**
   * A chunk of streamed response `id`, which must answer a pull: the server queues only what
   * its client reads, and a guest pushing chunks unasked would fill the server's memory.
   *
   * @throws {ProtocolError} `sandbox.message` for a chunk nobody pulled
   */
  chunk(id: number, body: ArrayBuffer): void {
    const open = this.#streams.get(id);
    if (!open) return; // cancelled meanwhile: what was on its way is dropped
    if (!open.asked) {
      throw new ProtocolError(
        "sandbox.message",
        `it sent a chunk of stream ${id} that was not asked for`,
      );
    }
    open.asked = false;
    open.controller.enqueue(new Uint8Array(body));
    open.pulled();
  }

  /** The end of streamed response `id`; `error` when the guest's stream failed. */
  end(id: number, error?: Error): void {
    const open = this.#streams.get(id);
    if (!open) return;
    this.#streams.delete(id);
    if (error) open.controller.error(error);
    else open.controller.close();
    open.pulled();
  }

  /** Gives up on what waited past its deadline. */
  expire(now: number): void {
    for (const [id, waiting] of this.#pending) {
      if (waiting.deadline <= now) {
        this.#pending.delete(id);
        waiting.reject(new AnswerTimeout());
      }
    }
  }

  /**
   * Ends every open stream with `fault`, and nothing else: what waits for an answer keeps its
   * own deadline. For a guest ended on purpose (the server stops), whose exit nobody hears.
   */
  endStreams(fault: Error): void {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const open of streams) {
      open.controller.error(fault);
      open.pulled();
    }
  }

  /** The guest ended: everything waited for fails with `fault`, and nothing more is sent. */
  endAll(fault: Error): void {
    this.#ended = true;
    const pending = [...this.#pending.values()];
    const streams = [...this.#streams.values()];
    this.#pending.clear();
    this.#streams.clear();
    for (const waiting of pending) waiting.reject(fault);
    for (const open of streams) {
      open.controller.error(fault);
      open.pulled();
    }
  }
}
