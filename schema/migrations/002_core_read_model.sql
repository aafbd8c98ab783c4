-- Read model of tenants, staff, clients and patients (issue: the CQRS spine).
-- Rows are written only by the projector; every table carries tenant_id and a
-- row-level security policy on current_setting('vetpms.tenant_id') that the
-- reader and analysts cannot bypass. The projector owns the tables and is
-- exempt (owners bypass RLS unless FORCE is set).

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,            -- = id; kept for the uniform RLS policy
    name        text NOT NULL,
    timezone    text NOT NULL,
    currency    char(3) NOT NULL,
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE staff (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    name           text NOT NULL,
    role           text NOT NULL,
    email          text,
    license_number text,
    active         boolean NOT NULL DEFAULT true,
    deactivated_reason text,
    version        integer NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX staff_by_name ON staff (tenant_id, name, id);

CREATE TABLE clients (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    phone       text,
    address     text,
    active      boolean NOT NULL DEFAULT true,
    deactivated_reason text,
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- search text: names, email, phone (trigram index below)
    search      text GENERATED ALWAYS AS (lower(first_name || ' ' || last_name || ' ' ||
                  coalesce(email, '') || ' ' || coalesce(phone, ''))) STORED,
    PRIMARY KEY (tenant_id, id)
);
-- newest first, keyset on (created_at, id)
CREATE INDEX clients_newest ON clients (tenant_id, created_at DESC, id DESC);
CREATE INDEX clients_search_trgm ON clients USING gin (search gin_trgm_ops);

CREATE TABLE patients (
    tenant_id     uuid NOT NULL,
    id            uuid NOT NULL,
    client_id     uuid NOT NULL,
    client_first_name text NOT NULL,          -- denormalised from clients
    client_last_name  text NOT NULL,
    name          text NOT NULL,
    species       text NOT NULL,
    breed         text,
    sex           text NOT NULL,
    neutered      boolean,
    date_of_birth date,
    microchip     text,
    color         text,
    weight_kg     numeric(10,3),              -- latest weight
    allergies     jsonb NOT NULL DEFAULT '[]', -- [{allergen, reaction, severity}]
    conditions    jsonb NOT NULL DEFAULT '[]', -- [{name, diagnosed_on, notes}]
    status        text NOT NULL DEFAULT 'active',  -- active | deceased
    date_of_death date,
    version       integer NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    search        text GENERATED ALWAYS AS (lower(name || ' ' || client_last_name)) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX patients_newest ON patients (tenant_id, created_at DESC, id DESC);
CREATE INDEX patients_by_client ON patients (tenant_id, client_id, created_at DESC, id DESC);
CREATE INDEX patients_by_species ON patients (tenant_id, species, created_at DESC, id DESC);
CREATE INDEX patients_by_microchip ON patients (tenant_id, microchip) WHERE microchip IS NOT NULL;
CREATE INDEX patients_search_trgm ON patients USING gin (search gin_trgm_ops);

CREATE TABLE weights (
    tenant_id   uuid NOT NULL,
    patient_id  uuid NOT NULL,
    event_id    uuid NOT NULL,
    weight_g    integer NOT NULL CHECK (weight_g > 0),
    measured_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX weights_by_patient ON weights (tenant_id, patient_id, measured_at DESC, event_id DESC);

CREATE TABLE allergies (
    tenant_id  uuid NOT NULL,
    patient_id uuid NOT NULL,
    event_id   uuid NOT NULL,
    allergen   text NOT NULL,
    reaction   text,
    severity   text,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX allergies_by_patient ON allergies (tenant_id, patient_id);

CREATE TABLE conditions (
    tenant_id    uuid NOT NULL,
    patient_id   uuid NOT NULL,
    event_id     uuid NOT NULL,
    name         text NOT NULL,
    diagnosed_on date,
    notes        text,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX conditions_by_patient ON conditions (tenant_id, patient_id);

-- Every event as stored in the log, for the audit trail (GET /v1/events).
CREATE TABLE event_log (
    tenant_id    uuid NOT NULL,
    event_id     uuid NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    type         text NOT NULL,
    v            integer NOT NULL,
    aggregate    text NOT NULL,
    aggregate_id uuid NOT NULL,
    seq          integer NOT NULL,
    command_id   text NOT NULL,
    actor        text NOT NULL,
    at           timestamptz NOT NULL,
    envelope     jsonb NOT NULL,
    PRIMARY KEY (tenant_id, event_id),
    UNIQUE (partition, "offset")
);
CREATE INDEX event_log_by_tenant ON event_log (tenant_id, partition, "offset");
CREATE INDEX event_log_by_aggregate ON event_log (tenant_id, aggregate_id, seq);
CREATE INDEX event_log_by_type ON event_log (tenant_id, type, partition, "offset");

-- Events the projector could not decode or apply; the partition moved on.
CREATE TABLE dead_letters (
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    tenant_id   uuid,
    error       text NOT NULL,
    payload     bytea,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, "offset")
);

-- Row-level security: the reader and analysts see one tenant at a time.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants','staff','clients','patients','weights','allergies',
                             'conditions','event_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
END $$;
