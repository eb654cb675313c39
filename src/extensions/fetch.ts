/**
 * Pre-fetching remote extensions in a child `deno cache` process. Deno ends the whole process
 * on a JSR integrity failure (a tampered package), even inside a Worker; a child process takes
 * that fall instead, and what it fetched lands in the shared cache (DENO_DIR), from which the
 * extension is imported next, and from which it starts again offline.
 *
 * @module
 */
import { ExtensionError } from "../errors.ts";
import type { ExtensionSpec } from "./discovery.ts";

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Fetches and verifies a `jsr:` or `https:` extension; a failure names the extension and why. */
export async function prefetch(spec: ExtensionSpec): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("deno", {
      args: ["cache", "--no-lock", "--quiet", spec.specifier],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new ExtensionError(
      "extension.fetch",
      `extension ${spec.name}: cannot run 'deno cache' to fetch ${spec.specifier} (the server needs --allow-run=deno and deno on PATH): ${
        (error as Error).message.split("\n")[0]
      }`,
    );
  }
  if (output.success) return;
  const text = new TextDecoder().decode(output.stderr).replace(ANSI, "");
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const error = lines.find((l) => /^error:/i.test(l))?.replace(/^error:\s*/i, "") ??
    lines[0] ?? `deno cache exited with ${output.code}`;
  const where = lines.find((l) => l.startsWith("Specifier:"));
  const what = spec.package && spec.source
    ? `${spec.source} (resolved to ${spec.package.version})`
    : spec.specifier;
  throw new ExtensionError(
    /integrity/i.test(error) ? "extension.integrity" : "extension.fetch",
    `extension ${spec.name}: cannot fetch ${what}: ${error}${where ? ` (${where})` : ""}`,
  );
}
