/**
 * The loaded configuration: layered INI documents, environment overrides and typed options
 * registered with defaults and help text.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { type IniDocument, normaliseOption } from "./ini.ts";

/** The types an option can have. */
export type OptionType = "string" | "int" | "float" | "bool" | "list" | "duration";

/** The value of an option of each type (`duration` is in seconds). */
export type OptionValue = string | number | boolean | string[];

/** Declares one option: its type, default and help text. */
export interface OptionSpec {
  /** How the text value is read. */
  type: OptionType;
  /** The value when nothing sets it. */
  default: OptionValue;
  /** One line for `--help` and the documentation. */
  help: string;
  /** A secret (a signing key): sandboxed extensions do not get its value. */
  secret?: boolean;
}

/** An option as the configuration knows it, with the section it belongs to. */
export interface RegisteredOption extends OptionSpec {
  /** Section name. */
  section: string;
  /** Normalised option name. */
  name: string;
}

/** Where a raw value came from. */
interface Raw {
  value: string;
  origin: string;
}

/** Reads the environment variable that overrides an option, or undefined. */
export type EnvReader = (name: string) => string | undefined;

/** The environment variable that overrides `section.option`: `INMANTA_<SECTION>_<OPTION>`. */
export function envName(section: string, option: string): string {
  return `INMANTA_${section}_${normaliseOption(option)}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

/** Reads Deno's environment, treating a variable the process may not read as unset. */
export function denoEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const TRUE = new Set(["1", "yes", "true", "on"]);
const FALSE = new Set(["0", "no", "false", "off"]);
const DURATION = /^(?<n>\d+(?:\.\d+)?)\s*(?<unit>ms|s|m|h|d)?$/i;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Converts text to a typed value; throws a plain Error naming what was expected. */
export function convertOption(type: OptionType, text: string): OptionValue {
  const value = text.trim();
  switch (type) {
    case "string":
      return value;
    case "int": {
      if (!/^[+-]?\d+$/.test(value)) throw new Error("not an integer");
      return Number.parseInt(value, 10);
    }
    case "float": {
      const n = Number(value);
      if (value === "" || !Number.isFinite(n)) throw new Error("not a number");
      return n;
    }
    case "bool": {
      const v = value.toLowerCase();
      if (TRUE.has(v)) return true;
      if (FALSE.has(v)) return false;
      throw new Error("not a boolean (use true/false, yes/no, on/off, 1/0)");
    }
    case "list":
      return value.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== "");
    case "duration": {
      const m = DURATION.exec(value);
      if (!m) throw new Error("not a duration (seconds, or a number with ms, s, m, h or d)");
      return Number(m.groups!.n) * UNIT_SECONDS[(m.groups!.unit ?? "s").toLowerCase()];
    }
  }
}

/**
 * Read access to the configuration. Environment variables win over files, later files over
 * earlier ones, and registered defaults apply when nothing sets an option.
 */
export class Config {
  readonly #values = new Map<string, Map<string, Raw>>();
  readonly #options = new Map<string, RegisteredOption>();
  readonly #env: EnvReader;
  readonly #overrides = new Map<string, Raw>();
  /** The files that were read, in load order. */
  readonly files: readonly string[];

  /**
   * Makes a configuration from parsed layers (later wins) and an environment.
   *
   * @param layers parsed documents, earliest (weakest) first
   * @param env reads environment overrides; none by default
   * @param files names of the files read, for status and messages
   */
  constructor(layers: IniDocument[] = [], env: EnvReader = () => undefined, files: string[] = []) {
    this.#env = env;
    this.files = files;
    for (const doc of layers) {
      for (const [section, options] of doc) {
        let target = this.#values.get(section);
        if (!target) this.#values.set(section, target = new Map());
        for (const [name, raw] of options) target.set(name, raw);
      }
    }
  }

  /** Declares typed options of `section` with defaults and help text. */
  registerDefaultOptions(section: string, options: Record<string, OptionSpec>): void {
    for (const [rawName, spec] of Object.entries(options)) {
      const name = normaliseOption(rawName);
      const key = `${section}.${name}`;
      const existing = this.#options.get(key);
      if (existing && (existing.type !== spec.type || existing.default !== spec.default)) {
        throw new ConfigError(
          "config.option_conflict",
          `option ${key} is registered twice with a different type or default`,
        );
      }
      this.#options.set(key, { ...spec, section, name });
    }
  }

  /**
   * The environment variable `name` as this configuration reads overrides (undefined when it
   * is unset or unreadable).
   */
  readEnv(name: string): string | undefined {
    return this.#env(name);
  }

  /** Every registered option, in registration order. */
  registeredOptions(): RegisteredOption[] {
    return [...this.#options.values()];
  }

  /** Whether a file or the environment sets this option. */
  has(section: string, option: string): boolean {
    return this.#raw(section, option) !== undefined;
  }

  /** Sets an option above every file and the environment (command-line flags such as --port). */
  override(section: string, option: string, value: string, origin: string): void {
    this.#overrides.set(`${section}.${normaliseOption(option)}`, { value, origin });
  }

  /** The text value set for an option with where it came from, or undefined. */
  #raw(section: string, option: string): Raw | undefined {
    const name = normaliseOption(option);
    const override = this.#overrides.get(`${section}.${name}`);
    if (override) return override;
    const env = envName(section, name);
    const fromEnv = this.#env(env);
    if (fromEnv !== undefined) return { value: fromEnv, origin: `environment variable ${env}` };
    return this.#values.get(section)?.get(name);
  }

  /**
   * The typed value of an option. `type` defaults to the registered type (or `string`); an
   * unregistered option that nothing sets is undefined. A value that does not convert is a
   * ConfigError naming the option, the value and where it was set.
   */
  get(section: string, option: string, type?: OptionType): OptionValue | undefined {
    const name = normaliseOption(option);
    const spec = this.#options.get(`${section}.${name}`);
    const raw = this.#raw(section, name);
    if (!raw) return spec?.default;
    const as = type ?? spec?.type ?? "string";
    try {
      return convertOption(as, raw.value);
    } catch (error) {
      throw new ConfigError(
        "config.value",
        `${raw.origin}: option ${section}.${name} = '${raw.value}' is ${(error as Error).message}`,
      );
    }
  }

  /** The option as a string ("" when unset). */
  string(section: string, option: string): string {
    return (this.get(section, option, "string") as string | undefined) ?? "";
  }
  /** The option as an integer. */
  int(section: string, option: string): number {
    return this.#required(section, option, "int") as number;
  }
  /** The option as a number. */
  float(section: string, option: string): number {
    return this.#required(section, option, "float") as number;
  }
  /** The option as a boolean. */
  bool(section: string, option: string): boolean {
    return this.#required(section, option, "bool") as boolean;
  }
  /** The option as a list of non-empty trimmed strings ([] when unset). */
  list(section: string, option: string): string[] {
    return (this.get(section, option, "list") as string[] | undefined) ?? [];
  }
  /** The option as a duration in seconds. */
  duration(section: string, option: string): number {
    return this.#required(section, option, "duration") as number;
  }

  #required(section: string, option: string, type: OptionType): OptionValue {
    const value = this.get(section, option, type);
    if (value === undefined) {
      throw new ConfigError(
        "config.missing",
        `option ${section}.${normaliseOption(option)} is not set and has no default`,
      );
    }
    return typeof value === "string" ? convertOption(type, value) : value;
  }

  /**
   * The values files and overrides set, merged (environment variables not included), so that
   * another isolate can build the same Config. With `secrets: false`, options registered as
   * secret are left out (what a sandbox gets).
   */
  snapshot(options: { secrets?: boolean } = {}): IniDocument {
    const shared = (key: string) => options.secrets !== false || !this.#options.get(key)?.secret;
    const doc: IniDocument = new Map();
    for (const [section, values] of this.#values) {
      doc.set(section, new Map([...values].filter(([name]) => shared(`${section}.${name}`))));
    }
    for (const [key, raw] of this.#overrides) {
      if (!shared(key)) continue;
      const dot = key.lastIndexOf(".");
      const section = key.slice(0, dot);
      if (!doc.has(section)) doc.set(section, new Map());
      doc.get(section)!.set(key.slice(dot + 1), raw);
    }
    return doc;
  }

  /**
   * Checks that every registered option that is set converts to its type, and that no set
   * environment variable names two options (`extension.a_b` + `c` and `extension.a` + `b_c` both
   * read `INMANTA_EXTENSION_A_B_C`).
   *
   * @throws {ConfigError} naming the option, or the variable and both options
   */
  validate(): void {
    const byVariable = new Map<string, string>();
    for (const option of this.#options.values()) {
      const variable = envName(option.section, option.name);
      const key = `${option.section}.${option.name}`;
      const other = byVariable.get(variable);
      if (other !== undefined && other !== key && this.#env(variable) !== undefined) {
        throw new ConfigError(
          "config.env_ambiguous",
          `environment variable ${variable} matches two options, ${other} and ${key}: rename one of the extensions or set the option in a file`,
        );
      }
      byVariable.set(variable, key);
      this.get(option.section, option.name);
    }
  }
}
