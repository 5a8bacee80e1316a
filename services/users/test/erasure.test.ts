import { sql } from "kysely";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anAddress, aUserId, Code, rpcError, startTestUsers, type TestUsers } from "./fixtures.js";

// GDPR art. 17: auth's UserDeleted makes users forget the person. The proof reads every table
// of the service's database, whatever it is, and looks for anything that was theirs.

let users: TestUsers;

beforeAll(async () => {
  users = await startTestUsers();
});

afterAll(async () => {
  await users?.close();
});

/** Every row of every table in the database, as text, so no table can be forgotten. */
async function everyRow(): Promise<{ table: string; row: string }[]> {
  const { rows: tables } = await sql<{ name: string }>`
    select table_schema || '.' || table_name as name from information_schema.tables
    where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'`.execute(
    users.server.db,
  );
  expect(tables.map((t) => t.name)).toEqual(
    expect.arrayContaining([
      "public.profiles",
      "public.addresses",
      "public.erased_users",
      "public.kit_inbox",
      "public.kit_outbox",
    ]),
  );
  const out: { table: string; row: string }[] = [];
  for (const { name } of tables) {
    const [schema, table] = name.split(".") as [string, string];
    const { rows } = await sql<{
      row: string;
    }>`select t::text as row from ${sql.table(`${schema}.${table}`)} t`.execute(users.server.db);
    out.push(...rows.map((r) => ({ table: name, row: r.row })));
  }
  return out;
}

/** A user with a full profile and addresses, each value unique to this test. */
async function aUserWithData() {
  const marker = randomBytes(6).toString("hex");
  const person = {
    firstName: `Erin${marker}`,
    lastName: `Erased${marker}`,
    displayName: `erin-${marker}`,
    bio: `bio ${marker}`,
    avatarUrl: `https://images.example.com/${marker}.png`,
    street: `${marker} Forget-Me Lane`,
    phone: `+4930${parseInt(marker.slice(0, 6), 16) % 10_000_000}`.slice(0, 12),
  };
  const { userId, token } = await users.aRegisteredUser({
    firstName: person.firstName,
    lastName: person.lastName,
  });
  const client = users.client(token);
  await client.updateProfile({
    userId: "me",
    profile: {
      displayName: person.displayName,
      bio: person.bio,
      avatarUrl: person.avatarUrl,
      locale: "de-DE",
      marketing: { emailOptIn: true },
    },
  });
  for (const [i, defaults] of [{ defaultShipping: true }, { defaultBilling: true }, {}].entries()) {
    await client.createAddress({
      userId: "me",
      address: anAddress({
        recipientName: `${person.firstName} ${person.lastName}`,
        line1: `${person.street} ${i}`,
        phone: person.phone,
        ...defaults,
      }),
    });
  }
  return { userId, token, client, person, values: [userId, ...Object.values(person)] };
}

const profileGone = (userId: string) => async () =>
  (await users.server.db
    .selectFrom("profiles")
    .select("user_id")
    .where("user_id", "=", userId)
    .executeTakeFirst()) === undefined;

describe("erasure on UserDeleted (users-erasure)", () => {
  it("leaves nothing personal about the user in any table, and keeps everyone else's data", async () => {
    const erased = await aUserWithData();
    const kept = await aUserWithData();
    const before = await everyRow();
    for (const value of erased.values)
      expect(
        before.some((r) => r.row.includes(value)),
        value,
      ).toBe(true);

    await users.deleted(erased.userId);
    await users.until(profileGone(erased.userId), "the profile to be erased");

    const after = await everyRow();
    for (const value of erased.values) {
      const found = after.filter((r) => r.row.toLowerCase().includes(value.toLowerCase()));
      expect(found, `${value} still in ${found.map((f) => f.table).join(", ")}`).toEqual([]);
    }
    // Not even the id in another spelling (upper case, without dashes).
    const compact = erased.userId.replaceAll("-", "");
    expect(after.filter((r) => r.row.toLowerCase().replaceAll("-", "").includes(compact))).toEqual([]);
    // Everyone else's data is untouched.
    for (const value of kept.values)
      expect(
        after.some((r) => r.row.includes(value)),
        value,
      ).toBe(true);
    expect((await kept.client.listAddresses({ userId: "me" })).addresses).toHaveLength(3);
  });

  it("is idempotent: the same event redelivered and the deletion repeated change nothing and fail nothing", async () => {
    const { userId } = await aUserWithData();
    const eventId = await users.deleted(userId);
    await users.until(profileGone(userId), "the profile to be erased");
    await users.deleted(userId, eventId, aUserId()); // the same event redelivered, past JetStream's dedup
    await users.deleted(userId); // a second deletion event
    // Stream order: once a later deletion is handled, the repeats were handled before it.
    const later = await aUserWithData();
    await users.deleted(later.userId);
    await users.until(profileGone(later.userId), "the later profile to be erased");
    const { rows } = await sql<{
      n: string;
    }>`select count(*) as n from kit_inbox where consumer = 'users-erasure' and event_id = ${eventId}`.execute(
      users.server.db,
    );
    expect(Number(rows[0]!.n)).toBe(1);
    expect(
      await users.server.db.selectFrom("addresses").select("id").where("user_id", "=", userId).execute(),
    ).toEqual([]);
  });

  it("does not let a late or replayed UserRegistered bring the profile back", async () => {
    const { userId } = await aUserWithData();
    await users.deleted(userId);
    await users.until(profileGone(userId), "the profile to be erased");
    await users.registered(userId, { firstName: "Zombie" });
    // Deleted before its registration was ever seen: the registration must not create it either.
    const unseen = aUserId();
    await users.deleted(unseen);
    await users.registered(unseen, { firstName: "Zombie" });
    await users.aRegisteredUser(); // both consumers are past those events once this one is applied
    await users.until(async () => {
      const { rows } = await sql<{
        n: string;
      }>`select count(*) as n from kit_inbox where consumer = 'users-erasure'`.execute(users.server.db);
      return Number(rows[0]!.n) >= 2;
    }, "the erasures");
    const zombies = await users.server.db
      .selectFrom("profiles")
      .select("user_id")
      .where("first_name", "=", "Zombie")
      .execute();
    expect(zombies).toEqual([]);
  });

  it("refuses writes with a still-valid token after erasure (NOT_FOUND, account deleted)", async () => {
    const { userId, client } = await aUserWithData();
    await users.deleted(userId);
    await users.until(profileGone(userId), "the profile to be erased");
    for (const attempt of [
      () => client.updateProfile({ userId: "me", profile: { bio: "back again" } }),
      () => client.createAddress({ userId: "me", address: anAddress() }),
      () => client.getProfile({ userId: "me" }),
    ]) {
      const error = await rpcError(attempt());
      expect(error.code).toBe(Code.NotFound);
      expect(error.rawMessage).toMatch(/deleted/);
    }
    expect((await client.listAddresses({ userId: "me" })).addresses).toEqual([]);
    expect(
      await users.server.db.selectFrom("profiles").select("user_id").where("user_id", "=", userId).execute(),
    ).toEqual([]);
  });
});
