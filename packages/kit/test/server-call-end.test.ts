import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/server.js";
import { startEchoTestServer } from "./fixtures/echo-server.js";
import { echoService } from "./fixtures/echo-service.js";

// The Connect libraries are patched (patches/README.md): once a call is over, its signals are
// aborted with one shared AbortError instead of a new DOMException (a stack trace) per abort.
// These tests hold that in place, and hold what code reading the signal relies on.

let server: Server;
const handlerSignals: AbortSignal[] = [];

beforeAll(async () => {
  server = await startEchoTestServer({
    routes: (router) =>
      router.service(EchoService, {
        ...echoService,
        echo(req, ctx) {
          handlerSignals.push(ctx.signal);
          return { message: req.message };
        },
      }),
  });
});

afterAll(async () => {
  await server.close(2000);
});

async function settledReason(signal: AbortSignal): Promise<unknown> {
  if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve));
  return signal.reason;
}

type TransportOf = (interceptors: Interceptor[]) => ReturnType<typeof createConnectTransport>;
const transports: [string, TransportOf][] = [
  [
    "Connect over HTTP/1.1",
    (interceptors) => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors }),
  ],
  [
    "Connect over HTTP/2",
    (interceptors) => createConnectTransport({ baseUrl: server.url, httpVersion: "2", interceptors }),
  ],
  ["gRPC", (interceptors) => createGrpcTransport({ baseUrl: server.url, interceptors })],
  [
    "gRPC-Web",
    (interceptors) => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors }),
  ],
];

describe.each(transports)("a completed call over %s", (_name, transport) => {
  it("ends the handler's and the client's signals with one shared AbortError, not a DOMException each", async () => {
    const clientSignals: AbortSignal[] = [];
    const recordSignal: Interceptor = (next) => (req) => {
      clientSignals.push(req.signal);
      return next(req);
    };
    handlerSignals.length = 0;
    const client = createClient(EchoService, transport([recordSignal]));
    expect((await client.echo({ message: "one" })).message).toBe("one");
    expect((await client.echo({ message: "two" })).message).toBe("two");

    const reasons = await Promise.all([...handlerSignals, ...clientSignals].map(settledReason));
    expect(reasons).toHaveLength(4);
    for (const reason of reasons) {
      expect(reason).not.toBeInstanceOf(DOMException);
      expect(reason).toMatchObject({ name: "AbortError", message: "This operation was aborted" });
      // What the libraries and kit/errors do with a signal's reason: a cancellation.
      expect(ConnectError.from(reason).code).toBe(Code.Canceled);
    }
    // Made once per module, not per call: the handler's signal ends the same way every time.
    expect(reasons[1]).toBe(reasons[0]);
    expect(reasons[3]).toBe(reasons[2]);
  });
});
