import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { createLinePrefixer, type LogFormat } from "./log-format.js";

export interface ProcessSpec {
  name: string;
  /** Arguments to this same node binary (e.g. `--import tsx services/auth/src/main.ts`). */
  args: string[];
  env: Record<string, string>;
}

interface Running {
  spec: ProcessSpec;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  tail: string[];
}

/** A child that failed: its last log lines travel with the error. */
export class ProcessFailure extends Error {
  constructor(
    message: string,
    readonly tail: string[],
  ) {
    super(message);
  }
}

/** "FAILED: …", with a failed child's last log lines below. */
export function describeFailure(error: unknown): string {
  if (error instanceof ProcessFailure) {
    return [`FAILED: ${error.message}. Its last log lines:`, ...error.tail.map((line) => `    ${line}`)].join(
      "\n",
    );
  }
  return `FAILED: ${error instanceof Error ? error.message : String(error)}`;
}

const TAIL_LINES = 30;

/**
 * Runs the platform's processes as children of this one, prefixes their log lines with their
 * name, and stops them in reverse start order. Children get their own process group, so a Ctrl-C
 * in the terminal reaches only this supervisor, which then decides the order.
 */
export function createSupervisor(opts: {
  cwd: string;
  format: LogFormat;
  readyTimeoutMs: number;
  /** A started child exited while the platform was up. */
  onUnexpectedExit: (name: string, description: string, tail: string[]) => void;
}) {
  const running: Running[] = [];
  let stopping = false;
  let launched = 0;

  function launch(spec: ProcessSpec): Running {
    const child = spawn(process.execPath, spec.args, {
      cwd: opts.cwd,
      env: spec.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const prefix = createLinePrefixer(spec.name, launched++, opts.format);
    const tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        process.stdout.write(`${prefix(line)}\n`);
      });
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on("error", (error) => {
        tail.push(String(error));
        resolve({ code: null, signal: null });
      });
      child.on("exit", (code, signal) => resolve({ code, signal }));
    });
    return { spec, child, exited, tail };
  }

  const describe = ({ code, signal }: { code: number | null; signal: NodeJS.Signals | null }): string =>
    signal ? `was killed by ${signal}` : `exited with code ${code ?? "?"}`;

  return {
    /** Runs a one-shot command (a migration) to completion; throws with its output when it fails. */
    async run(spec: ProcessSpec): Promise<void> {
      const r = launch(spec);
      const result = await r.exited;
      if (result.code !== 0) throw new ProcessFailure(`${spec.name} ${describe(result)}`, r.tail);
    },

    /** Starts a long-running child and resolves once `readyUrl` answers 200. */
    async start(spec: ProcessSpec, readyUrl: string): Promise<void> {
      const r = launch(spec);
      running.push(r);
      let exitedEarly: string | undefined;
      let ready = false;
      void r.exited.then((result) => {
        exitedEarly = describe(result);
        if (ready && !stopping) opts.onUnexpectedExit(spec.name, exitedEarly, r.tail);
      });
      const deadline = Date.now() + opts.readyTimeoutMs;
      while (Date.now() < deadline) {
        if (exitedEarly) throw new ProcessFailure(`${spec.name} ${exitedEarly} before it was ready`, r.tail);
        try {
          const response = await fetch(readyUrl, { signal: AbortSignal.timeout(2000) });
          await response.body?.cancel();
          if (response.status === 200) {
            ready = true;
            return;
          }
        } catch {
          // Not listening yet.
        }
        await sleep(250);
      }
      throw new ProcessFailure(
        `${spec.name} was not ready within ${opts.readyTimeoutMs / 1000} s (GET ${readyUrl} never answered 200)`,
        r.tail,
      );
    },

    /** SIGTERM to each child in reverse start order; SIGKILL to one that outlives `deadlineMs`. */
    async stopAll(deadlineMs = 15_000): Promise<{ failed: string[] }> {
      stopping = true;
      const failed: string[] = [];
      for (const r of [...running].reverse()) {
        // One that is gone already was reported when it went.
        if (r.child.exitCode !== null || r.child.signalCode !== null) continue;
        r.child.kill("SIGTERM");
        const result = await Promise.race([r.exited, sleep(deadlineMs).then(() => undefined)]);
        if (result === undefined) {
          failed.push(`${r.spec.name} did not stop within ${deadlineMs / 1000} s: killed`);
          killGroup(r.child, "SIGKILL");
          await r.exited;
        } else if (result.code !== 0 && result.signal !== "SIGTERM") {
          failed.push(`${r.spec.name} ${describe(result)} on SIGTERM`);
        }
      }
      running.length = 0;
      return { failed };
    },

    /** Last resort when this process exits without stopAll (it cannot wait any more). */
    killAll(): void {
      for (const r of running) killGroup(r.child, "SIGKILL");
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
