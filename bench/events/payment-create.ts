import { randomBytes, randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Logger } from "@zero/kit/log";
import { createTokenVerifier, requirePrincipal } from "@zero/kit/principal";
import { startServer } from "@zero/kit/server";
import { loadConfig } from "@zero/payments/config";
import { parseCreatePayment } from "@zero/payments/payment-input";
import { newPaymentRow } from "@zero/payments/new-payment";
import { insertPayment } from "@zero/payments/payment-store";
import { toPayment } from "@zero/payments/payment-view";
import { startPaymentsServer } from "@zero/payments/payments-server";
import { PaymentMethod, PaymentService } from "@zero/proto/zero/payments/v1/payments_pb";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { rate, round } from "./stats.js";

// Payment-create throughput of the real CreatePayment (validation, the payment, its PaymentCreated
// outbox row and the completed Idempotency-Key with the stored response in one statement, the
// relay publishing meanwhile) against a plain single-insert CreatePayment in the
// same process, framework, pool, authentication and validation — so the ratio is the price of
// idempotency + outbox. Connect binary over HTTP/2, `concurrency` calls in flight.

const ISSUER = "https://auth.zero.bench";

async function benchIssuer() {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench", alg: "EdDSA", use: "sig" };
  const verifier = createTokenVerifier({
    issuer: ISSUER,
    audience: "zero",
    getJwks: () => Promise.resolve({ keys: [jwk] }),
  });
  const token = await new SignJWT({ roles: ["customer"], email: "bench@example.com" })
    .setProtectedHeader({ alg: "EdDSA", kid: "bench" })
    .setSubject(randomUUID())
    .setIssuer(ISSUER)
    .setAudience("zero")
    .setExpirationTime("1h")
    .sign(privateKey);
  return { verifier, token };
}

async function load(
  client: Client<typeof PaymentService>,
  token: string,
  opts: { ms: number; concurrency: number; keys: boolean },
) {
  let done = 0;
  let failed = 0;
  const deadline = performance.now() + opts.ms;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (opts.keys) headers["idempotency-key"] = randomUUID();
      try {
        await client.createPayment(
          {
            amount: 1999n,
            currency: "EUR",
            method: PaymentMethod.CARD,
            description: "Order of two books",
            metadata: { cart: "c-42" },
          },
          { headers },
        );
        done++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  if (failed > 0) throw new Error(`${failed} CreatePayment calls failed`);
  return rate(done, performance.now() - started);
}

export async function measurePaymentCreate(opts: {
  databaseUrl: string;
  natsUrl: string;
  logger: Logger;
  seconds: number;
  concurrency: number;
}): Promise<{ withIdempotencyAndOutboxPerSec: number; plainInsertPerSec: number; ratio: number }> {
  const { verifier, token } = await benchIssuer();
  const config = loadConfig({
    PORT: "0",
    DATABASE_URL: opts.databaseUrl,
    NATS_URL: opts.natsUrl,
    LOG_LEVEL: "warn",
    PAYMENTS_WEBHOOK_SECRETS: randomBytes(24).toString("hex"),
  });
  const full = await startPaymentsServer({ config, logger: opts.logger, host: "127.0.0.1", verifier });
  const plain = await startServer({
    name: "payments-plain",
    host: "127.0.0.1",
    port: 0,
    logger: opts.logger,
    verifier,
    services: [PaymentService],
    routes: (router) =>
      router.service(PaymentService, {
        async createPayment(req, ctx) {
          const principal = requirePrincipal(ctx);
          const input = parseCreatePayment(req, undefined);
          const row = newPaymentRow(principal.subject, input, new Date());
          // The same statement as CreatePayment's, without its idempotency key and outbox CTEs.
          await insertPayment(full.db, row);
          return { payment: toPayment(row) };
        },
      }),
  });
  const client = (url: string) =>
    createClient(
      PaymentService,
      createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }),
    );
  const fullClient = client(full.url);
  const plainClient = client(plain.url);
  try {
    const ms = opts.seconds * 1000;
    // Warm both (JIT, pools, connections), then alternate so background load hits both alike.
    await load(plainClient, token, { ms: 1500, concurrency: opts.concurrency, keys: false });
    await load(fullClient, token, { ms: 1500, concurrency: opts.concurrency, keys: true });
    const plainRuns: number[] = [];
    const fullRuns: number[] = [];
    for (let round = 0; round < 2; round++) {
      plainRuns.push(await load(plainClient, token, { ms, concurrency: opts.concurrency, keys: false }));
      fullRuns.push(await load(fullClient, token, { ms, concurrency: opts.concurrency, keys: true }));
    }
    const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
    const withIdempotencyAndOutboxPerSec = mean(fullRuns);
    const plainInsertPerSec = mean(plainRuns);
    return {
      withIdempotencyAndOutboxPerSec,
      plainInsertPerSec,
      ratio: round(withIdempotencyAndOutboxPerSec / plainInsertPerSec, 2),
    };
  } finally {
    await plain.close(1000);
    await full.close(1000);
  }
}
