import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { readRequestBody, type BodyResult } from "./request-body.js";

// The body arrives either already parsed into the request's buffer (taken synchronously) or later
// (read from the stream): both must give the same bytes and the same limit.

const LIMIT = 64;
const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** An HTTP/1.1 server that reads each body, after a microtask when `settle` (the REST handler's await). */
async function http1Reader(settle: boolean): Promise<{ url: string; results: (BodyResult | "promise")[] }> {
  const results: (BodyResult | "promise")[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      if (settle) await new Promise((resolve) => setTimeout(resolve, 20));
      const read = readRequestBody(req, LIMIT);
      if (read instanceof Promise) results.push("promise");
      const result = await read;
      results.push(result);
      res.end(result.kind === "ok" ? result.bytes : "too-large");
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, results };
}

const text = (result: BodyResult | "promise" | undefined): string | undefined =>
  result !== undefined && result !== "promise" && result.kind === "ok" ? result.bytes.toString() : undefined;

describe("readRequestBody", () => {
  it("takes an HTTP/1.1 body that has already arrived without waiting for it", async () => {
    const reader = await http1Reader(true);
    const res = await fetch(reader.url, { method: "POST", body: '{"message":"hi"}' });
    expect(await res.text()).toBe('{"message":"hi"}');
    expect(reader.results).toHaveLength(1); // no "promise": read synchronously
    expect(text(reader.results[0])).toBe('{"message":"hi"}');

    const empty = await fetch(reader.url, { method: "POST" });
    expect(await empty.text()).toBe("");
    expect(reader.results).toHaveLength(2);
  });

  it("waits for a body that has not arrived yet, and gives the same bytes", async () => {
    const reader = await http1Reader(false);
    const res = await fetch(reader.url, { method: "POST", body: '{"message":"hi"}' });
    expect(await res.text()).toBe('{"message":"hi"}');
    expect(reader.results[0]).toBe("promise");
    expect(text(reader.results[1])).toBe('{"message":"hi"}');
  });

  it("refuses a body over the limit on either path, declared or chunked", async () => {
    for (const settle of [true, false]) {
      const reader = await http1Reader(settle);
      const declared = await fetch(reader.url, { method: "POST", body: "x".repeat(LIMIT + 1) });
      expect(await declared.text()).toBe("too-large");
      // No Content-Length: the limit is found while reading (or in the buffer, already arrived).
      const chunked = await new Promise<string>((resolve, reject) => {
        const req = http.request(reader.url, { method: "POST" }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => (body += chunk.toString()));
          res.on("end", () => resolve(body));
        });
        req.on("error", reject);
        req.write("x".repeat(LIMIT));
        req.end("y");
      });
      expect(chunked).toBe("too-large");
    }
  });

  it("reads HTTP/2 bodies from the stream", async () => {
    const results: (BodyResult | "promise")[] = [];
    const server = http2.createServer((req, res) => {
      void (async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const read = readRequestBody(req, LIMIT);
        results.push(read instanceof Promise ? "promise" : read);
        const result = await read;
        res.end(result.kind === "ok" ? result.bytes : "too-large");
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/" });
      stream.end('{"message":"h2"}');
      let body = "";
      stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
      await new Promise((resolve) => stream.on("end", resolve));
      expect(body).toBe('{"message":"h2"}');
      expect(results).toEqual(["promise"]);
    } finally {
      session.destroy();
    }
  });
});
