import { rpcPattern } from "./rpc-pattern.js";

/** A default deadline for the RPCs whose `package.Service/Method` matches `pattern` (`*` globs). */
export interface RouteTimeoutRule {
  readonly pattern: string;
  readonly timeoutMs: number;
}

/**
 * `rpc → default deadline (ms)` from the first matching rule; undefined when none matches (the
 * gateway-wide default applies). Used when the client sent no deadline of its own.
 */
export function createRouteTimeouts(rules: readonly RouteTimeoutRule[]): (rpc: string) => number | undefined {
  const compiled = rules.map((rule) => ({
    timeoutMs: rule.timeoutMs,
    regexp: rpcPattern(rule.pattern),
  }));
  const resolved = new Map<string, number | undefined>();
  return (rpc) => {
    if (resolved.has(rpc)) return resolved.get(rpc);
    const timeout = compiled.find((rule) => rule.regexp.test(rpc))?.timeoutMs;
    // Only names the gateway routes reach here, a closed set; still, never grow without bound.
    if (resolved.size < 10_000) resolved.set(rpc, timeout);
    return timeout;
  };
}
