-- Read model of stock (DOMAIN.md § Stock): items, their batches and the stock
-- movements (one row per receipt, dispense allocation and adjustment, in log
-- order). The register is read from stock_movements, which the projector only
-- ever inserts into (a trigger refuses UPDATE and DELETE): append-only by
-- construction. `on hand` depends on the tenant's local today, so the reader
-- computes it from the batches; stock_milli is the physical total (expired
-- batches included), the register's running balance.

CREATE TABLE inventory_items (
    tenant_id              uuid NOT NULL,
    id                     uuid NOT NULL,
    code                   text NOT NULL,
    name                   text NOT NULL,
    category               text NOT NULL,
    unit                   text NOT NULL,
    controlled             boolean NOT NULL,
    requires_prescription  boolean NOT NULL,
    reorder_point_milli    bigint,
    reorder_quantity_milli bigint,
    sale_price_cents       bigint,
    tax_rate_bp            integer,
    active                 boolean NOT NULL DEFAULT true,
    deactivation_reason    text,
    stock_milli            bigint NOT NULL DEFAULT 0 CHECK (stock_milli >= 0),
    version                integer NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX inventory_items_by_code ON inventory_items (tenant_id, code, id);

-- A batch is (item, batch_number); its id is the event id of its first
-- receipt (stable across rebuilds, a keyset for the expiring list). A later
-- receipt of the same number and expiry tops it up; the first receipt's lot,
-- unit cost and supplier invoice stay (a cost given only later fills a gap).
CREATE TABLE stock_batches (
    tenant_id         uuid NOT NULL,
    item_id           uuid NOT NULL,
    batch_number      text NOT NULL,
    id                uuid NOT NULL,
    lot_number        text,
    expiry_date       date,
    received_milli    bigint NOT NULL CHECK (received_milli > 0),
    remaining_milli   bigint NOT NULL CHECK (remaining_milli >= 0),
    unit_cost_cents   bigint,
    supplier_invoice  text,
    first_received_at timestamptz NOT NULL,
    last_received_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, item_id, batch_number)
);
CREATE INDEX stock_batches_expiring ON stock_batches (tenant_id, expiry_date, id)
    WHERE remaining_milli > 0 AND expiry_date IS NOT NULL;
CREATE INDEX stock_batches_by_lot ON stock_batches (tenant_id, lot_number);

-- One row per receipt, per dispense allocation (line = its 1-based index in
-- allocations; 0 for receipts and adjustments) and per adjustment, at its
-- event's Kafka position. balance_milli is the item's stock_milli after the
-- row: the register's running balance.
CREATE TABLE stock_movements (
    tenant_id        uuid NOT NULL,
    item_id          uuid NOT NULL,
    partition        integer NOT NULL,
    "offset"         bigint NOT NULL,
    line             integer NOT NULL,
    event_id         uuid NOT NULL,
    seq              integer NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('receipt', 'dispense', 'adjustment')),
    batch_number     text NOT NULL,
    delta_milli      bigint NOT NULL,
    balance_milli    bigint NOT NULL,
    actor            text NOT NULL,
    witness_id       uuid,
    patient_id       uuid,
    prescription_id  uuid,
    invoice_id       uuid,
    reason           text,                      -- adjustments
    supplier_invoice text,                      -- receipts
    at               timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, item_id, partition, "offset", line)
);
CREATE INDEX stock_movements_by_batch ON stock_movements (tenant_id, item_id, batch_number)
    WHERE kind = 'dispense';

CREATE FUNCTION stock_movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_movements is append-only (the register is never edited)';
END $$;
CREATE TRIGGER stock_movements_append_only BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only();

-- Analysts: plain security-barrier views (their owner, the projector, reads
-- the tables past RLS; the filter on vetpms.tenant_id is theirs). Cheap enough
-- per tenant not to need a materialized view.
-- Valuation per batch with stock: remaining × unit cost, in cents, rounded
-- half to even like every money computation.
CREATE VIEW stock_valuation WITH (security_barrier) AS
SELECT b.tenant_id, b.item_id, i.code, i.name, i.category, b.batch_number, b.lot_number,
       b.expiry_date, round(b.remaining_milli / 1000.0, 3) AS remaining, b.unit_cost_cents,
       v.q + CASE WHEN v.r > 500 OR (v.r = 500 AND v.q % 2 = 1) THEN 1 ELSE 0 END AS value_cents
FROM stock_batches b
JOIN inventory_items i ON i.tenant_id = b.tenant_id AND i.id = b.item_id
CROSS JOIN LATERAL (SELECT (b.remaining_milli * coalesce(b.unit_cost_cents, 0)) / 1000 AS q,
                           (b.remaining_milli * coalesce(b.unit_cost_cents, 0)) % 1000 AS r) v
WHERE b.remaining_milli > 0
  AND b.tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid;

-- Usage per item and month of the tenant's local date: received, dispensed
-- (positive) and the net of adjustments.
CREATE VIEW stock_usage_monthly WITH (security_barrier) AS
SELECT m.tenant_id, m.item_id, i.code, i.name,
       date_trunc('month', (m.at AT TIME ZONE t.timezone))::date AS month,
       round(coalesce(sum(m.delta_milli) FILTER (WHERE m.kind = 'receipt'), 0) / 1000.0, 3) AS received,
       round(coalesce(-sum(m.delta_milli) FILTER (WHERE m.kind = 'dispense'), 0) / 1000.0, 3) AS dispensed,
       round(coalesce(sum(m.delta_milli) FILTER (WHERE m.kind = 'adjustment'), 0) / 1000.0, 3) AS adjusted,
       (count(DISTINCT m.event_id) FILTER (WHERE m.kind = 'dispense'))::integer AS dispenses
FROM stock_movements m
JOIN inventory_items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id
JOIN tenants t ON t.id = m.tenant_id
WHERE m.tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid
GROUP BY m.tenant_id, m.item_id, i.code, i.name,
         date_trunc('month', (m.at AT TIME ZONE t.timezone))::date;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['inventory_items','stock_batches','stock_movements']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname IN ('vetpms_reader', 'vetpms_analyst')
    LOOP
        EXECUTE format('GRANT SELECT ON stock_valuation, stock_usage_monthly TO %I', t);
    END LOOP;
    -- Movements name patients, prescriptions, actors and witnesses: the
    -- analyst reads the items and the two views, not the batches nor the
    -- movements.
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname = 'vetpms_analyst'
    LOOP
        EXECUTE format('REVOKE ALL ON stock_batches, stock_movements FROM %I', t);
    END LOOP;
END $$;
