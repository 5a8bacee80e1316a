import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startListener, type Listener } from "../src/listener.js";
import { createLogger } from "../src/log.js";

// A client that trickles a request (slowloris) is answered 408 and disconnected once the
// listener's header or request time has passed, instead of holding a socket for minutes.

let listener: Listener;
let handled = 0;

beforeAll(async () => {
  listener = await startListener({
    port: 0,
    host: "127.0.0.1",
    name: "timeouts-test",
    logger: createLogger("listener-timeouts-test", { level: "silent" }),
    headersTimeoutMs: 300,
    requestTimeoutMs: 600,
    onRequest: (req, res) => {
      handled++;
      req.resume();
      req.on("end", () => res.end("ok"));
    },
  });
});

afterAll(async () => {
  await listener?.drain(500);
});

/** Sends `data`, then waits for the server to answer and close; resolves with what it sent. */
function sendAndWait(data: string): Promise<{ answer: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(listener.port, "127.0.0.1", () => socket.write(data));
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
    socket.on("close", () => resolve({ answer, ms: performance.now() - started }));
    socket.on("error", reject);
    setTimeout(() => socket.destroy(new Error("still open after 5 s")), 5_000).unref();
  });
}

describe("slow HTTP/1.1 clients", () => {
  it("headers that never end → 408 in the error shape, connection closed", async () => {
    const { answer, ms } = await sendAndWait("GET / HTTP/1.1\r\nhost: x\r\nx-slow: 1\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as {
      error: Record<string, unknown>;
    };
    expect(body.error).toMatchObject({ code: 408, status: "DEADLINE_EXCEEDED" });
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2_500);
  });

  it("a body that stops short of its Content-Length → 408 after the request time", async () => {
    const before = handled;
    const { answer, ms } = await sendAndWait("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc");
    expect(handled).toBe(before + 1);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(3_000);
  });

  it("a prompt request is answered as usual", async () => {
    const { answer } = await sendAndWait("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("requests too large for the parser", () => {
  it("a URL over the limit → 414, headers over it → 431, both in the error shape", async () => {
    const longUrl = await sendAndWait(`GET /${"a".repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    expect(longUrl.answer).toMatch(/^HTTP\/1\.1 414 URI Too Long\r\n/);
    const longHeader = await sendAndWait(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"b".repeat(20_000)}\r\n\r\n`);
    expect(longHeader.answer).toMatch(/^HTTP\/1\.1 431 /);
    const body = JSON.parse(longUrl.answer.slice(longUrl.answer.indexOf("\r\n\r\n") + 4)) as {
      error: Record<string, unknown>;
    };
    expect(body.error).toMatchObject({ code: 414, status: "INVALID_ARGUMENT" });
  });
});
