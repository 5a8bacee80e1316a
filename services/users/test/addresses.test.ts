import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ADDRESSES_PER_USER } from "../src/address.js";
import { anAddress, Code, rpcError, startTestUsers, violations, type TestUsers } from "./fixtures.js";

let users: TestUsers;

beforeAll(async () => {
  users = await startTestUsers();
});

afterAll(async () => {
  await users?.close();
});

const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

async function aClient() {
  const { userId, token } = await users.aRegisteredUser();
  return { userId, client: users.client(token) };
}

describe("addresses", () => {
  it("creates, reads, updates and deletes an address, normalising its fields", async () => {
    const { client } = await aClient();
    const { address } = await client.createAddress({
      userId: "me",
      address: anAddress({ countryCode: "gb", postalCode: " sw1y  4jh ", phone: "+44 (20) 7946-0958" }),
    });
    expect(address?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    expect(address).toMatchObject({
      countryCode: "GB",
      postalCode: "SW1Y 4JH",
      phone: "+442079460958",
      defaultShipping: false,
      defaultBilling: false,
    });
    const id = address!.id;
    expect((await client.getAddress({ userId: "me", addressId: id })).address).toEqual(address);

    const { address: moved } = await client.updateAddress({
      userId: "me",
      addressId: id,
      address: { city: "Cambridge", line2: "should stay empty" },
      updateMask: mask("city"),
    });
    expect(moved).toMatchObject({ city: "Cambridge", line2: "", line1: address!.line1 });

    await client.deleteAddress({ userId: "me", addressId: id });
    expect((await rpcError(client.getAddress({ userId: "me", addressId: id }))).code).toBe(Code.NotFound);
    expect((await rpcError(client.deleteAddress({ userId: "me", addressId: id }))).code).toBe(Code.NotFound);
  });

  it("keeps at most one default shipping and one default billing address per user", async () => {
    const { userId, client } = await aClient();
    const a = (
      await client.createAddress({
        userId: "me",
        address: anAddress({ defaultShipping: true, defaultBilling: true }),
      })
    ).address!;
    const b = (
      await client.createAddress({ userId: "me", address: anAddress({ line1: "B", defaultShipping: true }) })
    ).address!;
    let rows = await users.server.db
      .selectFrom("addresses")
      .selectAll()
      .where("user_id", "=", userId)
      .orderBy("id")
      .execute();
    expect(rows.map((r) => [r.id, r.default_shipping, r.default_billing])).toEqual([
      [a.id, false, true],
      [b.id, true, false],
    ]);
    // Moving the billing mark by update takes it off the other address in the same transaction.
    await client.updateAddress({ userId: "me", addressId: b.id, address: { defaultBilling: true } });
    rows = await users.server.db
      .selectFrom("addresses")
      .selectAll()
      .where("user_id", "=", userId)
      .orderBy("id")
      .execute();
    expect(rows.map((r) => [r.default_shipping, r.default_billing])).toEqual([
      [false, false],
      [true, true],
    ]);
    // Unsetting is an explicit false.
    const { address } = await client.updateAddress({
      userId: "me",
      addressId: b.id,
      address: { defaultShipping: false },
    });
    expect(address).toMatchObject({ defaultShipping: false, defaultBilling: true });
  });

  it("ends 20 concurrent default-shipping creations with exactly one default", async () => {
    const { userId, client } = await aClient();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        client.createAddress({
          userId: "me",
          address: anAddress({ line1: `Street ${i}`, defaultShipping: true }),
        }),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    const defaults = await users.server.db
      .selectFrom("addresses")
      .select("id")
      .where("user_id", "=", userId)
      .where("default_shipping", "=", true)
      .execute();
    expect(defaults).toHaveLength(1);
  });

  it("pages through addresses oldest first with an opaque cursor", async () => {
    const { client } = await aClient();
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      created.push(
        (await client.createAddress({ userId: "me", address: anAddress({ line1: `No. ${i}` }) })).address!.id,
      );
    }
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listAddresses({ userId: "me", pageSize: 2, pageToken });
      expect(page.addresses.length).toBeLessThanOrEqual(2);
      seen.push(...page.addresses.map((a) => a.id));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken !== "" && pages < 10);
    expect(seen).toEqual(created);
    expect(pages).toBe(3);
    // Page size 0 means the default; above the maximum it is lowered to it.
    expect((await client.listAddresses({ userId: "me" })).addresses).toHaveLength(5);
    expect((await client.listAddresses({ userId: "me", pageSize: 10_000 })).addresses).toHaveLength(5);
  });

  it.each([
    ["a page token it never issued", { pageToken: "bm90LWEtdG9rZW4" }, "page_token"],
    ["a negative page size", { pageSize: -1 }, "page_size"],
  ])("refuses %s with invalid_argument", async (_, request, field) => {
    const { client } = await aClient();
    const error = await rpcError(client.listAddresses({ userId: "me", ...request }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toHaveProperty(field);
  });

  it.each([
    [
      "missing required fields",
      { recipientName: "", line1: " ", city: "", countryCode: "" },
      ["address.recipient_name", "address.line1", "address.city", "address.country_code"],
    ],
    ["an unknown country", { countryCode: "XX" }, ["address.country_code"]],
    ["a non-ISO country (UK)", { countryCode: "UK" }, ["address.country_code"]],
    ["a phone number that is no E.164", { phone: "0301234567" }, ["address.phone"]],
    ["a malformed postal code", { postalCode: "<script>" }, ["address.postal_code"]],
    ["a 201-character street", { line1: "x".repeat(201) }, ["address.line1"]],
    ["a control character", { city: "Lon\u0007don" }, ["address.city"]],
    [
      "a NUL (U+0000) in two fields",
      { line2: "a\u0000b", region: "\u0000" },
      ["address.line2", "address.region"],
    ],
  ])("refuses %s with invalid_argument naming every field", async (_, overrides, fields) => {
    const { client } = await aClient();
    const error = await rpcError(client.createAddress({ userId: "me", address: anAddress(overrides) }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error)).sort()).toEqual([...fields].sort());
  });

  it("refuses an update that blanks a required field, and read-only paths", async () => {
    const { client } = await aClient();
    const { address } = await client.createAddress({ userId: "me", address: anAddress() });
    const blank = await rpcError(
      client.updateAddress({ userId: "me", addressId: address!.id, address: {}, updateMask: mask("city") }),
    );
    expect(blank.code).toBe(Code.InvalidArgument);
    expect(violations(blank)).toHaveProperty("address.city");
    const readOnly = await rpcError(
      client.updateAddress({
        userId: "me",
        addressId: address!.id,
        address: { id: "x" },
        updateMask: mask("id"),
      }),
    );
    expect(violations(readOnly)["update_mask"]).toMatch(/read-only/);
  });

  it("refuses ids that are not UUIDs with invalid_argument", async () => {
    const { client } = await aClient();
    expect(
      violations(await rpcError(client.getAddress({ userId: "me", addressId: "1 OR 1=1" }))),
    ).toHaveProperty("address_id");
    expect(
      violations(await rpcError(client.getAddress({ userId: "../admin", addressId: "x" }))),
    ).toHaveProperty("user_id");
  });

  it(`refuses the ${MAX_ADDRESSES_PER_USER + 1}th address with failed_precondition`, async () => {
    const { userId, client } = await aClient();
    await users.server.db
      .insertInto("addresses")
      .values(
        Array.from({ length: MAX_ADDRESSES_PER_USER }, (_, i) => ({
          id: `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`,
          user_id: userId,
          recipient_name: "Bulk",
          company: "",
          line1: `Line ${i}`,
          line2: "",
          city: "Berlin",
          region: "",
          postal_code: "",
          country_code: "DE",
          phone: "",
          default_shipping: false,
          default_billing: false,
          updated_at: new Date(),
        })),
      )
      .execute();
    const error = await rpcError(client.createAddress({ userId: "me", address: anAddress() }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toMatch(/delete one first/);
  });
});
