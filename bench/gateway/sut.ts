import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ExportResult } from "@opentelemetry/core";
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import pino from "pino";
import type { JWK } from "jose";
import { startEchoServer } from "@zero/echo/echo-server";
import { startGateway } from "@zero/gateway/gateway-server";
import { createLogger } from "@zero/kit/log";
import { createTokenVerifier, type TokenVerifier } from "@zero/kit/principal";
import { startTelemetry } from "@zero/kit/telemetry";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";

// One process of the system under test, started (pinned) by run.ts:
//   node --import tsx sut.ts <hello|echo|gateway> '<options JSON>'
// It prints `READY <url>` once it serves, and runs until SIGTERM.

export interface SutOptions {
  /** The test signing key's public JWK (echo and gateway verify tokens with it). */
  jwk?: JWK;
  /** gateway: where echo listens. */
  echoUrl?: string;
  /**
   * gateway: verify tokens at the edge for real (JWKS + cache) instead of trusting them, and, as in
   * production (TOKEN_REVOCATION_CHECK=true), look each one up in auth's revocation list here.
   */
  auth?: boolean;
  revocationRedisUrl?: string;
  /** gateway: rate limiting in this Redis (limits set so high nothing is refused). */
  redisUrl?: string;
  /** gateway: the OpenTelemetry SDK with a batch span processor (spans made and exported). */
  tracing?: boolean;
}

const [role = "", optionsJson = "{}"] = process.argv.slice(2);
const opts = JSON.parse(optionsJson) as SutOptions;
// Production logging (sync JSON lines, access log on) into the void: the bench measures their cost.
const logger = createLogger(role, {
  level: "info",
  destination: pino.destination({ dest: "/dev/null", sync: true }),
});

/** Spans are made, batched and handed over; only the network send is left out. */
class DiscardingExporter implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.exported += spans.length;
    done({ code: 0 });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function jwksVerifier(): TokenVerifier {
  const keys = opts.jwk === undefined ? [] : [opts.jwk];
  return createTokenVerifier({
    issuer: "zero-auth",
    audience: "zero",
    getJwks: () => Promise.resolve({ keys }),
  });
}

/** "Authentication off" at the edge: any token is taken at its word (the echo service still checks). */
const trustingVerifier: TokenVerifier = {
  verify: () => Promise.resolve({ subject: "bench-user", roles: ["customer"], kind: "user" }),
};

async function start(): Promise<string> {
  switch (role) {
    case "hello": {
      const body = '{"message":"hello"}';
      const server = http.createServer((req, res) => {
        req.resume();
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
          res.end(body);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
    case "echo":
      return (await startEchoServer({ logger, verifier: jwksVerifier(), port: 0, host: "127.0.0.1" })).url;
    case "gateway": {
      if (opts.tracing) {
        startTelemetry({
          serviceName: "gateway",
          spanProcessors: [new BatchSpanProcessor(new DiscardingExporter())],
        });
      }
      const gateway = await startGateway({
        services: [EchoService],
        upstreamUrls: { testing: opts.echoUrl ?? "" },
        logger,
        port: 0,
        host: "127.0.0.1",
        verifier: opts.auth ? jwksVerifier() : trustingVerifier,
        tokenCache: opts.auth ? {} : false,
        ...(opts.auth && opts.revocationRedisUrl !== undefined
          ? { tokenRevocation: { redisUrl: opts.revocationRedisUrl, accessTokenTtlSeconds: 900 } }
          : {}),
        ...(opts.redisUrl === undefined
          ? {}
          : {
              rateLimit: {
                redisUrl: opts.redisUrl,
                limits: { default: { limit: 1_000_000_000, periodMs: 60_000 }, routes: [], users: {} },
              },
            }),
        resilience: { healthCheckIntervalMs: 5_000 },
      });
      return gateway.url;
    }
    default:
      throw new Error(`unknown role "${role}": use hello, echo or gateway`);
  }
}

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
process.stdout.write(`READY ${await start()}\n`);
