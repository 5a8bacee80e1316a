#!/usr/bin/env bash
# Makes Postgres, Redis and NATS JetStream available to the platform and its tests.
#
# For each one: the URL from the environment (or the usual local default) when it answers;
# otherwise a project-local instance from the installed server binaries, with its data under
# .local/ and its own port, so it never touches a server someone else runs. Missing binaries are
# installed from Debian's packages when we are root with apt (ZERO_NO_INSTALL=1 forbids it);
# otherwise the message names what is missing and how to provide it.
#
# Sourced (start.sh, test.sh):   zero_infra [postgres] [redis] [nats]   (default: all three)
#   exports ZERO_POSTGRES_URL (an admin URL: may create roles and databases), ZERO_REDIS_URL,
#   ZERO_NATS_URL, and ZERO_INFRA_STARTED (the local instances this call started, for zero_infra_stop).
# Run:  scripts/infra.sh up [kinds...]     prints `export ...` lines:  eval "$(scripts/infra.sh up)"
#       scripts/infra.sh stop [kinds...]   stops the project-local instances (never a shared server)
#       scripts/infra.sh status
#
# Every service with database migrations (services/<name>/src/db/migrations) gets its own role and
# database, both named zero_<name>, password = the role name. DEV ONLY: the local instance trusts
# every connection from 127.0.0.1; a real deployment provisions roles with real secrets.

ZERO_ROOT="${ZERO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ZERO_LOCAL_DIR="${ZERO_LOCAL_DIR:-$ZERO_ROOT/.local}"
ZERO_LOCAL_POSTGRES_PORT="${ZERO_LOCAL_POSTGRES_PORT:-55432}"
ZERO_LOCAL_REDIS_PORT="${ZERO_LOCAL_REDIS_PORT:-56379}"
ZERO_LOCAL_NATS_PORT="${ZERO_LOCAL_NATS_PORT:-54222}"

_zero_infra_log() { echo "[infra] $*" >&2; }
_zero_infra_fail() {
  echo "[infra] ERROR: $*" >&2
  return 1
}
# Passwords in URLs never reach the terminal.
_zero_redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# "host port" of a URL; the default port when it names none.
_zero_host_port() {
  local url="$1" default_port="$2"
  if [[ "$url" =~ ^[a-zA-Z][a-zA-Z0-9+.-]*://([^@/]*@)?(\[[^]/]*\]|[^:/?]*)(:([0-9]+))? ]]; then
    local host="${BASH_REMATCH[2]}" port="${BASH_REMATCH[4]:-$default_port}"
    host="${host#[}"
    host="${host%]}"
    echo "${host:-127.0.0.1} $port"
  else
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Installing what is missing

_zero_apt_updated=""
_zero_install_packages() {
  local packages=("$@")
  if [[ "${ZERO_NO_INSTALL:-}" == "1" || "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  if [[ -z "$_zero_apt_updated" ]]; then
    _zero_infra_log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    _zero_apt_updated=1
  fi
  _zero_infra_log "installing Debian packages: ${packages[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
}

# zero_need_command COMMAND DEBIAN_PACKAGE WHAT_FOR
zero_need_command() {
  local command="$1" package="$2" purpose="$3"
  command -v "$command" >/dev/null 2>&1 && return 0
  _zero_install_packages "$package" && command -v "$command" >/dev/null 2>&1 && return 0
  _zero_infra_fail "'$command' is missing ($purpose). Install it, e.g. 'apt-get install $package' as root on Debian/Ubuntu (we only install packages ourselves when running as root with apt and ZERO_NO_INSTALL is not 1)."
}

# The directory holding initdb/pg_ctl: Debian keeps them out of PATH in a versioned folder.
_zero_postgres_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null)"
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir" && return 0
  fi
  for dir in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir" && return 0
  done
  if command -v initdb >/dev/null 2>&1; then
    dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
    [[ -x "$dir/pg_ctl" ]] && echo "$dir" && return 0
  fi
  return 1
}

# ---------------------------------------------------------------------------------------------
# Does it answer?

_zero_postgres_answers() {
  PGCONNECT_TIMEOUT=3 psql "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

# Any RESP reply (+PONG, or -NOAUTH from a server that wants a password) means a Redis answers.
_zero_redis_answers() {
  local hp
  hp=$(_zero_host_port "$1" 6379) || return 1
  # shellcheck disable=SC2086
  set -- $hp
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r line <&3 && [[ "$line" == [+-]* ]]' "$1" "$2" 2>/dev/null
}

# A NATS server greets with an INFO line; it must say JetStream is on.
_zero_nats_answers() {
  local hp
  hp=$(_zero_host_port "$1" 4222) || return 1
  # shellcheck disable=SC2086
  set -- $hp
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && read -r line <&3 && [[ "$line" == INFO*\"jetstream\":true* ]]' "$1" "$2" 2>/dev/null
}

_zero_wait_for() {
  local what="$1" check="$2" url="$3" tries="${4:-60}"
  for ((i = 0; i < tries; i++)); do
    "$check" "$url" && return 0
    sleep 0.5
  done
  _zero_infra_fail "$what did not answer at $(_zero_redact "$url") within $((tries / 2)) s"
}

# ---------------------------------------------------------------------------------------------
# Project-local instances

# Root cannot run initdb/postgres: run them as the postgres user when we are root.
_zero_as_postgres_user() {
  if [[ "$(id -u)" == "0" ]]; then
    su postgres -s /bin/sh -c "$1"
  else
    sh -c "$1"
  fi
}

_zero_postgres_home() {
  local home="$ZERO_LOCAL_DIR/postgres"
  mkdir -p "$home"
  if [[ "$(id -u)" == "0" ]]; then
    id postgres >/dev/null 2>&1 ||
      _zero_infra_fail "running as root, Postgres needs an unprivileged 'postgres' user (Debian's postgresql package creates it)" || return 1
    chown postgres: "$home"
    # The postgres user must be able to reach the folder (a checkout under /root is not).
    if ! su postgres -s /bin/sh -c "test -w '$home'"; then
      home="/var/tmp/zero-postgres-$(printf '%s' "$ZERO_ROOT" | cksum | cut -d' ' -f1)"
      mkdir -p "$home" && chown postgres: "$home" && chmod 700 "$home"
      _zero_infra_log "the postgres user cannot reach $ZERO_LOCAL_DIR; keeping the local Postgres data in $home"
    fi
  fi
  echo "$home"
}

_zero_start_local_postgres() {
  local url="$1" bindir home
  if ! bindir=$(_zero_postgres_bindir); then
    _zero_install_packages postgresql || true
    bindir=$(_zero_postgres_bindir) || _zero_infra_fail "the PostgreSQL server binaries (initdb, pg_ctl) are missing. Install them ('apt-get install postgresql' as root on Debian/Ubuntu), or set DATABASE_URL to an admin URL of a running server (e.g. postgres://postgres@host:5432/postgres)." || return 1
  fi
  home=$(_zero_postgres_home) || return 1
  if [[ ! -f "$home/data/PG_VERSION" ]]; then
    _zero_infra_log "initdb: a new local cluster in $home/data ($("$bindir/postgres" --version))"
    _zero_as_postgres_user "'$bindir/initdb' -D '$home/data' -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >'$home/initdb.log' 2>&1" ||
      _zero_infra_fail "initdb failed: see $home/initdb.log" || return 1
  fi
  _zero_infra_log "starting a local Postgres on 127.0.0.1:$ZERO_LOCAL_POSTGRES_PORT (data: $home/data, log: $home/postgres.log)"
  _zero_as_postgres_user "'$bindir/pg_ctl' -D '$home/data' -l '$home/postgres.log' -w -t 60 -o \"-p $ZERO_LOCAL_POSTGRES_PORT -k '$home' -c listen_addresses=127.0.0.1\" start >/dev/null" ||
    _zero_infra_fail "Postgres did not start: see $home/postgres.log" || return 1
  _zero_wait_for "the local Postgres" _zero_postgres_answers "$url"
}

_zero_start_local_redis() {
  local url="$1" dir="$ZERO_LOCAL_DIR/redis"
  zero_need_command redis-server redis-server "runs a project-local Redis" || return 1
  mkdir -p "$dir"
  _zero_infra_log "starting a local Redis on 127.0.0.1:$ZERO_LOCAL_REDIS_PORT (data: $dir)"
  redis-server --port "$ZERO_LOCAL_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --appendonly yes --save "" </dev/null >/dev/null 2>&1 ||
    _zero_infra_fail "redis-server did not start: see $dir/redis.log" || return 1
  _zero_wait_for "the local Redis" _zero_redis_answers "$url"
}

_zero_start_local_nats() {
  local url="$1" dir="$ZERO_LOCAL_DIR/nats"
  zero_need_command nats-server nats-server "runs a project-local NATS with JetStream" || return 1
  mkdir -p "$dir/store"
  _zero_infra_log "starting a local NATS JetStream on 127.0.0.1:$ZERO_LOCAL_NATS_PORT (store: $dir/store)"
  # nats-server cannot daemonize itself: a subshell that exits at once (so the server is not our
  # child, nor that of whatever exec replaces this shell with), its own session, stdio away from our pipes.
  (setsid nats-server -a 127.0.0.1 -p "$ZERO_LOCAL_NATS_PORT" -js -sd "$dir/store" \
    -l "$dir/nats.log" -P "$dir/nats.pid" </dev/null >/dev/null 2>&1 &)
  _zero_wait_for "the local NATS" _zero_nats_answers "$url"
}

# ---------------------------------------------------------------------------------------------
# Use what answers, or start a local one

# _zero_provide KIND LABEL CHECK CANDIDATE_URL LOCAL_URL -> sets _zero_provided_url
_zero_provide() {
  local kind="$1" label="$2" check="$3" candidate="$4" local_url="$5"
  if "$check" "$candidate"; then
    _zero_infra_log "$label: using $(_zero_redact "$candidate")"
    _zero_provided_url="$candidate"
    return 0
  fi
  if [[ "$candidate" != "$local_url" ]]; then
    _zero_infra_log "$label: nothing answers at $(_zero_redact "$candidate")"
    if "$check" "$local_url"; then
      _zero_infra_log "$label: using the project-local instance at $local_url"
      _zero_provided_url="$local_url"
      return 0
    fi
  fi
  "_zero_start_local_$kind" "$local_url" || return 1
  ZERO_INFRA_STARTED="${ZERO_INFRA_STARTED:+$ZERO_INFRA_STARTED }$kind"
  _zero_provided_url="$local_url"
}

_zero_infra_postgres() {
  zero_need_command psql postgresql-client "checks Postgres and creates the services' roles and databases" || return 1
  _zero_provide postgres Postgres _zero_postgres_answers \
    "${ZERO_POSTGRES_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}" \
    "postgres://postgres@127.0.0.1:$ZERO_LOCAL_POSTGRES_PORT/postgres" || return 1
  export ZERO_POSTGRES_URL="$_zero_provided_url"
  zero_ensure_service_databases
}

_zero_infra_redis() {
  _zero_provide redis Redis _zero_redis_answers "${ZERO_REDIS_URL:-${REDIS_URL:-redis://127.0.0.1:6379}}" \
    "redis://127.0.0.1:$ZERO_LOCAL_REDIS_PORT" || return 1
  export ZERO_REDIS_URL="$_zero_provided_url"
}

_zero_infra_nats() {
  _zero_provide nats "NATS JetStream" _zero_nats_answers "${ZERO_NATS_URL:-${NATS_URL:-nats://127.0.0.1:4222}}" \
    "nats://127.0.0.1:$ZERO_LOCAL_NATS_PORT" || return 1
  export ZERO_NATS_URL="$_zero_provided_url"
}

# The services that keep data in Postgres: those with migrations.
zero_database_services() {
  local dir
  for dir in "$ZERO_ROOT"/services/*/src/db/migrations; do
    [[ -d "$dir" ]] && basename "$(dirname "$(dirname "$(dirname "$dir")")")"
  done
}

# One role + one database per service, idempotently (DESIGN.md: no service reads another's data).
zero_ensure_service_databases() {
  local service name
  for service in $(zero_database_services); do
    name="zero_${service//-/_}"
    PGCONNECT_TIMEOUT=5 psql "$ZERO_POSTGRES_URL" -X -q -v ON_ERROR_STOP=1 -v name="$name" >/dev/null <<'SQL' ||
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SQL
      _zero_infra_fail "could not create role/database $name with $(_zero_redact "$ZERO_POSTGRES_URL"): it must be an admin URL (a role allowed to CREATE ROLE and CREATE DATABASE)" || return 1
  done
}

# zero_infra [postgres] [redis] [nats]
zero_infra() {
  local kinds=("$@") kind
  ((${#kinds[@]})) || kinds=(postgres redis nats)
  # Only what this call starts: an instance inherited from an earlier `eval "$(scripts/infra.sh up)"`
  # belongs to whoever started it and must not be stopped by our caller.
  export ZERO_INFRA_STARTED=""
  for kind in "${kinds[@]}"; do
    case "$kind" in
      postgres | redis | nats) "_zero_infra_$kind" || return 1 ;;
      *) _zero_infra_fail "unknown infrastructure '$kind' (postgres, redis, nats)" || return 1 ;;
    esac
  done
}

# The testkit starts private redis-server / nats-server processes: the binaries must be installed.
zero_require_test_binaries() {
  zero_need_command redis-server redis-server "the tests start private Redis servers" &&
    zero_need_command nats-server nats-server "the tests start private NATS servers"
}

# zero_infra_stop [kinds...]: stops project-local instances only (default: all three).
zero_infra_stop() {
  local kinds=("$@") kind pid bindir home
  ((${#kinds[@]})) || kinds=(postgres redis nats)
  for kind in "${kinds[@]}"; do
    case "$kind" in
      postgres)
        home="$ZERO_LOCAL_DIR/postgres"
        [[ -f "$home/data/PG_VERSION" ]] ||
          home="/var/tmp/zero-postgres-$(printf '%s' "$ZERO_ROOT" | cksum | cut -d' ' -f1)"
        if [[ -f "$home/data/postmaster.pid" ]] && bindir=$(_zero_postgres_bindir); then
          _zero_infra_log "stopping the local Postgres"
          _zero_as_postgres_user "'$bindir/pg_ctl' -D '$home/data' -m fast -w stop >/dev/null" || true
        fi
        ;;
      redis | nats)
        pid=$(cat "$ZERO_LOCAL_DIR/$kind/$kind.pid" 2>/dev/null) || continue
        if kill -0 "$pid" 2>/dev/null; then
          _zero_infra_log "stopping the local $kind (pid $pid)"
          kill -TERM "$pid"
          for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$ZERO_LOCAL_DIR/$kind/$kind.pid"
        ;;
    esac
  done
}

zero_infra_status() {
  local url
  url="postgres://postgres@127.0.0.1:$ZERO_LOCAL_POSTGRES_PORT/postgres"
  command -v psql >/dev/null 2>&1 && _zero_postgres_answers "$url" && echo "postgres: local, $url" || echo "postgres: no local instance"
  url="redis://127.0.0.1:$ZERO_LOCAL_REDIS_PORT"
  _zero_redis_answers "$url" && echo "redis:    local, $url" || echo "redis:    no local instance"
  url="nats://127.0.0.1:$ZERO_LOCAL_NATS_PORT"
  _zero_nats_answers "$url" && echo "nats:     local, $url" || echo "nats:     no local instance"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  command="${1:-up}"
  shift || true
  case "$command" in
    up)
      zero_infra "$@"
      for var in ZERO_POSTGRES_URL ZERO_REDIS_URL ZERO_NATS_URL ZERO_INFRA_STARTED; do
        if [[ -n "${!var:-}" ]]; then printf 'export %s=%q\n' "$var" "${!var}"; fi
      done
      ;;
    stop) zero_infra_stop "$@" ;;
    status) zero_infra_status ;;
    *)
      echo "usage: scripts/infra.sh [up|stop|status] [postgres|redis|nats ...]" >&2
      exit 2
      ;;
  esac
fi
