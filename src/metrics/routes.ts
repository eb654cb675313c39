/**
 * Counters of one API route, on the request path. Each route owns its counters, made once when
 * the router is built, so a request touches a few numbers of an object it already holds: no
 * label set is built or hashed per request (prom-client's `inc(labels)` does that, and cost
 * 2–10× more than the whole of this, see bench/metrics_bench.ts). The exposition reads them at
 * scrape time.
 *
 * @module
 */

/**
 * Upper bounds (seconds) of the latency histogram. Durations are read off `Date.now()`, a
 * millisecond clock at half the cost of `performance.now()` (about 50 against 100 ns a read, two
 * reads a request: at 100k requests/s that is the difference between 1% and 2% of throughput).
 * A request's measured milliseconds are off by less than one either way and right on average, so
 * `_sum` is unbiased and bounds from 1 ms up are meaningful; answers faster than that all fall
 * in the first bucket.
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];
const BOUNDS_MS = LATENCY_BUCKETS.map((s) => s * 1000);
const BUCKETS = BOUNDS_MS.length;

/** A routed request handler, as the router calls it. */
export type Endpoint = (
  request: Request,
  path: string,
  params: Record<string, string>,
  search: string,
) => Response | Promise<Response>;

/** The labels and counters of one route. */
export class RouteMetrics {
  /** The extension whose slice handles the route. */
  readonly extension: string;
  /** The slice that handles it. */
  readonly slice: string;
  /** The URL template (`/api/v2/greeting/:name`), never a raw path. */
  readonly route: string;
  /** The method's HTTP operation (HEAD requests of a GET route count as GET). */
  readonly method: string;
  /** Answers by status. */
  readonly byStatus: Map<number, number> = new Map();
  /** Answers per latency bucket, not cumulative; the last slot is `+Inf`. */
  readonly buckets: Float64Array = new Float64Array(BUCKETS + 1);
  /** Seconds spent answering, summed. */
  seconds = 0;
  /** Requests being answered now. */
  inFlight = 0;

  /**
   * @param extension the extension label
   * @param slice the slice label
   * @param route the route template label
   * @param method the operation label
   */
  constructor(extension: string, slice: string, route: string, method: string) {
    this.extension = extension;
    this.slice = slice;
    this.route = route;
    this.method = method;
  }

  /** Counts one answer with `status`, begun at `began` (`Date.now()`). */
  finish(status: number, began: number): void {
    const ms = Date.now() - began;
    this.inFlight--;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    let i = 0;
    while (i < BUCKETS && ms > BOUNDS_MS[i]) i++;
    this.buckets[i]++;
    this.seconds += ms / 1000;
  }

  /** Answers so far, whatever their status. */
  get total(): number {
    let n = 0;
    for (const count of this.byStatus.values()) n += count;
    return n;
  }
}

/** Who a routed request was counted against, for the access log (kept only while it is on). */
export const ROUTED: WeakMap<Request, RouteMetrics> = new WeakMap();

/**
 * Wraps `endpoint` so that each call is counted against `metrics`. With `remember`, the request
 * is also noted in {@link ROUTED} so that the access log can name its route.
 */
export function instrument(endpoint: Endpoint, metrics: RouteMetrics, remember: boolean): Endpoint {
  return (request, path, params, search) => {
    const began = Date.now();
    metrics.inFlight++;
    if (remember) ROUTED.set(request, metrics);
    let answer: Response | Promise<Response>;
    try {
      answer = endpoint(request, path, params, search);
    } catch (error) {
      metrics.finish(500, began);
      throw error;
    }
    if (!(answer instanceof Promise)) {
      metrics.finish(answer.status, began);
      return answer;
    }
    return answer.then((response) => {
      metrics.finish(response.status, began);
      return response;
    }, (error) => {
      // The router answers a rejection with 500.
      metrics.finish(500, began);
      throw error;
    });
  };
}
