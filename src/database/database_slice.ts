/**
 * `core.database`: gives each extension that keeps state its own database (an embedded file or
 * a PostgreSQL schema and role), sets `this.database` on its in-process slices, applies its
 * migrations before its slices start, and, on a shared PostgreSQL, keeps this instance in the
 * cluster and decides its `cluster` tasks.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { DatabaseError, describeError } from "../errors.ts";
import { INTERNALS, ServerSlice, type SliceServer } from "../slices/slice.ts";
import { hostedDatabase } from "./channel_dialect.ts";
import type { ClusterMember, InstanceInfo } from "./cluster.ts";
import { DatabaseHost } from "./database_host.ts";
import type { Engine } from "./engine.ts";
import type { Migrations } from "./migration_check.ts";
import { applyMigrations, type MigrationOutcome } from "./migrations.ts";
import { type DatabaseSettings, readDatabaseSettings } from "./options.ts";
import type { PostgresAdmin } from "./postgres_admin.ts";

/** What core.database needs of the server. */
export interface DatabaseView {
  /** Every registered slice (in-process ones and the proxies of sandboxed ones). */
  slices(): readonly ServerSlice[];
  /** The loaded extensions that did not fail. */
  extensions(): readonly { name: string; version: string; isolation: string }[];
  /** The migrations an in-process extension registered. */
  migrations(extension: string): Migrations | undefined;
  /**
   * Runs a sandboxed extension's migrations in its sandbox (which holds their code), over its
   * channel; undefined when its host cannot (then they run when the sandbox asks).
   */
  migrateRemote(
    extension: string,
    dialect: "sqlite" | "postgres",
  ): Promise<MigrationOutcome> | undefined;
  /** Whether a sandboxed extension registered migrations (their code is in its sandbox). */
  remoteMigrations(extension: string): boolean;
  /** `abort` or `continue` for this extension. */
  bootFailure(extension: string): "abort" | "continue";
  /** This instance's URL once it listens, else `starting`. */
  address(): string;
}

/** The `core.database` slice. */
export class DatabaseSlice extends ServerSlice {
  /** Runs every extension's statements; what a sandbox's channel hands its requests to. */
  readonly host: DatabaseHost = new DatabaseHost();
  readonly #view: DatabaseView;
  readonly #schemaVersions = new Map<string, string | null>();
  #settings: DatabaseSettings | undefined;
  #admin: PostgresAdmin | undefined;
  #member: ClusterMember | undefined;

  /** @param view the server */
  constructor(view: DatabaseView) {
    super("core.database");
    this.#view = view;
  }

  /** Every slice of an extension with a database starts after its migrations ran. */
  override getDependedBy(): string[] {
    const owners = new Set(this.#owners());
    return this.#view.slices()
      .filter((s) => owners.has(s.extensionName) && !s.getDependencies().includes(this.name))
      .map((s) => s.name);
  }

  /** The extension's last applied migration, or null (undefined: it has no database). */
  schemaVersion(extension: string): string | null | undefined {
    return this.#schemaVersions.get(extension);
  }

  /** The instances sharing the PostgreSQL, or undefined on the embedded database. */
  instances(): InstanceInfo[] | undefined {
    return this.#member?.instances();
  }

  /** Which engine, and where (never the password). */
  override getStatus(): Record<string, unknown> {
    const s = this.#settings;
    if (!s) return {};
    return s.engine === "embedded" ? { engine: "embedded", state_dir: resolve(s.stateDir) } : {
      engine: "postgresql",
      host: s.host,
      port: s.port,
      name: s.name,
      username: s.username,
      instance: this.#member?.id,
    };
  }

  override async prestart(server: SliceServer): Promise<void> {
    const settings = this.#settings = readDatabaseSettings(server.config);
    const owners = this.#owners();
    if (settings.engine === "postgresql") await this.#openPostgres(settings);
    else if (owners.length > 0) await Deno.mkdir(settings.stateDir, { recursive: true });
    for (const extension of owners) {
      this.host.add(extension, await this.#engine(extension, settings));
      this.#schemaVersions.set(extension, null);
    }
    for (const slice of this.#view.slices()) {
      const extension = slice.extensionName;
      slice[INTERNALS].scheduler.setClusterClaim((task) =>
        this.host.claim(extension, `${slice.name}:${task}`)
      );
      if (this.host.has(extension) && slice.getDependencies().includes(this.name)) {
        slice[INTERNALS].database = hostedDatabase(this.host, extension);
      }
    }
  }

  override async start(): Promise<void> {
    for (const extension of this.#view.extensions()) {
      if (!this.host.has(extension.name)) continue;
      try {
        const outcome = await this.#migrate(extension.name, extension.version);
        if (outcome) this.#schemaVersions.set(extension.name, outcome.schemaVersion);
        if (outcome?.applied.length) {
          this.logger.info(
            `extension ${extension.name}: applied migrations ${outcome.applied.join(", ")}`,
          );
        }
      } catch (error) {
        if (this.#view.bootFailure(extension.name) === "abort") throw error;
        const reason = describeError(error);
        this.logger.error(`${reason} (boot_failure = continue)`);
        for (const slice of this.#view.slices()) {
          if (slice.extensionName === extension.name) slice[INTERNALS].failure = reason;
        }
      }
    }
  }

  override async stop(): Promise<void> {
    await this.#member?.leave();
    await this.host.close();
    await this.#admin?.close();
  }

  /** The extensions that get a database: a slice lists core.database, or migrations exist. */
  #owners(): string[] {
    const owners = new Set<string>();
    for (const slice of this.#view.slices()) {
      if (slice.extensionName !== "core" && slice.getDependencies().includes(this.name)) {
        owners.add(slice.extensionName);
      }
    }
    for (const extension of this.#view.extensions()) {
      const migrations = this.#view.migrations(extension.name);
      if (migrations && Object.keys(migrations).length > 0) owners.add(extension.name);
      if (this.#view.remoteMigrations(extension.name)) owners.add(extension.name);
    }
    return [...owners];
  }

  async #migrate(extension: string, version: string): Promise<MigrationOutcome | undefined> {
    const dialect = this.host.dialect(extension);
    const migrations = this.#view.migrations(extension);
    if (migrations) {
      return await applyMigrations(hostedDatabase(this.host, extension), migrations, {
        extension,
        version,
        dialect,
      });
    }
    const remote = this.#view.migrateRemote(extension, dialect);
    if (remote) return await remote;
    // No migrations: report the version the database records (an empty list applies none).
    return await applyMigrations(hostedDatabase(this.host, extension), {}, {
      extension,
      version,
      dialect,
    }).catch(() => undefined);
  }

  async #engine(extension: string, settings: DatabaseSettings): Promise<Engine> {
    if (settings.engine === "embedded") {
      const { SqliteEngine } = await import("./sqlite_engine.ts");
      const engine = new SqliteEngine({
        extension,
        file: resolve(join(settings.stateDir, `${extension}.sqlite3`)),
        statementTimeout: settings.statementTimeout,
      });
      try {
        await engine.open();
      } catch (error) {
        throw new DatabaseError(
          "database.open",
          `extension ${extension}: cannot open its database in server.state_dir = ${settings.stateDir}: ${
            describeError(error)
          }`,
        );
      }
      return engine;
    }
    const login = await this.#admin!.provision(extension);
    const { PostgresEngine } = await import("./postgres_engine.ts");
    return new PostgresEngine({
      extension,
      schema: login.schema,
      statementTimeout: settings.statementTimeout,
      login: {
        host: settings.host,
        port: settings.port,
        database: settings.name,
        username: login.role,
        password: login.password,
        max: settings.poolSize,
      },
    });
  }

  async #openPostgres(settings: DatabaseSettings): Promise<void> {
    const { PostgresAdmin } = await import("./postgres_admin.ts");
    const { ClusterMember } = await import("./cluster.ts");
    this.#admin = new PostgresAdmin({
      host: settings.host,
      port: settings.port,
      database: settings.name,
      username: settings.username,
      password: settings.password,
      max: 2,
    });
    await this.#admin.open();
    const member = this.#member = new ClusterMember(
      this.#admin.sql,
      settings.leaseSeconds,
      () => this.#view.address(),
      this.logger,
    );
    this.host.setClusterClaim((task) => member.claim(task));
    await member.join();
  }
}
