-- Archiving (issue 17 item 5; docs/operations.md § Archiving): closed rows
-- older than the tenant's settings move out of the live tables into archive_*
-- tables, on the projector's timer (projector/archive.c) or on request
-- (`vetctl archive run`). The log keeps everything; as_of folds from it.
--
-- The archive tables are children (INHERITS) of the live ones, in the same
-- schema (docs/decisions.md § Archiving):
--   * in the read model's schema, a whole-log rebuild builds them (empty) in
--     read_next and swaps them with the rest, and the tenant rebuild replaces
--     their rows with the rest; a schema `archive` of its own would escape
--     both (the swap renames one schema);
--   * a SELECT of the parent reads the archived rows too: every read of the
--     reader and the analysts (GET by id, lists, timeline, the analysts'
--     materialized views, which count from the parents) answers as before;
--     only what says FROM ONLY (the archive pass) tells live from archived;
--   * rows move with DELETE FROM ONLY + INSERT into the child: no trigger
--     of the parent fires (appointment_rollups is AFTER INSERT OR UPDATE on
--     appointments only), so daily stats and the dashboard do not change;
--   * an event that touches an archived row later (AddendumAdded on a signed
--     record, the only one the writer allows on a closed aggregate) is applied
--     by the same UPDATE of the parent, which reaches the child's row; the
--     addendum itself lands in the live addenda and the next pass moves it.
-- Each child has the parent's columns (inherited with their NOT NULL and
-- CHECK constraints) and archived_at; keys and indexes are its own.

ALTER TABLE tenants
    ADD COLUMN archive_appointments_after_days integer NOT NULL DEFAULT 730
        CHECK (archive_appointments_after_days BETWEEN 0 AND 36500),
    ADD COLUMN archive_records_after_days integer NOT NULL DEFAULT 2555
        CHECK (archive_records_after_days BETWEEN 0 AND 36500);

CREATE TABLE archive_appointments (archived_at timestamptz NOT NULL) INHERITS (appointments);
ALTER TABLE archive_appointments ADD PRIMARY KEY (tenant_id, id);
CREATE INDEX archive_appointments_by_start ON archive_appointments (tenant_id, start_at, id);
CREATE INDEX archive_appointments_by_vet ON archive_appointments (tenant_id, vet_id, start_at, id);
CREATE INDEX archive_appointments_by_patient
    ON archive_appointments (tenant_id, patient_id, start_at, id);
CREATE INDEX archive_appointments_by_status
    ON archive_appointments (tenant_id, status, start_at, id);

-- archived_version: the record's version when it (or its late children)
-- last moved; an event applied to the archived record later (an addendum)
-- moves version past it, and the next pass moves that event's child rows
-- (the partial index finds them without reading the whole archive).
CREATE TABLE archive_medical_records (archived_at timestamptz NOT NULL,
                                      archived_version integer NOT NULL)
    INHERITS (medical_records);
ALTER TABLE archive_medical_records ADD PRIMARY KEY (tenant_id, id);
CREATE INDEX archive_medical_records_touched ON archive_medical_records (tenant_id)
    WHERE version <> archived_version;
CREATE INDEX archive_medical_records_by_patient
    ON archive_medical_records (tenant_id, patient_id, opened_at DESC, id DESC);

CREATE TABLE archive_vitals (archived_at timestamptz NOT NULL) INHERITS (vitals);
ALTER TABLE archive_vitals ADD PRIMARY KEY (tenant_id, record_id, id);
CREATE INDEX archive_vitals_by_patient
    ON archive_vitals (tenant_id, patient_id, recorded_at DESC, id DESC);

CREATE TABLE archive_diagnoses (archived_at timestamptz NOT NULL) INHERITS (diagnoses);
ALTER TABLE archive_diagnoses ADD PRIMARY KEY (tenant_id, record_id, id);

CREATE TABLE archive_treatments (archived_at timestamptz NOT NULL) INHERITS (treatments);
ALTER TABLE archive_treatments ADD PRIMARY KEY (tenant_id, record_id, id);
CREATE INDEX archive_treatments_by_patient
    ON archive_treatments (tenant_id, patient_id, added_at DESC, id DESC);
CREATE INDEX archive_treatments_vaccinations
    ON archive_treatments (tenant_id, patient_id, lower(name))
    WHERE treatment_type = 'vaccination' AND status = 'performed';

CREATE TABLE archive_prescriptions (archived_at timestamptz NOT NULL) INHERITS (prescriptions);
ALTER TABLE archive_prescriptions ADD PRIMARY KEY (tenant_id, record_id, id);
CREATE INDEX archive_prescriptions_by_patient
    ON archive_prescriptions (tenant_id, patient_id, prescribed_at DESC, id DESC);

CREATE TABLE archive_addenda (archived_at timestamptz NOT NULL) INHERITS (addenda);
ALTER TABLE archive_addenda ADD PRIMARY KEY (tenant_id, record_id, id);

-- `vetctl archive run`: ops ask the live projector for a pass now (it alone
-- may move rows: it applies the events of the same partitions between its
-- batches, so no event is applied while rows of its tenant move). The
-- projector reports into the row as it goes. No tenant_id column: this is
-- ops' bookkeeping, not a tenant's read model (the tenant rebuild and the
-- row comparisons pass it by); nobody but the projector reads it.
CREATE TABLE archive_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    only_tenant  uuid,                       -- NULL: every tenant
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    moved        bigint NOT NULL DEFAULT 0,  -- rows moved so far (children included)
    left_estimate bigint,                    -- closed rows past the cutoff at the start
    error        text
);
CREATE INDEX archive_runs_pending ON archive_runs (id) WHERE finished_at IS NULL;

DO $$
DECLARE
    t text;
    r text;
    analysts text;
BEGIN
    FOREACH t IN ARRAY ARRAY['archive_appointments', 'archive_medical_records', 'archive_vitals',
                             'archive_diagnoses', 'archive_treatments', 'archive_prescriptions',
                             'archive_addenda']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    -- Default privileges (scripts/pg.sh) gave both read-only roles SELECT
    -- on the new tables: archive_runs is the projector's and ops'.
    FOR r IN SELECT rolname FROM pg_roles
             WHERE rolname IN ('vetpms_reader', 'vetpms_analyst', 'vetpms_scoped_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON archive_runs FROM %I', r);
    END LOOP;
    -- Analysts read archived appointments as they read live ones, and no
    -- clinical table, archived or not (006): the same privileges, for both
    -- analyst groups (010 keeps vetpms_scoped_analyst equal to vetpms_analyst).
    FOR r IN SELECT rolname FROM pg_roles
             WHERE rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON archive_medical_records, archive_vitals, archive_diagnoses, '
                       'archive_treatments, archive_prescriptions, archive_addenda FROM %I', r);
        EXECUTE format('GRANT SELECT ON archive_appointments TO %I', r);
    END LOOP;
    -- The analysts' restrictive scope (010) on every new tenant table.
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO analysts
    FROM pg_roles WHERE rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst');
    IF analysts IS NOT NULL THEN
        FOREACH t IN ARRAY ARRAY['archive_appointments', 'archive_medical_records',
                                 'archive_vitals', 'archive_diagnoses', 'archive_treatments',
                                 'archive_prescriptions', 'archive_addenda']
        LOOP
            EXECUTE format('CREATE POLICY analyst_scope ON %I AS RESTRICTIVE TO %s '
                           'USING ((SELECT analyst_sees_every_tenant()) '
                           'OR tenant_id IN (SELECT analyst_granted_tenants()))', t, analysts);
        END LOOP;
    END IF;
END $$;
