/// <reference lib="deno.worker" />
// The guest side of bench/database.ts: a Kysely whose driver posts each statement to the host,
// as a sandboxed extension's does; answers the mean µs per select, one after another.
import { channelDatabase } from "../../src/database/channel_dialect.ts";
import type { DatabaseResponse } from "../../src/database/wire.ts";

const waiting = new Map<number, PromiseWithResolvers<DatabaseResponse>>();
let next = 0;
const db = channelDatabase("bench", "sqlite", (request) => {
  const id = next++;
  const w = Promise.withResolvers<DatabaseResponse>();
  waiting.set(id, w);
  self.postMessage({ id, request });
  return w.promise;
});
self.onmessage = async ({ data }) => {
  if (data.start !== undefined) {
    const select = () =>
      db.selectFrom("items").select(["name", "count"]).where("name", "=", "item4242").execute();
    for (let i = 0; i < 200; i++) await select();
    const start = performance.now();
    for (let i = 0; i < data.start; i++) await select();
    self.postMessage({ result: ((performance.now() - start) / data.start) * 1000 });
    return;
  }
  const w = waiting.get(data.id)!;
  waiting.delete(data.id);
  if (data.error) w.reject(new Error(data.error));
  else w.resolve(data.response);
};
