#!/usr/bin/env bash
# Command two of the README: runs the whole test suite (what .ci/run runs).
#   dependencies (pnpm) → a Postgres the tests may create databases on (found or started locally)
#   and the redis-server / nats-server binaries the testkit starts private servers from → vitest.
# Extra arguments go to vitest (e.g. scripts/test.sh services/auth). Exit code = the suite's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/bootstrap.sh
source scripts/infra.sh
stop_started_infra() {
  if [[ -n "${ZERO_INFRA_STARTED:-}" ]]; then zero_infra_stop $ZERO_INFRA_STARTED; fi
}
trap stop_started_infra EXIT
zero_infra postgres
zero_require_test_binaries
export ZERO_TEST_DATABASE_URL="$ZERO_POSTGRES_URL"

echo "[zero] node $(node --version), tests against $(_zero_redact "$ZERO_TEST_DATABASE_URL")" >&2
mkdir -p .local
report=.local/vitest-report.json
rm -f "$report"
status=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?

# One plain closing line with the counts, whatever the reporter above printed.
if [[ -f "$report" ]]; then
  node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  ' "$report" || true
fi
exit "$status"
