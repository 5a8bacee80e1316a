import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

// Secrets auth must be able to read back (signing keys' private halves, TOTP secrets) are stored
// sealed with AES-256-GCM, so a copy of the database alone reveals none of them.
//
// Sealed layout: version (1 byte, 0x01) | IV (12) | GCM tag (16) | ciphertext. A context string
// (the key's kid, the user's id) is bound as additional authenticated data, so a sealed value
// moved onto another row fails to open.

const SEAL_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;

export const KEY_ENCRYPTION_KEY_BYTES = 32;

export function sealSecret(plain: Buffer, key: Buffer, context: string): Buffer {
  assertKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([Buffer.of(SEAL_VERSION), iv, cipher.getAuthTag(), ciphertext]);
}

/** `what` names the secret in errors (never its value). */
export function openSecret(sealed: Buffer, key: Buffer, context: string, what: string): Buffer {
  assertKey(key);
  if (sealed.length <= HEADER_BYTES || sealed[0] !== SEAL_VERSION) {
    throw new Error(`${what}: unknown sealed-secret format`);
  }
  const iv = sealed.subarray(1, 1 + IV_BYTES);
  const tag = sealed.subarray(1 + IV_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, iv);
  decipher.setAAD(Buffer.from(context, "utf8"));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    // GCM refuses a wrong key and tampered data alike; say which is the likely cause.
    throw new Error(`${what}: cannot decrypt (wrong AUTH_KEY_ENCRYPTION_KEY, or the row was altered)`);
  }
}

/**
 * A key for one purpose derived from the key-encryption key (HKDF-SHA256), so one secret from the
 * environment serves several uses without any two sharing a key. The signing keys keep the
 * key-encryption key itself (their rows predate the derivation).
 */
export function deriveKey(kek: Buffer, purpose: "totp-secrets" | "recovery-codes"): Buffer {
  assertKey(kek);
  return Buffer.from(
    hkdfSync("sha256", kek, Buffer.alloc(0), `zero-auth/${purpose}`, KEY_ENCRYPTION_KEY_BYTES),
  );
}

function assertKey(key: Buffer): void {
  if (key.length !== KEY_ENCRYPTION_KEY_BYTES) {
    throw new Error(`key-encryption key must be ${KEY_ENCRYPTION_KEY_BYTES} bytes, got ${key.length}`);
  }
}
