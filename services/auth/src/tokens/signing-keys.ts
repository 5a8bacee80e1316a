import { DomainError } from "@zero/kit/errors";
import { calculateJwkThumbprint, type JWK, type JWK_OKP_Public } from "jose";
import { sql, type Kysely } from "kysely";
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { DB, SigningKeyRow, SigningKeyStatus } from "../db/schema.js";
import { openSecret, sealSecret } from "./sealed-secret.js";

// The Ed25519 keys that sign access tokens. Private keys are stored sealed under the key-encryption
// key from config (sealed-secret.ts), so a copy of the database alone cannot mint tokens.
//
// Rotation without downtime: a new key is PENDING first — published in the JWKS but not signing —
// for `activationDelaySeconds`, longer than any verifier caches the key set, so when it starts
// signing every verifier already knows it. The key it replaces turns PASSIVE: still published until
// every token it signed has expired (`passiveRetentionSeconds`), then RETIRED. The transitions
// happen in `promoteDue`, which the service's maintenance loop calls; a Postgres advisory lock
// serialises replicas.

export interface ActiveSigningKey {
  kid: string;
  privateKey: KeyObject;
}

export type SigningKeyInfo = Pick<
  SigningKeyRow,
  "kid" | "status" | "created_at" | "activate_at" | "retire_at"
>;

export interface SigningKeyStore {
  /** Creates the first active key if there is none; several replicas may call it at once. */
  ensureActiveKey(): Promise<{ kid: string; created: boolean }>;
  /** The key that signs new tokens. */
  activeKey(): Promise<ActiveSigningKey>;
  /** Public keys of the pending, active and passive keys: every token in circulation verifies. */
  publicJwks(): Promise<JWK[]>;
  /** Every key, newest first, retired ones included (no private material). */
  list(): Promise<SigningKeyInfo[]>;
  /** Creates the next key (pending), or activates it at once; answers the new key. */
  rotate(opts?: { activateNow?: boolean }): Promise<SigningKeyInfo>;
  /** Withdraws a pending or passive key from the JWKS now. */
  retire(kid: string): Promise<SigningKeyInfo>;
  /** Activates a pending key whose time has come and retires expired passive keys. */
  promoteDue(): Promise<{ activated: string | undefined; retired: string[] }>;
}

export function createSigningKeyStore(deps: {
  db: Kysely<DB>;
  /** AES-256-GCM key-encryption key, 32 bytes. */
  kek: Buffer;
  /** How long a new key is published before it signs (default 15 min). */
  activationDelaySeconds?: number;
  /** How long a replaced key stays published (default: 15 min access tokens + 10 min of caches). */
  passiveRetentionSeconds?: number;
  /** How long keys read from the database are reused by this replica (default 10 s). */
  cacheMs?: number;
}): SigningKeyStore {
  const { db, kek } = deps;
  const activationDelayMs = (deps.activationDelaySeconds ?? 900) * 1000;
  const retentionMs = (deps.passiveRetentionSeconds ?? 1500) * 1000;
  const cacheMs = deps.cacheMs ?? 10_000;
  const active = cached(cacheMs, () => loadActiveKey(db, kek));
  const publics = cached(cacheMs, () => loadPublicJwks(db));
  const clear = () => {
    active.clear();
    publics.clear();
  };

  // Demote the signer first: the unique index allows one active key at any instant.
  const activate = async (trx: Kysely<DB>, kid: string, now: Date) => {
    await trx
      .updateTable("signing_keys")
      .set({ status: "passive", retire_at: new Date(now.getTime() + retentionMs) })
      .where("status", "=", "active")
      .execute();
    await trx
      .updateTable("signing_keys")
      .set({ status: "active", activate_at: now })
      .where("kid", "=", kid)
      .execute();
  };

  const locked = <T>(work: (trx: Kysely<DB>) => Promise<T>): Promise<T> =>
    db.transaction().execute(async (trx) => {
      // Serialises replicas: the second waits, then sees the first's changes.
      await sql`select pg_advisory_xact_lock(hashtext('zero.auth.signing_keys'))`.execute(trx);
      return work(trx);
    });

  return {
    async ensureActiveKey() {
      const result = await locked(async (trx) => {
        const existing = await trx
          .selectFrom("signing_keys")
          .select("kid")
          .where("status", "=", "active")
          .executeTakeFirst();
        if (existing) return { kid: existing.kid, created: false };
        const kid = await insertKey(trx, kek, "active", new Date());
        return { kid, created: true };
      });
      clear();
      return result;
    },

    activeKey: () => active.get(),
    publicJwks: () => publics.get(),

    list: () =>
      db
        .selectFrom("signing_keys")
        .select(["kid", "status", "created_at", "activate_at", "retire_at"])
        .orderBy("created_at", "desc")
        .execute(),

    async rotate(opts = {}) {
      const kid = await locked(async (trx) => {
        const now = new Date();
        const pending = await trx
          .selectFrom("signing_keys")
          .select("kid")
          .where("status", "=", "pending")
          .orderBy("created_at", "desc")
          .executeTakeFirst();
        // One rotation at a time: a second request answers the key already on its way (or, in a
        // hurry, puts that one to work now) instead of stacking keys.
        const next =
          pending?.kid ?? (await insertKey(trx, kek, "pending", new Date(now.getTime() + activationDelayMs)));
        if (opts.activateNow) await activate(trx, next, now);
        return next;
      });
      clear();
      return findKey(db, kid);
    },

    async retire(kid) {
      const key = await locked(async (trx) => {
        const row = await trx
          .selectFrom("signing_keys")
          .select(["kid", "status"])
          .where("kid", "=", kid)
          .executeTakeFirst();
        if (!row) throw new DomainError("not_found", `no signing key has kid "${kid}"`);
        if (row.status === "active") {
          throw new DomainError(
            "failed_precondition",
            "the active key signs every new token: rotate with activate_now first, then retire it",
          );
        }
        if (row.status !== "retired") {
          await trx
            .updateTable("signing_keys")
            .set({ status: "retired", retire_at: new Date() })
            .where("kid", "=", kid)
            .execute();
        }
        return kid;
      });
      clear();
      return findKey(db, key);
    },

    async promoteDue() {
      const result = await locked(async (trx) => {
        const now = new Date();
        const due = await trx
          .selectFrom("signing_keys")
          .select("kid")
          .where("status", "=", "pending")
          .where("activate_at", "<=", now)
          .orderBy("activate_at", "desc")
          .executeTakeFirst();
        if (due) await activate(trx, due.kid, now);
        const retired = await trx
          .updateTable("signing_keys")
          .set({ status: "retired" })
          .where("status", "=", "passive")
          .where("retire_at", "<=", now)
          .returning("kid")
          .execute();
        return { activated: due?.kid, retired: retired.map((r) => r.kid) };
      });
      if (result.activated !== undefined || result.retired.length > 0) clear();
      return result;
    },
  };
}

async function insertKey(
  trx: Kysely<DB>,
  kek: Buffer,
  status: SigningKeyStatus,
  activateAt: Date,
): Promise<string> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const jwk = publicKey.export({ format: "jwk" }) as JWK_OKP_Public;
  const publicJwk: JWK_OKP_Public = { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  // RFC 7638 thumbprint: stable, derived from the key, and reveals nothing else.
  const kid = await calculateJwkThumbprint(publicJwk, "sha256");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  await trx
    .insertInto("signing_keys")
    .values({
      kid,
      public_jwk: JSON.stringify(publicJwk),
      private_key_encrypted: sealSecret(der, kek, kid),
      status,
      activate_at: activateAt,
    })
    .execute();
  return kid;
}

function findKey(db: Kysely<DB>, kid: string): Promise<SigningKeyInfo> {
  return db
    .selectFrom("signing_keys")
    .select(["kid", "status", "created_at", "activate_at", "retire_at"])
    .where("kid", "=", kid)
    .executeTakeFirstOrThrow();
}

async function loadActiveKey(db: Kysely<DB>, kek: Buffer): Promise<ActiveSigningKey> {
  const row = await db
    .selectFrom("signing_keys")
    .select(["kid", "private_key_encrypted"])
    .where("status", "=", "active")
    .executeTakeFirst();
  if (!row) throw new Error("no active signing key (ensureActiveKey has not run)");
  const der = openSecret(row.private_key_encrypted, kek, row.kid, `signing key ${row.kid}`);
  return { kid: row.kid, privateKey: createPrivateKey({ key: der, format: "der", type: "pkcs8" }) };
}

async function loadPublicJwks(db: Kysely<DB>): Promise<JWK[]> {
  const rows = await db
    .selectFrom("signing_keys")
    .select(["kid", "public_jwk"])
    .where("status", "in", ["pending", "active", "passive"])
    // Active first: clients that try keys in order find the current one at once.
    .orderBy(sql`status = 'active'`, "desc")
    .orderBy("created_at", "desc")
    .execute();
  return rows.map((r) => ({
    kty: r.public_jwk.kty,
    crv: r.public_jwk.crv,
    x: r.public_jwk.x,
    kid: r.kid,
    alg: "EdDSA",
    use: "sig",
  }));
}

/** Reuses one load (in flight or done) for `ttlMs`; a failed load is not kept. */
function cached<T>(ttlMs: number, load: () => Promise<T>): { get(): Promise<T>; clear(): void } {
  let entry: { value: Promise<T>; until: number } | undefined;
  return {
    get() {
      const now = Date.now();
      if (entry && entry.until > now) return entry.value;
      const value = load();
      const mine = { value, until: now + ttlMs };
      entry = mine;
      void value.catch(() => {
        if (entry === mine) entry = undefined;
      });
      return value;
    },
    clear() {
      entry = undefined;
    },
  };
}
