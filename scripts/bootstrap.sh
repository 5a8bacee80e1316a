# shellcheck shell=bash
# Sourced by start.sh, test.sh and .ci/run (runnable on its own too): makes the pinned pnpm
# available and installs the workspace's dependencies exactly as the lockfile says.
#
# corepack cannot fetch pnpm on the project's machines (signature error), so pnpm comes from npm.
# When npm's global prefix is not writable (not root), pnpm goes to .local/pnpm instead.

ZERO_ROOT="${ZERO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ZERO_PNPM_VERSION="12.21.0"

zero_log() { echo "[zero] $*" >&2; }
zero_fail() {
  echo "[zero] ERROR: $*" >&2
  return 1
}

zero_ensure_pnpm() {
  local local_bin="$ZERO_ROOT/.local/pnpm/bin"
  [[ -x "$local_bin/pnpm" ]] && PATH="$local_bin:$PATH"
  if command -v pnpm >/dev/null 2>&1 && [[ "$(pnpm --version 2>/dev/null)" == "$ZERO_PNPM_VERSION" ]]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || zero_fail "npm is missing: install Node.js 20 (or newer), which ships npm." || return 1
  zero_log "installing pnpm $ZERO_PNPM_VERSION with npm (found: $(pnpm --version 2>/dev/null || echo none))"
  if [[ -w "$(npm prefix -g 2>/dev/null)" ]]; then
    npm install --global --no-fund --no-audit --loglevel=error "pnpm@$ZERO_PNPM_VERSION" >&2 || return 1
    hash -r
  fi
  if [[ "$(pnpm --version 2>/dev/null)" != "$ZERO_PNPM_VERSION" ]]; then
    npm install --prefix "$ZERO_ROOT/.local/pnpm" --global --no-fund --no-audit --loglevel=error \
      "pnpm@$ZERO_PNPM_VERSION" >&2 || return 1
    PATH="$local_bin:$PATH"
    hash -r
  fi
  [[ "$(pnpm --version 2>/dev/null)" == "$ZERO_PNPM_VERSION" ]] ||
    zero_fail "pnpm $ZERO_PNPM_VERSION is still not on PATH after installing it (PATH=$PATH)"
}

zero_install_dependencies() {
  local frozen="--frozen-lockfile"
  if [[ ! -f "$ZERO_ROOT/pnpm-lock.yaml" ]]; then
    zero_log "no pnpm-lock.yaml yet: plain install (this writes the lockfile; commit it)"
    frozen="--no-frozen-lockfile"
  fi
  (cd "$ZERO_ROOT" && pnpm install "$frozen" --reporter=append-only >&2)
}

zero_bootstrap() {
  if [[ "${ZERO_SKIP_BOOTSTRAP:-}" == "1" ]]; then
    zero_log "ZERO_SKIP_BOOTSTRAP=1: using the installed dependencies as they are"
    return 0
  fi
  command -v node >/dev/null 2>&1 || zero_fail "node is missing: install Node.js 20 (or newer)." || return 1
  zero_ensure_pnpm || return 1
  zero_install_dependencies || zero_fail "pnpm install failed (see above)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  zero_bootstrap
else
  zero_bootstrap || return 1
fi
