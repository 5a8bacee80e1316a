import type { Gateway } from "@zero/gateway/gateway-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, startTestUsers, type TestUsers } from "./fixtures.js";

// The REST API as curl users see it: routes from the google.api.http annotations of users.proto,
// transcoded by the gateway, errors in the Google API shape.

let users: TestUsers;
let gateway: Gateway;

beforeAll(async () => {
  users = await startTestUsers();
  gateway = await startTestGateway(users);
});

afterAll(async () => {
  await gateway?.close(2000);
  await users?.close();
});

interface ApiError {
  error: {
    code: number;
    status: string;
    message: string;
    details: ({ "@type": string } & Record<string, unknown>)[];
  };
}

async function call(token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: (text === "" ? undefined : JSON.parse(text)) as Record<string, unknown>,
  };
}

const fieldViolations = (body: unknown) =>
  ((body as ApiError).error.details.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest")?.[
    "fieldViolations"
  ] ?? []) as { field: string; description: string }[];

describe("profile over REST", () => {
  it("GET /v1/users/me/profile and PATCH it with update_mask in the query", async () => {
    const { userId, token } = await users.aRegisteredUser({ firstName: "Curl" });
    const got = await call(token, "GET", "/v1/users/me/profile");
    expect(got.status).toBe(200);
    expect(got.body["profile"]).toMatchObject({
      userId,
      firstName: "Curl",
      marketing: { emailOptIn: false },
    });

    const patched = await call(
      token,
      "PATCH",
      "/v1/users/me/profile?update_mask=displayName,marketing.emailOptIn",
      {
        displayName: "curly",
        bio: "not in the mask",
        marketing: { emailOptIn: true },
      },
    );
    expect(patched.status).toBe(200);
    expect(patched.body["profile"]).toMatchObject({
      displayName: "curly",
      bio: "",
      marketing: { emailOptIn: true },
    });

    // Without a mask: the fields given a value.
    const implied = await call(token, "PATCH", `/v1/users/${userId}/profile`, { bio: "hello" });
    expect(implied.body["profile"]).toMatchObject({ bio: "hello", displayName: "curly" });
  });

  it("answers 400 with field violations for bad values, unknown fields and unknown parameters", async () => {
    const { token } = await users.aRegisteredUser();
    const bad = await call(token, "PATCH", "/v1/users/me/profile", {
      avatarUrl: "http://x.example/a.png",
      locale: "??",
    });
    expect(bad.status).toBe(400);
    expect((bad.body as unknown as ApiError).error.status).toBe("INVALID_ARGUMENT");
    expect(
      fieldViolations(bad.body)
        .map((v) => v.field)
        .sort(),
    ).toEqual(["profile.avatar_url", "profile.locale"]);

    // Mass assignment: fields the profile does not have are refused, not ignored.
    const roles = await call(token, "PATCH", "/v1/users/me/profile", { displayName: "x", roles: ["admin"] });
    expect(roles.status).toBe(400);
    expect((roles.body as unknown as ApiError).error.message).toMatch(/roles/);

    const param = await call(token, "GET", "/v1/users/me/profile?debug=1");
    expect(param.status).toBe(400);

    const malformed = await call(token, "PATCH", "/v1/users/me/profile", "{not json");
    expect(malformed.status).toBe(400);

    const badMask = await call(token, "PATCH", "/v1/users/me/profile?update_mask=user_id", {
      displayName: "x",
    });
    expect(badMask.status).toBe(400);
    expect(fieldViolations(badMask.body)[0]?.field).toBe("update_mask");
  });
});

describe("addresses over REST", () => {
  it("creates (201), lists with pagination, updates, deletes", async () => {
    const { token } = await users.aRegisteredUser();
    const created = await call(token, "POST", "/v1/users/me/addresses", {
      recipientName: "Curl User",
      line1: "1 Infinite Loop",
      city: "Cupertino",
      region: "CA",
      postalCode: "95014",
      countryCode: "us",
      defaultShipping: true,
    });
    expect(created.status).toBe(201);
    const address = created.body["address"] as { id: string; countryCode: string; defaultShipping: boolean };
    expect(address).toMatchObject({ countryCode: "US", defaultShipping: true });
    await call(token, "POST", "/v1/users/me/addresses", {
      recipientName: "Curl User",
      line1: "2 Infinite Loop",
      city: "Cupertino",
      countryCode: "US",
    });

    const first = await call(token, "GET", "/v1/users/me/addresses?page_size=1");
    expect(first.status).toBe(200);
    expect((first.body["addresses"] as unknown[]).length).toBe(1);
    const next = first.body["nextPageToken"] as string;
    expect(next).not.toBe("");
    const second = await call(token, "GET", `/v1/users/me/addresses?page_size=1&page_token=${next}`);
    expect((second.body["addresses"] as { line1: string }[])[0]?.line1).toBe("2 Infinite Loop");
    expect(second.body["nextPageToken"]).toBe("");

    const updated = await call(token, "PATCH", `/v1/users/me/addresses/${address.id}?update_mask=line2`, {
      line2: "Building 3",
    });
    expect(updated.status).toBe(200);
    expect(updated.body["address"]).toMatchObject({ line1: "1 Infinite Loop", line2: "Building 3" });

    const gone = await call(token, "DELETE", `/v1/users/me/addresses/${address.id}`);
    expect(gone.status).toBe(200);
    expect((await call(token, "GET", `/v1/users/me/addresses/${address.id}`)).status).toBe(404);
  });

  it("answers 400 naming each bad field of a new address", async () => {
    const { token } = await users.aRegisteredUser();
    const res = await call(token, "POST", "/v1/users/me/addresses", {
      recipientName: "x",
      line1: "y",
      city: "z",
      countryCode: "ZZ",
      phone: "call me",
    });
    expect(res.status).toBe(400);
    expect(
      fieldViolations(res.body)
        .map((v) => v.field)
        .sort(),
    ).toEqual(["address.country_code", "address.phone"]);
    // A required field the gateway knows about (field_behavior REQUIRED) is named too.
    const missing = await call(token, "POST", "/v1/users/me/addresses", {
      line1: "y",
      city: "z",
      countryCode: "DE",
    });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toMatch(/recipient_name|recipientName/);
  });

  it("answers 404 for an address id that is not the caller's and 400 for one that is no UUID", async () => {
    const { token } = await users.aRegisteredUser();
    expect(
      (await call(token, "GET", "/v1/users/me/addresses/0190a9d4-0000-7000-8000-000000000000")).status,
    ).toBe(404);
    expect((await call(token, "GET", "/v1/users/me/addresses/not-a-uuid")).status).toBe(400);
    expect((await call(token, "GET", "/v1/users/someone/addresses")).status).toBe(400);
  });
});
