import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { describe, expect, it } from "vitest";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");
const script = path.join(here, "fixtures/lifecycle-main.ts");

interface Run {
  /** Resolves with the server's URL once it listens. */
  ready: Promise<string>;
  exited: Promise<{ code: number | null; lines: Record<string, unknown>[] }>;
  kill(signal: NodeJS.Signals): void;
}

function runMain(mode: string): Run {
  const child = spawn(process.execPath, ["--import", "tsx", script, mode], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  let buffered = "";
  let onReady: (url: string) => void = () => undefined;
  const ready = new Promise<string>((resolve) => {
    onReady = resolve;
  });
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const part of parts) {
      const line = JSON.parse(part) as Record<string, unknown>;
      lines.push(line);
      if (line.msg === "server listening") onReady(String(line.url));
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; lines: Record<string, unknown>[] }>((resolve) => {
    child.on("exit", (code) => {
      if (code !== 0 && stderr !== "") console.error(stderr);
      resolve({ code, lines });
    });
  });
  return { ready, exited, kill: (signal) => child.kill(signal) };
}

const closed = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg === "closed").map((l) => l.closer);

describe("createLifecycle", () => {
  it("on SIGTERM lets an in-flight call finish, runs the closers in reverse and exits 0", async () => {
    const run = runMain("clean");
    const url = await run.ready;
    const client = createClient(EchoService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
    const inFlight = client.echo({ message: "slow:500" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    run.kill("SIGTERM");
    expect((await inFlight).message).toBe("slow:500");
    const { code, lines } = await run.exited;
    expect(code).toBe(0);
    expect(closed(lines)).toEqual(["server", "relay", "pool"]);
    expect(lines.find((l) => l.msg === "shutdown complete")?.clean).toBe(true);
  });

  it("on SIGINT does the same", async () => {
    const run = runMain("clean");
    await run.ready;
    run.kill("SIGINT");
    const { code, lines } = await run.exited;
    expect(code).toBe(0);
    expect(closed(lines)).toEqual(["server", "relay", "pool"]);
  });

  it("exits 1 when a closer fails, after running the others", async () => {
    const run = runMain("fail");
    await run.ready;
    run.kill("SIGTERM");
    const { code, lines } = await run.exited;
    expect(code).toBe(1);
    expect(closed(lines)).toEqual(["server", "pool"]);
    expect(lines.find((l) => l.msg === "closing failed")?.closer).toBe("relay");
  });

  it("exits 1 when the deadline passes", async () => {
    const run = runMain("hang");
    await run.ready;
    const startedAt = Date.now();
    run.kill("SIGTERM");
    const { code, lines } = await run.exited;
    expect(code).toBe(1);
    expect(Date.now() - startedAt).toBeLessThan(3000);
    expect(
      lines.some((l) => l.msg === "shutdown deadline passed: exiting without waiting for the rest"),
    ).toBe(true);
  });
});
