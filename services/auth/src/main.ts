import { ConfigError } from "@zero/kit/config";
import { createDb, migrateToLatest } from "@zero/kit/db";
import { createLogger } from "@zero/kit/log";
import { runService } from "@zero/kit/run-service";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createAdmin } from "./accounts/admin-bootstrap.js";
import { SERVICE_NAME, startAuthServer } from "./auth-server.js";
import { loadAdminCommandConfig, loadConfig, loadMigrationConfig } from "./config.js";
import { createPasswordHasher } from "./credentials/credentials.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createSigningKeyStore } from "./tokens/signing-keys.js";

// Composition root and operator commands:
//   main.ts                                   serve
//   main.ts migrate                           apply the migrations and exit
//   main.ts create-admin --email E [--promote] create an admin (password from AUTH_ADMIN_PASSWORD
//                                             or the first line of stdin); --promote grants the
//                                             role to an existing account instead
//   main.ts rotate-signing-key [--now]        start a key rotation (--now: sign with it at once)

await runService({
  name: SERVICE_NAME,
  loadConfig,
  serve: (config, logger) => startAuthServer({ config, logger, host: config.host }),
  migrate: { loadConfig: loadMigrationConfig, migrations },
  commands: { "create-admin": createAdminCommand, "rotate-signing-key": rotateSigningKeyCommand },
});

async function createAdminCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { email: { type: "string" }, promote: { type: "boolean" } },
  });
  if (values.email === undefined) throw new ConfigError(["create-admin needs --email <address>"]);
  const config = loadAdminCommandConfig();
  const password = config.password ?? (await firstLineOfStdin());
  if (password === "")
    throw new ConfigError(["create-admin needs a password: AUTH_ADMIN_PASSWORD or one line on stdin"]);
  const logger = createLogger(SERVICE_NAME, { level: config.logLevel });
  const db = createDb<DB>(config.databaseUrl, { logger });
  try {
    await migrateToLatest(db, migrations, logger);
    const { outcome, user } = await createAdmin(db, createPasswordHasher(config.argon2), {
      email: values.email,
      password,
      promoteExisting: values.promote === true,
    });
    process.stdout.write(`${outcome}: ${user.email} (${user.id}) roles ${user.roles.join(", ")}\n`);
  } catch (error) {
    throw error instanceof Error && !(error instanceof ConfigError) && !("code" in error)
      ? new ConfigError([error.message])
      : error;
  } finally {
    await db.destroy();
  }
}

async function rotateSigningKeyCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { now: { type: "boolean" } } });
  const config = loadConfig();
  const logger = createLogger(SERVICE_NAME, { level: config.logLevel });
  const db = createDb<DB>(config.databaseUrl, { logger });
  try {
    await migrateToLatest(db, migrations, logger);
    const store = createSigningKeyStore({
      db,
      kek: config.keyEncryptionKey,
      activationDelaySeconds: config.keyActivationDelaySeconds,
      passiveRetentionSeconds: config.accessTokenTtlSeconds + 120,
    });
    await store.ensureActiveKey();
    const key = await store.rotate({ activateNow: values.now === true });
    process.stdout.write(
      `signing key ${key.kid}: ${key.status}${key.status === "pending" ? ` until ${key.activate_at?.toISOString()}` : ""}\n`,
    );
  } finally {
    await db.destroy();
  }
}

async function firstLineOfStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("admin password: ");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  return "";
}
