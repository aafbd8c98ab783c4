/* The write model of stock: each item's flags and code, its batches by number
 * and in FEFO order, and what was dispensed against each prescription.
 * Applied by the same evolve path for live commands and the rebuild (state.c).
 *
 * FEFO order is (expiry, first receipt) with "no expiry" last. Batches stay
 * in the order for good (an empty batch keeps its number: a later receipt of
 * the same number and expiry refills it), so expired batches are a prefix
 * found by binary search, and a dispense walks from there skipping the empty
 * ones: an item with 10,000 batches costs a search and a short walk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_time.h"

static void free_batch(void *batch)
{
	free(batch);
}

void wr_item_free(void *item)
{
	WrItem *it = item;
	if (!it)
		return;
	wr_map_clear(&it->batch_index, free_batch);
	free(it->fefo);
	free(it);
}

static bool fefo_before(const WrBatch *a, const WrBatch *b)
{
	return a->expiry != b->expiry ? a->expiry < b->expiry : a->received < b->received;
}

size_t wr_item_first_unexpired(const WrItem *it, int32_t today)
{
	size_t lo = 0, hi = it->n_batches;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (it->fefo[mid]->expiry < today)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int64_t wr_item_on_hand(const WrItem *it, int32_t today)
{
	int64_t total = 0;
	for (size_t i = wr_item_first_unexpired(it, today); i < it->n_batches; i++)
		total += it->fefo[i]->remaining_milli;
	return total;
}

long wr_item_fefo(const WrItem *it, int32_t today, int64_t quantity_milli, WrAllocation *alloc,
		  size_t cap)
{
	size_t n = 0;
	int64_t left = quantity_milli;
	for (size_t i = wr_item_first_unexpired(it, today); i < it->n_batches && left > 0; i++) {
		const WrBatch *b = it->fefo[i];
		if (b->remaining_milli <= 0)
			continue;
		if (n == cap)
			return -2;
		alloc[n].batch = b;
		alloc[n].quantity_milli = b->remaining_milli < left ? b->remaining_milli : left;
		left -= alloc[n].quantity_milli;
		n++;
	}
	return left > 0 ? -1 : (long)n;
}

static int64_t data_int(const cJSON *data, const char *name)
{
	double value = 0;
	vp_json_number(data, name, &value);
	return (int64_t)value;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* A price member the event carries: a number sets it, null clears it, an
 * absent member (an update that leaves it) keeps it. */
static void apply_price(int64_t *field, const cJSON *data, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);
	if (cJSON_IsNumber(v))
		*field = (int64_t)v->valuedouble;
	else if (v)
		*field = WR_NO_PRICE;
}

static void apply_flags(WrItem *it, const cJSON *data)
{
	apply_price(&it->sale_price_cents, data, "sale_price_cents");
	apply_price(&it->tax_rate_bp, data, "tax_rate_bp");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, "requires_prescription");
	if (cJSON_IsBool(v))
		it->requires_prescription = cJSON_IsTrue(v);
	v = cJSON_GetObjectItemCaseSensitive(data, "controlled");
	if (cJSON_IsBool(v))
		it->controlled = cJSON_IsTrue(v);
}

static int apply_created(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *code = vp_json_str(ev->data, "code");
	bool oom = false;
	if (wr_map_get(&t->items, ev->aggregate_id) || !code || wr_map_get(&t->item_codes, code)) {
		snprintf(why, why_cap, "inventory item %s created twice or with a taken code",
			 ev->aggregate_id);
		return -1;
	}
	WrItem *it = calloc(1, sizeof(*it));
	if (!it)
		return -1;
	it->active = true;
	it->version = ev->seq;
	it->sale_price_cents = WR_NO_PRICE;
	it->tax_rate_bp = WR_NO_PRICE;
	copy_str(it->code, sizeof(it->code), code);
	apply_flags(it, ev->data);
	wr_map_put(&t->items, ev->aggregate_id, it, &oom);
	if (oom) {
		free(it);
		return -1;
	}
	wr_map_put(&t->item_codes, it->code, it, &oom);
	return oom ? -1 : 0;
}

/* Puts a new batch at its FEFO place. */
static int insert_batch(WrItem *it, WrBatch *b)
{
	bool oom = false;
	if (it->n_batches == it->cap_batches) {
		size_t next = it->cap_batches ? it->cap_batches * 2 : 8;
		WrBatch **bigger = realloc(it->fefo, next * sizeof(*bigger));
		if (!bigger)
			return -1;
		it->fefo = bigger;
		it->cap_batches = next;
	}
	wr_map_put(&it->batch_index, b->number, b, &oom);
	if (oom)
		return -1;
	size_t lo = 0, hi = it->n_batches;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (fefo_before(it->fefo[mid], b))
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&it->fefo[lo + 1], &it->fefo[lo], (it->n_batches - lo) * sizeof(*it->fefo));
	it->fefo[lo] = b;
	it->n_batches++;
	return 0;
}

/* A known number adds to its batch (the decision checked the expiry). */
static int apply_received(WrItem *it, const VpEvent *ev)
{
	const char *number = vp_json_str(ev->data, "batch_number");
	const char *expiry = vp_json_str(ev->data, "expiry_date");
	WrBatch *b = number ? wr_map_get(&it->batch_index, number) : NULL;
	it->receipts++;
	if (b) {
		b->remaining_milli += data_int(ev->data, "quantity_milli");
		return 0;
	}
	if (!number || !(b = calloc(1, sizeof(*b))))
		return -1;
	copy_str(b->number, sizeof(b->number), number);
	b->expiry = WR_NO_EXPIRY;
	if (expiry && vp_date_parse(expiry, strlen(expiry), &b->expiry) < 0)
		b->expiry = WR_NO_EXPIRY;
	b->received = it->receipts;
	b->remaining_milli = data_int(ev->data, "quantity_milli");
	if (insert_batch(it, b) < 0) {
		wr_map_remove(&it->batch_index, b->number);
		free(b);
		return -1;
	}
	return 0;
}

/* Takes from one batch; false when it is unknown or would go negative. */
static bool take(WrItem *it, const char *number, int64_t quantity_milli)
{
	WrBatch *b = number ? wr_map_get(&it->batch_index, number) : NULL;
	if (!b || b->remaining_milli + quantity_milli < 0)
		return false;
	b->remaining_milli += quantity_milli;
	return true;
}

static int apply_dispensed(WrTenant *t, WrItem *it, const VpEvent *ev, char *why, size_t why_cap)
{
	const cJSON *allocations = cJSON_GetObjectItemCaseSensitive(ev->data, "allocations");
	const char *prescription_id = vp_json_str(ev->data, "prescription_id");
	const cJSON *a;
	int64_t total = 0;
	cJSON_ArrayForEach(a, allocations)
	{
		int64_t q = data_int(a, "quantity_milli");
		if (!take(it, vp_json_str(a, "batch_number"), -q)) {
			snprintf(why, why_cap, "%s %s: unknown or short batch", ev->type,
				 ev->aggregate_id);
			return -1;
		}
		total += q;
	}
	WrPrescription *p = prescription_id ? wr_map_get(&t->prescriptions, prescription_id) : NULL;
	if (p)
		p->dispensed_milli += total;
	return 0;
}

static int apply_change(WrTenant *t, WrItem *it, const VpEvent *ev, char *why, size_t why_cap)
{
	if (!strcmp(ev->type, VP_EV_INVENTORY_ITEM_UPDATED)) {
		apply_flags(it, ev->data);
	} else if (!strcmp(ev->type, VP_EV_INVENTORY_ITEM_DEACTIVATED)) {
		it->active = false;
	} else if (!strcmp(ev->type, VP_EV_STOCK_RECEIVED)) {
		return apply_received(it, ev);
	} else if (!strcmp(ev->type, VP_EV_STOCK_DISPENSED)) {
		return apply_dispensed(t, it, ev, why, why_cap);
	} else if (!strcmp(ev->type, VP_EV_STOCK_ADJUSTED)) {
		if (!take(it, vp_json_str(ev->data, "batch_number"),
			  data_int(ev->data, "delta_milli"))) {
			snprintf(why, why_cap, "%s %s: unknown batch or below zero", ev->type,
				 ev->aggregate_id);
			return -1;
		}
	}
	return 0;
}

int wr_stock_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	if (!strcmp(ev->type, VP_EV_INVENTORY_ITEM_CREATED))
		return apply_created(t, ev, why, why_cap);
	WrItem *it = wr_map_get(&t->items, ev->aggregate_id);
	if (!it) {
		snprintf(why, why_cap, "%s for unknown inventory item %s", ev->type,
			 ev->aggregate_id);
		return -1;
	}
	if (apply_change(t, it, ev, why, why_cap) < 0)
		return -1;
	it->version = ev->seq;
	return 0;
}
