import { freePort } from "./ports.js";
import { lostPortRace, probeTcp, startProcess } from "./server-process.js";

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A private, non-persistent redis-server on a free port (one per test file, so files run in parallel). */
export async function startRedis(): Promise<TestRedis> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      const server = await startProcess({
        command: "redis-server",
        args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        isReady: () => probeTcp(port, "+PONG", "PING\r\n"),
        installHint:
          "Run scripts/infra.sh (it installs Debian's redis-server) or `apt-get install redis-server`.",
      });
      return { url: `redis://127.0.0.1:${port}`, port, stop: () => server.stop() };
    } catch (err) {
      if (attempt < 3 && err instanceof Error && lostPortRace(err.message)) continue;
      throw err;
    }
  }
}
