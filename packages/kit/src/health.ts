import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@zero/proto/grpc/health/v1/health_pb";
import type { Health, HealthCheckResponse } from "@zero/proto/grpc/health/v1/health_pb";
import type { Readiness } from "./readiness.js";

export interface HealthServiceOptions {
  readiness: Readiness;
  /** Full names of the services this server answers for (besides "", the server as a whole). */
  serviceNames: readonly string[];
  /** Aborted when the server starts draining: Watch streams then end, so HTTP/2 sessions can close. */
  draining: AbortSignal;
}

// How long a Check may reuse the last readiness result: enough to absorb a burst of probes.
const CHECK_MAX_AGE_MS = 250;

/**
 * grpc.health.v1.Health whose status follows the readiness checks: every service of this process
 * shares the process's dependencies, so they are SERVING or NOT_SERVING together.
 */
export function createHealthService(opts: HealthServiceOptions): ServiceImpl<typeof Health> {
  const { readiness, draining } = opts;
  const known = new Set(["", ...opts.serviceNames]);

  const status = (): ServingStatus =>
    readiness.current().ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  const response = (s: ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status: s });

  // Resolves on the next readiness change, or when the call or the server is going away.
  const nextChange = (signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        unsubscribe();
        signal.removeEventListener("abort", done);
        draining.removeEventListener("abort", done);
        resolve();
      };
      const unsubscribe = readiness.onChange(done);
      signal.addEventListener("abort", done);
      draining.addEventListener("abort", done);
    });

  return {
    async check(req) {
      if (!known.has(req.service)) {
        throw new ConnectError(
          `unknown service "${req.service}": ask for "" (this server) or one of ${[...known].filter(Boolean).join(", ")}`,
          Code.NotFound,
        );
      }
      await readiness.refresh(CHECK_MAX_AGE_MS);
      return response(status());
    },

    async *watch(req, ctx) {
      let last: ServingStatus | undefined;
      for (;;) {
        // Subscribe before reading the status, so a change in between is not missed.
        const changed = nextChange(ctx.signal);
        const current = known.has(req.service) ? status() : ServingStatus.SERVICE_UNKNOWN;
        if (current !== last) {
          last = current;
          yield response(current);
        }
        if (ctx.signal.aborted || draining.aborted) return;
        await changed;
        if (ctx.signal.aborted) return;
      }
    },

    async list() {
      await readiness.refresh(CHECK_MAX_AGE_MS);
      const current = status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: current }])) };
    },
  };
}
