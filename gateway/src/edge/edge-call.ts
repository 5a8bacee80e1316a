/**
 * What the edge established about one client request, for the upstream call made on its behalf:
 * the client's own deadline, where it really comes from, and whether its HTTP method is safe to
 * repeat. The gateway files it under the request's abort signal — the one value every handler
 * hands to the upstream transport — so REST calls carry it without the handlers threading it.
 */
export interface EdgeCall {
  /** From `connect-timeout-ms` / `grpc-timeout`; undefined when the client set no deadline. */
  readonly clientTimeoutMs: number | undefined;
  /** The resolved client IP (trusted-proxy aware): what services get as `x-forwarded-for`. */
  readonly clientIp: string;
  readonly proto: string;
  readonly host: string | undefined;
  /** GET/HEAD: a retry cannot change anything, whatever the RPC's idempotency option says. */
  readonly safeHttpMethod: boolean;
}

export type EdgeCallLookup = (signal: AbortSignal | undefined) => EdgeCall | undefined;

export interface EdgeCalls {
  readonly lookup: EdgeCallLookup;
  register(signal: AbortSignal, call: EdgeCall): void;
}

export function createEdgeCalls(): EdgeCalls {
  // Kept on the signal itself (a key only this module knows), so an entry lives exactly as long as
  // its request's signal — what a WeakMap would give, without an ephemeron per request for the GC.
  const key: unique symbol = Symbol("edgeCall");
  interface Filed {
    [key]?: EdgeCall;
  }
  return {
    lookup: (signal) => (signal === undefined ? undefined : (signal as Filed)[key]),
    register: (signal, call) => {
      (signal as Filed)[key] = call;
    },
  };
}
