/**
 * A config pattern over RPC names (`package.Service/Method`) as a RegExp: `*` matches any run of
 * characters, everything else literally; a `*` before `/Login` matches every service's Login.
 */
export function rpcPattern(pattern: string): RegExp {
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`);
}
