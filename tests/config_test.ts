import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Config,
  ConfigError,
  convertOption,
  loadConfig,
  parseIni,
  serialiseIni,
} from "@inmanta/server/server";
import { tempDir } from "./helpers.ts";

function values(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [section, options] of parseIni(text, "t.cfg")) {
    out[section] = Object.fromEntries([...options].map(([k, v]) => [k, v.value]));
  }
  return out;
}

Deno.test("INI: configparser syntax", async (t) => {
  await t.step("key = value and key: value, comments, case and dashes", () => {
    assert.deepEqual(
      values(`# comment
; also a comment
[server]
Bind-Port = 8888
bind_address: 0.0.0.0
  # indented comment
empty =
`),
      { server: { bind_port: "8888", bind_address: "0.0.0.0", empty: "" } },
    );
  });
  await t.step("indented continuation lines, blank lines inside kept", () => {
    assert.deepEqual(
      values("[a]\nlist = one,\n  two,\n\n  three\nnext = x\n"),
      { a: { list: "one,\ntwo,\n\nthree", next: "x" } },
    );
  });
  await t.step("first delimiter splits; the value may hold = and :", () => {
    assert.deepEqual(values("[a]\nurl = https://x:1/?a=b\n"), { a: { url: "https://x:1/?a=b" } });
  });
  await t.step("errors name the file and line", () => {
    const cases: [string, RegExp][] = [
      ["key = 1\n", /^t\.cfg:1: option 'key' before any \[section\] header$/],
      ["[a]\nno delimiter here\n", /^t\.cfg:2: expected 'key = value'/],
      ["[a]\nx = 1\nX = 2\n", /^t\.cfg:3: option 'x' appears twice in section \[a\]$/],
      ["[a]\n[b]\n[a]\n", /^t\.cfg:3: section \[a\] appears twice$/],
      ["[a]\n= 1\n", /^t\.cfg:2: option without a name/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseIni(text, "t.cfg"), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.code, "config.syntax");
        assert.match(e.message, message);
        return true;
      });
    }
  });
  await t.step("serialise then parse gives the same document", () => {
    const doc = parseIni("[a]\nx = 1\ny = two\n  lines\n\n  and more\n[b.c]\nz:\n", "t.cfg");
    const again = parseIni(serialiseIni(doc), "again");
    assert.deepEqual(
      [...again].map(([s, o]) => [s, [...o].map(([k, v]) => [k, v.value])]),
      [...doc].map(([s, o]) => [s, [...o].map(([k, v]) => [k, v.value])]),
    );
  });
});

Deno.test("typed options: conversion, defaults, errors naming the option and origin", () => {
  assert.equal(convertOption("int", " 42 "), 42);
  assert.equal(convertOption("bool", "Yes"), true);
  assert.equal(convertOption("bool", "off"), false);
  assert.deepEqual(convertOption("list", "a, b,,c"), ["a", "b", "c"]);
  assert.equal(convertOption("duration", "90"), 90);
  assert.equal(convertOption("duration", "5m"), 300);
  assert.equal(convertOption("duration", "250ms"), 0.25);
  assert.equal(convertOption("float", "1.5"), 1.5);

  const config = new Config([parseIni("[x]\nport = eighty\nflag = maybe\n", "x.cfg")]);
  config.registerDefaultOptions("x", {
    port: { type: "int", default: 80, help: "port" },
    flag: { type: "bool", default: false, help: "flag" },
    name: { type: "string", default: "n", help: "name" },
  });
  assert.equal(config.get("x", "name"), "n");
  assert.throws(
    () => config.int("x", "port"),
    /^ConfigError: x\.cfg:2: option x\.port = 'eighty' is not an integer$/,
  );
  assert.throws(() => config.validate(), ConfigError);
  assert.throws(
    () => config.registerDefaultOptions("x", { port: { type: "string", default: "", help: "" } }),
    /option x\.port is registered twice/,
  );
  assert.deepEqual(config.registeredOptions().map((o) => `${o.section}.${o.name}`), [
    "x.port",
    "x.flag",
    "x.name",
  ]);
});

Deno.test("layered loading: later files win, environment wins over files", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = join(dir, "main.cfg");
  await Deno.writeTextFile(file, "[server]\nbind_port = 1\nbind_address = 10.0.0.1\n");
  const confDir = join(dir, "conf.d");
  await Deno.mkdir(confDir);
  await Deno.writeTextFile(join(confDir, "20-b.cfg"), "[server]\nbind_port = 3\n");
  await Deno.writeTextFile(
    join(confDir, "10-a.cfg"),
    "[server]\nbind_port = 2\nbind-address=::1\n",
  );
  await Deno.writeTextFile(join(confDir, "ignored.txt"), "not ini at all");
  const env: Record<string, string> = { INMANTA_SERVER_BIND_PORT: "4" };
  const config = await loadConfig({
    standardLocations: false,
    configFile: file,
    configDir: confDir,
    env: (name) => env[name],
  });
  assert.deepEqual(config.files, [file, join(confDir, "10-a.cfg"), join(confDir, "20-b.cfg")]);
  assert.equal(config.int("server", "bind_port"), 4);
  assert.equal(config.string("server", "bind_address"), "::1");
  delete env.INMANTA_SERVER_BIND_PORT;
  assert.equal(config.int("server", "bind_port"), 3);
  env["INMANTA_EXTENSION_NEW_EXTENSION_SOURCE"] = "jsr:@x/y@1";
  assert.equal(config.string("extension.new_extension", "source"), "jsr:@x/y@1");
  config.override("server", "bind_port", "5", "--port");
  assert.equal(config.int("server", "bind_port"), 5);
});

Deno.test("loading: a malformed file names file and line; a missing --config is an error", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = join(dir, "bad.cfg");
  await Deno.writeTextFile(file, "[server]\nbind_port = 1\noops\n");
  await assert.rejects(
    loadConfig({ standardLocations: false, configFile: file }),
    (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${file}:3: `),
  );
  await assert.rejects(
    loadConfig({ standardLocations: false, configFile: join(dir, "missing.cfg") }),
    /--config .*missing\.cfg: no such file/,
  );
  await assert.rejects(
    loadConfig({ standardLocations: false, configDir: join(dir, "nope") }),
    /--config-dir .*nope: cannot read/,
  );
});

Deno.test("config: an environment variable that names two options is an error naming both", () => {
  const config = new Config([], (name) => name === "INMANTA_EXTENSION_A_B_C" ? "1" : undefined);
  config.registerDefaultOptions("extension.a_b", { c: { type: "string", default: "", help: "x" } });
  config.registerDefaultOptions("extension.a", { b_c: { type: "string", default: "", help: "x" } });
  assert.throws(
    () => config.validate(),
    /^ConfigError: environment variable INMANTA_EXTENSION_A_B_C matches two options, extension\.a_b\.c and extension\.a\.b_c/,
  );
  // Unset, the two options live side by side.
  const quiet = new Config([], () => undefined);
  quiet.registerDefaultOptions("extension.a_b", { c: { type: "string", default: "", help: "x" } });
  quiet.registerDefaultOptions("extension.a", { b_c: { type: "string", default: "", help: "x" } });
  quiet.validate();
});
