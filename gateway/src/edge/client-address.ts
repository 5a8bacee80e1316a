import { BlockList, isIP } from "node:net";

/** Where a request really comes from, as far as the gateway can trust what it was told. */
export interface ClientAddress {
  /** The client's IP: the rate-limit key and what services see in `x-forwarded-for`. */
  readonly ip: string;
  /** `https` or `http`, as the client reached the outermost trusted hop. */
  readonly proto: string;
  /** The host the client asked for (`x-forwarded-host` from a trusted proxy, else `host`/`:authority`). */
  readonly host: string | undefined;
}

export interface ClientAddressResolver {
  resolve(
    remoteAddress: string | undefined,
    header: (name: string) => string | undefined,
    encrypted: boolean,
  ): ClientAddress;
}

/**
 * `X-Forwarded-For/Proto/Host` are believed only when the connection comes from a trusted proxy
 * (config `TRUSTED_PROXIES`, CIDRs). Anyone can send the headers, so from anyone else they are
 * ignored: otherwise a client could pick its own rate-limit key with one header. Behind a chain
 * of proxies, `X-Forwarded-For` is read from the right, skipping trusted hops; the first address
 * not trusted is the client.
 */
export function createClientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const trusted = new BlockList();
  for (const cidr of trustedProxies) addCidr(trusted, cidr);
  const anyTrusted = trustedProxies.length > 0;
  const isTrusted = (ip: string): boolean => {
    const family = isIP(ip);
    return family !== 0 && trusted.check(ip, family === 6 ? "ipv6" : "ipv4");
  };

  return {
    resolve(remoteAddress, header, encrypted) {
      const remote = normalizeIp(remoteAddress ?? "") || "unknown";
      const ownProto = encrypted ? "https" : "http";
      const ownHost = header("host") ?? header(":authority");
      if (!anyTrusted || !isTrusted(remote)) return { ip: remote, proto: ownProto, host: ownHost };

      let ip = remote;
      const forwardedFor = header("x-forwarded-for");
      if (forwardedFor !== undefined) {
        const hops = forwardedFor.split(",");
        for (let i = hops.length - 1; i >= 0; i--) {
          const hop = normalizeIp((hops[i] as string).trim());
          // Garbage in the chain: whatever is left of it was written by someone we cannot trust.
          if (hop === "") break;
          ip = hop;
          if (!isTrusted(hop)) break;
        }
      }
      const proto = firstValue(header("x-forwarded-proto"))?.toLowerCase();
      const host = firstValue(header("x-forwarded-host"));
      return {
        ip,
        proto: proto === "https" || proto === "http" ? proto : ownProto,
        host: host ?? ownHost,
      };
    },
  };
}

/** A set of networks (CIDRs or bare addresses) to test client addresses against. */
export function createNetworkList(cidrs: readonly string[]): { has(ip: string): boolean } {
  const list = new BlockList();
  for (const cidr of cidrs) addCidr(list, cidr);
  return {
    has(ip) {
      const address = normalizeIp(ip);
      const family = isIP(address);
      return family !== 0 && list.check(address, family === 6 ? "ipv6" : "ipv4");
    },
  };
}

/** Throws with the offending entry when a CIDR (or bare address) is malformed; config reports it. */
export function addCidr(list: BlockList, cidr: string): void {
  const [address = "", prefixText] = cidr.trim().split("/");
  const ip = normalizeIp(address);
  const family = isIP(ip);
  if (family === 0) throw new Error(`"${cidr}" is not an IP address or CIDR`);
  const max = family === 6 ? 128 : 32;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || prefixText === "") {
    throw new Error(`"${cidr}" has an invalid prefix length (0-${max})`);
  }
  list.addSubnet(ip, prefix, family === 6 ? "ipv6" : "ipv4");
}

/** A valid IP with IPv4-mapped IPv6 (`::ffff:10.0.0.1`) unwrapped; "" for anything else. */
function normalizeIp(value: string): string {
  const ip = value.startsWith("::ffff:") && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
  return isIP(ip) === 0 ? "" : ip;
}

function firstValue(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = value.split(",", 1)[0]?.trim();
  return first === "" ? undefined : first;
}

/** Who may read `/metrics` and `/health/<service>` unless configured: this host and private networks. */
export const DEFAULT_OPERATIONS_NETWORKS: readonly string[] = [
  "127.0.0.0/8",
  "::1/128",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "fc00::/7",
];
