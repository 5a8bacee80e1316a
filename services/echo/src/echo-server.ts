import type { Logger } from "@zero/kit/log";
import type { TokenVerifier } from "@zero/kit/principal";
import { startServer, type Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { echoService } from "./echo-service.js";
import { transcodingService } from "./transcoding-service.js";

export const SERVICE_NAME = "echo";

/**
 * Everything `main.ts` runs, minus process concerns, so tests start the service in-process
 * (`port` 0 picks a free port). There is nothing to migrate or connect to: the service stores nothing.
 */
export function startEchoServer(opts: {
  logger: Logger;
  /** Verifies the bearer tokens of the USER and ADMIN methods (and refuses INTERNAL callers' fakes). */
  verifier: TokenVerifier;
  port?: number;
  host?: string;
}): Promise<Server> {
  return startServer({
    name: SERVICE_NAME,
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    logger: opts.logger,
    verifier: opts.verifier,
    services: [EchoService, TranscodingService],
    routes(router) {
      router.service(EchoService, echoService);
      router.service(TranscodingService, transcodingService);
    },
  });
}
