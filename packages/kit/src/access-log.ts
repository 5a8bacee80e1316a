import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { interceptStream } from "./interceptor-stream.js";
import type { Logger } from "./log.js";

/**
 * One debug line per RPC: method, code, duration. Deliberately nothing from the request itself:
 * bodies and headers (authorization above all) may carry secrets and personal data.
 */
export function createAccessLogInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    // Checked per call so raising the level at runtime takes effect, and costs nothing when off.
    if (!logger.isLevelEnabled("debug")) return next(req);
    const startedAt = performance.now();
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const write = (error: unknown): void => {
      const code = error === undefined ? "ok" : codeToString(ConnectError.from(error, Code.Internal).code);
      logger.debug(
        { rpc, code, duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000 },
        "rpc",
      );
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        write(undefined);
        return res;
      }
      return { ...res, message: interceptStream(res.message, { onEnd: write }) };
    } catch (error) {
      write(error);
      throw error;
    }
  };
}
