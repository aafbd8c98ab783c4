/* Stock decisions on a write model built by the writer's own evolve
 * function: items (unique code, decimals), receipts into batches (expiry in
 * the tenant's zone, BATCH_CONFLICT, inactive items), dispenses (a named
 * batch, FEFO with ties and batches without expiry, expired stock never
 * chosen, prescriptions and their limit, witnesses), adjustments (count,
 * never below zero, witnessed write-offs of controlled items), prescriptions
 * naming items (ITEM_INACTIVE, LICENSE_REQUIRED), decimal parsing, and FEFO on
 * an item with 10,000 batches. Every event is checked against the catalog,
 * every refusal leaves the model as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "decide.h"
#include "state.h"
#include "vp_catalog.h"
#include "wr_harness.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define TENANT	"01a20807-0000-7000-8000-000000000001"
#define CLIENT	"01a20807-0000-7000-8000-000000000002"
#define VET	"01a20807-0000-7000-8000-0000000000a1"
#define LVET	"01a20807-0000-7000-8000-0000000000a2"
#define NURSE	"01a20807-0000-7000-8000-0000000000a3"
#define RECEP	"01a20807-0000-7000-8000-0000000000a4"
#define PAT	"01a20807-0000-7000-8000-0000000000b1"
#define REC	"01a20807-0000-7000-8000-0000000000d1"
#define ITEM	"01a20807-0000-7000-8000-0000000000e1"
#define RX_ITEM "01a20807-0000-7000-8000-0000000000e2"
#define CD_ITEM "01a20807-0000-7000-8000-0000000000e3"
#define BIG	"01a20807-0000-7000-8000-0000000000e4"
#define NOPE	"01a20807-0000-7000-8000-0000000000ff"
#define DAY	(86400 * VP_US_PER_SEC)
/* 2026-11-24T23:33:20Z: already 2026-11-25 in Pacific/Kiritimati (UTC+14) */
#define BASE_NOW 1795563200000000LL

typedef struct Fixture {
	WrState state;
	int64_t now;
	unsigned roles;
	const char *actor;
	int events;			    /* applied so far: a refusal must not add any */
	cJSON *last[WR_MAX_COMMAND_EVENTS]; /* data of the last command's events */
	char last_types[WR_MAX_COMMAND_EVENTS][48];
	size_t n_last;
} Fixture;

static void clear_last(Fixture *f)
{
	for (size_t i = 0; i < f->n_last; i++)
		cJSON_Delete(f->last[i]);
	f->n_last = 0;
}

/* One decided event into the model, through the catalog as the writer does. */
static void apply(Fixture *f, const char *aggregate, const char *aggregate_id, const char *type,
		  int64_t seq, cJSON *data)
{
	wr_test_apply(&f->state, TENANT, aggregate, aggregate_id, type, seq, data, f->now, f->events);
	f->events++;
	snprintf(f->last_types[f->n_last], sizeof(f->last_types[0]), "%s", type);
	f->last[f->n_last++] = cJSON_Duplicate(data, true);
}

static int run_item(Fixture *f, const char *name, const char *target, const char *item,
		    const char *body_json, int64_t if_match, VpError *err)
{
	const WrCommand *c = wr_test_command(name);
	cJSON *body = cJSON_Parse(body_json);
	assert_non_null(body);
	WrDecision d = {.state = &f->state,
			.tenant = wr_state_tenant(&f->state, TENANT),
			.tenant_id = TENANT,
			.target_id = target,
			.item_id = item,
			.body = body,
			.if_match = if_match,
			.now_us = f->now,
			.actor = f->actor,
			.roles = f->roles};
	vp_error_clear(err);
	clear_last(f);
	vp_json_check(body, c->fields, c->n_fields, false, err);
	if (c->validate)
		c->validate(body, d.now_us, err);
	int rc = vp_error_finish_validation(err) ? -1 : c->decide(&d, err);
	if (rc == 0) {
		apply(f, d.aggregate, target, d.type, d.seq, d.data);
		for (size_t i = 0; i < d.n_more; i++)
			apply(f, d.more[i].aggregate, d.more[i].aggregate_id, d.more[i].type,
			      d.more[i].seq, d.more[i].data);
	}
	wr_decision_release(&d);
	cJSON_Delete(body);
	return rc;
}

static void ok_item(Fixture *f, const char *name, const char *target, const char *item,
		    const char *body)
{
	VpError err;
	if (run_item(f, name, target, item, body, -1, &err) != 0)
		fail_msg("%s refused: %d %s %s", name, err.status, err.code, err.message);
}

static void ok(Fixture *f, const char *name, const char *target, const char *body)
{
	ok_item(f, name, target, NULL, body);
}

/* Expects a refusal with status and code, and no event. */
static void refused_item(Fixture *f, const char *name, const char *target, const char *item,
			 const char *body, int status, const char *code)
{
	VpError err;
	int before = f->events;
	assert_int_equal(run_item(f, name, target, item, body, -1, &err), -1);
	if (err.status != status || strcmp(err.code, code) != 0)
		fail_msg("%s %s: want %d %s, got %d %s (%s)", name, body, status, code, err.status,
			 err.code, err.message);
	assert_int_equal(f->events, before);
}

static void refused(Fixture *f, const char *name, const char *target, const char *body, int status,
		    const char *code)
{
	refused_item(f, name, target, NULL, body, status, code);
}

static const char *last_str(Fixture *f, size_t i, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->last[i], name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double last_num(Fixture *f, size_t i, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->last[i], name);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const WrItem *item(Fixture *f, const char *id)
{
	return wr_map_get(&wr_state_tenant(&f->state, TENANT)->items, id);
}

static int64_t remaining(Fixture *f, const char *id, const char *batch)
{
	const WrBatch *b = wr_map_get(&item(f, id)->batch_index, batch);
	assert_non_null(b);
	return b->remaining_milli;
}

/* The last StockDispensed's allocations as "B1:1000,B2:500". */
static void allocations(Fixture *f, char *out, size_t cap)
{
	const cJSON *a;
	size_t used = 0;
	out[0] = '\0';
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(f->last[0], "allocations"))
	{
		used += (size_t)snprintf(
		    out + used, cap - used, "%s%s:%lld", used ? "," : "",
		    cJSON_GetObjectItemCaseSensitive(a, "batch_number")->valuestring,
		    (long long)cJSON_GetObjectItemCaseSensitive(a, "quantity_milli")->valuedouble);
		assert_true(used < cap);
	}
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	wr_state_init(&f->state);
	f->now = BASE_NOW - 2 * DAY;
	f->actor = "unit";
	f->roles = VP_ROLE_PLATFORM_ADMIN | VP_ROLE_ADMIN | VP_ROLE_VET | VP_ROLE_NURSE;
	ok(f, "ProvisionTenant", TENANT,
	   "{\"name\":\"C\",\"timezone\":\"Pacific/Kiritimati\",\"currency\":\"AUD\"}");
	ok(f, "RegisterClient", CLIENT, "{\"first_name\":\"A\",\"last_name\":\"B\"}");
	ok(f, "RegisterStaff", VET, "{\"name\":\"V\",\"role\":\"veterinarian\"}");
	ok(f, "RegisterStaff", LVET,
	   "{\"name\":\"L\",\"role\":\"veterinarian\",\"license_number\":\"VET-1\"}");
	ok(f, "RegisterStaff", NURSE, "{\"name\":\"N\",\"role\":\"nurse\"}");
	ok(f, "RegisterStaff", RECEP, "{\"name\":\"R\",\"role\":\"receptionist\"}");
	ok(f, "RegisterPatient", PAT,
	   "{\"client_id\":\"" CLIENT "\",\"name\":\"P\",\"species\":\"canine\",\"sex\":\"male\"}");
	ok(f, "OpenMedicalRecord", REC,
	   "{\"patient_id\":\"" PAT "\",\"record_type\":\"consultation\"}");
	ok(f, "CreateInventoryItem", ITEM,
	   "{\"code\":\"AMOX\",\"name\":\"Amoxicillin\",\"category\":\"medication\",\"unit\":"
	   "\"tablet\"}");
	ok(f, "CreateInventoryItem", RX_ITEM,
	   "{\"code\":\"RX\",\"name\":\"Rx\",\"category\":\"medication\",\"unit\":\"ml\","
	   "\"requires_prescription\":true}");
	ok(f, "CreateInventoryItem", CD_ITEM,
	   "{\"code\":\"CD\",\"name\":\"Methadone\",\"category\":\"medication\",\"unit\":\"ml\","
	   "\"controlled\":true,\"requires_prescription\":true}");
	f->now = BASE_NOW;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	clear_last(f);
	wr_state_clear(&f->state);
	free(f);
	return 0;
}

static void decimals_are_parsed_exactly(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		int rc;
		long long milli;
	} cases[] = {
	    {"1", 0, 1000},
	    {"0.001", 0, 1},
	    {"2.5", 0, 2500},
	    {"0.1", 0, 100},
	    {"1.10", 0, 1100},
	    {"1e3", 0, 1000000},
	    {"-0.25", 0, -250},
	    {"1.0001", -1, 0},
	    {"0.0005", -1, 0},
	    {"1.0000001", -1, 0},
	    {"123456789.123", 0, 123456789123LL},
	    {"1e12", -1, 0},
	    {"\"1\"", -1, 0},
	    {"999999999.999", 0, 999999999999LL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *v = cJSON_Parse(cases[i].json);
		int64_t milli = 0;
		int rc = wr_decimal_milli(v, &milli);
		if (rc != cases[i].rc || (rc == 0 && milli != cases[i].milli))
			fail_msg("%s: rc %d milli %lld", cases[i].json, rc, (long long)milli);
		cJSON_Delete(v);
	}
}

static void items(void **state)
{
	Fixture *f = *state;
	refused(f, "CreateInventoryItem", NOPE,
		"{\"code\":\"AMOX\",\"name\":\"x\",\"category\":\"food\",\"unit\":\"bag\"}", 409,
		"DUPLICATE_ITEM_CODE");
	refused(f, "CreateInventoryItem", NOPE,
		"{\"code\":\"Z\",\"name\":\"x\",\"category\":\"food\",\"unit\":\"bag\","
		"\"reorder_point\":1.0005}",
		400, "VALIDATION_ERROR");
	ok(f, "CreateInventoryItem", NOPE,
	   "{\"code\":\"Z\",\"name\":\"x\",\"category\":\"food\",\"unit\":\"bag\","
	   "\"reorder_point\":2.5,\"reorder_quantity\":10}");
	assert_int_equal(last_num(f, 0, "reorder_point_milli"), 2500);
	assert_int_equal(last_num(f, 0, "reorder_quantity_milli"), 10000);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f->last[0], "controlled")));
	refused(f, "UpdateInventoryItem", NOPE, "{\"code\":\"Y\"}", 400, "VALIDATION_ERROR");
	refused(f, "UpdateInventoryItem", NOPE, "{\"controlled\":true}", 400, "VALIDATION_ERROR");
	refused(f, "UpdateInventoryItem", NOPE, "{\"name\":null}", 400, "VALIDATION_ERROR");
	ok(f, "UpdateInventoryItem", NOPE, "{\"requires_prescription\":true,\"reorder_point\":3}");
	assert_true(item(f, NOPE)->requires_prescription);
	assert_null(cJSON_GetObjectItemCaseSensitive(f->last[0], "name"));
	ok(f, "DeactivateInventoryItem", NOPE, "{\"reason\":\"discontinued\"}");
	refused(f, "DeactivateInventoryItem", NOPE, "{}", 409, "INVALID_STATE");
	refused(f, "ReceiveStock", NOPE, "{\"batch_number\":\"B\",\"quantity\":1}", 409,
		"ITEM_INACTIVE");
	refused(f, "DispenseStock", NOPE, "{\"quantity\":1}", 409, "ITEM_INACTIVE");
	refused(f, "UpdateInventoryItem", NOPE, "{\"name\":\"y\"}", 409, "ITEM_INACTIVE");
}

static void receipts(void **state)
{
	Fixture *f = *state;
	/* 2026-11-24 is UTC's date but already past in Kiritimati */
	refused(f, "ReceiveStock", ITEM,
		"{\"batch_number\":\"B1\",\"quantity\":1,\"expiry_date\":\"2026-11-24\"}", 400,
		"VALIDATION_ERROR");
	refused(f, "ReceiveStock", ITEM, "{\"batch_number\":\"B1\",\"quantity\":0}", 400,
		"VALIDATION_ERROR");
	refused(f, "ReceiveStock", ITEM, "{\"batch_number\":\"B1\",\"quantity\":1.2345}", 400,
		"VALIDATION_ERROR");
	refused(f, "ReceiveStock", NOPE, "{\"batch_number\":\"B1\",\"quantity\":1}", 404,
		"NOT_FOUND");
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"B1\",\"quantity\":10.5,\"expiry_date\":\"2026-11-25\","
	   "\"lot_number\":\"L1\",\"unit_cost_cents\":120,\"supplier_invoice\":\"S-1\"}");
	assert_int_equal(last_num(f, 0, "quantity_milli"), 10500);
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"B1\",\"quantity\":0.5,\"expiry_date\":\"2026-11-25\"}");
	assert_int_equal(remaining(f, ITEM, "B1"), 11000);
	refused(f, "ReceiveStock", ITEM,
		"{\"batch_number\":\"B1\",\"quantity\":1,\"expiry_date\":\"2026-12-25\"}", 409,
		"BATCH_CONFLICT");
	refused(f, "ReceiveStock", ITEM, "{\"batch_number\":\"B1\",\"quantity\":1}", 409,
		"BATCH_CONFLICT");
}

static void fefo_order_ties_and_no_expiry(void **state)
{
	Fixture *f = *state;
	char got[256];
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"A\",\"quantity\":1,\"expiry_date\":\"2026-12-10\"}");
	ok(f, "ReceiveStock", ITEM, "{\"batch_number\":\"N\",\"quantity\":5}");
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"C\",\"quantity\":1,\"expiry_date\":\"2026-12-01\"}");
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"D\",\"quantity\":1,\"expiry_date\":\"2026-12-10\"}");
	ok(f, "ReceiveStock", ITEM,
	   "{\"batch_number\":\"T\",\"quantity\":2,\"expiry_date\":\"2026-11-25\"}");
	f->roles = VP_ROLE_NURSE;
	ok(f, "DispenseStock", ITEM, "{\"quantity\":1.5}");
	allocations(f, got, sizeof(got));
	assert_string_equal(got, "T:1500");
	/* tomorrow in Kiritimati: T expired (0.5 left) and is never chosen */
	f->now += DAY;
	ok(f, "DispenseStock", ITEM, "{\"quantity\":4}");
	allocations(f, got, sizeof(got));
	assert_string_equal(got, "C:1000,A:1000,D:1000,N:1000");
	assert_int_equal(remaining(f, ITEM, "T"), 500);
	refused(f, "DispenseStock", ITEM, "{\"quantity\":0.5,\"batch_number\":\"T\"}", 409,
		"BATCH_EXPIRED");
	refused(f, "DispenseStock", ITEM, "{\"quantity\":4.001}", 409, "INSUFFICIENT_STOCK");
	refused(f, "DispenseStock", ITEM, "{\"quantity\":1,\"batch_number\":\"A\"}", 409,
		"INSUFFICIENT_STOCK");
	refused(f, "DispenseStock", ITEM, "{\"quantity\":1,\"batch_number\":\"Q\"}", 404,
		"NOT_FOUND");
	refused(f, "DispenseStock", ITEM, "{\"quantity\":1,\"invoice_id\":\"" NOPE "\"}", 404,
		"NOT_FOUND"); /* no such invoice */
	ok(f, "DispenseStock", ITEM, "{\"quantity\":2,\"batch_number\":\"N\"}");
	ok(f, "DispenseStock", ITEM, "{\"quantity\":2}");
	allocations(f, got, sizeof(got));
	assert_string_equal(got, "N:2000");
	refused(f, "DispenseStock", ITEM, "{\"quantity\":0.001}", 409, "INSUFFICIENT_STOCK");
}

static void prescriptions_limit_dispenses(void **state)
{
	Fixture *f = *state;
	char body[512];
	ok(f, "ReceiveStock", RX_ITEM, "{\"batch_number\":\"R\",\"quantity\":100}");
	ok(f, "ReceiveStock", ITEM, "{\"batch_number\":\"I\",\"quantity\":100}");
	f->roles = VP_ROLE_VET;
	ok(f, "PrescribeMedication", REC,
	   "{\"medication\":\"Rx\",\"dosage\":\"1 ml\",\"frequency\":\"daily\",\"route\":\"oral\","
	   "\"quantity\":10,\"refills\":1,\"item_id\":\"" RX_ITEM "\"}");
	char rx[37];
	snprintf(rx, sizeof(rx), "%s", last_str(f, 0, "prescription_id"));
	refused(f, "DispenseStock", RX_ITEM, "{\"quantity\":1}", 409, "PRESCRIPTION_REQUIRED");
	refused(f, "DispenseStock", RX_ITEM, "{\"quantity\":1,\"prescription_id\":\"" NOPE "\"}",
		404, "NOT_FOUND");
	snprintf(body, sizeof(body), "{\"quantity\":1,\"prescription_id\":\"%s\"}", rx);
	refused(f, "DispenseStock", ITEM, body, 400, "VALIDATION_ERROR"); /* another item */
	snprintf(body, sizeof(body), "{\"quantity\":15,\"prescription_id\":\"%s\"}", rx);
	ok(f, "DispenseStock", RX_ITEM, body);
	assert_string_equal(last_str(f, 0, "patient_id"), PAT);
	snprintf(body, sizeof(body), "{\"quantity\":5.001,\"prescription_id\":\"%s\"}", rx);
	refused(f, "DispenseStock", RX_ITEM, body, 409, "PRESCRIPTION_EXHAUSTED");
	snprintf(body, sizeof(body), "{\"quantity\":5,\"prescription_id\":\"%s\"}", rx);
	ok(f, "DispenseStock", RX_ITEM, body);
	snprintf(body, sizeof(body), "{\"quantity\":0.001,\"prescription_id\":\"%s\"}", rx);
	refused(f, "DispenseStock", RX_ITEM, body, 409, "PRESCRIPTION_EXHAUSTED");
}

static void prescribing_items(void **state)
{
	Fixture *f = *state;
	const char *base = "\"medication\":\"M\",\"dosage\":\"1\",\"frequency\":\"daily\","
			   "\"route\":\"oral\"";
	char body[512];
	f->roles = VP_ROLE_VET;
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" ITEM "\"}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" NOPE "\",\"quantity\":1}", base);
	refused(f, "PrescribeMedication", REC, body, 404, "NOT_FOUND");
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" CD_ITEM "\",\"quantity\":1}", base);
	f->actor = VET; /* a vet without a license */
	refused(f, "PrescribeMedication", REC, body, 409, "LICENSE_REQUIRED");
	f->actor = "01A20807-0000-7000-8000-0000000000A2"; /* LVET, as a sub may spell it */
	ok(f, "PrescribeMedication", REC, body);
	assert_string_equal(last_str(f, 0, "item_id"), CD_ITEM);
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" ITEM "\",\"quantity\":2.5}", base);
	ok(f, "PrescribeMedication", REC, body);
	assert_int_equal(last_num(f, 0, "quantity_milli"), 2500);
	f->roles = VP_ROLE_ADMIN;
	ok(f, "DeactivateInventoryItem", ITEM, "{}");
	f->roles = VP_ROLE_VET;
	refused(f, "PrescribeMedication", REC, body, 409, "ITEM_INACTIVE");
}

static void controlled_items_need_a_witness(void **state)
{
	Fixture *f = *state;
	char body[512];
	ok(f, "ReceiveStock", CD_ITEM, "{\"batch_number\":\"M1\",\"quantity\":50}");
	f->actor = LVET;
	ok(f, "PrescribeMedication", REC,
	   "{\"medication\":\"M\",\"dosage\":\"1\",\"frequency\":\"daily\",\"route\":\"oral\","
	   "\"quantity\":10,\"item_id\":\"" CD_ITEM "\"}");
	char rx[37];
	snprintf(rx, sizeof(rx), "%s", last_str(f, 0, "prescription_id"));
	f->actor = VET;
	snprintf(body, sizeof(body), "{\"quantity\":1,\"prescription_id\":\"%s\"}", rx);
	refused(f, "DispenseStock", CD_ITEM, body, 409, "WITNESS_REQUIRED");
	snprintf(body, sizeof(body),
		 "{\"quantity\":1,\"prescription_id\":\"%s\",\"witness_id\":\"" VET "\"}", rx);
	refused(f, "DispenseStock", CD_ITEM, body, 409, "WITNESS_REQUIRED"); /* self */
	snprintf(body, sizeof(body),
		 "{\"quantity\":1,\"prescription_id\":\"%s\",\"witness_id\":\"" RECEP "\"}", rx);
	refused(f, "DispenseStock", CD_ITEM, body, 409, "WITNESS_REQUIRED");
	snprintf(body, sizeof(body),
		 "{\"quantity\":1,\"prescription_id\":\"%s\",\"witness_id\":\"" NOPE "\"}", rx);
	refused(f, "DispenseStock", CD_ITEM, body, 404, "NOT_FOUND");
	snprintf(body, sizeof(body),
		 "{\"quantity\":1,\"prescription_id\":\"%s\",\"witness_id\":\"" NURSE "\"}", rx);
	ok(f, "DispenseStock", CD_ITEM, body);
	assert_string_equal(last_str(f, 0, "witness_id"), NURSE);
	/* adjustments: a negative one of a controlled item is witnessed too */
	f->roles = VP_ROLE_ADMIN;
	refused(f, "AdjustStock", CD_ITEM,
		"{\"batch_number\":\"M1\",\"reason\":\"damage\",\"delta\":-1}", 409,
		"WITNESS_REQUIRED");
	ok(f, "AdjustStock", CD_ITEM,
	   "{\"batch_number\":\"M1\",\"reason\":\"damage\",\"delta\":-1,\"witness_id\":\"" NURSE
	   "\"}");
	ok(f, "AdjustStock", CD_ITEM,
	   "{\"batch_number\":\"M1\",\"reason\":\"returned\",\"delta\":1}");
	assert_int_equal(remaining(f, CD_ITEM, "M1"), 49000);
}

static void adjustments(void **state)
{
	Fixture *f = *state;
	ok(f, "ReceiveStock", ITEM, "{\"batch_number\":\"B\",\"quantity\":10}");
	f->roles = VP_ROLE_ADMIN;
	refused(f, "AdjustStock", ITEM, "{\"batch_number\":\"B\",\"reason\":\"count\"}", 400,
		"VALIDATION_ERROR");
	refused(f, "AdjustStock", ITEM,
		"{\"batch_number\":\"B\",\"reason\":\"count\",\"delta\":1,\"counted_quantity\":1}",
		400, "VALIDATION_ERROR");
	refused(f, "AdjustStock", ITEM, "{\"batch_number\":\"B\",\"reason\":\"lost\"}", 400,
		"VALIDATION_ERROR");
	refused(f, "AdjustStock", ITEM, "{\"batch_number\":\"B\",\"reason\":\"lost\",\"delta\":0}",
		400, "VALIDATION_ERROR");
	refused(f, "AdjustStock", ITEM, "{\"batch_number\":\"X\",\"reason\":\"lost\",\"delta\":-1}",
		404, "NOT_FOUND");
	ok(f, "AdjustStock", ITEM,
	   "{\"batch_number\":\"B\",\"reason\":\"count\",\"counted_quantity\":7.25}");
	assert_int_equal(last_num(f, 0, "delta_milli"), -2750);
	refused(f, "AdjustStock", ITEM,
		"{\"batch_number\":\"B\",\"reason\":\"lost\",\"delta\":-7.251}", 409,
		"INSUFFICIENT_STOCK");
	ok(f, "AdjustStock", ITEM, "{\"batch_number\":\"B\",\"reason\":\"lost\",\"delta\":-7.25}");
	assert_int_equal(remaining(f, ITEM, "B"), 0);
}

/* The bench shape: FEFO over 10,000 batches, most of them expired or
 * empty, stays a search plus a short walk. */
static void fefo_on_ten_thousand_batches(void **state)
{
	Fixture *f = *state;
	char body[256], got[256];
	f->roles = VP_ROLE_ADMIN;
	ok(f, "CreateInventoryItem", BIG,
	   "{\"code\":\"BIG\",\"name\":\"b\",\"category\":\"consumable\",\"unit\":\"u\"}");
	f->now = BASE_NOW - 5000 * DAY;
	for (int i = 0; i < 10000; i++) {
		int32_t expiry = vp_date_from_us(BASE_NOW) - 4990 + (i % 9000);
		char date[11];
		vp_date_format(expiry, date, sizeof(date));
		snprintf(body, sizeof(body),
			 "{\"batch_number\":\"B%05d\",\"quantity\":1,\"expiry_date\":\"%s\"}", i,
			 date);
		ok(f, "ReceiveStock", BIG, body);
	}
	f->now = BASE_NOW;
	f->roles = VP_ROLE_NURSE;
	clock_t start = clock();
	for (int i = 0; i < 100; i++)
		ok(f, "DispenseStock", BIG, "{\"quantity\":1}");
	double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
	allocations(f, got, sizeof(got));
	/* B4991 expires on Kiritimati's today (the 25th): the first of the 100 */
	snprintf(body, sizeof(body), "B%05d:1000", 4991 + 99);
	assert_string_equal(got, body);
	assert_true(seconds < 2.0);
	/* more batches than an event may list, or more than the stock */
	WrAllocation alloc[2];
	int32_t today = wr_local_date(WR_ZONEINFO_DIR, "Pacific/Kiritimati", f->now);
	assert_int_equal(wr_item_fefo(item(f, BIG), today, 3000, alloc, 2), -2);
	assert_int_equal(wr_item_fefo(item(f, BIG), today, 2000, alloc, 2), 2);
	assert_int_equal(wr_item_fefo(item(f, BIG), today, 1000000000LL, alloc, 2), -2);
	assert_int_equal(wr_item_on_hand(item(f, BIG), today), (8999 - 4991 + 1 - 100) * 1000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decimals_are_parsed_exactly),
	    cmocka_unit_test_setup_teardown(items, setup, teardown),
	    cmocka_unit_test_setup_teardown(receipts, setup, teardown),
	    cmocka_unit_test_setup_teardown(fefo_order_ties_and_no_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(prescriptions_limit_dispenses, setup, teardown),
	    cmocka_unit_test_setup_teardown(prescribing_items, setup, teardown),
	    cmocka_unit_test_setup_teardown(controlled_items_need_a_witness, setup, teardown),
	    cmocka_unit_test_setup_teardown(adjustments, setup, teardown),
	    cmocka_unit_test_setup_teardown(fefo_on_ten_thousand_batches, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
