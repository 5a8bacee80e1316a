import type { NatsConnection } from "@nats-io/transport-node";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { connectNats } from "./nats.js";
import { startRelay, type Relay } from "./relay.js";
import { ensureDeadLetterStream, ensureStream, type StreamSpec } from "./streams.js";

export interface OutboxPublisherOptions<DB> {
  db: Kysely<DB>;
  natsUrl: string;
  logger: Logger;
  /** The service's own stream(s), e.g. `{ name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] }`. */
  streams: StreamSpec[];
  /** Client name shown by the NATS server. */
  name?: string;
}

export interface OutboxPublisher {
  /** Publish soon: call after committing a transaction that appended events. */
  wake(): void;
  /** A readiness check: rejects until NATS is connected and the streams exist. */
  check(): Promise<void>;
  /** Stops the relay (unpublished rows stay) and closes the NATS connection. */
  stop(): Promise<void>;
}

/**
 * Everything a producing service needs to get its outbox onto JetStream, started in the
 * background: connect (retrying while NATS is down), make sure its streams and the dead-letter
 * stream exist, run the relay. The service serves meanwhile — a state change and its event commit
 * together in Postgres whether or not NATS is up, and reach the stream once it is.
 */
export function startOutboxPublisher<DB>(opts: OutboxPublisherOptions<DB>): OutboxPublisher {
  const { logger } = opts;
  const aborted = new AbortController();
  let nc: NatsConnection | undefined;
  let relay: Relay | undefined;

  const starting = (async () => {
    nc = await connectNats(opts.natsUrl, logger, {
      signal: aborted.signal,
      ...(opts.name === undefined ? {} : { name: opts.name }),
    });
    // Stream set-up needs the server; retry it like the connection itself rather than crash.
    for (let attempt = 1; ; attempt++) {
      try {
        for (const spec of opts.streams) await ensureStream(nc, spec);
        await ensureDeadLetterStream(nc);
        break;
      } catch (err) {
        if (attempt === 1) logger.warn({ err }, "cannot set up event streams yet; retrying");
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 5000)));
        aborted.signal.throwIfAborted();
      }
    }
    aborted.signal.throwIfAborted();
    relay = startRelay({ db: opts.db, nc, logger });
  })();
  starting.catch((err: unknown) => {
    if (!aborted.signal.aborted) logger.error({ err }, "event publishing could not start");
  });

  return {
    wake: () => relay?.wake(),
    async check() {
      if (nc === undefined || relay === undefined)
        throw new Error("event publishing is starting (NATS unreachable?)");
      if (nc.isClosed()) throw new Error("NATS connection closed");
      await nc.flush();
    },
    async stop() {
      aborted.abort();
      await starting.catch(() => undefined);
      await relay?.stop();
      if (nc !== undefined && !nc.isClosed()) await nc.drain();
    },
  };
}
