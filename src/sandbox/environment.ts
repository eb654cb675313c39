/**
 * Which `INMANTA_*` environment overrides a guest may read. A guest cannot read the environment
 * itself (its own environment is empty); the server hands it these at load.
 *
 * @module
 */

/** What the policy needs to know about the server. */
export interface EnvironmentPolicy {
  /** The extension the guest runs. */
  extension: string;
  /** Every enabled extension (a longer name can own a variable a shorter one would match). */
  enabled: readonly string[];
  /** The variable names of options registered as secret (the token signing key, passwords). */
  secrets: ReadonlySet<string>;
}

/** Names that look like a secret: kept out of every other section, registered or not. */
const SECRET_LOOKING = /(PASSWORD|SECRET|TOKEN|_KEY$|_KEY_)/;

/**
 * Whether an option's variable name looks like it holds a secret (`*PASSWORD*`, `*SECRET*`,
 * `*TOKEN*`, `*_KEY`): such options of other sections than its own reach no guest, registered
 * as secret or not.
 */
export function looksSecret(variable: string): boolean {
  return SECRET_LOOKING.test(variable);
}

/** The prefix of an extension's own variables, `INMANTA_EXTENSION_<NAME>_`. */
function prefixOf(extension: string): string {
  return `INMANTA_EXTENSION_${extension.toUpperCase()}_`;
}

/**
 * The overrides a guest may see: its own section's, exactly (`victim` never sees
 * `INMANTA_EXTENSION_VICTIM_DB_PASSWORD` when `victim_db` is enabled), and the other non-extension
 * sections' except secrets and secret-looking names. Pure: the caller reads the environment.
 *
 * @param env every `INMANTA_*` variable the server sees
 * @param policy the extension, the enabled extensions and the secret variables
 * @returns the subset the guest gets
 * @example
 * ```ts
 * const env = guestEnvironment({ INMANTA_EXTENSION_A_X: "1", INMANTA_EXTENSION_B_X: "2" },
 *   { extension: "a", enabled: ["a", "b"], secrets: new Set() });
 * // { INMANTA_EXTENSION_A_X: "1" }
 * ```
 */
export function guestEnvironment(
  env: Readonly<Record<string, string>>,
  policy: EnvironmentPolicy,
): Record<string, string> {
  const own = prefixOf(policy.extension);
  const longer = policy.enabled
    .filter((other) => other !== policy.extension)
    .map(prefixOf)
    .filter((prefix) => prefix.length > own.length && prefix.startsWith(own));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("INMANTA_") || policy.secrets.has(name)) continue;
    if (name.startsWith("INMANTA_EXTENSION_")) {
      if (!name.startsWith(own) || longer.some((prefix) => name.startsWith(prefix))) continue;
    } else if (SECRET_LOOKING.test(name)) continue;
    out[name] = value;
  }
  return out;
}
