// `pnpm migrate`: applies every service's migrations (`main.ts migrate`) with the same environment
// scripts/start.sh gives them, then exits. The roles and databases must exist: run it after
// `eval "$(scripts/infra.sh up postgres)"` (which creates them) or after one scripts/start.sh.
import { loadPlatformConfig } from "./config.js";
import { localSecretsFile, openLocalSecrets } from "./local-secrets.js";
import { planPlatform } from "./platform.js";
import { createSupervisor, describeFailure } from "./supervisor.js";

const config = loadPlatformConfig();
const secrets = openLocalSecrets(localSecretsFile(config), config.inheritedEnv);
const plan = planPlatform({ config, secret: secrets.secret });
const migrations = plan.services.filter((p) => p.hasDatabase);
const supervisor = createSupervisor({
  cwd: config.root,
  format: { json: config.logFormat === "json", color: config.color, nameWidth: 0 },
  readyTimeoutMs: config.readyTimeoutMs,
  onUnexpectedExit: () => undefined,
});

try {
  for (const p of migrations) {
    await supervisor.run({
      name: `${p.name}-migrate`,
      args: ["--import", "tsx", p.entry, "migrate"],
      env: p.env,
    });
  }
  process.stdout.write(
    `[zero] migrated: ${migrations.map((p) => p.name).join(", ") || "nothing to migrate"}\n`,
  );
} catch (error) {
  process.stdout.write(`[zero] ${describeFailure(error)}\n`);
  process.exitCode = 1;
}
