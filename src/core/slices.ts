/**
 * The core extension: always loaded, in-process. `core.transport` owns the HTTP listeners;
 * `core.server` answers status, health and the API document.
 *
 * @module
 */
import type { z } from "zod";
import type { HttpTransport } from "../http/transport.ts";
import { handle } from "../protocol/method.ts";
import { service } from "../slices/services.ts";
import { INTERNALS, ServerSlice } from "../slices/slice.ts";
import { extensionMetrics, health, openApi, scheduledTasks, serverStatus } from "./protocol.ts";

/** What the core slices need of the server. */
export interface CoreView {
  /** The body of `/api/v1/serverstatus`. */
  status(): Promise<z.input<typeof serverStatus.returns>>;
  /** `up` once every slice started and no extension failed; otherwise why not. */
  health(): Health;
  /** The scheduled tasks of every slice. */
  tasks(): z.input<typeof scheduledTasks.returns>;
  /** The OpenAPI document. */
  openApi(): Record<string, unknown>;
  /** The listeners. */
  transport(): HttpTransport;
  /** Milliseconds since epoch by which shutdown must be done. */
  shutdownDeadline(): number;
  /** Answers `GET /metrics` (authentication included). */
  metrics(request: Request): Promise<Response>;
  /** The figures of `GET /api/v2/extension-metrics`. */
  extensionMetrics(): z.input<typeof extensionMetrics.returns>;
}

/** What `/api/v2/health` says. */
export interface Health {
  /** `up`, or why not. */
  status: "up" | "degraded" | "stopping";
  /** The extensions that failed. */
  failed: string[];
}

/** The answer of `/api/v2/health` when the server is not up: 503 with the health and why. */
export function healthResponse(health: Health): Response {
  return Response.json(
    { data: health, message: `server is ${health.status}` },
    { status: 503, headers: { "cache-control": "no-store" } },
  );
}

/**
 * `core.transport`: the listener. It starts after every slice that serves endpoints or static
 * content (the port opens when the API behind it is ready) and is the first to stop: its
 * prestop answers new requests 503 and waits for those in flight before any other slice's
 * prestop; its stop closes the port before any other slice stops.
 */
export class TransportSlice extends ServerSlice {
  readonly #view: CoreView;

  /** @param view the server */
  constructor(view: CoreView) {
    super("core.transport");
    this.#view = view;
  }

  override start(): void {
    this.#view.transport().listen();
  }

  override async prestop(): Promise<void> {
    await this.#view.transport().drain(this.#view.shutdownDeadline());
  }

  override async stop(): Promise<void> {
    await this.#view.transport().close(this.#view.shutdownDeadline());
  }

  /** Where it listens and how many requests are being answered. */
  override getStatus(): Record<string, unknown> {
    const transport = this.#view.transport();
    return {
      listening: transport.addresses.map(({ hostname, port }) =>
        `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`
      ),
      in_flight: transport.inFlight,
    };
  }
}

/**
 * `core.server`: status, health, API document and metrics. It does not depend on
 * `core.transport`: like every slice that serves endpoints, it starts before the listener opens.
 */
export class CoreServerSlice extends ServerSlice {
  readonly #view: CoreView;

  /** @param view the server */
  constructor(view: CoreView) {
    super("core.server");
    this.#view = view;
    // `/metrics` sits outside `/api/v<N>`, where Prometheus looks by default; mounted now, so
    // that core owns it before any extension claims a location.
    this[INTERNALS].mount({
      kind: "proxy",
      location: "/metrics",
      start: false,
      forward: (request) => this.#view.metrics(request),
    });
  }

  @handle(extensionMetrics)
  getExtensionMetrics(): z.input<typeof extensionMetrics.returns> {
    return this.#view.extensionMetrics();
  }

  /** The `data` of `GET /api/v1/serverstatus`; a service other slices may call. */
  @handle(serverStatus)
  @service
  getServerStatus(): Promise<z.input<typeof serverStatus.returns>> {
    return this.#view.status();
  }

  @handle(health)
  getHealth(): { status: "up" } | Response {
    const health = this.#view.health();
    if (health.status !== "up") return healthResponse(health);
    return { status: "up" };
  }

  @handle(scheduledTasks)
  getScheduledTasks(): z.input<typeof scheduledTasks.returns> {
    return this.#view.tasks();
  }

  @handle(openApi)
  getOpenApi(): Response {
    return Response.json(this.#view.openApi());
  }
}
