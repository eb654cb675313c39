// Baseline: raw Deno.serve answering the same JSON as the server's endpoints, and parsing the
// same JSON bodies as the server's POST endpoint; with a file argument, answering that file's
// bytes from memory (the baseline of the static file target).
const page = Deno.args[0] ? await Deno.readFile(Deno.args[0]) : undefined;
const server = Deno.serve(
  {
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.error(`server running at http://127.0.0.1:${port}`),
  },
  (request) =>
    page
      ? new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } })
      : request.method === "POST"
      ? request.json().then((body) => Response.json({ data: body.items.length }))
      : Response.json({ data: { id: "abc" } }),
);
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
