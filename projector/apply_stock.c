/* Read model of stock (schema/migrations/007_stock.sql): items, batches and
 * stock movements. Each stock event is one statement: the batch change and
 * the item's physical total (stock_milli, version) are CTEs, and the movement
 * rows are inserted only from the item's CTE, at the event's position read
 * from event_log (logged just before in the same transaction). An unknown
 * item or batch therefore applies nothing: "0 rows", a dead letter; stock
 * going below zero breaks a CHECK: a dead letter too. */
#include <stdio.h>
#include <stdlib.h>

#include "apply_runner.h"
#include "vp_catalog.h"
#include "vp_json.h"

#define NO_ITEM "inventory item not found in the read model"
#define NO_BATCH "inventory item or batch not found in the read model"

/* The movement's position: the event's row in event_log. */
#define EVENT_POSITION(id) \
	"JOIN event_log e ON e.tenant_id = $1::uuid AND e.event_id = " id "::uuid"

/* Optional fields of InventoryItemUpdated: absent keeps, a value replaces,
 * null clears. */
#define MERGE(col, present, value, type)                                                     \
	col " = CASE WHEN " present "::boolean THEN " value "::" type " ELSE " col " END"

/* $1 tenant, $2 item, $3 seq, $4 at, $5 event id, $6 allocations (JSON),
 * $7 prescription, $8 patient, $9 invoice, $10 witness, $11 actor. A batch
 * named twice is decremented by its sum; every batch named must exist. */
static PjApplyResult dispense(PGconn *conn, const PjApplyRow *row, const VpEvent *ev, char *why,
			      size_t cap)
{
	PjEnvText env;
	char *allocations = vp_json_print(cJSON_GetObjectItemCaseSensitive(ev->data, "allocations"));
	if (!allocations) {
		snprintf(why, cap, "out of memory");
		return PJ_FAILED;
	}
	pj_env_text(ev, &env);
	const char *prescription = vp_json_str(ev->data, "prescription_id");
	const char *patient = vp_json_str(ev->data, "patient_id");
	const char *invoice = vp_json_str(ev->data, "invoice_id");
	const char *witness = vp_json_str(ev->data, "witness_id");
	const char *params[] = {ev->tenant_id, ev->aggregate_id, env.seq,  env.at,
				ev->id,        allocations,      prescription, patient,
				invoice,       witness,          ev->actor};
	long rows = pj_apply_exec(conn, row->stmt, 11, params, why, cap);
	free(allocations);
	return pj_apply_rows(rows, why, cap, row->not_applied);
}

const PjApplyRow pj_stock_rows[] = {
	{.type = VP_EV_INVENTORY_ITEM_CREATED,
	 .stmt = "inventory_item_created",
	 .sql = "INSERT INTO inventory_items (tenant_id, id, code, name, category, unit, "
		"controlled, requires_prescription, reorder_point_milli, reorder_quantity_milli, "
		"sale_price_cents, tax_rate_bp, version, created_at, updated_at) "
		"SELECT t.id, $2::uuid, $3, $4, $5, $6, $7::boolean, $8::boolean, $9::bigint, "
		"$10::bigint, $11::bigint, $12::integer, $13::integer, $14::timestamptz, "
		"$14::timestamptz FROM tenants t WHERE t.id = $1::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("code"), PJ_TEXT("name"),
		    PJ_TEXT("category"), PJ_TEXT("unit"), PJ_BOOL("controlled"),
		    PJ_BOOL("requires_prescription"), PJ_INT("reorder_point_milli"),
		    PJ_INT("reorder_quantity_milli"), PJ_INT("sale_price_cents"),
		    PJ_INT("tax_rate_bp"), PJ_SEQ, PJ_AT},
	 .not_applied = "tenant not found in the read model"},
	/* name, category, unit and requires_prescription are never null when
	 * present; the numbers may be cleared. */
	{.type = VP_EV_INVENTORY_ITEM_UPDATED,
	 .stmt = "inventory_item_updated",
	 .sql = "UPDATE inventory_items SET name = coalesce($5, name), "
		"category = coalesce($6, category), unit = coalesce($7, unit), "
		"requires_prescription = coalesce($8::boolean, requires_prescription), "
		MERGE("reorder_point_milli", "$9", "$10", "bigint") ", "
		MERGE("reorder_quantity_milli", "$11", "$12", "bigint") ", "
		MERGE("sale_price_cents", "$13", "$14", "bigint") ", "
		MERGE("tax_rate_bp", "$15", "$16", "integer") ", "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("name"), PJ_TEXT("category"),
		    PJ_TEXT("unit"), PJ_BOOL("requires_prescription"),
		    PJ_PRESENT("reorder_point_milli"), PJ_INT("reorder_point_milli"),
		    PJ_PRESENT("reorder_quantity_milli"), PJ_INT("reorder_quantity_milli"),
		    PJ_PRESENT("sale_price_cents"), PJ_INT("sale_price_cents"),
		    PJ_PRESENT("tax_rate_bp"), PJ_INT("tax_rate_bp")},
	 .not_applied = NO_ITEM},
	{.type = VP_EV_INVENTORY_ITEM_DEACTIVATED,
	 .stmt = "inventory_item_deactivated",
	 .sql = "UPDATE inventory_items SET active = false, deactivation_reason = $5, "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("reason")},
	 .not_applied = NO_ITEM},
	/* A known batch number is topped up only with the same expiry (the
	 * writer's BATCH_CONFLICT otherwise): a mismatch updates no batch, so
	 * nothing is applied. */
	{.type = VP_EV_STOCK_RECEIVED,
	 .stmt = "stock_received",
	 .sql = "WITH b AS (INSERT INTO stock_batches AS s (tenant_id, item_id, batch_number, id, "
		"lot_number, expiry_date, received_milli, remaining_milli, unit_cost_cents, "
		"supplier_invoice, first_received_at, last_received_at) "
		"SELECT i.tenant_id, i.id, $6, $5::uuid, $7, $8::date, $9::bigint, $9::bigint, "
		"$10::bigint, $11, $4::timestamptz, $4::timestamptz FROM inventory_items i "
		"WHERE i.tenant_id = $1::uuid AND i.id = $2::uuid "
		"ON CONFLICT (tenant_id, item_id, batch_number) DO UPDATE SET "
		"received_milli = s.received_milli + excluded.received_milli, "
		"remaining_milli = s.remaining_milli + excluded.remaining_milli, "
		"unit_cost_cents = coalesce(s.unit_cost_cents, excluded.unit_cost_cents), "
		"last_received_at = excluded.last_received_at "
		"WHERE s.expiry_date IS NOT DISTINCT FROM excluded.expiry_date RETURNING 1), "
		"i AS (UPDATE inventory_items SET stock_milli = stock_milli + $9::bigint, "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM b) "
		"RETURNING tenant_id, id, stock_milli) "
		"INSERT INTO stock_movements (tenant_id, item_id, partition, \"offset\", line, "
		"event_id, seq, kind, batch_number, delta_milli, balance_milli, actor, "
		"supplier_invoice, at) "
		"SELECT i.tenant_id, i.id, e.partition, e.\"offset\", 0, $5::uuid, $3::integer, "
		"'receipt', $6, $9::bigint, i.stock_milli, $12, $11, $4::timestamptz "
		"FROM i " EVENT_POSITION("$5"),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("batch_number"),
		    PJ_TEXT("lot_number"), PJ_TEXT("expiry_date"), PJ_INT("quantity_milli"),
		    PJ_INT("unit_cost_cents"), PJ_TEXT("supplier_invoice"), PJ_ACTOR},
	 .not_applied = "inventory item not found in the read model, or a known batch "
			"received with another expiry date"},
	/* Each allocation is a movement (line = its index); its balance is the
	 * item's total before the event minus the allocations up to it. */
	{.type = VP_EV_STOCK_DISPENSED,
	 .stmt = "stock_dispensed",
	 .sql = "WITH a AS (SELECT x.line::integer AS line, x.value->>'batch_number' AS batch_number, "
		"(x.value->>'quantity_milli')::bigint AS q "
		"FROM jsonb_array_elements($6::jsonb) WITH ORDINALITY AS x(value, line)), "
		"per_batch AS (SELECT batch_number, sum(q) AS q FROM a GROUP BY batch_number), "
		"b AS (UPDATE stock_batches s SET remaining_milli = s.remaining_milli - p.q "
		"FROM per_batch p WHERE s.tenant_id = $1::uuid AND s.item_id = $2::uuid "
		"AND s.batch_number = p.batch_number RETURNING 1), "
		"i AS (UPDATE inventory_items SET stock_milli = stock_milli - (SELECT sum(q) FROM a), "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid "
		"AND (SELECT count(*) FROM b) = (SELECT count(*) FROM per_batch) "
		"RETURNING tenant_id, id, stock_milli) "
		"INSERT INTO stock_movements (tenant_id, item_id, partition, \"offset\", line, "
		"event_id, seq, kind, batch_number, delta_milli, balance_milli, actor, witness_id, "
		"patient_id, prescription_id, invoice_id, at) "
		"SELECT i.tenant_id, i.id, e.partition, e.\"offset\", a.line, $5::uuid, $3::integer, "
		"'dispense', a.batch_number, -a.q, "
		"i.stock_milli + (SELECT sum(q) FROM a) - sum(a.q) OVER (ORDER BY a.line), "
		"$11, $10::uuid, $8::uuid, $7::uuid, $9::uuid, $4::timestamptz "
		"FROM i CROSS JOIN a " EVENT_POSITION("$5"),
	 .not_applied = NO_BATCH,
	 .apply = dispense},
	{.type = VP_EV_STOCK_ADJUSTED,
	 .stmt = "stock_adjusted",
	 .sql = "WITH b AS (UPDATE stock_batches SET remaining_milli = remaining_milli + $7::bigint "
		"WHERE tenant_id = $1::uuid AND item_id = $2::uuid AND batch_number = $6 "
		"RETURNING 1), "
		"i AS (UPDATE inventory_items SET stock_milli = stock_milli + $7::bigint, "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM b) "
		"RETURNING tenant_id, id, stock_milli) "
		"INSERT INTO stock_movements (tenant_id, item_id, partition, \"offset\", line, "
		"event_id, seq, kind, batch_number, delta_milli, balance_milli, actor, witness_id, "
		"reason, at) "
		"SELECT i.tenant_id, i.id, e.partition, e.\"offset\", 0, $5::uuid, $3::integer, "
		"'adjustment', $6, $7::bigint, i.stock_milli, $10, $9::uuid, $8, $4::timestamptz "
		"FROM i " EVENT_POSITION("$5"),
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_EVENT_ID, PJ_TEXT("batch_number"),
		    PJ_INT("delta_milli"), PJ_TEXT("reason"), PJ_TEXT("witness_id"), PJ_ACTOR},
	 .not_applied = NO_BATCH},
	{.type = NULL},
};
