/* Billing queries (docs/billing.md § Queries): invoices newest first with
 * their filters, one invoice with its lines, payments and refunds, a client's
 * statement (the ledger's rows in (date, log position) order with a running
 * balance, opening and closing balances) and the monthly revenue. `overdue`
 * is computed here by the tenant's local today; every answer carries the
 * tenant's currency and its ISO 4217 exponent. Money stays integer: the
 * half-even quotients of the revenue are exact numeric div/mod, never floats. */
#include <stdio.h>
#include <string.h>

#include "routes.h"
#include "vp_catalog.h"
#include "vp_time.h"

#define ROLES_BILLING (VP_ROLE_ADMIN | VP_ROLE_RECEPTION)
#define ROLES_REVENUE (VP_ROLE_ADMIN | VP_ROLE_ANALYST)
#define MAX_REVENUE_MONTHS 120


/* One row, tn, even for a tenant the read model does not hold yet: its local
 * today, timezone, currency and currency exponent (exps: the parameter of
 * rd_bind_currency_exponents). */
#define TENANT_CTE(exps)                                                                     \
	"tn AS (SELECT (now() AT TIME ZONE coalesce(t.timezone, 'UTC'))::date AS today,"       \
	" t.timezone, t.currency::text AS currency, "                                         \
	RD_CURRENCY_EXPONENT("t.currency", exps) " AS currency_exponent"                     \
	" FROM (SELECT 1) one LEFT JOIN read.tenants t ON t.id = $1::uuid)"

/* Unpaid past its due date by the tenant's local date. */
#define OVERDUE(i)                                                                           \
	"coalesce(" i ".status IN ('issued', 'partially_paid') AND " i ".due_on < tn.today,"  \
	" false)"

/* round(a / d) half to even for a >= 0 and d > 0, exact (numeric div/mod). */
#define HALF_EVEN_DIV(a, d)                                                                  \
	"(div(" a ", " d ") + CASE WHEN 2 * mod(" a ", " d ") > " d " OR (2 * mod(" a ", " d   \
	") = " d " AND mod(div(" a ", " d "), 2) = 1) THEN 1 ELSE 0 END)::bigint"

/* i: an invoices row, with tn beside it. */
#define INVOICE_JSON(i)                                                                      \
	"'id', " i ".id, 'client_id', " i ".client_id, 'client_name', (SELECT c.first_name"    \
	" || ' ' || c.last_name FROM read.clients c WHERE c.tenant_id = " i ".tenant_id"        \
	" AND c.id = " i ".client_id), 'appointment_id', " i ".appointment_id, "                \
	"'status', " i ".status, 'number', " i ".number, 'issued_on', " i ".issued_on, "        \
	"'due_on', " i ".due_on, 'overdue', " OVERDUE(i) ", 'paid_on', " i ".paid_on, "         \
	"'currency', tn.currency, 'currency_exponent', tn.currency_exponent, "                  \
	"'net_cents', " i ".net_cents, 'discount_cents', " i ".discount_cents, "                \
	"'tax_cents', " i ".tax_cents, 'total_cents', " i ".total_cents, "                      \
	"'paid_cents', " i ".paid_cents, 'refunded_cents', " i ".refunded_cents, "              \
	"'balance_cents', " i ".balance_cents, 'line_count', " i ".line_count, "                \
	"'void_reason', " i ".void_reason, 'voided_at', " RD_RFC3339(i ".voided_at") ", "       \
	"'version', " i ".version, 'created_at', " RD_RFC3339(i ".created_at") ", "             \
	"'updated_at', " RD_RFC3339(i ".updated_at")

/* clang-format off: SQL reads best one clause per line */
/* $5 status, $6 client, $7 overdue, $8 the currency exponents. Newest first,
 * keyset (created_at, id). */
static const RdStatement invoice_list = {
    "rd_invoices_list",
    "WITH " TENANT_CTE("$8") ", page AS ("
    " SELECT i.*, row_number() OVER (ORDER BY i.created_at DESC, i.id DESC) AS rn"
    " FROM (SELECT i.* FROM read.invoices i CROSS JOIN tn"
    "  WHERE i.tenant_id = $1::uuid"
    "   AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3::timestamptz, $4::uuid))"
    "   AND ($5::text IS NULL OR i.status = $5::text)"
    "   AND ($6::uuid IS NULL OR i.client_id = $6::uuid)"
    "   AND ($7::boolean IS NULL OR " OVERDUE("i") " = $7::boolean)"
    "  ORDER BY i.created_at DESC, i.id DESC LIMIT $2::int + 1) i)"
    " SELECT (SELECT coalesce(json_agg(json_build_object(" INVOICE_JSON("p") ") ORDER BY p.rn),"
    "   '[]'::json) FROM page p CROSS JOIN tn WHERE p.rn <= $2::int)::text,"
    "  k.k1, k.k2"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.created_at::text AS k1, p.id::text AS k2"
    "  FROM page p WHERE p.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
    "  k ON true",
    8};

/* $3 the currency exponents. Lines in their order on the invoice; payments
 * by the date received, then as recorded; each payment's refunds as made. */
static const RdStatement invoice_get = {
    "rd_invoice_get",
    "WITH " TENANT_CTE("$3")
    " SELECT json_build_object(" INVOICE_JSON("i") ","
    " 'lines', coalesce((SELECT json_agg(json_build_object('id', l.id, 'position', l.position,"
    "  'description', l.description, 'item_id', l.item_id,"
    "  'quantity', " RD_QTY("l.quantity_milli") ", 'unit_price_cents', l.unit_price_cents,"
    "  'discount_bp', l.discount_bp, 'tax_rate_bp', l.tax_rate_bp,"
    "  'net_cents', l.net_cents, 'discount_cents', l.discount_cents,"
    "  'tax_cents', l.tax_cents, 'line_total_cents', l.line_total_cents)"
    "  ORDER BY l.position) FROM read.invoice_lines l"
    "  WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.id), '[]'::json),"
    " 'payments', coalesce((SELECT json_agg(json_build_object('id', p.id,"
    "  'amount_cents', p.amount_cents, 'refunded_cents', p.refunded_cents,"
    "  'method', p.method, 'reference', p.reference, 'received_on', p.received_on,"
    "  'recorded_at', " RD_RFC3339("p.recorded_at") ","
    "  'refunds', coalesce((SELECT json_agg(json_build_object('id', r.id,"
    "   'amount_cents', r.amount_cents, 'reason', r.reason, 'refunded_on', r.refunded_on,"
    "   'refunded_at', " RD_RFC3339("r.refunded_at") ") ORDER BY r.refunded_at, r.id)"
    "   FROM read.refunds r WHERE r.tenant_id = p.tenant_id AND r.invoice_id = p.invoice_id"
    "   AND r.payment_id = p.id), '[]'::json))"
    "  ORDER BY p.received_on, p.recorded_at, p.id) FROM read.payments p"
    "  WHERE p.tenant_id = i.tenant_id AND p.invoice_id = i.id), '[]'::json))::text"
    " FROM read.invoices i CROSS JOIN tn WHERE i.tenant_id = $1::uuid AND i.id = $2::uuid",
    3};

/* The ledger rows of the client $5, and their statement order. */
#define LEDGER(l)                                                                            \
	"read.client_ledger " l " WHERE " l ".tenant_id = $1::uuid AND " l                     \
	".client_id = $5::uuid"
#define LEDGER_KEY(l) "(" l ".on_date, " l ".partition, " l ".\"offset\")"

/* $5 the client, $6 from, $7 to (local dates, both included), $8 the currency
 * exponents. from defaults to the client's first row (or to), to to the local
 * today (or from, when later). The keyset's k1 is "<date>|<partition>", k2 the
 * offset. The balance after a row is the sum of the client's rows up to it:
 * those before the page's first row, plus the page's own running sum, so a
 * page stands on its own whatever page came before. */
static const RdStatement statement = {
    "rd_client_statement",
    "WITH " TENANT_CTE("$8") ","
    " upto AS (SELECT coalesce($7::date, greatest(tn.today, $6::date)) AS to_on FROM tn),"
    " rng AS (SELECT coalesce($6::date, least((SELECT min(l.on_date) FROM " LEDGER("l") "),"
    "  upto.to_on)) AS from_on, upto.to_on FROM upto),"
    " page AS ("
    " SELECT l.*, row_number() OVER (ORDER BY " LEDGER_KEY("l") ") AS rn"
    " FROM (SELECT l.* FROM " LEDGER("l")
    "   AND l.on_date BETWEEN (SELECT from_on FROM rng) AND (SELECT to_on FROM rng)"
    "   AND ($3::text IS NULL OR " LEDGER_KEY("l") " > (split_part($3::text, '|', 1)::date,"
    "    split_part($3::text, '|', 2)::int, $4::bigint))"
    "  ORDER BY " LEDGER_KEY("l") " LIMIT $2::int + 1) l),"
    " base AS (SELECT coalesce(sum(l.amount_cents), 0)::bigint AS before"
    "  FROM " LEDGER("l") " AND " LEDGER_KEY("l") " < (SELECT p.on_date, p.partition,"
    "  p.\"offset\" FROM page p WHERE p.rn = 1)),"
    " run AS (SELECT p.*, base.before + sum(p.amount_cents) OVER (ORDER BY p.rn) AS balance"
    "  FROM page p CROSS JOIN base)"
    " SELECT (SELECT coalesce(json_agg(json_build_object('date', r.on_date, 'kind', r.kind,"
    "   'invoice_id', r.invoice_id, 'invoice_number', r.invoice_number,"
    "   'payment_id', r.payment_id, 'refund_id', r.refund_id,"
    "   'amount_cents', r.amount_cents, 'balance_cents', r.balance) ORDER BY r.rn),"
    "   '[]'::json) FROM run r WHERE r.rn <= $2::int)::text,"
    "  k.k1, k.k2,"
    "  EXISTS (SELECT 1 FROM read.clients c WHERE c.tenant_id = $1::uuid AND c.id = $5::uuid),"
    "  (SELECT json_build_object('client_id', $5::uuid, 'from', rng.from_on, 'to', rng.to_on,"
    "   'currency', tn.currency, 'currency_exponent', tn.currency_exponent,"
    "   'opening_balance_cents', (SELECT coalesce(sum(l.amount_cents), 0)::bigint"
    "    FROM " LEDGER("l") " AND l.on_date < rng.from_on),"
    "   'closing_balance_cents', (SELECT coalesce(sum(l.amount_cents), 0)::bigint"
    "    FROM " LEDGER("l") " AND l.on_date <= rng.to_on))"
    "   FROM rng CROSS JOIN tn)::text"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.on_date::text || '|' || p.partition"
    "  AS k1, p.\"offset\"::text AS k2 FROM page p WHERE p.rn = $2::int"
    "  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
    8};

/* $2 first month, $3 last month (first days), $4 the currency exponents.
 * Months without invoices are left out (nullif: never a division by zero,
 * whatever order the planner evaluates the filter in); oldest first. */
static const RdStatement revenue = {
    "rd_revenue_monthly",
    "WITH " TENANT_CTE("$4")
    " SELECT json_build_object('from', to_char($2::date, 'YYYY-MM'),"
    " 'to', to_char($3::date, 'YYYY-MM'), 'timezone', tn.timezone,"
    " 'currency', tn.currency, 'currency_exponent', tn.currency_exponent,"
    " 'data', coalesce((SELECT json_agg(json_build_object("
    "  'month', to_char(r.month, 'YYYY-MM'), 'invoice_count', r.invoice_count,"
    "  'invoiced_cents', r.invoiced_cents, 'paid_cents', r.paid_cents,"
    "  'outstanding_cents', r.invoiced_cents - r.paid_cents,"
    "  'average_invoice_cents', x.average, 'payment_rate_bp', x.rate_bp,"
    "  'payment_rate', round(x.rate_bp::numeric / 10000, 4),"
    "  'collected_cents', r.collected_cents) ORDER BY r.month)"
    "  FROM read.revenue_monthly r CROSS JOIN LATERAL (SELECT"
    "   " HALF_EVEN_DIV("r.invoiced_cents::numeric", "nullif(r.invoice_count, 0)::numeric")
    "   AS average,"
    "   CASE WHEN r.invoiced_cents = 0 THEN 10000::bigint ELSE "
    HALF_EVEN_DIV("(r.paid_cents::numeric * 10000)", "r.invoiced_cents::numeric") " END"
    "   AS rate_bp) x"
    "  WHERE r.tenant_id = $1::uuid AND r.month BETWEEN $2::date AND $3::date"
    "  AND r.invoice_count > 0), '[]'::json))::text"
    " FROM tn",
    4};
/* clang-format on */

/* --- parameters -------------------------------------------------------- */

static int bind_invoice_list(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *status = vp_http_query(r, "status");
	const char *overdue = vp_http_query(r, "overdue");
	(void)id;
	if (status) {
		const char *const *s = vp_enum_invoice_statuses;
		while (*s && strcmp(*s, status) != 0)
			s++;
		if (!*s)
			vp_error_add_detail(err, "status",
					    "must be one of: draft, issued, partially_paid, paid, void");
		else if (rd_param_set(rq, 4, status) < 0)
			return -1;
	}
	if (rd_bind_uuid_query(rq, r, "client_id", 5, err) < 0)
		return -1;
	if (overdue) {
		if (strcmp(overdue, "true") != 0 && strcmp(overdue, "false") != 0)
			vp_error_add_detail(err, "overdue", "must be true or false");
		else if (rd_param_set(rq, 6, overdue) < 0)
			return -1;
	}
	return rd_bind_currency_exponents(rq, 7);
}

static int bind_invoice_get(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)r;
	(void)id;
	(void)err;
	return rd_bind_currency_exponents(rq, 2);
}

/* An optional date into params[index]; *good set when it is one. */
static int bind_date(RdRequest *rq, VpHttpRequest *r, const char *name, int index, bool *good,
		     int32_t *days, VpError *err)
{
	const char *value = vp_http_query(r, name);
	*good = false;
	if (!value)
		return 0;
	if (vp_date_parse(value, strlen(value), days) < 0) {
		vp_error_add_detail(err, name, "must be a date YYYY-MM-DD");
		return 0;
	}
	*good = true;
	return rd_param_set(rq, index, value);
}

/* The path's client is $5; optional from ($6) and to ($7), from not after to. */
static int bind_statement(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	bool from_ok, to_ok;
	int32_t from_days = 0, to_days = 0;
	if (rd_param_set(rq, 4, id) < 0 ||
	    bind_date(rq, r, "from", 5, &from_ok, &from_days, err) < 0 ||
	    bind_date(rq, r, "to", 6, &to_ok, &to_days, err) < 0)
		return -1;
	if (from_ok && to_ok && to_days < from_days)
		vp_error_add_detail(err, "to", "must not be before from");
	return rd_bind_currency_exponents(rq, 7);
}

/* A required month YYYY-MM into params[index] as its first day; *ordinal is
 * year × 12 + month − 1 when good, else -1. */
static int bind_month(RdRequest *rq, VpHttpRequest *r, const char *name, int index,
		      int *ordinal, VpError *err)
{
	const char *value = vp_http_query(r, name);
	char first_day[16];
	int32_t days;
	*ordinal = -1;
	if (!value || !*value) {
		vp_error_add_detail(err, name, "is required");
		return 0;
	}
	if (strlen(value) != 7 || snprintf(first_day, sizeof(first_day), "%s-01", value) != 10 ||
	    vp_date_parse(first_day, 10, &days) < 0) {
		vp_error_add_detail(err, name, "must be a month YYYY-MM");
		return 0;
	}
	/* vp_date_parse checked the digits */
	int year = (value[0] - '0') * 1000 + (value[1] - '0') * 100 + (value[2] - '0') * 10 +
		   (value[3] - '0');
	int month = (value[5] - '0') * 10 + (value[6] - '0');
	*ordinal = year * 12 + month - 1;
	return rd_param_set(rq, index, first_day);
}

static int bind_revenue(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	int from, to;
	(void)id;
	if (bind_month(rq, r, "from", 1, &from, err) < 0 || bind_month(rq, r, "to", 2, &to, err) < 0)
		return -1;
	if (from >= 0 && to >= 0 && to < from)
		vp_error_add_detail(err, "to", "must not be before from");
	else if (from >= 0 && to >= 0 && to - from >= MAX_REVENUE_MONTHS)
		vp_error_add_detail(err, "to", "must be at most %d months from from (both included)",
				    MAX_REVENUE_MONTHS);
	return rd_bind_currency_exponents(rq, 3);
}

const RdRoute rd_routes_billing[] = {
	{"/v1/invoices", ROLES_BILLING, &invoice_list, RD_SHAPE_LIST, "invoices",
	 bind_invoice_list},
	{"/v1/invoices/{id}", ROLES_BILLING, &invoice_get, RD_SHAPE_ITEM, NULL, bind_invoice_get},
	{"/v1/clients/{id}/statement", ROLES_BILLING, &statement, RD_SHAPE_LIST, "statement",
	 bind_statement},
	{"/v1/stats/revenue/monthly", ROLES_REVENUE, &revenue, RD_SHAPE_ITEM, NULL, bind_revenue},
	{NULL},
};
