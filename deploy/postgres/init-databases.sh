#!/bin/bash
# Runs once, when the compose Postgres volume is first initialised (docker-entrypoint-initdb.d):
# one role and one database per service (DESIGN.md: no service reads another's database).
# Names and passwords are zero_<service>: DEV ONLY, like the rest of compose.yaml.
set -euo pipefail
for service in ${ZERO_SERVICE_DATABASES:-}; do
  name="zero_${service//-/_}"
  psql -v ON_ERROR_STOP=1 -v name="$name" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SQL
done
