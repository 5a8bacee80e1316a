import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { lostPortRace, probeTcp, removeOnExit, startProcess, type ServerProcess } from "./server-process.js";

export interface TestNats {
  url: string;
  port: number;
  /** The JetStream store directory; it survives `stop()`/`start()` and is removed when the process exits. */
  storeDir: string;
  /**
   * Whether every write is fsynced. Requested with `syncAlways`, effective only on nats-server
   * 2.10+ (`jetstream { sync_interval: always }`); 2.9 has no such option and flushes on a graceful
   * stop only, which is what `stop()` does.
   */
  syncAlways: boolean;
  /** Graceful stop (SIGTERM, wait for exit). The port and store are kept for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same store (no-op when running). */
  start(): Promise<void>;
}

const INSTALL_HINT =
  "Run scripts/infra.sh (it installs Debian's nats-server) or `apt-get install nats-server`.";

/** A private `nats-server -js` on a free port with its own store directory. */
export async function startNats(opts: { syncAlways?: boolean } = {}): Promise<TestNats> {
  const storeDir = mkdtempSync(join(tmpdir(), "zero-nats-"));
  removeOnExit(storeDir);
  const syncAlways = opts.syncAlways === true && supportsSyncInterval();

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = serverArgs(port, storeDir, syncAlways);
    let server: ServerProcess | undefined;
    const launch = async (): Promise<void> => {
      server = await startProcess({
        command: "nats-server",
        args,
        // The client listener opens only after JetStream has recovered its store.
        isReady: () => probeTcp(port, '"jetstream":true'),
        installHint: INSTALL_HINT,
      });
    };
    try {
      await launch();
    } catch (err) {
      if (attempt < 3 && err instanceof Error && lostPortRace(err.message)) continue;
      throw err;
    }
    return {
      url: `nats://127.0.0.1:${port}`,
      port,
      storeDir,
      syncAlways,
      async stop() {
        await server?.stop();
        server = undefined;
      },
      async start() {
        if (server === undefined) await launch();
      },
    };
  }
}

function serverArgs(port: number, storeDir: string, syncAlways: boolean): string[] {
  if (!syncAlways) return ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir];
  const configFile = join(storeDir, "nats.conf");
  writeFileSync(
    configFile,
    `listen: "127.0.0.1:${port}"\njetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n  sync_interval: always\n}\n`,
  );
  return ["-c", configFile];
}

let versionCache: [number, number] | undefined;

/** `sync_interval` arrived in nats-server 2.10; 2.9 rejects it as an unknown field. */
function supportsSyncInterval(): boolean {
  if (versionCache === undefined) {
    try {
      const out = execFileSync("nats-server", ["--version"], { encoding: "utf8" });
      const match = /v(\d+)\.(\d+)/.exec(out);
      versionCache = match ? [Number(match[1]), Number(match[2])] : [0, 0];
    } catch {
      versionCache = [0, 0]; // missing binary: startProcess reports it with the install hint
    }
  }
  const [major, minor] = versionCache;
  return major > 2 || (major === 2 && minor >= 10);
}
