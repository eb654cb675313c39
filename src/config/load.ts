/**
 * Finds and reads the configuration files in Inmanta's load order (later wins):
 * `/etc/inmanta/inmanta.cfg`, `/etc/inmanta/inmanta.d/*.cfg`, `config/inmanta.cfg`,
 * `config/inmanta.d/*.cfg`, `--config FILE`, `--config-dir DIR`, then `INMANTA_*` variables.
 *
 * @module
 */
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { Config, denoEnv, type EnvReader } from "./config.ts";
import { type IniDocument, parseIni } from "./ini.ts";

/** What to load. */
export interface LoadOptions {
  /** `--config FILE`: must exist. */
  configFile?: string;
  /** `--config-dir DIR`: must exist; its `*.cfg` files are read in sorted order. */
  configDir?: string;
  /** Read the standard locations (`/etc/inmanta`, `config/`); default true. */
  standardLocations?: boolean;
  /** INI text appended last (before the environment), for tests and embedding. */
  text?: string;
  /** Environment reader; default Deno's environment. */
  env?: EnvReader;
}

/** Loads the configuration layers; a missing explicit file or a malformed one is a ConfigError. */
export async function loadConfig(options: LoadOptions = {}): Promise<Config> {
  const files: string[] = [];
  if (options.standardLocations ?? true) {
    for (const base of ["/etc/inmanta", "config"]) {
      if (await isFile(join(base, "inmanta.cfg"))) files.push(join(base, "inmanta.cfg"));
      files.push(...await cfgFiles(join(base, "inmanta.d"), false));
    }
  }
  if (options.configFile) {
    if (!await isFile(options.configFile)) {
      throw new ConfigError("config.not_found", `--config ${options.configFile}: no such file`);
    }
    files.push(options.configFile);
  }
  if (options.configDir) files.push(...await cfgFiles(options.configDir, true));

  const layers: IniDocument[] = [];
  for (const file of files) layers.push(parseIni(await readText(file), file));
  if (options.text !== undefined) layers.push(parseIni(options.text, "<inline config>"));
  return new Config(layers, options.env ?? denoEnv, files);
}

async function readText(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError("config.read", `${file}: cannot read: ${(error as Error).message}`);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(
        "config.read",
        `${path}: the server may not read it (${(error as Error).message.split("\n")[0]})`,
      );
    }
    throw error;
  }
}

async function cfgFiles(dir: string, required: boolean): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.endsWith(".cfg") && !entry.isDirectory) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !required) return [];
    throw new ConfigError(
      "config.read",
      `--config-dir ${dir}: cannot read: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  return names.sort().map((n) => join(dir, n));
}
