// Deadlines as clients send them. gRPC and gRPC-Web: `grpc-timeout: <1-8 digits><H|M|S|m|u|n>`;
// Connect: `connect-timeout-ms: <1-10 digits>`. A REST caller may send either. The gateway keeps
// the caller's deadline and sends it on, so a service stops working on a call its caller has
// given up on; without one, the route's default applies.

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/**
 * The longest deadline kept: both headers can say more (10 digits of ms, 99999999 hours), but Node
 * runs a timer of more than 2^31-1 ms (~24.8 days) after 1 ms, so a far deadline would expire at
 * once. Past this one, a deadline means "none" in practice anyway.
 */
export const MAX_DEADLINE_MS = 2 ** 31 - 1;
const CONNECT_TIMEOUT = /^\d{1,10}$/;

const UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** Milliseconds (at least 1) from a `grpc-timeout` value; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = GRPC_TIMEOUT.exec(value);
  if (!match) return undefined;
  return Math.min(
    MAX_DEADLINE_MS,
    Math.max(1, Math.ceil(Number(match[1]) * (UNIT_MS[match[2] as string] as number))),
  );
}

/** Milliseconds from a `connect-timeout-ms` value; undefined when absent or malformed. */
export function parseConnectTimeout(value: string | undefined): number | undefined {
  if (value === undefined || !CONNECT_TIMEOUT.test(value)) return undefined;
  return Math.min(MAX_DEADLINE_MS, Math.max(1, Number(value)));
}

/** The caller's timeout from either header (Connect's wins when both are sent). */
export function clientTimeoutMs(header: (name: string) => string | undefined): number | undefined {
  return parseConnectTimeout(header("connect-timeout-ms")) ?? parseGrpcTimeout(header("grpc-timeout"));
}

/**
 * What is wrong with the caller's timeout headers, or undefined when they are absent or valid.
 * A malformed one is refused (400), as the services refuse it: quietly replacing it with the
 * route's default would run a call far longer than its caller meant.
 */
export function malformedTimeout(header: (name: string) => string | undefined): string | undefined {
  const connect = header("connect-timeout-ms");
  if (connect !== undefined && parseConnectTimeout(connect) === undefined)
    return "connect-timeout-ms must be whole milliseconds, 1 to 10 digits (connect-timeout-ms: 1500)";
  const grpc = header("grpc-timeout");
  if (grpc !== undefined && parseGrpcTimeout(grpc) === undefined)
    return "grpc-timeout must be 1 to 8 digits and a unit H, M, S, m, u or n (grpc-timeout: 1500m)";
  return undefined;
}

/** A `grpc-timeout` value for `ms`, in the unit that keeps it within the 8 digits gRPC allows. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}
