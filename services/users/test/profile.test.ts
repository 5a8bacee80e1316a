import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aUserId, Code, rpcError, startTestUsers, violations, type TestUsers } from "./fixtures.js";

let users: TestUsers;

beforeAll(async () => {
  users = await startTestUsers();
});

afterAll(async () => {
  await users?.close();
});

const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

describe("profile created from UserRegistered (users-profiles)", () => {
  it("creates the profile with the registered names", async () => {
    const { userId, token } = await users.aRegisteredUser({ firstName: "Grace", lastName: "Hopper" });
    const { profile } = await users.client(token).getProfile({ userId: "me" });
    expect(profile).toMatchObject({
      userId,
      firstName: "Grace",
      lastName: "Hopper",
      displayName: "",
      marketing: { emailOptIn: false, smsOptIn: false },
    });
    expect(profile?.marketing?.consentUpdateTime).toBeUndefined();
    expect(timestampDate(profile!.createTime!).getTime()).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it("applies a redelivered event once (inbox), and a replay under a new id as the same one profile", async () => {
    const userId = aUserId();
    const eventId = await users.registered(userId, { firstName: "Once" });
    await users.until(
      async () =>
        (await users.server.db
          .selectFrom("profiles")
          .select("user_id")
          .where("user_id", "=", userId)
          .executeTakeFirst()) !== undefined,
      "the profile",
    );
    // The user clears the first name; were the redelivered copy applied again, it would refill it.
    const client = users.client(await users.tokens.user(userId));
    await client.updateProfile({ userId: "me", profile: {}, updateMask: mask("first_name") });
    // Same event id, past JetStream's dedup (another Nats-Msg-Id): only the inbox stops it.
    await users.registered(userId, { firstName: "Twice" }, eventId, aUserId());
    // The same fact republished under a new event id: applied, but still one profile.
    await users.registered(userId, { firstName: "Replayed", lastName: "" });
    // The consumer works in stream order: once a later registration is applied, both copies were handled.
    await users.aRegisteredUser();

    const rows = await users.server.db
      .selectFrom("profiles")
      .selectAll()
      .where("user_id", "=", userId)
      .execute();
    expect(rows).toHaveLength(1);
    const { rows: inbox } = await sql<{
      event_id: string;
    }>`select event_id from kit_inbox where consumer = 'users-profiles' and event_id = ${eventId}`.execute(
      users.server.db,
    );
    expect(inbox).toHaveLength(1);
    // Not "Twice": the redelivery was skipped. The new-id replay filled the empty name only.
    expect(rows[0]).toMatchObject({ first_name: "Replayed", last_name: "Lovelace" });
  });

  it("keeps what the user wrote when their update beat the registration event", async () => {
    const userId = aUserId();
    const client = users.client(await users.tokens.user(userId));
    const early = await client.updateProfile({
      userId: "me",
      profile: { displayName: "early bird", lastName: "Mine" },
    });
    expect(early.profile).toMatchObject({
      userId,
      displayName: "early bird",
      firstName: "",
      lastName: "Mine",
    });
    await users.registered(userId, { firstName: "Ada", lastName: "Lovelace" });
    await users.until(
      async () => (await client.getProfile({ userId: "me" })).profile?.firstName === "Ada",
      "the registration's names",
    );
    const { profile } = await client.getProfile({ userId: "me" });
    expect(profile).toMatchObject({ firstName: "Ada", lastName: "Mine", displayName: "early bird" });
  });

  it("answers NOT_FOUND for the caller's own profile before the event arrived, saying why", async () => {
    const client = users.client(await users.tokens.user(aUserId()));
    const error = await rpcError(client.getProfile({ userId: "me" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toMatch(/not there yet.*retry/);
  });
});

describe("UpdateProfile", () => {
  it("changes only the fields named by update_mask", async () => {
    const { userId, token } = await users.aRegisteredUser({ firstName: "Ada", lastName: "Lovelace" });
    const client = users.client(token);
    const { profile } = await client.updateProfile({
      userId,
      profile: { firstName: "IGNORED", displayName: "  ada  ", bio: "Analyst.\r\nPoet.", locale: "en-gb" },
      updateMask: mask("display_name", "bio", "locale"),
    });
    expect(profile).toMatchObject({
      firstName: "Ada",
      lastName: "Lovelace",
      displayName: "ada",
      bio: "Analyst.\nPoet.",
      locale: "en-GB",
    });
    expect(timestampDate(profile!.updateTime!).getTime()).toBeGreaterThanOrEqual(
      timestampDate(profile!.createTime!).getTime(),
    );
    // Named in the mask with an empty value: cleared.
    const cleared = await client.updateProfile({ userId: "me", profile: {}, updateMask: mask("bio") });
    expect(cleared.profile).toMatchObject({ bio: "", displayName: "ada" });
  });

  it("without a mask changes the fields given a value (AIP-134), camelCase paths accepted", async () => {
    const { token } = await users.aRegisteredUser();
    const client = users.client(token);
    const { profile } = await client.updateProfile({ userId: "me", profile: { displayName: "Countess" } });
    expect(profile).toMatchObject({ displayName: "Countess", firstName: "Ada" });
    const camel = await client.updateProfile({
      userId: "me",
      profile: { avatarUrl: "https://images.example.com/a.png" },
      updateMask: mask("avatarUrl"),
    });
    expect(camel.profile?.avatarUrl).toBe("https://images.example.com/a.png");
  });

  it("`*` replaces every updatable field", async () => {
    const { token } = await users.aRegisteredUser();
    const client = users.client(token);
    await client.updateProfile({ userId: "me", profile: { displayName: "x", bio: "y" } });
    const { profile } = await client.updateProfile({
      userId: "me",
      profile: { firstName: "Only" },
      updateMask: mask("*"),
    });
    expect(profile).toMatchObject({ firstName: "Only", lastName: "", displayName: "", bio: "" });
  });

  it("records when marketing consent changes, and only then", async () => {
    const { token } = await users.aRegisteredUser();
    const client = users.client(token);
    const optIn = await client.updateProfile({ userId: "me", profile: { marketing: { emailOptIn: true } } });
    expect(optIn.profile?.marketing).toMatchObject({ emailOptIn: true, smsOptIn: false });
    const consentTime = optIn.profile?.marketing?.consentUpdateTime;
    expect(consentTime).toBeDefined();
    const other = await client.updateProfile({ userId: "me", profile: { bio: "unrelated" } });
    expect(other.profile?.marketing?.consentUpdateTime).toEqual(consentTime);
    // Opting out is an explicit `false`: present, so it counts as given even without a mask.
    const optOut = await client.updateProfile({
      userId: "me",
      profile: { marketing: { emailOptIn: false } },
    });
    expect(optOut.profile?.marketing?.emailOptIn).toBe(false);
    const group = await client.updateProfile({
      userId: "me",
      profile: { marketing: { smsOptIn: true } },
      updateMask: mask("marketing"),
    });
    expect(group.profile?.marketing).toMatchObject({ emailOptIn: false, smsOptIn: true });
  });

  it.each([
    ["an http avatar URL", { avatarUrl: "http://images.example.com/a.png" }, "profile.avatar_url", /https/],
    ["a relative avatar URL", { avatarUrl: "/a.png" }, "profile.avatar_url", /absolute https URL/],
    [
      "credentials in the avatar URL",
      { avatarUrl: "https://me:pw@example.com/a.png" },
      "profile.avatar_url",
      /user name or password/,
    ],
    ["a javascript: avatar URL", { avatarUrl: "javascript:alert(1)" }, "profile.avatar_url", /https/],
    [
      "an over-long avatar URL",
      { avatarUrl: `https://example.com/${"a".repeat(2048)}` },
      "profile.avatar_url",
      /2048/,
    ],
    ["a locale that is no BCP 47 tag", { locale: "en_US" }, "profile.locale", /BCP 47/],
    ["a 101-character first name", { firstName: "n".repeat(101) }, "profile.first_name", /at most 100/],
    ["a 51-character display name", { displayName: "d".repeat(51) }, "profile.display_name", /at most 50/],
    ["a 501-character bio", { bio: "b".repeat(501) }, "profile.bio", /at most 500/],
    ["a line break in a name", { lastName: "Love\nlace" }, "profile.last_name", /line breaks/],
    [
      "a bidirectional override",
      { displayName: "admin\u202Egnp.exe" },
      "profile.display_name",
      /bidirectional/,
    ],
    ["a NUL byte in the bio", { bio: "a\u0000b" }, "profile.bio", /NUL character \(U\+0000\)/],
  ])("refuses %s with invalid_argument naming the field", async (_, profile, field, description) => {
    const { token } = await users.aRegisteredUser();
    const error = await rpcError(users.client(token).updateProfile({ userId: "me", profile }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)[field]).toMatch(description);
    expect(error.rawMessage).toContain(field);
  });

  it("reports every bad field at once", async () => {
    const { token } = await users.aRegisteredUser();
    const error = await rpcError(
      users.client(token).updateProfile({ userId: "me", profile: { avatarUrl: "ftp://x", locale: "!!" } }),
    );
    expect(Object.keys(violations(error)).sort()).toEqual(["profile.avatar_url", "profile.locale"]);
  });

  it.each([
    ["only read-only paths", ["user_id", "create_time"], /nothing to update.*read-only/],
    ["an unknown path", ["roles"], /not an updatable field/],
    ["`*` with other paths", ["*", "bio"], /only path/],
  ])("refuses %s in update_mask", async (_, paths, description) => {
    const { token } = await users.aRegisteredUser();
    const error = await rpcError(
      users.client(token).updateProfile({ userId: "me", profile: { bio: "x" }, updateMask: mask(...paths) }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)["update_mask"]).toMatch(description);
  });

  it("refuses an update with nothing to change", async () => {
    const { token } = await users.aRegisteredUser();
    const error = await rpcError(users.client(token).updateProfile({ userId: "me", profile: {} }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)["update_mask"]).toMatch(/nothing to update/);
  });

  it("ignores output-only fields in the body (no mass assignment of user_id)", async () => {
    const { userId, token } = await users.aRegisteredUser();
    const victim = await users.aRegisteredUser({ firstName: "Victim" });
    const { profile } = await users.client(token).updateProfile({
      userId: "me",
      profile: { userId: victim.userId, displayName: "mine" },
    });
    expect(profile?.userId).toBe(userId);
    const { profile: untouched } = await users.client(victim.token).getProfile({ userId: "me" });
    expect(untouched).toMatchObject({ firstName: "Victim", displayName: "" });
  });

  it("accepts the profile it answered sent back with a mask naming read-only paths too (AIP-203)", async () => {
    const { userId, token } = await users.aRegisteredUser();
    const client = users.client(token);
    const { profile } = await client.getProfile({ userId: "me" });
    profile!.bio = "round trip";
    const { profile: updated } = await client.updateProfile({
      userId: "me",
      profile: profile!,
      updateMask: mask("user_id", "bio", "create_time", "marketing.consent_update_time"),
    });
    expect(updated).toMatchObject({ userId, bio: "round trip", firstName: profile!.firstName });
  });

  it("refuses an unknown JSON field (e.g. roles) and writes nothing", async () => {
    const { userId, token } = await users.aRegisteredUser();
    const res = await fetch(`${users.server.url}/zero.users.v1.UserService/UpdateProfile`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        userId: "me",
        profile: { displayName: "x", roles: ["admin"] },
        roles: ["admin"],
      }),
    });
    // The kit's Connect handlers parse JSON strictly, as the gateway does for REST (gateway.test.ts).
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    const row = await users.server.db
      .selectFrom("profiles")
      .selectAll()
      .where("user_id", "=", userId)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain("admin");
  });
});
