/* Inventory commands (DOMAIN.md § Stock): items, receipts into batches,
 * dispenses (a named batch, or FEFO over the batches not expired on the
 * tenant's local today), adjustments. Quantities are decimals with at most
 * three places carried as integer thousandths; stock never goes below zero.
 * Every rule reads the write model, which the loop thread updates with a
 * command's events before it decides the next command, so concurrent
 * dispenses of the last units cannot both pass. */
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool present(const cJSON *body, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	return v && !cJSON_IsNull(v);
}

/* body[name], if present, as thousandths within [min, +max]; a detail when
 * it has more than three places or lies outside. */
static void check_milli(const cJSON *body, const char *name, int64_t min, VpError *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	int64_t milli;
	if (!v || cJSON_IsNull(v) || !cJSON_IsNumber(v))
		return;
	if (wr_decimal_milli(v, &milli) < 0)
		vp_error_add_detail(err, name,
				    "must have at most three decimals and be at most %lld",
				    VP_MAX_QUANTITY_MILLI / 1000);
	else if (milli < min)
		vp_error_add_detail(err, name, "must be %s",
				    min > 0 ? "greater than 0" : "at least 0");
}

/* A checked decimal field as thousandths (0 when absent). */
static int64_t body_milli(const cJSON *body, const char *name)
{
	int64_t milli = 0;
	if (wr_decimal_milli(cJSON_GetObjectItemCaseSensitive(body, name), &milli) < 0)
		return 0;
	return milli;
}

static void add_milli_or_null(cJSON *data, const char *name, const cJSON *body, const char *field)
{
	if (present(body, field))
		cJSON_AddNumberToObject(data, name, (double)body_milli(body, field));
	else
		cJSON_AddNullToObject(data, name);
}

static void begin_event(WrDecision *d, const char *type, int64_t seq)
{
	d->aggregate = VP_AGG_INVENTORY_ITEM;
	d->type = type;
	d->seq = seq;
	d->data = cJSON_CreateObject();
}

/* The command's item: exists (404), If-Match (412), and when `active`, not
 * deactivated (ITEM_INACTIVE). NULL with err set otherwise. */
static const WrItem *target_item(const WrDecision *d, bool active, VpError *err)
{
	const WrItem *it = wr_map_get(&d->tenant->items, d->target_id);
	if (!it) {
		wr_not_found(err, "inventory item", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, it->version, err) < 0)
		return NULL;
	if (active && !it->active) {
		vp_error_set(err, 409, "ITEM_INACTIVE", "inventory item %s is inactive",
			     d->target_id);
		return NULL;
	}
	return it;
}

/* ---- CreateInventoryItem, UpdateInventoryItem, DeactivateInventoryItem ---- */

static void validate_item(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	check_milli(body, "reorder_point", 0, err);
	check_milli(body, "reorder_quantity", 0, err);
}

static void copy_item_fields(WrDecision *d, bool all)
{
	static const char *const copied[] = {"name", "category", "unit", "sale_price_cents",
					     "tax_rate_bp"};
	for (size_t i = 0; i < N(copied); i++)
		if (all || cJSON_GetObjectItemCaseSensitive(d->body, copied[i]))
			wr_copy_field(d->data, d->body, copied[i]);
	if (all || cJSON_GetObjectItemCaseSensitive(d->body, "reorder_point"))
		add_milli_or_null(d->data, "reorder_point_milli", d->body, "reorder_point");
	if (all || cJSON_GetObjectItemCaseSensitive(d->body, "reorder_quantity"))
		add_milli_or_null(d->data, "reorder_quantity_milli", d->body, "reorder_quantity");
}

static int decide_create(WrDecision *d, VpError *err)
{
	const char *code = vp_json_str(d->body, "code");
	if (wr_map_get(&d->tenant->items, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "inventory item %s already exists",
				    d->target_id);
	if (wr_map_get(&d->tenant->item_codes, code))
		return vp_error_set(err, 409, "DUPLICATE_ITEM_CODE",
				    "an inventory item with code %s exists", code);
	begin_event(d, VP_EV_INVENTORY_ITEM_CREATED, 1);
	wr_copy_field(d->data, d->body, "code");
	copy_item_fields(d, true);
	cJSON_AddBoolToObject(
	    d->data, "controlled",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d->body, "controlled")));
	cJSON_AddBoolToObject(
	    d->data, "requires_prescription",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d->body, "requires_prescription")));
	return 0;
}

/* Null clears an optional field; the required ones cannot be cleared. */
static void validate_update(const cJSON *body, int64_t now_us, VpError *err)
{
	static const char *const required[] = {"name", "category", "unit", "requires_prescription"};
	static const char *const changeable[] = {"name",
						 "category",
						 "unit",
						 "requires_prescription",
						 "reorder_point",
						 "reorder_quantity",
						 "sale_price_cents",
						 "tax_rate_bp"};
	bool any = false;
	validate_item(body, now_us, err);
	for (size_t i = 0; i < N(required); i++)
		if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, required[i])))
			vp_error_add_detail(err, required[i], "cannot be cleared");
	for (size_t i = 0; i < N(changeable); i++)
		any = any || cJSON_GetObjectItemCaseSensitive(body, changeable[i]);
	if (!any)
		vp_error_add_detail(err, "body", "must change at least one field");
}

static int decide_update(WrDecision *d, VpError *err)
{
	const WrItem *it = target_item(d, true, err);
	if (!it)
		return -1;
	begin_event(d, VP_EV_INVENTORY_ITEM_UPDATED, it->version + 1);
	copy_item_fields(d, false);
	if (cJSON_GetObjectItemCaseSensitive(d->body, "requires_prescription"))
		wr_copy_field(d->data, d->body, "requires_prescription");
	return 0;
}

static int decide_deactivate(WrDecision *d, VpError *err)
{
	const WrItem *it = target_item(d, false, err);
	if (!it)
		return -1;
	if (!it->active)
		return vp_error_set(err, 409, "INVALID_STATE",
				    "inventory item %s is already inactive", d->target_id);
	begin_event(d, VP_EV_INVENTORY_ITEM_DEACTIVATED, it->version + 1);
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* ---- ReceiveStock ---- */

static void validate_receipt(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *text = vp_json_str(body, "expiry_date");
	int32_t days;
	check_milli(body, "quantity", 1, err);
	/* the tenant-local bound is checked in decide; no zone is behind UTC-12 */
	if (text && vp_date_parse(text, strlen(text), &days) == 0 &&
	    days < vp_date_from_us(now_us) - 1)
		vp_error_add_detail(err, "expiry_date", "must not be in the past");
}

static int decide_receipt(WrDecision *d, VpError *err)
{
	const WrItem *it = target_item(d, true, err);
	const char *number = vp_json_str(d->body, "batch_number");
	const char *text = vp_json_str(d->body, "expiry_date");
	int32_t expiry = WR_NO_EXPIRY;
	if (!it)
		return -1;
	if (text && vp_date_parse(text, strlen(text), &expiry) == 0 &&
	    expiry < wr_tenant_today(d)) {
		vp_error_add_detail(err, "expiry_date",
				    "must not be before the clinic's local date");
		vp_error_finish_validation(err);
		return -1;
	}
	const WrBatch *b = wr_map_get(&it->batch_index, number);
	if (b && b->expiry != expiry)
		return vp_error_set(err, 409, "BATCH_CONFLICT",
				    "batch %s of item %s has another expiry date", number,
				    d->target_id);
	begin_event(d, VP_EV_STOCK_RECEIVED, it->version + 1);
	wr_copy_field(d->data, d->body, "batch_number");
	wr_copy_field(d->data, d->body, "lot_number");
	wr_copy_field(d->data, d->body, "expiry_date");
	cJSON_AddNumberToObject(d->data, "quantity_milli", (double)body_milli(d->body, "quantity"));
	wr_copy_field(d->data, d->body, "unit_cost_cents");
	wr_copy_field(d->data, d->body, "supplier_invoice");
	return 0;
}

/* ---- witnesses, prescriptions ---- */

/* witness_id: an active vet or nurse of the tenant other than the actor;
 * required when `needed`. WITNESS_REQUIRED otherwise (404 for an unknown id). */
static int check_witness(const WrDecision *d, bool needed, VpError *err)
{
	const char *id = vp_json_str(d->body, "witness_id");
	if (!id)
		return needed ? vp_error_set(err, 409, "WITNESS_REQUIRED",
					     "a controlled item needs a witness_id")
			      : 0;
	const WrStaff *st = wr_map_get(&d->tenant->staff, id);
	if (!st)
		return wr_not_found(err, "staff", id);
	if (!st->active || (strcmp(st->role, VP_STAFF_ROLE_VET) && strcmp(st->role, "nurse")))
		return vp_error_set(err, 409, "WITNESS_REQUIRED",
				    "witness %s must be an active veterinarian or nurse", id);
	if (d->actor && !strcasecmp(d->actor, id))
		return vp_error_set(err, 409, "WITNESS_REQUIRED",
				    "the witness must be someone other than the actor");
	return 0;
}

/* prescription_id (required when the item requires one): of the tenant, for
 * this item or none, with room for quantity_milli more. */
static const WrPrescription *check_prescription(const WrDecision *d, const WrItem *it,
						int64_t quantity_milli, VpError *err)
{
	const char *id = vp_json_str(d->body, "prescription_id");
	if (!id) {
		if (it->requires_prescription)
			vp_error_set(err, 409, "PRESCRIPTION_REQUIRED",
				     "inventory item %s requires a prescription_id", d->target_id);
		return NULL;
	}
	const WrPrescription *p = wr_map_get(&d->tenant->prescriptions, id);
	if (!p) {
		wr_not_found(err, "prescription", id);
		return NULL;
	}
	if (p->item_id[0] && strcmp(p->item_id, d->target_id) != 0) {
		vp_error_add_detail(err, "prescription_id", "prescribes another item");
		vp_error_finish_validation(err);
		return NULL;
	}
	/* a prescription without a quantity authorises no dispense */
	if (p->dispensed_milli + quantity_milli > p->quantity_milli * (1 + p->refills)) {
		vp_error_set(err, 409, "PRESCRIPTION_EXHAUSTED",
			     "prescription %s allows %lld thousandths in all, %lld dispensed", id,
			     (long long)(p->quantity_milli * (1 + p->refills)),
			     (long long)p->dispensed_milli);
		return NULL;
	}
	return p;
}

/* patient_id as given (a patient of the tenant, the prescription's when both
 * are given), else the prescription's, else null. */
static int dispense_patient(WrDecision *d, const WrPrescription *p, VpError *err)
{
	const char *id = vp_json_str(d->body, "patient_id");
	if (id && !wr_map_get(&d->tenant->patients, id))
		return wr_not_found(err, "patient", id);
	if (id && p && strcmp(id, p->patient_id) != 0) {
		vp_error_add_detail(err, "patient_id", "is not the prescription's patient");
		vp_error_finish_validation(err);
		return -1;
	}
	if (!id && p)
		id = p->patient_id;
	if (id)
		cJSON_AddStringToObject(d->data, "patient_id", id);
	else
		cJSON_AddNullToObject(d->data, "patient_id");
	return 0;
}

/* ---- DispenseStock ---- */

static void validate_dispense(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	check_milli(body, "quantity", 1, err);
}

static int short_stock(VpError *err, const char *what, int64_t have, int64_t want)
{
	return vp_error_set(err, 409, "INSUFFICIENT_STOCK", "%s holds %lld thousandths, %lld asked",
			    what, (long long)have, (long long)want);
}

static int add_allocation(cJSON *allocations, const char *number, int64_t quantity_milli)
{
	cJSON *a = cJSON_CreateObject();
	if (!a || !cJSON_AddItemToArray(allocations, a)) {
		cJSON_Delete(a);
		return -1;
	}
	cJSON_AddStringToObject(a, "batch_number", number);
	cJSON_AddNumberToObject(a, "quantity_milli", (double)quantity_milli);
	return 0;
}

/* The named batch alone. */
static int allocate_named(const WrDecision *d, const WrItem *it, int64_t want, cJSON *allocations,
			  VpError *err)
{
	const char *number = vp_json_str(d->body, "batch_number");
	const WrBatch *b = wr_map_get(&it->batch_index, number);
	if (!b)
		return wr_not_found(err, "batch", number);
	if (b->expiry < wr_tenant_today(d))
		return vp_error_set(err, 409, "BATCH_EXPIRED", "batch %s expired", number);
	if (b->remaining_milli < want)
		return short_stock(err, "the batch", b->remaining_milli, want);
	return add_allocation(allocations, number, want);
}

static int allocate_fefo(const WrDecision *d, const WrItem *it, int64_t want, cJSON *allocations,
			 VpError *err)
{
	static WrAllocation alloc[VP_MAX_ALLOCATIONS]; /* loop thread only */
	int32_t day = wr_tenant_today(d);
	long n = wr_item_fefo(it, day, want, alloc, N(alloc));
	if (n == -2) {
		/* one event lists at most VP_MAX_ALLOCATIONS batches (the catalog) */
		vp_error_add_detail(err, "quantity",
				    "spans more than %d batches: dispense in parts",
				    VP_MAX_ALLOCATIONS);
		vp_error_finish_validation(err);
		return -1;
	}
	if (n < 0)
		return short_stock(err, "the unexpired stock", wr_item_on_hand(it, day), want);
	for (long i = 0; i < n; i++)
		if (add_allocation(allocations, alloc[i].batch->number, alloc[i].quantity_milli) <
		    0)
			return -1;
	return 0;
}

static int decide_dispense(WrDecision *d, VpError *err)
{
	const WrItem *it = target_item(d, true, err);
	int64_t want = body_milli(d->body, "quantity");
	const char *invoice_id = vp_json_str(d->body, "invoice_id");
	const WrPrescription *p;
	if (!it || check_witness(d, it->controlled, err) < 0)
		return -1;
	if (invoice_id && !wr_map_get(&d->tenant->invoices, invoice_id))
		return wr_not_found(err, "invoice", invoice_id);
	p = check_prescription(d, it, want, err);
	if (err->status)
		return -1;
	begin_event(d, VP_EV_STOCK_DISPENSED, it->version + 1);
	cJSON *allocations = cJSON_AddArrayToObject(d->data, "allocations");
	if (!allocations)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	int rc = present(d->body, "batch_number") ? allocate_named(d, it, want, allocations, err)
						  : allocate_fefo(d, it, want, allocations, err);
	if (rc < 0)
		return err->status ? -1 : vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	wr_copy_field(d->data, d->body, "prescription_id");
	if (dispense_patient(d, p, err) < 0)
		return -1;
	wr_copy_field(d->data, d->body, "invoice_id");
	wr_copy_field(d->data, d->body, "witness_id");
	return 0;
}

/* ---- AdjustStock ---- */

/* count carries counted_quantity (≥ 0), the other reasons a non-zero delta. */
static void validate_adjustment(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *reason = vp_json_str(body, "reason");
	bool count = reason && !strcmp(reason, "count");
	(void)now_us;
	check_milli(body, "counted_quantity", 0, err);
	check_milli(body, "delta", -VP_MAX_QUANTITY_MILLI, err);
	if (!reason)
		return;
	if (count && !present(body, "counted_quantity"))
		vp_error_add_detail(err, "counted_quantity", "is required when reason is count");
	if (count && present(body, "delta"))
		vp_error_add_detail(err, "delta", "is computed by the writer when reason is count");
	if (!count && !present(body, "delta"))
		vp_error_add_detail(err, "delta", "is required unless reason is count");
	if (!count && present(body, "counted_quantity"))
		vp_error_add_detail(err, "counted_quantity", "is only for reason count");
	if (!count && present(body, "delta") && body_milli(body, "delta") == 0 &&
	    cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(body, "delta")))
		vp_error_add_detail(err, "delta", "must not be 0");
}

static int decide_adjustment(WrDecision *d, VpError *err)
{
	const WrItem *it = target_item(d, false, err);
	const char *number = vp_json_str(d->body, "batch_number");
	if (!it)
		return -1;
	const WrBatch *b = wr_map_get(&it->batch_index, number);
	if (!b)
		return wr_not_found(err, "batch", number);
	int64_t delta = present(d->body, "counted_quantity")
			    ? body_milli(d->body, "counted_quantity") - b->remaining_milli
			    : body_milli(d->body, "delta");
	if (b->remaining_milli + delta < 0)
		return short_stock(err, "the batch", b->remaining_milli, -delta);
	if (delta < -VP_MAX_QUANTITY_MILLI) {
		/* a count far below a batch that many receipts filled: one event
		 * carries at most the catalog's bound */
		vp_error_add_detail(err, "counted_quantity",
				    "differs from the stock by more than %lld",
				    VP_MAX_QUANTITY_MILLI / 1000);
		vp_error_finish_validation(err);
		return -1;
	}
	if (check_witness(d, it->controlled && delta < 0, err) < 0)
		return -1;
	begin_event(d, VP_EV_STOCK_ADJUSTED, it->version + 1);
	wr_copy_field(d->data, d->body, "batch_number");
	cJSON_AddNumberToObject(d->data, "delta_milli", (double)delta);
	wr_copy_field(d->data, d->body, "reason");
	wr_copy_field(d->data, d->body, "witness_id");
	return 0;
}

/* ---- the table ---- */

#define CMD_ID VP_F_COMMAND_ID
#define DECIMAL(n, req)                                                                            \
	{                                                                                          \
		.name = n, .type = VP_JSON_NUMBER, .required = req                                 \
	}
static const VpJsonField create_fields[] = {
    VP_F_ITEM_CODE,
    VP_F_ITEM_NAME,
    VP_F_ITEM_CATEGORY,
    VP_F_ITEM_UNIT,
    VP_F_CONTROLLED,
    VP_F_REQUIRES_PRESCRIPTION,
    DECIMAL("reorder_point", false),
    DECIMAL("reorder_quantity", false),
    VP_F_SALE_PRICE_CENTS,
    VP_F_TAX_RATE_BP,
    {.name = "id", .type = VP_JSON_UUID},
    CMD_ID,
};
static const VpJsonField update_fields[] = {
    VP_TEXT("name", 200),
    VP_ENUM("category", false, vp_enum_item_categories),
    VP_TEXT("unit", 20),
    VP_F_REQUIRES_PRESCRIPTION,
    DECIMAL("reorder_point", false),
    DECIMAL("reorder_quantity", false),
    VP_F_SALE_PRICE_CENTS,
    VP_F_TAX_RATE_BP,
    CMD_ID,
};
static const VpJsonField deactivate_fields[] = {VP_F_REASON, CMD_ID};
static const VpJsonField receipt_fields[] = {
    VP_F_BATCH_NUMBER,	  DECIMAL("quantity", true), VP_F_EXPIRY_DATE, VP_F_LOT_NUMBER,
    VP_F_UNIT_COST_CENTS, VP_F_SUPPLIER_INVOICE,     CMD_ID,
};
static const VpJsonField dispense_fields[] = {
    DECIMAL("quantity", true),
    VP_TEXT("batch_number", 50),
    VP_F_PRESCRIPTION_ID,
    VP_TYPED("patient_id", VP_JSON_UUID, false),
    VP_TYPED("invoice_id", VP_JSON_UUID, false),
    VP_F_WITNESS_ID,
    CMD_ID,
};
static const VpJsonField adjustment_fields[] = {
    VP_F_BATCH_NUMBER,	     VP_F_ADJUSTMENT_REASON,
    DECIMAL("delta", false), DECIMAL("counted_quantity", false),
    VP_F_WITNESS_ID,	     CMD_ID,
};

#define ITEM  "/v1/inventory/items/{id}"
#define ADMIN VP_ROLE_ADMIN
const WrCommand wr_stock_commands[] = {
    {"CreateInventoryItem", EVHTTP_REQ_POST, "/v1/inventory/items", ADMIN, create_fields,
     N(create_fields), true, "/v1/inventory/items/", validate_item, decide_create},
    {"UpdateInventoryItem", EVHTTP_REQ_PATCH, ITEM, ADMIN, update_fields, N(update_fields), false,
     NULL, validate_update, decide_update},
    {"DeactivateInventoryItem", EVHTTP_REQ_POST, ITEM "/deactivate", ADMIN, deactivate_fields,
     N(deactivate_fields), false, NULL, NULL, decide_deactivate},
    {"ReceiveStock", EVHTTP_REQ_POST, ITEM "/receipts", ADMIN | VP_ROLE_NURSE, receipt_fields,
     N(receipt_fields), false, NULL, validate_receipt, decide_receipt},
    {"DispenseStock", EVHTTP_REQ_POST, ITEM "/dispenses", VP_ROLE_VET | VP_ROLE_NURSE,
     dispense_fields, N(dispense_fields), false, NULL, validate_dispense, decide_dispense},
    {"AdjustStock", EVHTTP_REQ_POST, ITEM "/adjustments", ADMIN, adjustment_fields,
     N(adjustment_fields), false, NULL, validate_adjustment, decide_adjustment},
};
const size_t wr_n_stock_commands = N(wr_stock_commands);
