import { createDb, migrateToLatest } from "@zero/kit/db";
import { createTokenVerifier } from "@zero/kit/principal";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import type { Kysely } from "kysely";
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccessTokenIssuer } from "../src/tokens/access-token.js";
import { migrations } from "../src/db/migrations.js";
import type { DB } from "../src/db/schema.js";
import { openSecret } from "../src/tokens/sealed-secret.js";
import { createSigningKeyStore } from "../src/tokens/signing-keys.js";

let database: TestDatabase;
let db: Kysely<DB>;
const kek = randomBytes(32);

beforeAll(async () => {
  database = await createTestDatabase("auth_keys");
  db = createDb<DB>(database.url);
  await migrateToLatest(db, migrations);
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

beforeEach(async () => {
  await db.deleteFrom("signing_keys").execute();
});

describe("signing key store", () => {
  it("creates exactly one active key when replicas initialise concurrently", async () => {
    // Separate pools, as separate replicas would have.
    const pools = Array.from({ length: 4 }, () => createDb<DB>(database.url, { max: 2 }));
    let results: { kid: string; created: boolean }[];
    try {
      results = await Promise.all(
        pools.flatMap((pool) =>
          [pool, pool].map((p) => createSigningKeyStore({ db: p, kek }).ensureActiveKey()),
        ),
      );
    } finally {
      await Promise.all(pools.map((p) => p.destroy()));
    }
    const rows = await db.selectFrom("signing_keys").select(["kid", "status"]).execute();
    expect(rows).toEqual([{ kid: expect.any(String) as string, status: "active" }]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.kid))).toEqual(new Set([rows[0]!.kid]));
    // A second start finds the key and keeps it.
    await createSigningKeyStore({ db, kek }).ensureActiveKey();
    expect(await db.selectFrom("signing_keys").select("kid").execute()).toEqual([{ kid: rows[0]!.kid }]);
  });

  it("stores the private key encrypted, never in the clear", async () => {
    const store = createSigningKeyStore({ db, kek });
    await store.ensureActiveKey();
    const row = await db.selectFrom("signing_keys").selectAll().executeTakeFirstOrThrow();
    const der = openSecret(row.private_key_encrypted, kek, row.kid, "test");
    const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    // The decrypted key is the private half of the published key…
    expect(createPublicKey(privateKey).export({ format: "jwk" })).toMatchObject({ x: row.public_jwk.x });
    // …and neither its PKCS#8 encoding nor its raw 32-byte seed appears in the column.
    const seed = Buffer.from((privateKey.export({ format: "jwk" }) as { d: string }).d, "base64url");
    expect(row.private_key_encrypted.includes(der)).toBe(false);
    expect(row.private_key_encrypted.includes(seed)).toBe(false);
    expect(row.private_key_encrypted.toString("latin1")).not.toContain("PRIVATE KEY");
    expect(row.public_jwk).toEqual({ kty: "OKP", crv: "Ed25519", x: expect.any(String) as string });
  });

  it("cannot use the keys under another key-encryption key", async () => {
    await createSigningKeyStore({ db, kek }).ensureActiveKey();
    await expect(createSigningKeyStore({ db, kek: randomBytes(32) }).activeKey()).rejects.toThrow(
      /cannot decrypt/,
    );
  });

  it("publishes pending, active and passive keys, not retired ones, active first", async () => {
    const store = createSigningKeyStore({ db, kek, cacheMs: 0 });
    await store.ensureActiveKey();
    const active = await db.selectFrom("signing_keys").selectAll().executeTakeFirstOrThrow();
    // Stand-ins for keys a rotation has demoted (only their status matters here).
    for (const status of ["passive", "retired"] as const) {
      await db
        .insertInto("signing_keys")
        .values({
          kid: `old-${status}`,
          public_jwk: JSON.stringify(active.public_jwk),
          private_key_encrypted: active.private_key_encrypted,
          status,
        })
        .execute();
    }
    const keys = await store.publicJwks();
    expect(keys.map((k) => k.kid)).toEqual([active.kid, "old-passive"]);
    expect(keys[0]).toEqual({ ...active.public_jwk, kid: active.kid, alg: "EdDSA", use: "sig" });
  });

  it("signs tokens the kit verifier accepts from the store's public keys", async () => {
    const store = createSigningKeyStore({ db, kek });
    await store.ensureActiveKey();
    const issuer = createAccessTokenIssuer({
      issuer: "zero-auth",
      audience: "zero",
      ttlSeconds: 900,
      signingKey: () => store.activeKey(),
    });
    const verifier = createTokenVerifier({
      issuer: "zero-auth",
      audience: "zero",
      getJwks: async () => ({ keys: await store.publicJwks() }),
    });
    const { token } = await issuer.issueUserToken({
      userId: "user-1",
      email: "a@example.com",
      roles: ["customer", "admin"],
      sessionId: "s-1",
      twoFactor: false,
    });
    await expect(verifier.verify(token)).resolves.toMatchObject({
      subject: "user-1",
      roles: ["customer", "admin"],
      kind: "user",
    });
  });
});

describe("rotation", () => {
  const sign = (store: ReturnType<typeof createSigningKeyStore>) =>
    createAccessTokenIssuer({
      issuer: "zero-auth",
      audience: "zero",
      ttlSeconds: 900,
      signingKey: () => store.activeKey(),
    }).issueUserToken({ userId: "u", email: "a@example.com", roles: [], sessionId: "s", twoFactor: false });
  const kidOf = (token: string) =>
    (JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

  it("publishes the next key before it signs, then keeps the old one until its tokens expire", async () => {
    const store = createSigningKeyStore({
      db,
      kek,
      cacheMs: 0,
      activationDelaySeconds: 3600,
      passiveRetentionSeconds: 3600,
    });
    const first = (await store.ensureActiveKey()).kid;
    const before = await sign(store);

    const next = await store.rotate();
    expect(next).toMatchObject({ status: "pending" });
    expect(next.activate_at!.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    // Published at once, not signing yet.
    expect((await store.publicJwks()).map((k) => k.kid).sort()).toEqual([first, next.kid].sort());
    expect(kidOf((await sign(store)).token)).toBe(first);
    // A second request answers the same pending key instead of stacking another.
    expect((await store.rotate()).kid).toBe(next.kid);

    // Nothing is due yet.
    expect(await store.promoteDue()).toEqual({ activated: undefined, retired: [] });
    // Time passes (the activation instant moves into the past).
    await db
      .updateTable("signing_keys")
      .set({ activate_at: new Date(Date.now() - 1000) })
      .where("kid", "=", next.kid)
      .execute();
    expect(await store.promoteDue()).toEqual({ activated: next.kid, retired: [] });
    expect(kidOf((await sign(store)).token)).toBe(next.kid);

    // The old key still verifies what it signed.
    const verifier = createTokenVerifier({
      issuer: "zero-auth",
      audience: "zero",
      getJwks: async () => ({ keys: await store.publicJwks() }),
    });
    await expect(verifier.verify(before.token)).resolves.toMatchObject({ subject: "u" });
    const statuses = Object.fromEntries((await store.list()).map((k) => [k.kid, k.status]));
    expect(statuses).toEqual({ [first]: "passive", [next.kid]: "active" });

    // After the retention, it leaves the key set.
    await db
      .updateTable("signing_keys")
      .set({ retire_at: new Date(Date.now() - 1000) })
      .where("kid", "=", first)
      .execute();
    expect(await store.promoteDue()).toEqual({ activated: undefined, retired: [first] });
    expect((await store.publicJwks()).map((k) => k.kid)).toEqual([next.kid]);
    const fresh = createTokenVerifier({
      issuer: "zero-auth",
      audience: "zero",
      getJwks: async () => ({ keys: await store.publicJwks() }),
    });
    await expect(fresh.verify(before.token)).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("activates at once when asked, and retires a passive key on demand but never the active one", async () => {
    const store = createSigningKeyStore({ db, kek, cacheMs: 0 });
    const first = (await store.ensureActiveKey()).kid;
    const next = await store.rotate({ activateNow: true });
    expect(next.status).toBe("active");
    expect(kidOf((await sign(store)).token)).toBe(next.kid);
    await expect(store.retire(next.kid)).rejects.toMatchObject({ code: "failed_precondition" });
    await expect(store.retire("no-such-kid")).rejects.toMatchObject({ code: "not_found" });
    expect(await store.retire(first)).toMatchObject({ kid: first, status: "retired" });
    expect((await store.publicJwks()).map((k) => k.kid)).toEqual([next.kid]);
  });
});
