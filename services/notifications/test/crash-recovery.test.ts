import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { toBinary } from "@bufbuild/protobuf";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { createDb } from "@zero/kit/db";
import { ensureStream } from "@zero/kit/events/streams";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { freePort } from "@zero/testkit/ports";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DB } from "../src/db/schema.js";
import { aUserRegistered, startMailReceiver, waitFor, type MailReceiver } from "./fixtures.js";

// The real process (`node --import tsx services/notifications/src/main.ts`), killed with SIGKILL
// in the middle of sending a batch, then started again: every decided message must reach the
// SMTP server, none twice under a different Message-ID, and no event may produce two messages.

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");
const main = path.join(here, "../src/main.ts");

const BATCH = 150;
const CONCURRENCY = 4;

let database: TestDatabase;
let redis: TestRedis;
let nats: TestNats;
let smtp: MailReceiver;
let nc: NatsConnection;
let db: Kysely<DB>;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  [database, redis, nats, smtp] = await Promise.all([
    createTestDatabase("notifications_crash"),
    startRedis(),
    startNats(),
    startMailReceiver(),
  ]);
  nc = await connect({ servers: nats.url });
  db = createDb<DB>(database.url);
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await db?.destroy();
  await nc?.close();
  await smtp?.stop();
  await Promise.all([nats?.stop(), redis?.stop()]);
  await database?.drop();
});

/** Starts the service process; resolves once it listens. */
async function startProcess(): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", main], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env["PATH"],
      PORT: String(port),
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      SMTP_URL: smtp.url,
      LOG_LEVEL: "info",
      DELIVERY_CONCURRENCY: String(CONCURRENCY),
      DELIVERY_POLL_MS: "50",
      // One mail per recipient here: the limit is not what this test is about.
      RECIPIENT_INTERVAL_MS: "100",
      // Events the killed process had fetched come back quickly.
      EVENT_ACK_WAIT_MS: "2000",
    },
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let output = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      if (buffered.includes('"msg":"server listening"')) resolve();
      // Keep only the tail: the test reads nothing else from it.
      buffered = buffered.slice(-200);
    });
    child.once("exit", (code) =>
      reject(new Error(`notifications exited with ${code}: ${output.slice(-2000)}`)),
    );
  });
  return child;
}

async function killHard(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

async function publishRegistrations(count: number): Promise<{ eventId: string; email: string }[]> {
  await ensureStream(nc, { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] });
  const js = jetstream(nc);
  const published: { eventId: string; email: string }[] = [];
  for (let i = 0; i < count; i++) {
    const event = aUserRegistered();
    const eventId = uuidv7();
    const h = natsHeaders();
    h.set("ce-id", eventId);
    h.set("ce-type", UserRegisteredSchema.typeName);
    h.set("ce-source", "zero.test");
    await js.publish(UserRegisteredSchema.typeName, toBinary(UserRegisteredSchema, event), {
      headers: h,
      msgID: eventId,
    });
    published.push({ eventId, email: event.email });
  }
  return published;
}

describe("a notifications process killed mid-batch", () => {
  it("sends every email exactly once per Message-ID after restarts, and one message per event", async () => {
    const published = await publishRegistrations(BATCH);
    let kills = 0;
    let child = await startProcess();
    // Kill it twice while it is sending, each time once a share of the batch has arrived.
    for (const threshold of [Math.floor(BATCH * 0.2), Math.floor(BATCH * 0.55)]) {
      await waitFor(`${threshold} mails`, () => smtp.mails.length >= threshold, 60_000);
      await killHard(child);
      kills++;
      // The receiver saw part of the batch only: the kill really was mid-batch.
      expect(new Set(smtp.mails.map((m) => m.messageId)).size).toBeLessThan(BATCH);
      child = await startProcess();
    }
    await waitFor("every message", () => smtp.counts().size >= BATCH, 90_000);
    // Let any late resend arrive before counting.
    await waitFor("every delivery to be SENT", async () => {
      const pending = await db.selectFrom("deliveries").select("id").where("status", "!=", "sent").execute();
      return pending.length === 0;
    });
    await sleep(500);
    await killHard(child);

    // One delivery per event (inbox + idempotency key), all sent.
    const rows = await db.selectFrom("deliveries").selectAll().execute();
    expect(rows).toHaveLength(BATCH);
    expect(new Set(rows.map((r) => r.idempotency_key))).toEqual(
      new Set(published.map((p) => `event:${p.eventId}:welcome`)),
    );
    expect(rows.every((r) => r.status === "sent")).toBe(true);

    // Exactly the decided messages arrived, each under its own Message-ID; every recipient got one.
    const counts = smtp.counts();
    expect(new Set(counts.keys())).toEqual(new Set(rows.map((r) => r.message_id)));
    for (const { email } of published) {
      expect(new Set(smtp.mails.filter((m) => m.to.includes(email)).map((m) => m.messageId)).size).toBe(1);
    }
    // A raw resend is possible only for a message the SMTP server accepted in the instant
    // before the kill, whose commit never happened: at most one per send slot per kill, and it
    // carries the same Message-ID (receivers drop it).
    const resent = [...counts.values()].filter((c) => c > 1).length;
    expect(resent).toBeLessThanOrEqual(kills * CONCURRENCY);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(1 + kills);
  }, 180_000);
});
