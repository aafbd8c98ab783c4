-- Analysts per tenant (issue 15): row security keyed on the login, not on a
-- setting the session can change. Before this, the only guard on an analyst
-- was `tenant_id = current_setting('vetpms.tenant_id')`, and the analyst sets
-- that itself: any login of vetpms_analyst could read any tenant.
--
-- Roles (created by scripts/pg.sh and scripts/container-pg-init.sh, which run
-- as a superuser; migrations run as the projector, which cannot):
--   vetpms_analyst          the platform-wide login of operators; a direct
--       member of vetpms_all_tenants, it still picks any one tenant with SET.
--   vetpms_scoped_analyst   NOLOGIN: the group of per-tenant analyst logins
--       (`vetctl analyst create`). It holds its own copy of vetpms_analyst's
--       privileges (below): a login that were a member of vetpms_analyst could
--       SET ROLE to it and change that login's password.
--   vetpms_tenant_<tenant uuid, 32 hex digits>  NOLOGIN, no privileges:
--       membership (direct or through groups) is read access to that tenant.
--   vetpms_all_tenants      NOLOGIN, no privileges: direct membership is
--       read access to every tenant.
-- Grants are looked up for session_user, the login, which SET ROLE does not
-- change; SET ROLE to any role a login reaches gains nothing. Roles are
-- cluster-wide, so the grants survive a blue/green rebuild's schema swap
-- untouched; the functions, views, policies and privileges below are built
-- again in the fresh schema by this migration.
--
-- The tenant setting still picks one tenant at a time (the permissive
-- tenant_isolation policies stay, the reader depends on them; a scoped login
-- gets its first tenant as its default setting); what is new is a RESTRICTIVE
-- policy for analysts and the same test in the analysts' views, which run as
-- their owner and so are not under row security.

-- Tenants whose vetpms_tenant_<hex> role the login is a member of.
CREATE FUNCTION analyst_granted_tenants() RETURNS SETOF uuid
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT substr(r.rolname, 15)::uuid FROM pg_roles r
    WHERE r.rolname ~ '^vetpms_tenant_[0-9a-f]{32}$'
      AND pg_has_role(session_user, r.oid, 'MEMBER')
$$;

-- True when the session is not limited to granted tenants: a superuser
-- login, a direct member of vetpms_all_tenants, or a session that is no
-- analyst at all (neither its login nor its current role is a member of
-- vetpms_analyst or vetpms_scoped_analyst: the reader, the projector; their
-- scope is the setting).
CREATE FUNCTION analyst_sees_every_tenant() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT coalesce((SELECT u.rolsuper FROM pg_roles u WHERE u.rolname = session_user), false)
        OR EXISTS (SELECT 1 FROM pg_auth_members m
                   JOIN pg_roles g ON g.oid = m.roleid
                   JOIN pg_roles u ON u.oid = m.member
                   WHERE g.rolname = 'vetpms_all_tenants' AND u.rolname = session_user)
        OR NOT EXISTS (SELECT 1 FROM pg_roles a
                       WHERE a.rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst')
                       AND (pg_has_role(session_user, a.oid, 'MEMBER')
                            OR pg_has_role(current_user, a.oid, 'MEMBER')))
$$;

-- Both are called as uncorrelated sub-selects below: evaluated once per
-- query (an InitPlan and a hashed SubPlan), not once per row.

-- The analysts' views run as their owner (no row security): the scope test
-- goes into their WHERE. Same columns as before, one more condition.
CREATE OR REPLACE VIEW appointment_type_mix WITH (security_barrier) AS
SELECT tenant_id, vet_id, vet_name, month, type, appointments, completed, canceled, no_show
FROM appointment_type_mix_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR tenant_id IN (SELECT analyst_granted_tenants()));

CREATE OR REPLACE VIEW diagnosis_counts WITH (security_barrier) AS
SELECT tenant_id, month, code, diagnoses FROM diagnosis_counts_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR tenant_id IN (SELECT analyst_granted_tenants()));

CREATE OR REPLACE VIEW treatment_counts WITH (security_barrier) AS
SELECT tenant_id, month, treatment_type, treatments, performed FROM treatment_counts_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR tenant_id IN (SELECT analyst_granted_tenants()));

CREATE OR REPLACE VIEW stock_valuation WITH (security_barrier) AS
SELECT b.tenant_id, b.item_id, i.code, i.name, i.category, b.batch_number, b.lot_number,
       b.expiry_date, round(b.remaining_milli / 1000.0, 3) AS remaining, b.unit_cost_cents,
       v.q + CASE WHEN v.r > 500 OR (v.r = 500 AND v.q % 2 = 1) THEN 1 ELSE 0 END AS value_cents
FROM stock_batches b
JOIN inventory_items i ON i.tenant_id = b.tenant_id AND i.id = b.item_id
CROSS JOIN LATERAL (SELECT (b.remaining_milli * coalesce(b.unit_cost_cents, 0)) / 1000 AS q,
                           (b.remaining_milli * coalesce(b.unit_cost_cents, 0)) % 1000 AS r) v
WHERE b.remaining_milli > 0
  AND b.tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR b.tenant_id IN (SELECT analyst_granted_tenants()));

CREATE OR REPLACE VIEW stock_usage_monthly WITH (security_barrier) AS
SELECT m.tenant_id, m.item_id, i.code, i.name,
       date_trunc('month', (m.at AT TIME ZONE t.timezone))::date AS month,
       round(coalesce(sum(m.delta_milli) FILTER (WHERE m.kind = 'receipt'), 0) / 1000.0, 3) AS received,
       round(coalesce(-sum(m.delta_milli) FILTER (WHERE m.kind = 'dispense'), 0) / 1000.0, 3) AS dispensed,
       round(coalesce(sum(m.delta_milli) FILTER (WHERE m.kind = 'adjustment'), 0) / 1000.0, 3) AS adjusted,
       (count(DISTINCT m.event_id) FILTER (WHERE m.kind = 'dispense'))::integer AS dispenses
FROM stock_movements m
JOIN inventory_items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id
JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR m.tenant_id IN (SELECT analyst_granted_tenants()))
GROUP BY m.tenant_id, m.item_id, i.code, i.name,
         date_trunc('month', (m.at AT TIME ZONE t.timezone))::date;

CREATE OR REPLACE VIEW revenue WITH (security_barrier) AS
SELECT tenant_id, month, invoice_count, invoiced_cents, paid_cents, outstanding_cents,
       collected_cents
FROM revenue_monthly_summary
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
  AND ((SELECT analyst_sees_every_tenant()) OR tenant_id IN (SELECT analyst_granted_tenants()));

DO $$
DECLARE
    t text;
    analysts text;
    p record;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO analysts
    FROM pg_roles WHERE rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst');
    IF analysts IS NULL THEN
        RETURN;
    END IF;
    -- The per-tenant group gets what vetpms_analyst has in this schema, as
    -- the earlier migrations left it (a later migration that grants to or
    -- revokes from vetpms_analyst does the same for vetpms_scoped_analyst;
    -- tests/e2e/test_analysts_scope.py checks the two stay equal).
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vetpms_scoped_analyst') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO vetpms_scoped_analyst', current_schema());
        -- the default privileges of scripts/pg.sh gave it SELECT on every
        -- table the earlier migrations then took back from vetpms_analyst
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM vetpms_scoped_analyst',
                       current_schema());
        FOR p IN SELECT c.relname, a.privilege_type
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                      aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
                 WHERE n.nspname = current_schema() AND r.rolname = 'vetpms_analyst'
        LOOP
            EXECUTE format('GRANT %s ON %I TO vetpms_scoped_analyst', p.privilege_type, p.relname);
        END LOOP;
        IF EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'event_log' AND policyname = 'no_clinical_events') THEN
            EXECUTE 'ALTER POLICY no_clinical_events ON event_log TO ' || analysts;
        END IF;
    END IF;
    -- Every table under the tenant policy gets the analysts' restrictive one.
    -- A later migration adding a tenant table adds both (docs/decisions.md).
    FOR t IN SELECT p2.tablename FROM pg_policies p2
             WHERE p2.schemaname = current_schema() AND p2.policyname = 'tenant_isolation'
             ORDER BY 1
    LOOP
        EXECUTE format('CREATE POLICY analyst_scope ON %I AS RESTRICTIVE TO %s '
                       'USING ((SELECT analyst_sees_every_tenant()) '
                       'OR tenant_id IN (SELECT analyst_granted_tenants()))', t, analysts);
    END LOOP;
    -- The reader's page functions run as their owner past row security and
    -- filter on the setting alone: they are the reader's, not analysts'.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vetpms_analyst') THEN
        REVOKE EXECUTE ON FUNCTION patient_page_ids(text, uuid, text, timestamptz, uuid, integer),
            client_page_ids(text, timestamptz, uuid, integer) FROM vetpms_analyst;
    END IF;
END $$;
