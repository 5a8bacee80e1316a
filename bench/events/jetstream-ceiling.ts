import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { rate } from "./stats.js";

// The ceiling: raw JetStream with the same client library the kit uses, no database, no outbox.
// Async publish = up to `window` publishes awaiting their acks at once (what the relay does with a
// batch); consume = a durable pull consumer with explicit acks (what the kit's consumer does).

export interface CeilingResult {
  /** Acked publishes per second, `window` in flight. */
  asyncPublishPerSec: number;
  /** Publish, await the ack, publish the next. */
  syncPublishPerSec: number;
  /** Messages per second through a pull consumer, each acked. */
  consumePerSec: number;
}

export async function measureJetStreamCeiling(
  natsUrl: string,
  opts: { messages: number; window: number },
): Promise<CeilingResult> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "BENCH_RAW", subjects: ["bench.raw.>"] });
    const js = jetstream(nc);
    const payload = new Uint8Array(160).fill(7); // about the size of a payment event
    // The headers every outbox event carries (CloudEvents binary mode + trace context), so the
    // ceiling moves the same messages the relay does.
    const eventHeaders = () => {
      const h = natsHeaders();
      h.set("ce-specversion", "1.0");
      h.set("ce-id", crypto.randomUUID());
      h.set("ce-source", "zero.payments");
      h.set("ce-type", "zero.payments.v1.PaymentCreated");
      h.set("ce-time", new Date().toISOString());
      h.set("content-type", "application/protobuf");
      h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      return h;
    };

    const syncCount = Math.min(2_000, opts.messages);
    let started = performance.now();
    for (let i = 0; i < syncCount; i++)
      await js.publish("bench.raw.sync", payload, { msgID: `s-${i}`, headers: eventHeaders() });
    const syncPublishPerSec = rate(syncCount, performance.now() - started);

    started = performance.now();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < opts.messages; i = next++)
        await js.publish("bench.raw.async", payload, { msgID: `a-${i}`, headers: eventHeaders() });
    };
    await Promise.all(Array.from({ length: opts.window }, worker));
    const asyncPublishPerSec = rate(opts.messages, performance.now() - started);

    await jsm.consumers.add("BENCH_RAW", {
      durable_name: "bench-raw",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "bench.raw.async",
    });
    const consumer = await js.consumers.get("BENCH_RAW", "bench-raw");
    started = performance.now();
    const messages = await consumer.consume({ max_messages: 1_000 });
    let received = 0;
    for await (const msg of messages) {
      msg.ack();
      if (++received === opts.messages) break;
    }
    const consumePerSec = rate(received, performance.now() - started);
    await messages.close();
    return { asyncPublishPerSec, syncPublishPerSec, consumePerSec };
  } finally {
    await nc.close();
  }
}
