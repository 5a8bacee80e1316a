import { calculateJwkThumbprint, type JWK, type JWK_OKP_Public } from "jose";
import { sql, type Kysely } from "kysely";
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import type { DB } from "./db/schema.js";

// The Ed25519 keys that sign access tokens. Private keys are stored sealed with AES-256-GCM under
// the key-encryption key from config, so a copy of the database alone cannot mint tokens.
//
// Sealed layout: version (1 byte, 0x01) | IV (12) | GCM tag (16) | ciphertext. The kid is bound as
// additional authenticated data, so a sealed key moved onto another row fails to open.

const SEAL_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;

export const KEY_ENCRYPTION_KEY_BYTES = 32;

export function sealPrivateKey(pkcs8Der: Buffer, kek: Buffer, kid: string): Buffer {
  assertKek(kek);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", kek, iv);
  cipher.setAAD(Buffer.from(kid, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(pkcs8Der), cipher.final()]);
  return Buffer.concat([Buffer.of(SEAL_VERSION), iv, cipher.getAuthTag(), ciphertext]);
}

export function openPrivateKey(sealed: Buffer, kek: Buffer, kid: string): Buffer {
  assertKek(kek);
  if (sealed.length <= HEADER_BYTES || sealed[0] !== SEAL_VERSION) {
    throw new Error(`signing key ${kid}: unknown sealed-key format`);
  }
  const iv = sealed.subarray(1, 1 + IV_BYTES);
  const tag = sealed.subarray(1 + IV_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", kek, iv);
  decipher.setAAD(Buffer.from(kid, "utf8"));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    // GCM refuses a wrong key and tampered data alike; say which is the likely cause.
    throw new Error(
      `signing key ${kid}: cannot decrypt (wrong AUTH_KEY_ENCRYPTION_KEY, or the row was altered)`,
    );
  }
}

function assertKek(kek: Buffer): void {
  if (kek.length !== KEY_ENCRYPTION_KEY_BYTES) {
    throw new Error(`key-encryption key must be ${KEY_ENCRYPTION_KEY_BYTES} bytes, got ${kek.length}`);
  }
}

export interface ActiveSigningKey {
  kid: string;
  privateKey: KeyObject;
}

export interface SigningKeyStore {
  /** Creates the first active key if there is none; several replicas may call it at once. */
  ensureActiveKey(): Promise<{ kid: string; created: boolean }>;
  /** The key that signs new tokens. */
  activeKey(): Promise<ActiveSigningKey>;
  /** Public keys of the active and passive keys: every token still in circulation verifies. */
  publicJwks(): Promise<JWK[]>;
}

export function createSigningKeyStore(deps: {
  db: Kysely<DB>;
  /** AES-256-GCM key-encryption key, 32 bytes. */
  kek: Buffer;
  /** How long keys read from the database are reused (rotation is picked up after this). */
  cacheMs?: number;
}): SigningKeyStore {
  const { db, kek } = deps;
  assertKek(kek);
  const cacheMs = deps.cacheMs ?? 60_000;
  const active = cached(cacheMs, () => loadActiveKey(db, kek));
  const publics = cached(cacheMs, () => loadPublicJwks(db));

  return {
    async ensureActiveKey() {
      const result = await db.transaction().execute(async (trx) => {
        // Serialises replicas starting together: the second waits, then sees the first's key.
        await sql`select pg_advisory_xact_lock(hashtext('zero.auth.signing_keys'))`.execute(trx);
        const existing = await trx
          .selectFrom("signing_keys")
          .select("kid")
          .where("status", "=", "active")
          .executeTakeFirst();
        if (existing) return { kid: existing.kid, created: false };
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
            private_key_encrypted: sealPrivateKey(der, kek, kid),
            status: "active",
          })
          .execute();
        return { kid, created: true };
      });
      active.clear();
      publics.clear();
      return result;
    },
    activeKey: () => active.get(),
    publicJwks: () => publics.get(),
  };
}

async function loadActiveKey(db: Kysely<DB>, kek: Buffer): Promise<ActiveSigningKey> {
  const row = await db
    .selectFrom("signing_keys")
    .select(["kid", "private_key_encrypted"])
    .where("status", "=", "active")
    .executeTakeFirst();
  if (!row) throw new Error("no active signing key (ensureActiveKey has not run)");
  const der = openPrivateKey(row.private_key_encrypted, kek, row.kid);
  return { kid: row.kid, privateKey: createPrivateKey({ key: der, format: "der", type: "pkcs8" }) };
}

async function loadPublicJwks(db: Kysely<DB>): Promise<JWK[]> {
  const rows = await db
    .selectFrom("signing_keys")
    .select(["kid", "public_jwk"])
    .where("status", "in", ["active", "passive"])
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
