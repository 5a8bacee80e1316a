// The platform supervisor behind scripts/start.sh (which first installs dependencies and makes the
// infrastructure available): migrates, starts every service and then the gateway, waits for each
// /readyz, seeds demo data, prints where everything is, and on Ctrl-C / SIGTERM stops the children
// in reverse order, then the local infrastructure instances this run started, and exits 0.
import { spawnSync } from "node:child_process";
import { createConnection } from "node:net";
import { join } from "node:path";
import { loadPlatformConfig } from "./config.js";
import { seedDemoData } from "./demo-data.js";
import { platformBanner } from "./examples.js";
import { localSecretsFile, openLocalSecrets } from "./local-secrets.js";
import { baseUrl, planPlatform, type PlannedProcess } from "./platform.js";
import { createSupervisor, describeFailure, ProcessFailure, type ProcessSpec } from "./supervisor.js";

const config = loadPlatformConfig();
const secrets = openLocalSecrets(localSecretsFile(config), config.inheritedEnv);
const plan = planPlatform({ config, secret: secrets.secret });
const say = (message: string): void => void process.stdout.write(`[zero] ${message}\n`);

const migrations = plan.services.filter((p) => p.hasDatabase);
const everything = [...plan.services, ...(plan.gateway ? [plan.gateway] : [])];
const nameWidth = Math.max(
  ...everything.map((p) => p.name.length),
  ...migrations.map((p) => `${p.name}-migrate`.length),
);
const supervisor = createSupervisor({
  cwd: config.root,
  format: { json: config.logFormat === "json", color: config.color, nameWidth },
  readyTimeoutMs: config.readyTimeoutMs,
  onUnexpectedExit(name, description, tail) {
    reportFailure(new ProcessFailure(`${name} ${description}; stopping the platform`, tail));
    void shutdown(1);
  },
});

let shuttingDown = false;
async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say("stopping (gateway first, then the services in reverse order)");
  const { failed } = await supervisor.stopAll();
  for (const problem of failed) say(`warning: ${problem}`);
  if (config.infraStarted.length > 0) {
    // Output through our stdout, which survives a closed pipe; bash writing there itself would die of SIGPIPE.
    const stop = spawnSync("bash", [
      join(config.root, "scripts", "infra.sh"),
      "stop",
      ...config.infraStarted,
    ]);
    process.stdout.write(Buffer.concat([stop.stdout, stop.stderr]));
  }
  say("stopped");
  process.exit(code);
}

function reportFailure(error: unknown): void {
  process.stdout.write(`[zero] ${describeFailure(error)}\n`);
}

/** Something already listening would answer /readyz in place of the child we start. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

const processOf = (p: PlannedProcess, ...extra: string[]): ProcessSpec => ({
  name: extra.length > 0 ? `${p.name}-${extra.join("-")}` : p.name,
  args: ["--import", "tsx", p.entry, ...extra],
  env: p.env,
});

async function main(): Promise<void> {
  for (const warning of plan.warnings) say(`warning: ${warning}`);
  const busy = (
    await Promise.all(everything.map(async (p) => ((await portInUse(p.port)) ? p : undefined)))
  ).filter((p) => p !== undefined);
  if (busy.length > 0) {
    throw new Error(
      `port(s) already in use: ${busy.map((p) => `${p.port} (${p.name})`).join(", ")}. ` +
        "Is another Zero still running? Stop it (Ctrl-C in its terminal) or free the port.",
    );
  }
  for (const p of migrations) {
    say(`migrating ${p.name} (database ${new URL(p.env["DATABASE_URL"] ?? "").pathname.slice(1)})`);
    await supervisor.run(processOf(p, "migrate"));
  }
  say(`starting ${plan.services.map((p) => p.name).join(", ")}`);
  await Promise.all(plan.services.map((p) => supervisor.start(processOf(p), `${baseUrl(p.port)}/readyz`)));
  if (plan.gateway) {
    say("starting the gateway");
    await supervisor.start(processOf(plan.gateway), `${baseUrl(plan.gateway.port)}/readyz`);
    const problem = await seedDemoData(baseUrl(plan.gateway.port), secrets.secret);
    if (problem) say(`warning: ${problem}`);
  }
  process.stdout.write(platformBanner(everything));
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(0));
// A closed terminal or pipe (`start.sh | tee`, Ctrl-C kills tee too) must not stop the shutdown half-way.
process.stdout.on("error", () => undefined);
// If we die without shutdown(), the children (in their own process groups) must not outlive us.
process.on("exit", () => supervisor.killAll());

main().catch((error: unknown) => {
  if (shuttingDown) return; // a child stopped by Ctrl-C during start-up is no failure
  reportFailure(error);
  void shutdown(1);
});
