import { createServer } from "node:net";

/**
 * A TCP port that was free on 127.0.0.1 a moment ago. Another process can take it before the
 * caller binds it, so callers that spawn servers retry on a bind failure (see `child-process.ts`).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freePort: the OS returned no TCP address"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
