-- Extension, schema and grants of database vetpms, run by psql as the
-- superuser after roles.sql: by scripts/pg.sh and scripts/container-pg-init.sh.
-- Safe to run again.
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
-- The reader's history folds (?as_of=, docs/history.md) apply events to temp
-- copies of the read model's tables, dropped with their transaction.
GRANT TEMPORARY ON DATABASE vetpms TO vetpms_reader;
GRANT USAGE ON SCHEMA read TO vetpms_reader, vetpms_analyst, vetpms_scoped_analyst;
ALTER DEFAULT PRIVILEGES FOR ROLE vetpms_projector IN SCHEMA read
  GRANT SELECT ON TABLES TO vetpms_reader, vetpms_analyst, vetpms_scoped_analyst;
