-- The client ids a dead letter that did not decode names (no type, no
-- aggregate: a torn client event may still hold an erased client's fields).
-- The projector fills it when it records such a dead letter: the UUIDs the
-- payload holds, in any case, the first 32, canonical (vp_uuid_scan,
-- projector/deadletter.c). ClientErased scrubs the tenant's rows whose
-- named_ids hold the client; it used to search the payload's bytes for the
-- id in lower or in upper case, which missed an id in mixed case, and the
-- insert already matched by these ids: one rule for both now
-- (docs/privacy.md, docs/decisions.md § Dead letters after an erasure).
ALTER TABLE dead_letters ADD COLUMN named_ids uuid[];

-- The rows recorded before this migration, by the same rule. The payload is
-- read as text through encode(..., 'escape'), which leaves every ASCII
-- character of a UUID as it is.
UPDATE dead_letters d
   SET named_ids = (SELECT array_agg(lower(r.m[1])::uuid ORDER BY r.n)
                      FROM regexp_matches(encode(d.payload, 'escape'),
                               '([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})',
                               'g') WITH ORDINALITY AS r(m, n)
                     WHERE r.n <= 32)
 WHERE type IS NULL AND payload IS NOT NULL AND tenant_id IS NOT NULL;
