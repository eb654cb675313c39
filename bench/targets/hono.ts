// A plain hono app with the same 200 routes as the server's bench extensions.
import { Hono } from "hono";

const app = new Hono();
for (let e = 0; e < 20; e++) {
  for (let r = 0; r < 10; r++) {
    app.get(`/api/v2/ext${e}/item${r}/:id`, (c) => c.json({ data: { id: c.req.param("id") } }));
  }
}
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.error(`server running at http://127.0.0.1:${port}`),
}, app.fetch);
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
