/**
 * The in-process host: extensions that run in the server's own isolate, with its permissions.
 *
 * @module
 */
import type { ApplicationContext } from "../application.ts";
import { checkCore } from "./compat.ts";
import type { ExtensionSpec } from "./discovery.ts";
import {
  displaySource,
  type ExtensionHost,
  type ExtensionModule,
  importExtension,
  type LoadedExtension,
  packageInfo,
  setUpExtension,
} from "./host.ts";

/** Runs extensions in the server process, with the server's permissions. */
export class InProcessHost implements ExtensionHost {
  /** Imports, checks and sets up one extension. */
  async load(spec: ExtensionSpec, context: ApplicationContext): Promise<LoadedExtension> {
    const info = await packageInfo(spec);
    const module = (spec.module as ExtensionModule | undefined) ?? await importExtension(spec);
    const { version, methods } = await setUpExtension(
      spec,
      module,
      context,
      info,
      (exported) => checkCore(spec.name, exported, info),
    );
    return {
      name: spec.name,
      version,
      source: displaySource(spec),
      isolation: "none",
      permissions: "all of the server's",
      status: "loaded",
      methods,
    };
  }
}
