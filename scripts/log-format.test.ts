import { describe, expect, it } from "vitest";
import { createLinePrefixer } from "./log-format.js";

const plain = { json: false, color: false, nameWidth: 7 };

describe("createLinePrefixer", () => {
  it("turns a kit pino line into time, level, message and the remaining fields", () => {
    const format = createLinePrefixer("auth", 0, plain);
    const line = JSON.stringify({
      level: "warn",
      time: "2026-11-21T18:47:03.497Z",
      service: "auth",
      msg: "slow query",
      trace_id: "abc",
    });
    expect(format(line)).toBe('auth    | 18:47:03.497 WARN  slow query {"trace_id":"abc"}');
  });

  it("reads numeric levels and epoch times, and puts an error's stack under the line", () => {
    const format = createLinePrefixer("gateway", 1, plain);
    const line = JSON.stringify({
      level: 50,
      time: Date.UTC(2026, 0, 1, 7, 8, 9),
      msg: "boom",
      err: { stack: "Error: x\n    at y" },
    });
    expect(format(line).split("\n")).toEqual([
      "gateway | 07:08:09.000 ERROR boom",
      "gateway |   Error: x",
      "gateway |       at y",
    ]);
  });

  it("passes other lines through with the prefix only, and everything in json mode", () => {
    expect(createLinePrefixer("auth", 0, plain)("node:internal boom")).toBe("auth    | node:internal boom");
    expect(createLinePrefixer("auth", 0, plain)("{not json")).toBe("auth    | {not json");
    const raw = JSON.stringify({ level: 30, msg: "x" });
    expect(createLinePrefixer("auth", 0, { ...plain, json: true })(raw)).toBe(`auth    | ${raw}`);
  });
});
