/**
 * The core extension: always loaded, in-process. `core.transport` owns the HTTP listeners;
 * `core.server` answers status, health and the API document.
 *
 * @module
 */
import type { z } from "zod";
import { HttpError } from "../errors.ts";
import type { HttpTransport } from "../http/transport.ts";
import { handle } from "../protocol/method.ts";
import { service } from "../slices/services.ts";
import { INTERNALS, ServerSlice } from "../slices/slice.ts";
import { extensionMetrics, health, openApi, scheduledTasks, serverStatus } from "./protocol.ts";

/** What the core slices need of the server. */
export interface CoreView {
  /** The body of `/api/v1/serverstatus`. */
  status(): z.input<typeof serverStatus.returns>;
  /** `up` once every slice started; otherwise why not. */
  health(): "up" | "starting" | "degraded" | "stopping" | "failed";
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

/** `core.transport`: starts listening first and, at prestop, drains the requests in flight. */
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
    await this.#view.transport().close();
  }
}

/** `core.server`: status, health, API document and metrics. */
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

  override getDependencies(): string[] {
    return ["core.transport"];
  }

  @handle(extensionMetrics)
  getExtensionMetrics(): z.input<typeof extensionMetrics.returns> {
    return this.#view.extensionMetrics();
  }

  /** The `data` of `GET /api/v1/serverstatus`; a service other slices may call. */
  @handle(serverStatus)
  @service
  getServerStatus(): z.input<typeof serverStatus.returns> {
    return this.#view.status();
  }

  @handle(health)
  getHealth(): { status: "up" } {
    const state = this.#view.health();
    if (state !== "up") throw new HttpError(503, `server is ${state}`);
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
