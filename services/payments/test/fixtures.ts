import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Writable } from "node:stream";
import {
  create,
  fromBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createLogger, type Logger } from "@zero/kit/log";
import {
  CreatePaymentRequestSchema,
  PaymentMethod,
  PaymentService,
  type CreatePaymentRequest,
} from "@zero/proto/zero/payments/v1/payments_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { loadConfig } from "../src/config.js";
import { startPaymentsServer, type PaymentsServer } from "../src/payments-server.js";
import type { ProviderEvent } from "../src/provider.js";
import { signWebhook } from "../src/webhook-signature.js";

/** A payment request that passes validation; override what a test is about. */
export function aPayment(
  overrides: Omit<MessageInitShape<typeof CreatePaymentRequestSchema>, "$typeName"> = {},
): CreatePaymentRequest {
  return create(CreatePaymentRequestSchema, {
    amount: 1999n,
    currency: "EUR",
    method: PaymentMethod.CARD,
    description: "Order of two books",
    metadata: { cart: "c-42" },
    ...overrides,
  });
}

export const aCard = (number = "4242424242424242") => ({
  number,
  expMonth: 12,
  expYear: new Date().getFullYear() + 2,
  cvc: "123",
});

export const WEBHOOK_SECRET = `whsec_${"a".repeat(40)}`;
export const OLD_WEBHOOK_SECRET = `whsec_${"b".repeat(40)}`;

/** Captures the service's log lines (JSON) so tests can search them. */
export function captureLogs(): { logger: Logger; text(): string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger("payments", { level: "debug", destination }), text: () => lines.join("") };
}

export interface TestPayments {
  server: PaymentsServer;
  database: TestDatabase;
  nats: TestNats;
  /** Signs the tokens the service trusts (a stand-in for auth). */
  issuer: TokenIssuer;
  /** A Connect client; pass `headers` per call (authorization, idempotency-key). */
  client: Client<typeof PaymentService>;
  /** A fresh user: id, token and the call options carrying the token. */
  user(opts?: { roles?: string[]; email?: string }): Promise<TestUser>;
  admin(): Promise<TestUser>;
  close(): Promise<void>;
}

export interface TestUser {
  id: string;
  token: string;
  /** Call options: `{ headers: { authorization } }`, plus an idempotency key when given. */
  as(idempotencyKey?: string): { headers: Record<string, string> };
}

/** The service in-process on a free port, over its own fresh database and private NATS server. */
export async function startTestPayments(
  opts: { env?: Record<string, string>; logger?: Logger; nats?: TestNats } = {},
): Promise<TestPayments> {
  const database = await createTestDatabase("payments");
  let nats: TestNats | undefined = opts.nats;
  try {
    nats ??= await startNats();
    const issuer = await createTokenIssuer();
    const config = loadConfig({
      PORT: "0",
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      PAYMENTS_WEBHOOK_SECRETS: WEBHOOK_SECRET,
      PAYMENTS_SETTLE_DELAY_MS: "100",
      ...opts.env,
    });
    const server = await startPaymentsServer({
      config,
      logger: opts.logger ?? createLogger("payments", { level: "silent" }),
      host: "127.0.0.1",
      verifier: issuer.verifier,
    });
    const client = createClient(
      PaymentService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const started = nats;
    const ownNats = opts.nats === undefined;
    const user = async (o: { roles?: string[]; email?: string } = {}): Promise<TestUser> => {
      const id = randomUUID();
      const token = await issuer.sign({
        sub: id,
        ...(o.roles === undefined ? {} : { roles: o.roles }),
        ...(o.email === undefined ? {} : { extra: { email: o.email } }),
      });
      return {
        id,
        token,
        as: (key) => ({
          headers: {
            authorization: `Bearer ${token}`,
            ...(key === undefined ? {} : { "idempotency-key": key }),
          },
        }),
      };
    };
    return {
      server,
      database,
      nats: started,
      issuer,
      client,
      user,
      admin: () => user({ roles: ["admin"] }),
      async close() {
        await server.close(2000);
        if (ownNats) await started.stop();
        await database.drop();
      },
    };
  } catch (error) {
    if (opts.nats === undefined) await nats?.stop();
    await database.drop();
    throw error;
  }
}

/** The ConnectError a call fails with (fails the test when it succeeds). */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

export const newKey = (): string => `key-${randomUUID()}`;

/** A provider webhook body as the simulated provider would send it. */
export function aProviderEvent(
  type: string,
  object: Partial<ProviderEvent["data"]["object"]> & { id: string },
  id = `evt_${randomBytes(8).toString("hex")}`,
): ProviderEvent {
  return {
    id,
    object: "event",
    type,
    created: Math.floor(Date.now() / 1000),
    data: {
      object: {
        object: "payment_intent",
        amount: 1999,
        currency: "eur",
        status: type === "payment_intent.succeeded" ? "succeeded" : "requires_payment_method",
        metadata: {},
        last_payment_error: null,
        ...object,
      },
    },
  };
}

/** The body bytes and signature header of an event, signed with `secrets` at `timestamp`. */
export function signed(
  event: unknown,
  opts: { secrets?: string[]; timestamp?: number } = {},
): { body: Uint8Array; signature: string } {
  const body = new TextEncoder().encode(JSON.stringify(event));
  return {
    body,
    signature: signWebhook(
      body,
      opts.secrets ?? [WEBHOOK_SECRET],
      opts.timestamp ?? Math.floor(Date.now() / 1000),
    ),
  };
}

/** Polls `read` until `done` holds (bounded: tests must hold on a loaded machine). */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `condition not met within ${timeoutMs} ms; last value: ${String(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)))}`,
      );
    await sleep(50);
  }
}

export interface StreamEvent<Desc extends DescMessage> {
  subject: string;
  headers: Record<string, string>;
  data: Uint8Array;
  event: MessageShape<Desc>;
}

/** Every message on ZERO_PAYMENTS (raw), read straight from the stream. */
export async function readPaymentStream(
  natsUrl: string,
): Promise<{ subject: string; headers: Record<string, string>; data: Uint8Array }[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info("ZERO_PAYMENTS").catch(() => undefined);
    if (!info || info.state.messages === 0) return [];
    const out: { subject: string; headers: Record<string, string>; data: Uint8Array }[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage("ZERO_PAYMENTS", { seq });
      if (!msg) continue;
      const headers: Record<string, string> = {};
      for (const k of msg.header?.keys() ?? []) headers[k] = msg.header.get(k);
      out.push({ subject: msg.subject, headers, data: msg.data });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** The events of one type on ZERO_PAYMENTS, decoded; waits until `count` of them match `where`. */
export async function waitForEvents<Desc extends DescMessage>(
  natsUrl: string,
  schema: Desc,
  where: (event: MessageShape<Desc>) => boolean,
  count = 1,
  timeoutMs = 15_000,
): Promise<StreamEvent<Desc>[]> {
  return eventually(
    async () =>
      (await readPaymentStream(natsUrl))
        .filter((m) => m.subject === schema.typeName)
        .map((m) => ({ ...m, event: fromBinary(schema, m.data) }))
        .filter((m) => where(m.event)),
    (found) => found.length >= count,
    timeoutMs,
  );
}
