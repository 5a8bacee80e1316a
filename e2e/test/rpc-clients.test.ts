import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson, startPlatform, type TestPlatform } from "./platform.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const run = promisify(execFile);

let platform: TestPlatform;
let email: string;
const password = "correct horse battery staple";

beforeAll(async () => {
  platform = await startPlatform();
  const reg = aRegistration({ password });
  email = String(reg.email);
  expect((await postJson(`${platform.url}/v1/auth/register`, reg)).status).toBe(201);
});
afterAll(async () => {
  await platform?.close();
});

/** An independent gRPC implementation: @grpc/grpc-js with stubs from the .proto sources. */
interface GrpcJsAuthClient extends grpc.Client {
  Login(
    body: { email: string; password: string },
    callback: (err: grpc.ServiceError | null, res: { access_token: string; token_type: string }) => void,
  ): void;
}

function grpcJsAuthClient(target: string): GrpcJsAuthClient {
  const definition = protoLoader.loadSync("zero/auth/v1/auth.proto", {
    includeDirs: [path.join(repoRoot, "proto"), path.join(repoRoot, "third_party/proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    zero: { auth: { v1: { AuthService: grpc.ServiceClientConstructor } } };
  };
  const Ctor = pkg.zero.auth.v1.AuthService;
  return new Ctor(target, grpc.credentials.createInsecure()) as unknown as GrpcJsAuthClient;
}

function grpcJsLogin(target: string, body: { email: string; password: string }) {
  const client = grpcJsAuthClient(target);
  return new Promise<{ access_token: string; token_type: string }>((resolve, reject) => {
    client.Login(body, (err, res) => {
      if (err) reject(err);
      else resolve(res);
    });
  }).finally(() => client.close());
}

const hostPort = (url: string) => new URL(url).host;

/** Wrong-password checks each use their own account: auth throttles repeated failures per account. */
async function aFreshAccount(): Promise<string> {
  const reg = aRegistration({ password });
  expect((await postJson(`${platform.url}/v1/auth/register`, reg)).status).toBe(201);
  return String(reg.email);
}

describe("an independent @grpc/grpc-js client", () => {
  test("calls auth's Login directly", async () => {
    const res = await grpcJsLogin(hostPort(platform.auth.url), { email, password });
    expect(res.token_type).toBe("Bearer");
    expect(res.access_token.split(".")).toHaveLength(3);
  });

  test("calls Login through the gateway", async () => {
    const res = await grpcJsLogin(hostPort(platform.url), { email, password });
    expect(res.token_type).toBe("Bearer");
  });

  test("gets UNAUTHENTICATED for a wrong password through the gateway", async () => {
    await expect(
      grpcJsLogin(hostPort(platform.url), { email, password: "wrong password!!" }),
    ).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
  });
});

describe("typed Connect clients through the gateway, every protocol", () => {
  const transports = {
    "Connect JSON over HTTP/1.1": () =>
      createConnectTransport({ baseUrl: platform.url, httpVersion: "1.1", useBinaryFormat: false }),
    "Connect binary over HTTP/2": () =>
      createConnectTransport({ baseUrl: platform.url, httpVersion: "2", useBinaryFormat: true }),
    "gRPC over h2c": () => createGrpcTransport({ baseUrl: platform.url }),
    "gRPC-Web over HTTP/1.1": () => createGrpcWebTransport({ baseUrl: platform.url, httpVersion: "1.1" }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    test(name, async () => {
      const client = createClient(AuthService, transport());
      const res = await client.login({ email, password });
      expect(res.tokenType).toBe("Bearer");
      const other = await aFreshAccount();
      const err = await client.login({ email: other, password: "wrong password!!" }).catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    });
  }
});

describe("grpcurl-style debugging with buf curl (server reflection)", () => {
  const buf = path.join(repoRoot, "node_modules/.bin/buf");
  const bufCurl = async (...args: string[]) =>
    (await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 20_000 }))
      .stdout;

  test("lists auth's API, health and reflection", async () => {
    const services = (await bufCurl("--list-services", platform.auth.url)).trim().split("\n");
    expect(services).toEqual(
      expect.arrayContaining([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "zero.auth.v1.AuthService",
      ]),
    );
  });

  test("invokes an RPC described only by reflection", async () => {
    const out = await bufCurl(
      "-d",
      JSON.stringify({ email, password }),
      `${platform.auth.url}/zero.auth.v1.AuthService/Login`,
    );
    const res = JSON.parse(out) as { tokenType: string; accessToken: string };
    expect(res.tokenType).toBe("Bearer");
  });

  test("health answers SERVING through reflection", async () => {
    const out = await bufCurl("-d", "{}", `${platform.auth.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(out)).toEqual({ status: "SERVING" });
  });
});
