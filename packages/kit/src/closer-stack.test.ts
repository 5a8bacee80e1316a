import { describe, expect, it } from "vitest";
import { createCloserStack } from "./closer-stack.js";
import { createLogger } from "./log.js";

function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("closer-stack-test", {
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

describe("createCloserStack", () => {
  it("closes in reverse order of push, once", async () => {
    const { logger } = capturedLogger();
    const stack = createCloserStack(logger);
    const closed: string[] = [];
    stack.push("database", async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      closed.push("database");
    });
    stack.push("redis", () => void closed.push("redis"));
    stack.push("server", () => Promise.resolve(void closed.push("server")));
    await stack.closeAll();
    expect(closed).toEqual(["server", "redis", "database"]);
    await stack.closeAll();
    expect(closed).toEqual(["server", "redis", "database"]);
  });

  it("runs every closer when some fail, logs each failure and rethrows the first", async () => {
    const { logger, lines } = capturedLogger();
    const stack = createCloserStack(logger);
    const closed: string[] = [];
    stack.push("database", () => void closed.push("database"));
    stack.push("events", () => Promise.reject(new Error("events refused to stop")));
    stack.push("mail", () => {
      throw new Error("mail refused to stop");
    });
    stack.push("server", () => void closed.push("server"));
    await expect(stack.closeAll()).rejects.toThrow("mail refused to stop");
    expect(closed).toEqual(["server", "database"]);
    expect(lines.filter((l) => l["msg"] === "failed to close").map((l) => l["component"])).toEqual([
      "mail",
      "events",
    ]);
  });

  it("wraps a thrown non-Error so the caller still gets an Error naming the closer", async () => {
    const { logger } = capturedLogger();
    const stack = createCloserStack(logger);
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what the test is about
    stack.push("pool", () => Promise.reject("gone"));
    await expect(stack.closeAll()).rejects.toThrow("closing pool failed: gone");
  });
});
