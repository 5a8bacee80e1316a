import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../src/errors.js";
import type { Server } from "../src/server.js";
import { echoService } from "./fixtures/echo-service.js";
import { startEchoTestServer } from "./fixtures/echo-server.js";

// A call's deadline holds on the server whatever the client does: raw requests here, because
// connect and gRPC clients would give up on their own and hide what the server answered.

let server: Server;
let ran = 0;

beforeAll(async () => {
  server = await startEchoTestServer({
    routes: (router) =>
      router.service(EchoService, {
        ...echoService,
        // A handler that does not watch its signal: it finishes, late.
        async echo(req) {
          ran++;
          await new Promise((resolve) => setTimeout(resolve, 60));
          if (req.message === "fail") throw new DomainError("unauthenticated", "wrong password");
          return { message: req.message };
        },
      }),
  });
});

afterAll(async () => {
  await server?.close(1000);
});

const echo = (headers: Record<string, string>) =>
  fetch(`${server.url}/zero.testing.v1.EchoService/Echo`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: '{"message":"late"}',
  });

describe("deadlines on the server", () => {
  it("a unary call that runs past its deadline answers deadline_exceeded", async () => {
    const answer = await echo({ "connect-timeout-ms": "20" });
    expect(answer.status).toBe(504);
    expect(((await answer.json()) as { code: string }).code).toBe("deadline_exceeded");
  });

  it("so does one that fails past its deadline: the caller gave up first", async () => {
    const answer = await fetch(`${server.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "20" },
      body: '{"message":"fail"}',
    });
    expect(((await answer.json()) as { code: string }).code).toBe("deadline_exceeded");
  });

  it("a call already past its deadline is not run", async () => {
    const before = ran;
    const answer = await echo({ "connect-timeout-ms": "0" });
    expect(((await answer.json()) as { code: string }).code).toBe("deadline_exceeded");
    expect(ran).toBe(before);
  });

  it("a call within its deadline answers as usual", async () => {
    const answer = await echo({ "connect-timeout-ms": "5000" });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ message: "late" });
  });
});
