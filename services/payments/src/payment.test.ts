import { describe, expect, it } from "vitest";
import type { PaymentStatusName } from "./db/schema.js";
import {
  assertDeletable,
  assertOverridable,
  assertTransition,
  canTransition,
  refundAmount,
  statusAfterRefund,
  TRANSITIONS,
} from "./payment.js";

const ALL = Object.keys(TRANSITIONS) as PaymentStatusName[];

describe("the transition table", () => {
  it("allows exactly the documented moves", () => {
    const legal = ALL.flatMap((from) =>
      ALL.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`),
    );
    expect(legal.sort()).toEqual(
      [
        "pending→processing",
        "pending→cancelled",
        "processing→completed",
        "processing→failed",
        "completed→partially_refunded",
        "completed→refunded",
        "partially_refunded→refunded",
      ].sort(),
    );
  });

  it("refuses every other move with FAILED_PRECONDITION naming the legal ones", () => {
    expect(() => assertTransition("pending", "completed")).toThrow(/can only become processing or cancelled/);
    expect(() => assertTransition("failed", "processing")).toThrow(/failed is final/);
    try {
      assertTransition("refunded", "completed");
    } catch (error) {
      expect(error).toMatchObject({ code: "failed_precondition", reason: "ILLEGAL_TRANSITION" });
    }
  });

  it("lets admins override along legal moves that do not move money", () => {
    expect(() => assertOverridable("processing", "completed")).not.toThrow();
    expect(() => assertOverridable("pending", "cancelled")).not.toThrow();
    expect(() => assertOverridable("completed", "refunded")).toThrow(/CreateRefund/);
    expect(() => assertOverridable("pending", "completed")).toThrow(/can only become/);
  });

  it("deletes only what never reached the provider", () => {
    expect(() => assertDeletable("pending")).not.toThrow();
    expect(() => assertDeletable("cancelled")).not.toThrow();
    for (const status of ["processing", "completed", "failed", "partially_refunded", "refunded"] as const) {
      expect(() => assertDeletable(status)).toThrow(/part of the ledger/);
    }
  });
});

describe("refunds", () => {
  it("defaults to what is left and never exceeds it", () => {
    expect(refundAmount({ status: "completed", amount: 1000n, committed: 0n, requested: 0n })).toBe(1000n);
    expect(
      refundAmount({ status: "partially_refunded", amount: 1000n, committed: 300n, requested: 0n }),
    ).toBe(700n);
    expect(
      refundAmount({ status: "partially_refunded", amount: 1000n, committed: 300n, requested: 700n }),
    ).toBe(700n);
    expect(() =>
      refundAmount({ status: "partially_refunded", amount: 1000n, committed: 300n, requested: 701n }),
    ).toThrow(/700 still refundable/);
    expect(() =>
      refundAmount({ status: "completed", amount: 1000n, committed: 1000n, requested: 0n }),
    ).toThrow(/in full already/);
    expect(() => refundAmount({ status: "pending", amount: 1000n, committed: 0n, requested: 0n })).toThrow(
      /only a completed/,
    );
  });

  it("is partial until the whole amount is back", () => {
    expect(statusAfterRefund(1000n, 999n)).toBe("partially_refunded");
    expect(statusAfterRefund(1000n, 1000n)).toBe("refunded");
  });
});
