/* Stock (admin, vet, nurse): items with their on-hand stock (non-expired
 * batches by the tenant's local today) and low_stock; one item with its
 * batches; batches expiring within N days (and those already expired with
 * stock left); an item's register (every movement in log order with its
 * running balance); and a lot's recall (its batches and every dispense from
 * them, with patient and owner). Quantities leave as numbers with 3 places. */
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "vp_time.h"

#define ROLES_STOCK (VP_ROLE_ADMIN | VP_ROLE_VET | VP_ROLE_NURSE)
#define MAX_WITHIN_DAYS 3650
#define DEFAULT_WITHIN_DAYS "30"
#define MAX_LOT_LEN 50


/* The tenant's local today, as a one-row CTE named td. */
#define TODAY_CTE                                                                            \
	"td AS (SELECT (now() AT TIME ZONE t.timezone)::date AS today FROM read.tenants t"      \
	" WHERE t.id = $1::uuid)"

/* Stock of non-expired batches (an expiry date of today is still good). */
#define ON_HAND(i)                                                                           \
	"(SELECT coalesce(sum(b.remaining_milli), 0)::bigint FROM read.stock_batches b"         \
	" WHERE b.tenant_id = " i ".tenant_id AND b.item_id = " i ".id"                         \
	" AND (b.expiry_date IS NULL OR b.expiry_date >= td.today))"

/* i: an inventory_items row with on_hand and low_stock beside it. */
#define ITEM_JSON(i)                                                                         \
	"'id', " i ".id, 'code', " i ".code, 'name', " i ".name, 'category', " i ".category, "   \
	"'unit', " i ".unit, 'controlled', " i ".controlled, "                                  \
	"'requires_prescription', " i ".requires_prescription, "                                \
	"'reorder_point', " RD_QTY(i ".reorder_point_milli") ", "                                  \
	"'reorder_quantity', " RD_QTY(i ".reorder_quantity_milli") ", "                            \
	"'sale_price_cents', " i ".sale_price_cents, 'tax_rate_bp', " i ".tax_rate_bp, "        \
	"'active', " i ".active, 'deactivation_reason', " i ".deactivation_reason, "            \
	"'on_hand', " RD_QTY(i ".on_hand") ", 'expired_stock', " RD_QTY(i ".stock_milli - " i         \
	".on_hand") ", 'low_stock', " i ".low_stock, 'version', " i ".version, "                \
	"'created_at', " RD_RFC3339(i ".created_at") ", 'updated_at', " RD_RFC3339(i ".updated_at")

#define LOW_STOCK(on_hand, i) "coalesce(" on_hand " <= " i ".reorder_point_milli, false)"

/* clang-format off: SQL reads best one clause per line */
/* $5 low_stock (true/false), $6 category. By code, keyset (code, id). */
static const RdStatement item_list = {
    "rd_inventory_items",
    "WITH " TODAY_CTE ", page AS ("
    " SELECT i.*, oh.on_hand, " LOW_STOCK("oh.on_hand", "i") " AS low_stock,"
    "  row_number() OVER (ORDER BY i.code, i.id) AS rn"
    " FROM read.inventory_items i CROSS JOIN td"
    " CROSS JOIN LATERAL (SELECT " ON_HAND("i") " AS on_hand) oh"
    " WHERE i.tenant_id = $1::uuid"
    "  AND ($3::text IS NULL OR (i.code, i.id) > ($3::text, $4::uuid))"
    "  AND ($6::text IS NULL OR i.category = $6::text)"
    "  AND ($5::boolean IS NULL OR " LOW_STOCK("oh.on_hand", "i") " = $5::boolean)"
    " ORDER BY i.code, i.id LIMIT $2::int + 1)"
    " SELECT (SELECT coalesce(json_agg(json_build_object(" ITEM_JSON("p") ") ORDER BY p.rn),"
    "   '[]'::json) FROM page p WHERE p.rn <= $2::int)::text,"
    "  k.k1, k.k2"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.code AS k1, p.id::text AS k2"
    "  FROM page p WHERE p.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
    "  k ON true",
    6};

/* Batches in FEFO order: earliest expiry first, none last, then receipt. */
static const RdStatement item_get = {
    "rd_inventory_item_get",
    "WITH " TODAY_CTE ", it AS ("
    " SELECT i.*, oh.on_hand, " LOW_STOCK("oh.on_hand", "i") " AS low_stock"
    " FROM read.inventory_items i CROSS JOIN td"
    " CROSS JOIN LATERAL (SELECT " ON_HAND("i") " AS on_hand) oh"
    " WHERE i.tenant_id = $1::uuid AND i.id = $2::uuid)"
    " SELECT json_build_object(" ITEM_JSON("it") ","
    "  'batches', coalesce((SELECT json_agg(json_build_object('id', b.id,"
    "   'batch_number', b.batch_number, 'lot_number', b.lot_number,"
    "   'expiry_date', b.expiry_date, 'expired', coalesce(b.expiry_date < td.today, false),"
    "   'received', " RD_QTY("b.received_milli") ", 'remaining', " RD_QTY("b.remaining_milli") ","
    "   'unit_cost_cents', b.unit_cost_cents, 'supplier_invoice', b.supplier_invoice,"
    "   'first_received_at', " RD_RFC3339("b.first_received_at") ","
    "   'last_received_at', " RD_RFC3339("b.last_received_at") ")"
    "   ORDER BY b.expiry_date NULLS LAST, b.first_received_at, b.batch_number)"
    "   FROM read.stock_batches b WHERE b.tenant_id = it.tenant_id AND b.item_id = it.id),"
    "   '[]'::json))::text"
    " FROM it CROSS JOIN td",
    2};

/* $5 within_days. Batches with stock expiring on or before today + N,
 * already expired ones included; soonest first, keyset (expiry_date, id). */
static const RdStatement expiring = {
    "rd_inventory_expiring",
    "WITH " TODAY_CTE ", page AS ("
    " SELECT b.*, i.code, i.name, i.unit, td.today,"
    "  row_number() OVER (ORDER BY b.expiry_date, b.id) AS rn"
    " FROM read.stock_batches b CROSS JOIN td"
    " JOIN read.inventory_items i ON i.tenant_id = b.tenant_id AND i.id = b.item_id"
    " WHERE b.tenant_id = $1::uuid AND b.remaining_milli > 0 AND b.expiry_date IS NOT NULL"
    "  AND b.expiry_date <= td.today + $5::int"
    "  AND ($3::date IS NULL OR (b.expiry_date, b.id) > ($3::date, $4::uuid))"
    " ORDER BY b.expiry_date, b.id LIMIT $2::int + 1)"
    " SELECT (SELECT coalesce(json_agg(json_build_object('batch_id', p.id,"
    "   'item', json_build_object('id', p.item_id, 'code', p.code, 'name', p.name,"
    "    'unit', p.unit),"
    "   'batch_number', p.batch_number, 'lot_number', p.lot_number,"
    "   'expiry_date', p.expiry_date, 'days_left', p.expiry_date - p.today,"
    "   'expired', p.expiry_date < p.today, 'remaining', " RD_QTY("p.remaining_milli") ","
    "   'unit_cost_cents', p.unit_cost_cents) ORDER BY p.rn), '[]'::json)"
    "   FROM page p WHERE p.rn <= $2::int)::text,"
    "  k.k1, k.k2"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.expiry_date::text AS k1, p.id::text AS k2"
    "  FROM page p WHERE p.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
    "  k ON true",
    5};

/* $5 the item, $6 from, $7 to ([from, to) on the event's at). Log order:
 * (partition, offset, line); one tenant is one partition. The keyset's k1 is
 * "<partition>|<offset>", k2 the line. */
static const RdStatement item_register = {
    "rd_inventory_register",
    "WITH page AS ("
    " SELECT m.*, row_number() OVER (ORDER BY m.partition, m.\"offset\", m.line) AS rn"
    " FROM (SELECT * FROM read.stock_movements m"
    "  WHERE m.tenant_id = $1::uuid AND m.item_id = $5::uuid"
    "   AND ($6::timestamptz IS NULL OR m.at >= $6::timestamptz)"
    "   AND ($7::timestamptz IS NULL OR m.at < $7::timestamptz)"
    "   AND ($3::text IS NULL OR (m.partition, m.\"offset\", m.line) >"
    "    (split_part($3::text, '|', 1)::int, split_part($3::text, '|', 2)::bigint, $4::int))"
    "  ORDER BY m.partition, m.\"offset\", m.line LIMIT $2::int + 1) m)"
    " SELECT (SELECT coalesce(json_agg(json_build_object("
    "   'position', m.partition || ':' || m.\"offset\", 'line', m.line,"
    "   'event_id', m.event_id, 'kind', m.kind, 'at', " RD_RFC3339("m.at") ","
    "   'batch_number', m.batch_number, 'lot_number', b.lot_number,"
    "   'expiry_date', b.expiry_date, 'quantity', " RD_QTY("m.delta_milli") ","
    "   'balance', " RD_QTY("m.balance_milli") ", 'actor', m.actor,"
    "   'witness', CASE WHEN m.witness_id IS NULL THEN NULL ELSE json_build_object("
    "    'id', m.witness_id, 'name', s.name) END,"
    "   'patient', CASE WHEN m.patient_id IS NULL THEN NULL ELSE json_build_object("
    "    'id', m.patient_id, 'name', pt.name) END,"
    "   'prescription_id', m.prescription_id, 'invoice_id', m.invoice_id,"
    "   'reason', m.reason, 'supplier_invoice', m.supplier_invoice) ORDER BY m.rn),"
    "   '[]'::json)"
    "   FROM page m"
    "   LEFT JOIN read.stock_batches b ON b.tenant_id = m.tenant_id AND b.item_id = m.item_id"
    "    AND b.batch_number = m.batch_number"
    "   LEFT JOIN read.staff s ON s.tenant_id = m.tenant_id AND s.id = m.witness_id"
    "   LEFT JOIN read.patients pt ON pt.tenant_id = m.tenant_id AND pt.id = m.patient_id"
    "   WHERE m.rn <= $2::int)::text,"
    "  k.k1, k.k2,"
    "  EXISTS (SELECT 1 FROM read.inventory_items i WHERE i.tenant_id = $1::uuid"
    "   AND i.id = $5::uuid)"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT m.partition || '|' || m.\"offset\" AS k1,"
    "  m.line::text AS k2 FROM page m WHERE m.rn = $2::int"
    "  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
    7};

/* $2 the lot number. The batches of that lot (any item) and every dispense
 * from them in log order, with the patient and its owner as they are now and
 * the number of the invoice it was billed on (null without one, or while
 * that invoice is a draft). */
static const RdStatement recall = {
    "rd_inventory_recall",
    "WITH bt AS (SELECT b.*, i.code, i.name, i.unit FROM read.stock_batches b"
    " JOIN read.inventory_items i ON i.tenant_id = b.tenant_id AND i.id = b.item_id"
    " WHERE b.tenant_id = $1::uuid AND b.lot_number = $2::text),"
    " d AS (SELECT m.*, bt.code, bt.name FROM read.stock_movements m"
    " JOIN bt ON m.item_id = bt.item_id AND m.batch_number = bt.batch_number"
    " WHERE m.tenant_id = $1::uuid AND m.kind = 'dispense')"
    " SELECT json_build_object('lot_number', $2::text,"
    "  'batches', coalesce((SELECT json_agg(json_build_object('id', bt.id,"
    "   'item', json_build_object('id', bt.item_id, 'code', bt.code, 'name', bt.name,"
    "    'unit', bt.unit),"
    "   'batch_number', bt.batch_number, 'expiry_date', bt.expiry_date,"
    "   'received', " RD_QTY("bt.received_milli") ", 'remaining', " RD_QTY("bt.remaining_milli") ","
    "   'first_received_at', " RD_RFC3339("bt.first_received_at") ")"
    "   ORDER BY bt.code, bt.batch_number) FROM bt), '[]'::json),"
    "  'dispenses', coalesce((SELECT json_agg(json_build_object("
    "   'position', d.partition || ':' || d.\"offset\", 'line', d.line,"
    "   'event_id', d.event_id, 'at', " RD_RFC3339("d.at") ","
    "   'item', json_build_object('id', d.item_id, 'code', d.code, 'name', d.name),"
    "   'batch_number', d.batch_number, 'quantity', " RD_QTY("-d.delta_milli") ","
    "   'actor', d.actor, 'witness_id', d.witness_id,"
    "   'prescription_id', d.prescription_id, 'invoice_id', d.invoice_id,"
    "   'invoice_number', inv.number,"
    "   'patient', CASE WHEN d.patient_id IS NULL THEN NULL ELSE json_build_object("
    "    'id', d.patient_id, 'name', p.name, 'species', p.species, 'status', p.status) END,"
    "   'client', CASE WHEN c.id IS NULL THEN NULL ELSE json_build_object('id', c.id,"
    "    'first_name', c.first_name, 'last_name', c.last_name, 'email', c.email,"
    "    'phone', c.phone, 'address', c.address) END)"
    "   ORDER BY d.partition, d.\"offset\", d.line) FROM d"
    "   LEFT JOIN read.patients p ON p.tenant_id = d.tenant_id AND p.id = d.patient_id"
    "   LEFT JOIN read.clients c ON c.tenant_id = p.tenant_id AND c.id = p.client_id"
    "   LEFT JOIN read.invoices inv ON inv.tenant_id = d.tenant_id AND inv.id = d.invoice_id),"
    "   '[]'::json))::text",
    2};
/* clang-format on */

/* Optional low_stock (true|false) and category. */
static int bind_items(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *low = vp_http_query(r, "low_stock");
	(void)id;
	if (low) {
		if (strcmp(low, "true") != 0 && strcmp(low, "false") != 0)
			vp_error_add_detail(err, "low_stock", "must be true or false");
		else if (rd_param_set(rq, 4, low) < 0)
			return -1;
	}
	return rd_bind_text_query(rq, r, "category", 5, 20, err);
}

static int bind_expiring(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *days = vp_http_query(r, "within_days");
	char *end = NULL;
	(void)id;
	if (!days)
		return rd_param_set(rq, 4, DEFAULT_WITHIN_DAYS);
	long value = strtol(days, &end, 10);
	if (!*days || *end || days[0] == '-' || days[0] == '+' || value < 0 ||
	    value > MAX_WITHIN_DAYS) {
		vp_error_add_detail(err, "within_days", "must be an integer from 0 to %d",
				    MAX_WITHIN_DAYS);
		return 0;
	}
	return rd_param_set(rq, 4, days);
}

/* An optional RFC 3339 time, normalised to UTC. */
static int bind_time(RdRequest *rq, VpHttpRequest *r, const char *name, int index, bool *good,
		     int64_t *us, VpError *err)
{
	const char *value = vp_http_query(r, name);
	char text[40];
	*good = false;
	if (!value)
		return 0;
	if (vp_time_parse_rfc3339(value, strlen(value), us) < 0 ||
	    vp_time_format_rfc3339(*us, text, sizeof(text)) == 0) {
		vp_error_add_detail(err, name, "must be an RFC 3339 time with offset");
		return 0;
	}
	*good = true;
	return rd_param_set(rq, index, text);
}

/* The path's item is $5; optional from ($6) and to ($7), to after from. */
static int bind_register(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	bool from_ok, to_ok;
	int64_t from_us = 0, to_us = 0;
	if (rd_param_set(rq, 4, id) < 0 ||
	    bind_time(rq, r, "from", 5, &from_ok, &from_us, err) < 0 ||
	    bind_time(rq, r, "to", 6, &to_ok, &to_us, err) < 0)
		return -1;
	if (from_ok && to_ok && to_us <= from_us)
		vp_error_add_detail(err, "to", "must be after from");
	return 0;
}

static int bind_recall(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *lot = vp_http_query(r, "lot_number");
	(void)id;
	if (!lot || !*lot) {
		vp_error_add_detail(err, "lot_number", "is required");
		return 0;
	}
	return rd_bind_text_query(rq, r, "lot_number", 1, MAX_LOT_LEN, err);
}

const RdRoute rd_routes_stock[] = {
	{"/v1/inventory/items", ROLES_STOCK, &item_list, RD_SHAPE_LIST, "inventory-items",
	 bind_items},
	{"/v1/inventory/items/{id}", ROLES_STOCK, &item_get, RD_SHAPE_ITEM, NULL, NULL},
	{"/v1/inventory/items/{id}/register", ROLES_STOCK, &item_register, RD_SHAPE_LIST,
	 "inventory-register", bind_register},
	{"/v1/inventory/expiring", ROLES_STOCK, &expiring, RD_SHAPE_LIST, "inventory-expiring",
	 bind_expiring},
	{"/v1/inventory/recall", ROLES_STOCK, &recall, RD_SHAPE_ITEM, NULL, bind_recall},
	{NULL},
};
