/**
 * Permission grants: `extension.<name>.permissions` in Deno's own vocabulary, e.g.
 * `read=./static; net=api.example.com:443; env=HOME`, turned into a Worker's `deno.permissions`.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError, ExtensionError } from "../errors.ts";

/** The permission kinds Deno knows. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "ffi",
  "sys",
  "import",
] as const;

/** One permission kind. */
export type PermissionKind = typeof PERMISSION_KINDS[number];

/** A grant: every kind either all (true), nothing (false) or a list. */
export type Grant = Record<PermissionKind, boolean | string[]>;

const PATH_KINDS: ReadonlySet<PermissionKind> = new Set(["read", "write", "ffi"]);

/**
 * Parses a grant. `option` names the option in errors; `ownFolder` (the extension's folder) is
 * always readable. Relative paths resolve against the working directory, as Deno's flags do.
 */
export function parseGrant(text: string, option: string, ownFolder?: string): Grant {
  const grant = Object.fromEntries(PERMISSION_KINDS.map((k) => [k, false])) as Grant;
  for (const raw of text.split(/[;\n]/)) {
    const entry = raw.trim();
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    const kind = (eq < 0 ? entry : entry.slice(0, eq)).trim().toLowerCase() as PermissionKind;
    if (!PERMISSION_KINDS.includes(kind)) {
      throw new ConfigError(
        "config.permissions",
        `${option}: unknown permission kind '${kind}' (use ${PERMISSION_KINDS.join(", ")})`,
      );
    }
    const value = eq < 0 ? "all" : entry.slice(eq + 1).trim();
    if (value === "" || value === "none") continue;
    if (value === "all" || value === "*") {
      grant[kind] = true;
      continue;
    }
    const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const resolved = items.map((item) =>
      PATH_KINDS.has(kind) || (kind === "run" && item.includes("/"))
        ? isAbsolute(item) ? item : resolve(item)
        : item
    );
    const current = grant[kind];
    if (current !== true) grant[kind] = [...(current === false ? [] : current), ...resolved];
  }
  if (ownFolder && grant.read !== true) {
    grant.read = [ownFolder, ...(grant.read === false ? [] : grant.read)];
  }
  return grant;
}

/** The grant as Deno flags would say it, e.g. `read=/srv/ext; net=api.example.com:443`. */
export function describeGrant(grant: Grant): string {
  return PERMISSION_KINDS.filter((k) => grant[k] !== false)
    .map((k) => grant[k] === true ? `${k}=all` : `${k}=${(grant[k] as string[]).join(",")}`)
    .join("; ") || "none";
}

/**
 * The grant as `deno run` flags: `--allow-<kind>[=list]` for what it grants, and
 * `--deny-import` when it grants no import (Deno would otherwise allow jsr.io, deno.land, ...).
 */
export function denoFlags(grant: Grant): string[] {
  const flags: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const value = grant[kind];
    if (value === true) flags.push(`--allow-${kind}`);
    else if (value !== false && value.length > 0) flags.push(`--allow-${kind}=${value.join(",")}`);
  }
  if (grant.import === false) flags.push("--deny-import");
  return flags;
}

/** The permission descriptor of one granted item. */
function descriptor(kind: PermissionKind, item?: string): Deno.PermissionDescriptor {
  switch (kind) {
    case "read":
    case "write":
    case "ffi":
      return { name: kind, path: item };
    case "net":
    case "import":
      return { name: kind, host: item } as Deno.PermissionDescriptor;
    case "env":
      return { name: kind, variable: item };
    case "run":
      return { name: kind, command: item };
    case "sys":
      return { name: kind, kind: item as Deno.SysPermissionDescriptor["kind"] };
  }
}

/**
 * Checks that the server process itself holds everything a grant gives (a sandbox never gets
 * more than the server has, whatever its isolation).
 *
 * @throws {ExtensionError} `extension.permissions` naming the extension and the missing part
 */
export function checkGrantWithin(grant: Grant, extension: string): void {
  for (const kind of PERMISSION_KINDS) {
    const value = grant[kind];
    if (value === false) continue;
    // A wildcard (env=AWS_*) cannot be queried: Deno itself holds the guest to it.
    const items = value === true ? [undefined] : value.filter((i) => !i.includes("*"));
    for (const item of items) {
      let state: Deno.PermissionState;
      try {
        state = Deno.permissions.querySync(descriptor(kind, item)).state;
      } catch {
        continue; // a descriptor this Deno cannot query (a wildcard): Deno itself decides
      }
      if (state !== "granted") {
        throw new ExtensionError(
          "extension.permissions",
          `extension ${extension}: its grant (${
            describeGrant(grant)
          }) exceeds the server process's own permissions: grant the server process ${kind}${
            item === undefined ? "" : `=${item}`
          } first`,
        );
      }
    }
  }
}
