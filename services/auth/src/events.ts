import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { appendEvent } from "@zero/kit/events/outbox";
import type { Transaction } from "kysely";
import type { DB } from "./db/schema.js";

// auth's events (proto/zero/auth/v1/events.proto) go through the kit's outbox: written in the
// transaction of the change they report, published by the relay.

export const EVENT_SOURCE = "zero.auth";

export async function recordEvent<Desc extends DescMessage>(
  trx: Transaction<DB>,
  schema: Desc,
  init: MessageInitShape<Desc>,
): Promise<void> {
  await appendEvent(trx, schema, create(schema, init), { source: EVENT_SOURCE });
}
