import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { ensureStream } from "@zero/kit/events/streams";
import { createLogger } from "@zero/kit/log";
import type { ServiceTokenSource } from "@zero/kit/service-identity";
import { UserDeletedSchema, UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import { AddressSchema, UserService, type Address } from "@zero/proto/zero/users/v1/users_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { setTimeout as sleep } from "node:timers/promises";
import { uuidv7 } from "uuidv7";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { loadConfig } from "../src/config.js";
import { startUsersServer, type UsersServer } from "../src/users-server.js";

/** A user id as auth issues them. */
export const aUserId = (): string => uuidv7();

/** An address that passes validation; override what a test is about. */
export function anAddress(
  overrides: Partial<Omit<Address, "$typeName" | "$unknown" | "createTime" | "updateTime">> = {},
): Address {
  return create(AddressSchema, {
    recipientName: "Ada Lovelace",
    line1: "12 St James's Square",
    city: "London",
    postalCode: "SW1Y 4JH",
    countryCode: "GB",
    ...overrides,
  });
}

export interface TestUsers {
  server: UsersServer;
  database: TestDatabase;
  nats: TestNats;
  tokens: TokenIssuer;
  /** A client of the service itself sending `token` (Connect over HTTP/1.1 unless told otherwise). */
  client(token: string | undefined, kind?: ClientKind): Client<typeof UserService>;
  /** Publishes an auth event on ZERO_AUTH as auth's relay does (ce-* headers, Nats-Msg-Id). */
  /** `natsMsgId` differing from the event id gets a copy past JetStream's dedup window, as a redelivery would. */
  publish<Desc extends DescMessage>(
    schema: Desc,
    message: MessageShape<Desc>,
    eventId?: string,
    natsMsgId?: string,
  ): Promise<string>;
  registered(
    userId: string,
    names?: { firstName?: string; lastName?: string },
    eventId?: string,
    natsMsgId?: string,
  ): Promise<string>;
  deleted(userId: string, eventId?: string, natsMsgId?: string): Promise<string>;
  /** Waits until `probe` answers true (bounded: generous for a loaded machine). */
  until(probe: () => Promise<boolean>, what: string, timeoutMs?: number): Promise<void>;
  /** Registers a user through the event and waits for the profile: the usual starting point. */
  aRegisteredUser(names?: {
    firstName?: string;
    lastName?: string;
  }): Promise<{ userId: string; token: string }>;
  close(): Promise<void>;
}

export interface TestUsersOptions {
  /** Other services' PersonalDataService URLs the export asks (`PERSONAL_DATA_SERVICES` + `<NAME>_URL`). */
  sources?: { name: string; url: string }[];
  env?: Record<string, string>;
  serviceTokens?: ServiceTokenSource;
  /** Share a signing key with other test servers (stand-ins for other services). */
  tokens?: TokenIssuer;
}

/**
 * The service in-process on a free port, over its own fresh database and private NATS server with
 * auth's stream ZERO_AUTH (created here as auth would), tokens signed by a test key.
 */
export async function startTestUsers(opts: TestUsersOptions = {}): Promise<TestUsers> {
  const [database, nats, tokens] = await Promise.all([
    createTestDatabase("users"),
    startNats(),
    opts.tokens ?? createTokenIssuer(),
  ]);
  let nc: NatsConnection | undefined;
  let server: UsersServer | undefined;
  try {
    nc = await connect({ servers: nats.url });
    await ensureStream(nc, { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] });
    const sources = opts.sources ?? [];
    const config = loadConfig({
      PORT: "0",
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      AUTH_URL: "http://127.0.0.1:1", // never called: the tests' verifier and token source stand in for auth
      SERVICE_CLIENT_SECRET: "test-secret",
      PERSONAL_DATA_SERVICES: sources.map((s) => s.name).join(",") || "none",
      ...Object.fromEntries(sources.map((s) => [`${s.name.toUpperCase()}_URL`, s.url])),
      ...opts.env,
    });
    const serviceTokens: ServiceTokenSource = opts.serviceTokens ?? {
      token: () => tokens.service("users"),
      invalidate: () => undefined,
    };
    server = await startUsersServer({
      config,
      logger: createLogger("users", { level: "silent" }),
      host: "127.0.0.1",
      verifier: tokens.verifier,
      serviceTokens,
    });
    const started = server;
    await waitReady(started.url);
    const js = jetstream(nc);
    const connection = nc;

    const clients = createClientFactory(started.url);

    const until: TestUsers["until"] = async (probe, what, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!(await probe())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(50);
      }
    };

    const publish: TestUsers["publish"] = async (
      schema,
      message,
      eventId = uuidv7(),
      natsMsgId = eventId,
    ) => {
      const h = natsHeaders();
      h.set("ce-specversion", "1.0");
      h.set("ce-id", eventId);
      h.set("ce-source", "zero.auth");
      h.set("ce-type", schema.typeName);
      h.set("ce-time", new Date().toISOString());
      h.set("content-type", "application/protobuf");
      await js.publish(schema.typeName, toBinary(schema, message), { headers: h, msgID: natsMsgId });
      return eventId;
    };

    const registered: TestUsers["registered"] = (userId, names = {}, eventId, natsMsgId) =>
      publish(
        UserRegisteredSchema,
        create(UserRegisteredSchema, {
          userId,
          email: `${userId}@example.com`,
          firstName: names.firstName ?? "Ada",
          lastName: names.lastName ?? "Lovelace",
          registerTime: timestampNow(),
        }),
        eventId,
        natsMsgId,
      );

    return {
      server: started,
      database,
      nats,
      tokens,
      client: clients.client,
      publish,
      registered,
      deleted: (userId, eventId, natsMsgId) =>
        publish(
          UserDeletedSchema,
          create(UserDeletedSchema, { userId, deleteTime: timestampNow() }),
          eventId,
          natsMsgId,
        ),
      until,
      async aRegisteredUser(names) {
        const userId = aUserId();
        await registered(userId, names);
        await until(
          async () =>
            (await started.db
              .selectFrom("profiles")
              .select("user_id")
              .where("user_id", "=", userId)
              .executeTakeFirst()) !== undefined,
          `the profile of ${userId}`,
        );
        return { userId, token: await tokens.user(userId) };
      },
      async close() {
        await started.close(2000);
        await connection.close();
        await nats.stop();
        await database.drop();
      },
    };
  } catch (error) {
    await server?.close(500).catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await nats.stop();
    await database.drop();
    throw error;
  }
}

export type ClientKind = "connect" | "grpc" | "grpc-web";

/** Typed clients of UserService at `baseUrl` (the service or the gateway) sending a bearer token. */
export function createClientFactory(baseUrl: string) {
  return {
    /** `token` undefined: no authorization header at all. */
    client: (token: string | undefined, kind: ClientKind = "connect"): Client<typeof UserService> => {
      const interceptors: Interceptor[] =
        token === undefined
          ? []
          : [
              (next) => (req) => {
                req.header.set("authorization", `Bearer ${token}`);
                return next(req);
              },
            ];
      const transport =
        kind === "grpc"
          ? createGrpcTransport({ baseUrl, interceptors })
          : kind === "grpc-web"
            ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors })
            : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
      return createClient(UserService, transport);
    },
  };
}

/** The gateway in-process in front of `users` (and nothing else), trusting the test tokens. */
export async function startTestGateway(users: TestUsers): Promise<Gateway> {
  return startGateway({
    services: publicServices,
    upstreamUrls: { users: users.server.url },
    verifier: users.tokens.verifier,
    logger: createLogger("gateway", { level: "silent" }),
    host: "127.0.0.1",
    port: 0,
  });
}

/** The service is ready once its consumers run (they start in the background). */
async function waitReady(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`users never became ready within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The error a call failed with (fails the test when it succeeded). */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

/** Field → description of the error's google.rpc.BadRequest. */
export function violations(error: ConnectError): Record<string, string> {
  const details = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
  return Object.fromEntries(details.map((v) => [v.field, v.description]));
}

export { Code };
