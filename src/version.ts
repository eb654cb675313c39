/**
 * The product name and version of this server, read from deno.json so there is one source.
 *
 * @module
 */
import manifest from "../deno.json" with { type: "json" };

/** Product name shown in `/api/v1/serverstatus`. */
export const PRODUCT: string = "inmanta-server (Deno)";

/** This server's version, which extensions' `coreVersion` ranges are checked against. */
export const VERSION: string = manifest.version;
