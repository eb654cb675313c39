/**
 * Several server instances on one PostgreSQL: each registers itself (id, address, when it
 * started, its last heartbeat), and a `cluster` task runs on one instance at a time. The task's
 * lease row names its holder; the holder keeps it as long as its heartbeat is fresh, and any
 * instance takes it once the holder has been silent for `database.lease_seconds` (or stopped).
 * Ticks stay on the holder's own schedule, so no tick runs twice.
 *
 * @module
 */
import type postgres from "postgres";
import { describeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { SERVER_SCHEMA } from "./postgres_admin.ts";

/** One instance as `serverstatus` lists it. */
export interface InstanceInfo {
  /** Random id of the instance, new at each start. */
  id: string;
  /** Its URL (or `starting` until it listens). */
  address: string;
  /** When it started (ISO 8601). */
  started: string;
  /** Its last heartbeat (ISO 8601). */
  last_heartbeat: string;
}

/** This instance's membership of the cluster. */
export class ClusterMember {
  /** This instance's id. */
  readonly id: string = crypto.randomUUID();
  readonly #sql: postgres.Sql;
  readonly #leaseSeconds: number;
  readonly #address: () => string;
  readonly #log: Logger;
  #timer: ReturnType<typeof setInterval> | undefined;
  #instances: InstanceInfo[] = [];

  /**
   * @param sql the server's admin client
   * @param leaseSeconds silence after which an instance's tasks move
   * @param address this instance's URL, once it listens
   * @param log where failed heartbeats are reported
   */
  constructor(sql: postgres.Sql, leaseSeconds: number, address: () => string, log: Logger) {
    this.#sql = sql;
    this.#leaseSeconds = leaseSeconds;
    this.#address = address;
    this.#log = log;
  }

  /** Registers this instance and starts its heartbeat (three per lease). */
  async join(): Promise<void> {
    await this.#sql`insert into ${this.#sql(SERVER_SCHEMA)}.instances
      (id, address, started, last_heartbeat) values (${this.id}, ${this.#address()}, now(), now())`;
    await this.#refresh();
    const every = Math.max(0.2, this.#leaseSeconds / 3) * 1000;
    this.#timer = setInterval(() => {
      this.heartbeat().catch((error) =>
        this.#log.warning(`instance heartbeat failed: ${describeError(error)}`)
      );
    }, every);
  }

  /** Writes a heartbeat, forgets instances long gone, and reads the list. */
  async heartbeat(): Promise<void> {
    const t = this.#sql(SERVER_SCHEMA);
    await this.#sql`update ${t}.instances set last_heartbeat = now(), address = ${this.#address()}
      where id = ${this.id}`;
    await this.#sql`delete from ${t}.instances
      where last_heartbeat < now() - make_interval(secs => ${this.#leaseSeconds * 10})`;
    await this.#refresh();
  }

  /** The instances whose heartbeat is fresh, as of the last heartbeat. */
  instances(): InstanceInfo[] {
    return this.#instances;
  }

  /**
   * Whether this instance runs this tick of `task`: it holds the lease, or takes it because
   * the holder is gone.
   */
  async claim(task: string): Promise<boolean> {
    const t = this.#sql(SERVER_SCHEMA);
    const rows = await this.#sql`
      insert into ${t}.leases as l (task, holder, last_run) values (${task}, ${this.id}, now())
      on conflict (task) do update set holder = excluded.holder, last_run = excluded.last_run
      where l.holder = excluded.holder or not exists (
        select 1 from ${t}.instances i where i.id = l.holder
        and i.last_heartbeat > now() - make_interval(secs => ${this.#leaseSeconds}))
      returning holder`;
    return rows.length === 1;
  }

  /** Stops the heartbeat and leaves: the others take this instance's tasks at their next tick. */
  async leave(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sql`delete from ${this.#sql(SERVER_SCHEMA)}.instances where id = ${this.id}`
      .catch(() => {});
  }

  async #refresh(): Promise<void> {
    const rows = await this.#sql<
      { id: string; address: string; started: Date; last_heartbeat: Date }[]
    >`select id, address, started, last_heartbeat from ${this.#sql(SERVER_SCHEMA)}.instances
      where last_heartbeat > now() - make_interval(secs => ${this.#leaseSeconds})
      order by started, id`;
    this.#instances = rows.map((r) => ({
      id: r.id,
      address: r.address,
      started: r.started.toISOString(),
      last_heartbeat: r.last_heartbeat.toISOString(),
    }));
  }
}
