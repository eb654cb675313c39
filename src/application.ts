/**
 * The ApplicationContext that an extension's `setup` receives.
 *
 * @module
 */
import type { Config, OptionSpec } from "./config/config.ts";
import { addMigrations, type Migrations } from "./database/migration_check.ts";
import { ExtensionError, SliceError } from "./errors.ts";
import { FeatureManager } from "./features.ts";
import { INTERNALS, ServerSlice } from "./slices/slice.ts";

/** What `setup(application)` may do. */
export interface ApplicationContext {
  /** The name of the extension being set up. */
  readonly extensionName: string;
  /** Read access to the loaded configuration. */
  readonly config: Config;
  /** Adds a slice; its name must start with `<extension>.`; names are unique. */
  registerSlice(slice: ServerSlice): void;
  /** Replaces the feature manager; at most one extension may. */
  setFeatureManager(featureManager: FeatureManager): void;
  /** Declares typed options of `section` with defaults and help text. */
  registerDefaultOptions(section: string, options: Record<string, OptionSpec>): void;
  /**
   * The extension's database migrations (Kysely `Migration` objects by name, applied in name
   * order by core.database before the extension's slices start). May be called more than once.
   */
  registerMigrations(migrations: Migrations): void;
}

/** What every extension's context writes to: the slices and feature manager of one server. */
export class Registry {
  /** Slices in registration order. */
  readonly slices: ServerSlice[] = [];
  readonly #byName = new Map<string, { slice: ServerSlice; extension: string }>();
  #featureManager: FeatureManager = new FeatureManager();
  #featureOwner: string | undefined;
  readonly #migrations = new Map<string, Migrations>();

  /** @param config the server's configuration */
  constructor(readonly config: Config) {}

  /** The extension that replaced the feature manager, if one did. */
  get featureOwner(): string | undefined {
    return this.#featureOwner;
  }

  /** The feature manager in use. */
  get featureManager(): FeatureManager {
    return this.#featureManager;
  }

  /** The slice with this name, or undefined. */
  get(name: string): ServerSlice | undefined {
    return this.#byName.get(name)?.slice;
  }

  /** A context for extension `extensionName`. */
  contextFor(extensionName: string): ApplicationContext {
    return {
      extensionName,
      config: this.config,
      registerSlice: (slice) => this.register(slice, extensionName),
      setFeatureManager: (fm) => this.#setFeatureManager(fm, extensionName),
      registerDefaultOptions: (section, options) =>
        this.config.registerDefaultOptions(section, options),
      registerMigrations: (migrations) => {
        const into = this.#migrations.get(extensionName) ?? {};
        addMigrations(extensionName, into, migrations);
        this.#migrations.set(extensionName, into);
      },
    };
  }

  /** The migrations extension `extension` registered in this process, if any. */
  migrations(extension: string): Migrations | undefined {
    return this.#migrations.get(extension);
  }

  /** Forgets the slices of an extension whose loading failed (boot_failure = continue). */
  removeExtension(extension: string): void {
    for (const [name, entry] of this.#byName) {
      if (entry.extension === extension) this.#byName.delete(name);
    }
    const kept = this.slices.filter((s) => this.#byName.get(s.name)?.slice === s);
    this.slices.splice(0, this.slices.length, ...kept);
    this.#migrations.delete(extension);
    if (this.#featureOwner === extension) {
      this.#featureOwner = undefined;
      this.#featureManager = new FeatureManager();
    }
  }

  /** Adds a slice of `extension`. */
  register(slice: ServerSlice, extension: string): void {
    if (!(slice instanceof ServerSlice)) {
      throw new SliceError(
        "slice.type",
        `extension ${extension} registered something that is not a ServerSlice`,
      );
    }
    if (slice.extensionName !== extension) {
      throw new SliceError(
        "slice.owner",
        `extension ${extension} registered slice ${slice.name}, whose name belongs to extension ${slice.extensionName}; name it ${extension}.<slice>`,
      );
    }
    const taken = this.#byName.get(slice.name);
    if (taken) {
      throw new SliceError(
        "slice.duplicate",
        `slice ${slice.name} is registered twice (by extension ${taken.extension} and by extension ${extension})`,
      );
    }
    this.#byName.set(slice.name, { slice, extension });
    this.slices.push(slice);
    // Read when asked: an extension set up later may still replace the feature manager.
    slice[INTERNALS].features = () => this.#featureManager;
  }

  /**
   * In a sandbox: the server's feature manager, as the server listed it, unless this sandbox's
   * own extension set one (the server's is then that one).
   */
  followFeatures(featureManager: FeatureManager): void {
    if (this.#featureOwner === undefined) this.#featureManager = featureManager;
  }

  #setFeatureManager(featureManager: FeatureManager, extension: string): void {
    if (!(featureManager instanceof FeatureManager)) {
      throw new ExtensionError(
        "extension.feature_manager",
        `extension ${extension}: setFeatureManager needs a FeatureManager`,
      );
    }
    if (this.#featureOwner !== undefined) {
      throw new ExtensionError(
        "extension.feature_manager",
        `extension ${extension} sets the feature manager, but extension ${this.#featureOwner} already did`,
      );
    }
    this.#featureOwner = extension;
    this.#featureManager = featureManager;
  }
}
