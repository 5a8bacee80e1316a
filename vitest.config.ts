import { defineConfig } from "vitest/config";

// One run covers the whole workspace: unit tests beside the code (`src/**/*.test.ts`) and
// integration tests under each package's `test/` (real Postgres, Redis and NATS via @zero/testkit).
export default defineConfig({
  test: {
    include: [
      "{packages,services}/*/{src,test}/**/*.test.ts",
      "gateway/{src,test}/**/*.test.ts",
      "e2e/**/*.test.ts",
      "scripts/**/*.test.ts",
    ],
    exclude: ["**/node_modules/**"],
    // Two cores: more workers than that only adds contention (argon2, Postgres).
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ["packages/testkit/src/global-setup.ts"],
  },
});
