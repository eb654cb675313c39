/**
 * The server's metrics and their Prometheus exposition (`GET /metrics`). prom-client formats
 * the text (escaping, `+Inf`, HELP/TYPE lines) and supplies the process metrics; the families
 * below read counters the server keeps anyway (route counters, scheduler figures, sandbox
 * reports) at scrape time, so nothing is counted twice and nothing is hashed per request.
 *
 * @module
 */
import process from "node:process";
import { collectDefaultMetrics, type Metric, Registry } from "prom-client";
import { INTERNALS, type ServerSlice } from "../slices/slice.ts";
import type {
  ExtensionFigures,
  MetricsService,
  MetricsSources,
  MetricsSummary,
} from "./service.ts";
import { LATENCY_BUCKETS, RouteMetrics } from "./routes.ts";
import { SANDBOX_STATES, SandboxMetrics } from "./sandboxes.ts";

/** Every metric name of the server starts with this. */
export const PREFIX = "inmanta_";

/** prom-client's process metrics that it reads from /proc. */
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/** prom-client's CPU counters: they count from their first scrape, not from the process start. */
const CPU_METRICS = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
];

type Labels = Record<string, string | number>;
/** One line of a family: its labels, its value and, for histograms, its suffixed name. */
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

/**
 * A family whose samples are read when scraped. It has the shape prom-client's registry reads
 * from its own metric classes (`name`, `help`, `type`, `get()`); those classes keep values of
 * their own and cannot be fed precomputed histogram buckets, hence this small adapter.
 */
class Family {
  readonly aggregator = "sum";
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" | "histogram",
    readonly read: () => Sample[],
  ) {}
  get(): Promise<
    { name: string; help: string; type: string; values: Sample[]; aggregator: string }
  > {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.read(),
      aggregator: this.aggregator,
    });
  }
}

/** The server's metrics. */
export class ServerMetrics implements MetricsService {
  /** Where the sandbox host reports each sandbox. */
  readonly sandboxes: SandboxMetrics;
  readonly #routes: RouteMetrics[] = [];
  readonly #sources: MetricsSources;
  #registry: Registry | undefined;

  /**
   * @param sources what is read at scrape time
   * @param sandboxes the sandboxes' reports
   */
  constructor(sources: MetricsSources, sandboxes: SandboxMetrics = new SandboxMetrics()) {
    this.#sources = sources;
    this.sandboxes = sandboxes;
  }

  /** The counters of a new route. */
  route(extension: string, slice: string, route: string, method: string): RouteMetrics {
    const metrics = new RouteMetrics(extension, slice, route, method);
    this.#routes.push(metrics);
    return metrics;
  }

  /** The content type of {@link ServerMetrics.exposition}. */
  get contentType(): string {
    return Registry.PROMETHEUS_CONTENT_TYPE;
  }

  /** The Prometheus text exposition of every metric. */
  exposition(): Promise<string> {
    this.#registry ??= this.#build();
    return this.#registry.metrics();
  }

  /** The per-extension figures the console draws. */
  summary(): MetricsSummary {
    const memory = Deno.memoryUsage();
    const cpu = process.cpuUsage();
    const extensions = this.#sources.extensions().map((e): ExtensionFigures => {
      const figures: ExtensionFigures = {
        extension: e.name,
        isolation: e.isolation,
        status: e.status,
        requests: 0,
        errors: 0,
        latency: new Array(LATENCY_BUCKETS.length + 1).fill(0),
      };
      for (const route of this.#routes) {
        if (route.extension !== e.name) continue;
        for (const [status, count] of route.byStatus) {
          figures.requests += count;
          if (status >= 500) figures.errors += count;
        }
        let cumulative = 0;
        for (let i = 0; i < route.buckets.length; i++) {
          cumulative += route.buckets[i];
          figures.latency[i] += cumulative;
        }
      }
      const sandbox = this.sandboxes.get(e.name);
      if (sandbox) {
        const { extension: _, ...rest } = sandbox;
        figures.sandbox = rest;
      }
      return figures;
    });
    return {
      buckets: [...LATENCY_BUCKETS],
      process: {
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
      },
      extensions,
    };
  }

  #build(): Registry {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    // Deno feeds neither Node's event-loop-delay monitor (those gauges read nonsense) nor its
    // `gc` performance entries and active handle lists (those families would stay empty); the
    // `nodejs_active_*_total` gauges also break the rule that only counters end in `_total`; and
    // the figures prom-client reads from /proc read 0 unless Deno runs with every permission, so
    // resident memory comes from Deno.memoryUsage() instead. prom-client adds up CPU deltas from
    // when this registry is built (the first scrape); the process's whole CPU time is
    // process.cpuUsage() itself.
    for (const metric of registry.getMetricsAsArray()) {
      const name = metric.name;
      if (
        name.startsWith("nodejs_eventloop_lag") || name.startsWith("nodejs_active_") ||
        name.startsWith("nodejs_gc_") || PROC_METRICS.includes(name) || CPU_METRICS.includes(name)
      ) {
        registry.removeSingleMetric(name);
      }
    }
    const cpu = (pick: (usage: { user: number; system: number }) => number) => () => [
      { labels: {}, value: pick(process.cpuUsage()) / 1e6 },
    ];
    const own = [
      new Family(
        "process_cpu_user_seconds_total",
        "Total user CPU time spent in seconds.",
        "counter",
        cpu((u) => u.user),
      ),
      new Family(
        "process_cpu_system_seconds_total",
        "Total system CPU time spent in seconds.",
        "counter",
        cpu((u) => u.system),
      ),
      new Family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        cpu((u) => u.user + u.system),
      ),
      new Family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        () => [{ labels: {}, value: Deno.memoryUsage().rss }],
      ),
    ];
    for (const family of own) registry.registerMetric(family as unknown as Metric);
    for (const family of this.#families()) {
      // See Family: prom-client's registry reads any metric of this shape.
      registry.registerMetric(family as unknown as Metric);
    }
    return registry;
  }

  #families(): Family[] {
    const routes = this.#routes;
    const routeLabels = (r: RouteMetrics): Labels => ({
      extension: r.extension,
      slice: r.slice,
      route: r.route,
      method: r.method,
    });
    const slices = () => this.#sources.slices();
    const sliceLabels = (s: ServerSlice): Labels => ({
      extension: s.extensionName,
      slice: s.name,
    });
    const tasks = () =>
      slices().flatMap((s) =>
        s.scheduledTasks().map((task) => ({ labels: { ...sliceLabels(s), task: task.name }, task }))
      );
    const background = (pick: "started" | "running" | "failed") => () =>
      slices().map((s) => ({
        labels: sliceLabels(s),
        value: s[INTERNALS].backgroundCounts()[pick],
      }));
    const sandboxes = () => this.sandboxes.list();
    const perSandbox = (value: (r: ReturnType<typeof sandboxes>[number]) => number) => () =>
      sandboxes().map((r) => ({ labels: { extension: r.extension }, value: value(r) }));
    const name = (n: string) => `${PREFIX}${n}`;

    return [
      new Family(
        name("extension_up"),
        "1 when the extension loaded and none of its slices failed, else 0",
        "gauge",
        () =>
          this.#sources.extensions().map((e) => ({
            labels: { extension: e.name, isolation: e.isolation },
            value: e.status === "failed" ? 0 : 1,
          })),
      ),
      new Family(
        name("http_requests_total"),
        "API requests answered, by route template and status",
        "counter",
        () =>
          routes.flatMap((r) =>
            [...r.byStatus].map(([status, value]) => ({
              labels: { ...routeLabels(r), status },
              value,
            }))
          ),
      ),
      new Family(
        name("http_request_duration_seconds"),
        "Time from routing an API request to its response headers",
        "histogram",
        () =>
          routes.flatMap((r) => {
            const labels = routeLabels(r);
            const samples: Sample[] = [];
            let cumulative = 0;
            for (let i = 0; i < r.buckets.length; i++) {
              cumulative += r.buckets[i];
              samples.push({
                metricName: `${name("http_request_duration_seconds")}_bucket`,
                labels: { ...labels, le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i] : "+Inf" },
                value: cumulative,
              });
            }
            samples.push(
              {
                metricName: `${name("http_request_duration_seconds")}_sum`,
                labels,
                value: r.seconds,
              },
              {
                metricName: `${name("http_request_duration_seconds")}_count`,
                labels,
                value: cumulative,
              },
            );
            return samples;
          }),
      ),
      new Family(
        name("http_requests_in_flight"),
        "API requests being answered now",
        "gauge",
        () => routes.map((r) => ({ labels: routeLabels(r), value: r.inFlight })),
      ),
      new Family(
        name("handler_errors_total"),
        "API requests answered 500: the handler threw (its stack is in the log)",
        "counter",
        () => routes.map((r) => ({ labels: routeLabels(r), value: r.byStatus.get(500) ?? 0 })),
      ),
      new Family(
        name("scheduled_task_runs_total"),
        "Runs of each scheduled task",
        "counter",
        () => tasks().map(({ labels, task }) => ({ labels, value: task.runs })),
      ),
      new Family(
        name("scheduled_task_failures_total"),
        "Runs of each scheduled task that threw",
        "counter",
        () => tasks().map(({ labels, task }) => ({ labels, value: task.failures })),
      ),
      new Family(
        name("scheduled_task_duration_seconds_total"),
        "Seconds spent in finished runs of each scheduled task",
        "counter",
        // A guest's figures are not trusted: anything but a finite number reads 0.
        () =>
          tasks().map(({ labels, task }) => ({
            labels,
            value: Number.isFinite(task.seconds) ? task.seconds : 0,
          })),
      ),
      new Family(
        name("scheduled_task_running"),
        "1 while a run of the scheduled task is in progress",
        "gauge",
        () => tasks().map(({ labels, task }) => ({ labels, value: task.running ? 1 : 0 })),
      ),
      new Family(
        name("background_tasks_started_total"),
        "Background tasks each slice added",
        "counter",
        background("started"),
      ),
      new Family(
        name("background_tasks_failed_total"),
        "Background tasks that rejected",
        "counter",
        background("failed"),
      ),
      new Family(
        name("background_tasks_running"),
        "Background tasks not yet settled",
        "gauge",
        background("running"),
      ),
      new Family(
        name("sandbox_cpu_seconds_total"),
        "CPU seconds (user and system) each sandbox used, over all its runs",
        "counter",
        perSandbox((r) => r.cpuSeconds),
      ),
      new Family(
        name("sandbox_resident_memory_bytes"),
        "Resident memory of each sandbox",
        "gauge",
        perSandbox((r) => r.rssBytes),
      ),
      new Family(
        name("sandbox_heap_used_bytes"),
        "V8 heap in use in each sandbox",
        "gauge",
        perSandbox((r) => r.heapUsedBytes),
      ),
      new Family(
        name("sandbox_restarts_total"),
        "Restarts of each sandbox since the server started",
        "counter",
        perSandbox((r) => r.restarts),
      ),
      new Family(
        name("sandbox_start_time_seconds"),
        "When each sandbox (last) started, seconds since the epoch",
        "gauge",
        perSandbox((r) => r.startedAt / 1000),
      ),
      new Family(
        name("sandbox_uptime_seconds"),
        "Seconds since each sandbox (last) started",
        "gauge",
        perSandbox((r) => Math.max(0, (Date.now() - r.startedAt) / 1000)),
      ),
      new Family(
        name("sandbox_state"),
        "1 for the state each sandbox is in, 0 for the others",
        "gauge",
        () =>
          sandboxes().flatMap((r) =>
            SANDBOX_STATES.map((state) => ({
              labels: { extension: r.extension, state },
              value: r.state === state ? 1 : 0,
            }))
          ),
      ),
    ];
  }
}
