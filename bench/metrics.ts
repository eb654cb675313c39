/**
 * What counting costs per request: the server's application with 200 routes dispatching one
 * request, without metrics, with the per-route counters (`server.metrics`, the default), and with
 * the request-id wrapper every answer goes through; beside it, the same counting done with
 * prom-client's own Counter and Histogram (label sets hashed per call), the reason the route
 * counters are kept by hand. The variants run in interleaved batches; each batch is timed in
 * this process's CPU time (other load on the machine barely changes it, unlike wall time) and
 * each variant keeps its fastest batch. Run: deno task bench, or
 * `deno run --allow-read --allow-env bench/metrics.ts`.
 */
import process from "node:process";
import { Counter, Histogram, Registry } from "prom-client";
import { buildApp, type Endpoint, type FetchHandler } from "../src/http/api.ts";
import { StaticTable } from "../src/http/static.ts";
import { Logger } from "../src/log.ts";
import { ServerMetrics } from "../src/metrics/registry.ts";
import { instrument, LATENCY_BUCKETS } from "../src/metrics/routes.ts";
import type { Route } from "../src/protocol/routes.ts";
import { withRequestIds } from "../src/requests.ts";
import { benchRoutes } from "./routes_fixture.ts";

const routes: Route[] = benchRoutes();

function app(instrumentWith?: (route: Route, endpoint: Endpoint) => Endpoint): FetchHandler {
  return buildApp({
    routes,
    statics: new StaticTable(),
    log: new Logger("silent"),
    maxBodySize: 1 << 20,
    bodyTimeout: 30,
    instrument: instrumentWith,
  });
}

const metrics = new ServerMetrics({ slices: () => [], extensions: () => [] });
const uncounted = app();
const counted = app((route, endpoint) =>
  instrument(
    endpoint,
    metrics.route(
      route.slice.extensionName,
      route.slice.name,
      route.method.url,
      route.method.operation,
    ),
    false,
  )
);

// The same counting with prom-client's own metric classes.
const registry = new Registry();
const labelNames = ["extension", "slice", "route", "method"];
const requests = new Counter({
  name: "bench_requests_total",
  help: "requests",
  labelNames: [...labelNames, "status"],
  registers: [registry],
});
const latency = new Histogram({
  name: "bench_request_duration_seconds",
  help: "latency",
  labelNames,
  buckets: [...LATENCY_BUCKETS],
  registers: [registry],
});
const promClient = app((route, endpoint) => {
  const labels = {
    extension: route.slice.extensionName,
    slice: route.slice.name,
    route: route.method.url,
    method: route.method.operation,
  };
  return (request, path, params, search) => {
    const began = Date.now();
    const answer = endpoint(request, path, params, search) as Response;
    requests.inc({ ...labels, status: answer.status });
    latency.observe(labels, (Date.now() - began) / 1000);
    return answer;
  };
});

const withIds = withRequestIds(counted);

const url = `http://127.0.0.1/api/v2/ext7/item187/abc`;
const variants: [string, FetchHandler][] = [
  ["metrics off", uncounted],
  ["metrics on (route counters)", counted],
  ["metrics on + request id", withIds],
  ["prom-client Counter + Histogram", promClient],
];
const BATCH = 2000;
const ROUNDS = Deno.args.includes("--quick") ? 3 : 40;
const best = variants.map(() => Infinity);
for (let round = 0; round < ROUNDS; round++) {
  for (const [i, [, handler]] of variants.entries()) {
    const began = process.cpuUsage();
    for (let n = 0; n < BATCH; n++) await (await handler(new Request(url))).arrayBuffer();
    const used = process.cpuUsage(began);
    best[i] = Math.min(best[i], (used.user + used.system) / 1000 / BATCH);
  }
}
const us = (ms: number) => `${(ms * 1000).toFixed(2)} µs`;
console.log(
  `CPU time per request, fastest of ${ROUNDS} interleaved batches of ${BATCH} requests:\n`,
);
console.log("| variant | per request | cost over metrics off |");
console.log("| --- | --- | --- |");
for (const [i, [name]] of variants.entries()) {
  console.log(`| ${name} | ${us(best[i])} | ${i === 0 ? "—" : `+${us(best[i] - best[0])}`} |`);
}
