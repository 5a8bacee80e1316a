#!/bin/bash
# Run by compose's `postgres-init` container on every `up`, after Postgres is healthy: one role and
# one database per service in ZERO_SERVICE_DATABASES (DESIGN.md: no service reads another's
# database). Idempotent, so a volume created before a service existed gets that service's database
# on the next `up`. Connection from the standard PG* variables (PGHOST, PGUSER, PGPASSWORD).
# Names and passwords are zero_<service>: DEV ONLY, like the rest of compose.yaml.
set -euo pipefail
for service in ${ZERO_SERVICE_DATABASES:-}; do
  name="zero_${service//-/_}"
  psql -v ON_ERROR_STOP=1 -v name="$name" --dbname postgres --quiet <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SQL
  echo "database $name ready"
done
