import {
  create,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { ensureStream } from "@zero/kit/events/streams";
import { createLogger } from "@zero/kit/log";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { NotificationService } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { uuidv7 } from "uuidv7";
import { loadConfig } from "../src/config.js";
import { startNotificationsServer, type NotificationsServer } from "../src/notifications-server.js";

// A real SMTP receiver (smtp-server) that records what it accepted and can misbehave on demand.
import { startMailReceiver, type MailReceiver } from "@zero/testkit/mail-receiver";
export { header, startMailReceiver } from "@zero/testkit/mail-receiver";
export type { MailReceiver, ReceivedMail, ReceiverMode } from "@zero/testkit/mail-receiver";

const bearer =
  (token: () => Promise<string>): Interceptor =>
  (next) =>
  async (req) => {
    req.header.set("authorization", `Bearer ${await token()}`);
    return next(req);
  };

// ---------------------------------------------------------------------------------------------
// The service in-process, over its own database, Redis, NATS and SMTP receiver.

export interface TestNotifications {
  server: NotificationsServer;
  database: TestDatabase;
  redis: TestRedis;
  nats: TestNats;
  smtp: MailReceiver;
  /** Signs the tokens the service trusts (a stand-in for auth). */
  issuer: TokenIssuer;
  /** Called as an admin. */
  admin: Client<typeof NotificationService>;
  /** Called as the auth service (INTERNAL methods). */
  service: Client<typeof NotificationService>;
  privacy: Client<typeof PersonalDataService>;
  /** Called with a token of the given roles (or none). */
  clientAs(roles: string[] | undefined): Client<typeof NotificationService>;
  nc: NatsConnection;
  /**
   * Publishes an event the way the kit relay does (ce-* headers, Nats-Msg-Id = event id). `msgId`
   * overrides the dedup id (to redeliver the same event), `data` the payload, `headers` adds some.
   */
  publish<Desc extends DescMessage>(
    schema: Desc,
    message: MessageShape<Desc>,
    opts?: { eventId?: string; msgId?: string; data?: Uint8Array; headers?: Record<string, string> },
  ): Promise<string>;
  /** Resolves once the durable consumer has nothing pending and nothing unacknowledged. */
  consumerIdle(stream: string, durable: string): Promise<void>;
  /** Everything the service logged (debug level), as raw JSON lines. */
  logs(): string;
  /** Restarts the service process-internally with the same infrastructure. */
  restart(env?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

/** Environment for fast tests: short retry delays, a short per-recipient interval. */
export const FAST_ENV: Record<string, string> = {
  DELIVERY_POLL_MS: "50",
  DELIVERY_RETRY_BASE_MS: "100",
  DELIVERY_RETRY_MAX_MS: "500",
  EVENT_BACKOFF_MS: "50",
  EVENT_MAX_DELIVER: "3",
  RECIPIENT_INTERVAL_MS: "1500",
};

export async function startTestNotifications(env: Record<string, string> = {}): Promise<TestNotifications> {
  const [database, redis, nats, smtp, issuer] = await Promise.all([
    createTestDatabase("notifications"),
    startRedis(),
    startNats(),
    startMailReceiver(),
    createTokenIssuer(),
  ]);
  const baseEnv = {
    PORT: "0",
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    NATS_URL: nats.url,
    SMTP_URL: smtp.url,
    ...FAST_ENV,
    ...env,
  };
  const logLines: string[] = [];
  const echo = process.env["TEST_LOG"] === "1";
  const logger = createLogger("notifications", {
    level: "debug",
    destination: {
      write(line: string) {
        logLines.push(line);
        if (echo) process.stdout.write(line);
      },
    },
  });
  const start = (extra: Record<string, string> = {}) =>
    startNotificationsServer({
      config: loadConfig({ ...baseEnv, ...extra }),
      logger,
      host: "127.0.0.1",
      verifier: issuer.verifier,
    });
  let server = await start();
  const nc = await connect({ servers: nats.url });
  const js = jetstream(nc);
  const clientOf = <S extends typeof NotificationService | typeof PersonalDataService>(
    service: S,
    token: (() => Promise<string>) | undefined,
  ): Client<S> =>
    createClient(
      service,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        interceptors: token === undefined ? [] : [bearer(token)],
      }),
    );
  const adminId = randomUUID();
  const t: TestNotifications = {
    get server() {
      return server;
    },
    database,
    redis,
    nats,
    smtp,
    issuer,
    // Getters: a client is bound to the server's URL, which `restart()` changes.
    get admin() {
      return clientOf(NotificationService, () => issuer.user(adminId, ["admin"]));
    },
    get service() {
      return clientOf(NotificationService, () => issuer.service("auth"));
    },
    get privacy() {
      return clientOf(PersonalDataService, () => issuer.service("users"));
    },
    clientAs: (roles) =>
      clientOf(NotificationService, roles === undefined ? undefined : () => issuer.user(randomUUID(), roles)),
    nc,
    async publish(schema, message, opts = {}) {
      const eventId = opts.eventId ?? uuidv7();
      const stream = schema.typeName.startsWith("zero.payments.")
        ? { name: "ZERO_PAYMENTS", subjects: ["zero.payments.v1.>"] }
        : { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] };
      await ensureStream(nc, stream);
      const h = natsHeaders();
      h.set("ce-specversion", "1.0");
      h.set("ce-id", eventId);
      h.set("ce-type", schema.typeName);
      h.set("ce-source", "zero.test");
      h.set("content-type", "application/protobuf");
      for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
      await js.publish(schema.typeName, opts.data ?? toBinary(schema, message), {
        headers: h,
        msgID: opts.msgId ?? eventId,
      });
      return eventId;
    },
    async consumerIdle(stream, durable) {
      const jsm = await jetstreamManager(nc);
      await waitFor(`${durable} to be idle`, async () => {
        const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
        return info !== undefined && info.num_pending === 0 && info.num_ack_pending === 0;
      });
    },
    logs: () => logLines.join(""),
    async restart(extra) {
      await server.close(2000);
      server = await start(extra);
    },
    async close() {
      await server.close(2000).catch(() => undefined);
      await nc.close();
      await smtp.stop();
      await Promise.all([nats.stop(), redis.stop()]);
      await database.drop();
    },
  };
  return t;
}

// ---------------------------------------------------------------------------------------------
// Builders and polling.

export function aUserRegistered(
  overrides: Partial<MessageInitShape<typeof UserRegisteredSchema>> = {},
): MessageShape<typeof UserRegisteredSchema> {
  const id = uuidv7();
  return create(UserRegisteredSchema, {
    userId: id,
    email: `user-${id}@example.com`,
    firstName: "Ada",
    lastName: "Lovelace",
    registerTime: timestampNow(),
    ...overrides,
  });
}

/** Polls `probe` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
