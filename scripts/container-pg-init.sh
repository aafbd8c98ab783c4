#!/usr/bin/env bash
# PostgreSQL set-up of the compose stack (compose.yaml mounts this file into the
# postgres image's /docker-entrypoint-initdb.d/): the same roles, database,
# extension, schema and grants as scripts/pg.sh `setup` for the local stack —
# keep the two in step.
#
# The image's entrypoint runs it once, on the first start with an empty data
# volume, against a temporary server on the Unix socket (local connections are
# trusted there). Changing a VETPMS_PG_*_PASSWORD later does not reach an existing
# volume: ALTER ROLE by hand, or `docker compose down -v` to start over.
#
# The entrypoint sources this file when it is not executable, so no `exit` and no
# `set -u` here (either would leak into the entrypoint); errors stop it through
# ON_ERROR_STOP and `set -e`, which the entrypoint itself also uses.
set -e

vetpms_psql() {
  psql -X -q -v ON_ERROR_STOP=1 --no-password --username "${POSTGRES_USER:-postgres}" "$@"
}

# Passwords as psql variables (quoted by psql with :'var'), never pasted into SQL.
vetpms_psql --dbname postgres \
  -v projector_pw="${VETPMS_PG_PROJECTOR_PASSWORD:?VETPMS_PG_PROJECTOR_PASSWORD not set}" \
  -v reader_pw="${VETPMS_PG_READER_PASSWORD:?VETPMS_PG_READER_PASSWORD not set}" \
  -v analyst_pw="${VETPMS_PG_ANALYST_PASSWORD:?VETPMS_PG_ANALYST_PASSWORD not set}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['vetpms_projector','vetpms_reader','vetpms_analyst']) r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE vetpms_projector PASSWORD :'projector_pw';
ALTER ROLE vetpms_reader PASSWORD :'reader_pw';
ALTER ROLE vetpms_analyst PASSWORD :'analyst_pw';
-- The reader and analysts must never bypass row-level security.
ALTER ROLE vetpms_reader NOBYPASSRLS;
ALTER ROLE vetpms_analyst NOBYPASSRLS;
-- Analysts read the tenants granted to their login (schema/migrations/
-- 010_analyst_scope.sql, docs/analysts.md): vetpms_analyst is the
-- platform-wide login for operators, granted every tenant; per-tenant logins
-- (vetctl analyst create) are members of vetpms_scoped_analyst.
SELECT format('CREATE ROLE %I NOLOGIN', r) FROM unnest(ARRAY['vetpms_all_tenants','vetpms_scoped_analyst']) r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE vetpms_scoped_analyst NOBYPASSRLS;
SELECT 'GRANT vetpms_all_tenants TO vetpms_analyst'
 WHERE NOT pg_has_role('vetpms_analyst', 'vetpms_all_tenants', 'MEMBER') \gexec
SELECT 'CREATE DATABASE vetpms OWNER postgres ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'vetpms') \gexec
SQL

vetpms_psql --dbname vetpms <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
REVOKE ALL ON DATABASE vetpms FROM PUBLIC;
GRANT CONNECT ON DATABASE vetpms TO vetpms_projector, vetpms_reader, vetpms_analyst,
  vetpms_scoped_analyst;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS read AUTHORIZATION vetpms_projector;
-- The projector may create fresh schemas for blue/green rebuilds.
GRANT CREATE ON DATABASE vetpms TO vetpms_projector;
-- REFRESH MATERIALIZED VIEW CONCURRENTLY diffs through a temporary table.
GRANT TEMPORARY ON DATABASE vetpms TO vetpms_projector;
GRANT USAGE ON SCHEMA read TO vetpms_reader, vetpms_analyst, vetpms_scoped_analyst;
ALTER DEFAULT PRIVILEGES FOR ROLE vetpms_projector IN SCHEMA read
  GRANT SELECT ON TABLES TO vetpms_reader, vetpms_analyst, vetpms_scoped_analyst;
SQL
