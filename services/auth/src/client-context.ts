import type { HandlerContext } from "@connectrpc/connect";

// Where a request comes from, for sessions, throttling and the audit events. The gateway sets
// `x-forwarded-for` to the client address it saw and forwards `user-agent`; a proxy in front of it
// appends its own hop, so the address nearest to Zero (the last one) is the one to trust — an
// earlier entry is whatever the client chose to write. Calls straight to the service (gRPC from
// inside the network) have no forwarded address.

export interface ClientContext {
  /** The client address, or `null` when unknown. */
  ip: string | null;
  /** The `User-Agent`, at most 512 characters, or `null`. */
  userAgent: string | null;
}

const MAX_USER_AGENT = 512;
const MAX_ADDRESS = 64;

export function clientContext(ctx: HandlerContext): ClientContext {
  const forwarded = ctx.requestHeader.get("x-forwarded-for");
  const ip = forwarded?.split(",").at(-1)?.trim() ?? "";
  const agent = ctx.requestHeader.get("user-agent")?.trim() ?? "";
  return {
    // Anything longer or with odd characters is not an address: keep it out of logs and rows.
    ip: ip !== "" && ip.length <= MAX_ADDRESS && /^[0-9a-fA-F:.]+$/.test(ip) ? ip : null,
    // Control characters would forge lines in whatever displays it.
    userAgent: agent === "" ? null : agent.replace(/\p{Cc}/gu, " ").slice(0, MAX_USER_AGENT),
  };
}

// First match wins: Edge and Opera also say "Chrome", Chrome also says "Safari".
const BROWSERS: readonly [RegExp, string][] = [
  [/Edg\//, "Edge"],
  [/OPR\/|Opera/, "Opera"],
  [/Firefox\//, "Firefox"],
  [/Chrome\//, "Chrome"],
  [/Safari\//, "Safari"],
  [/curl\//, "curl"],
  [/grpc-/, "gRPC client"],
  [/connect-es/, "Connect client"],
  [/node|undici/i, "Node.js"],
];
const SYSTEMS: readonly [RegExp, string][] = [
  [/Android/, "Android"],
  [/iPhone|iPad|iOS/, "iOS"],
  [/Windows/, "Windows"],
  [/Mac OS X|Macintosh/, "macOS"],
  [/Linux/, "Linux"],
];

/** "Firefox on Linux" — enough for a person to recognise their device in a list of sessions. */
export function describeDevice(userAgent: string | null): string {
  if (userAgent === null) return "Unknown device";
  const browser = BROWSERS.find(([pattern]) => pattern.test(userAgent))?.[1] ?? "Unknown browser";
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1];
  return system === undefined ? browser : `${browser} on ${system}`;
}
