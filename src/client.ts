/**
 * A typed client: calls are checked against a method's argument and return schemas.
 *
 * @module
 */
import { InmantaError } from "./errors.ts";
import {
  type Input,
  type MethodDefinition,
  type Output,
  QUERY_OPERATIONS,
  type Schema,
} from "./protocol/method.ts";

/** A call answered with an error status; `status` and the server's message are kept. */
export class ClientError extends InmantaError {
  /** The HTTP status. */
  readonly status: number;

  /**
   * Makes an error from the status and `message` of an answer.
   *
   * @param status the HTTP status
   * @param message the server's `message`
   */
  constructor(status: number, message: string) {
    super(`client.${status}`, message);
    this.status = status;
  }
}

/** Options of {@link Client}. */
export interface ClientOptions {
  /** Headers sent with every call, such as `authorization`. */
  headers?: HeadersInit;
}

/**
 * Calls API methods of a server.
 *
 * @example
 * ```ts
 * import { Client } from "@inmanta/server";
 * import { greet } from "./extension.ts";
 * const client = new Client("http://127.0.0.1:8888");
 * const { message } = await client.call(greet, { name: "world" });
 * ```
 */
export class Client {
  readonly #base: string;
  readonly #headers: HeadersInit | undefined;

  /**
   * Makes a client of the server at `baseUrl`.
   *
   * @param baseUrl the server, e.g. `http://127.0.0.1:8888`
   * @param options headers for every call
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.#base = baseUrl.replace(/\/+$/, "");
    this.#headers = options.headers;
  }

  /**
   * Calls `method` with `args` and returns its data; an error status throws a ClientError with
   * the server's message.
   */
  async call<A extends Schema, R extends Schema>(
    method: MethodDefinition<A, R>,
    ...[args]: Record<string, never> extends Input<A> ? [args?: Input<A>] : [args: Input<A>]
  ): Promise<Output<R>> {
    const rest: Record<string, unknown> = { ...(args as Record<string, unknown> | undefined) };
    const path = method.url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
      const value = rest[name];
      delete rest[name];
      if (value === undefined) throw new TypeError(`missing path argument '${name}'`);
      return encodeURIComponent(String(value));
    });
    const url = new URL(this.#base + path);
    const init: RequestInit = { method: method.operation, headers: this.#headers };
    if (QUERY_OPERATIONS.has(method.operation)) {
      for (const [key, value] of Object.entries(rest)) {
        if (value === undefined) continue;
        for (const item of Array.isArray(value) ? value : [value]) {
          url.searchParams.append(key, String(item));
        }
      }
    } else {
      init.body = JSON.stringify(rest);
      init.headers = { "content-type": "application/json", ...this.#headers };
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let body: Record<string, unknown> = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      if (response.ok) throw new ClientError(response.status, "the answer is not JSON");
    }
    if (!response.ok) {
      throw new ClientError(
        response.status,
        typeof body.message === "string" ? body.message : response.statusText,
      );
    }
    return ("data" in body ? body.data : body) as Output<R>;
  }
}
