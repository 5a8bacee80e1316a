import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import { useSharedAccessorsInAsyncResourceBind } from "./async-resource-bind.js";

// The replacement must be indistinguishable from Node's bind: what the http2 client relies on (the
// stream's callbacks run in the caller's async context) and what the API documents.

// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with .call(resource)
const nodeBind = AsyncResource.prototype.bind;

describe("AsyncResource#bind with shared accessors", () => {
  beforeAll(() => {
    useSharedAccessorsInAsyncResourceBind();
    useSharedAccessorsInAsyncResourceBind(); // twice: no double wrapping
  });

  it("replaces Node's bind where it defines the deprecated property per call", () => {
    const hasProperty = Object.getOwnPropertyDescriptor(
      nodeBind.call(new AsyncResource("t"), () => 1),
      "asyncResource",
    );
    expect(AsyncResource.prototype.bind === nodeBind).toBe(hasProperty === undefined);
  });

  it("runs the bound function in the async context it was bound in", async () => {
    const storage = new AsyncLocalStorage<string>();
    const bound = storage.run("at bind time", () => new AsyncResource("test").bind(() => storage.getStore()));
    const seen = await storage.run("at call time", () => Promise.resolve().then(() => bound()));
    expect(seen).toBe("at bind time");
  });

  it("passes arguments and the receiver through, or binds thisArg when given", () => {
    const resource = new AsyncResource("test");
    function describeCall(this: unknown, a: number, b: number): string {
      return `${String((this as { name?: string } | undefined)?.name)} ${a + b}`;
    }
    const unboundThis = resource.bind(describeCall);
    expect(unboundThis.call({ name: "receiver" }, 1, 2)).toBe("receiver 3");
    // Node's bind takes a thisArg; @types/node does not declare it.
    type BindWithThis = (fn: typeof describeCall, thisArg: unknown) => typeof describeCall;
    const boundThis = (resource as unknown as { bind: BindWithThis }).bind(describeCall, { name: "bound" });
    expect(boundThis.call({ name: "ignored" }, 2, 3)).toBe("bound 5");
    expect(unboundThis.length).toBe(2);
    expect(boundThis.length).toBe(2);
  });

  it("keeps the deprecated asyncResource property, readable and writable", () => {
    const resource = new AsyncResource("test");
    const bound = resource.bind(() => 1) as (() => number) & { asyncResource: AsyncResource };
    expect(bound.asyncResource).toBe(resource);
    expect(Object.keys(bound)).toEqual(["asyncResource"]);
    const other = new AsyncResource("other");
    bound.asyncResource = other;
    expect(bound.asyncResource).toBe(other);
    expect(bound()).toBe(1);
  });

  it("rejects a non-function with Node's own error", () => {
    expect(() => new AsyncResource("test").bind(42 as unknown as () => void)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }),
    );
  });

  it("keeps an HTTP/2 client's stream events in the caller's async context", async () => {
    const server = http2.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      await new Promise((resolve) => session.once("connect", resolve));
      const storage = new AsyncLocalStorage<string>();
      const seen = await storage.run(
        "caller",
        () =>
          new Promise<{ status: unknown; store: string | undefined }>((resolve, reject) => {
            const stream = session.request({ ":path": "/" });
            stream.on("response", (headers) =>
              resolve({ status: headers[":status"], store: storage.getStore() }),
            );
            stream.on("error", reject);
            stream.resume();
            stream.end();
          }),
      );
      expect(seen).toEqual({ status: 200, store: "caller" });
    } finally {
      session.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
