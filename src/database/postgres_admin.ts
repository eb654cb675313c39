/**
 * What the server does on PostgreSQL with its own role (`database.username`): keep its schema
 * (`inmanta_server`), and give each extension a login role and a schema owned by that role.
 * Roles are cluster-wide, so their names carry the database name; their random passwords are
 * kept in the server's schema, which no extension role can read, so that every instance that
 * shares the database logs in with the same ones.
 *
 * @module
 */
import type postgres from "postgres";
import { DatabaseError, describeError } from "../errors.ts";
import { connect, type PostgresLogin } from "./postgres_engine.ts";

/** The server's own schema: instances, leases, extension roles. */
export const SERVER_SCHEMA = "inmanta_server";

/** An extension's place in PostgreSQL. */
export interface ExtensionLogin {
  /** Its login role. */
  role: string;
  /** Its schema. */
  schema: string;
  /** Its role's password. */
  password: string;
}

/** The schema of an extension: `ext_<name>`. */
export function extensionSchema(extension: string): string {
  return `ext_${extension}`;
}

/** The role of an extension: `<database>_ext_<name>` (roles are shared by a whole cluster). */
export function extensionRole(database: string, extension: string): string {
  return `${database}_ext_${extension}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

/** The server's connection to PostgreSQL as its own role. */
export class PostgresAdmin {
  /** The admin client (small pool). */
  readonly sql: postgres.Sql;
  readonly #login: PostgresLogin;

  /** @param login the server's role */
  constructor(login: PostgresLogin) {
    this.#login = login;
    this.sql = connect({ ...login, max: 2 });
  }

  /** Connects and creates the server's schema; the error names the host and the cause. */
  async open(): Promise<void> {
    try {
      await this.sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('inmanta.provision'))`;
        await tx.unsafe(`create schema if not exists ${SERVER_SCHEMA}`);
        await tx.unsafe(`revoke all on schema ${SERVER_SCHEMA} from public`);
        await tx.unsafe(`create table if not exists ${SERVER_SCHEMA}.extension_roles (
          extension text primary key, role text not null, password text not null)`);
        await tx.unsafe(`create table if not exists ${SERVER_SCHEMA}.instances (
          id text primary key, address text not null, started timestamptz not null,
          last_heartbeat timestamptz not null)`);
        await tx.unsafe(`create table if not exists ${SERVER_SCHEMA}.leases (
          task text primary key, holder text not null, last_run timestamptz not null)`);
      });
    } catch (error) {
      throw new DatabaseError(
        "database.connect",
        `PostgreSQL at ${this.#login.host}:${this.#login.port}/${this.#login.database} as ${this.#login.username}: ${
          describeError(error)
        }`,
      );
    }
  }

  /**
   * Gives `extension` its role and schema (once; later starts reuse them).
   *
   * @throws {DatabaseError} `database.provision` naming the extension and what the server's
   *   role lacks
   */
  async provision(extension: string): Promise<ExtensionLogin> {
    const role = extensionRole(this.#login.database, extension);
    const schema = extensionSchema(extension);
    if (role.length > 63) {
      throw new DatabaseError(
        "database.provision",
        `extension ${extension}: its role name ${role} is longer than PostgreSQL's 63 characters`,
      );
    }
    try {
      return await this.sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('inmanta.provision'))`;
        const [known] = await tx<{ password: string }[]>`
          select password from ${tx(SERVER_SCHEMA)}.extension_roles where extension = ${extension}`;
        const password = known?.password ?? randomPassword();
        const [exists] = await tx`select 1 from pg_roles where rolname = ${role}`;
        // The password is hex: safe inside a literal (role DDL takes no parameters).
        const attributes =
          `login nosuperuser nocreatedb nocreaterole noinherit noreplication password '${password}'`;
        if (!exists) await tx.unsafe(`create role ${ident(role)} ${attributes}`);
        else if (!known) await tx.unsafe(`alter role ${ident(role)} ${attributes}`);
        if (!known) {
          await tx`insert into ${tx(SERVER_SCHEMA)}.extension_roles ${
            tx({ extension, role, password })
          }`;
        }
        // CREATE SCHEMA ... AUTHORIZATION needs the server's role to be able to act as it.
        await tx.unsafe(`grant ${ident(role)} to current_user`);
        await tx.unsafe(
          `grant connect on database ${ident(this.#login.database)} to ${ident(role)}`,
        );
        await tx.unsafe(
          `create schema if not exists ${ident(schema)} authorization ${ident(role)}`,
        );
        await tx.unsafe(`revoke all on schema ${ident(schema)} from public`);
        return { role, schema, password };
      });
    } catch (error) {
      throw new DatabaseError(
        "database.provision",
        `extension ${extension}: cannot create its role ${role} and schema ${schema} as ${this.#login.username} (it needs CREATEROLE and CREATE on the database): ${
          describeError(error)
        }`,
      );
    }
  }

  /** Closes the admin connections. */
  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/** A quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function randomPassword(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
