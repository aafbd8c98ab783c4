/* Unit tests of vetctl/tenant_keys.c's store of key records by name
 * (vc_keys_remember, behind `vetctl keys rotate-master` and `tenant export`):
 * it keeps the record that counts (vp_keyrec_newer.h), the keyring's rule,
 * whatever order the keys topic's partitions were read in; and what a file
 * of erasure markers alone needs at import (no transport key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tenant_keys.h"

#define T      "tenant:0190a1b2-0000-7000-8000-000000000001"
#define C      "client:0190a1b2-0000-7000-8000-000000000001:0190a1b2-0000-7000-8000-000000000002"
#define OLD    "{\"kind\":\"tenant\",\"kek_id\":\"a\",\"created_at\":\"2026-01-01T00:00:00Z\"}"
#define NEW    "{\"kind\":\"tenant\",\"kek_id\":\"b\",\"created_at\":\"2026-11-30T00:00:00Z\"}"
#define KEY    "{\"kind\":\"client\",\"kek_id\":\"k\",\"wrapped\":\"w\"}"
#define ERASED "{\"kind\":\"erased\",\"erased_at\":\"2026-11-30T10:00:00Z\"}"

static void remember(VcKeyLines *k, const char *name, const char *value)
{
	assert_int_equal(vc_keys_remember(k, name, strlen(name), value, value ? strlen(value) : 0),
			 0);
}

/* The value kept for name after reading a then b. */
static void kept_after(const char *name, const char *a, const char *b, const char *want)
{
	VcKeyLines k = {0};
	remember(&k, name, a);
	remember(&k, name, b);
	assert_int_equal(k.n, 1);
	if (want)
		assert_string_equal(k.value[0], want);
	else
		assert_null(k.value[0]);
	vc_keys_release(&k);
}

static void the_newest_tenant_record_is_kept_in_either_order(void **state)
{
	(void)state;
	kept_after(T, OLD, NEW, NEW);
	kept_after(T, NEW, OLD, NEW); /* main kept OLD: the last read */
}

static void an_erasure_marker_is_kept_in_either_order(void **state)
{
	(void)state;
	kept_after(C, KEY, ERASED, ERASED);
	kept_after(C, ERASED, KEY, ERASED); /* main kept the key: exported an erased client's */
}

static void a_tombstone_is_kept_and_a_record_after_it_counts(void **state)
{
	(void)state;
	kept_after(T, NEW, NULL, NULL);
	kept_after(T, NULL, OLD, OLD);
	kept_after(C, ERASED, NULL, NULL);
}

static void names_are_kept_apart_in_first_read_order(void **state)
{
	(void)state;
	VcKeyLines k = {0};
	remember(&k, C, ERASED);
	remember(&k, T, NEW);
	remember(&k, C, KEY);
	remember(&k, T, OLD);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.name[0], C);
	assert_string_equal(k.value[0], ERASED);
	assert_string_equal(k.name[1], T);
	assert_string_equal(k.value[1], NEW);
	vc_keys_release(&k);
}

/* Many names, each read twice: one entry each, in first-read order, the
 * second record kept where it counts, across the table's growth and after
 * names were appended without it (vc_keys_append, the import's parser). */
static void many_names_each_keep_one_entry(void **state)
{
	(void)state;
	enum { N = 20000 };
	char name[96];
	VcKeyLines k = {0};
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "client:t:a%d", i);
		assert_int_equal(vc_keys_append(&k, name, strlen(name), KEY, strlen(KEY)), 0);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "client:t:%d", i);
		remember(&k, name, KEY);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "client:t:%d", i);
		remember(&k, name, i % 2 ? ERASED : KEY);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "client:t:a%d", i);
		remember(&k, name, ERASED);
	}
	assert_int_equal(k.n, 100 + N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "client:t:%d", i);
		assert_string_equal(k.name[100 + i], name);
		assert_string_equal(k.value[100 + i], i % 2 ? ERASED : KEY);
	}
	assert_string_equal(k.value[0], ERASED);
	vc_keys_release(&k);
}

/* A file of erasure markers only carries no key: vc_keys_check takes it
 * without a transport key; a client key without its tenant's is refused. */
static void markers_alone_need_no_transport_key(void **state)
{
	(void)state;
	char why[256];
	const char *tenant = "0190a1b2-0000-7000-8000-000000000001";
	VcKeyLines k = {0};
	assert_true(vc_keys_markers_only(&k));
	remember(&k, C, ERASED);
	assert_true(vc_keys_markers_only(&k));
	assert_int_equal(vc_keys_check(&k, tenant, NULL, why, sizeof(why)), 0);
	remember(&k, C "3", KEY); /* another client, with a key */
	assert_false(vc_keys_markers_only(&k));
	assert_int_equal(vc_keys_check(&k, tenant, NULL, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not the tenant's key"));
	vc_keys_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_newest_tenant_record_is_kept_in_either_order),
	    cmocka_unit_test(an_erasure_marker_is_kept_in_either_order),
	    cmocka_unit_test(a_tombstone_is_kept_and_a_record_after_it_counts),
	    cmocka_unit_test(names_are_kept_apart_in_first_read_order),
	    cmocka_unit_test(many_names_each_keep_one_entry),
	    cmocka_unit_test(markers_alone_need_no_transport_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
