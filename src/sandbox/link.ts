/**
 * The transports between the server and a guest: a Worker in the server's process, or a `deno`
 * subprocess whose pipes carry framed batches. Both look the same to the sandbox: post a batch,
 * hear batches and the guest's end.
 *
 * @module
 */
import { ExtensionError } from "../errors.ts";
import { encodeFrame, FrameReader } from "./channel.ts";
import type { Batch } from "./messages.ts";

/** One guest's transport, as the sandbox sees it. */
export interface GuestLink {
  /** Sends a batch to the guest. */
  post(batch: Batch): void;
  /** Called with each batch the guest sends: untrusted, checked by the sandbox. */
  onBatch: (batch: unknown) => void;
  /** Called once when the guest ended (crashed, exited, killed), with why. */
  onExit: (reason: string) => void;
  /** Called with each line the guest wrote to its stderr (subprocesses only). */
  onStderr: (line: string) => void;
  /** The subprocess's pid, for a process guest. */
  readonly pid: number | undefined;
  /** Ends the guest at once (SIGKILL for a subprocess). */
  terminate(): void;
}

const noop = () => {};

/** A guest in a Worker of the server's process, with the Worker's own permissions. */
export class WorkerLink implements GuestLink {
  onBatch: (batch: unknown) => void = noop;
  onExit: (reason: string) => void = noop;
  onStderr: (line: string) => void = noop;
  readonly pid: undefined;
  #worker: Worker | undefined;

  /**
   * @param name the extension (names the Worker)
   * @param permissions the Worker's `deno.permissions`
   * @throws {ExtensionError} `extension.permissions` when they exceed the server's own
   */
  constructor(name: string, permissions: Deno.PermissionOptionsObject, describe: string) {
    try {
      this.#worker = new Worker(new URL("./guest_worker.ts", import.meta.url), {
        type: "module",
        name: `extension ${name}`,
        deno: { permissions },
      });
    } catch (error) {
      throw new ExtensionError(
        "extension.permissions",
        `extension ${name}: its grant (${describe}) exceeds the server process's own permissions; grant the server process these first: ${
          (error as Error).message.split("\n")[0]
        }`,
      );
    }
    this.#worker.onmessage = (event) => this.onBatch(event.data);
    this.#worker.onerror = (event) => {
      // An uncaught error in the guest must not end the server: the guest fails instead.
      event.preventDefault();
      this.onExit(`uncaught error: ${event.message}`);
    };
    this.#worker.onmessageerror = () => this.onExit("a message from the guest could not be read");
  }

  post(batch: Batch): void {
    this.#worker?.postMessage(batch, batch.buffers);
  }

  /**
   * Ends the Worker. A Worker stuck in a synchronous loop is not stopped by terminate() and
   * keeps its thread until the process exits; it no longer gets messages or requests.
   */
  terminate(): void {
    if (!this.#worker) return;
    this.#worker.onmessage = null;
    this.#worker.onerror = null;
    this.#worker.terminate();
    this.#worker = undefined;
  }
}

/** How to start a guest subprocess. */
export interface ProcessOptions {
  /** The extension. */
  name: string;
  /** `deno run` flags: permissions, heap limit, location, config. */
  flags: string[];
  /** The whole environment of the child. */
  env: Record<string, string>;
  /** Its working directory. */
  cwd: string;
  /** Heap limit in MiB (to say so when the child dies of it). */
  memoryLimit: number;
}

/**
 * The command lines a child may start with, best first: under `setpriv --pdeathsig KILL` (from
 * util-linux: the kernel SIGKILLs the child when the server's thread ends, even when the server
 * itself is SIGKILLed) and `nice` (a busy child cannot starve the server), or bare. The server
 * needs `--allow-run=setpriv` for the first.
 */
function commandLines(): string[][] {
  const deno = Deno.execPath();
  return [
    ["setpriv", "--pdeathsig", "KILL", "--", "nice", "-n", "10", deno],
    ["deno"],
    [deno],
  ];
}

/** The first of {@link commandLines} that started here; later children start the same way. */
let working: string[] | undefined;

function spawn(args: string[], options: Deno.CommandOptions): Deno.ChildProcess {
  let last: unknown;
  for (const line of working ? [working] : commandLines()) {
    try {
      const child = new Deno.Command(line[0], { ...options, args: [...line.slice(1), ...args] })
        .spawn();
      working = line;
      return child;
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

const decoder = new TextDecoder();

/** A guest in a `deno` subprocess: its own heap, permissions, working directory and cache. */
export class ProcessLink implements GuestLink {
  onBatch: (batch: unknown) => void = noop;
  onExit: (reason: string) => void = noop;
  onStderr: (line: string) => void = noop;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #options: ProcessOptions;
  #ended = false;
  #killedFor: string | undefined;
  #heapExhausted = false;
  #uncaught: string | undefined;
  readonly #lastLines: string[] = [];

  /**
   * @throws {ExtensionError} `extension.spawn` when the child cannot be started
   */
  constructor(options: ProcessOptions) {
    this.#options = options;
    const args = ["run", ...options.flags, new URL("./guest_process.ts", import.meta.url).href];
    try {
      this.#child = spawn(args, {
        cwd: options.cwd,
        clearEnv: true,
        env: options.env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      });
    } catch (error) {
      throw new ExtensionError(
        "extension.spawn",
        `extension ${options.name}: cannot start its process (deno run): ${
          (error as Error).message.split("\n")[0]
        }`,
      );
    }
    this.#writer = this.#child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    void this.#readFrames();
    void this.#readStderr();
    void this.#child.status.then((status) => this.#exited(status));
  }

  get pid(): number {
    return this.#child.pid;
  }

  post(batch: Batch): void {
    if (this.#ended) return;
    this.#writer.write(encodeFrame(batch)).catch(() => {});
  }

  /** Kills the child (SIGKILL): a hung or hostile guest gets no chance to linger. */
  terminate(reason = "terminated by the server"): void {
    if (this.#ended) return;
    this.#killedFor ??= reason;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }

  async #readFrames(): Promise<void> {
    const frames = new FrameReader();
    try {
      for await (const chunk of this.#child.stdout) {
        for (const batch of frames.push(chunk)) this.onBatch(batch);
      }
    } catch (error) {
      // Garbage on the channel: nothing after it can be trusted.
      this.#killedFor ??= (error as Error).message;
      this.onExit((error as Error).message);
      this.terminate();
    }
  }

  async #readStderr(): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of this.#child.stderr) {
        pending += decoder.decode(chunk, { stream: true });
        // A guest that never writes a newline must not grow this without bound.
        if (pending.length > 64 * 1024) pending = pending.slice(-16 * 1024);
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          this.#line(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
        }
      }
    } catch {
      // the child is gone
    }
    if (pending) this.#line(pending);
  }

  #line(raw: string): void {
    // deno-lint-ignore no-control-regex
    const line = raw.replace(/\x1b\[[0-9;]*m/g, "").trimEnd();
    if (line === "") return;
    if (/heap limit|out of memory|Allocation failed/i.test(line)) this.#heapExhausted = true;
    // Deno's own report of what ended the guest: "error: Uncaught (in promise) Error: ...".
    const uncaught = /^error: Uncaught (?:\(in promise\) )?(.*)$/.exec(line);
    if (uncaught && !this.#uncaught) this.#uncaught = uncaught[1].slice(0, 300);
    this.#lastLines.push(line.slice(0, 300));
    if (this.#lastLines.length > 5) this.#lastLines.shift();
    this.onStderr(line.slice(0, 4096));
  }

  #exited(status: Deno.CommandStatus): void {
    this.#ended = true;
    const last = this.#lastLines.find((l) => /error/i.test(l)) ?? this.#lastLines.at(-1);
    const reason = this.#heapExhausted
      ? `heap limit of ${this.#options.memoryLimit} MiB reached`
      : this.#killedFor ??
        (this.#uncaught
          ? `uncaught error: ${this.#uncaught}`
          : status.signal
          ? `killed by ${status.signal}`
          : `exited with code ${status.code}${last ? `: ${last}` : ""}`);
    this.onExit(reason);
  }
}
