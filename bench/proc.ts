/**
 * CPU time and resident memory of a process and its descendants, read from /proc through `cat`
 * (Deno opens /proc files only with all permissions, and the benchmark runs with fewer).
 *
 * @module
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS = 100;

interface Stat {
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks: its own time and its reaped children's. */
  ticks: number;
  /** Resident pages. */
  rss: number;
}

async function stats(): Promise<Map<number, Stat>> {
  const out = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const table = new Map<number, Stat>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    // The command name sits in parentheses and may hold spaces: fields start after the last ")".
    const close = line.lastIndexOf(")");
    if (close < 0) continue;
    const f = line.slice(close + 2).split(" ");
    table.set(Number(line.slice(0, line.indexOf(" "))), {
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      rss: Number(f[21]),
    });
  }
  return table;
}

/** `pid` and every live descendant of it. */
function tree(table: Map<number, Stat>, pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [child, stat] of table) if (stat.ppid === out[i]) out.push(child);
  }
  return out.filter((p) => table.has(p));
}

/**
 * CPU seconds (user + system) used so far by `pid` and its descendants, live or reaped: for a
 * server that runs sandboxes in subprocesses, their time counts as the server's.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const table = await stats();
  return tree(table, pid).reduce((sum, p) => sum + table.get(p)!.ticks, 0) / TICKS;
}

/** Resident memory (MiB) of `pid` and its live descendants. */
export async function residentMiB(pid: number): Promise<number> {
  const table = await stats();
  const page = 4096;
  return tree(table, pid).reduce((sum, p) => sum + table.get(p)!.rss, 0) * page / 2 ** 20;
}
