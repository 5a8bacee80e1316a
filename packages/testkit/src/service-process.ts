import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** A service's `main.ts` running as the start script runs it: a real process, real signals, real exit codes. */
export interface ServiceProcess {
  child: ChildProcess;
  /** The exit code (null when a signal ended it), once the process's output is read to the end. */
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /**
   * Polls `GET <baseUrl>/readyz` until `accept(status)` (default: 200) and returns that status;
   * status 0 means nothing listens yet. Fails early, with the process's stderr, when it exits or
   * `timeoutMs` (default 30 s, for a loaded machine) passes.
   */
  waitForReadyz(
    baseUrl: string,
    opts?: { accept?: (status: number) => boolean; timeoutMs?: number },
  ): Promise<number>;
  /** Sends SIGTERM and resolves with the exit code and how long the process took to exit. */
  terminate(): Promise<{ code: number | null; ms: number }>;
}

/**
 * Runs `node --import tsx src/main.ts <args>` in `serviceDir`. The environment is only `env` plus
 * PATH and `LOG_LEVEL=warn` (unless given): the developer's own variables must not leak into the check.
 */
export function startServiceProcess(opts: {
  serviceDir: string;
  args?: string[];
  env: Record<string, string>;
}): ServiceProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...(opts.args ?? [])], {
    cwd: opts.serviceDir,
    env: { PATH: process.env["PATH"] ?? "", LOG_LEVEL: "warn", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // "close", not "exit": by then its output has been read to the end.
  const exited = once(child, "close").then(([code]) => code as number | null);
  // A test that fails half-way must not leave the service running (and holding its port).
  const kill = (): void => void child.kill("SIGKILL");
  process.once("exit", kill);
  void exited.then(() => process.off("exit", kill));
  const status = (url: string): Promise<number> =>
    fetch(`${url}/readyz`).then(
      (r) => r.status,
      () => 0,
    );

  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    async waitForReadyz(baseUrl, { accept = (status: number) => status === 200, timeoutMs = 30_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const current = await status(baseUrl);
        if (accept(current)) return current;
        if (child.exitCode !== null || child.signalCode !== null) {
          await exited;
          throw new Error(`the service exited before ${baseUrl}/readyz answered as expected:\n${stderr}`);
        }
        if (Date.now() > deadline)
          throw new Error(`${baseUrl}/readyz did not answer as expected within ${timeoutMs} ms:\n${stderr}`);
        await sleep(100);
      }
    },
    async terminate() {
      const startedAt = Date.now();
      child.kill("SIGTERM");
      const code = await exited;
      return { code, ms: Date.now() - startedAt };
    },
  };
}
