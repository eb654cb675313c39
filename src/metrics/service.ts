/**
 * What the server asks of its metrics, without prom-client: `server.ts` refers to this and loads
 * the implementation (`registry.ts`) only when it starts. Sandboxes must never import the
 * registry: type-checking prom-client in a cold guest once took longer than the heartbeat
 * timeout.
 *
 * @module
 */
import type { ServerSlice } from "../slices/slice.ts";
import type { RouteMetrics } from "./routes.ts";
import type { SandboxMetrics } from "./sandboxes.ts";

/** What the metrics read from the server at scrape time. */
export interface MetricsSources {
  /** The slices, every isolation mode. */
  slices(): readonly ServerSlice[];
  /** The loaded extensions and whether they failed. */
  extensions(): readonly { name: string; isolation: string; status: string }[];
}

/** Per-extension figures for the console (rates are the page's job: it keeps the history). */
export interface ExtensionFigures {
  /** The extension. */
  extension: string;
  /** Its isolation. */
  isolation: string;
  /** `loaded` or `failed`. */
  status: string;
  /** Answers so far. */
  requests: number;
  /** Answers with a 5xx status so far. */
  errors: number;
  /** Answers at or under each of {@link LATENCY_BUCKETS} (cumulative), then all of them. */
  latency: number[];
  /** The sandbox's last report, when it has one. */
  sandbox?: {
    cpuSeconds: number;
    rssBytes: number;
    heapUsedBytes: number;
    state: string;
    restarts: number;
    startedAt: number;
    lastFailure?: string;
  };
}

/** The figures `GET /api/v2/extension-metrics` answers: the process and each extension. */
export interface MetricsSummary {
  /** Upper bounds (seconds) of the latency buckets. */
  buckets: number[];
  /** The server process. */
  process: { cpuSeconds: number; rssBytes: number; heapUsedBytes: number };
  /** Each extension, core first. */
  extensions: ExtensionFigures[];
}

/** The server's metrics: route counters, sandbox reports, the exposition and the console's figures. */
export interface MetricsService {
  /** Where the sandbox host reports each sandbox. */
  readonly sandboxes: SandboxMetrics;
  /** The counters of a new route. */
  route(extension: string, slice: string, route: string, method: string): RouteMetrics;
  /** The content type of the exposition. */
  readonly contentType: string;
  /** The Prometheus text exposition of every metric. */
  exposition(): Promise<string>;
  /** The per-extension figures the console draws. */
  summary(): MetricsSummary;
}

/** What `registry.ts` exports, as the server loads it. */
export interface MetricsModule {
  /** Builds the metrics of one server. */
  ServerMetrics: new (sources: MetricsSources, sandboxes: SandboxMetrics) => MetricsService;
}
