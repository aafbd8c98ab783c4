-- Personal data (issue 18, docs/privacy.md). ClientRegistered and
-- ClientContactUpdated v2 carry the personal fields sealed; the projector opens
-- them into the same columns as before (search and contacts need the text),
-- and keeps the events' blind indexes of email and phone (keyed BLAKE2b of the
-- normalised value, hex) for exact matches and uniqueness checks that do not
-- need the value. NULL for clients registered by v1 events (no index key was
-- applied to them) and for a field that is absent.
ALTER TABLE clients
    ADD COLUMN email_bidx text,
    ADD COLUMN phone_bidx text;
CREATE INDEX clients_email_bidx ON clients (tenant_id, email_bidx) WHERE email_bidx IS NOT NULL;
CREATE INDEX clients_phone_bidx ON clients (tenant_id, phone_bidx) WHERE phone_bidx IS NOT NULL;

-- Analysts never see personal fields (docs/analysts.md, docs/privacy.md): on
-- the tables that hold a client's name or contacts (or a copy of them), the
-- analysts' logins keep SELECT on every other column only (column
-- privileges: row security still applies, and their counts and joins by id
-- keep working; `SELECT *` on these tables is refused). event_log shows them
-- no client event written before sealing (v1, plain text); the sealed ones
-- (v2) hold no readable field.
DO $$
DECLARE
    analyst text;
    r record;
    cols text;
BEGIN
    FOR analyst IN SELECT rolname FROM pg_roles
                   WHERE rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst') ORDER BY 1
    LOOP
        FOR r IN SELECT * FROM (VALUES
                 ('clients', ARRAY['first_name', 'last_name', 'email', 'phone', 'address',
                                   'search', 'email_bidx', 'phone_bidx', 'deactivated_reason']),
                 ('patients', ARRAY['client_first_name', 'client_last_name', 'search']),
                 ('appointments', ARRAY['client_first_name', 'client_last_name']),
                 ('appointment_dashboard', ARRAY['client_name'])) AS x(tbl, personal)
        LOOP
            SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
            INTO cols FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = r.tbl
              AND column_name <> ALL (r.personal);
            EXECUTE format('REVOKE SELECT ON %I FROM %I', r.tbl, analyst);
            EXECUTE format('GRANT SELECT (%s) ON %I TO %I', cols, r.tbl, analyst);
        END LOOP;
    END LOOP;
    -- one policy for both logins (tests/e2e/test_analysts_scope.py holds them equal)
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO cols
    FROM pg_roles WHERE rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst');
    IF cols IS NOT NULL THEN
        EXECUTE 'CREATE POLICY no_plain_client_events ON event_log AS RESTRICTIVE TO ' || cols ||
                ' USING (NOT (aggregate = ''client'' AND v = 1 AND type IN '
                '(''ClientRegistered'', ''ClientContactUpdated'')))';
    END IF;
END $$;
