import {
  create,
  fromBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type MsgHdrs } from "@nats-io/transport-node";
import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import { createLogger } from "@zero/kit/log";
import { startServer, type Server } from "@zero/kit/server";
import { AuthService, RegisterRequestSchema, type RegisterRequest } from "@zero/proto/zero/auth/v1/auth_pb";
import { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { SessionService } from "@zero/proto/zero/auth/v1/session_pb";
import { SigningKeyService } from "@zero/proto/zero/auth/v1/signing_keys_pb";
import { TwoFactorService } from "@zero/proto/zero/auth/v1/two_factor_pb";
import { UserAdminService } from "@zero/proto/zero/auth/v1/user_admin_pb";
import {
  NotificationService,
  type SendTransactionalEmailRequest,
} from "@zero/proto/zero/notifications/v1/notifications_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
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

/** Sets `authorization: Bearer <token>` (and optional forwarded headers) on every call. */
export function bearer(token: string, headers: Record<string, string> = {}): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
}

export interface Clients {
  auth: Client<typeof AuthService>;
  sessions: Client<typeof SessionService>;
  twoFactor: Client<typeof TwoFactorService>;
  admin: Client<typeof UserAdminService>;
  signingKeys: Client<typeof SigningKeyService>;
  serviceIdentity: Client<typeof ServiceIdentityService>;
  personalData: Client<typeof PersonalDataService>;
}

export function clientsFor(transport: Transport): Clients {
  return {
    auth: createClient(AuthService, transport),
    sessions: createClient(SessionService, transport),
    twoFactor: createClient(TwoFactorService, transport),
    admin: createClient(UserAdminService, transport),
    signingKeys: createClient(SigningKeyService, transport),
    serviceIdentity: createClient(ServiceIdentityService, transport),
    personalData: createClient(PersonalDataService, transport),
  };
}

export interface TestAuth {
  server: AuthServer;
  /** Anonymous AuthService client (Connect over HTTP/1.1). */
  client: Client<typeof AuthService>;
  database: TestDatabase;
  nats: TestNats;
  redis: TestRedis;
  /** AUTH_KEY_ENCRYPTION_KEY (base64): lets attack tests sign with auth's own key. */
  keyEncryptionKey: string;
  /** Mails auth sent through the notifications fake (when started with `notifications: true`). */
  mails: SendTransactionalEmailRequest[];
  /** Clients sending `token` as bearer, plus extra headers (x-forwarded-for, user-agent). */
  as(token: string, headers?: Record<string, string>): Clients;
  /** Anonymous clients with extra headers. */
  anonymous(headers?: Record<string, string>): Clients;
  /** Registers an account and signs in: its tokens and user. */
  signUp(overrides?: Partial<MessageInitShape<typeof RegisterRequestSchema>>): Promise<SignedIn>;
  /** Stops the service, then its servers and database. */
  close(): Promise<void>;
}

export interface SignedIn {
  email: string;
  password: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
}

/**
 * The service in-process on a free port, over its own fresh database and private NATS and Redis
 * servers. With `notifications`, a stand-in NotificationService (a real Connect server checking
 * auth's service token with the kit's verifier) records the transactional mails.
 */
export async function startTestAuth(
  env: Record<string, string> = {},
  opts: { notifications?: boolean } = {},
): Promise<TestAuth> {
  const database = await createTestDatabase("auth");
  const started: { stop(): Promise<void> }[] = [];
  const mails: SendTransactionalEmailRequest[] = [];
  try {
    const nats = await startNats();
    started.push(nats);
    const redis = await startRedis();
    started.push(redis);
    let authUrl = "";
    let notifications: Server | undefined;
    if (opts.notifications) {
      notifications = await startNotificationsFake(() => authUrl, mails);
      const fake = notifications;
      started.push({ stop: () => fake.close(1000) });
    }
    const keyEncryptionKey = env["AUTH_KEY_ENCRYPTION_KEY"] ?? aKeyEncryptionKey();
    const config = loadConfig({
      PORT: "0",
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      AUTH_KEY_ENCRYPTION_KEY: keyEncryptionKey,
      ...(notifications === undefined ? {} : { NOTIFICATIONS_URL: notifications.url }),
      ...env,
    });
    const server = await startAuthServer({
      config,
      logger: createLogger("auth", { level: "silent" }),
      host: "127.0.0.1",
    });
    authUrl = server.url;
    const transport = (interceptors: Interceptor[]) =>
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors });
    const auth: TestAuth = {
      server,
      client: createClient(AuthService, transport([])),
      database,
      nats,
      redis,
      keyEncryptionKey,
      mails,
      as: (token, headers = {}) => clientsFor(transport([bearer(token, headers)])),
      anonymous: (headers = {}) =>
        clientsFor(
          transport([
            (next) => (req) => {
              for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
              return next(req);
            },
          ]),
        ),
      async signUp(overrides = {}) {
        const registration = aRegistration(overrides);
        const { user } = await auth.client.register(registration);
        const login = await auth.client.login({ email: registration.email, password: registration.password });
        return {
          email: registration.email,
          password: registration.password,
          userId: user!.id,
          accessToken: login.accessToken,
          refreshToken: login.refreshToken,
        };
      },
      async close() {
        await server.close(2000);
        for (const s of started.reverse()) await s.stop();
        await database.drop();
      },
    };
    return auth;
  } catch (error) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await database.drop();
    throw error;
  }
}

/** The notifications service's RPC as auth sees it: INTERNAL, so only auth's service token gets in. */
async function startNotificationsFake(
  authUrl: () => string,
  mails: SendTransactionalEmailRequest[],
): Promise<Server> {
  const toAuth: Transport = {
    // Resolved per call: auth starts after this server (it needs this URL in its config).
    unary: (...args) => createConnectTransport({ baseUrl: authUrl(), httpVersion: "1.1" }).unary(...args),
    stream: (...args) => createConnectTransport({ baseUrl: authUrl(), httpVersion: "1.1" }).stream(...args),
  };
  return startServer({
    name: "notifications-fake",
    host: "127.0.0.1",
    port: 0,
    logger: createLogger("notifications-fake", { level: "silent" }),
    services: [NotificationService],
    verifier: createAuthTokenVerifier({ transport: toAuth, issuer: "zero-auth", audience: "zero" }),
    // Only the method auth calls; the router answers the others `unimplemented`.
    routes: (router) =>
      router.service(NotificationService, {
        sendTransactionalEmail(req) {
          mails.push(req);
          return Promise.resolve({});
        },
      }),
  });
}

/** Waits for the mail matching `predicate` (mails leave in the background). */
export async function waitForMail(
  auth: TestAuth,
  predicate: (mail: SendTransactionalEmailRequest) => boolean,
  timeoutMs = 10_000,
): Promise<SendTransactionalEmailRequest> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mail = auth.mails.find(predicate);
    if (mail) return mail;
    if (Date.now() > deadline) throw new Error(`no matching mail within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The call's ConnectError; fails the test when the call succeeds. */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

export interface PublishedEvent<T> {
  subject: string;
  headers: MsgHdrs;
  data: Uint8Array;
  event: T;
}

/** Waits until the ZERO_AUTH stream holds events of `schema` matching `predicate` and decodes them. */
export async function waitForEvents<Desc extends DescMessage>(
  natsUrl: string,
  schema: Desc,
  predicate: (event: MessageShape<Desc>) => boolean,
  timeoutMs = 10_000,
): Promise<PublishedEvent<MessageShape<Desc>>[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found: PublishedEvent<MessageShape<Desc>>[] = [];
      const info = await jsm.streams.info("ZERO_AUTH").catch(() => undefined);
      if (info && info.state.messages > 0) {
        for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
          const msg = await jsm.streams.getMessage("ZERO_AUTH", { seq });
          if (!msg || msg.subject !== schema.typeName) continue;
          const event = fromBinary(schema, msg.data);
          if (predicate(event))
            found.push({ subject: msg.subject, headers: msg.header, data: msg.data, event });
        }
      }
      if (found.length > 0) return found;
      if (Date.now() > deadline) throw new Error(`no ${schema.typeName} on ZERO_AUTH within ${timeoutMs} ms`);
      await sleep(100);
    }
  } finally {
    await nc.close();
  }
}
