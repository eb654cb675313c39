/**
 * Micro-benchmark of request dispatch: a plain hono app with 200 routes (the baseline) against
 * the server's application with the same 200 routes as slice endpoints. Run: deno task bench.
 */
import { Hono } from "hono";
import { buildApp } from "../src/http/api.ts";
import { StaticTable } from "../src/http/static.ts";
import { Logger } from "../src/log.ts";

import { benchRoutes, ROUTES } from "./routes_fixture.ts";

const plain = new Hono();
for (let i = 0; i < ROUTES; i++) {
  plain.get(
    `/api/v2/ext${i % 20}/item${i}/:id`,
    (c) => c.json({ data: { id: c.req.param("id") } }),
  );
}

const routes = benchRoutes();
const ours = buildApp({
  routes,
  statics: new StaticTable(),
  log: new Logger("silent"),
  maxBodySize: 1 << 20,
  bodyTimeout: 30,
});

const url = `http://127.0.0.1/api/v2/ext7/item187/abc`;

Deno.bench("plain hono, 200 routes", { group: "dispatch", baseline: true }, async () => {
  await (await plain.fetch(new Request(url))).arrayBuffer();
});

Deno.bench("server app, 200 slice endpoints", { group: "dispatch" }, async () => {
  await (await ours(new Request(url))).arrayBuffer();
});

// The request paths of the load benchmark, without the network: JavaScript time only.
const statics = new StaticTable();
statics.add({
  kind: "directory",
  location: "/greeter",
  root: new URL("../extensions/inmanta_ext/new_extension/static/", import.meta.url),
  defaultFilename: "index.html",
  start: false,
}, "new_extension.greeter");
const withStatics = buildApp({
  routes,
  statics,
  log: new Logger("silent"),
  maxBodySize: 1 << 20,
  bodyTimeout: 30,
});
const raw = () => Response.json({ data: { id: "abc" } });
// The first request resolves the mount's real path.
await (await withStatics(new Request("http://127.0.0.1/greeter/"))).arrayBuffer();

Deno.bench("raw handler", { group: "paths", baseline: true }, async () => {
  await raw().arrayBuffer();
  new Request(url);
});
Deno.bench("endpoint", { group: "paths" }, async () => {
  await (await withStatics(new Request(url))).arrayBuffer();
});
Deno.bench("404 path", { group: "paths" }, async () => {
  await (await withStatics(new Request("http://127.0.0.1/api/v2/nothing/here"))).arrayBuffer();
});
Deno.bench("small static file", { group: "paths" }, async () => {
  await (await withStatics(new Request("http://127.0.0.1/greeter/"))).arrayBuffer();
});
