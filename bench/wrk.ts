/**
 * Running wrk against 127.0.0.1 and reading its report.
 *
 * @module
 */

/** What one wrk run measured. */
export interface WrkReport {
  /** Requests completed. */
  requests: number;
  /** Requests per second. */
  requestsPerSecond: number;
  /** Latency percentiles in ms. */
  p50ms: number;
  /** 99th percentile latency in ms. */
  p99ms: number;
  /** Answers that were neither 2xx nor 3xx. */
  non2xx: number;
  /** Connect, read, write and timeout errors. */
  socketErrors: number;
}

/** How to run wrk. */
export interface WrkOptions {
  /** Full URL; must be on 127.0.0.1. */
  url: string;
  /** Connections (`-c`). */
  connections: number;
  /** Duration in wrk's form (`3s`). */
  duration: string;
  /** A Lua script (`-s`), for POST bodies. */
  script?: string;
  /** CPUs to pin wrk to with taskset. */
  cpus?: string;
}

/** Installs Debian's wrk when it is missing. */
export async function ensureWrk(): Promise<void> {
  try {
    await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    console.error("wrk is missing: installing Debian's package");
    const apt = await new Deno.Command("apt-get", { args: ["install", "-y", "wrk"] }).output();
    if (!apt.success) throw new Error("cannot install wrk (apt-get install -y wrk)");
  }
}

/** Runs wrk once and parses its report. */
export async function wrk(options: WrkOptions): Promise<WrkReport> {
  if (!new URL(options.url).hostname.startsWith("127.0.0.1")) {
    throw new Error(`wrk runs only against 127.0.0.1, not ${options.url}`);
  }
  const args = [
    "-t1",
    `-c${options.connections}`,
    `-d${options.duration}`,
    "--latency",
    // wrk's default 2 s timeout drops the slow answers (1 MiB bodies) from the count.
    "--timeout",
    "10s",
    ...(options.script ? ["-s", options.script] : []),
    options.url,
  ];
  const command = options.cpus
    ? new Deno.Command("taskset", { args: ["-c", options.cpus, "wrk", ...args], stdout: "piped" })
    : new Deno.Command("wrk", { args, stdout: "piped" });
  const out = new TextDecoder().decode((await command.output()).stdout);
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]];
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50ms: ms("50%"),
    p99ms: ms("99%"),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: errors ? errors.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
  };
}

/** Writes a wrk Lua script that POSTs `body` as JSON; returns its path. */
export async function postScript(dir: string, name: string, body: string): Promise<string> {
  const data = `${dir}/${name}.json`;
  await Deno.writeTextFile(data, body);
  const script = `${dir}/${name}.lua`;
  await Deno.writeTextFile(
    script,
    `wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n` +
      `local f = io.open("${data}", "rb")\nwrk.body = f:read("*a")\nf:close()\n`,
  );
  return script;
}
