import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSupervisor, describeFailure, ProcessFailure } from "./supervisor.js";

// A child that serves /readyz (503 until READY_AFTER_MS passed), exits with 7 on GET /exit and, on
// SIGTERM, appends its name to STOP_LOG before it exits 0: the log shows the stop order.
const childCode = `
const http = require("node:http");
const fs = require("node:fs");
const started = Date.now();
const server = http.createServer((req, res) => {
  if (req.url === "/exit") process.exit(7);
  res.statusCode = Date.now() - started >= Number(process.env.READY_AFTER_MS) ? 200 : 503;
  res.end();
});
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log(JSON.stringify({ level: 30, msg: "listening" })));
process.on("SIGTERM", () => {
  fs.appendFileSync(process.env.STOP_LOG, process.env.NAME + "\\n");
  server.close(() => process.exit(0));
});
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

describe("createSupervisor", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function setUp(readyTimeoutMs = 10_000) {
    const dir = mkdtempSync(join(tmpdir(), "zero-supervisor-"));
    const unexpected: string[] = [];
    const supervisor = createSupervisor({
      cwd: dir,
      format: { json: true, color: false, nameWidth: 4 },
      readyTimeoutMs,
      onUnexpectedExit: (name) => unexpected.push(name),
    });
    cleanups.push(async () => {
      await supervisor.stopAll(2000);
      rmSync(dir, { recursive: true, force: true });
    });
    return { supervisor, stopLog: join(dir, "stops.log"), unexpected };
  }

  async function child(name: string, stopLog: string, readyAfterMs = 0) {
    const port = await freePort();
    const env = { PATH: process.env["PATH"] ?? "", NAME: name, PORT: String(port), STOP_LOG: stopLog };
    return {
      spec: { name, args: ["-e", childCode], env: { ...env, READY_AFTER_MS: String(readyAfterMs) } },
      readyUrl: `http://127.0.0.1:${port}/readyz`,
    };
  }

  it("waits for /readyz, then stops the children in reverse start order with SIGTERM", async () => {
    const { supervisor, stopLog, unexpected } = setUp();
    const first = await child("one", stopLog, 300);
    const second = await child("two", stopLog);
    await supervisor.start(first.spec, first.readyUrl);
    expect((await fetch(first.readyUrl)).status).toBe(200);
    await supervisor.start(second.spec, second.readyUrl);

    const { failed } = await supervisor.stopAll();

    expect(failed).toEqual([]);
    expect(readFileSync(stopLog, "utf8")).toBe("two\none\n");
    expect(unexpected).toEqual([]);
  });

  it("fails a child that exits before it is ready, with its last log lines", async () => {
    const { supervisor } = setUp();
    const spec = {
      name: "bad",
      args: ["-e", 'console.error("missing DATABASE_URL"); process.exit(3)'],
      env: {},
    };
    const failure = await supervisor
      .start(spec, "http://127.0.0.1:1/readyz")
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ProcessFailure);
    expect((failure as ProcessFailure).message).toBe("bad exited with code 3 before it was ready");
    expect((failure as ProcessFailure).tail).toContain("missing DATABASE_URL");
    expect(describeFailure(failure)).toContain("    missing DATABASE_URL");
  });

  it("fails a child that is not ready in time", async () => {
    const { supervisor, stopLog } = setUp(600);
    const slow = await child("slow", stopLog, 60_000);
    await expect(supervisor.start(slow.spec, slow.readyUrl)).rejects.toThrow(
      /slow was not ready within 0.6 s \(GET .*\/readyz never answered 200\)/,
    );
  });

  it("runs a one-shot command to completion and reports a failing one", async () => {
    const { supervisor } = setUp();
    await supervisor.run({ name: "ok", args: ["-e", 'console.log("migrated")'], env: {} });
    await expect(
      supervisor.run({
        name: "broken",
        args: ["-e", 'console.error("relation missing"); process.exit(1)'],
        env: {},
      }),
    ).rejects.toMatchObject({ message: "broken exited with code 1", tail: ["relation missing"] });
  });

  it("reports a child that dies after it was ready", async () => {
    const { supervisor, stopLog, unexpected } = setUp();
    const victim = await child("victim", stopLog);
    await supervisor.start(victim.spec, victim.readyUrl);
    await fetch(victim.readyUrl.replace("/readyz", "/exit")).catch(() => undefined);
    await expect.poll(() => unexpected).toEqual(["victim"]);
  });
});
