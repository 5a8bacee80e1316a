import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { tracingClientInterceptor } from "./tracing.js";

// A service's own identity for calls to other services' INTERNAL methods. The service exchanges
// its client id and secret (`SERVICE_CLIENT_SECRET`) with auth for a short-lived service token,
// reuses it until shortly before it expires, and sends it as a bearer token. The secret goes to
// auth only, never to the service being called: a compromised callee learns a token that dies in
// minutes, not the credential.

export interface ServiceTokenSource {
  /** A valid service token, fetched from auth when there is none or it is about to expire. */
  token(): Promise<string>;
  /** Forgets the cached token: the next `token()` fetches a new one (after a callee refused it). */
  invalidate(): void;
}

export interface ServiceTokenSourceOptions {
  /** auth's base URL, e.g. `http://127.0.0.1:9001` (`AUTH_URL`). */
  authUrl: string;
  /** This service's name, e.g. `payments`. */
  clientId: string;
  /** This service's `SERVICE_CLIENT_SECRET`. */
  clientSecret: string;
  /** How long before expiry a token is replaced (default 60 s, at most half its lifetime). */
  refreshBeforeExpiryMs?: number;
  /** Overrides the transport to auth (tests). Default: Connect over HTTP/1.1, traced. */
  transport?: Transport;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

const DEFAULT_REFRESH_BEFORE_EXPIRY_MS = 60_000;
// A fetch that hangs must not hold every outgoing call of the service hostage.
const FETCH_TIMEOUT_MS = 5_000;

export function createServiceTokenSource(opts: ServiceTokenSourceOptions): ServiceTokenSource {
  if (opts.clientId === "" || opts.clientSecret === "") {
    throw new Error("createServiceTokenSource: clientId and clientSecret are required");
  }
  const now = opts.now ?? Date.now;
  const refreshBefore = opts.refreshBeforeExpiryMs ?? DEFAULT_REFRESH_BEFORE_EXPIRY_MS;
  const client = createClient(
    ServiceIdentityService,
    opts.transport ??
      createConnectTransport({
        baseUrl: opts.authUrl,
        httpVersion: "1.1",
        interceptors: [tracingClientInterceptor],
      }),
  );

  let cached: { token: string; expiresAt: number; renewAt: number } | undefined;
  let inflight: Promise<string> | undefined;

  const fetchToken = (): Promise<string> => {
    // Concurrent callers share one request to auth.
    inflight ??= (async () => {
      try {
        const issuedAt = now();
        const res = await client.issueServiceToken(
          { clientId: opts.clientId, clientSecret: opts.clientSecret },
          { timeoutMs: FETCH_TIMEOUT_MS },
        );
        const lifetimeMs = res.expiresIn * 1000;
        cached = {
          token: res.accessToken,
          expiresAt: issuedAt + lifetimeMs,
          renewAt: issuedAt + lifetimeMs - Math.min(refreshBefore, lifetimeMs / 2),
        };
        return res.accessToken;
      } catch (error) {
        // Renewal failed while the old token still has time left: keep using it (auth may be
        // restarting) rather than failing every outgoing call now.
        if (cached !== undefined && now() < cached.expiresAt - 1000) return cached.token;
        const cause = ConnectError.from(error);
        throw new ConnectError(
          `could not obtain a service token for "${opts.clientId}" from auth: ${cause.rawMessage}`,
          // Refused credentials are a deployment problem of this service, not the caller's fault.
          Code.Unavailable,
          undefined,
          undefined,
          cause,
        );
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  return {
    token() {
      if (cached !== undefined && now() < cached.renewAt) return Promise.resolve(cached.token);
      return fetchToken();
    },
    invalidate() {
      cached = undefined;
    },
  };
}

/**
 * A Connect client interceptor that sends the service token as `authorization: Bearer …`. Add it to
 * the transport of every client that calls INTERNAL methods. When the callee answers
 * `unauthenticated`, the token is dropped so the next call fetches a fresh one.
 */
export function serviceAuthInterceptor(source: ServiceTokenSource): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${await source.token()}`);
    try {
      return await next(req);
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unauthenticated) source.invalidate();
      throw error;
    }
  };
}
