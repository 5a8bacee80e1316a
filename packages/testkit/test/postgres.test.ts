import pg from "pg";
import { describe, expect, it } from "vitest";
import { createTestDatabase, withAdminClient } from "../src/postgres.js";

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

describe("createTestDatabase", () => {
  it("gives concurrent callers separate databases and drops them", async () => {
    const [a, b] = await Promise.all([createTestDatabase("iso"), createTestDatabase("iso")]);
    try {
      expect(a.url).not.toEqual(b.url);
      await query(a.url, "CREATE TABLE only_in_a (id int)");
      const inB = await query<{ n: string }>(
        b.url,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'only_in_a'",
      );
      expect(inB[0]?.n).toBe("0");

      // drop() works while a connection is still open (WITH (FORCE)).
      const open = new pg.Client({ connectionString: a.url });
      open.on("error", () => undefined);
      await open.connect();
      await a.drop();
      await open.end().catch(() => undefined);
      const name = new URL(a.url).pathname.slice(1);
      const left = await withAdminClient((c) =>
        c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]),
      );
      expect(left.rowCount).toBe(0);
    } finally {
      await a.drop();
      await b.drop();
    }
  });
});
