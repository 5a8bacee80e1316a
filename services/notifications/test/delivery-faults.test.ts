import { Code, ConnectError } from "@connectrpc/connect";
import { DeliveryStatus, type Delivery } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

// SMTP misbehaving: down, answering "try later", refusing for good. Mail waits, is retried with
// backoff and is delivered once the server is back — never lost, never doubled.

let n: TestNotifications;

beforeAll(async () => {
  // Attempts are plentiful here (the outage outlasts several), the backoff short.
  n = await startTestNotifications({
    DELIVERY_MAX_ATTEMPTS: "50",
    DELIVERY_RETRY_BASE_MS: "100",
    DELIVERY_RETRY_MAX_MS: "400",
  });
});

afterAll(async () => {
  await n?.close();
});

beforeEach(async () => {
  n.smtp.mode = "accept";
  await n.smtp.start();
});

const anAddress = () => `f-${randomUUID()}@example.com`;

async function deliveryOf(id: string): Promise<Delivery> {
  const { delivery } = await n.admin.getDelivery({ deliveryId: id });
  return delivery!;
}

async function sendSome(count: number): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (let i = 0; i < count; i++) {
    const { delivery } = await n.admin.sendNotification({
      to: anAddress(),
      subject: `fault ${i}`,
      textBody: "x",
    });
    out.push(delivery!);
  }
  return out;
}

describe("SMTP down for a while", () => {
  it("retries with backoff, then delivers every message once the server is back", async () => {
    await n.smtp.stop();
    const queued = await sendSome(8);
    // Several failed attempts each, none delivered, all still queued with the reason.
    await waitFor("repeated failed attempts", async () => {
      const states = await Promise.all(queued.map((d) => deliveryOf(d.id)));
      return states.every((d) => d.attempts >= 2) ? states : undefined;
    });
    for (const d of await Promise.all(queued.map((q) => deliveryOf(q.id)))) {
      expect(d.status).toBe(DeliveryStatus.QUEUED);
      expect(d.lastError).toMatch(/ECONNECTION|ECONNREFUSED|ESOCKET/);
    }

    await n.smtp.start();
    for (const d of queued) {
      const sent = await waitFor("delivery", async () => {
        const state = await deliveryOf(d.id);
        return state.status === DeliveryStatus.SENT ? state : undefined;
      });
      expect(sent.attempts).toBeGreaterThanOrEqual(3);
      expect(n.smtp.counts().get(d.messageId)).toBe(1);
    }
  });

  it("treats 4xx answers as transient", async () => {
    n.smtp.mode = "tempfail";
    const [d] = await sendSome(1);
    await waitFor(
      "a 451 attempt",
      async () => (await deliveryOf(d!.id)).lastError.startsWith("451") || undefined,
    );
    n.smtp.mode = "accept";
    await waitFor("delivery", async () => (await deliveryOf(d!.id)).status === DeliveryStatus.SENT);
    expect(n.smtp.counts().get(d!.messageId)).toBe(1);
  });
});

describe("permanent failures", () => {
  it("marks a 5xx refusal FAILED after one attempt; RetryDelivery queues it again", async () => {
    n.smtp.mode = "reject";
    const [d] = await sendSome(1);
    const failed = await waitFor("the failure", async () => {
      const state = await deliveryOf(d!.id);
      return state.status === DeliveryStatus.FAILED ? state : undefined;
    });
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toMatch(/^550/);

    n.smtp.mode = "accept";
    const retried = await n.admin.retryDelivery({ deliveryId: d!.id });
    expect(retried.delivery?.status).toBe(DeliveryStatus.QUEUED);
    await waitFor("delivery", async () => (await deliveryOf(d!.id)).status === DeliveryStatus.SENT);

    const again = await n.admin
      .retryDelivery({ deliveryId: d!.id })
      .catch((e: unknown) => ConnectError.from(e));
    expect((again as ConnectError).code).toBe(Code.FailedPrecondition);
    const unknown = await n.admin
      .retryDelivery({ deliveryId: randomUUID() })
      .catch((e: unknown) => ConnectError.from(e));
    expect((unknown as ConnectError).code).toBe(Code.NotFound);
  });

  it("gives up after the bounded attempts", async () => {
    await n.restart({
      DELIVERY_MAX_ATTEMPTS: "3",
      DELIVERY_RETRY_BASE_MS: "50",
      DELIVERY_RETRY_MAX_MS: "100",
    });
    try {
      n.smtp.mode = "tempfail";
      const [d] = await sendSome(1);
      const failed = await waitFor("the final failure", async () => {
        const state = await deliveryOf(d!.id);
        return state.status === DeliveryStatus.FAILED ? state : undefined;
      });
      expect(failed.attempts).toBe(3);
      expect(failed.lastError).toMatch(/^gave up after 3 attempts: 451/);
    } finally {
      await n.restart({
        DELIVERY_MAX_ATTEMPTS: "50",
        DELIVERY_RETRY_BASE_MS: "100",
        DELIVERY_RETRY_MAX_MS: "400",
      });
    }
  });
});

describe("a restart with mail in the queue", () => {
  it("sends what was queued before the stop", async () => {
    await n.smtp.stop();
    const queued = await sendSome(5);
    await n.restart();
    await n.smtp.start();
    for (const d of queued) {
      await waitFor("delivery", async () => (await deliveryOf(d.id)).status === DeliveryStatus.SENT);
      expect(n.smtp.counts().get(d.messageId)).toBe(1);
    }
  });
});

describe("Redis down", () => {
  it("keeps mail queued (the limit cannot be checked) and sends it once Redis is back", async () => {
    await n.redis.stop();
    const queued = await sendSome(3);
    expect(queued.every((d) => d.status === DeliveryStatus.QUEUED)).toBe(true);
    await sleep(1000);
    for (const d of queued) expect((await deliveryOf(d.id)).status).toBe(DeliveryStatus.QUEUED);

    // Redis again, on the same port (empty: the limit and the cache are disposable).
    const redis = spawn(
      "redis-server",
      ["--port", String(n.redis.port), "--save", "", "--appendonly", "no"],
      {
        stdio: "ignore",
      },
    );
    try {
      for (const d of queued) {
        await waitFor(
          "delivery",
          async () => (await deliveryOf(d.id)).status === DeliveryStatus.SENT,
          30_000,
        );
        expect(n.smtp.counts().get(d.messageId)).toBe(1);
      }
    } finally {
      redis.kill("SIGKILL");
    }
  });
});
