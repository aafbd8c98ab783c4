/* Billing commands (docs/billing.md): invoices with their lines, the issue
 * (a gapless number, and the lines' items dispensed FEFO in the same
 * transaction), payments, refunds and voids. Amounts are integers in the
 * minor unit, a line's arithmetic is vp_line_amounts' (half to even), and
 * every rule reads the write model, which the loop thread updates with a
 * command's events before it decides the next: two issues never take one
 * number, two payments never both pass the balance. */
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_money.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define N(a)		    (sizeof(a) / sizeof((a)[0]))
#define DEFAULT_DUE_IN_DAYS 30
/* How far back an issue may be dated (an invoice written on paper during an
 * outage, entered later). */
#define MAX_BACKDATE_DAYS 365

/* body[name] (checked by the field table), or fallback when absent or null. */
static int64_t body_int(const cJSON *body, const char *name, int64_t fallback)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : fallback;
}

static void add_date(cJSON *data, const char *name, int32_t days)
{
	char text[16] = "";
	vp_date_format(days, text, sizeof(text));
	cJSON_AddStringToObject(data, name, text);
}

static void add_str_or_null(cJSON *data, const char *name, const char *value)
{
	if (value)
		cJSON_AddStringToObject(data, name, value);
	else
		cJSON_AddNullToObject(data, name);
}

static int begin_event(WrDecision *d, const char *type, int64_t seq, VpError *err)
{
	d->aggregate = VP_AGG_INVOICE;
	d->type = type;
	d->seq = seq;
	d->data = cJSON_CreateObject();
	return d->data ? 0 : vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
}

/* The id the client chose in body[name], or a fresh UUIDv7. */
static void chosen_or_new_id(const cJSON *body, const char *name, char out[37])
{
	const char *given = vp_json_str(body, name);
	VpUuid u;
	if (given) {
		snprintf(out, 37, "%s", given);
		return;
	}
	vp_uuid_v7(&u);
	vp_uuid_format(&u, out);
}

static int invalid_state(VpError *err, const char *id, const char *what)
{
	return vp_error_set(err, 409, "INVALID_STATE", "invoice %s %s", id, what);
}

static int field_error(VpError *err, const char *field, const char *message)
{
	vp_error_add_detail(err, field, "%s", message);
	vp_error_finish_validation(err);
	return -1;
}

/* The command's invoice: exists (404) and If-Match (412); NULL with err set
 * otherwise. */
static const WrInvoice *target_invoice(const WrDecision *d, VpError *err)
{
	const WrInvoice *inv = wr_map_get(&d->tenant->invoices, d->target_id);
	if (!inv) {
		wr_not_found(err, "invoice", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, inv->version, err) < 0)
		return NULL;
	return inv;
}

static const WrInvoice *draft_invoice(const WrDecision *d, VpError *err)
{
	const WrInvoice *inv = target_invoice(d, err);
	if (inv && inv->status != WR_INVOICE_DRAFT) {
		invalid_state(err, d->target_id, "is no longer a draft");
		return NULL;
	}
	return inv;
}

/* ---- CreateInvoice ---- */

static int decide_create(WrDecision *d, VpError *err)
{
	const char *client_id = vp_json_str(d->body, "client_id");
	const char *appointment_id = vp_json_str(d->body, "appointment_id");
	const WrClient *c = wr_map_get(&d->tenant->clients, client_id);
	if (!c)
		return wr_not_found(err, "client", client_id);
	if (!c->active)
		return vp_error_set(err, 409, "CLIENT_INACTIVE", "client %s is inactive",
				    client_id);
	if (appointment_id) {
		const WrAppointment *a = wr_map_get(&d->tenant->appointments, appointment_id);
		if (!a)
			return wr_not_found(err, "appointment", appointment_id);
		const WrPatient *p = wr_map_get(&d->tenant->patients, a->patient_id);
		if (!p || strcmp(p->client_id, client_id) != 0)
			return field_error(err, "appointment_id",
					   "is of a patient the client does not own");
		if (wr_map_get(&d->tenant->appointment_invoices, appointment_id))
			return vp_error_set(err, 409, "ALREADY_EXISTS",
					    "appointment %s already has an invoice",
					    appointment_id);
	}
	if (wr_map_get(&d->tenant->invoices, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "invoice %s already exists",
				    d->target_id);
	if (begin_event(d, VP_EV_INVOICE_CREATED, 1, err) < 0)
		return -1;
	wr_copy_field(d->data, d->body, "client_id");
	wr_copy_field(d->data, d->body, "appointment_id");
	return 0;
}

/* ---- AddInvoiceLine ---- */

/* quantity: > 0, at most VP_MAX_LINE_QUANTITY_MILLI thousandths, three places. */
static void validate_line(const cJSON *body, int64_t now_us, VpError *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "quantity");
	int64_t milli;
	(void)now_us;
	if (!cJSON_IsNumber(v))
		return;
	if (wr_decimal_milli(v, &milli) < 0 || milli > VP_MAX_LINE_QUANTITY_MILLI)
		vp_error_add_detail(err, "quantity",
				    "must have at most three decimals and be at most %lld",
				    VP_MAX_LINE_QUANTITY_MILLI / 1000);
	else if (milli <= 0)
		vp_error_add_detail(err, "quantity", "must be greater than 0");
}

/* The line's item: exists (404), active, and neither controlled nor on
 * prescription (those are dispensed with their checks, then billed without
 * item_id). NULL with err set otherwise. */
static const WrItem *line_item(const WrDecision *d, const char *item_id, VpError *err)
{
	const WrItem *it = wr_map_get(&d->tenant->items, item_id);
	if (!it) {
		wr_not_found(err, "inventory item", item_id);
		return NULL;
	}
	if (!it->active)
		vp_error_set(err, 409, "ITEM_INACTIVE", "inventory item %s is inactive", item_id);
	else if (it->controlled)
		vp_error_set(err, 409, "WITNESS_REQUIRED",
			     "inventory item %s is controlled: dispense it with a witness and "
			     "bill a line without item_id",
			     item_id);
	else if (it->requires_prescription)
		vp_error_set(err, 409, "PRESCRIPTION_REQUIRED",
			     "inventory item %s requires a prescription: dispense it against one "
			     "and bill a line without item_id",
			     item_id);
	return err->status ? NULL : it;
}

static int decide_add_line(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = draft_invoice(d, err);
	const char *item_id = vp_json_str(d->body, "item_id");
	const WrItem *it = NULL;
	char line_id[37];
	int64_t quantity = 0;
	VpLineAmounts a;
	if (!inv)
		return -1;
	if (inv->n_lines >= VP_MAX_INVOICE_LINES)
		return invalid_state(err, d->target_id,
				     "already holds the most lines an invoice may");
	chosen_or_new_id(d->body, "line_id", line_id);
	if (wr_invoice_line(inv, line_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "invoice %s already has line %s",
				    d->target_id, line_id);
	if (item_id && !(it = line_item(d, item_id, err)))
		return -1;
	int64_t price =
	    body_int(d->body, "unit_price_cents", it ? it->sale_price_cents : WR_NO_PRICE);
	int64_t tax = body_int(d->body, "tax_rate_bp",
			       it && it->tax_rate_bp != WR_NO_PRICE ? it->tax_rate_bp : 0);
	int64_t discount = body_int(d->body, "discount_bp", 0);
	if (price == WR_NO_PRICE)
		return field_error(err, "unit_price_cents",
				   it ? "is required: the item has no sale price"
				      : "is required for a line without item_id");
	if (price > VP_MAX_UNIT_PRICE_CENTS)
		return field_error(err, "unit_price_cents",
				   "is required: the item's sale price exceeds a line's maximum");
	wr_decimal_milli(cJSON_GetObjectItemCaseSensitive(d->body, "quantity"), &quantity);
	vp_line_amounts(quantity, price, discount, tax, &a);
	if (a.line_total_cents > VP_MAX_CENTS - inv->total_cents)
		return field_error(err, "quantity", "takes the invoice's total above its maximum");
	if (begin_event(d, VP_EV_INVOICE_LINE_ADDED, inv->version + 1, err) < 0)
		return -1;
	cJSON_AddStringToObject(d->data, "line_id", line_id);
	wr_copy_field(d->data, d->body, "description");
	cJSON_AddNumberToObject(d->data, "quantity_milli", (double)quantity);
	cJSON_AddNumberToObject(d->data, "unit_price_cents", (double)price);
	cJSON_AddNumberToObject(d->data, "discount_bp", (double)discount);
	cJSON_AddNumberToObject(d->data, "tax_rate_bp", (double)tax);
	cJSON_AddNumberToObject(d->data, "net_cents", (double)a.net_cents);
	cJSON_AddNumberToObject(d->data, "discount_cents", (double)a.discount_cents);
	cJSON_AddNumberToObject(d->data, "tax_cents", (double)a.tax_cents);
	cJSON_AddNumberToObject(d->data, "line_total_cents", (double)a.line_total_cents);
	add_str_or_null(d->data, "item_id", item_id);
	return 0;
}

/* ---- RemoveInvoiceLine ---- */

static int decide_remove_line(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = draft_invoice(d, err);
	if (!inv)
		return -1;
	if (!wr_invoice_line(inv, d->item_id))
		return wr_not_found(err, "invoice line", d->item_id ? d->item_id : "");
	if (begin_event(d, VP_EV_INVOICE_LINE_REMOVED, inv->version + 1, err) < 0)
		return -1;
	cJSON_AddStringToObject(d->data, "line_id", d->item_id);
	return 0;
}

/* ---- IssueInvoice ---- */

/* witness_id, when given: an active vet or nurse of the tenant other than
 * the actor (404 for an unknown id, WITNESS_REQUIRED otherwise). */
static int check_witness(const WrDecision *d, VpError *err)
{
	const char *id = vp_json_str(d->body, "witness_id");
	if (!id)
		return 0;
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

/* Every item line's item may still be sold: active (ITEM_INACTIVE) and not on
 * prescription (PRESCRIPTION_REQUIRED), in line order. */
static int check_line_items(const WrDecision *d, const WrInvoice *inv, VpError *err)
{
	for (size_t i = 0; i < inv->n_lines; i++) {
		const char *item_id = inv->lines[i].item_id;
		if (!item_id[0])
			continue;
		const WrItem *it = wr_map_get(&d->tenant->items, item_id);
		if (!it)
			return wr_not_found(err, "inventory item", item_id);
		if (!it->active)
			return vp_error_set(err, 409, "ITEM_INACTIVE",
					    "inventory item %s of line %s is inactive", item_id,
					    inv->lines[i].id);
		if (it->requires_prescription)
			return vp_error_set(err, 409, "PRESCRIPTION_REQUIRED",
					    "inventory item %s of line %s now requires a "
					    "prescription: dispense it against one",
					    item_id, inv->lines[i].id);
		if (it->controlled && !vp_json_str(d->body, "witness_id"))
			return vp_error_set(err, 409, "WITNESS_REQUIRED",
					    "inventory item %s of line %s is controlled", item_id,
					    inv->lines[i].id);
	}
	return 0;
}

/* FEFO of `want` into alloc; 0, or -1 with err set (short stock, or more
 * batches than one event lists). */
static int fefo(const WrItem *it, const char *item_id, int32_t day, int64_t want,
		WrAllocation *alloc, long *n, VpError *err)
{
	*n = want > 0 ? wr_item_fefo(it, day, want, alloc, VP_MAX_ALLOCATIONS) : 0;
	if (*n == -2)
		return field_error(err, "lines",
				   "an item spans more batches than one dispense "
				   "lists: dispense it in parts");
	if (*n < 0)
		return vp_error_set(
		    err, 409, "INSUFFICIENT_STOCK",
		    "inventory item %s holds %lld thousandths unexpired, %lld asked", item_id,
		    (long long)wr_item_on_hand(it, day), (long long)want);
	return 0;
}

/* The allocations of line i: the next units of its item after the earlier
 * lines of the same item, i.e. FEFO(through line i) − FEFO(before line i),
 * batch by batch (FEFO fills a prefix, so the two share their batches up to
 * the shorter one's last). */
static cJSON *line_allocations(const WrDecision *d, const WrInvoice *inv, size_t i, int32_t day,
			       VpError *err)
{
	static WrAllocation before[VP_MAX_ALLOCATIONS], through[VP_MAX_ALLOCATIONS]; /* loop */
	const WrInvoiceLine *line = &inv->lines[i];
	const WrItem *it = wr_map_get(&d->tenant->items, line->item_id);
	int64_t earlier = 0;
	long n_before, n_through;
	for (size_t j = 0; j < i; j++)
		if (!strcmp(inv->lines[j].item_id, line->item_id))
			earlier += inv->lines[j].quantity_milli;
	if (fefo(it, line->item_id, day, earlier, before, &n_before, err) < 0 ||
	    fefo(it, line->item_id, day, earlier + line->quantity_milli, through, &n_through, err) <
		0)
		return NULL;
	cJSON *allocations = cJSON_CreateArray();
	for (long k = 0; allocations && k < n_through; k++) {
		int64_t q = through[k].quantity_milli;
		if (k < n_before && before[k].batch == through[k].batch)
			q -= before[k].quantity_milli;
		if (q <= 0)
			continue;
		cJSON *a = cJSON_CreateObject();
		if (!a || !cJSON_AddItemToArray(allocations, a)) {
			cJSON_Delete(a);
			cJSON_Delete(allocations);
			return NULL;
		}
		/* never a dispense that lists less than it takes: none (500) */
		if (!cJSON_AddStringToObject(a, "batch_number", through[k].batch->number) ||
		    !cJSON_AddNumberToObject(a, "quantity_milli", (double)q)) {
			cJSON_Delete(allocations);
			return NULL;
		}
	}
	return allocations;
}

/* One StockDispensed per item line, in line order; seq = the item's version
 * + k for its k-th line. */
static int dispense_lines(WrDecision *d, const WrInvoice *inv, VpError *err)
{
	int32_t day = wr_tenant_today(d);
	const WrAppointment *a = inv->appointment_id[0]
				     ? wr_map_get(&d->tenant->appointments, inv->appointment_id)
				     : NULL;
	for (size_t i = 0; i < inv->n_lines; i++) {
		const WrInvoiceLine *line = &inv->lines[i];
		if (!line->item_id[0])
			continue;
		const WrItem *it = wr_map_get(&d->tenant->items, line->item_id);
		int64_t k = 1;
		for (size_t j = 0; j < i; j++)
			k += !strcmp(inv->lines[j].item_id, line->item_id);
		cJSON *allocations = line_allocations(d, inv, i, day, err);
		if (!allocations)
			return err->status
				   ? -1
				   : vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
		cJSON *data = cJSON_CreateObject();
		if (!data || !cJSON_AddItemToObject(data, "allocations", allocations)) {
			cJSON_Delete(allocations);
			cJSON_Delete(data);
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
		}
		cJSON_AddNullToObject(data, "prescription_id");
		add_str_or_null(data, "patient_id", a ? a->patient_id : NULL);
		cJSON_AddStringToObject(data, "invoice_id", d->target_id);
		wr_copy_field(data, d->body, "witness_id");
		if (wr_decision_add(d, VP_AGG_INVENTORY_ITEM, line->item_id, VP_EV_STOCK_DISPENSED,
				    it->version + k, data, err) < 0)
			return -1;
	}
	return 0;
}

/* issued_on: the local today, or the date given: not after today, at most
 * MAX_BACKDATE_DAYS before it, and not before the tenant's last issue, so the
 * numbers stay in date order (400 otherwise). */
static int issue_date(const WrDecision *d, int32_t *issued_on, VpError *err)
{
	const char *given = vp_json_str(d->body, "issued_on");
	int32_t local_today = wr_tenant_today(d);
	*issued_on = local_today;
	if (!given)
		return 0;
	if (vp_date_parse(given, strlen(given), issued_on) < 0)
		return field_error(err, "issued_on", "must be a date");
	if (*issued_on > local_today)
		return field_error(err, "issued_on", "must not be after the clinic's local date");
	if (*issued_on < local_today - MAX_BACKDATE_DAYS)
		return field_error(err, "issued_on", "must be within 365 days before today");
	if (*issued_on < d->tenant->last_issued_on)
		return field_error(err, "issued_on",
				   "must not be before the last issued invoice's date (numbers "
				   "follow dates)");
	return 0;
}

static int decide_issue(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = draft_invoice(d, err);
	char number[VP_INVOICE_NUMBER_CAP];
	if (!inv)
		return -1;
	if (inv->n_lines == 0)
		return invalid_state(err, d->target_id, "has no lines to issue");
	if (check_witness(d, err) < 0 || check_line_items(d, inv, err) < 0)
		return -1;
	int32_t issued_on;
	if (issue_date(d, &issued_on, err) < 0)
		return -1;
	vp_invoice_number(d->tenant->invoices_issued + 1, number, sizeof(number));
	if (begin_event(d, VP_EV_INVOICE_ISSUED, inv->version + 1, err) < 0)
		return -1;
	cJSON_AddStringToObject(d->data, "number", number);
	add_date(d->data, "issued_on", issued_on);
	add_date(d->data, "due_on",
		 issued_on + (int32_t)body_int(d->body, "due_in_days", DEFAULT_DUE_IN_DAYS));
	cJSON_AddNumberToObject(d->data, "total_cents", (double)inv->total_cents);
	return dispense_lines(d, inv, err);
}

/* ---- RecordPayment ---- */

static int decide_payment(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = target_invoice(d, err);
	const char *received = vp_json_str(d->body, "received_on");
	int64_t amount = body_int(d->body, "amount_cents", 0);
	int32_t local_today, received_on;
	char payment_id[37];
	if (!inv)
		return -1;
	if (inv->status != WR_INVOICE_ISSUED && inv->status != WR_INVOICE_PARTIALLY_PAID)
		return invalid_state(err, d->target_id, "is not open for payment");
	if (amount > wr_invoice_balance(inv))
		return vp_error_set(err, 409, "PAYMENT_EXCEEDS_BALANCE",
				    "invoice %s has a balance of %lld, %lld offered", d->target_id,
				    (long long)wr_invoice_balance(inv), (long long)amount);
	local_today = wr_tenant_today(d);
	received_on = local_today;
	if (received && vp_date_parse(received, strlen(received), &received_on) < 0)
		return field_error(err, "received_on", "must be a date");
	if (received_on > local_today)
		return field_error(err, "received_on", "must not be after the clinic's local date");
	if (received_on < inv->issued_on)
		return field_error(err, "received_on", "must not be before the invoice's issue");
	chosen_or_new_id(d->body, "payment_id", payment_id);
	if (wr_map_get(&d->tenant->invoice_payments, payment_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "payment %s already exists",
				    payment_id);
	if (begin_event(d, VP_EV_PAYMENT_RECORDED, inv->version + 1, err) < 0)
		return -1;
	cJSON_AddStringToObject(d->data, "payment_id", payment_id);
	cJSON_AddNumberToObject(d->data, "amount_cents", (double)amount);
	wr_copy_field(d->data, d->body, "method");
	wr_copy_field(d->data, d->body, "reference");
	add_date(d->data, "received_on", received_on);
	return 0;
}

/* ---- RefundPayment ---- */

static int decide_refund(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = target_invoice(d, err);
	int64_t amount = body_int(d->body, "amount_cents", 0);
	char refund_id[37];
	if (!inv)
		return -1;
	const WrPayment *p = wr_invoice_payment(inv, d->item_id);
	if (!p)
		return wr_not_found(err, "payment", d->item_id ? d->item_id : "");
	if (amount > p->amount_cents - p->refunded_cents)
		return vp_error_set(err, 409, "REFUND_EXCEEDS_PAYMENT",
				    "payment %s has %lld left to refund, %lld asked", p->id,
				    (long long)(p->amount_cents - p->refunded_cents),
				    (long long)amount);
	chosen_or_new_id(d->body, "refund_id", refund_id);
	if (wr_map_get(&d->tenant->invoice_refunds, refund_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "refund %s already exists",
				    refund_id);
	if (begin_event(d, VP_EV_PAYMENT_REFUNDED, inv->version + 1, err) < 0)
		return -1;
	cJSON_AddStringToObject(d->data, "refund_id", refund_id);
	cJSON_AddStringToObject(d->data, "payment_id", p->id);
	cJSON_AddNumberToObject(d->data, "amount_cents", (double)amount);
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* ---- VoidInvoice ---- */

static int decide_void(WrDecision *d, VpError *err)
{
	const WrInvoice *inv = target_invoice(d, err);
	if (!inv)
		return -1;
	if (inv->status == WR_INVOICE_VOID)
		return invalid_state(err, d->target_id, "is already void");
	/* a zero total is paid at its issue with nothing paid: it voids like an
	 * unpaid issue */
	bool zero_total = inv->status == WR_INVOICE_PAID && inv->paid_cents == 0;
	if (inv->status != WR_INVOICE_DRAFT && inv->status != WR_INVOICE_ISSUED && !zero_total)
		return invalid_state(err, d->target_id,
				     "holds payments: refund them before a void");
	if (begin_event(d, VP_EV_INVOICE_VOIDED, inv->version + 1, err) < 0)
		return -1;
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* ---- the table ---- */

#define CMD_ID VP_F_COMMAND_ID
static const VpJsonField create_fields[] = {
    VP_F_CLIENT_ID,
    VP_F_APPOINTMENT_ID,
    {.name = "id", .type = VP_JSON_UUID},
    CMD_ID,
};
static const VpJsonField line_fields[] = {
    VP_F_LINE_DESCRIPTION,
    {.name = "quantity", .type = VP_JSON_NUMBER, .required = true},
    VP_F_UNIT_PRICE_CENTS,
    VP_F_TAX_RATE_BP,
    VP_F_DISCOUNT_BP,
    VP_F_ITEM_ID,
    {.name = "line_id", .type = VP_JSON_UUID},
    CMD_ID,
};
static const VpJsonField remove_line_fields[] = {CMD_ID};
static const VpJsonField issue_fields[] = {
    VP_F_DUE_IN_DAYS,
    VP_F_WITNESS_ID,
    VP_TYPED("issued_on", VP_JSON_DATE, false),
    CMD_ID,
};
static const VpJsonField payment_fields[] = {
    VP_F_AMOUNT_CENTS,
    VP_F_PAYMENT_METHOD,
    VP_F_PAYMENT_REFERENCE,
    VP_F_RECEIVED_ON,
    {.name = "payment_id", .type = VP_JSON_UUID},
    CMD_ID,
};
static const VpJsonField refund_fields[] = {
    VP_F_AMOUNT_CENTS,
    VP_F_REFUND_REASON,
    {.name = "refund_id", .type = VP_JSON_UUID},
    CMD_ID,
};
static const VpJsonField void_fields[] = {VP_F_VOID_REASON, CMD_ID};

#define INVOICE	   "/v1/invoices/{id}"
#define ADMIN	   VP_ROLE_ADMIN
#define FRONT_DESK (VP_ROLE_ADMIN | VP_ROLE_RECEPTION)
const WrCommand wr_invoice_commands[] = {
    {"CreateInvoice", EVHTTP_REQ_POST, "/v1/invoices", FRONT_DESK, create_fields, N(create_fields),
     true, "/v1/invoices/", NULL, decide_create},
    {"AddInvoiceLine", EVHTTP_REQ_POST, INVOICE "/lines", FRONT_DESK | VP_ROLE_VET, line_fields,
     N(line_fields), false, NULL, validate_line, decide_add_line},
    {"RemoveInvoiceLine", EVHTTP_REQ_DELETE, INVOICE "/lines/{line_id}", FRONT_DESK,
     remove_line_fields, N(remove_line_fields), false, NULL, NULL, decide_remove_line},
    {"IssueInvoice", EVHTTP_REQ_POST, INVOICE "/issue", FRONT_DESK, issue_fields, N(issue_fields),
     false, NULL, NULL, decide_issue},
    {"RecordPayment", EVHTTP_REQ_POST, INVOICE "/payments", FRONT_DESK, payment_fields,
     N(payment_fields), false, NULL, NULL, decide_payment},
    {"RefundPayment", EVHTTP_REQ_POST, INVOICE "/payments/{payment_id}/refund", ADMIN,
     refund_fields, N(refund_fields), false, NULL, NULL, decide_refund},
    {"VoidInvoice", EVHTTP_REQ_POST, INVOICE "/void", ADMIN, void_fields, N(void_fields), false,
     NULL, NULL, decide_void},
};
const size_t wr_n_invoice_commands = N(wr_invoice_commands);
