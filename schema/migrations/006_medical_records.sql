-- Read model of medical records (DOMAIN.md § Medical records): the record
-- (SOAP, signature, the primary diagnosis denormalised for lists) and its
-- vitals, diagnoses, treatments, prescriptions and addenda; the tenant's
-- auto-lock period. `locked` is not stored: the reader computes it (signed, or
-- opened more than record_lock_hours ago). Records are clinical data: the
-- analyst role reads only the monthly counts below, never these tables.

ALTER TABLE tenants ADD COLUMN record_lock_hours integer NOT NULL DEFAULT 0
    CHECK (record_lock_hours BETWEEN 0 AND 8760);

CREATE TABLE medical_records (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    patient_id       uuid NOT NULL,
    appointment_id   uuid,
    record_type      text NOT NULL,
    chief_complaint  text,
    visit_date       date NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'signed')),
    signed_at        timestamptz,
    signed_by        text,
    opened_at        timestamptz NOT NULL,      -- the opening event's `at`
    opened_by        text NOT NULL,             -- its actor
    -- the current primary diagnosis (none once retracted), for lists
    primary_diagnosis_id   uuid,
    primary_diagnosis_name text,
    primary_diagnosis_code text,
    subjective       text,
    objective        text,
    assessment       text,
    plan             text,
    additional_notes text,
    version          integer NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- GET /v1/patients/{id}/medical-records and the timeline: newest first.
CREATE INDEX medical_records_by_patient
    ON medical_records (tenant_id, patient_id, opened_at DESC, id DESC);

CREATE TABLE vitals (
    tenant_id      uuid NOT NULL,
    record_id      uuid NOT NULL,
    id             uuid NOT NULL,
    patient_id     uuid NOT NULL,
    recorded_at    timestamptz NOT NULL,
    recorded_by    text NOT NULL,
    temperature_dc integer,                     -- tenths of a degree Celsius
    pulse_bpm      integer,
    respiration_rpm integer,
    systolic_mmhg  integer,
    diastolic_mmhg integer,
    weight_g       integer,
    body_condition_score integer,
    pain_score     integer,
    PRIMARY KEY (tenant_id, record_id, id)
);
CREATE INDEX vitals_by_patient ON vitals (tenant_id, patient_id, recorded_at DESC, id DESC);

CREATE TABLE diagnoses (
    tenant_id   uuid NOT NULL,
    record_id   uuid NOT NULL,
    id          uuid NOT NULL,
    patient_id  uuid NOT NULL,
    name        text NOT NULL,
    code        text,
    status      text NOT NULL,
    notes       text,
    is_primary  boolean NOT NULL,
    retracted   boolean NOT NULL DEFAULT false,
    retract_reason text,
    retracted_at timestamptz,
    added_at    timestamptz NOT NULL,
    added_by    text NOT NULL,
    visit_date  date NOT NULL,                  -- the record's: the month of the counts
    PRIMARY KEY (tenant_id, record_id, id)
);
-- At most one primary per record: DiagnosisAdded{primary} demotes the old one
-- in the statement that inserts the new one.
CREATE UNIQUE INDEX diagnoses_one_primary ON diagnoses (tenant_id, record_id) WHERE is_primary;

CREATE TABLE treatments (
    tenant_id      uuid NOT NULL,
    record_id      uuid NOT NULL,
    id             uuid NOT NULL,
    patient_id     uuid NOT NULL,
    name           text NOT NULL,
    treatment_type text NOT NULL,
    description    text,
    status         text NOT NULL CHECK (status IN ('planned', 'performed', 'canceled')),
    performed_at   timestamptz,
    next_due_on    date,
    cancel_reason  text,
    added_at       timestamptz NOT NULL,
    added_by       text NOT NULL,
    visit_date     date NOT NULL,
    PRIMARY KEY (tenant_id, record_id, id)
);
CREATE INDEX treatments_by_patient ON treatments (tenant_id, patient_id, added_at DESC, id DESC);
-- vaccination reminders: the latest vaccination of each kind per patient
CREATE INDEX treatments_vaccinations ON treatments (tenant_id, patient_id, lower(name))
    WHERE treatment_type = 'vaccination' AND status = 'performed';

CREATE TABLE prescriptions (
    tenant_id      uuid NOT NULL,
    record_id      uuid NOT NULL,
    id             uuid NOT NULL,
    patient_id     uuid NOT NULL,
    medication     text NOT NULL,
    dosage         text NOT NULL,
    frequency      text NOT NULL,
    route          text NOT NULL,
    duration_days  integer,
    quantity_milli bigint,
    refills        integer NOT NULL,
    instructions   text,
    item_id        uuid,
    prescribed_at  timestamptz NOT NULL,
    prescribed_by  text NOT NULL,
    PRIMARY KEY (tenant_id, record_id, id)
);
CREATE INDEX prescriptions_by_patient
    ON prescriptions (tenant_id, patient_id, prescribed_at DESC, id DESC);

CREATE TABLE addenda (
    tenant_id uuid NOT NULL,
    record_id uuid NOT NULL,
    id        uuid NOT NULL,
    author    text NOT NULL,                    -- the event's actor
    at        timestamptz NOT NULL,
    text      text NOT NULL,
    PRIMARY KEY (tenant_id, record_id, id)
);

-- Analysts' counts, never free text: diagnoses (not retracted) by code and
-- month of the visit ('' = no code), treatments (not canceled) by type and
-- month. Materialized views refreshed by the projector when record events
-- were applied; like appointment_type_mix, only their owner reads them and the
-- analysts read the security-barrier views filtered on vetpms.tenant_id.
CREATE MATERIALIZED VIEW diagnosis_counts_monthly AS
SELECT d.tenant_id, date_trunc('month', d.visit_date)::date AS month,
       coalesce(d.code, '') AS code, count(*)::integer AS diagnoses
FROM diagnoses d WHERE NOT d.retracted
GROUP BY d.tenant_id, date_trunc('month', d.visit_date), coalesce(d.code, '');
CREATE UNIQUE INDEX diagnosis_counts_monthly_key ON diagnosis_counts_monthly (tenant_id, month, code);

CREATE MATERIALIZED VIEW treatment_counts_monthly AS
SELECT t.tenant_id, date_trunc('month', t.visit_date)::date AS month, t.treatment_type,
       count(*)::integer AS treatments,
       (count(*) FILTER (WHERE t.status = 'performed'))::integer AS performed
FROM treatments t WHERE t.status <> 'canceled'
GROUP BY t.tenant_id, date_trunc('month', t.visit_date), t.treatment_type;
CREATE UNIQUE INDEX treatment_counts_monthly_key
    ON treatment_counts_monthly (tenant_id, month, treatment_type);

CREATE VIEW diagnosis_counts WITH (security_barrier) AS
SELECT tenant_id, month, code, diagnoses FROM diagnosis_counts_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid;

CREATE VIEW treatment_counts WITH (security_barrier) AS
SELECT tenant_id, month, treatment_type, treatments, performed FROM treatment_counts_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['medical_records','vitals','diagnoses','treatments',
                             'prescriptions','addenda']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    REVOKE ALL ON diagnosis_counts_monthly, treatment_counts_monthly FROM PUBLIC;
    -- The default privileges of scripts/pg.sh gave SELECT on everything new
    -- to both read-only roles: the reader keeps the tables, the analyst
    -- keeps nothing of them (clinical free text) but the count views.
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname IN ('vetpms_reader', 'vetpms_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON diagnosis_counts_monthly, treatment_counts_monthly FROM %I', t);
        EXECUTE format('GRANT SELECT ON diagnosis_counts, treatment_counts TO %I', t);
    END LOOP;
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname = 'vetpms_analyst'
    LOOP
        EXECUTE format('REVOKE ALL ON medical_records, vitals, diagnoses, treatments, '
                       'prescriptions, addenda FROM %I', t);
        -- event_log holds every envelope, SOAP and addendum text included:
        -- the analyst sees no event of a medical record there either.
        EXECUTE format('CREATE POLICY no_clinical_events ON event_log AS RESTRICTIVE TO %I '
                       'USING (aggregate <> ''medical_record'')', t);
    END LOOP;
END $$;
