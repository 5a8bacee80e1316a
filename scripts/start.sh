#!/usr/bin/env bash
# Command one of the README: starts the whole platform on this machine.
#   dependencies (pnpm) → Postgres/Redis/NATS (found or started locally) → migrations →
#   every service, then the gateway → demo data → URLs and examples. Ctrl-C stops everything.
# Environment: see docs/running.md (DATABASE_URL/REDIS_URL/NATS_URL to use servers of your own,
# LOG_LEVEL, ZERO_LOG_FORMAT=json for raw pino lines, ZERO_READY_TIMEOUT_SECONDS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/bootstrap.sh
source scripts/infra.sh
zero_infra postgres redis nats || {
  [[ -n "${ZERO_INFRA_STARTED:-}" ]] && zero_infra_stop $ZERO_INFRA_STARTED
  exit 1
}

# The supervisor replaces this shell: signals reach it directly, and it stops the local
# infrastructure instances named in ZERO_INFRA_STARTED on its way out.
exec node --import tsx scripts/start.ts
