-- Roles and the database of VetPMS, run by psql as the superuser against
-- database postgres: by scripts/pg.sh (local stack) and by
-- scripts/container-pg-init.sh (compose). The passwords come as psql variables
-- (projector_pw, reader_pw, analyst_pw), quoted by psql with :'var', never
-- pasted into this text. Safe to run again.
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
