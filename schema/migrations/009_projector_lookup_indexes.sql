-- Secondary indexes the projector's own statements find rows by, not only
-- the reader's queries. `projector rebuild` fills a fresh schema without its
-- secondary indexes and builds them once the fill has caught up (as
-- pg_restore does, projector/rebuild.c); it keeps primary keys, unique
-- indexes, indexes behind constraints, and the indexes commented
-- 'projector lookup: ...' here: without them these handlers scan the whole
-- table at every event, and the fill gets slower, not faster.
COMMENT ON INDEX weights_by_patient IS
    'projector lookup: WeightRecorded looks for a later weight of the patient';
COMMENT ON INDEX appointments_by_patient IS
    'projector lookup: PatientTransferred moves the patient''s appointments to the new owner';
