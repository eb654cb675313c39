/**
 * The HTTP listeners: one Deno.serve per bind address, counting requests in flight so that
 * shutdown can answer new ones 503 while the ones already accepted complete.
 *
 * @module
 */
import { describeError, InmantaError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FetchHandler } from "./api.ts";
import { errorResponse } from "./errors.ts";
import { REQUEST_ID_HEADER, requestIdOf } from "../request_id.ts";

/** Where and what to serve. */
export interface TransportOptions {
  /** Addresses to bind. */
  addresses: string[];
  /** Port; 0 picks a free one. */
  port: number;
  /** The application. */
  handler: FetchHandler;
  /** Logger. */
  log: Logger;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** The answer to a request once stopping began, if not the plain 503 (health checks). */
  stopping?: (request: Request) => Response | undefined;
}

const STREAMS = new WeakSet<Response>();
/** Whether any response was ever marked: until then no answer needs looking up. */
let marked = false;

/**
 * Marks a response as a long-lived stream, such as server-sent events, that shutdown ends
 * instead of waiting for (unmarked ones are waited for until `server.shutdown_timeout`).
 * Checking a set beats reading every response's headers, which halved throughput.
 *
 * @example
 * ```ts
 * import { streaming } from "@inmanta/server";
 * const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(": hi\n\n")); } });
 * streaming(new Response(body, { headers: { "content-type": "text/event-stream" } }));
 * ```
 */
export function streaming(response: Response): Response {
  marked = true;
  STREAMS.add(response);
  return response;
}

/** Whether `response` was marked with `streaming()` (for a sandbox to tell the server). */
export function isStreaming(response: Response): boolean {
  return STREAMS.has(response);
}

/** The listeners of one server. */
export class HttpTransport {
  readonly #options: TransportOptions;
  readonly #servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  #stopping = false;
  #inFlight = 0;

  /** @param options where and what to serve */
  constructor(options: TransportOptions) {
    this.#options = options;
  }

  /** The bound addresses (with the real port when 0 was asked). */
  get addresses(): Deno.NetAddr[] {
    return this.#servers.map((s) => s.addr);
  }

  /** Requests being answered now (those whose answer is not ready at once). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether it serves HTTPS. */
  get tls(): boolean {
    return this.#options.tls !== undefined;
  }

  /** Starts listening on every address; a bind failure names the address and cause. */
  listen(): void {
    for (const hostname of this.#options.addresses) {
      try {
        this.#servers.push(Deno.serve({
          hostname,
          port: this.#options.port,
          ...this.#options.tls,
          onListen: ({ hostname, port }) =>
            this.#options.log.info(
              `listening on ${this.tls ? "https" : "http"}://${
                hostname.includes(":") ? `[${hostname}]` : hostname
              }:${port}`,
            ),
          onError: (error) => {
            this.#options.log.error(`unhandled error: ${describeError(error)}`);
            return Response.json({ message: "internal server error" }, { status: 500 });
          },
        }, (request) => this.#handle(request)));
      } catch (error) {
        void this.close();
        throw new InmantaError(
          "transport.listen",
          `core.transport: cannot listen on ${hostname}:${this.#options.port}: ${
            describeError(error).split("\n")[0]
          }`,
        );
      }
    }
  }

  #handle(request: Request): Response | Promise<Response> {
    if (this.#stopping) {
      const answer = this.#options.stopping?.(request) ??
        errorResponse(503, "server is stopping", { connection: "close" });
      // Echoed as every other answer does: a client tracing a request sees it was refused.
      answer.headers.set(REQUEST_ID_HEADER, requestIdOf(request));
      return answer;
    }
    const answer = this.#options.handler(request);
    // Most answers are ready at once; only pending ones are counted, so that the common path
    // makes no promise.
    if (!(answer instanceof Promise)) {
      return marked && STREAMS.has(answer) ? this.#track(answer) : answer;
    }
    this.#inFlight++;
    return answer.then((response) => {
      this.#settled();
      return marked && STREAMS.has(response) ? this.#track(response) : response;
    }, (error) => {
      this.#settled();
      throw error;
    });
  }

  /** Who waits for the last request in flight to be answered. */
  #idle: (() => void)[] = [];

  #settled(): void {
    if (--this.#inFlight === 0 && this.#idle.length > 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Open long-lived streams, ended at shutdown (they never end on their own). */
  readonly #streams = new Set<TransformStreamDefaultController<Uint8Array>>();

  /**
   * Wraps an event stream so that shutdown can end it: `server.shutdown()` waits for every open
   * response, and an event stream stays open until its client leaves.
   */
  #track(response: Response): Response {
    if (!response.body) return response;
    let controller!: TransformStreamDefaultController<Uint8Array>;
    const stream = new TransformStream<Uint8Array, Uint8Array>({
      start: (c) => {
        controller = c;
        this.#streams.add(c);
      },
      flush: () => {
        this.#streams.delete(controller);
      },
    });
    response.body.pipeTo(stream.writable).catch(() => {}).finally(() =>
      this.#streams.delete(controller)
    );
    return new Response(stream.readable, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  /** From now on new requests get 503, and long-lived streams are ended. */
  beginStopping(): void {
    this.#stopping = true;
    for (const stream of this.#streams) {
      try {
        stream.terminate();
      } catch {
        // already ended
      }
    }
    this.#streams.clear();
  }

  /**
   * Answers new requests 503 and waits until the requests in flight are answered, or until
   * `deadline` (ms since epoch). The port stays open (health checks see 503 `stopping`) until
   * {@link close}. Returns true when everything drained.
   */
  async drain(deadline: number): Promise<boolean> {
    this.beginStopping();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    });
    const idle = this.#inFlight === 0
      ? Promise.resolve(true)
      : new Promise<true>((resolve) => this.#idle.push(() => resolve(true)));
    const done = await Promise.race([idle, expired]);
    clearTimeout(timer);
    if (!done) {
      this.#options.log.error(
        `${this.#inFlight} request(s) still in flight at the shutdown deadline; abandoned`,
      );
    }
    return done;
  }

  /**
   * Closes the listeners and waits for the responses still being sent, until `deadline` (ms
   * since epoch) when one is given.
   */
  async close(deadline?: number): Promise<void> {
    this.beginStopping();
    const shutdown = Promise.allSettled(this.#servers.map((s) => s.shutdown()));
    if (deadline === undefined) {
      await shutdown;
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      shutdown,
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
  }
}
