/**
 * Compatibility: an extension declares the core versions it supports (`export const
 * coreVersion`, or the range its deno.json pins for `@inmanta/server`; the export wins), and an
 * incompatible one is refused before its setup runs. Kept apart from loading so that sandboxes,
 * which ask the server, do not load semver.
 *
 * @module
 */
import semver from "semver";
import { ExtensionError } from "../errors.ts";
import { VERSION } from "../version.ts";
import type { PackageInfo } from "./module.ts";

/** Refuses an extension whose declared core range does not include this server's version. */
export function checkCompatibility(name: string, range: string, declaredIn: string): void {
  if (semver.validRange(range) === null) {
    throw new ExtensionError(
      "extension.core_range",
      `extension ${name}: ${declaredIn} '${range}' is not a valid semver range`,
    );
  }
  if (!semver.satisfies(VERSION, range, { includePrerelease: true })) {
    throw new ExtensionError(
      "extension.incompatible",
      `extension ${name} requires core ${range} (${declaredIn}) but this server is ${VERSION}`,
    );
  }
}

/** Checks an extension's declared core range (its export, else its deno.json pin). */
export function checkCore(name: string, exported: unknown, info: PackageInfo): void {
  if (typeof exported === "string") {
    checkCompatibility(name, exported, "export const coreVersion =");
  } else if (exported !== undefined && exported !== null) {
    throw new ExtensionError(
      "extension.core_range",
      `extension ${name}: coreVersion must be a string semver range`,
    );
  } else if (info.coreRange) {
    checkCompatibility(name, info.coreRange, `${info.file} imports "@inmanta/server"`);
  }
}
