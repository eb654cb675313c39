/**
 * Property tests (fast-check): the INI reader, the argument decoder and the router take any
 * input without an unexpected failure.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConfigError,
  handle,
  type IniDocument,
  method,
  parseIni,
  serialiseIni,
  ServerSlice,
} from "@inmanta/server/server";
import { z } from "@inmanta/server/zod";
import { buildApp } from "../src/http/api.ts";
import { StaticTable } from "../src/http/static.ts";
import { Logger } from "../src/log.ts";
import { collectRoutes } from "../src/protocol/routes.ts";
import { INTERNALS } from "../src/slices/slice.ts";

const plain = (doc: IniDocument) =>
  [...doc].map(([s, o]) => [s, [...o].map(([k, v]) => [k, v.value])]);

// Names as configparser keeps them: no delimiters, brackets, comment starts or edge blanks.
const name = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_. -]{0,15}[A-Za-z0-9_]$|^[A-Za-z0-9_]$/);
const line = fc.stringMatching(/^[^\r\n#;\s][^\r\n]{0,30}$/).map((s) => s.trim()).filter((s) =>
  s !== "" && !s.startsWith("#") && !s.startsWith(";")
);
const value = fc.array(line, { maxLength: 3 }).map((lines) => lines.join("\n"));

Deno.test("fuzz: INI parse -> serialise -> parse is stable", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.tuple(
          name,
          fc.uniqueArray(fc.tuple(name.map((n) => n.toLowerCase().replaceAll("-", "_")), value), {
            selector: ([k]) => k,
            maxLength: 5,
          }),
        ),
        { selector: ([s]) => s, maxLength: 4 },
      ),
      (sections) => {
        const text = sections.map(([s, options]) =>
          `[${s}]\n${options.map(([k, v]) => `${k} = ${v.split("\n").join("\n  ")}`).join("\n")}\n`
        ).join("\n");
        const doc = parseIni(text, "fuzz.cfg");
        assert.deepEqual(plain(parseIni(serialiseIni(doc), "again.cfg")), plain(doc));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("fuzz: any text parses or fails with a ConfigError", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 200 }), (text) => {
      try {
        parseIni(text, "any.cfg");
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match((error as ConfigError).message, /^any\.cfg:\d+: /);
      }
    }),
    { numRuns: 2000 },
  );
});

const find = method({
  path: "/items/:id",
  operation: "GET",
  args: z.object({
    id: z.coerce.number().int(),
    q: z.string().max(20).optional(),
    tags: z.array(z.string()).optional(),
  }),
});
const save = method({
  path: "/items",
  operation: "POST",
  args: z.object({ name: z.string(), n: z.number().optional() }),
});

class Items extends ServerSlice {
  @handle(find)
  find(args: unknown) {
    return args;
  }
  @handle(save)
  save(args: unknown) {
    return args;
  }
}

function app() {
  const slice = new Items("fuzz.items");
  slice[INTERNALS].setStatus("started");
  return buildApp({
    routes: collectRoutes([slice], []),
    statics: new StaticTable(),
    log: new Logger("silent"),
    maxBodySize: 4096,
    bodyTimeout: 5,
  });
}

Deno.test("fuzz: no query string or body makes the argument decoder answer 500", async () => {
  const fetch = app();
  await fc.assert(
    fc.asyncProperty(
      fc.string({ maxLength: 60 }),
      fc.string({ maxLength: 120 }),
      async (query, body) => {
        const get = await fetch(
          new Request(`http://x/api/v2/items/7?${encodeURI(query).replaceAll("#", "%23")}`),
        );
        assert.ok([200, 400].includes(get.status), `GET answered ${get.status}`);
        await get.body?.cancel();
        const post = await fetch(new Request("http://x/api/v2/items", { method: "POST", body }));
        assert.ok([200, 400].includes(post.status), `POST answered ${post.status}`);
        await post.body?.cancel();
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("fuzz: no path or method makes the router answer 500", async () => {
  const fetch = app();
  const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...methods),
      fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }),
      async (verb, segments) => {
        const path = "/" + segments.map((s) => encodeURIComponent(s)).join("/");
        const response = await fetch(new Request(`http://x${path}`, { method: verb }));
        assert.ok(response.status < 500, `${verb} ${path} answered ${response.status}`);
        await response.body?.cancel();
      },
    ),
    { numRuns: 1000 },
  );
});

const echo = method({ path: "/echo", operation: "GET", args: z.looseObject({}) });
class Echo extends ServerSlice {
  @handle(echo)
  echo(args: unknown) {
    return args;
  }
}

Deno.test("fuzz: a query string decodes as URLSearchParams decodes it", async () => {
  const slice = new Echo("fuzz.echo");
  slice[INTERNALS].setStatus("started");
  const fetch = buildApp({
    routes: collectRoutes([slice], []),
    statics: new StaticTable(),
    log: new Logger("silent"),
    maxBodySize: 4096,
    bodyTimeout: 5,
  });
  const part = fc.constantFrom("a", "b", "=", "&", "+", "%", "%41", "%2B", "%zz", " ", "é", "?");
  await fc.assert(
    fc.asyncProperty(fc.array(part, { maxLength: 12 }), async (parts) => {
      const url = new URL(`http://x/api/v2/echo?${parts.join("")}`);
      const expected: Record<string, string | string[]> = {};
      const params = new URLSearchParams(url.search);
      for (const key of new Set(params.keys())) {
        const values = params.getAll(key);
        expected[key] = values.length > 1 ? values : values[0];
      }
      const response = await fetch(new Request(url));
      assert.equal(response.status, 200, url.search);
      assert.deepEqual((await response.json()).data, expected, url.search);
    }),
    { numRuns: 1000 },
  );
});
