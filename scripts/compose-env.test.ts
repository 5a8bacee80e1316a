import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { composeEnv, SET_BY_COMPOSE, writeComposeEnv } from "./compose-env.js";
import { loadPlatformConfig } from "./config.js";
import { openLocalSecrets, serviceSecretName } from "./local-secrets.js";
import { gateway, services } from "./platform.js";

const config = loadPlatformConfig({});
const read = (path: string): string => readFileSync(join(config.root, path), "utf8");
const compose = read("compose.yaml");

/** The lines of one top-level entry under `services:` (two-space indent), up to the next one. */
function composeBlock(name: string): string {
  const lines = compose.split("\n");
  const start = lines.indexOf(`  ${name}:`);
  if (start < 0) return "";
  const end = lines.findIndex((line, i) => i > start && /^ {0,2}\S/.test(line));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

describe("composeEnv", () => {
  const dirs: string[] = [];
  const secretsIn = () => {
    const dir = mkdtempSync(join(tmpdir(), "zero-compose-env-"));
    dirs.push(dir);
    return { dir, secrets: openLocalSecrets(join(dir, "secrets.env"), {}) };
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("takes every secret from the secrets file start.sh uses, generating it there once", () => {
    const { dir, secrets } = secretsIn();
    const env = composeEnv(config, secrets.secret);
    const again = composeEnv(config, openLocalSecrets(join(dir, "secrets.env"), {}).secret);
    expect(again).toEqual(env);
    const file = readFileSync(join(dir, "secrets.env"), "utf8");
    for (const name of ["AUTH_KEY_ENCRYPTION_KEY", "PAYMENTS_WEBHOOK_SECRET", "AUTH_DEMO_ADMIN_PASSWORD"]) {
      expect(file).toContain(`${name}=`);
    }
    expect(env["AUTH_KEY_ENCRYPTION_KEY"]).toBe(secrets.secret("AUTH_KEY_ENCRYPTION_KEY", 32));
    expect(Buffer.from(env["AUTH_KEY_ENCRYPTION_KEY"] ?? "", "base64")).toHaveLength(32);
    expect(env["AUTH_BOOTSTRAP_ADMIN_EMAIL"]).toBe("admin@example.com");
    expect(env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]).toBe(secrets.secret("AUTH_DEMO_ADMIN_PASSWORD", 18));
    for (const name of SET_BY_COMPOSE) expect(env).not.toHaveProperty(name);
  });

  it("gives auth the SHA-256 of exactly the secret each service gets", () => {
    const { secrets } = secretsIn();
    const env = composeEnv(config, secrets.secret);
    const clients = new Map(
      (env["AUTH_SERVICE_CLIENTS"] ?? "").split(",").map((entry) => entry.split(":") as [string, string]),
    );
    expect([...clients.keys()]).toEqual(services.map((s) => s.name));
    for (const { name } of services) {
      const secret = env[serviceSecretName(name)] ?? "";
      expect(Buffer.from(secret, "base64")).toHaveLength(32);
      expect(clients.get(name)).toBe(createHash("sha256").update(secret).digest("hex"));
    }
    expect(env).not.toHaveProperty(serviceSecretName("gateway"));
  });

  it("writes a KEY=value file only its owner can read, replacing the previous one", () => {
    const { dir } = secretsIn();
    const file = join(dir, "nested", "compose.env");
    writeComposeEnv(file, { A: "1", B: "x=y" });
    writeComposeEnv(file, { A: "2", B: "x=y" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(lines).toEqual(["A=2", "B=x=y"]);
    expect(existsSync(`${file}.partial`)).toBe(false);
  });
});

describe("compose.yaml agrees with scripts/platform.ts and the env file", () => {
  const env = composeEnv(config, (name) => `secret-of-${name}`);

  it("interpolates exactly the variables the env file holds as required ones", () => {
    const required = new Set([...compose.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]));
    expect([...required].sort()).toEqual(Object.keys(env).sort());
  });

  it("runs every process of the platform on its port, with its own variables", () => {
    for (const spec of [...services, gateway]) {
      const block = composeBlock(spec.name);
      expect(block, `compose.yaml has no service ${spec.name}`).not.toBe("");
      expect(block).toContain(`PORT: "${spec.port}"`);
      expect(block).toContain(`127.0.0.1:${spec.port}:${spec.port}`);
      if (spec !== gateway) {
        expect(block).toContain(`SERVICE_CLIENT_SECRET: \${${serviceSecretName(spec.name)}:?`);
        expect(compose).toContain(`${spec.name.toUpperCase()}_URL: http://${spec.name}:${spec.port}\n`);
        expect(read("deploy/prometheus.yml")).toContain(`- ${spec.name}:${spec.port}\n`);
      }
      for (const name of Object.keys(spec.env?.({ config, secret: (n) => n }) ?? {})) {
        const expected = SET_BY_COMPOSE.has(name) ? `${name}: ` : `${name}: \${${name}:?`;
        expect(block, `${spec.name}: ${name}`).toContain(expected);
      }
    }
  });

  it("gives the services with migrations, and only those, a database and its URL", () => {
    const databases = /ZERO_SERVICE_DATABASES: (.*)/.exec(compose)?.[1]?.split(" ") ?? [];
    const withMigrations = services
      .filter((s) => existsSync(join(config.root, "services", s.name, "src/db/migrations")))
      .map((s) => s.name);
    expect(databases).toEqual(withMigrations);
    for (const name of withMigrations) {
      expect(composeBlock(name)).toContain(
        `DATABASE_URL: postgres://zero_${name}:zero_${name}@postgres:5432/zero_${name}`,
      );
    }
  });
});
