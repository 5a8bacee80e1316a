import {
  jetstreamManager,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";

export interface StreamSpec {
  /** `ZERO_<SERVICE>`, one per producing service. */
  name: string;
  /** e.g. `["zero.auth.v1.>"]`. */
  subjects: string[];
  /**
   * Messages older than this are discarded; default 7 days (`DEFAULT_EVENT_RETENTION_MS`). Streams
   * carry facts between services, they are not an archive: events hold personal data (an email in
   * UserRegistered) that erasure cannot reach inside a stream, so they must age out. A consumer
   * down for longer than this misses events; the producer's outbox keeps published rows 7 days
   * too, so they can be republished.
   */
  maxAgeMs?: number;
}

export const DEFAULT_EVENT_RETENTION_MS = 7 * 24 * 3600_000;

/** The dead-letter stream every consumer publishes to: `dlq.<durable>.<original subject>`. */
export const DEAD_LETTER_STREAM = "ZERO_DLQ";

// `Nats-Msg-Id` dedup window: the relay republishes rows whose ack it did not see, and each such
// retry lands inside this window in practice. Consumers stay idempotent (inbox) for the rest.
const DUPLICATE_WINDOW_MS = 2 * 60_000;
const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_IN_USE = 10058;

/**
 * Creates the stream (file storage, limits retention, 2 min dedup window) or updates its
 * subjects/limits when it exists with others. Safe to call from every replica at start-up.
 */
export async function ensureStream(nc: NatsConnection, spec: StreamSpec): Promise<StreamInfo> {
  const jsm = await jetstreamManager(nc);
  const wanted = {
    subjects: spec.subjects,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    max_age: nanos(spec.maxAgeMs ?? DEFAULT_EVENT_RETENTION_MS),
  };
  try {
    const info = await jsm.streams.info(spec.name);
    const same =
      info.config.duplicate_window === wanted.duplicate_window &&
      info.config.max_age === wanted.max_age &&
      [...info.config.subjects].sort().join(" ") === [...spec.subjects].sort().join(" ");
    return same ? info : await jsm.streams.update(spec.name, wanted);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND)) throw err;
  }
  try {
    return await jsm.streams.add({
      name: spec.name,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: 1,
      ...wanted,
    });
  } catch (err) {
    // Another replica created it between our info and add, with a config that differs slightly.
    if (err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE) {
      return await jsm.streams.update(spec.name, wanted);
    }
    throw err;
  }
}

/** Creates the `ZERO_DLQ` stream (`dlq.>`): dead letters are kept until someone deals with them. */
export function ensureDeadLetterStream(nc: NatsConnection): Promise<StreamInfo> {
  // Longer than the event streams: a dead letter waits for a person to look at it.
  return ensureStream(nc, { name: DEAD_LETTER_STREAM, subjects: ["dlq.>"], maxAgeMs: 30 * 24 * 3600_000 });
}
