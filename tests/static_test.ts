/**
 * Static content against a real server and real files: directories, default files, `start`,
 * content types, ETags, traversal attempts, symlinks out of the directory, in-memory documents.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { rawStatus, startServer, tempDir, writeExtension } from "./helpers.ts";

const FILES = `import { ServerSlice } from "@inmanta/server";
class Files extends ServerSlice {
  constructor(root) { super("files.main"); this.root = root; }
  prestart() {
    this.addStaticHandler("/files", this.root, "index.html", true);
    this.addStaticHandler("/files/docs/", this.root + "/sub", "start.html");
    this.addStaticContent("/files/hello.txt", "hello from memory", "text/plain; charset=utf-8");
  }
}
export function setup(application) {
  application.registerSlice(new Files(application.config.string("extension.files", "root")));
}
`;

Deno.test("static content", async (t) => {
  await using tmp = await tempDir();
  const site = join(tmp.path, "site");
  await Deno.mkdir(join(site, "sub"), { recursive: true });
  await Deno.writeTextFile(join(site, "index.html"), "<h1>index</h1>");
  await Deno.writeTextFile(join(site, "app.js"), "export const x = 1;");
  await Deno.writeTextFile(join(site, "style.css"), "body{}");
  await Deno.writeTextFile(join(site, "data.json"), "{}");
  await Deno.writeTextFile(join(site, "mod.ts"), "export {};");
  await Deno.writeTextFile(join(site, "sub", "start.html"), "<h1>docs</h1>");
  await Deno.writeTextFile(join(tmp.path, "secret.txt"), "top secret");
  await Deno.symlink(join(tmp.path, "secret.txt"), join(site, "escape.txt"));
  await Deno.symlink(join(site, "style.css"), join(site, "alias.css"));
  await writeExtension(tmp.path, "files", FILES);
  await using test = await startServer({
    roots: [tmp.path],
    enable: ["files"],
    config: `[extension.files]\nroot = ${site}\npermissions = read=${site}\n`,
  });
  const url = test.url;

  await t.step("files with their content types", async () => {
    for (
      const [path, type] of [
        ["/files/index.html", "text/html; charset=utf-8"],
        ["/files/app.js", "text/javascript; charset=utf-8"],
        ["/files/style.css", "text/css; charset=utf-8"],
        ["/files/data.json", "application/json"],
        ["/files/mod.ts", "application/typescript; charset=utf-8"],
        ["/files/alias.css", "text/css; charset=utf-8"],
      ]
    ) {
      const response = await fetch(`${url}${path}`);
      await response.body?.cancel();
      assert.deepEqual([path, response.status, response.headers.get("content-type")], [
        path,
        200,
        type,
      ]);
    }
  });
  await t.step("the default file, and a redirect to the directory's slash", async () => {
    const response = await fetch(`${url}/files/`);
    assert.equal(await response.text(), "<h1>index</h1>");
    const redirect = await fetch(`${url}/files`, { redirect: "manual" });
    await redirect.body?.cancel();
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get("location"), `${url}/files/`);
  });
  await t.step("the longest prefix wins; its own default file", async () => {
    assert.equal(await (await fetch(`${url}/files/docs/`)).text(), "<h1>docs</h1>");
  });
  await t.step("start: / redirects to the location, as Inmanta's RedirectHandler", async () => {
    const root = await fetch(`${url}/?from=root`, { redirect: "manual" });
    await root.body?.cancel();
    assert.deepEqual([root.status, root.headers.get("location")], [301, `${url}/files/?from=root`]);
    assert.equal(await (await fetch(`${url}/`)).text(), "<h1>index</h1>");
    // Only / itself: the directory is not served at the root.
    const file = await fetch(`${url}/app.js`);
    await file.body?.cancel();
    assert.equal(file.status, 404);
  });
  await t.step("ETag and If-None-Match: 304", async () => {
    const first = await fetch(`${url}/files/app.js`);
    await first.body?.cancel();
    const etag = first.headers.get("etag")!;
    assert.match(etag, /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    const again = await fetch(`${url}/files/app.js`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
    const stale = await fetch(`${url}/files/app.js`, { headers: { "if-none-match": 'W/"0-0"' } });
    assert.equal(stale.status, 200);
    await stale.body?.cancel();
  });
  await t.step("a file changed on disk is served changed", async () => {
    assert.equal(await (await fetch(`${url}/files/data.json`)).text(), "{}");
    await Deno.writeTextFile(join(site, "data.json"), '{"changed": true}');
    assert.equal(await (await fetch(`${url}/files/data.json`)).text(), '{"changed": true}');
    await Deno.writeTextFile(join(site, "data.json"), "{}");
  });
  await t.step("missing files: 404", async () => {
    const response = await fetch(`${url}/files/nope.html`);
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { message: "no such file: /files/nope.html" });
  });
  await t.step("no way out of the directory", async () => {
    for (
      const target of [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/files/%2e%2e%2fsecret.txt",
        "/files/sub/..%2f..%2fsecret.txt",
        "/files/..%5csecret.txt",
        "/files/escape.txt",
        "/files/index.html%00.js",
        "/files/%zz",
        "/..%2f..%2fetc/passwd",
      ]
    ) {
      const status = await rawStatus(url, target);
      assert.ok(status === 404 || status === 400, `${target} answered ${status}`);
    }
    // The server is still serving.
    assert.equal((await fetch(`${url}/files/data.json`)).status, 200);
  });
  await t.step("addStaticContent: one in-memory document with ETag", async () => {
    const response = await fetch(`${url}/files/hello.txt`);
    assert.equal(await response.text(), "hello from memory");
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    const again = await fetch(`${url}/files/hello.txt`, {
      headers: { "if-none-match": response.headers.get("etag")! },
    });
    assert.equal(again.status, 304);
    await again.body?.cancel();
  });
  await t.step("HEAD: headers without a body", async () => {
    const response = await fetch(`${url}/files/index.html`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), "14");
    assert.equal(await response.text(), "");
  });
});

const SPA = `import { ServerSlice } from "@inmanta/server";
class Spa extends ServerSlice {
  constructor(root) { super("spa.main"); this.root = root; }
  prestart() { this.addStaticHandler("/app", this.root, "index.html", true, { fallback: true }); }
}
export function setup(application) {
  application.registerSlice(new Spa(application.config.string("extension.spa", "root")));
}
`;

for (const isolation of ["none", "worker", "process"] as const) {
  Deno.test(`[isolation=${isolation}] static fallback for single-page apps, start redirects / (as inmanta-ui needs)`, async (t) => {
    await using tmp = await tempDir();
    const site = join(tmp.path, "site");
    await Deno.mkdir(site, { recursive: true });
    await Deno.writeTextFile(join(site, "index.html"), "<h1>app</h1>");
    await Deno.writeTextFile(join(site, "asset.js"), "export const a = 1;");
    await writeExtension(tmp.path, "spa", SPA);
    await using test = await startServer({
      roots: [tmp.path],
      enable: ["spa"],
      isolation,
      config: `[extension.spa]\nroot = ${site}\npermissions = read=${site}\n`,
    });
    const url = test.url;
    const get = async (path: string) => {
      const response = await fetch(`${url}${path}`, { redirect: "manual" });
      return [response.status, response.headers.get("content-type"), await response.text()];
    };
    await t.step("client-side routes answer the default file", async () => {
      assert.deepEqual(await get("/app/environments/3/resources"), [
        200,
        "text/html; charset=utf-8",
        "<h1>app</h1>",
      ]);
      assert.deepEqual(await get("/app/"), [200, "text/html; charset=utf-8", "<h1>app</h1>"]);
    });
    await t.step("real files untouched", async () => {
      assert.deepEqual(await get("/app/asset.js"), [
        200,
        "text/javascript; charset=utf-8",
        "export const a = 1;",
      ]);
    });
    await t.step("API paths untouched", async () => {
      const [status, , body] = await get("/api/v2/app/nothing");
      assert.equal(status, 404);
      assert.deepEqual(JSON.parse(body as string), {
        message: "no route for GET /api/v2/app/nothing",
      });
    });
    await t.step("/ redirects to the location", async () => {
      const response = await fetch(`${url}/`, { redirect: "manual" });
      await response.body?.cancel();
      assert.deepEqual([response.status, response.headers.get("location")], [301, `${url}/app/`]);
    });
  });
}
