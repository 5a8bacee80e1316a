import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { zeroServices } from "./public-services.js";

export { zeroServices } from "./public-services.js";

/** A bearer token, or a function that returns the current one (called before every call). */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface ZeroClientOptions {
  /** The gateway, e.g. `http://localhost:8080` (or `https://…`). */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>` unless a call sets its own authorization header. */
  token?: TokenSource;
  /** Run on every call, after the token is attached (logging, retries, extra headers, …). */
  interceptors?: Interceptor[];
  /** Wire protocol; default `connect`. gRPC always uses HTTP/2. */
  protocol?: "connect" | "grpc" | "grpc-web";
  /** Default `2` for gRPC, `1.1` otherwise (the gateway speaks both on one port). */
  httpVersion?: "1.1" | "2";
  /** The CA certificate (PEM) of an `https://` gateway whose certificate no public CA signed. */
  ca?: string | Buffer;
  /** Default deadline of every call, in ms (sent to the service as its deadline); none by default. */
  defaultTimeoutMs?: number;
}

/** A typed Connect client for every service the gateway routes, plus the transport they share. */
export type ZeroClient = {
  readonly [K in keyof typeof zeroServices]: Client<(typeof zeroServices)[K]>;
} & {
  /** The transport under every client: pass it to `createClient` for anything else. */
  readonly transport: Transport;
  /** A client for any service descriptor (the same transport, token and interceptors). */
  client<S extends DescService>(service: S): Client<S>;
};

/**
 * One call for everything Zero's gateway serves:
 *
 * ```ts
 * const zero = createZeroClient({ baseUrl: "http://localhost:8080", token: () => session.accessToken });
 * const { user } = await zero.auth.getMe({});
 * ```
 */
export function createZeroClient(opts: ZeroClientOptions): ZeroClient {
  const protocol = opts.protocol ?? "connect";
  const interceptors = [
    ...(opts.token === undefined ? [] : [bearerTokenInterceptor(opts.token)]),
    ...(opts.interceptors ?? []),
  ];
  const common = {
    baseUrl: opts.baseUrl,
    interceptors,
    ...(opts.ca === undefined ? {} : { nodeOptions: { ca: opts.ca } }),
    ...(opts.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: opts.defaultTimeoutMs }),
  };
  const httpVersion = protocol === "grpc" ? "2" : (opts.httpVersion ?? "1.1");
  const transport =
    protocol === "grpc"
      ? createGrpcTransport(common)
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ ...common, httpVersion })
        : createConnectTransport({ ...common, httpVersion });

  const clients = Object.fromEntries(
    Object.entries(zeroServices).map(([key, service]) => [key, createClient(service, transport)]),
  );
  return {
    ...clients,
    transport,
    client: (service) => createClient(service, transport),
  } as ZeroClient;
}

/** Adds `authorization: Bearer <token>` from a string or a (possibly async) getter. */
export function bearerTokenInterceptor(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("authorization")) {
      const value = typeof token === "function" ? await token() : token;
      if (value !== undefined && value !== "") req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}
