/**
 * Every code sample in docs/extensions.md that names its source (`// from: FILE` or
 * `# from: FILE` as its first line) is still, line for line, in that file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT } from "./helpers.ts";

Deno.test("docs: code samples are taken from files the tests run", async () => {
  const guide = await Deno.readTextFile(join(PROJECT, "docs/extensions.md"));
  const blocks = [...guide.matchAll(/```\w*\n(?:\/\/|#) from: (\S+)\n([\s\S]*?)```/g)];
  assert.ok(blocks.length >= 8, `only ${blocks.length} sourced samples`);
  // Compared line by line without indentation: the formatter re-indents samples in markdown.
  const lines = (text: string) => text.trimEnd().split("\n").map((l) => l.trim()).join("\n");
  for (const [, file, body] of blocks) {
    const source = lines(await Deno.readTextFile(join(PROJECT, file)));
    assert.ok(source.includes(lines(body)), `sample from ${file} no longer matches:\n${body}`);
  }
});
