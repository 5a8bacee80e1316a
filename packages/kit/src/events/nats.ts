import { setTimeout as sleep } from "node:timers/promises";
import { AuthorizationError, connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";

export interface ConnectNatsOptions {
  /** Client name shown by the server (`nats server report connections`). */
  name?: string;
  /** Aborts the wait for the first connection (shutdown while NATS is still unreachable). */
  signal?: AbortSignal;
}

/**
 * Connects to NATS (`url` may list several servers separated by commas).
 *
 * First connection: when the server is unreachable the returned promise keeps retrying (backoff
 * up to 5 s, one warning, one info when it connects) instead of rejecting, so a service started
 * before NATS does not crash. A service that must serve meanwhile starts its server first and
 * awaits this afterwards: its events wait in the outbox until the relay can publish them. Only
 * an authorization failure (a configuration error) or `signal` rejects.
 *
 * After that the client reconnects forever and logs each state change once; the relay and the
 * consumers ride out the outage on their own.
 */
export async function connectNats(
  url: string,
  logger: Logger,
  opts: ConnectNatsOptions = {},
): Promise<NatsConnection> {
  const servers = url.split(",").map((s) => s.trim());
  const where = servers.map(redact).join(",");
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      const nc = await connect({
        servers,
        name: opts.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
      });
      if (attempt > 1) logger.info({ nats: where, attempts: attempt }, "nats: connected");
      logStatus(nc, logger, where).catch((err: unknown) =>
        logger.warn({ err }, "nats: status stream failed"),
      );
      return nc;
    } catch (err) {
      if (err instanceof AuthorizationError) throw err;
      if (attempt === 1) {
        logger.warn(
          { nats: where, err },
          "nats: not reachable; retrying until it is (events wait in the outbox)",
        );
      }
      await sleep(Math.min(250 * 2 ** Math.min(attempt, 10), 5000), undefined, { signal: opts.signal });
    }
  }
}

async function logStatus(nc: NatsConnection, logger: Logger, where: string): Promise<void> {
  let connected = true;
  for await (const status of nc.status()) {
    if (status.type === "disconnect" && connected) {
      connected = false;
      logger.warn({ nats: where }, "nats: disconnected; reconnecting");
    } else if (status.type === "reconnect") {
      connected = true;
      logger.info({ nats: where, server: status.server }, "nats: reconnected");
    } else if (status.type === "error") {
      logger.warn({ nats: where, err: status.error }, "nats: error");
    } else if (status.type === "slowConsumer") {
      logger.warn(
        { nats: where, subject: status.sub.getSubject(), pending: status.pending },
        "nats: slow consumer",
      );
    }
  }
}

/** Credentials in a NATS URL never reach the logs. */
function redact(server: string): string {
  return server.replace(/\/\/[^@/]*@/, "//***@");
}
