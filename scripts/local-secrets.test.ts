import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openLocalSecrets } from "./local-secrets.js";

describe("openLocalSecrets", () => {
  const dirs: string[] = [];
  const fileIn = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "zero-secrets-"));
    dirs.push(dir);
    return join(dir, "nested", "secrets.env");
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("generates a secret once, saves it with mode 600 and returns the same value afterwards", () => {
    const file = fileIn();
    const first = openLocalSecrets(file, {}).secret("AUTH_KEY_ENCRYPTION_KEY", 32);
    expect(Buffer.from(first, "base64")).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toContain(`AUTH_KEY_ENCRYPTION_KEY=${first}\n`);
    expect(openLocalSecrets(file, {}).secret("AUTH_KEY_ENCRYPTION_KEY", 32)).toBe(first);
  });

  it("prefers a value from the environment and does not write it", () => {
    const file = fileIn();
    expect(openLocalSecrets(file, { OTHER_KEY: "given" }).secret("OTHER_KEY", 16)).toBe("given");
    expect(() => readFileSync(file)).toThrow();
  });
});
