/**
 * The MIME table of static files: by extension, case-insensitive, with a safe default.
 */
import assert from "node:assert/strict";
import { contentType } from "../src/http/mime.ts";

Deno.test("content types by file extension", () => {
  for (
    const [path, type] of [
      ["index.html", "text/html; charset=utf-8"],
      ["/a/b/APP.JS", "text/javascript; charset=utf-8"],
      ["mod.ts", "application/typescript; charset=utf-8"],
      ["data.json", "application/json"],
      ["logo.svg", "image/svg+xml; charset=utf-8"],
      ["font.woff2", "font/woff2"],
      ["Makefile", "application/octet-stream"],
      ["archive.unknown", "application/octet-stream"],
      ["x.constructor", "application/octet-stream"],
      ["dir.d/file", "application/octet-stream"],
    ]
  ) {
    assert.equal(contentType(path), type, path);
  }
});
