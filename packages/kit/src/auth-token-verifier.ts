import { toJson } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuthService, JwkSchema } from "@zero/proto/zero/auth/v1/auth_pb";
import type { JWK } from "jose";
import { createTokenVerifier, type TokenVerifier } from "./principal.js";
import { tracingClientInterceptor } from "./tracing.js";
import type { VerifiedTokenCacheOptions } from "./verified-token-cache.js";

export type AuthTokenVerifierOptions = {
  issuer: string;
  audience: string;
  /** The verified-token cache (default on: 10 000 tokens, each until its `exp`); `false` turns it off. */
  cache?: VerifiedTokenCacheOptions | false;
} & (
  | {
      /** auth's base URL (`AUTH_URL`): reached with Connect over HTTP/1.1, traced. */
      authUrl: string;
    }
  | {
      /** A transport to auth the service already has (e.g. a shared HTTP/2 session it closes itself). */
      transport: Transport;
    }
);

/**
 * The token verifier of a service other than auth: access tokens are verified locally with the keys
 * auth publishes (`GetJwks`, fetched lazily, cached, refetched on rotation by the kit verifier), so
 * no request waits on a call to auth; a token already verified is answered from the verifier's
 * cache without a second signature check.
 */
export function createAuthTokenVerifier(opts: AuthTokenVerifierOptions): TokenVerifier {
  const transport =
    "transport" in opts
      ? opts.transport
      : createConnectTransport({
          baseUrl: opts.authUrl,
          httpVersion: "1.1",
          interceptors: [tracingClientInterceptor],
        });
  const auth = createClient(AuthService, transport);
  return createTokenVerifier({
    issuer: opts.issuer,
    audience: opts.audience,
    ...(opts.cache === undefined ? {} : { cache: opts.cache }),
    getJwks: async () => {
      const response = await auth.getJwks({}, { timeoutMs: 5_000 });
      return { keys: response.keys.map((key) => toJson(JwkSchema, key) as JWK) };
    },
  });
}
