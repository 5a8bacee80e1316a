import { ConfigError } from "./config.js";
import { createDb, migrateToLatest, type Migration } from "./db.js";
import { createLifecycle } from "./lifecycle.js";
import { createLogger, type Logger } from "./log.js";
import { startTelemetry } from "./telemetry.js";

/** What `serve` started: `runService` closes it on SIGTERM/SIGINT. */
export interface RunningService {
  close(drainMs: number): Promise<void>;
}

/**
 * An operator command (`main.ts <name> [args…]`). It reads its own configuration and resolves when
 * done (exit 0). Throw `ConfigError` for the operator's mistakes: reported without a stack, exit 1.
 */
export type ServiceCommand = (args: string[]) => Promise<void>;

export interface RunServiceOptions<Config extends { logLevel: string }> {
  /** The service's name: telemetry's service name, the logger's, the prefix of error output. */
  name: string;
  /** Parses the environment once; throws `ConfigError` listing every problem. */
  loadConfig: () => Config;
  /** Starts everything the service runs (the `startXServer` its tests use). */
  serve: (config: Config, logger: Logger) => Promise<RunningService>;
  /** How long in-flight calls get on shutdown (default 7 s): most of the lifecycle's deadline. */
  drainMs?: number;
  /** The lifecycle's deadline for all closers together (default 10 s). */
  shutdownDeadlineMs?: number;
  /** Enables `main.ts migrate`: applies the migrations and exits. */
  migrate?: {
    loadConfig: () => { databaseUrl: string; logLevel: string };
    migrations: Record<string, Migration>;
  };
  /** Further commands, e.g. auth's `create-admin`. */
  commands?: Record<string, ServiceCommand>;
}

const DEFAULT_DRAIN_MS = 7_000;
const DEFAULT_SHUTDOWN_DEADLINE_MS = 10_000;

/**
 * A service's whole `main.ts`: telemetry first, then `main.ts` serves (until SIGTERM/SIGINT, the
 * server draining first and telemetry flushing last) or runs the command named by its first
 * argument. Any failure exits 1 with `<name>: <error>` on stderr: a `ConfigError` is the operator's
 * to fix, so it is shown without a stack trace.
 */
export async function runService<Config extends { logLevel: string }>(
  opts: RunServiceOptions<Config>,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  const telemetry = startTelemetry({ serviceName: opts.name });
  const commands: Record<string, ServiceCommand> = {
    ...(opts.migrate === undefined ? {} : { migrate: migrateCommand(opts.name, opts.migrate) }),
    ...opts.commands,
  };

  try {
    const [command, ...args] = argv;
    if (command === undefined) {
      await serve(opts, () => telemetry.shutdown());
      return;
    }
    const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (run === undefined) throw new ConfigError([unknownCommand(opts.name, command, Object.keys(commands))]);
    await run(args);
    await telemetry.shutdown();
  } catch (error) {
    process.stderr.write(
      `${opts.name}: ${error instanceof ConfigError ? error.message : String((error as Error)?.stack ?? error)}\n`,
    );
    await telemetry.shutdown().catch(() => undefined);
    process.exit(1);
  }
}

async function serve<Config extends { logLevel: string }>(
  opts: RunServiceOptions<Config>,
  shutdownTelemetry: () => Promise<void>,
): Promise<void> {
  const config = opts.loadConfig();
  const logger = createLogger(opts.name, { level: config.logLevel });
  const lifecycle = createLifecycle(logger, {
    deadlineMs: opts.shutdownDeadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS,
  });
  // Registered first, so it runs last: the spans of the shutdown itself are flushed too.
  lifecycle.defer("telemetry", shutdownTelemetry);
  const service = await opts.serve(config, logger);
  lifecycle.defer(opts.name, () => service.close(opts.drainMs ?? DEFAULT_DRAIN_MS));
  await lifecycle.wait();
}

function migrateCommand(
  name: string,
  migrate: NonNullable<RunServiceOptions<never>["migrate"]>,
): ServiceCommand {
  return async () => {
    const config = migrate.loadConfig();
    const logger = createLogger(name, { level: config.logLevel });
    const db = createDb(config.databaseUrl, { logger });
    try {
      await migrateToLatest(db, migrate.migrations, logger);
      logger.info("migrations up to date");
    } finally {
      await db.destroy();
    }
  };
}

function unknownCommand(name: string, command: string, known: string[]): string {
  if (known.length === 0)
    return `unknown command "${command}": ${name} takes no command, start it without arguments`;
  const choices = known.length === 1 ? known[0] : `${known.slice(0, -1).join(", ")} or ${known.at(-1)}`;
  return `unknown command "${command}": use ${choices}`;
}
