import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createLogger } from "@zero/kit/log";
import { createTokenVerifier } from "@zero/kit/principal";
import { createTokenRevocations, withRevocationCheck } from "@zero/kit/token-revocations";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { startNats } from "@zero/testkit/nats";
import { freePort } from "@zero/testkit/ports";
import { createTestDatabase } from "@zero/testkit/postgres";
import { startRedis } from "@zero/testkit/redis";
import { exportJWK, generateKeyPair } from "jose";
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { connectRedis } from "../../services/auth/src/auth-server.js";
import { defaultHashConcurrency } from "../../services/auth/src/config.js";
import { createPasswordHasher, OWASP_ARGON2 } from "../../services/auth/src/credentials/credentials.js";
import { createAccessTokenIssuer } from "../../services/auth/src/tokens/access-token.js";

// bench/auth — one run, every figure of issue 4's benchmark, on loopback with private
// infrastructure (a fresh database, private nats-server and redis-server), auth and the gateway
// each in their own process (so the load generator here does not share their event loops):
//   node --import tsx bench/auth/run.ts            (--quick: a short smoke run; --hash-slots=N)
// Prints a table and a JSON line; RESULTS.md records a run.
//
// 1. argon2 ceiling: cores ÷ time per hash (OWASP parameters) — the most sign-ins/s possible.
// 2. Login throughput through the gateway (closed loop) against that ceiling.
// 3. Other routes (JWKS, GetMe: verify + session check) alone, then during a login flood at the
//    sustainable login rate (the rate an edge limit should let through): ≥ 0.8× their throughput,
//    gateway event-loop delay p99 ≤ 50 ms.
// 4. Token issue and verify rates (one core, in-process), verify with the revocation check too.

const quick = process.argv.includes("--quick");
// `--hash-slots=N` overrides auth's AUTH_HASH_CONCURRENCY (default: cores − 1), to compare.
const slotsArg = process.argv.find((a) => a.startsWith("--hash-slots="))?.split("=")[1];
const PHASE_SECONDS = quick ? 3 : 8;
const ACCOUNTS = 20;
const PASSWORD = "benchmark passphrase of the accounts";
const logger = createLogger("bench-auth", { level: "warn" });
const here = fileURLToPath(new URL(".", import.meta.url));

interface Served {
  url: string;
  child: ChildProcess;
  eventLoop(): Promise<{ p50: number; p99: number; max: number }>;
  resetEventLoop(): Promise<void>;
  stop(): Promise<void>;
}

async function serve(
  role: "auth" | "gateway" | "gateway-limited",
  env: Record<string, string>,
): Promise<Served> {
  const child = fork(`${here}serve.ts`, [role], {
    execArgv: ["--import", "tsx"],
    env: { PATH: process.env["PATH"] ?? "", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = (type: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const onMessage = (m: Record<string, unknown>) => {
        if (m["type"] !== type) return;
        child.off("message", onMessage);
        resolve(m);
      };
      child.on("message", onMessage);
      child.once("exit", (code) => reject(new Error(`${role} exited (${code})`)));
    });
  const ready = await next("ready");
  return {
    url: ready["url"] as string,
    child,
    async eventLoop() {
      const reply = next("report");
      child.send({ type: "report" });
      return (await reply) as unknown as { p50: number; p99: number; max: number };
    },
    async resetEventLoop() {
      const reply = next("reset");
      child.send({ type: "reset" });
      await reply;
    },
    async stop() {
      const exited = once(child, "exit");
      child.send({ type: "stop" });
      await exited;
    },
  };
}

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
};
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

interface LoadResult {
  ok: number;
  failed: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** `concurrency` workers calling `request` back to back until `seconds` have passed. */
async function closedLoop(
  concurrency: number,
  seconds: number,
  request: (i: number) => Promise<boolean>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let failed = 0;
  let i = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const ok = await request(i++).catch(() => false);
        if (ok) latencies.push(performance.now() - t);
        else failed++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return {
    ok: latencies.length,
    failed,
    perSecond: round(latencies.length / elapsed),
    p50: round(percentile(latencies, 0.5)),
    p99: round(percentile(latencies, 0.99)),
  };
}

/** `request` started `perSecond` times a second whatever the answers take (at most 512 in flight). */
async function openLoop(
  perSecond: number,
  seconds: number,
  request: (i: number) => Promise<boolean>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let failed = 0;
  let sent = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    while (sent < due && inFlight < 512) {
      const t = performance.now();
      const index = sent++;
      inFlight++;
      const p: Promise<void> = request(index)
        .catch(() => false)
        .then((ok) => {
          if (ok) latencies.push(performance.now() - t);
          else failed++;
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  return {
    ok: latencies.length,
    failed,
    perSecond: round(latencies.length / elapsed),
    p50: round(percentile(latencies, 0.5)),
    p99: round(percentile(latencies, 0.99)),
  };
}

/** Operations per second of `work` run back to back, after a warm-up of a fifth as many. */
function rateOf(n: number, work: () => Promise<unknown>): Promise<number> {
  return (async () => {
    for (let i = 0; i < n / 5; i++) await work();
    const started = performance.now();
    for (let i = 0; i < n; i++) await work();
    return Math.round((n * 1000) / (performance.now() - started));
  })();
}

const database = await createTestDatabase("bench_auth");
const nats = await startNats();
const redis = await startRedis();
const [authPort, gatewayPort] = [await freePort(), await freePort()];
const auth = await serve("auth", {
  PORT: String(authPort),
  DATABASE_URL: database.url,
  NATS_URL: nats.url,
  REDIS_URL: redis.url,
  AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
  ...(slotsArg === undefined ? {} : { AUTH_HASH_CONCURRENCY: slotsArg }),
});
const gateway = await serve("gateway", { PORT: String(gatewayPort), AUTH_URL: auth.url });
const limitedGateway = await serve("gateway-limited", {
  PORT: String(await freePort()),
  AUTH_URL: auth.url,
  REDIS_URL: redis.url,
});

try {
  // 1. The argon2 ceiling, measured here with the service's own hasher and parameters.
  const cores = availableParallelism();
  const hasher = createPasswordHasher({ ...OWASP_ARGON2, maxConcurrent: 1 });
  const hash = await hasher.hash(PASSWORD);
  const hashMs: number[] = [];
  for (let i = 0; i < (quick ? 8 : 20); i++) {
    const t = performance.now();
    await hasher.verify(hash, PASSWORD);
    hashMs.push(performance.now() - t);
  }
  const msPerHash = round(percentile(hashMs, 0.5));
  const ceiling = round(cores / (msPerHash / 1000));
  // auth leaves a core to everything else (AUTH_HASH_CONCURRENCY defaults to cores − 1).
  const slots = slotsArg === undefined ? defaultHashConcurrency() : Number(slotsArg);
  const configuredCeiling = round(slots / (msPerHash / 1000));
  console.log(
    `argon2id m=19456 t=2 p=1: ${msPerHash} ms per hash → ceiling ${ceiling} sign-ins/s on ${cores} cores ` +
      `(${configuredCeiling}/s with auth's ${slots} hashing slot${slots === 1 ? "" : "s"})`,
  );

  // Accounts to sign in with.
  const direct = createClient(AuthService, createConnectTransport({ baseUrl: auth.url, httpVersion: "1.1" }));
  const emails: string[] = [];
  for (let i = 0; i < ACCOUNTS; i++) {
    const email = `bench-${i}-${Date.now()}@example.com`;
    await direct.register({ email, password: PASSWORD });
    emails.push(email);
  }
  const { accessToken } = await direct.login({ email: emails[0]!, password: PASSWORD });

  const login = async (i: number) => {
    const res = await fetch(`${gateway.url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: emails[i % ACCOUNTS], password: PASSWORD }),
    });
    await res.arrayBuffer();
    return res.status === 200;
  };
  const otherRoute = async (i: number) => {
    const res =
      i % 2 === 0
        ? await fetch(`${gateway.url}/v1/auth/jwks`)
        : await fetch(`${gateway.url}/v1/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    await res.arrayBuffer();
    return res.status === 200;
  };

  // 2. Login throughput (closed loop, enough callers to keep every hashing slot busy).
  await closedLoop(8, 1, login); // warm-up
  const logins = await closedLoop(16, PHASE_SECONDS, login);
  const loginRatio = round(logins.perSecond / ceiling, 2);
  const slotRatio = round(logins.perSecond / configuredCeiling, 2);
  console.log(
    `login through the gateway: ${logins.perSecond}/s (p50 ${logins.p50} ms, p99 ${logins.p99} ms, ${logins.failed} failed) ` +
      `= ${loginRatio}× the ${cores}-core argon2 ceiling, ${slotRatio}× the ceiling of auth's hashing slots`,
  );

  // 3. Other routes alone, then during a login flood at the sustainable login rate.
  await gateway.resetEventLoop();
  const alone = await closedLoop(8, PHASE_SECONDS, otherRoute);
  const eventLoopAlone = await gateway.eventLoop();
  await gateway.resetEventLoop();
  await auth.resetEventLoop();
  const floodRate = Math.max(1, Math.round(logins.perSecond));
  const [during, flood] = await Promise.all([
    closedLoop(8, PHASE_SECONDS, otherRoute),
    openLoop(floodRate, PHASE_SECONDS, login),
  ]);
  const eventLoopFlood = await gateway.eventLoop();
  const authLoopFlood = await auth.eventLoop();
  const keep = round(during.perSecond / alone.perSecond, 2);
  console.log(
    `other routes (JWKS + GetMe) alone: ${alone.perSecond}/s (p99 ${alone.p99} ms); gateway event loop p99 ${eventLoopAlone.p99} ms`,
  );
  console.log(
    `during a login flood at ${floodRate}/s (${flood.perSecond}/s served, ${flood.failed} refused, p99 ${flood.p99} ms): ` +
      `${during.perSecond}/s (p99 ${during.p99} ms) = ${keep}× (target ≥ 0.8); ` +
      `gateway event loop p99 ${eventLoopFlood.p99} ms (target ≤ 50), auth's ${authLoopFlood.p99} ms`,
  );

  // 3b. The same flood at the edge's login rate limit: the production gateway (Redis rate limits,
  // revocation check) refuses what exceeds */Login's 10/min with 429 before it reaches argon2.
  const limitedOther = async (i: number) => {
    const res =
      i % 2 === 0
        ? await fetch(`${limitedGateway.url}/v1/auth/jwks`)
        : await fetch(`${limitedGateway.url}/v1/auth/me`, {
            headers: { authorization: `Bearer ${accessToken}` },
          });
    await res.arrayBuffer();
    return res.status === 200;
  };
  const limitedLogin = async (i: number) => {
    const res = await fetch(`${limitedGateway.url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: emails[i % ACCOUNTS], password: PASSWORD }),
    });
    await res.arrayBuffer();
    return res.status === 200;
  };
  const limitedAlone = await closedLoop(8, PHASE_SECONDS, limitedOther);
  await limitedGateway.resetEventLoop();
  const limitedFloodRate = floodRate * 4;
  const [limitedDuring, limitedFlood] = await Promise.all([
    closedLoop(8, PHASE_SECONDS, limitedOther),
    openLoop(limitedFloodRate, PHASE_SECONDS, limitedLogin),
  ]);
  const limitedLoop = await limitedGateway.eventLoop();
  console.log(
    `production edge (rate limits + revocation): other routes alone ${limitedAlone.perSecond}/s; during a login flood at ${limitedFloodRate}/s ` +
      `(${limitedFlood.perSecond}/s served, ${limitedFlood.failed} refused): ${limitedDuring.perSecond}/s = ` +
      `${round(limitedDuring.perSecond / limitedAlone.perSecond, 2)}× (target ≥ 0.8); gateway event loop p99 ${limitedLoop.p99} ms (target ≤ 50)`,
  );

  // 4. Token issue and verify rates.
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k", alg: "EdDSA", use: "sig" }] };
  const issuer = createAccessTokenIssuer({
    issuer: "zero-auth",
    audience: "zero",
    ttlSeconds: 900,
    signingKey: () => Promise.resolve({ kid: "k", privateKey: privateKey as never }),
  });
  const subject = {
    userId: "0190b7a2-0000-7000-8000-000000000000",
    email: "a@example.com",
    roles: ["customer"],
    sessionId: "0190b7a2-0000-7000-8000-000000000001",
    twoFactor: false,
  };
  const n = quick ? 1000 : 5000;
  const issuePerSecond = await rateOf(n, () => issuer.issueUserToken(subject));
  const { token } = await issuer.issueUserToken(subject);
  const verifier = createTokenVerifier({
    issuer: "zero-auth",
    audience: "zero",
    getJwks: () => Promise.resolve(jwks),
  });
  const verifyPerSecond = await rateOf(n, () => verifier.verify(token));
  const client = connectRedis(redis.url, logger);
  await once(client, "ready");
  const revocations = createTokenRevocations({ redis: client, accessTokenTtlSeconds: 900, logger });
  const checked = withRevocationCheck(verifier, (claims) => revocations.isRevoked(claims));
  const checkedPerSecond = await rateOf(n, () => checked.verify(token));
  client.disconnect();
  console.log(
    `tokens (one core): issue ${issuePerSecond}/s, verify ${verifyPerSecond}/s, verify + revocation check ${checkedPerSecond}/s`,
  );

  console.log(
    JSON.stringify({
      quick,
      cores,
      msPerHash,
      ceiling,
      configuredCeiling,
      loginPerSecond: logins.perSecond,
      loginRatio,
      slotRatio,
      otherAlone: alone.perSecond,
      otherDuringFlood: during.perSecond,
      keepRatio: keep,
      gatewayEventLoopP99: eventLoopFlood.p99,
      authEventLoopP99: authLoopFlood.p99,
      issuePerSecond,
      verifyPerSecond,
      checkedPerSecond,
    }),
  );
} finally {
  await gateway.stop().catch(() => undefined);
  await limitedGateway.stop().catch(() => undefined);
  await auth.stop().catch(() => undefined);
  await redis.stop();
  await nats.stop();
  await database.drop();
}
