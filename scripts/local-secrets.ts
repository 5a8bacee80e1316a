import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export type LocalSecrets = ReturnType<typeof openLocalSecrets>;

/**
 * Where the dev secrets live. They encrypt data inside the databases (auth's signing keys, TOTP
 * secrets), so they belong to the Postgres server that holds that data, not to a checkout: every
 * checkout using the same server shares one file. Kept in the checkout, a fresh clone on a machine
 * that already ran Zero generated new keys and auth could not read its own signing keys. A
 * checkout's older `.local/secrets.env` is adopted the first time.
 */
export function localSecretsFile(config: { root: string; postgresUrl: string; stateDir: string }): string {
  const server = new URL(config.postgresUrl);
  const dir = join(config.stateDir, "zero", `postgres-${server.hostname}-${server.port || "5432"}`);
  const file = join(dir, "secrets.env");
  if (!existsSync(file)) {
    const legacy = join(config.root, ".local", "secrets.env");
    if (existsSync(legacy)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      copyFileSync(legacy, file);
      chmodSync(file, 0o600);
    }
  }
  return file;
}

/**
 * Demo secrets for a local platform, generated once into a git-ignored `KEY=value` file and reused
 * afterwards: a key that changed on every start would orphan what was encrypted with the last one
 * (auth's signing keys). A value already in the environment wins, so real keys can be passed in.
 */
export function openLocalSecrets(file: string, env: Readonly<Record<string, string | undefined>>) {
  const stored = new Map<string, string>();
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (match?.[1] && match[2]) stored.set(match[1], match[2]);
    }
  }
  return {
    /** The named secret: from the environment, the file, or `bytes` fresh random bytes (base64) saved to the file. */
    secret: (name: string, bytes: number): string => {
      const given = env[name] ?? stored.get(name);
      if (given) return given;
      const value = randomBytes(bytes).toString("base64");
      mkdirSync(dirname(file), { recursive: true });
      if (!existsSync(file)) {
        appendFileSync(
          file,
          "# Demo secrets for the local platform (scripts/start.sh). Never commit, never reuse.\n",
          {
            mode: 0o600,
          },
        );
      }
      appendFileSync(file, `${name}=${value}\n`);
      chmodSync(file, 0o600);
      stored.set(name, value);
      return value;
    },
  };
}

/** The secrets-file name of a service's `SERVICE_CLIENT_SECRET` (its credential for service tokens). */
export function serviceSecretName(service: string): string {
  return `SERVICE_CLIENT_SECRET_${service.toUpperCase().replaceAll("-", "_")}`;
}

/** auth's `AUTH_SERVICE_CLIENTS`: each service's name and the SHA-256 of its secret (never the secret). */
export function serviceClients(names: readonly string[], secret: LocalSecrets["secret"]): string {
  return names
    .map(
      (name) =>
        `${name}:${createHash("sha256")
          .update(secret(serviceSecretName(name), 32))
          .digest("hex")}`,
    )
    .join(",");
}
