-- A record whose key names no tenant and whose bytes do not decode is a dead
-- letter with no tenant: until this migration its named_ids stayed NULL, so
-- no ClientErased scrubbed it, even when its bytes named the erased client
-- and held its fields. The projector now records the ids of such a letter
-- too, and ClientErased scrubs a tenantless one naming the client as it does
-- the tenant's (docs/privacy.md, docs/decisions.md § Dead letters after an
-- erasure). The rows recorded before, by 015's rule:
UPDATE dead_letters d
   SET named_ids = (SELECT array_agg(lower(r.m[1])::uuid ORDER BY r.n)
                      FROM regexp_matches(encode(d.payload, 'escape'),
                               '([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})',
                               'g') WITH ORDINALITY AS r(m, n)
                     WHERE r.n <= 32)
 WHERE type IS NULL AND payload IS NOT NULL AND tenant_id IS NULL;

-- Whether an id was erased, in any tenant, when a tenantless letter is
-- recorded (projector/deadletter.c): event_log's indexes all lead with the
-- tenant, and a scan of the whole log per junk record would stall the
-- projector. One row per erasure.
CREATE INDEX event_log_erasures ON event_log (aggregate_id) WHERE type = 'ClientErased';
