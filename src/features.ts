/**
 * Feature manager, as in Inmanta: which product features this server offers. An extension may
 * replace the default one with `application.setFeatureManager(...)`.
 *
 * @module
 */

/** One feature and whether it is on. */
export interface Feature {
  /** Slice that provides it. */
  slice: string;
  /** Feature name. */
  name: string;
  /** Human description. */
  description: string;
  /** Whether it is enabled, or a limit. */
  value: boolean | number | string;
}

/** Lists features; the default one offers none. Subclass it to offer some. */
export class FeatureManager {
  /** The features, as shown in `/api/v1/serverstatus`. */
  getFeatures(): Feature[] {
    return [];
  }

  /** Whether a feature is enabled (a feature that is not listed is enabled, as in Inmanta). */
  enabled(name: string): boolean {
    const feature = this.getFeatures().find((f) => f.name === name);
    return feature === undefined ? true : Boolean(feature.value);
  }
}

/**
 * The features a feature manager in another isolate listed: the server's mirror of one set in a
 * sandbox, and a sandbox's mirror of the server's. A snapshot, taken at registration (server
 * side) or at the slice's prestart (sandbox side).
 */
export class FeatureList extends FeatureManager {
  readonly #features: Feature[];

  /** @param features the features, as their manager listed them */
  constructor(features: Feature[]) {
    super();
    this.#features = features;
  }

  /** The features, as their manager listed them. */
  override getFeatures(): Feature[] {
    return this.#features;
  }
}
