-- The client and patient list pages, found through their indexes despite
-- row-level security.
--
-- Three things kept the reader's list query off its indexes:
-- 1. Under RLS a qual may only use an index ahead of the policy when its
--    operator is LEAKPROOF; pg_trgm's `<%` and LIKE are not, so for
--    vetpms_reader every search was a scan of the tenant's rows with the
--    trigram test on each (40-50 ms on 20k patients; ~1 ms with the index).
-- 2. One prepared statement with optional filters (`$5 IS NULL OR ...`) gets a
--    generic plan that keeps every branch, so no single index fits it.
-- 3. New rows wait in a GIN index's pending list until a vacuum merges them;
--    the planner prices that list as a scan, so after a batch of
--    registrations (a freshly loaded tenant) it preferred a seq scan. The
--    trigram indexes take each row at insert instead: rows are added one
--    registration at a time, and searches stay on the index.
ALTER INDEX patients_search_trgm SET (fastupdate = off);
ALTER INDEX clients_search_trgm SET (fastupdate = off);
SELECT gin_clean_pending_list('patients_search_trgm'::regclass),
       gin_clean_pending_list('clients_search_trgm'::regclass);

-- These functions run as the tables' owner, so the planner may use the
-- indexes, and build the page with EXECUTE ... USING, which PL/pgSQL plans for
-- each call with the actual values: a frequent term walks the newest-first
-- index, a rare one takes the trigram index. They keep tenant isolation
-- themselves: the tenant is the transaction setting the policies read, never
-- an argument, and an unset tenant matches nothing. They return ids in page
-- order; the reader joins them back to the table, where the policy applies.
-- Their search_path names `read`, not the schema being migrated: a blue/green
-- rebuild builds them in read_next and renames that schema to read (names in
-- search_path are not renamed with it).

CREATE FUNCTION like_anywhere(q text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '%' || replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%';

-- Patients newest first after the keyset position (after_at, after_id), at most
-- lim: q matches name and client last name by trigram word similarity or
-- verbatim, or the microchip exactly; client and species filter when given.
CREATE FUNCTION patient_page_ids(q text, client uuid, sp text, after_at timestamptz,
                                 after_id uuid, lim integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 50
SET search_path = pg_catalog, read, public
AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT p.id FROM patients p
          WHERE p.tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid
            AND ($1::text IS NULL OR lower($1) <% p.search
                 OR p.search LIKE like_anywhere($1) OR p.microchip = $1)
            AND ($2::uuid IS NULL OR p.client_id = $2)
            AND ($3::text IS NULL OR p.species = $3)
            AND ($4::timestamptz IS NULL OR (p.created_at, p.id) < ($4, $5))
          ORDER BY p.created_at DESC, p.id DESC LIMIT $6'
        USING q, client, sp, after_at, after_id, lim;
END
$$;

-- Clients newest first after (after_at, after_id), at most lim: q matches
-- names, email and phone by trigram word similarity or verbatim.
CREATE FUNCTION client_page_ids(q text, after_at timestamptz, after_id uuid, lim integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 50
SET search_path = pg_catalog, read, public
AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT c.id FROM clients c
          WHERE c.tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid
            AND ($1::text IS NULL OR lower($1) <% c.search OR c.search LIKE like_anywhere($1))
            AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3))
          ORDER BY c.created_at DESC, c.id DESC LIMIT $4'
        USING q, after_at, after_id, lim;
END
$$;

REVOKE ALL ON FUNCTION patient_page_ids(text, uuid, text, timestamptz, uuid, integer),
    client_page_ids(text, timestamptz, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION patient_page_ids(text, uuid, text, timestamptz, uuid, integer),
    client_page_ids(text, timestamptz, uuid, integer) TO vetpms_reader, vetpms_analyst;
