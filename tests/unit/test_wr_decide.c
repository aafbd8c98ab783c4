/* The writer's decisions on a write model built by its own evolve function:
 * microchip uniqueness among living patients, weight units, version checks,
 * status rules; and the string map under growth and deletion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "decide.h"
#include "state.h"
#include "strmap.h"
#include "wr_harness.h"
#include "vp_uuid.h"

#define TENANT  "01a20807-0000-7000-8000-000000000001"
#define CLIENT  "01a20807-0000-7000-8000-000000000002"
#define PATIENT "01a20807-0000-7000-8000-000000000003"

/* Validates and decides body; on success applies the event to state. */
static int run(WrState *s, const char *name, const char *target, const char *body_json,
	       int64_t if_match, VpError *err, cJSON **data_out)
{
	static int n;
	const WrCommand *c = wr_test_command(name);
	cJSON *body = cJSON_Parse(body_json);
	WrDecision d = {.state = s, .tenant = wr_state_tenant(s, TENANT), .tenant_id = TENANT,
			.target_id = target, .body = body, .if_match = if_match,
			.now_us = 1795400000000000LL};
	int rc = wr_test_decide(c, &d, err);
	if (rc == 0) {
		wr_test_apply(s, TENANT, d.aggregate, target, d.type, d.seq, d.data, d.now_us, n++);
		if (data_out)
			*data_out = cJSON_Duplicate(d.data, true);
	}
	cJSON_Delete(d.data);
	cJSON_Delete(body);
	return rc;
}

static int setup(void **state)
{
	WrState *s = calloc(1, sizeof(*s));
	VpError err;
	wr_state_init(s);
	assert_int_equal(run(s, "ProvisionTenant", TENANT,
			     "{\"name\":\"A\",\"timezone\":\"UTC\",\"currency\":\"EUR\"}", -1, &err,
			     NULL),
			 0);
	assert_int_equal(run(s, "RegisterClient", CLIENT,
			     "{\"first_name\":\"A\",\"last_name\":\"B\"}", -1, &err, NULL),
			 0);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	wr_state_clear(*state);
	free(*state);
	return 0;
}

static void weights_become_grams_half_to_even(void **state)
{
	VpError err;
	cJSON *data = NULL;
	assert_int_equal(run(*state, "RegisterPatient", PATIENT,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Rex\",\"species\":\"canine\","
			     "\"sex\":\"male\",\"weight\":{\"value\":22,\"unit\":\"lb\"}}",
			     -1, &err, &data),
			 0);
	assert_int_equal((int)cJSON_GetObjectItem(data, "weight_g")->valuedouble, 9979);
	cJSON_Delete(data);
	assert_int_equal(run(*state, "RecordWeight", PATIENT, "{\"value\":2.5,\"unit\":\"g\"}", -1,
			     &err, &data),
			 0);
	assert_int_equal((int)cJSON_GetObjectItem(data, "weight_g")->valuedouble, 2);
	cJSON_Delete(data);
	/* 0.5 g rounds to 0 g: not a weight */
	assert_int_equal(run(*state, "RecordWeight", PATIENT, "{\"value\":0.5,\"unit\":\"g\"}", -1,
			     &err, NULL),
			 -1);
	assert_int_equal(err.status, 400);
}

static void microchip_unique_among_the_living(void **state)
{
	VpError err;
	const char *p2 = "01a20807-0000-7000-8000-000000000004";
	const char *p3 = "01a20807-0000-7000-8000-000000000005";
	assert_int_equal(run(*state, "RegisterPatient", PATIENT,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Rex\",\"species\":\"canine\","
			     "\"sex\":\"male\",\"microchip\":\"avid1234x\"}",
			     -1, &err, NULL),
			 0);
	/* stored upper-case, so another spelling is the same chip */
	assert_int_equal(run(*state, "RegisterPatient", p2,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Tom\",\"species\":\"feline\","
			     "\"sex\":\"male\",\"microchip\":\"AVID1234X\"}",
			     -1, &err, NULL),
			 -1);
	assert_string_equal(err.code, "DUPLICATE_MICROCHIP");
	assert_int_equal(run(*state, "RecordPatientDeath", PATIENT, "{\"date\":\"2026-01-01\"}", -1,
			     &err, NULL),
			 0);
	assert_int_equal(run(*state, "RegisterPatient", p3,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Tom\",\"species\":\"feline\","
			     "\"sex\":\"male\",\"microchip\":\"AVID1234X\"}",
			     -1, &err, NULL),
			 0);
	/* 11-14 characters and 15 with a letter are neither ISO nor legacy */
	assert_int_equal(run(*state, "RegisterPatient", p2,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Tom\",\"species\":\"feline\","
			     "\"sex\":\"male\",\"microchip\":\"12345678901234A\"}",
			     -1, &err, NULL),
			 -1);
	assert_int_equal(err.status, 400);
}

static void versions_and_states(void **state)
{
	VpError err;
	assert_int_equal(run(*state, "UpdateClientContact", CLIENT, "{\"phone\":\"1\"}", 5, &err,
			     NULL),
			 -1);
	assert_int_equal(err.status, 412);
	assert_int_equal(run(*state, "UpdateClientContact", CLIENT, "{\"phone\":\"1\"}", 1, &err,
			     NULL),
			 0);
	assert_int_equal(run(*state, "DeactivateClient", CLIENT, "{}", -1, &err, NULL), 0);
	assert_int_equal(run(*state, "DeactivateClient", CLIENT, "{}", -1, &err, NULL), -1);
	assert_string_equal(err.code, "INVALID_STATE");
	assert_int_equal(run(*state, "RecordWeight", "01a20807-0000-7000-8000-0000000000ff",
			     "{\"value\":1,\"unit\":\"kg\"}", -1, &err, NULL),
			 -1);
	assert_int_equal(err.status, 404);
}

static void future_dates_refused(void **state)
{
	VpError err;
	assert_int_equal(run(*state, "RegisterPatient", PATIENT,
			     "{\"client_id\":\"" CLIENT "\",\"name\":\"Rex\",\"species\":\"canine\","
			     "\"sex\":\"male\",\"date_of_birth\":\"2099-01-01\"}",
			     -1, &err, NULL),
			 -1);
	assert_string_equal(err.details[0].field, "date_of_birth");
}

/* ProvisionTenant's id for a keyed command without `id`: a pure function of
 * (sub, key, attempt), a UUIDv8, equal to an independent computation
 * (Python: blake2b(digest_size=16) over the length-prefixed domain, sub and
 * key, then the big-endian attempt; version and variant bits set). */
static void tenant_id_for_key_is_deterministic_uuid_v8(void **state)
{
	(void)state;
	char a[37], b[37];
	VpUuid u;
	wr_tenant_id_for_key("platform-admin-1", "provision-2026-11-23", 0, a);
	assert_string_equal(a, "2739b574-dfbc-860c-8344-a2219bf4703b");
	wr_tenant_id_for_key("platform-admin-1", "provision-2026-11-23", 1, a);
	assert_string_equal(a, "e8cfaa58-4398-8cf6-9dc1-d19888deebb0");
	wr_tenant_id_for_key("admin", "key", 0, a);
	wr_tenant_id_for_key("admin", "key", 0, b);
	assert_string_equal(a, b);
	assert_int_equal(vp_uuid_parse(a, strlen(a), &u), 0);
	assert_int_equal(u.bytes[6] >> 4, 8);      /* version 8 */
	assert_int_equal(u.bytes[8] & 0xC0, 0x80); /* variant 10 */
	/* another caller, key or attempt names another tenant */
	wr_tenant_id_for_key("other-admin", "key", 0, b);
	assert_string_not_equal(a, b);
	wr_tenant_id_for_key("admin", "key2", 0, b);
	assert_string_not_equal(a, b);
	wr_tenant_id_for_key("admin", "key", 1, b);
	assert_string_not_equal(a, b);
	/* the parts are length-prefixed: moving a boundary changes the id */
	wr_tenant_id_for_key("ab", "c", 0, a);
	wr_tenant_id_for_key("a", "bc", 0, b);
	assert_string_not_equal(a, b);
}

static void map_survives_growth_and_removal(void **state)
{
	(void)state;
	WrMap m;
	char key[32];
	bool oom;
	wr_map_init(&m);
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		assert_null(wr_map_put(&m, key, (void *)(i + 1), &oom));
		assert_false(oom);
	}
	for (long i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "k%ld", i);
		assert_ptr_equal(wr_map_remove(&m, key), (void *)(i + 1));
	}
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		assert_ptr_equal(wr_map_get(&m, key), i % 2 ? (void *)(i + 1) : NULL);
	}
	assert_int_equal(m.count, 2500);
	wr_map_clear(&m, NULL);
}

/* Keys that come and go (a sliding window of 1,000 live keys over 200,000
 * insertions) keep the table at the size the live keys need: rehashing drops
 * the tombstones instead of doubling the table each time they fill it. */
static void map_size_follows_live_keys_under_churn(void **state)
{
	(void)state;
	WrMap m;
	bool oom;
	char key[32];
	wr_map_init(&m);
	for (long i = 0; i < 200000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		assert_null(wr_map_put(&m, key, (void *)(i + 1), &oom));
		assert_false(oom);
		if (i >= 1000) {
			snprintf(key, sizeof(key), "k%ld", i - 1000);
			assert_ptr_equal(wr_map_remove(&m, key), (void *)(i - 1000 + 1));
		}
		assert_true(m.cap <= 4096);
	}
	assert_int_equal(m.count, 1000);
	for (long i = 199000; i < 200000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		assert_ptr_equal(wr_map_get(&m, key), (void *)(i + 1));
	}
	wr_map_clear(&m, NULL);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(weights_become_grams_half_to_even, setup, teardown),
		cmocka_unit_test_setup_teardown(microchip_unique_among_the_living, setup, teardown),
		cmocka_unit_test_setup_teardown(versions_and_states, setup, teardown),
		cmocka_unit_test_setup_teardown(future_dates_refused, setup, teardown),
		cmocka_unit_test(tenant_id_for_key_is_deterministic_uuid_v8),
		cmocka_unit_test(map_survives_growth_and_removal),
		cmocka_unit_test(map_size_follows_live_keys_under_churn),
	};
	return cmocka_run_group_tests_name("writer_decide", tests, NULL, NULL);
}
