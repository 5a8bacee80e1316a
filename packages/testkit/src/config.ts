// The only place the testkit reads the environment.

/** The Postgres server test databases are created on (its own database is only used to connect). */
export const testDatabaseUrl: string =
  process.env["ZERO_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
