/**
 * The channel's pure parts, checked in milliseconds: every message a guest can send is
 * validated (a table of malformed ones), frames survive any split of the byte stream, and the
 * environment policy hands each guest exactly its own variables.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, FrameReader } from "../src/sandbox/channel.ts";
import { guestEnvironment } from "../src/sandbox/environment.ts";
import { decodeGuestBatch, parseGuestMessage } from "../src/sandbox/messages.ts";

const batch = (messages: unknown, buffers: ArrayBuffer[] = []) => ({
  json: JSON.stringify(messages),
  buffers,
});

Deno.test("channel: a table of malformed messages, each refused with a reason", () => {
  const bad: [string, unknown, RegExp][] = [
    ["a number", 42, /without a kind/],
    ["null", null, /without a kind/],
    ["a string", "res", /without a kind/],
    ["an unknown kind", { t: "pwn" }, /invalid message "pwn"/],
    ["a missing field", { t: "res", id: 1 }, /"res"/],
    ["a wrong type", { t: "log", level: "info", source: 5, message: "x" }, /source/],
    ["a forged log level", { t: "log", level: "critical", source: "a", message: "x" }, /level/],
    ["status 99", { t: "json", id: 1, status: 99, json: "{}" }, /status/],
    ["status 600", { t: "json", id: 1, status: 600, json: "{}" }, /status/],
    ["status 204 with a body", { t: "json", id: 1, status: 204, json: "{}" }, /204, 205 or 304/],
    [
      "status 304 with a body",
      { t: "res", id: 1, status: 304, headers: [], body: new ArrayBuffer(3) },
      /204, 205 or 304/,
    ],
    [
      "a header value with CR/LF",
      { t: "res", id: 1, status: 200, headers: [["x-a", "1\r\nset-cookie: x"]], body: null },
      /CR, LF or NUL/,
    ],
    [
      "a header name with a space",
      { t: "res", id: 1, status: 200, headers: [["x a", "1"]], body: null },
      /not a token/,
    ],
    [
      "an oversized log line",
      { t: "log", level: "info", source: "a", message: "x".repeat(100_000) },
      /message/,
    ],
    ["a forged task list", { t: "beat", tasks: { "a.b": [{ name: 5 }] } }, /tasks/],
    ["a negative id", { t: "done", id: -1 }, /id/],
    ["an extra field", { t: "done", id: 1, evil: true }, /evil|Unrecognized/i],
    [
      "a body that is not bytes",
      { t: "chunk", id: 1, body: "text" },
      /body/,
    ],
  ];
  for (const [what, message, reason] of bad) {
    assert.throws(() => parseGuestMessage(message), (error: Error) => {
      assert.equal(error.name, "ProtocolError", what);
      assert.match(error.message, reason, `${what}: ${error.message}`);
      assert.ok(error.message.length <= 400, what);
      return true;
    });
  }
});

Deno.test("channel: well-formed messages pass, bodies are put back in place", () => {
  const body = new Uint8Array([1, 2, 3]).buffer;
  const [res, log] = decodeGuestBatch(
    batch([
      { t: "res", id: 7, status: 204, headers: [["x-a", "b"]], body: null },
      { t: "log", level: "warning", source: "a.main", message: "careful" },
      { t: "chunk", id: 7, body: 0 },
    ], [body]),
  ).concat();
  assert.equal(res.t, "res");
  assert.equal(log.t, "log");
  const [chunk] = decodeGuestBatch(batch([{ t: "chunk", id: 7, body: 0 }], [body]));
  assert.equal((chunk as { body: ArrayBuffer }).body, body);
  // A body index that points nowhere is refused.
  assert.throws(() => decodeGuestBatch(batch([{ t: "chunk", id: 7, body: 3 }])), /body/);
  for (const value of [42, null, {}, { json: 1, buffers: [] }, { json: "{", buffers: [] }]) {
    assert.throws(() => decodeGuestBatch(value), /invalid batch/);
  }
});

Deno.test("channel: frames come back whole however the stream splits them", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          json: fc.string(),
          buffers: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 3 }),
        }),
        { minLength: 1, maxLength: 5 },
      ),
      fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 20 }),
      (batches, cuts) => {
        const stream = batches.map((b) =>
          encodeFrame({ json: b.json, buffers: b.buffers.map((u) => u.slice().buffer) })
        );
        const all = new Uint8Array(stream.reduce((n, f) => n + f.length, 0));
        let at = 0;
        for (const frame of stream) {
          all.set(frame, at);
          at += frame.length;
        }
        const reader = new FrameReader();
        const out = [];
        for (let i = 0, c = 0; i < all.length; c++) {
          const n = cuts[c % cuts.length];
          out.push(...reader.push(all.slice(i, i + n)));
          i += n;
        }
        assert.equal(out.length, batches.length);
        out.forEach((got, i) => {
          assert.equal(got.json, batches[i].json);
          assert.deepEqual(
            got.buffers.map((b) => [...new Uint8Array(b)]),
            batches[i].buffers.map((u) => [...u]),
          );
        });
      },
    ),
  );
  // A frame that claims more than the limit is refused before it is read.
  const reader = new FrameReader(1024);
  assert.throws(() => reader.push(new Uint8Array([0, 0, 8, 0, 1])), /invalid frame of 2048 bytes/);
  assert.throws(
    () => new FrameReader().push(new Uint8Array([0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4])),
    /invalid frame/,
  );
});

Deno.test("channel: each guest gets its own INMANTA_* variables, never secrets or another's", () => {
  const env = {
    INMANTA_EXTENSION_VICTIM_GREETING: "hi",
    INMANTA_EXTENSION_VICTIM_DB_PASSWORD: "secret of victim_db",
    INMANTA_EXTENSION_VICTIM_DB_HOST: "db",
    INMANTA_EXTENSION_OTHER_X: "other's",
    INMANTA_SERVER_BIND_PORT: "8888",
    INMANTA_AUTH_JWT_DEFAULT_KEY: "signing key",
    INMANTA_DATABASE_PASSWORD: "pg",
    PATH: "/usr/bin",
  };
  const enabled = ["victim", "victim_db", "other"];
  const secrets = new Set(["INMANTA_AUTH_JWT_DEFAULT_KEY"]);
  assert.deepEqual(guestEnvironment(env, { extension: "victim", enabled, secrets }), {
    INMANTA_EXTENSION_VICTIM_GREETING: "hi",
    INMANTA_SERVER_BIND_PORT: "8888",
  });
  assert.deepEqual(guestEnvironment(env, { extension: "victim_db", enabled, secrets }), {
    INMANTA_EXTENSION_VICTIM_DB_PASSWORD: "secret of victim_db",
    INMANTA_EXTENSION_VICTIM_DB_HOST: "db",
    INMANTA_SERVER_BIND_PORT: "8888",
  });
  // Without victim_db enabled, its variables are victim's options db_password and db_host.
  assert.deepEqual(
    Object.keys(guestEnvironment(env, { extension: "victim", enabled: ["victim"], secrets })),
    [
      "INMANTA_EXTENSION_VICTIM_GREETING",
      "INMANTA_EXTENSION_VICTIM_DB_PASSWORD",
      "INMANTA_EXTENSION_VICTIM_DB_HOST",
      "INMANTA_SERVER_BIND_PORT",
    ],
  );
});
