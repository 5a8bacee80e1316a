#!/usr/bin/env bash
# A/B of the gateway's cost per REST request: two source trees' gateways against one echo service,
# alternated round by round, so both see the same machine. Prints req/s, CPU µs per request
# (/proc/<pid>/stat) and, where `perf` can count them, instructions and cycles per request — on a
# shared VM instructions move far less than seconds (docs/lessons.md, "Measuring").
#
#   bench/gateway/ab.sh <tree A> <tree B> [rounds=3] [seconds=5]
#
# GATEWAY_OPTIONS adds sut.ts gateway options to both, e.g. GATEWAY_OPTIONS='"tracing":true'.
#
# A tree is a checkout with its dependencies installed (`git worktree add /tmp/base <commit>` and
# `pnpm install --frozen-lockfile` in it). Echo runs from tree A. Everything runs on core 0 and
# wrk (Debian's `wrk`) on core 1, as in run.ts. Needs Linux, taskset and wrk.
set -euo pipefail
A=$(cd "${1:?tree A}" && pwd); B=$(cd "${2:?tree B}" && pwd)
ROUNDS=${3:-3}; SECONDS_PER_RUN=${4:-5}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
# `perf stat` exits 0 on VMs without counters too, printing "<not supported>": look at what it counted.
PERF=$(perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q "^[0-9]" && echo perf || true)
work=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # tree role options -> sets STARTED_PID, STARTED_URL
  local log="$work/$RANDOM.log"
  (cd "$1/bench/gateway" && exec taskset -c 0 node --import tsx sut.ts "$2" "$3") >"$log" 2>&1 &
  STARTED_PID=$!; pids+=("$STARTED_PID")
  for _ in $(seq 1 300); do grep -q '^READY ' "$log" && break; sleep 0.1; done
  STARTED_URL=$(awk '/^READY /{print $2}' "$log")
  [ -n "$STARTED_URL" ] || { cat "$log" >&2; exit 1; }
}
start "$A" echo '{}'; echo_pid=$STARTED_PID; echo_url=$STARTED_URL
gateway_options="{\"echoUrl\":\"$echo_url\"${GATEWAY_OPTIONS:+,$GATEWAY_OPTIONS}}"
start "$A" gateway "$gateway_options"; a_pid=$STARTED_PID; a_url=$STARTED_URL
start "$B" gateway "$gateway_options"; b_pid=$STARTED_PID; b_url=$STARTED_URL

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message":"hello"}'
wrk.headers["content-type"] = "application/json"
LUA
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
counted() { # pid file -> "instructions cycles"
  [ -n "$PERF" ] && awk -F, '/instructions/{i=$1} /cycles/{c=$1} END {print i+0, c+0}' "$2" || echo "0 0"
}
measure() { # label url gateway-pid
  local label=$1 url=$2 gw=$3
  taskset -c 1 wrk -t1 -c50 -d2s -s "$work/post.lua" "$url" >/dev/null # warm-up
  local e0 g0; e0=$(ticks "$echo_pid"); g0=$([ -n "$gw" ] && ticks "$gw" || echo 0)
  local waits=()
  if [ -n "$PERF" ]; then
    perf stat -x, -e instructions,cycles -p "$echo_pid" -o "$work/e.perf" -- sleep "$SECONDS_PER_RUN" & waits+=($!)
    [ -n "$gw" ] && { perf stat -x, -e instructions,cycles -p "$gw" -o "$work/g.perf" -- sleep "$SECONDS_PER_RUN" & waits+=($!); }
  fi
  local out; out=$(taskset -c 1 wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" -s "$work/post.lua" "$url")
  [ ${#waits[@]} -gt 0 ] && wait "${waits[@]}"
  local n rps e1 g1; n=$(awk '/requests in/{print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  e1=$(ticks "$echo_pid"); g1=$([ -n "$gw" ] && ticks "$gw" || echo 0)
  read -r ei ec < <(counted "$echo_pid" "$work/e.perf" 2>/dev/null || echo "0 0")
  read -r gi gc < <([ -n "$gw" ] && counted "$gw" "$work/g.perf" 2>/dev/null || echo "0 0")
  local hz; hz=$(getconf CLK_TCK)
  awk -v l="$label" -v rps="$rps" -v n="$n" -v e="$((e1 - e0))" -v g="$((g1 - g0))" -v hz="$hz" \
    -v ei="$ei" -v ec="$ec" -v gi="$gi" -v gc="$gc" 'BEGIN {
      printf "%-7s %7.0f req/s | echo %4.0f µs %5.0fk ins %5.0fk cyc | gateway %4.0f µs %5.0fk ins %5.0fk cyc\n",
        l, rps, e * 1e6 / hz / n, ei / n / 1000, ec / n / 1000, g * 1e6 / hz / n, gi / n / 1000, gc / n / 1000 }'
}
echo "A = $A, B = $B; per request; perf: ${PERF:-not available}"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  measure direct "$echo_url/zero.testing.v1.EchoService/Echo" ""
  measure A "$a_url/v1/echo" "$a_pid"
  measure B "$b_url/v1/echo" "$b_pid"
done
