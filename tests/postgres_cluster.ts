/**
 * A throw-away PostgreSQL for tests: `initdb` into a temporary folder (as user `postgres` when
 * running as root, since initdb refuses root), `pg_ctl start` on 127.0.0.1 and a free port,
 * password authentication over TCP, a server role `inmanta` with exactly the grants the README
 * asks operators for, and removal afterwards.
 */
import { join } from "node:path";
import postgres from "postgres";
import { externalBinary } from "./helpers.ts";

/** Where the PostgreSQL binaries are, or undefined (then tests skip loudly, unless CI is set). */
export async function findPostgres(): Promise<string | undefined> {
  const roots: string[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) roots.push(entry.name);
  } catch {
    // Not installed from Debian's package.
  }
  roots.sort((a, b) => Number(b) - Number(a));
  for (const version of roots) {
    const bin = `/usr/lib/postgresql/${version}/bin`;
    try {
      await Deno.stat(join(bin, "initdb"));
      return bin;
    } catch {
      continue;
    }
  }
  return undefined;
}

/** Whether PostgreSQL tests run here; warns naming the Debian package when they do not. */
export async function postgresAvailable(): Promise<boolean> {
  const bin = await findPostgres();
  if (externalBinary("initdb", "postgresql", bin ? [bin] : []) === undefined) return false;
  return !(await isRoot()) || runuser() !== undefined;
}

let runuserPath: string | undefined;
/** `runuser`, which runs initdb and pg_ctl as `postgres` for root; /usr/sbin is not on every PATH. */
function runuser(): string | undefined {
  return runuserPath ??= externalBinary("runuser", "util-linux", ["/usr/sbin", "/sbin"]);
}

/** A running throw-away cluster. */
export interface PostgresCluster extends AsyncDisposable {
  /** 127.0.0.1 */
  host: string;
  /** Its port. */
  port: number;
  /** The server role's name and password. */
  username: string;
  /** Its password. */
  password: string;
  /** A new database owned by the server role: one per test, so tests do not share state. */
  createDatabase(): Promise<string>;
  /** A superuser client, for checks. */
  superuser(database?: string): postgres.Sql;
  /** INI text of the `[database]` section for `database`. */
  config(database: string): string;
}

/** Whether this process runs as root (without needing --allow-sys). */
async function isRoot(): Promise<boolean> {
  const out = await new Deno.Command("id", { args: ["-u"] }).output();
  return new TextDecoder().decode(out.stdout).trim() === "0";
}

async function run(command: string, args: string[], asPostgres: boolean): Promise<void> {
  const root = await isRoot();
  const cmd = root && asPostgres
    ? new Deno.Command(runuser() ?? "runuser", { args: ["-u", "postgres", "--", command, ...args] })
    : new Deno.Command(command, { args });
  const out = await cmd.output();
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

let counter = 0;

/** Starts a cluster; dispose it to stop and remove it. */
export async function startPostgres(): Promise<PostgresCluster> {
  const bin = await findPostgres();
  if (!bin) throw new Error("initdb not found: install the Debian package postgresql");
  const dir = await Deno.makeTempDir({ prefix: "inmanta-pg-" });
  const data = join(dir, "data");
  const superPassword = crypto.randomUUID();
  await Deno.writeTextFile(join(dir, "pw"), superPassword);
  if (await isRoot()) await run("chown", ["-R", "postgres", dir], false);
  await run(join(bin, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--pwfile",
    join(dir, "pw"),
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--no-sync",
  ], true);
  const port = freePort();
  await run(join(bin, "pg_ctl"), [
    "-D",
    data,
    "-l",
    join(dir, "log"),
    "-w",
    "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
    "start",
  ], true);
  const superuser = (database = "postgres") =>
    postgres({
      host: "127.0.0.1",
      port,
      database,
      username: "postgres",
      password: superPassword,
      max: 1,
      onnotice: () => {},
    });
  const password = crypto.randomUUID();
  const admin = superuser();
  // What the README asks an operator for: a login role that may create roles, and a database
  // it owns (so that it may create schemas in it).
  await admin.unsafe(`create role inmanta login createrole password '${password}'`);
  await admin.end();
  return {
    host: "127.0.0.1",
    port,
    username: "inmanta",
    password,
    superuser,
    async createDatabase() {
      const name = `test_${Date.now().toString(36)}_${counter++}`;
      const sql = superuser();
      await sql.unsafe(`create database ${name} owner inmanta`);
      await sql.end();
      return name;
    },
    config(database: string) {
      return `[database]\nhost = 127.0.0.1\nport = ${port}\nname = ${database}\nusername = inmanta\npassword = ${password}\n`;
    },
    async [Symbol.asyncDispose]() {
      await run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], true)
        .catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
