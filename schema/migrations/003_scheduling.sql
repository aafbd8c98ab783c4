-- Read model of scheduling: vets' published availability, appointments (with
-- patient, client and vet names denormalised), the appointment dashboard and
-- daily statistics (both maintained incrementally by a trigger in the same
-- transaction as the events), and a materialized view of the monthly type mix
-- for analysts, refreshed by the projector on a timer (see docs/analysts.md).
-- Local dates are the tenant's: (start AT TIME ZONE tenants.timezone)::date.

-- One row per published block (half-open [start_at, end_at)). Withdrawing a
-- range deletes the blocks it touches and inserts what is left of them. Blocks
-- are at most 24 h (the writer's rule, enforced here too), which lets every
-- overlap query bound its index scan to start_at > from - 24 h.
CREATE TABLE availability_blocks (
    tenant_id uuid NOT NULL,
    vet_id    uuid NOT NULL,
    start_at  timestamptz NOT NULL,
    end_at    timestamptz NOT NULL,
    CHECK (end_at > start_at AND end_at - start_at <= interval '24 hours'),
    PRIMARY KEY (tenant_id, vet_id, start_at, end_at)
);

CREATE TABLE appointments (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    patient_id        uuid NOT NULL,
    patient_name      text NOT NULL,          -- denormalised from patients
    species           text NOT NULL,
    client_id         uuid NOT NULL,          -- the owner (follows transfers while active)
    client_first_name text NOT NULL,
    client_last_name  text NOT NULL,
    vet_id            uuid NOT NULL,
    vet_name          text NOT NULL,          -- denormalised from staff
    status            text NOT NULL CHECK (status IN ('scheduled', 'checked_in', 'in_progress',
                                                      'completed', 'canceled', 'no_show')),
    type              text NOT NULL,
    reason            text,
    start_at          timestamptz NOT NULL,
    end_at            timestamptz NOT NULL,
    local_date        date NOT NULL,          -- of start_at, in the tenant's timezone
    checked_in_at     timestamptz,
    actual_start      timestamptz,
    actual_end        timestamptz,
    notes             text,
    cancel_reason     text,
    version           integer NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- at most 12 h: the writer's rule, and the bound of the overlap scans
    CHECK (end_at > start_at AND end_at - start_at <= interval '12 hours'),
    PRIMARY KEY (tenant_id, id)
);
-- GET /v1/appointments (by start, keyset (start_at, id)) and its filters;
-- the vet index also serves the free-interval queries (active appointments).
CREATE INDEX appointments_by_start ON appointments (tenant_id, start_at, id);
CREATE INDEX appointments_by_vet ON appointments (tenant_id, vet_id, start_at, id);
CREATE INDEX appointments_by_patient ON appointments (tenant_id, patient_id, start_at, id);
CREATE INDEX appointments_by_status ON appointments (tenant_id, status, start_at, id);

-- The appointment dashboard: one row per non-canceled appointment.
CREATE TABLE appointment_dashboard (
    tenant_id      uuid NOT NULL,
    appointment_id uuid NOT NULL,
    local_date     date NOT NULL,
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    status         text NOT NULL,
    type           text NOT NULL,
    reason         text,
    patient_id     uuid NOT NULL,
    patient_name   text NOT NULL,
    species        text NOT NULL,
    client_id      uuid NOT NULL,
    client_name    text NOT NULL,
    vet_id         uuid NOT NULL,
    vet_name       text NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id)
);
CREATE INDEX appointment_dashboard_by_day
    ON appointment_dashboard (tenant_id, local_date, start_at, appointment_id);

-- Per local date: total = every appointment whose current start falls on that
-- date, whatever its status (canceled and no-show included); completed,
-- canceled, no_show = those of them in that status; the duration sum and count
-- cover completed appointments with both an actual start and end.
CREATE TABLE daily_appointment_stats (
    tenant_id      uuid NOT NULL,
    local_date     date NOT NULL,
    total          integer NOT NULL DEFAULT 0 CHECK (total >= 0),
    completed      integer NOT NULL DEFAULT 0 CHECK (completed >= 0),
    canceled       integer NOT NULL DEFAULT 0 CHECK (canceled >= 0),
    no_show        integer NOT NULL DEFAULT 0 CHECK (no_show >= 0),
    duration_sum_s numeric NOT NULL DEFAULT 0,
    duration_count integer NOT NULL DEFAULT 0 CHECK (duration_count >= 0),
    PRIMARY KEY (tenant_id, local_date)
);

-- Keeps appointment_dashboard and daily_appointment_stats exact: every change
-- of an appointment row removes the old row's contribution and adds the new
-- one (a reschedule across dates moves the counts). Runs as the projector,
-- in the event's transaction; search_path is pinned to this migration's schema
-- so a blue/green rebuild schema maintains its own tables.
CREATE FUNCTION appointment_rollups() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    old_secs numeric;
    new_secs numeric;
BEGIN
    new_secs := CASE WHEN NEW.status = 'completed' THEN
        extract(epoch FROM NEW.actual_end - NEW.actual_start) END;
    IF TG_OP = 'UPDATE' THEN
        old_secs := CASE WHEN OLD.status = 'completed' THEN
            extract(epoch FROM OLD.actual_end - OLD.actual_start) END;
    END IF;
    IF TG_OP = 'INSERT' OR OLD.local_date IS DISTINCT FROM NEW.local_date
       OR OLD.status IS DISTINCT FROM NEW.status OR old_secs IS DISTINCT FROM new_secs THEN
        IF TG_OP = 'UPDATE' THEN
            UPDATE daily_appointment_stats SET
                total = total - 1,
                completed = completed - (OLD.status = 'completed')::int,
                canceled = canceled - (OLD.status = 'canceled')::int,
                no_show = no_show - (OLD.status = 'no_show')::int,
                duration_sum_s = duration_sum_s - coalesce(old_secs, 0),
                duration_count = duration_count - (old_secs IS NOT NULL)::int
            WHERE tenant_id = OLD.tenant_id AND local_date = OLD.local_date;
        END IF;
        INSERT INTO daily_appointment_stats AS s (tenant_id, local_date, total, completed,
                                                  canceled, no_show, duration_sum_s,
                                                  duration_count)
        VALUES (NEW.tenant_id, NEW.local_date, 1, (NEW.status = 'completed')::int,
                (NEW.status = 'canceled')::int, (NEW.status = 'no_show')::int,
                coalesce(new_secs, 0), (new_secs IS NOT NULL)::int)
        ON CONFLICT (tenant_id, local_date) DO UPDATE SET
            total = s.total + 1,
            completed = s.completed + EXCLUDED.completed,
            canceled = s.canceled + EXCLUDED.canceled,
            no_show = s.no_show + EXCLUDED.no_show,
            duration_sum_s = s.duration_sum_s + EXCLUDED.duration_sum_s,
            duration_count = s.duration_count + EXCLUDED.duration_count;
    END IF;

    IF NEW.status = 'canceled' THEN
        DELETE FROM appointment_dashboard
        WHERE tenant_id = NEW.tenant_id AND appointment_id = NEW.id;
    ELSE
        INSERT INTO appointment_dashboard AS d (tenant_id, appointment_id, local_date, start_at,
                                               end_at, status, type, reason, patient_id,
                                               patient_name, species, client_id, client_name,
                                               vet_id, vet_name)
        VALUES (NEW.tenant_id, NEW.id, NEW.local_date, NEW.start_at, NEW.end_at, NEW.status,
                NEW.type, NEW.reason, NEW.patient_id, NEW.patient_name, NEW.species,
                NEW.client_id, NEW.client_first_name || ' ' || NEW.client_last_name,
                NEW.vet_id, NEW.vet_name)
        ON CONFLICT (tenant_id, appointment_id) DO UPDATE SET
            local_date = EXCLUDED.local_date, start_at = EXCLUDED.start_at,
            end_at = EXCLUDED.end_at, status = EXCLUDED.status, type = EXCLUDED.type,
            reason = EXCLUDED.reason, patient_id = EXCLUDED.patient_id,
            patient_name = EXCLUDED.patient_name, species = EXCLUDED.species,
            client_id = EXCLUDED.client_id, client_name = EXCLUDED.client_name,
            vet_id = EXCLUDED.vet_id, vet_name = EXCLUDED.vet_name;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER appointment_rollups AFTER INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointment_rollups();

-- Analysts' monthly mix of appointment types per vet (month of the local
-- date). Heavier than a per-event rollup is worth: refreshed CONCURRENTLY by
-- the projector when appointments changed (VETPMS_PROJECTOR_MV_REFRESH_MS).
CREATE MATERIALIZED VIEW appointment_type_mix_monthly AS
SELECT a.tenant_id, a.vet_id, a.vet_name, date_trunc('month', a.local_date)::date AS month,
       a.type, count(*)::integer AS appointments,
       (count(*) FILTER (WHERE a.status = 'completed'))::integer AS completed,
       (count(*) FILTER (WHERE a.status = 'canceled'))::integer AS canceled,
       (count(*) FILTER (WHERE a.status = 'no_show'))::integer AS no_show
FROM appointments a
GROUP BY a.tenant_id, a.vet_id, a.vet_name, date_trunc('month', a.local_date), a.type;
CREATE UNIQUE INDEX appointment_type_mix_monthly_key
    ON appointment_type_mix_monthly (tenant_id, vet_id, month, type);

-- Row-level security cannot apply to a materialized view: nobody but its owner
-- reads it; analysts read this security-barrier view, which shows the rows of
-- the tenant in vetpms.tenant_id only (and runs as its owner, the projector).
CREATE VIEW appointment_type_mix WITH (security_barrier) AS
SELECT tenant_id, vet_id, vet_name, month, type, appointments, completed, canceled, no_show
FROM appointment_type_mix_monthly
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['availability_blocks','appointments','appointment_dashboard',
                             'daily_appointment_stats']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    -- Default privileges gave SELECT on the new materialized view to the
    -- read-only roles; take it back (the view above is their way in).
    REVOKE ALL ON appointment_type_mix_monthly FROM PUBLIC;
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname IN ('vetpms_reader', 'vetpms_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON appointment_type_mix_monthly FROM %I', t);
        EXECUTE format('GRANT SELECT ON appointment_type_mix TO %I', t);
    END LOOP;
END $$;
