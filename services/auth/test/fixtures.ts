import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type MsgHdrs } from "@nats-io/transport-node";
import { createLogger } from "@zero/kit/log";
import { AuthService, RegisterRequestSchema, type RegisterRequest } from "@zero/proto/zero/auth/v1/auth_pb";
import { UserRegisteredSchema, type UserRegistered } from "@zero/proto/zero/auth/v1/events_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startAuthServer, type AuthServer } from "../src/auth-server.js";
import { loadConfig } from "../src/config.js";

/** A registration that passes validation; override what a test is about. */
export function aRegistration(
  overrides: Partial<MessageInitShape<typeof RegisterRequestSchema>> = {},
): RegisterRequest {
  return create(RegisterRequestSchema, {
    email: `user-${randomUUID()}@example.com`,
    password: "correct horse battery staple",
    firstName: "Ada",
    lastName: "Lovelace",
    ...overrides,
  });
}

export function aKeyEncryptionKey(): string {
  return randomBytes(32).toString("base64");
}

export interface TestAuth {
  server: AuthServer;
  client: Client<typeof AuthService>;
  database: TestDatabase;
  nats: TestNats;
  /** Stops the service, then its NATS server and database. */
  close(): Promise<void>;
}

/** The service in-process on a free port, over its own fresh database and private NATS server. */
export async function startTestAuth(env: Record<string, string> = {}): Promise<TestAuth> {
  const database = await createTestDatabase("auth");
  let nats: TestNats | undefined;
  try {
    nats = await startNats();
    const config = loadConfig({
      PORT: "0",
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      AUTH_KEY_ENCRYPTION_KEY: aKeyEncryptionKey(),
      ...env,
    });
    const server = await startAuthServer({
      config,
      logger: createLogger("auth", { level: "silent" }),
      host: "127.0.0.1",
    });
    const client = createClient(
      AuthService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const started = nats;
    return {
      server,
      client,
      database,
      nats: started,
      async close() {
        await server.close(2000);
        await started.stop();
        await database.drop();
      },
    };
  } catch (error) {
    await nats?.stop();
    await database.drop();
    throw error;
  }
}

export interface PublishedEvent {
  subject: string;
  headers: MsgHdrs;
  data: Uint8Array;
  event: UserRegistered;
}

/** Waits until the ZERO_AUTH stream holds a UserRegistered event for `userId` and decodes it. */
export async function waitForUserRegistered(
  natsUrl: string,
  userId: string,
  timeoutMs = 10_000,
): Promise<PublishedEvent[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found: PublishedEvent[] = [];
      const info = await jsm.streams.info("ZERO_AUTH");
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const msg = await jsm.streams.getMessage("ZERO_AUTH", { seq });
        if (!msg || msg.subject !== UserRegisteredSchema.typeName) continue;
        const event = fromBinary(UserRegisteredSchema, msg.data);
        if (event.userId === userId)
          found.push({ subject: msg.subject, headers: msg.header, data: msg.data, event });
      }
      if (found.length > 0) return found;
      if (Date.now() > deadline)
        throw new Error(`no UserRegistered for ${userId} on ZERO_AUTH within ${timeoutMs} ms`);
      await sleep(100);
    }
  } finally {
    await nc.close();
  }
}
