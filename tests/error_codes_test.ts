/**
 * The one list of error codes (src/error_codes.ts): every code the source raises type-checks
 * only when listed (InmantaError's `code` is an ErrorCode); here, every listed code is raised
 * somewhere, so the list holds nothing stale, and a code a guest sends is checked against it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ERROR_CODES, isErrorCode } from "../src/error_codes.ts";
import { PROJECT } from "./helpers.ts";

async function sources(dir: string): Promise<string[]> {
  const texts: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) texts.push(...await sources(path));
    else if (entry.name.endsWith(".ts") && entry.name !== "error_codes.ts") {
      texts.push(await Deno.readTextFile(path));
    }
  }
  return texts;
}

Deno.test("error codes: every listed code is raised somewhere in src/", async () => {
  const text = (await sources(join(PROJECT, "src"))).join("\n");
  const unused = Object.keys(ERROR_CODES).filter((code) => !text.includes(`"${code}"`));
  assert.deepEqual(unused, []);
});

Deno.test("error codes: a code from a guest is one of the listed ones or not taken", () => {
  assert.ok(isErrorCode("slice.cycle"));
  assert.ok(isErrorCode("http.404"));
  assert.ok(isErrorCode("client.503"));
  assert.ok(!isErrorCode("http.999"));
  assert.ok(!isErrorCode("made.up"));
  assert.ok(!isErrorCode("toString"), "an inherited property is not a code");
  assert.ok(!isErrorCode(undefined));
});
