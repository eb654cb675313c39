/**
 * Discovery and loading of extensions, against real extension files in temporary roots.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ExtensionError, SliceError } from "@inmanta/server";
import { getJson, startServer, tempDir, writeExtension } from "./helpers.ts";

const SLICE = (ext: string, slice = "main") => `
import { ServerSlice } from "@inmanta/server";
export function setup(application) {
  application.registerSlice(new ServerSlice("${ext}.${slice}"));
}
`;

async function startupError(options: Parameters<typeof startServer>[0]): Promise<Error> {
  const test = await startServer({ ...options, start: false });
  try {
    await test.server.start();
  } catch (error) {
    assert.equal(test.server.state, "failed");
    return error as Error;
  }
  await test.stop();
  throw new Error("start-up succeeded where it should fail");
}

Deno.test("discovery: several roots contribute to the inmanta_ext namespace", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  await writeExtension(a.path, "alpha", SLICE("alpha"));
  await writeExtension(b.path, "beta", SLICE("beta"));
  await using test = await startServer({ roots: [a.path, b.path], enable: ["alpha", "beta"] });
  const { body } = await getJson(`${test.url}/api/v1/serverstatus`);
  const data = body.data as { extensions: { name: string; source: string }[] };
  assert.deepEqual(data.extensions.map((e) => e.name), ["core", "alpha", "beta"]);
  assert.equal(data.extensions[2].source, join(b.path, "inmanta_ext", "beta", "extension.ts"));
});

Deno.test("discovery: the same extension in two roots is an error naming both paths", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  await writeExtension(a.path, "twice", SLICE("twice"));
  await writeExtension(b.path, "twice", SLICE("twice"));
  const error = await startupError({ roots: [a.path, b.path], enable: ["twice"] });
  assert.ok(error instanceof ExtensionError);
  assert.equal(error.code, "extension.duplicate");
  assert.ok(error.message.includes(join(a.path, "inmanta_ext/twice/extension.ts")));
  assert.ok(error.message.includes(join(b.path, "inmanta_ext/twice/extension.ts")));
});

Deno.test("discovery: an unknown extension is an error listing where it looked", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  const error = await startupError({ roots: [a.path, b.path], enable: ["nowhere"] });
  assert.ok(error instanceof ExtensionError);
  assert.equal(error.code, "extension.not_found");
  assert.match(error.message, /^extension nowhere is enabled but not found; looked for /);
  assert.ok(error.message.includes(join(a.path, "inmanta_ext/nowhere/extension.ts")));
  assert.ok(error.message.includes(join(b.path, "inmanta_ext/nowhere/extension.ts")));
});

Deno.test("discovery: extension.<name>.source as a path, a folder and a file: URL", async (t) => {
  await using a = await tempDir();
  const dir = await writeExtension(a.path, "elsewhere", SLICE("elsewhere"));
  for (
    const source of [
      join(dir, "extension.ts"),
      dir,
      a.path,
      pathToFileURL(join(dir, "extension.ts")).href,
    ]
  ) {
    await t.step(source, async () => {
      await using test = await startServer({
        enable: ["elsewhere"],
        config: `[extension.elsewhere]\nsource = ${source}\n`,
      });
      assert.equal(test.server.getSlice("elsewhere.main").status, "started");
    });
  }
  await t.step("a source that holds no extension", async () => {
    const error = await startupError({
      enable: ["elsewhere"],
      config: `[extension.elsewhere]\nsource = ${join(a.path, "missing")}\n`,
    });
    assert.match(error.message, /^extension\.elsewhere\.source = .*missing: no extension module/);
  });
  await t.step("a malformed jsr: specifier", async () => {
    const error = await startupError({
      enable: ["elsewhere"],
      config: `[extension.elsewhere]\nsource = jsr:not a package\n`,
    });
    assert.match(error.message, /not a jsr:@scope\/package@range specifier/);
  });
});

Deno.test("discovery: an extension name that is not an identifier is refused", async () => {
  const error = await startupError({ enable: ["Bad-Name"] });
  assert.equal((error as ExtensionError).code, "extension.name");
  assert.match(error.message, /extension name 'Bad-Name' is not a lower-case identifier/);
});

Deno.test("loading: setup must be an exported function", async () => {
  await using a = await tempDir();
  await writeExtension(a.path, "nosetup", "export const setup = 42;\n");
  const error = await startupError({ roots: [a.path], enable: ["nosetup"] });
  assert.equal((error as ExtensionError).code, "extension.setup");
  assert.match(
    error.message,
    /^extension nosetup: .* does not export a function setup\(application\)$/,
  );
});

Deno.test("loading: a module that fails to import names the extension", async () => {
  await using a = await tempDir();
  await writeExtension(a.path, "broken", "throw new Error('top-level boom');\n");
  const error = await startupError({ roots: [a.path], enable: ["broken"], isolation: "none" });
  assert.equal((error as ExtensionError).code, "extension.import");
  assert.match(error.message, /^extension broken: cannot import .*extension\.ts: top-level boom$/);
});

Deno.test("loading: setup may be async and runs once", async () => {
  await using a = await tempDir();
  await writeExtension(
    a.path,
    "later",
    `import { ServerSlice } from "@inmanta/server";
globalThis.laterSetups = (globalThis.laterSetups ?? 0);
export async function setup(application) {
  await new Promise((resolve) => setTimeout(resolve, 1));
  globalThis.laterSetups++;
  application.registerSlice(new ServerSlice("later.main"));
}
`,
  );
  await using test = await startServer({
    roots: [a.path],
    enable: ["later"],
    isolation: "none",
  });
  assert.equal(test.server.getSlice("later.main").status, "started");
  assert.equal((globalThis as { laterSetups?: number }).laterSetups, 1);
});

Deno.test("loading: setup that throws names the extension and stops nothing else", async () => {
  await using a = await tempDir();
  await writeExtension(a.path, "fails", "export function setup() { throw new Error('no db'); }\n");
  const error = await startupError({ roots: [a.path], enable: ["fails"] });
  assert.equal((error as ExtensionError).code, "extension.setup_failed");
  assert.equal(error.message, "extension fails: setup failed: no db");
});

Deno.test("compatibility: an incompatible core range is refused before setup", async (t) => {
  await using a = await tempDir();
  await t.step("export const coreVersion", async () => {
    await writeExtension(
      a.path,
      "future",
      `export const coreVersion = "^2.0";
export function setup() { globalThis.futureSetupRan = true; }
`,
    );
    const error = await startupError({ roots: [a.path], enable: ["future"], isolation: "none" });
    assert.equal((error as ExtensionError).code, "extension.incompatible");
    assert.match(
      error.message,
      /^extension future requires core \^2\.0 \(export const coreVersion =\) but this server is 0\.1\.0$/,
    );
    assert.equal((globalThis as { futureSetupRan?: boolean }).futureSetupRan, undefined);
  });
  await t.step("the range pinned in deno.json imports", async () => {
    await writeExtension(a.path, "pinned", SLICE("pinned"), {
      "deno.json": JSON.stringify({
        name: "@acme/pinned",
        version: "1.2.3",
        exports: "./extension.ts",
        imports: { "@inmanta/server": "jsr:@inmanta/server@^0.3.0" },
      }),
    });
    const error = await startupError({ roots: [a.path], enable: ["pinned"] });
    assert.match(
      error.message,
      /^extension pinned requires core \^0\.3\.0 \(.*deno\.json imports "@inmanta\/server"\) but this server is 0\.1\.0$/,
    );
  });
  await t.step("a compatible one loads with its version", async () => {
    await writeExtension(
      a.path,
      "fits",
      `export const coreVersion = ">=0.1 <1";\n${SLICE("fits")}`,
      {
        "deno.json": JSON.stringify({ name: "@acme/fits", version: "2.0.1" }),
      },
    );
    await using test = await startServer({ roots: [a.path], enable: ["fits"] });
    const { body } = await getJson(`${test.url}/api/v1/serverstatus`);
    const extensions =
      (body.data as { extensions: { name: string; version: string }[] }).extensions;
    assert.deepEqual(extensions.find((e) => e.name === "fits")?.version, "2.0.1");
  });
  await t.step("an invalid range is a clear error", async () => {
    await writeExtension(
      a.path,
      "garbled",
      `export const coreVersion = "not a range";\n${SLICE("garbled")}`,
    );
    const error = await startupError({ roots: [a.path], enable: ["garbled"] });
    assert.match(
      error.message,
      /^extension garbled: export const coreVersion = 'not a range' is not a valid semver range$/,
    );
  });
});

Deno.test("slices: a duplicate slice and a slice of another extension are refused", async (t) => {
  await using a = await tempDir();
  await writeExtension(a.path, "one", SLICE("one", "same"));
  await writeExtension(a.path, "two", SLICE("one", "same"));
  await writeExtension(
    a.path,
    "three",
    `${SLICE("three", "x")}\nexport const _ = 0;`.replace(
      'application.registerSlice(new ServerSlice("three.x"));',
      'application.registerSlice(new ServerSlice("three.x"));\n  application.registerSlice(new ServerSlice("three.x"));',
    ),
  );
  await t.step("slice name of another extension", async () => {
    const error = await startupError({ roots: [a.path], enable: ["one", "two"] });
    assert.ok(error instanceof SliceError);
    assert.equal(error.code, "slice.owner");
    assert.match(
      error.message,
      /^extension two registered slice one\.same, whose name belongs to extension one/,
    );
  });
  await t.step("the same slice twice", async () => {
    const error = await startupError({ roots: [a.path], enable: ["three"] });
    assert.equal((error as SliceError).code, "slice.duplicate");
    assert.equal(
      error.message,
      "slice three.x is registered twice (by extension three and by extension three)",
    );
  });
  await t.step("a malformed slice name", async () => {
    await writeExtension(a.path, "odd", SLICE("odd", "").replace('"odd."', '"odd"'));
    const error = await startupError({ roots: [a.path], enable: ["odd"] });
    assert.equal((error as SliceError).code, "slice.name");
    assert.match(error.message, /slice name 'odd' is not of the form <extension>\.<slice>/);
  });
});

Deno.test("discovery: extension.<name>.source as an http(s) URL is imported by Deno", async () => {
  const module = SLICE("remote");
  await using listener = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new URL(request.url).pathname === "/remote/extension.ts"
        ? new Response(module, { headers: { "content-type": "application/typescript" } })
        : new Response("not found", { status: 404 }),
  );
  const base = `http://127.0.0.1:${listener.addr.port}`;
  await using test = await startServer({
    enable: ["remote"],
    config: `[extension.remote]\nsource = ${base}/remote/extension.ts\n`,
  });
  const { body } = await getJson(`${test.url}/api/v1/serverstatus`);
  const extensions = (body.data as { extensions: { name: string; source: string }[] }).extensions;
  assert.deepEqual(extensions[1], {
    name: "remote",
    version: "unversioned",
    source: `${base}/remote/extension.ts`,
    isolation: "process",
    permissions: `import=127.0.0.1:${listener.addr.port}`,
    status: "loaded",
    reason: null,
    schema_version: null,
    restarts: 0,
    last_failure: null,
  });
  // A sandboxed module that cannot be imported stops start-up by default, naming it...
  await assert.rejects(
    startServer({
      enable: ["remote"],
      config: `[extension.remote]\nsource = ${base}/nothing.ts\n`,
    }),
    /^ExtensionError: extension remote: cannot fetch http:\/\/127\.0\.0\.1:\d+\/nothing\.ts/,
  );
  // ... and, with boot_failure = continue, fails only its own extension.
  await using broken = await startServer({
    enable: ["remote"],
    config: `[extension.remote]\nsource = ${base}/nothing.ts\nboot_failure = continue\n`,
  });
  const status = await getJson(`${broken.url}/api/v1/serverstatus`);
  const failed = (status.body.data as { extensions: { status: string; reason: string | null }[] })
    .extensions[1];
  assert.equal(failed.status, "failed");
  assert.match(
    failed.reason!,
    /^extension remote: cannot fetch http:\/\/127\.0\.0\.1:(\d+)\/nothing\.ts: Module not found "http:\/\/127\.0\.0\.1:\1\/nothing\.ts"\.$/,
  );
});
