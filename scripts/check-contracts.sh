#!/usr/bin/env bash
# The contract checks of CI (dependencies must be installed: scripts/bootstrap.sh):
#   1. buf lint (STANDARD);
#   2. buf breaking (FILE) against main: an image of main's protos is built with the vendored
#      third-party module beside it (the base ref cannot find them on its own: they are generated
#      on install, not committed), skipped with a reason when main has no commit or no protos yet;
#   3. the committed generated code is what `pnpm generate` produces.
# ZERO_BREAKING_BASE overrides the base ref (default: origin/main when it exists, else main).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "[contracts] $*" >&2; }
[[ -d third_party/proto ]] || node scripts/vendor-protos.mjs >&2

say "buf lint"
pnpm exec buf lint

base="${ZERO_BREAKING_BASE:-}"
if [[ -z "$base" ]]; then
  if git rev-parse --verify --quiet origin/main >/dev/null; then base=origin/main; else base=main; fi
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
  say "buf breaking: SKIPPED, there is no commit $base yet (nothing to be compatible with)"
elif ! git cat-file -e "$base:buf.yaml" 2>/dev/null || ! git cat-file -e "$base:proto" 2>/dev/null; then
  say "buf breaking: SKIPPED, $base has no buf.yaml or proto/ directory yet"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  git archive --format=tar "$base" buf.yaml proto | tar -x -C "$work"
  mkdir -p "$work/third_party"
  cp -r third_party/proto "$work/third_party/proto"
  say "buf breaking against $base ($(git rev-parse --short "$base"))"
  # The image holds one module (Zero's; the third-party one only as its imports), so the input
  # must name that module too: buf compares image to image, module by module.
  pnpm exec buf build "$work/proto" -o "$work/base.binpb"
  pnpm exec buf breaking proto --against "$work/base.binpb"
fi

say "generated code is up to date (pnpm generate, then git status proto/gen)"
before=$(git status --porcelain -- proto/gen)
snapshot() { find proto/gen -type f -print0 | sort -z | xargs -0 sha256sum; }
if [[ -n "$before" ]]; then
  # A working tree with uncommitted generated code: compare against that instead of the commit.
  hash_before=$(snapshot)
  pnpm generate >&2
  if [[ "$(snapshot)" != "$hash_before" ]]; then
    say "FAILED: proto/gen (uncommitted) is not what 'pnpm generate' produces from proto/; it has now been regenerated:"
    git status --porcelain -- proto/gen >&2
    exit 1
  fi
else
  pnpm generate >&2
  after=$(git status --porcelain -- proto/gen)
  if [[ -n "$after" ]]; then
    say "FAILED: the committed proto/gen is stale. Run 'pnpm generate' and commit the result. Changes:"
    echo "$after" >&2
    git --no-pager diff --stat -- proto/gen >&2
    git --no-pager diff -- proto/gen | head -200 >&2
    exit 1
  fi
fi
say "ok"
