// Baseline: raw Deno.serve answering the same JSON as the server's endpoints, and parsing the
// same JSON bodies as the server's POST endpoint.
const server = Deno.serve(
  {
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.error(`server running at http://127.0.0.1:${port}`),
  },
  (request) =>
    request.method === "POST"
      ? request.json().then((body) => Response.json({ data: body.items.length }))
      : Response.json({ data: { id: "abc" } }),
);
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
