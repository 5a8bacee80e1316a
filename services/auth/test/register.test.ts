import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { aRegistration, rpcError, startTestAuth, waitForEvents, type TestAuth } from "./fixtures.js";

let auth: TestAuth;

beforeAll(async () => {
  auth = await startTestAuth();
});

afterAll(async () => {
  await auth?.close();
});

function violations(error: ConnectError): Record<string, string> {
  const details = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
  return Object.fromEntries(details.map((v) => [v.field, v.description]));
}

describe("Register", () => {
  it("normalises the email and answers the new user", async () => {
    const before = Date.now();
    const { user } = await auth.client.register(
      aRegistration({ email: "  Foo@Example.COM ", firstName: " Ada ", lastName: "Lovelace" }),
    );
    expect(user).toMatchObject({
      email: "foo@example.com",
      firstName: "Ada",
      lastName: "Lovelace",
      roles: ["customer"],
    });
    // UUIDv7: version nibble 7.
    expect(user?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const created = timestampDate(user!.createTime!).getTime();
    expect(created).toBeGreaterThanOrEqual(before - 5000);
    expect(created).toBeLessThanOrEqual(Date.now() + 5000);

    const row = await auth.server.db
      .selectFrom("users")
      .selectAll()
      .where("id", "=", user!.id)
      .executeTakeFirstOrThrow();
    expect(row.email).toBe("foo@example.com");
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it("refuses the same email in another case with already_exists", async () => {
    await auth.client.register(aRegistration({ email: "case@example.com" }));
    const error = await rpcError(auth.client.register(aRegistration({ email: "CASE@Example.com" })));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(violations(error)).toHaveProperty("email");
  });

  it.each([
    ["an invalid email", { email: "not-an-email" }, ["email"]],
    ["a short password", { password: "short pass" }, ["password"]],
    ["a 129-character password", { password: "p".repeat(129) }, ["password"]],
    ["missing fields", { email: "", password: "" }, ["email", "password"]],
    ["a 101-character name", { firstName: "n".repeat(101) }, ["first_name"]],
    ["a NUL in the email", { email: "a\u0000b@example.com" }, ["email"]],
    ["a NUL in a name", { firstName: "A\u0000da", lastName: "\u0000" }, ["first_name", "last_name"]],
  ])("refuses %s with invalid_argument naming the fields", async (_, overrides, fields) => {
    const error = await rpcError(auth.client.register(aRegistration(overrides)));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error)).sort()).toEqual([...fields].sort());
    for (const field of fields) expect(error.rawMessage).toContain(field);
  });

  it("accepts a 128-character password", async () => {
    const password = "the quick brown fox jumps over the lazy dog while seven zebras quietly judge "
      .repeat(2)
      .slice(0, 128);
    expect(password).toHaveLength(128);
    const { user } = await auth.client.register(aRegistration({ password }));
    expect(user?.id).toBeTruthy();
  });

  it.each([
    ["a password from the breach list", "qwertyuiop12"],
    ["a common password with digits added", "Password!2024"],
    ["one repeated character", "p".repeat(128)],
    ["a keyboard run", "abcdefghijklm"],
  ])("refuses %s, naming the field", async (_, password) => {
    const error = await rpcError(auth.client.register(aRegistration({ password })));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error))).toEqual(["password"]);
    expect(error.rawMessage).toMatch(/password: .*choose another/);
  });

  it("refuses the email address as the password", async () => {
    const email = "grace.hopper@example.com";
    const error = await rpcError(
      auth.client.register(aRegistration({ email, password: "Grace.Hopper1906" })),
    );
    expect(violations(error)).toEqual({ password: "must not be your email address: choose another" });
  });

  it("ignores role fields in the request: a new account is a customer, whatever is sent", async () => {
    // Through Connect JSON the unknown field is refused or dropped by the codec; the gateway's
    // REST route answers 400 for it (tested there). What matters here: nothing can set roles.
    const res = await fetch(`${auth.server.url}/zero.auth.v1.AuthService/Register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...aRegistration(), roles: ["admin"], status: "USER_STATUS_ACTIVE" }),
    });
    const body = (await res.json()) as { user?: { roles: string[] } };
    if (res.ok) expect(body.user?.roles).toEqual(["customer"]);
    else expect(res.status).toBe(400);
    const admins = await auth.server.db
      .selectFrom("users")
      .select("id")
      .where(sql<boolean>`'admin' = any(roles)`)
      .execute();
    expect(admins).toEqual([]);
  });

  it("publishes UserRegistered on ZERO_AUTH with the user and no secret", async () => {
    const registration = aRegistration({ firstName: "Grace", lastName: "Hopper" });
    const { user } = await auth.client.register(registration);
    const [published, ...more] = await waitForEvents(
      auth.nats.url,
      UserRegisteredSchema,
      (e) => e.userId === user!.id,
    );
    expect(more).toHaveLength(0);
    expect(published!.subject).toBe("zero.auth.v1.UserRegistered");
    expect(published!.event).toMatchObject({
      userId: user!.id,
      email: user!.email,
      firstName: "Grace",
      lastName: "Hopper",
    });
    expect(timestampDate(published!.event.registerTime!).getTime()).toBe(
      timestampDate(user!.createTime!).getTime(),
    );
    expect(published!.headers.get("ce-type")).toBe("zero.auth.v1.UserRegistered");
    expect(published!.headers.get("ce-source")).toBe("zero.auth");
    expect(published!.headers.get("Nats-Msg-Id")).toBe(published!.headers.get("ce-id"));
    const headerValues = published!.headers.keys().map((k) => published!.headers.get(k));
    expect(headerValues.join("\n") + Buffer.from(published!.data).toString("latin1")).not.toContain(
      registration.password,
    );
  });

  it("lets exactly one of 20 concurrent registrations of one email succeed", async () => {
    const email = `race-${Date.now()}@example.com`;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        auth.client.register(aRegistration({ email: i % 2 ? email : email.toUpperCase() })),
      ),
    );
    const succeeded = results.filter((r) => r.status === "fulfilled");
    const codes = results.flatMap((r) => (r.status === "rejected" ? [ConnectError.from(r.reason).code] : []));
    expect(succeeded).toHaveLength(1);
    expect(codes).toEqual(Array.from({ length: 19 }, () => Code.AlreadyExists));

    const { count } = await auth.server.db
      .selectFrom("users")
      .select((eb) => eb.fn.countAll<string>().as("count"))
      .where("email", "=", email)
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(1);
    // The losers' transactions rolled back with their events: one event for the one account.
    const events = await sql<{
      n: string;
    }>`select count(*) as n from kit_outbox where subject = 'zero.auth.v1.UserRegistered' and payload::text like ${"%" + Buffer.from(email).toString("hex") + "%"}`.execute(
      auth.server.db,
    );
    expect(Number(events.rows[0]?.n)).toBe(1);
  });
});
