/* Unit tests of vetctl/import_plan.c: which batch of a tenant import carries
 * each key record. A client's record is due at its client's first event in
 * the file, the tenant's and those of clients without an event at 0; a batch
 * [from, end) carries exactly the records due inside it, so batches cut
 * anywhere (a resume, another --batch) carry every record once, never after
 * the first event that needs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "import_plan.h"
#include "vp_buf.h"
#include "vp_json.h"

#define TID "0190a1b2-0000-7000-8000-000000000001"
#define C1  "0190a1b2-0000-7000-8000-0000000000c1"
#define C2  "0190a1b2-0000-7000-8000-0000000000c2"
#define C3  "0190a1b2-0000-7000-8000-0000000000c3"
#define KEY "{\"kind\":\"client\",\"kek_id\":\"k\",\"wrapped\":\"w\\\"q\"}"

static void remember(VcKeyLines *k, const char *name, const char *value)
{
	assert_int_equal(vc_keys_remember(k, name, strlen(name), value, strlen(value)), 0);
}

/* The names of order[lo, hi), joined by spaces. */
static void names(const VcPlan *p, size_t lo, size_t hi, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t j = lo; j < hi; j++) {
		size_t len = strlen(out);
		snprintf(out + len, cap - len, "%s%s", j > lo ? " " : "",
			 p->keys->name[p->order[j]]);
	}
}

static void records_ride_with_their_clients_first_event(void **state)
{
	(void)state;
	VcKeyLines k = {0};
	VcPlan p;
	char got[512], why[256];
	size_t lo, hi, at_zero;
	/* file order: a client without an event, the tenant, two clients */
	remember(&k, "client:" TID ":" C3, KEY);
	remember(&k, "tenant:" TID, "{\"kind\":\"tenant\"}");
	remember(&k, "client:" TID ":" C1, KEY);
	remember(&k, "client:" TID ":" C2, "{\"kind\":\"erased\"}");
	assert_int_equal(vc_plan_init(&p, &k, TID, why, sizeof(why)), 0);
	/* events: 0 the tenant (not a client), 1 C2 registered, 2 C1, 3 C2
	 * again, 4 a client with no record */
	assert_int_equal(vc_plan_event(&p, C2, 1), p.bytes[3]);
	assert_int_equal(vc_plan_event(&p, C1, 2), p.bytes[2]);
	assert_int_equal(vc_plan_event(&p, C2, 3), 0); /* not its first */
	assert_int_equal(vc_plan_event(&p, "0190a1b2-0000-7000-8000-0000000000c9", 4), 0);
	assert_int_equal(vc_plan_finish(&p, &at_zero), 0);
	assert_int_equal(at_zero, p.bytes[0] + p.bytes[1]);
	assert_int_equal(p.due[0], 0);
	assert_int_equal(p.due[1], 0);
	assert_int_equal(p.due[2], 2);
	assert_int_equal(p.due[3], 1);

	/* one batch of everything: every record, in due order */
	vc_plan_range(&p, 0, 5, &lo, &hi);
	names(&p, lo, hi, got, sizeof(got));
	assert_string_equal(got, "client:" TID ":" C3 " tenant:" TID " client:" TID ":" C2
				 " client:" TID ":" C1);
	/* batches of two: [0,2) the tenant's, the orphan's, C2's; [2,4) C1's;
	 * [4,5) none */
	vc_plan_range(&p, 0, 2, &lo, &hi);
	assert_int_equal(hi - lo, 3);
	vc_plan_range(&p, 2, 4, &lo, &hi);
	names(&p, lo, hi, got, sizeof(got));
	assert_string_equal(got, "client:" TID ":" C1);
	vc_plan_range(&p, 4, 5, &lo, &hi);
	assert_int_equal(hi, lo);
	/* a resume at 2 (the writer's position): only what is due from there */
	vc_plan_range(&p, 2, 5, &lo, &hi);
	assert_int_equal(hi - lo, 1);
	/* bytes by index */
	assert_int_equal(vc_plan_bytes_at(&p, 0), at_zero);
	assert_int_equal(vc_plan_bytes_at(&p, 1), p.bytes[3]);
	assert_int_equal(vc_plan_bytes_at(&p, 3), 0);
	vc_plan_release(&p);
	vc_keys_release(&k);
}

/* Any cut of the file into batches carries each record exactly once, in
 * the batch of the index it is due at; with many clients. */
static void every_cut_carries_each_record_once(void **state)
{
	(void)state;
	enum { CLIENTS = 3000, EVENTS = 9001 };
	VcKeyLines k = {0};
	VcPlan p;
	char name[128], id[37], why[256];
	size_t at_zero;
	remember(&k, "tenant:" TID, "{\"kind\":\"tenant\"}");
	for (int c = CLIENTS - 1; c >= 0; c--) { /* not in client id order */
		snprintf(name, sizeof(name), "client:" TID ":0190a1b2-0000-7000-8000-%012d", c);
		remember(&k, name, KEY);
	}
	assert_int_equal(vc_plan_init(&p, &k, TID, why, sizeof(why)), 0);
	assert_int_equal(p.n_clients, CLIENTS);
	/* client c's events at 1 + 3c, 2 + 3c, 3 + 3c */
	for (long long i = 1; i < EVENTS; i++) {
		snprintf(id, sizeof(id), "0190a1b2-0000-7000-8000-%012lld", (i - 1) / 3);
		size_t bytes = vc_plan_event(&p, id, i);
		assert_true((i - 1) % 3 == 0 ? bytes > 0 : bytes == 0);
	}
	assert_int_equal(vc_plan_finish(&p, &at_zero), 0);
	for (long long step = 1; step < 4000; step = step * 3 + 1) {
		size_t total = 0;
		for (long long from = 0; from < EVENTS; from += step) {
			size_t lo, hi;
			vc_plan_range(&p, from, from + step, &lo, &hi);
			for (size_t j = lo; j < hi; j++) {
				long long due = p.due[p.order[j]];
				assert_true(due >= from && due < from + step);
			}
			total += hi - lo;
		}
		assert_int_equal(total, k.n);
	}
	vc_plan_release(&p);
	vc_keys_release(&k);
}

/* A record's bytes are at least what it takes in a body. */
static void record_bytes_cover_the_escaped_record(void **state)
{
	(void)state;
	const char *value = "{\"kind\":\"client\",\"w\":\"a\\\\b\nc\x01\"}";
	const char *name = "client:" TID ":" C1;
	VpBuf b;
	vp_buf_init(&b, 256);
	vp_buf_append(&b, "{\"name\":", 8);
	vp_json_write_string(&b, name);
	vp_buf_append(&b, ",\"value\":", 9);
	vp_json_write_string(&b, value);
	vp_buf_append(&b, "},", 2);
	assert_true(vc_plan_record_bytes(name, value) >= b.len);
	assert_true(vc_plan_record_bytes(name, value) <= b.len + 16);
	vp_buf_free(&b);
}

/* Key lines of an import file: appended as they come (no scan of the names
 * held), a malformed one refused, a name twice refused by the plan. */
static void key_lines_parse_and_a_name_twice_is_refused(void **state)
{
	(void)state;
	VcKeyLines k = {0};
	VcPlan p;
	char why[256];
	const char *t = "{\"keyrec\":{\"name\":\"tenant:" TID "\",\"value\":"
			"\"{\\\"kind\\\":\\\"tenant\\\"}\"}}";
	const char *c = "{\"keyrec\":{\"name\":\"client:" TID ":" C1 "\",\"value\":"
			"\"{\\\"kind\\\":\\\"client\\\"}\"}}";
	assert_int_equal(vc_plan_parse_line(&k, "{\"id\":\"an event\"}", why, sizeof(why)), 0);
	assert_int_equal(vc_plan_parse_line(&k, "{\"keyrec\":{\"name\":\"x\"}}", why,
					    sizeof(why)), -1);
	assert_int_equal(vc_plan_parse_line(&k, t, why, sizeof(why)), 1);
	assert_int_equal(vc_plan_parse_line(&k, c, why, sizeof(why)), 1);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.name[1], "client:" TID ":" C1);
	assert_string_equal(k.value[1], "{\"kind\":\"client\"}");
	assert_int_equal(vc_plan_init(&p, &k, TID, why, sizeof(why)), 0);
	vc_plan_release(&p);
	assert_int_equal(vc_plan_parse_line(&k, c, why, sizeof(why)), 1);
	assert_int_equal(vc_plan_init(&p, &k, TID, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "twice"));
	vc_keys_release(&k);
	assert_int_equal(vc_plan_parse_line(&k, t, why, sizeof(why)), 1);
	assert_int_equal(vc_plan_parse_line(&k, t, why, sizeof(why)), 1);
	assert_int_equal(vc_plan_init(&p, &k, TID, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "tenant:" TID " twice"));
	vc_keys_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records_ride_with_their_clients_first_event),
		cmocka_unit_test(every_cut_carries_each_record_once),
		cmocka_unit_test(record_bytes_cover_the_escaped_record),
		cmocka_unit_test(key_lines_parse_and_a_name_twice_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
