import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { DomainError, type DomainErrorCode } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { sql, type Insertable, type Kysely, type Transaction } from "kysely";
import type { DB, IdempotencyKeyRow, IdempotencyKeysTable, StoredError } from "./db/schema.js";

// Idempotency keys (the IETF `Idempotency-Key` draft, with Stripe's semantics):
//
// - A call with a key claims it: one row per (caller, key), inserted `in_progress`. The primary
//   key decides between racing duplicates, so exactly one executes.
// - The result is recorded IN THE OPERATION'S FINAL TRANSACTION: the state change, its outbox event
//   and the stored response commit together or not at all.
//   · `runInTransaction` (one-transaction operations: create, cancel, delete, status override)
//     claims inside that same transaction: one commit per call. A duplicate's claim waits on the
//     key's row lock until the first commits (it then replays) or rolls back (it then executes).
//   · `run` (operations with a provider call between transactions: process, refund) commits the
//     claim first, with a lease; duplicates wait in the application (no connection held). The
//     completing update is guarded by the execution's lock token, so an execution whose lease ran
//     out and was taken over by a retry rolls back instead of completing twice. A crashed
//     execution's lease runs out and the next retry takes over.
// - Completed → the stored result is replayed (same response, same error); same key with other
//   parameters → 422; still running after the wait → 409.
// - Invalid input is refused before claiming (nothing stored: the client may fix the request and
//   retry with the same key). Transient failures leave no result; deterministic domain errors
//   (not found, failed precondition, …) are stored and replayed like successes.
// - Rows live 24 hours, then are pruned.

export const IDEMPOTENCY_HEADER = "idempotency-key";
export const RETENTION_HOURS = 24;

/** Deterministic outcomes, replayed like responses. Others (unavailable, aborted, internal) release the key. */
const STORED_ERRORS: ReadonlySet<DomainErrorCode> = new Set([
  "invalid_argument",
  "not_found",
  "failed_precondition",
  "permission_denied",
  "already_exists",
]);

const KEY_SYNTAX = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyOptions {
  db: Kysely<DB>;
  logger: Logger;
  /** How long a duplicate waits for the first call's result before answering 409 (default 10 s). */
  waitMs?: number;
  /** How long an execution holds the key before a retry may take over (default 30 s). */
  leaseMs?: number;
}

export interface IdempotentCall<Desc extends DescMessage> {
  /** Whose key: the caller's subject. */
  scope: string;
  /** The header's value, or undefined when the caller sent none (then the call just runs). */
  key: string | undefined;
  /** `CreatePayment`, …: a key reused on another method counts as reused with other parameters. */
  method: string;
  /** The request in canonical, secret-free form (e.g. a card number reduced to its last four digits). */
  fingerprint: unknown;
  response: Desc;
}

/** Records the result inside the operation's final transaction. Call it exactly once. */
export type CommitResult<Desc extends DescMessage> = (
  trx: Kysely<DB>,
  response: MessageShape<Desc>,
) => Promise<void>;

export interface IdempotentResult<Desc extends DescMessage> {
  response: MessageShape<Desc>;
  /** True when this is a stored result replayed to a retry. */
  replayed: boolean;
}

export interface Idempotency {
  /**
   * For an operation made of several transactions with work between them (a provider call): the
   * key is claimed and committed first; duplicates wait in the application, not on a connection.
   */
  run<Desc extends DescMessage>(
    call: IdempotentCall<Desc>,
    execute: (commit: CommitResult<Desc>) => Promise<MessageShape<Desc>>,
  ): Promise<IdempotentResult<Desc>>;
  /**
   * For an operation that is one transaction: claim, work and result commit together — one commit
   * instead of two. A duplicate's claim waits on the key's row lock until this one commits (then it
   * replays) or rolls back (then it executes), bounded by `waitMs` (then 409).
   */
  runInTransaction<Desc extends DescMessage>(
    call: IdempotentCall<Desc>,
    execute: (trx: Transaction<DB>) => Promise<MessageShape<Desc>>,
  ): Promise<IdempotentResult<Desc>>;
  /**
   * For an operation that is ONE statement whose response is known before it runs (a creation with
   * ids and timestamps assigned here): the key is inserted already completed, with that response,
   * by the statement itself — one round trip, no explicit transaction. `execute` runs the statement
   * and must insert `completedKey` (when defined) in it, e.g. as a CTE; a duplicate key then fails
   * the whole statement on the key's primary key and nothing is written. A duplicate of a running
   * call waits on that key's row like `runInTransaction`'s, then replays.
   */
  runInStatement<Desc extends DescMessage>(
    call: IdempotentCall<Desc>,
    response: MessageShape<Desc>,
    execute: (completedKey: CompletedKey | undefined) => Promise<void>,
  ): Promise<IdempotentResult<Desc>>;
  /** Deletes keys older than the retention; returns how many. */
  prune(): Promise<number>;
}

/** A key row inserted in its completed state, by `runInStatement`'s statement. */
export type CompletedKey = Insertable<IdempotencyKeysTable>;

/** The key from request headers: undefined when absent; INVALID_ARGUMENT when malformed. */
export function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get(IDEMPOTENCY_HEADER);
  if (key === null || key === "") return undefined;
  if (!KEY_SYNTAX.test(key)) {
    throw new DomainError(
      "invalid_argument",
      "the Idempotency-Key header must be 1 to 255 printable ASCII characters without spaces (a UUID is a good key)",
      { reason: "IDEMPOTENCY_KEY_INVALID" },
    );
  }
  return key;
}

export function createIdempotency(opts: IdempotencyOptions): Idempotency {
  const { db, logger } = opts;
  const waitMs = opts.waitMs ?? 10_000;
  const leaseMs = opts.leaseMs ?? 30_000;
  const lease = sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval`;
  // Executions running in this process: a duplicate here waits on the promise instead of polling.
  const running = new Map<string, Promise<void>>();

  const claim = async (
    conn: Kysely<DB>,
    call: { scope: string; key: string; method: string },
    fingerprint: Buffer,
    token: string,
  ): Promise<boolean> => {
    const inserted = await conn
      .insertInto("idempotency_keys")
      .values({
        scope: call.scope,
        key: call.key,
        method: call.method,
        fingerprint,
        state: "in_progress",
        lock_token: token,
        locked_until: lease,
      })
      .onConflict((oc) => oc.columns(["scope", "key"]).doNothing())
      .returning("scope")
      .executeTakeFirst();
    return inserted !== undefined;
  };

  /**
   * The claim of the one-transaction path. A duplicate's claim blocks on ours (the unique key)
   * until we commit or roll back; `lock_timeout`, set for this transaction in the same statement
   * (one round trip, not two), bounds that wait like the other path's.
   */
  const claimBounded = async (
    trx: Transaction<DB>,
    call: { scope: string; key: string; method: string },
    fingerprint: Buffer,
    token: string,
    waitLeftMs: number,
  ): Promise<boolean> => {
    const { rows } = await sql<{ scope: string }>`
      insert into idempotency_keys (scope, key, method, fingerprint, state, lock_token, locked_until)
      select ${call.scope}, ${call.key}, ${call.method}, ${fingerprint}, 'in_progress', ${token}::uuid, ${lease}
      from (select set_config('lock_timeout', ${String(Math.max(1, Math.floor(waitLeftMs)))}, true)) as bounded
      on conflict (scope, key) do nothing
      returning scope`.execute(trx);
    return rows.length > 0;
  };

  const takeOver = async (scope: string, key: string, token: string): Promise<boolean> => {
    const result = await db
      .updateTable("idempotency_keys")
      .set({ lock_token: token, locked_until: lease })
      .where("scope", "=", scope)
      .where("key", "=", key)
      .where("state", "=", "in_progress")
      .where("locked_until", "<", sql<Date>`now()`)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  };

  const release = async (scope: string, key: string, token: string): Promise<void> => {
    await db
      .deleteFrom("idempotency_keys")
      .where("scope", "=", scope)
      .where("key", "=", key)
      .where("lock_token", "=", token)
      .where("state", "=", "in_progress")
      .execute();
  };

  const complete = async (
    conn: Kysely<DB>,
    scope: string,
    key: string,
    token: string,
    result: { code: string; response: Buffer | null; error: StoredError | null },
  ): Promise<void> => {
    const updated = await conn
      .updateTable("idempotency_keys")
      .set({
        state: "completed",
        result_code: result.code,
        response: result.response,
        error: result.error === null ? null : JSON.stringify(result.error),
        completed_at: sql<Date>`now()`,
        lock_token: null,
        locked_until: null,
      })
      .where("scope", "=", scope)
      .where("key", "=", key)
      .where("lock_token", "=", token)
      .executeTakeFirst();
    if (updated.numUpdatedRows === 0n) {
      // Our lease ran out and a retry took over: roll this execution back, the retry's result wins.
      throw new DomainError(
        "aborted",
        "this request took too long and was superseded by a retry with the same Idempotency-Key",
        { reason: "IDEMPOTENCY_LEASE_LOST" },
      );
    }
  };

  /** What to do about a key someone else holds: replay its result, claim again, or wait. */
  const inspect = async (
    call: { scope: string; key: string; method: string },
    fingerprint: Buffer,
  ): Promise<{ kind: "replay"; row: IdempotencyKeyRow } | { kind: "claim-again" } | { kind: "running" }> => {
    const row = await db
      .selectFrom("idempotency_keys")
      .selectAll()
      .select(sql<boolean>`created_at < now() - ${`${RETENTION_HOURS} hours`}::interval`.as("expired"))
      .where("scope", "=", call.scope)
      .where("key", "=", call.key)
      .executeTakeFirst();
    if (row === undefined) return { kind: "claim-again" }; // released since: claim it
    if (row.expired) {
      await db
        .deleteFrom("idempotency_keys")
        .where("scope", "=", call.scope)
        .where("key", "=", call.key)
        .where("created_at", "<", sql<Date>`now() - ${`${RETENTION_HOURS} hours`}::interval`)
        .execute();
      return { kind: "claim-again" };
    }
    if (row.method !== call.method || !row.fingerprint.equals(fingerprint))
      throw keyReused(row.method, call.method);
    return row.state === "completed" ? { kind: "replay", row } : { kind: "running" };
  };

  /** Waits a little for a running execution; throws 409 once the caller has waited long enough. */
  const waitForOther = async (localKey: string, deadline: number, pause: number): Promise<number> => {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw keyInUse();
    const local = running.get(localKey);
    if (local) await Promise.race([local, sleep(remaining)]);
    else await sleep(Math.min(pause, remaining));
    return Math.min(pause * 2, 200);
  };

  const storeError = async (
    call: { scope: string; key: string; method: string },
    fingerprint: Buffer,
    error: DomainError,
  ): Promise<void> => {
    await db
      .insertInto("idempotency_keys")
      .values({
        scope: call.scope,
        key: call.key,
        method: call.method,
        fingerprint,
        state: "completed",
        result_code: error.code,
        error: JSON.stringify(storedError(error)),
        completed_at: sql<Date>`now()`,
      })
      .onConflict((oc) => oc.columns(["scope", "key"]).doNothing())
      .execute()
      .catch((err: unknown) =>
        logger.warn({ err, method: call.method }, "could not store an idempotent error result"),
      );
  };

  /**
   * The one-transaction and one-statement paths, after finding the key taken: replay its result,
   * or tell the caller to claim again (after a pause while another call runs, 409 past `deadline`).
   */
  const whenTaken = async <Desc extends DescMessage>(
    call: IdempotentCall<Desc> & { key: string },
    fingerprint: Buffer,
    deadline: number,
    pause: number,
  ): Promise<IdempotentResult<Desc> | { pause: number }> => {
    const { scope, key, method } = call;
    const found = await inspect({ scope, key, method }, fingerprint);
    if (found.kind === "replay") return { response: replay(call.response, found.row), replayed: true };
    if (found.kind === "claim-again") return { pause };
    // Claims made by these paths never commit unfinished; a committed one whose lease ran out was
    // left by a crashed multi-transaction execution (or an older release): drop it and claim again.
    const stale = await db
      .deleteFrom("idempotency_keys")
      .where("scope", "=", scope)
      .where("key", "=", key)
      .where("state", "=", "in_progress")
      .where("locked_until", "<", sql<Date>`now()`)
      .executeTakeFirst();
    if (stale.numDeletedRows > 0n) return { pause };
    return { pause: await waitForOther(`${scope}\u0000${key}`, deadline, pause) };
  };

  return {
    async run(call, execute) {
      if (call.key === undefined) {
        return { response: await execute(() => Promise.resolve()), replayed: false };
      }
      const { scope, key, method } = call;
      const keyed = { scope, key, method };
      const fingerprint = fingerprintOf(method, call.fingerprint);
      const token = randomUUID();
      const localKey = `${scope}\u0000${key}`;
      const deadline = Date.now() + waitMs;
      let pause = 10;

      for (;;) {
        if (await claim(db, keyed, fingerprint, token)) break;
        const found = await inspect(keyed, fingerprint);
        if (found.kind === "replay") return { response: replay(call.response, found.row), replayed: true };
        if (found.kind === "claim-again") continue;
        if (await takeOver(scope, key, token)) {
          logger.warn(
            { method },
            "idempotency key taken over after its lease ran out (crashed or slow execution)",
          );
          break;
        }
        pause = await waitForOther(localKey, deadline, pause);
      }

      let finished!: () => void;
      running.set(localKey, new Promise<void>((resolve) => (finished = resolve)));
      try {
        let committed = false;
        const response = await execute(async (trx, message) => {
          await complete(trx, scope, key, token, {
            code: "ok",
            response: Buffer.from(toBinary(call.response, message)),
            error: null,
          });
          committed = true;
        });
        if (!committed) {
          await complete(db, scope, key, token, {
            code: "ok",
            response: Buffer.from(toBinary(call.response, response)),
            error: null,
          });
        }
        return { response, replayed: false };
      } catch (error) {
        if (error instanceof DomainError && STORED_ERRORS.has(error.code)) {
          await complete(db, scope, key, token, {
            code: error.code,
            response: null,
            error: storedError(error),
          }).catch((err: unknown) =>
            logger.warn({ err, method }, "could not store an idempotent error result"),
          );
        } else {
          await release(scope, key, token).catch((err: unknown) =>
            logger.warn({ err, method }, "could not release an idempotency key (its lease will run out)"),
          );
        }
        throw error;
      } finally {
        running.delete(localKey);
        finished();
      }
    },

    async runInTransaction(call, execute) {
      if (call.key === undefined) {
        return { response: await db.transaction().execute(execute), replayed: false };
      }
      const { scope, key, method } = call;
      const keyed = { scope, key, method };
      const fingerprint = fingerprintOf(method, call.fingerprint);
      const deadline = Date.now() + waitMs;
      let pause = 10;

      for (;;) {
        let outcome: { kind: "done"; response: MessageShape<typeof call.response> } | { kind: "taken" };
        try {
          outcome = await db.transaction().execute(async (trx) => {
            const token = randomUUID();
            if (!(await claimBounded(trx, keyed, fingerprint, token, deadline - Date.now()))) {
              return { kind: "taken" as const };
            }
            const response = await execute(trx);
            await complete(trx, scope, key, token, {
              code: "ok",
              response: Buffer.from(toBinary(call.response, response)),
              error: null,
            });
            return { kind: "done" as const, response };
          });
        } catch (error) {
          if (isLockTimeout(error)) throw keyInUse();
          // The claim rolled back with the work: store a deterministic error as the key's result.
          if (error instanceof DomainError && STORED_ERRORS.has(error.code))
            await storeError(keyed, fingerprint, error);
          throw error;
        }
        if (outcome.kind === "done") return { response: outcome.response, replayed: false };
        const replayed = await whenTaken({ ...call, key }, fingerprint, deadline, pause);
        if ("response" in replayed) return replayed;
        pause = replayed.pause;
      }
    },

    async runInStatement(call, response, execute) {
      const { key } = call;
      if (key === undefined) {
        await execute(undefined);
        return { response, replayed: false };
      }
      const fingerprint = fingerprintOf(call.method, call.fingerprint);
      const completedKey: CompletedKey = {
        scope: call.scope,
        key,
        method: call.method,
        fingerprint,
        state: "completed",
        result_code: "ok",
        response: Buffer.from(toBinary(call.response, response)),
        completed_at: new Date(),
      };
      const deadline = Date.now() + waitMs;
      let pause = 10;
      for (;;) {
        try {
          await execute(completedKey);
          return { response, replayed: false };
        } catch (error) {
          if (!isKeyConflict(error)) throw error;
        }
        const replayed = await whenTaken({ ...call, key }, fingerprint, deadline, pause);
        if ("response" in replayed) return replayed;
        pause = replayed.pause;
      }
    },

    async prune() {
      const result = await db
        .deleteFrom("idempotency_keys")
        .where("created_at", "<", sql<Date>`now() - ${`${RETENTION_HOURS} hours`}::interval`)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

/** The statement failed on the key's primary key: a duplicate got there first. */
function isKeyConflict(error: unknown): boolean {
  const e = error as { code?: unknown; constraint?: unknown } | null;
  return typeof e === "object" && e !== null && e.code === "23505" && e.constraint === "idempotency_keys_pk";
}

/** Postgres gave up waiting for a lock (`lock_timeout`). */
function isLockTimeout(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "55P03";
}

/** SHA-256 of the method and the request's canonical JSON (keys sorted at every level). */
export function fingerprintOf(method: string, input: unknown): Buffer {
  return createHash("sha256").update(method).update("\u0000").update(canonicalJson(input)).digest();
}

function canonicalJson(value: unknown): string {
  if (typeof value === "bigint") return JSON.stringify(value.toString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function storedError(error: DomainError): StoredError {
  return {
    code: error.code,
    message: error.message,
    ...(error.reason === undefined ? {} : { reason: error.reason }),
    ...(error.metadata === undefined ? {} : { metadata: error.metadata }),
    ...(error.fieldViolations === undefined ? {} : { fieldViolations: error.fieldViolations }),
  };
}

function replay<Desc extends DescMessage>(
  schema: Desc,
  row: { result_code: string | null; response: Buffer | null; error: StoredError | null },
): MessageShape<Desc> {
  if (row.result_code === "ok" && row.response !== null) return fromBinary(schema, row.response);
  const stored = row.error;
  if (stored === null) throw new Error("idempotency key completed without a result");
  throw new DomainError(stored.code as DomainErrorCode, stored.message, {
    ...(stored.reason === undefined ? {} : { reason: stored.reason }),
    ...(stored.metadata === undefined ? {} : { metadata: stored.metadata }),
    ...(stored.fieldViolations === undefined ? {} : { fieldViolations: stored.fieldViolations }),
  });
}

function keyReused(first: string, now: string): DomainError {
  return new DomainError(
    "invalid_argument",
    `this Idempotency-Key was already used ${first === now ? "with different parameters" : `for ${first}`}: send a new key for a new request`,
    // 422 over REST, as the IETF Idempotency-Key draft says (the gateway honours http_status).
    { reason: "IDEMPOTENCY_KEY_REUSED", metadata: { http_status: "422" } },
  );
}

function keyInUse(): DomainError {
  return new DomainError(
    "aborted",
    "a request with this Idempotency-Key is still being processed: retry in a moment",
    { reason: "IDEMPOTENCY_KEY_IN_USE", metadata: { http_status: "409" } },
  );
}
