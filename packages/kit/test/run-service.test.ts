import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { createTestDatabase } from "@zero/testkit/postgres";
import { freePort } from "@zero/testkit/ports";
import { startServiceProcess } from "@zero/testkit/service-process";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db.js";

// runService as a service's main.ts uses it: a miniature main.ts (fixtures/run-service) in its own
// process, so the test sees real exit codes, stderr and signals.

const serviceDir = fileURLToPath(new URL("fixtures/run-service", import.meta.url));
const run = (args: string[], env: Record<string, string> = {}) =>
  startServiceProcess({ serviceDir, args, env });

const logLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("runService", () => {
  it("serves until SIGTERM, then drains the service with drainMs and closes telemetry last", async () => {
    const port = await freePort();
    const proc = run([], { PORT: String(port), LOG_LEVEL: "info" });
    await proc.waitForReadyz(`http://127.0.0.1:${port}`);
    const stopped = await proc.terminate();
    expect(stopped.code, proc.stderr()).toBe(0);
    const lines = logLines(proc.stdout());
    expect(lines.find((l) => l["msg"] === "draining")?.["drain_ms"]).toBe(1234);
    expect(lines.filter((l) => l["msg"] === "closed").map((l) => l["closer"])).toEqual(["tiny", "telemetry"]);
  });

  it("reports a configuration problem without a stack trace and exits 1", async () => {
    const proc = run([], { BROKEN_CONFIG: "1" });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(
      /^tiny: invalid configuration \(1 problem\):\n {2}- TINY_SETTING is required\n$/,
    );
  });

  it("refuses an unknown command, naming the known ones, and exits 1", async () => {
    const proc = run(["serve-please"]);
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(/unknown command "serve-please": use migrate, hello or broken/);
  });

  it("runs a command with its arguments; a failing command exits 1 with its stack", async () => {
    const hello = run(["hello", "a", "b"]);
    expect(await hello.exited, hello.stderr()).toBe(0);
    expect(hello.stdout()).toBe("hello a b\n");
    const broken = run(["broken"]);
    expect(await broken.exited).toBe(1);
    expect(broken.stderr()).toMatch(/^tiny: Error: the command broke\n\s+at /);
  });

  it("`migrate` applies the migrations and exits 0", async () => {
    const database = await createTestDatabase("kit_run_service");
    try {
      const proc = run(["migrate"], { DATABASE_URL: database.url });
      expect(await proc.exited, proc.stderr()).toBe(0);
      const db = createDb(database.url);
      try {
        const { rows } = await sql<{ name: string }>`select tablename as name from pg_tables
          where schemaname = 'public'`.execute(db);
        expect(rows.map((r) => r.name)).toContain("run_service_check");
      } finally {
        await db.destroy();
      }
    } finally {
      await database.drop();
    }
  });
});
