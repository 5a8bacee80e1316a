// Deadlines as clients send them. gRPC and gRPC-Web: `grpc-timeout: <1-8 digits><H|M|S|m|u|n>`;
// Connect: `connect-timeout-ms: <1-10 digits>`. A REST caller may send either. The gateway keeps
// the caller's deadline and sends it on, so a service stops working on a call its caller has
// given up on; without one, the route's default applies.

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
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
  return Math.max(1, Math.ceil(Number(match[1]) * (UNIT_MS[match[2] as string] as number)));
}

/** Milliseconds from a `connect-timeout-ms` value; undefined when absent or malformed. */
export function parseConnectTimeout(value: string | undefined): number | undefined {
  if (value === undefined || !CONNECT_TIMEOUT.test(value)) return undefined;
  return Math.max(1, Number(value));
}

/** The caller's timeout from either header (Connect's wins when both are sent). */
export function clientTimeoutMs(header: (name: string) => string | undefined): number | undefined {
  return parseConnectTimeout(header("connect-timeout-ms")) ?? parseGrpcTimeout(header("grpc-timeout"));
}

/** A `grpc-timeout` value for `ms`, in the unit that keeps it within the 8 digits gRPC allows. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}
