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
            "deno test --allow-read --allow-net=127.0.0.1 --allow-env --allow-run=deno --allow-import tests/",
          check: "deno fmt --check && deno lint && deno check inmanta_ext/ tests/",
          publish: "deno publish",
        },
        publish: { include: ["inmanta_ext/", "README.md", "LICENSE", "deno.json"] },
        fmt: { lineWidth: 100 },
      },
      null,
      2,
    ) + "\n",
    [`inmanta_ext/${name}/extension.ts`]: `/**
 * The ${name} extension of the Inmanta server.
 *
 * @module
 */
import {
  type ApplicationContext,
  handle,
  method,
  type MethodDefinition,
  ServerSlice,
  z,
} from "@inmanta/server";

/** Arguments of {@link hello}. */
export const HelloArgs: z.ZodObject<{ name: z.ZodDefault<z.ZodString> }> = z.object({
  name: z.string().min(1).default("world"),
});

/** What {@link hello} returns. */
export const HelloReply: z.ZodObject<{ message: z.ZodString }> = z.object({
  message: z.string(),
});

/** \`GET /api/v2/${name}/hello?name=...\` answers \`{"data": {"message": "hello <name> from ${name}"}}\`. */
export const hello: MethodDefinition<typeof HelloArgs, typeof HelloReply> = method({
  path: "/${name}/hello",
  operation: "GET",
  apiVersion: 2,
  args: HelloArgs,
  returns: HelloReply,
  summary: "Say hello",
});

/** The ${name} slice: one endpoint and one static folder, served at /${name}/. */
export class MainSlice extends ServerSlice {
  override getDependencies(): string[] {
    return ["core.server"];
  }

  override prestart(): void {
    this.addStaticHandler("/${name}", new URL("./static/", import.meta.url));
  }

  /** Answers {@link hello}. */
  @handle(hello)
  hello({ name }: { name: string }): { message: string } {
    return { message: \`hello \${name} from ${name}\` };
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
import { startTestServer } from "@inmanta/server";
import { hello } from "../inmanta_ext/${name}/extension.ts";

Deno.test("${name}: the endpoint answers", async () => {
  await using test = await startTestServer({
    extensions: [{ name: "${name}", path: new URL("../", import.meta.url) }],
  });
  const { message } = await test.client.call(hello, { name: "tester" });
  assert.equal(message, "hello tester from ${name}");
});

Deno.test("${name}: the static page is served", async () => {
  await using test = await startTestServer({
    extensions: [{ name: "${name}", path: new URL("../", import.meta.url) }],
  });
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
