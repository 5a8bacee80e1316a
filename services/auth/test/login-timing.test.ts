import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aRegistration, rpcError, startTestAuth, type TestAuth } from "./fixtures.js";

// A sign-in with an unknown email must cost what one with a wrong password costs (argon2 runs
// against a dummy hash), or response times would list who has an account. Each address is tried
// once (the throttle stays out of it); attempts alternate so load on the machine hits both alike.

const SAMPLES = 25;
let auth: TestAuth;
const existing: string[] = [];

beforeAll(async () => {
  auth = await startTestAuth();
  for (let i = 0; i < SAMPLES; i++) {
    const registration = aRegistration();
    await auth.client.register(registration);
    existing.push(registration.email);
  }
});

afterAll(async () => {
  await auth?.close();
});

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function timed(email: string): Promise<number> {
  const start = performance.now();
  const error = await rpcError(auth.client.login({ email, password: "a wrong password, on purpose" }));
  const elapsed = performance.now() - start;
  expect(error.code).toBe(Code.Unauthenticated);
  return elapsed;
}

describe("login timing", () => {
  it("does not tell a missing email from a wrong password (medians within 30 %)", async () => {
    // Warm-up: first calls pay for connections and JIT.
    await timed(`warmup-${Date.now()}@example.com`);
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const missing = `missing-${i}-${Date.now()}@example.com`;
      if (i % 2 === 0) {
        known.push(await timed(existing[i]!));
        unknown.push(await timed(missing));
      } else {
        unknown.push(await timed(missing));
        known.push(await timed(existing[i]!));
      }
    }
    const ratio = median(unknown) / median(known);
    // Without the dummy hash the unknown path is ~10× faster (no argon2): a ratio near 0.1.
    expect(
      ratio,
      `median unknown ${median(unknown).toFixed(1)} ms vs known ${median(known).toFixed(1)} ms`,
    ).toBeGreaterThan(0.7);
    expect(ratio).toBeLessThan(1.3);
  });
});
