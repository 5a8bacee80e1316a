import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { loadConfig } from "../src/config.js";
import { startEchoServer } from "../src/echo-server.js";

// The diagnostic service on its own, over gRPC and Connect: what it answers and what it refuses.

let server: Server;
let tokens: TokenIssuer;
let echo: Client<typeof EchoService>;
let transcoding: Client<typeof TranscodingService>;

beforeAll(async () => {
  tokens = await createTokenIssuer();
  server = await startEchoServer({
    logger: createLogger("echo-test", { level: "silent" }),
    verifier: tokens.verifier,
  });
  echo = createClient(EchoService, createGrpcTransport({ baseUrl: server.url }));
  transcoding = createClient(
    TranscodingService,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
});

afterAll(async () => {
  await server?.close(1000);
});

const codeOf = (call: Promise<unknown>): Promise<Code | undefined> =>
  call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e).code,
  );

describe("EchoService", () => {
  it("applies each access level", async () => {
    expect((await echo.echo({ message: "hi" })).message).toBe("hi");
    expect(await codeOf(echo.whoAmI({}))).toBe(Code.Unauthenticated);
    const user = await tokens.user("user-1");
    const me = await echo.whoAmI({}, { headers: { authorization: `Bearer ${user}` } });
    expect(me).toMatchObject({ subject: "user-1", roles: ["customer"] });
    expect(
      await codeOf(echo.adminEcho({ message: "a" }, { headers: { authorization: `Bearer ${user}` } })),
    ).toBe(Code.PermissionDenied);
    // INTERNAL: a service token passes when called directly (never through the gateway).
    const service = await tokens.service("payments");
    expect(
      (await echo.internalEcho({ message: "i" }, { headers: { authorization: `Bearer ${service}` } }))
        .message,
    ).toBe("i");
    expect(await codeOf(echo.undecided({}))).toBe(Code.PermissionDenied);
  });

  it("fails on demand, with ErrorInfo metadata http_status when asked", async () => {
    const error = await echo
      .fail({ code: "not_found", message: "gone" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(error).toMatchObject({ code: Code.NotFound, rawMessage: "gone" });
    const reused = await echo
      .fail({ code: "invalid_argument", message: "key reused", httpStatus: "422" })
      .catch((e: unknown) => ConnectError.from(e));
    const [info] = (reused as ConnectError).findDetails(ErrorInfoSchema);
    expect(info?.metadata).toEqual({ http_status: "422" });
    expect(await codeOf(echo.fail({ code: "nonsense" }))).toBe(Code.InvalidArgument);
  });

  it("bounds its stream", async () => {
    const received: number[] = [];
    for await (const item of echo.echoStream({ message: "s", count: 3 })) received.push(item.index);
    expect(received).toEqual([0, 1, 2]);
    await expect(
      (async () => {
        for await (const _ of echo.echoStream({ message: "s", count: 1_000_000 })) break;
      })(),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});

describe("TranscodingService", () => {
  it("answers with what it received", async () => {
    expect(await transcoding.getShelf({ shelf: { id: "7" } })).toMatchObject({ shelf: { id: "7" } });
    const moved = await transcoding.moveBook({
      name: "shelves/1/books/2",
      destination: "shelves/9",
      note: "n",
    });
    expect(moved).toMatchObject({ name: "shelves/9/books/2", previousName: "shelves/1/books/2", note: "n" });
    expect(await transcoding.getFile({ path: "a/b%2Fc" })).toMatchObject({ segments: ["a", "b%2Fc"] });
    const created = await transcoding.createBook({
      parent: "shelves/1",
      book: { title: "T", createTime: { seconds: 1n } },
    });
    expect(created.book?.createTime?.seconds).not.toBe(1n);
    const values = await transcoding.echoValues({ int64: 5n, labels: { a: "b" } });
    expect(values.received).toMatchObject({ int64: 5n, labels: { a: "b" } });
  });

  it("refuses what a real service would refuse", async () => {
    expect(await codeOf(transcoding.getBook({ name: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(transcoding.createBook({ parent: "shelves/1" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(transcoding.moveBook({ name: "shelves/1/books/2" }))).toBe(Code.InvalidArgument);
    const tooMany = (async () => {
      for await (const _ of transcoding.watchBooks({ count: 101 })) break;
    })();
    await expect(tooMany).rejects.toMatchObject({ code: Code.InvalidArgument });
    const tooSlow = (async () => {
      for await (const _ of transcoding.watchBooks({ count: 2, interval: { seconds: 5n } })) break;
    })();
    await expect(tooSlow).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("streams books at the interval asked", async () => {
    const started = performance.now();
    const titles: string[] = [];
    for await (const item of transcoding.watchBooks({
      count: 3,
      title: "B",
      interval: { nanos: 20_000_000 },
    })) {
      titles.push(item.book?.title ?? "");
    }
    expect(titles).toEqual(["B 0", "B 1", "B 2"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(35);
  });
});

describe("loadConfig", () => {
  it("defaults to port 9099 and auth on 9001, and reports bad values", () => {
    expect(loadConfig({})).toMatchObject({ port: 9099, authUrl: "http://127.0.0.1:9001" });
    expect(() => loadConfig({ PORT: "x", AUTH_URL: "not a url" })).toThrow(
      /PORT[\s\S]*AUTH_URL|AUTH_URL[\s\S]*PORT/,
    );
  });
});
