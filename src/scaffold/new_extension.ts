/**
 * Scaffolds an extension package: `deno task new-extension NAME [--dir DIR] [--scope @SCOPE]`,
 * or by URL: `deno run --allow-read --allow-write jsr:@inmanta/server/new-extension NAME`.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { VERSION } from "../version.ts";

/** What {@link scaffold} makes. */
export interface ScaffoldOptions {
  /** Extension name: a lower-case identifier. */
  name: string;
  /** Folder to create; default `./<name>`. */
  dir?: string;
  /** JSR scope of the package; default `@local`. */
  scope?: string;
}

/** Thrown for a name or folder that cannot be used; the message says why. */
export class ScaffoldError extends Error {}

/** The files of a new extension package, by relative path. */
export function templateFiles(name: string, scope = "@local"): Record<string, string> {
  const pkg = `${scope}/${name.replaceAll("_", "-")}`;
  const major = VERSION.split(".")[0] === "0"
    ? `^${VERSION.split(".").slice(0, 2).join(".")}.0`
    : `^${VERSION.split(".")[0]}.0.0`;
  return {
    "deno.json": JSON.stringify(
      {
        name: pkg,
        version: "0.1.0",
        license: "Apache-2.0",
        exports: `./inmanta_ext/${name}/extension.ts`,
        imports: { "@inmanta/server": `jsr:@inmanta/server@${major}` },
        unstable: ["worker-options"],
        tasks: {
          test:
            "deno test --no-check --allow-read=. --allow-net=127.0.0.1 --allow-env=INMANTA_*,JSR_URL --allow-run=deno --allow-import=jsr.io:443,127.0.0.1 tests/",
          check:
            `deno fmt --check && deno lint && deno check inmanta_ext/ tests/ && deno doc --lint inmanta_ext/${name}/extension.ts`,
          serve:
            `deno run --no-lock --allow-read=.,/etc/inmanta --allow-write=data --allow-net=127.0.0.1 --allow-env=INMANTA_*,JSR_URL --allow-run=deno --allow-import=jsr.io:443,127.0.0.1 jsr:@inmanta/server@${major}/cli --config dev.cfg`,
          dev:
            `deno run --no-lock --watch=inmanta_ext/ --allow-read=.,/etc/inmanta --allow-write=data --allow-net=127.0.0.1 --allow-env=INMANTA_*,JSR_URL --allow-run=deno --allow-import=jsr.io:443,127.0.0.1 jsr:@inmanta/server@${major}/cli --config dev.cfg`,
          publish: "deno publish",
        },
        publish: { include: ["inmanta_ext/", "README.md", "LICENSE", "deno.json"] },
        fmt: { lineWidth: 100 },
      },
      null,
      2,
    ) + "\n",
    "dev.cfg":
      `# The configuration of \`deno task serve\` and \`deno task dev\`: this folder's extension.
[server]
enabled_extensions = ${name}
extension_path = .
bind_port = 8888
package_cache = data/packages
`,
    [`inmanta_ext/${name}/api.ts`]: `/**
 * The API of the ${name} extension: each method declared once, handled by the slice in
 * extension.ts and called by clients (tests/). This module is not one of the package's exports,
 * so the types of these declarations are left to zod to infer: JSR only asks that what a
 * package exports be spelled out.
 *
 * @module
 */
import { method } from "@inmanta/server";
import { z } from "@inmanta/server/zod";

/** \`GET /api/v2/${name}/hello?name=...\` answers \`{"data": {"message": "hello <name> from ${name}"}}\`. */
export const hello = method({
  path: "/${name}/hello",
  operation: "GET",
  apiVersion: 2,
  args: z.object({ name: z.string().min(1).default("world") }),
  returns: z.object({ message: z.string() }),
  summary: "Say hello",
});

/** An item: what \`PUT /api/v2/${name}/items/:id\` takes (a JSON body) and returns. */
export const Item = z.object({
  id: z.string().min(1),
  title: z.string().min(1),
  done: z.boolean().default(false),
});

/** \`PUT /api/v2/${name}/items/:id\` with a JSON body: stores the item under the path's id. */
export const putItem = method({
  path: "/${name}/items/:id",
  operation: "PUT",
  apiVersion: 2,
  args: Item,
  returns: Item,
  summary: "Store an item",
});
`,
    [`inmanta_ext/${name}/extension.ts`]: `/**
 * The ${name} extension of the Inmanta server: an endpoint with query arguments, one with a
 * JSON body and a path parameter, a static folder and a scheduled task.
 *
 * @module
 */
import { type ApplicationContext, handle, type Output, ServerSlice } from "@inmanta/server";
import { hello, type Item, putItem } from "./api.ts";

/** The ${name} slice (not exported: only \`setup\` is the package's API). */
class MainSlice extends ServerSlice {
  readonly #items = new Map<string, Output<typeof Item>>();
  #sweeps = 0;

  override getDependencies(): string[] {
    return ["core.server"];
  }

  /** As in Inmanta: the listener opens only once this slice serves. */
  override getDependedBy(): string[] {
    return ["core.transport"];
  }

  override prestart(): void {
    // A path beside this module: a file: URL locally, the package's URL when loaded from JSR.
    this.addStaticHandler("/${name}", new URL("./static/", import.meta.url));
    this.schedule(() => this.#sweep(), 60);
  }

  #sweep(): void {
    this.#sweeps++;
    for (const [id, item] of this.#items) if (item.done) this.#items.delete(id);
  }

  @handle(hello)
  hello({ name }: Output<typeof hello.args>): Output<typeof hello.returns> {
    return { message: \`hello \${name} from ${name}\` };
  }

  @handle(putItem)
  putItem(item: Output<typeof Item>): Output<typeof Item> {
    this.#items.set(item.id, item);
    return item;
  }
}

/** Registers the extension's slices. */
export function setup(application: ApplicationContext): void {
  application.registerSlice(new MainSlice("${name}.main"));
}
`,
    [`inmanta_ext/${name}/static/index.html`]: `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>${name}</title>
  </head>
  <body>
    <main>
      <h1>${name}</h1>
      <p>Served by the ${name} extension.</p>
    </main>
  </body>
</html>
`,
    "tests/extension_test.ts": `import assert from "node:assert/strict";
import { startTestServer } from "@inmanta/server/testing";
import { hello, putItem } from "../inmanta_ext/${name}/api.ts";

const extension = { name: "${name}", path: new URL("../", import.meta.url) };

Deno.test("${name}: the endpoints answer", async () => {
  await using test = await startTestServer({ extensions: [extension] });
  const { message } = await test.client.call(hello, { name: "tester" });
  assert.equal(message, "hello tester from ${name}");
  const item = await test.client.call(putItem, { id: "a1", title: "first" });
  assert.deepEqual(item, { id: "a1", title: "first", done: false });
});

Deno.test("${name}: the static page is served", async () => {
  await using test = await startTestServer({ extensions: [extension] });
  const page = await fetch(\`\${test.url}/${name}/\`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<h1>${name}<\\/h1>/);
});
`,
    "README.md": `# ${pkg}

An extension of the Inmanta server for Deno.

- \`deno task test\`: starts a server with this extension (in its sandbox) and calls it.
- \`deno task check\`: format, lint and type checks.
- \`deno task publish\`: publishes to JSR (\`deno publish --dry-run\` to try).

Enable it in the server's configuration:

\`\`\`ini
[server]
enabled_extensions = ${name}

[extension.${name}]
source = jsr:${pkg}@^0.1
\`\`\`
`,
    LICENSE: `Apache License, Version 2.0 (the "License"); you may not use this package except in
compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License
is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express
or implied. See the License for the specific language governing permissions and limitations under
the License.
`,
  };
}

/** Writes a new extension package; returns its folder. Refuses bad names and existing folders. */
export async function scaffold(options: ScaffoldOptions): Promise<string> {
  const { name } = options;
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new ScaffoldError(
      `'${name}' is not a valid extension name: use a lower-case identifier (a-z, 0-9, _), e.g. my_extension`,
    );
  }
  const scope = options.scope ?? "@local";
  if (!/^@[a-z0-9][a-z0-9-]*$/.test(scope)) {
    throw new ScaffoldError(
      `'${scope}' is not a JSR scope: use @ and lower-case letters, digits, -`,
    );
  }
  const dir = resolve(options.dir ?? name);
  if (existsSync(dir)) {
    throw new ScaffoldError(`${dir} already exists: choose another --dir or remove it`);
  }
  for (const [path, text] of Object.entries(templateFiles(name, scope))) {
    const file = join(dir, path);
    await Deno.mkdir(join(file, ".."), { recursive: true });
    await Deno.writeTextFile(file, text);
  }
  return dir;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { dir: { type: "string" }, scope: { type: "string" } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error("usage: deno task new-extension NAME [--dir DIR] [--scope @SCOPE]");
    Deno.exit(2);
  }
  try {
    const dir = await scaffold({ name: positionals[0], dir: values.dir, scope: values.scope });
    console.log(`created ${dir}: cd there and run 'deno task test'`);
  } catch (error) {
    if (!(error instanceof ScaffoldError)) throw error;
    console.error(`new-extension: ${error.message}`);
    Deno.exit(2);
  }
}
