import type { Transport } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import type { CircuitBreaker } from "./circuit-breaker.js";
import type { Http1Lane } from "./connect-unary-http1.js";

/** One process of a service (`AUTH_URL=http://a:9001,http://b:9001` gives two). */
export interface UpstreamInstance {
  readonly url: string;
  /** Its HTTP/2 connection, shared by every call the gateway sends it. */
  readonly sessions: Http2SessionManager;
  /** A few HTTP/1.1 connections for unary calls while few are in flight (cleartext instances). */
  readonly http1?: Http1Lane;
  /** connect-node over that connection: health checks and server-streaming calls. */
  readonly transport: Transport;
  readonly breaker: CircuitBreaker;
  /** What its last `grpc.health.v1` check said (true until the first check). */
  serving: boolean;
}

export interface UpstreamPool {
  readonly instances: readonly UpstreamInstance[];
  /**
   * The next instance in round-robin order that may take a call, skipping those in `tried`:
   * healthy with a closed circuit first; when health checks eject every instance, any whose
   * circuit lets calls through (health checks can be wrong, a closed circuit has evidence).
   * Claims the half-open probe of the instance it returns. Undefined when none may take a call:
   * the caller answers 503 at once.
   */
  pick(tried?: ReadonlySet<UpstreamInstance>): UpstreamInstance | undefined;
}

export function createUpstreamPool(instances: readonly UpstreamInstance[]): UpstreamPool {
  let next = 0;
  const scan = (tried: ReadonlySet<UpstreamInstance> | undefined, needServing: boolean) => {
    const n = instances.length;
    for (let i = 0; i < n; i++) {
      const instance = instances[(next + i) % n] as UpstreamInstance;
      if (tried?.has(instance) || (needServing && !instance.serving) || !instance.breaker.canPass()) continue;
      if (!instance.breaker.tryAcquire()) continue;
      next = (next + i + 1) % n;
      return instance;
    }
    return undefined;
  };
  return {
    instances,
    pick(tried) {
      if (instances.length === 1) {
        const only = instances[0] as UpstreamInstance;
        return tried?.has(only) || !only.breaker.tryAcquire() ? undefined : only;
      }
      return scan(tried, true) ?? scan(tried, false);
    },
  };
}
