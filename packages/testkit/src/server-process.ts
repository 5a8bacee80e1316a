import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { connect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

/**
 * Private server processes for tests (redis-server, nats-server). They must never outlive the
 * test run, however it ends:
 * - normal exit: an `exit` handler SIGKILLs every live child;
 * - the worker is killed (SIGTERM/SIGKILL from the runner, a crash; vitest ends its fork workers
 *   this way): the `exit` event never fires, so a tiny `sh` reaper holds a pipe from this process
 *   and, when it reads EOF (this process is gone), kills the children it was told about and
 *   removes their temporary directories.
 */

export interface ServerProcess {
  readonly pid: number;
  /** The last lines the server printed (for error messages). */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartProcessOptions {
  /** Binary name on PATH, also used in messages. */
  command: string;
  args: string[];
  /** Resolves true once the server serves; called repeatedly until it does. */
  isReady(): Promise<boolean>;
  /** What to tell the user when the binary is missing. */
  installHint: string;
  startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let reaper: ChildProcess | undefined;

process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  // All done here: stop the reaper before it reads EOF and kills pids that may be reused.
  reaper?.kill("SIGKILL");
});

// Tracks "+pid" / "-pid" / "d<dir>" lines; on EOF kills what is still listed, then removes the dirs.
const REAPER_SCRIPT = `
set -f
pids=""
dirs=""
while read -r line; do
  case "$line" in
    -*) p="\${line#-}"; next=""; for q in $pids; do [ "$q" = "$p" ] || next="$next $q"; done; pids="$next" ;;
    +*) pids="$pids \${line#+}" ;;
    d/*) dirs="$dirs \${line#d}" ;;
  esac
done
[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
[ -n "$dirs" ] && rm -rf $dirs
exit 0
`;

/** Removes `dir` when this process ends, however it ends. `dir` must be absolute, without spaces. */
export function removeOnExit(dir: string): void {
  if (!dir.startsWith("/") || /\s/.test(dir)) throw new Error(`removeOnExit: unsupported path ${dir}`);
  tempDirs.add(dir);
  tellReaper(`d${dir}`);
}

function tellReaper(line: string): void {
  if (reaper === undefined || reaper.exitCode !== null) {
    reaper = spawn("sh", ["-c", REAPER_SCRIPT], { stdio: ["pipe", "ignore", "ignore"] });
    reaper.on("error", () => undefined); // no sh: the exit handler still covers normal exits
    reaper.stdin?.on("error", () => undefined);
    unref(reaper);
  }
  reaper.stdin?.write(`${line}\n`);
}

function unref(child: ChildProcess): void {
  child.unref();
  // Pipes keep the event loop alive too; a forgotten server must not hang the test worker.
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
}

export async function startProcess(opts: StartProcessOptions): Promise<ServerProcess> {
  const child = spawn(opts.command, opts.args, { stdio: ["ignore", "pipe", "pipe"] });
  let tail = "";
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);

  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        err.code === "ENOENT"
          ? new Error(`${opts.command} is not installed (not found on PATH). ${opts.installHint}`)
          : err,
      );
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await spawned;

  const pid = child.pid as number;
  live.add(child);
  tellReaper(`+${pid}`);
  unref(child);
  void exited.then(() => {
    live.delete(child);
    tellReaper(`-${pid}`);
  });

  const handle: ServerProcess = {
    pid,
    output: () => tail,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (;;) {
    if (gone) {
      throw new Error(`${opts.command} exited during start-up:\n${tail}`);
    }
    if (await opts.isReady().catch(() => false)) return handle;
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${opts.command} did not become ready in time:\n${tail}`);
    }
    await delay(25);
  }
}

/**
 * Opens a TCP connection, optionally writes `send`, and resolves true when the reply contains
 * `expect`. Used as a readiness probe (no client library, no reconnect noise).
 */
export function probeTcp(port: number, expect: string, send?: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = "";
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.on("error", () => finish(false));
    socket.on("connect", () => {
      if (send !== undefined) socket.write(send);
    });
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      if (received.includes(expect)) finish(true);
    });
    socket.on("end", () => finish(received.includes(expect)));
  });
}

/** True when the output says the port was taken (a freePort race); the caller retries. */
export function lostPortRace(output: string): boolean {
  return /address already in use|bind: address|Could not create server TCP listening socket/i.test(output);
}
