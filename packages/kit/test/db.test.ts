import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { sql, type Kysely, type Migration } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkDb, createDb, migrateToLatest } from "../src/db.js";
import { unstorableTextError } from "../src/errors.js";

interface Tables {
  things: { id: string; big: string; at: Date; day: string };
}

let database: TestDatabase;
let db: Kysely<Tables>;

beforeAll(async () => {
  database = await createTestDatabase("db");
  db = createDb<Tables>(database.url);
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

const createThings: Migration = {
  async up(d: Kysely<unknown>) {
    await sql`create table things (id text primary key, big int8 not null, at timestamptz not null, day date not null)`.execute(
      d,
    );
  },
};
const addIndex: Migration = {
  async up(d: Kysely<unknown>) {
    await sql`create index things_at on things (at)`.execute(d);
  },
};

async function applied(): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.rows.map((r) => r.name);
}

describe("migrateToLatest", () => {
  it("applies pending migrations once, even from two pools at the same time", async () => {
    const other = createDb<Tables>(database.url);
    try {
      const migrations = { "0001_things": createThings, "0002_things_at": addIndex };
      await Promise.all([migrateToLatest(db, migrations), migrateToLatest(other, migrations)]);
      await migrateToLatest(db, migrations);
      expect(await applied()).toEqual(["0001_things", "0002_things_at"]);
    } finally {
      await other.destroy();
    }
  });

  it("throws naming the failed migration and applies none of that run", async () => {
    const broken: Migration = {
      async up(d: Kysely<unknown>) {
        await sql`alter table no_such_table add column x int`.execute(d);
      },
    };
    const okBefore: Migration = {
      async up(d: Kysely<unknown>) {
        await sql`create table applied_before_failure (id int)`.execute(d);
      },
    };
    await expect(
      migrateToLatest(db, {
        "0001_things": createThings,
        "0002_things_at": addIndex,
        "0003_ok": okBefore,
        "0004_broken": broken,
      }),
    ).rejects.toThrow(/migration 0004_broken failed: .*no_such_table/);
    expect(await applied()).toEqual(["0001_things", "0002_things_at"]);
    const left = await sql`select to_regclass('applied_before_failure') as t`.execute(db);
    expect(left.rows).toEqual([{ t: null }]);
  });
});

describe("createDb", () => {
  it("returns int8 and date as strings and timestamptz as Date", async () => {
    await db
      .insertInto("things")
      .values({
        id: "a",
        big: "9007199254740993",
        at: new Date("2026-01-02T03:04:05.678Z"),
        day: "2026-03-31",
      })
      .execute();
    const row = await db.selectFrom("things").selectAll().where("id", "=", "a").executeTakeFirstOrThrow();
    expect(row.big).toBe("9007199254740993"); // 2^53 + 1: a number would have rounded it
    expect(row.at).toEqual(new Date("2026-01-02T03:04:05.678Z"));
    expect(row.day).toBe("2026-03-31");
  });
});

describe("text PostgreSQL cannot store", () => {
  // What a request carrying U+0000 meets when it reaches the database unchecked.
  it.each([
    ["text", sql`select ${"a\u0000b"}::text`, "22021", /invalid byte sequence for encoding "UTF8": 0x00/],
    [
      "jsonb",
      sql`select ${JSON.stringify({ k: "a\u0000b" })}::jsonb`,
      "22P05",
      /unsupported Unicode escape sequence/,
    ],
  ])(
    "a NUL in %s fails as SQLSTATE %s, which the kit maps to invalid_argument",
    async (_, query, code, text) => {
      const error: unknown = await query.execute(db).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code, message: expect.stringMatching(text) as unknown });
      expect(unstorableTextError(error)).toMatchObject({
        code: "invalid_argument",
        reason: "UNSTORABLE_TEXT",
      });
    },
  );

  it("does not map other database errors", async () => {
    const error: unknown = await sql`select ${"not a uuid"}::uuid`.execute(db).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "22P02" });
    expect(unstorableTextError(error)).toBeUndefined();
  });
});

describe("checkDb", () => {
  it("resolves against a live database and rejects when Postgres is unreachable", async () => {
    await expect(checkDb(db)).resolves.toBeUndefined();
    const nowhere = createDb("postgres://postgres@127.0.0.1:1/none");
    try {
      await expect(checkDb(nowhere)).rejects.toThrow();
    } finally {
      await nowhere.destroy();
    }
  });
});
