-- Dead letters are resolved by ops (vetctl deadletters, docs/operations.md):
-- redriven through the projector's own handlers once it can apply them, or
-- discarded with a reason. Nothing is deleted: a resolved row keeps who
-- resolved it, when and why, so a discard is never silent.
--   status  dead       waiting for ops (counted by vetpms_projector_dead_letters_pending)
--           redrive    ops asked the projector to apply it again (requested_*)
--           redriven   the projector applied it (resolved_*), event_log has it
--           discarded  ops gave it up (resolved_*, reason); the read model never has it
-- type and aggregate_id come from the envelope (NULL when it did not decode);
-- last_error is the reason of the latest refused redrive.
ALTER TABLE dead_letters
    ADD COLUMN type         text,
    ADD COLUMN aggregate_id text,
    ADD COLUMN status       text NOT NULL DEFAULT 'dead'
        CHECK (status IN ('dead', 'redrive', 'redriven', 'discarded')),
    ADD COLUMN requested_by text,
    ADD COLUMN requested_at timestamptz,
    ADD COLUMN resolved_by  text,
    ADD COLUMN resolved_at  timestamptz,
    ADD COLUMN reason       text,
    ADD COLUMN last_error   text,
    ADD CONSTRAINT dead_letters_resolution CHECK (
        (status IN ('redriven', 'discarded')) = (resolved_at IS NOT NULL AND resolved_by IS NOT NULL)),
    ADD CONSTRAINT dead_letters_discard_reason CHECK (
        status <> 'discarded' OR length(reason) > 0);

-- The rows recorded before this migration: their type and aggregate from the
-- payload when it is a JSON envelope (one bad payload must not stop the rest).
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT partition, "offset", payload FROM dead_letters LOOP
        BEGIN
            UPDATE dead_letters
               SET type = convert_from(r.payload, 'UTF8')::jsonb ->> 'type',
                   aggregate_id = convert_from(r.payload, 'UTF8')::jsonb ->> 'aggregate_id'
             WHERE partition = r.partition AND "offset" = r."offset";
        EXCEPTION WHEN others THEN
            NULL; -- not JSON: type and aggregate stay NULL
        END;
    END LOOP;
END $$;

-- The projector looks for the requested redrives at every idle second.
CREATE INDEX dead_letters_by_status ON dead_letters (status, partition, "offset");
