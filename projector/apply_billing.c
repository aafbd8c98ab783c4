/* Read model of billing (schema/migrations/008_billing.sql, docs/billing.md):
 * invoices with their running totals, lines, payments, refunds, the client
 * ledger and the monthly revenue rollup. Each invoice event is one statement:
 * the invoice's change is a CTE (whose WHERE is the event's precondition:
 * the invoice exists, in a status that admits the event), and every other
 * write is fed from it, so an event that contradicts the read model (an
 * unknown invoice, line or payment, a status that does not admit it) writes
 * nothing: "0 rows", a dead letter. Amounts beyond what the read model holds
 * (a payment above the balance, a refund above what is left of the payment)
 * break a CHECK: a dead letter too. The consumer rolls the event back to its
 * savepoint either way, never a partial write.
 *
 * Ledger rows are at the event's position, read from event_log (logged just
 * before in the same transaction). revenue_monthly is upserted from a CTE that
 * sums the event's deltas per month first: one event may move two months or
 * twice the same one (ON CONFLICT DO UPDATE cannot touch a row twice).
 * Tenant-local dates (a refund's, a void's) use tenants.timezone.
 *
 * Every statement's parameters start alike: $1 tenant, $2 invoice, $3 seq
 * (the new version), $4 at, $5 the event id (for the ledger's position), then
 * the members of data. */
#include "apply_runner.h"
#include "vp_catalog.h"

#define NO_INVOICE(status) "invoice not found in the read model, or not " status

/* The tenant-local date of a timestamptz parameter; needs tenants t. */
#define LOCAL_DATE(at) "(" at "::timestamptz AT TIME ZONE t.timezone)::date"
#define MONTH(d)       "date_trunc('month', " d ")::date"

/* Adds the deltas of rows (tenant_id, month, count, invoiced, paid,
 * collected), summed per month, to revenue_monthly. */
#define REVENUE(rows)                                                                         \
	"INSERT INTO revenue_monthly AS r (tenant_id, month, invoice_count, invoiced_cents, "   \
	"paid_cents, collected_cents) "                                                        \
	"SELECT d.tenant_id, d.month, sum(d.n)::integer, sum(d.invoiced)::bigint, "             \
	"sum(d.paid)::bigint, sum(d.collected)::bigint "                                        \
	"FROM (" rows ") AS d(tenant_id, month, n, invoiced, paid, collected) "                \
	"GROUP BY d.tenant_id, d.month "                                                       \
	"ON CONFLICT (tenant_id, month) DO UPDATE SET "                                        \
	"invoice_count = r.invoice_count + excluded.invoice_count, "                           \
	"invoiced_cents = r.invoiced_cents + excluded.invoiced_cents, "                        \
	"paid_cents = r.paid_cents + excluded.paid_cents, "                                    \
	"collected_cents = r.collected_cents + excluded.collected_cents"

/* The ledger row of the invoice CTE i at the event's position ($5 its id). */
#define LEDGER(on_date, kind, payment, refund, amount)                                        \
	"INSERT INTO client_ledger (tenant_id, client_id, partition, \"offset\", on_date, kind, " \
	"invoice_id, invoice_number, payment_id, refund_id, amount_cents, at) "                 \
	"SELECT i.tenant_id, i.client_id, e.partition, e.\"offset\", " on_date ", '" kind "', " \
	"i.id, i.number, " payment ", " refund ", " amount ", $4::timestamptz FROM i "           \
	"JOIN event_log e ON e.tenant_id = $1::uuid AND e.event_id = $5::uuid"

#define BUMP "version = $3::integer, updated_at = $4::timestamptz"
#define THE_INVOICE(alias) alias "tenant_id = $1::uuid AND " alias "id = $2::uuid"
#define RETURNING_I(alias)                                                                    \
	"RETURNING " alias "tenant_id, " alias "id, " alias "client_id, " alias "number, "         \
	alias "issued_on"

const PjApplyRow pj_billing_rows[] = {
	/* The client must be known (its ledger rows name it). */
	{.type = VP_EV_INVOICE_CREATED,
	 .stmt = "invoice_created",
	 .sql = "INSERT INTO invoices (tenant_id, id, client_id, appointment_id, status, version, "
		"created_at, updated_at) "
		"SELECT c.tenant_id, $2::uuid, c.id, $6::uuid, 'draft', $3::integer, "
		"$4::timestamptz, $4::timestamptz FROM clients c "
		"WHERE c.tenant_id = $1::uuid AND c.id = $5::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("client_id"),
		    PJ_TEXT("appointment_id")},
	 .not_applied = "client not found in the read model"},
	/* position: after the highest on the invoice (removed lines leave gaps
	 * behind, the others keep theirs). */
	{.type = VP_EV_INVOICE_LINE_ADDED,
	 .stmt = "invoice_line_added",
	 .sql = "WITH i AS (UPDATE invoices SET line_count = line_count + 1, "
		"net_cents = net_cents + $12::bigint, discount_cents = discount_cents + $13::bigint, "
		"tax_cents = tax_cents + $14::bigint, total_cents = total_cents + $15::bigint, "
		BUMP " WHERE " THE_INVOICE("") " AND status = 'draft' RETURNING tenant_id, id) "
		"INSERT INTO invoice_lines (tenant_id, invoice_id, id, position, description, "
		"item_id, quantity_milli, unit_price_cents, discount_bp, tax_rate_bp, net_cents, "
		"discount_cents, tax_cents, line_total_cents, added_at) "
		"SELECT i.tenant_id, i.id, $5::uuid, coalesce((SELECT max(l.position) "
		"FROM invoice_lines l WHERE l.tenant_id = $1::uuid AND l.invoice_id = $2::uuid), 0) + 1, "
		"$6, $7::uuid, $8::bigint, $9::bigint, $10::integer, $11::integer, $12::bigint, "
		"$13::bigint, $14::bigint, $15::bigint, $4::timestamptz FROM i",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("line_id"),
		    PJ_TEXT("description"), PJ_TEXT("item_id"), PJ_INT("quantity_milli"),
		    PJ_INT("unit_price_cents"), PJ_INT("discount_bp"), PJ_INT("tax_rate_bp"),
		    PJ_INT("net_cents"), PJ_INT("discount_cents"), PJ_INT("tax_cents"),
		    PJ_INT("line_total_cents")},
	 .not_applied = NO_INVOICE("a draft")},
	{.type = VP_EV_INVOICE_LINE_REMOVED,
	 .stmt = "invoice_line_removed",
	 .sql = "WITH l AS (DELETE FROM invoice_lines l USING invoices v "
		"WHERE l.tenant_id = $1::uuid AND l.invoice_id = $2::uuid AND l.id = $5::uuid "
		"AND v.tenant_id = l.tenant_id AND v.id = l.invoice_id AND v.status = 'draft' "
		"RETURNING l.net_cents, l.discount_cents, l.tax_cents, l.line_total_cents) "
		"UPDATE invoices v SET line_count = v.line_count - 1, "
		"net_cents = v.net_cents - l.net_cents, "
		"discount_cents = v.discount_cents - l.discount_cents, "
		"tax_cents = v.tax_cents - l.tax_cents, "
		"total_cents = v.total_cents - l.line_total_cents, " BUMP " FROM l "
		"WHERE " THE_INVOICE("v."),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("line_id")},
	 .not_applied = "invoice line not found in the read model, or its invoice not a draft"},
	/* The event's total must be the lines' (the read model's running total);
	 * a zero total is paid at once. number_seq: the number's digits. */
	{.type = VP_EV_INVOICE_ISSUED,
	 .stmt = "invoice_issued",
	 .sql = "WITH i AS (UPDATE invoices SET "
		"status = CASE WHEN total_cents = 0 THEN 'paid' ELSE 'issued' END, "
		"paid_on = CASE WHEN total_cents = 0 THEN $7::date END, "
		"number = $6::text, number_seq = substr($6::text, 5)::bigint, "
		"issued_on = $7::date, due_on = $8::date, issued_at = $4::timestamptz, " BUMP
		" WHERE " THE_INVOICE("") " AND status = 'draft' AND line_count > 0 "
		"AND total_cents = $9::bigint "
		/* gapless: the tenant's next number (the writer's rule, checked again) */
		"AND substr($6::text, 5)::bigint = 1 + coalesce((SELECT max(n.number_seq) "
		"FROM invoices n WHERE n.tenant_id = $1::uuid), 0) "
		RETURNING_I("") ", total_cents), "
		"r AS (" REVENUE("SELECT tenant_id, " MONTH("issued_on") ", 1, total_cents, "
				 "0::bigint, 0::bigint FROM i") ") "
		LEDGER("i.issued_on", "invoice", "NULL::uuid", "NULL::uuid", "i.total_cents"),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("number"),
		    PJ_TEXT("issued_on"), PJ_TEXT("due_on"), PJ_INT("total_cents")},
	 .not_applied = "invoice not found in the read model, not a draft, without lines, "
			"its total not the event's, or its number not the tenant's next"},
	/* Above the balance breaks paid_cents <= total_cents. */
	{.type = VP_EV_PAYMENT_RECORDED,
	 .stmt = "payment_recorded",
	 .sql = "WITH i AS (UPDATE invoices SET paid_cents = paid_cents + $7::bigint, "
		"status = CASE WHEN paid_cents + $7::bigint = total_cents THEN 'paid' "
		"ELSE 'partially_paid' END, "
		"paid_on = CASE WHEN paid_cents + $7::bigint = total_cents THEN $10::date END, " BUMP
		" WHERE " THE_INVOICE("") " AND status IN ('issued', 'partially_paid') "
		"AND issued_on <= $10::date " RETURNING_I("") "), "
		"p AS (INSERT INTO payments (tenant_id, invoice_id, id, amount_cents, method, "
		"reference, received_on, recorded_at, actor) SELECT tenant_id, id, $6::uuid, "
		"$7::bigint, $8, $9, $10::date, $4::timestamptz, $11 FROM i), "
		"r AS (" REVENUE("SELECT tenant_id, " MONTH("issued_on") ", 0, 0::bigint, $7::bigint, "
				 "0::bigint FROM i UNION ALL SELECT tenant_id, " MONTH("$10::date")
				 ", 0, 0::bigint, 0::bigint, $7::bigint FROM i") ") "
		LEDGER("$10::date", "payment", "$6::uuid", "NULL::uuid", "-$7::bigint"),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("payment_id"),
		    PJ_INT("amount_cents"), PJ_TEXT("method"), PJ_TEXT("reference"),
		    PJ_TEXT("received_on"), PJ_ACTOR},
	 .not_applied = "invoice not found in the read model, not issued nor partially paid, "
			"or the payment received before its issue"},
	/* Above what is left of the payment breaks refunded_cents <= amount_cents.
	 * The refund's date is the tenant-local date of the event's at. */
	{.type = VP_EV_PAYMENT_REFUNDED,
	 .stmt = "payment_refunded",
	 .sql = "WITH p AS (UPDATE payments SET refunded_cents = refunded_cents + $8::bigint "
		"WHERE tenant_id = $1::uuid AND invoice_id = $2::uuid AND id = $7::uuid "
		"RETURNING id), "
		"i AS (UPDATE invoices v SET paid_cents = v.paid_cents - $8::bigint, "
		"refunded_cents = v.refunded_cents + $8::bigint, "
		"status = CASE WHEN v.paid_cents - $8::bigint > 0 THEN 'partially_paid' "
		"ELSE 'issued' END, paid_on = NULL, " BUMP " FROM p, tenants t "
		"WHERE " THE_INVOICE("v.") " AND t.id = v.tenant_id "
		"AND v.status IN ('partially_paid', 'paid') " RETURNING_I("v.") ", "
		LOCAL_DATE("$4") " AS refunded_on), "
		"f AS (INSERT INTO refunds (tenant_id, invoice_id, payment_id, id, amount_cents, "
		"reason, refunded_on, refunded_at, actor) SELECT tenant_id, id, $7::uuid, $6::uuid, "
		"$8::bigint, $9, refunded_on, $4::timestamptz, $10 FROM i), "
		"r AS (" REVENUE("SELECT tenant_id, " MONTH("issued_on") ", 0, 0::bigint, -$8::bigint, "
				 "0::bigint FROM i UNION ALL SELECT tenant_id, " MONTH("refunded_on")
				 ", 0, 0::bigint, 0::bigint, -$8::bigint FROM i") ") "
		LEDGER("i.refunded_on", "refund", "$7::uuid", "$6::uuid", "$8::bigint"),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("refund_id"),
		    PJ_TEXT("payment_id"), PJ_INT("amount_cents"), PJ_TEXT("reason"), PJ_ACTOR},
	 .not_applied = "payment not found on the invoice in the read model, or the invoice "
			"not partially paid nor paid"},
	/* A draft, or an issued invoice with nothing paid net (issued; paid only
	 * when its total is 0). Only an issued one leaves the ledger and its
	 * month's revenue. The statement's rows are the invoice's (a draft's void
	 * writes neither a ledger row nor revenue). */
	{.type = VP_EV_INVOICE_VOIDED,
	 .stmt = "invoice_voided",
	 .sql = "WITH i AS (UPDATE invoices v SET status = 'void', void_reason = $6, "
		"voided_at = $4::timestamptz, voided_on = " LOCAL_DATE("$4") ", " BUMP
		" FROM tenants t WHERE " THE_INVOICE("v.") " AND t.id = v.tenant_id "
		"AND v.paid_cents = 0 AND v.status IN ('draft', 'issued', 'paid') "
		RETURNING_I("v.") ", v.total_cents, v.voided_on), "
		"r AS (" REVENUE("SELECT tenant_id, " MONTH("issued_on") ", -1, -total_cents, "
				 "0::bigint, 0::bigint FROM i WHERE issued_on IS NOT NULL") "), "
		"l AS (" LEDGER("i.voided_on", "void", "NULL::uuid", "NULL::uuid", "-i.total_cents")
		" WHERE i.issued_on IS NOT NULL) "
		"SELECT 1 FROM i",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("reason")},
	 .not_applied = NO_INVOICE("a draft nor issued with nothing paid")},
	{.type = NULL},
};
