-- Read model of billing (DOMAIN.md § Billing, docs/billing.md): invoices with
-- their lines, payments and refunds; the client ledger the statement reads
-- (append-only, one row per debit or credit); and the monthly revenue rollup
-- the reader answers from, kept exact in the transaction of each event.
-- Money is integer minor units of the tenant's currency; every amount a line
-- carries was computed by the writer (half-even, integer) and is stored as the
-- event says, so the read model and the writer agree to the cent.

CREATE TABLE invoices (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    client_id        uuid NOT NULL,
    appointment_id   uuid,
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'void')),
    number           text,                    -- INV-000001, from issue on
    number_seq       bigint,                  -- 1, 2, ... per tenant, gapless (the number's digits: up to 18)
    issued_on        date,                    -- tenant-local
    due_on           date,
    issued_at        timestamptz,
    paid_on          date,                    -- tenant-local date the balance reached 0
    line_count       integer NOT NULL DEFAULT 0,
    net_cents        bigint NOT NULL DEFAULT 0,
    discount_cents   bigint NOT NULL DEFAULT 0,
    tax_cents        bigint NOT NULL DEFAULT 0,
    total_cents      bigint NOT NULL DEFAULT 0,
    paid_cents       bigint NOT NULL DEFAULT 0 CHECK (paid_cents >= 0),  -- net of refunds
    refunded_cents   bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    balance_cents    bigint GENERATED ALWAYS AS (
                         CASE WHEN status IN ('issued', 'partially_paid')
                              THEN total_cents - paid_cents ELSE 0 END) STORED,
    void_reason      text,
    voided_at        timestamptz,
    voided_on        date,                    -- tenant-local
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (paid_cents <= total_cents OR status = 'draft')
);
CREATE UNIQUE INDEX invoices_number ON invoices (tenant_id, number_seq) WHERE number_seq IS NOT NULL;
CREATE INDEX invoices_newest ON invoices (tenant_id, created_at DESC, id DESC);
CREATE INDEX invoices_by_client ON invoices (tenant_id, client_id, created_at DESC, id DESC);
CREATE INDEX invoices_by_status ON invoices (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX invoices_open_due ON invoices (tenant_id, due_on)
    WHERE status IN ('issued', 'partially_paid');
CREATE INDEX invoices_by_appointment ON invoices (tenant_id, appointment_id)
    WHERE appointment_id IS NOT NULL;

-- position: the line's order on the invoice (1-based, in the order added;
-- a removed line's row is deleted, the others keep their position).
CREATE TABLE invoice_lines (
    tenant_id         uuid NOT NULL,
    invoice_id        uuid NOT NULL,
    id                uuid NOT NULL,
    position          integer NOT NULL,
    description       text NOT NULL,
    item_id           uuid,
    quantity_milli    bigint NOT NULL CHECK (quantity_milli > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    discount_bp       integer NOT NULL CHECK (discount_bp BETWEEN 0 AND 10000),
    tax_rate_bp       integer NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    net_cents         bigint NOT NULL,
    discount_cents    bigint NOT NULL,
    tax_cents         bigint NOT NULL,
    line_total_cents  bigint NOT NULL,
    added_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, id)
);
CREATE UNIQUE INDEX invoice_lines_by_position ON invoice_lines (tenant_id, invoice_id, position);
CREATE INDEX invoice_lines_by_item ON invoice_lines (tenant_id, item_id) WHERE item_id IS NOT NULL;

CREATE TABLE payments (
    tenant_id        uuid NOT NULL,
    invoice_id       uuid NOT NULL,
    id               uuid NOT NULL,
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    refunded_cents   bigint NOT NULL DEFAULT 0 CHECK (refunded_cents BETWEEN 0 AND amount_cents),
    method           text NOT NULL,
    reference        text,
    received_on      date NOT NULL,
    recorded_at      timestamptz NOT NULL,
    actor            text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX payments_by_invoice ON payments (tenant_id, invoice_id, received_on, id);

CREATE TABLE refunds (
    tenant_id        uuid NOT NULL,
    invoice_id       uuid NOT NULL,
    payment_id       uuid NOT NULL,
    id               uuid NOT NULL,
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    reason           text NOT NULL,
    refunded_on      date NOT NULL,           -- tenant-local date of the event's `at`
    refunded_at      timestamptz NOT NULL,
    actor            text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX refunds_by_invoice ON refunds (tenant_id, invoice_id, refunded_at, id);

-- The client's statement: one row per debit (+: an issued invoice, a refund)
-- or credit (-: a payment, the void of an issued invoice), at the event's
-- Kafka position. The sum of a client's rows is the client's balance.
CREATE TABLE client_ledger (
    tenant_id        uuid NOT NULL,
    client_id        uuid NOT NULL,
    partition        integer NOT NULL,
    "offset"         bigint NOT NULL,
    on_date          date NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('invoice', 'payment', 'refund', 'void')),
    invoice_id       uuid NOT NULL,
    invoice_number   text NOT NULL,
    payment_id       uuid,
    refund_id        uuid,
    amount_cents     bigint NOT NULL,
    at               timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, client_id, partition, "offset")
);
CREATE INDEX client_ledger_by_date ON client_ledger (tenant_id, client_id, on_date, partition, "offset");

CREATE FUNCTION client_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'client_ledger is append-only (a statement is never edited)';
END $$;
CREATE TRIGGER client_ledger_append_only BEFORE UPDATE OR DELETE ON client_ledger
    FOR EACH ROW EXECUTE FUNCTION client_ledger_append_only();

-- Revenue per tenant-local month (DOMAIN.md § Billing), exact: the projector
-- updates it in the transaction of every invoice event. By the month of
-- issued_on: invoiced_cents and invoice_count (void excluded), paid_cents (net
-- payments on those invoices to date). By the month the money moved:
-- collected_cents (payments by received_on less refunds by refunded_on).
-- A month whose invoice_count is 0 is not answered.
CREATE TABLE revenue_monthly (
    tenant_id        uuid NOT NULL,
    month            date NOT NULL,           -- first day of the local month
    invoice_count    integer NOT NULL DEFAULT 0,
    invoiced_cents   bigint NOT NULL DEFAULT 0,
    paid_cents       bigint NOT NULL DEFAULT 0,
    collected_cents  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);

-- Analysts' revenue, computed from the invoices, payments and refunds tables
-- (an independent derivation of revenue_monthly) and refreshed CONCURRENTLY
-- by the projector only when an invoice event was applied since the last
-- refresh.
CREATE MATERIALIZED VIEW revenue_monthly_summary AS
WITH issued AS (
    SELECT tenant_id, date_trunc('month', issued_on)::date AS month,
           count(*)::integer AS invoice_count, sum(total_cents)::bigint AS invoiced_cents,
           sum(paid_cents)::bigint AS paid_cents
    FROM invoices
    WHERE status IN ('issued', 'partially_paid', 'paid')
    GROUP BY 1, 2
), moved AS (
    SELECT tenant_id, month, sum(amount)::bigint AS collected_cents
    FROM (SELECT tenant_id, date_trunc('month', received_on)::date AS month, amount_cents AS amount
          FROM payments
          UNION ALL
          SELECT tenant_id, date_trunc('month', refunded_on)::date, -amount_cents
          FROM refunds) m
    GROUP BY 1, 2
)
SELECT i.tenant_id, i.month, i.invoice_count, i.invoiced_cents, i.paid_cents,
       i.invoiced_cents - i.paid_cents AS outstanding_cents,
       coalesce(m.collected_cents, 0) AS collected_cents
FROM issued i
LEFT JOIN moved m ON m.tenant_id = i.tenant_id AND m.month = i.month;
CREATE UNIQUE INDEX revenue_monthly_summary_key ON revenue_monthly_summary (tenant_id, month);

CREATE VIEW revenue WITH (security_barrier) AS
SELECT tenant_id, month, invoice_count, invoiced_cents, paid_cents, outstanding_cents,
       collected_cents
FROM revenue_monthly_summary
WHERE tenant_id = nullif(current_setting('vetpms.tenant_id', true), '')::uuid;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['invoices','invoice_lines','payments','refunds','client_ledger',
                             'revenue_monthly']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING '
                       '(tenant_id = nullif(current_setting(''vetpms.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    REVOKE ALL ON revenue_monthly_summary FROM PUBLIC;
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname IN ('vetpms_reader', 'vetpms_analyst')
    LOOP
        EXECUTE format('REVOKE ALL ON revenue_monthly_summary FROM %I', t);
        EXECUTE format('GRANT SELECT ON revenue TO %I', t);
    END LOOP;
    -- Analysts read invoices, their lines, payments, refunds and the revenue
    -- view; not the client ledger (the reader's statement is its way out).
    FOR t IN SELECT rolname FROM pg_roles WHERE rolname = 'vetpms_analyst'
    LOOP
        EXECUTE format('REVOKE ALL ON client_ledger, revenue_monthly FROM %I', t);
    END LOOP;
END $$;
