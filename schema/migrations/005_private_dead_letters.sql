-- Dead letters are projector bookkeeping: raw payloads of events of every
-- tenant, which no tenant-scoped role may read (they have no tenant policy
-- and an undecodable event has no tenant to key one on). The default
-- privileges of scripts/pg.sh gave SELECT on them to the read-only roles;
-- take it back. Ops read them as the projector or the superuser.
-- projection_offsets stays readable: the reader waits on it for consistency
-- tokens, and it holds positions only, no tenant data.
DO $$
DECLARE r text;
BEGIN
    REVOKE ALL ON dead_letters FROM PUBLIC;
    FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ('vetpms_reader', 'vetpms_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON dead_letters FROM %I', r);
    END LOOP;
END $$;
