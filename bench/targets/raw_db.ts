// Baseline of the database benchmark: raw Deno.serve running the same indexed select itself,
// on node:sqlite in its main thread (embedded) or on a postgres.js pool (PostgreSQL).
// deno run --allow-net --allow-read --allow-write --allow-env bench/targets/raw_db.ts <sqlite-file | postgres-url>
import { DatabaseSync } from "node:sqlite";
import postgres from "postgres";

const target = Deno.args[0];
const NAME = /^\/api\/v2\/bench\/items\/([^/]+)$/;
let select: (name: string) => Promise<unknown>;
if (target.startsWith("postgres://")) {
  const sql = postgres(target, { max: 10, onnotice: () => {} });
  select = async (name) =>
    (await sql.unsafe(`select name, count from items where name = $1`, [name], { prepare: true }))[
      0
    ];
} else {
  const db = new DatabaseSync(target);
  const statement = db.prepare("select name, count from items where name = ?");
  select = (name) => Promise.resolve(statement.get(name));
}
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.error(`server running at http://127.0.0.1:${port}`),
}, async (request) => {
  const name = NAME.exec(new URL(request.url).pathname)?.[1] ?? "";
  return Response.json({ data: await select(name) });
});
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
