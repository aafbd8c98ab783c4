/* Unit tests of common/vp_uuid.c: v7 layout, in-process monotonicity, and the
 * strict canonical text form. */
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "vp_uuid.h"

#define SEQUENCE_LEN 10000
#define N_THREADS 4
#define PER_THREAD 5000

typedef struct ThreadBatch {
	VpUuid ids[PER_THREAD];
} ThreadBatch;

static int setup_sodium(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static void v7_has_version_7_and_variant_10(void **state)
{
	VpUuid u;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		vp_uuid_v7(&u);
		assert_int_equal(u.bytes[6] >> 4, 7);
		assert_int_equal(u.bytes[8] >> 6, 2);
		assert_false(vp_uuid_is_nil(&u));
	}
}

static void v7_timestamp_is_unix_milliseconds_now(void **state)
{
	struct timespec ts;
	uint64_t before, after, stamp = 0;
	VpUuid u;
	int i;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	before = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	vp_uuid_v7(&u);
	clock_gettime(CLOCK_REALTIME, &ts);
	after = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (i = 0; i < 6; i++)
		stamp = stamp << 8 | u.bytes[i];
	/* Earlier ids in this process may have borrowed a millisecond or two. */
	assert_true(stamp + 2 >= before);
	assert_true(stamp <= after + 2);
}

static void v7_ids_made_in_sequence_strictly_increase(void **state)
{
	static VpUuid ids[SEQUENCE_LEN];
	char prev_text[37], text[37];
	int i;

	(void)state;
	for (i = 0; i < SEQUENCE_LEN; i++)
		vp_uuid_v7(&ids[i]);
	for (i = 1; i < SEQUENCE_LEN; i++) {
		assert_true(vp_uuid_cmp(&ids[i - 1], &ids[i]) < 0);
		vp_uuid_format(&ids[i - 1], prev_text);
		vp_uuid_format(&ids[i], text);
		assert_true(strcmp(prev_text, text) < 0);
		assert_int_equal(ids[i].bytes[6] >> 4, 7);
		assert_int_equal(ids[i].bytes[8] >> 6, 2);
	}
}

static void *make_batch(void *arg)
{
	ThreadBatch *batch = arg;
	int i;

	for (i = 0; i < PER_THREAD; i++)
		vp_uuid_v7(&batch->ids[i]);
	return NULL;
}

static int cmp_uuid_qsort(const void *a, const void *b)
{
	return vp_uuid_cmp(a, b);
}

static void v7_from_many_threads_are_unique_and_ordered_per_thread(void **state)
{
	pthread_t threads[N_THREADS];
	ThreadBatch *batches;
	VpUuid *all;
	int t, i;

	(void)state;
	batches = calloc(N_THREADS, sizeof(*batches));
	all = calloc(N_THREADS * PER_THREAD, sizeof(*all));
	assert_non_null(batches);
	assert_non_null(all);
	for (t = 0; t < N_THREADS; t++)
		assert_int_equal(pthread_create(&threads[t], NULL, make_batch, &batches[t]), 0);
	for (t = 0; t < N_THREADS; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);
	for (t = 0; t < N_THREADS; t++) {
		for (i = 1; i < PER_THREAD; i++)
			assert_true(vp_uuid_cmp(&batches[t].ids[i - 1], &batches[t].ids[i]) < 0);
		memcpy(&all[t * PER_THREAD], batches[t].ids, sizeof(batches[t].ids));
	}
	qsort(all, N_THREADS * PER_THREAD, sizeof(*all), cmp_uuid_qsort);
	for (i = 1; i < N_THREADS * PER_THREAD; i++)
		assert_int_not_equal(vp_uuid_cmp(&all[i - 1], &all[i]), 0);
	free(all);
	free(batches);
}

static void format_then_parse_round_trips(void **state)
{
	VpUuid u, back;
	char text[37];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		vp_uuid_v7(&u);
		vp_uuid_format(&u, text);
		assert_int_equal(strlen(text), 36);
		assert_int_equal(vp_uuid_parse(text, strlen(text), &back), 0);
		assert_int_equal(vp_uuid_cmp(&u, &back), 0);
	}
}

static void format_is_lower_case_canonical(void **state)
{
	VpUuid u;
	char text[37];

	(void)state;
	memcpy(u.bytes, "\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10", 16);
	vp_uuid_format(&u, text);
	assert_string_equal(text, "01234567-89ab-cdef-fedc-ba9876543210");
}

static void parse_accepts_upper_case_and_formats_lower(void **state)
{
	const char *upper = "0192F3A4-B5C6-7D8E-9FA0-B1C2D3E4F5A6";
	VpUuid u;
	char text[37];

	(void)state;
	assert_int_equal(vp_uuid_parse(upper, strlen(upper), &u), 0);
	vp_uuid_format(&u, text);
	assert_string_equal(text, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6");
}

static void parse_accepts_any_version_and_nil(void **state)
{
	const char *v4 = "550e8400-e29b-41d4-a716-446655440000";
	const char *nil = "00000000-0000-0000-0000-000000000000";
	VpUuid u;

	(void)state;
	assert_int_equal(vp_uuid_parse(v4, 36, &u), 0);
	assert_false(vp_uuid_is_nil(&u));
	assert_int_equal(vp_uuid_parse(nil, 36, &u), 0);
	assert_true(vp_uuid_is_nil(&u));
}

static void parse_refuses_every_malformed_form(void **state)
{
	static const char *const bad[] = {
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a",    /* 35 chars */
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6a",  /* 37 chars */
		"0192f3a4b5c6-7d8e-9fa0-b1c2d3e4f5a6a",   /* missing first hyphen */
		"0192f3a4-b5c67d8e-9fa0-b1c2d3e4f5a6a",   /* missing second */
		"0192f3a4-b5c6-7d8e9fa0-b1c2d3e4f5a6a",   /* missing third */
		"0192f3a4-b5c6-7d8e-9fa0b1c2d3e4f5a6a",   /* missing fourth */
		"0192f3a-4b5c6-7d8e-9fa0-b1c2d3e4f5a6",   /* hyphen one early */
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5g6",   /* 'g' */
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5 6",   /* space */
		"{192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6",   /* brace */
		"0192f3a4_b5c6_7d8e_9fa0_b1c2d3e4f5a6",   /* underscores */
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5-6",   /* extra hyphen */
		"0x92f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6",   /* 0x prefix */
		"",
	};
	const char with_nul[] = "0192f3a4-b5c6-7d8e-9fa0-b1c2d3\0e4f5a";
	VpUuid u;
	size_t i;

	(void)state;
	memset(&u, 0x5A, sizeof(u));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vp_uuid_parse(bad[i], strlen(bad[i]), &u), -1);
	assert_int_equal(sizeof(with_nul) - 1, 36);
	assert_int_equal(vp_uuid_parse(with_nul, sizeof(with_nul) - 1, &u), -1);
	/* A good string with a wrong len is refused, in both directions. */
	assert_int_equal(vp_uuid_parse("0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6", 35, &u), -1);
	assert_int_equal(vp_uuid_parse("0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6", 0, &u), -1);
	assert_int_equal(vp_uuid_parse(NULL, 36, &u), -1);
	/* Refusals leave the output untouched. */
	assert_int_equal(u.bytes[0], 0x5A);
	assert_int_equal(u.bytes[15], 0x5A);
}

static void cmp_orders_bytes_and_nil_is_all_zero(void **state)
{
	VpUuid a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_true(vp_uuid_is_nil(&a));
	assert_int_equal(vp_uuid_cmp(&a, &b), 0);
	b.bytes[15] = 1;
	assert_false(vp_uuid_is_nil(&b));
	assert_true(vp_uuid_cmp(&a, &b) < 0);
	assert_true(vp_uuid_cmp(&b, &a) > 0);
}

static void scan_finds_ids_in_either_case_in_order(void **state)
{
	static const char text[] = "{\"type\": \"ClientContactUpdated\", \"aggregate_id\": "
				   "\"0192F3A4-B5C6-7D8E-9FA0-B1C2D3E4F5A6\", \"x\":\"0192f3a4-b5c6-"
				   "7d8e-9fa0-b1c2d3e4f5a7\"";
	VpUuid ids[4];
	char first[37], second[37];

	(void)state;
	assert_int_equal(vp_uuid_scan(text, strlen(text), ids, 4), 2);
	vp_uuid_format(&ids[0], first);
	vp_uuid_format(&ids[1], second);
	assert_string_equal(first, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6");
	assert_string_equal(second, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a7");
	/* at most max, the first ones */
	assert_int_equal(vp_uuid_scan(text, strlen(text), ids, 1), 1);
	vp_uuid_format(&ids[0], first);
	assert_string_equal(first, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6");
}

static void scan_reads_no_byte_past_len_and_skips_what_is_no_id(void **state)
{
	static const char id[] = "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6";
	VpUuid ids[4];

	(void)state;
	/* exactly the id, in a buffer of its own length (ASan sees a read past) */
	char *exact = malloc(36);
	assert_non_null(exact);
	memcpy(exact, id, 36);
	assert_int_equal(vp_uuid_scan(exact, 36, ids, 4), 1);
	assert_int_equal(vp_uuid_scan(exact, 35, ids, 4), 0); /* cut by one */
	free(exact);
	assert_int_equal(vp_uuid_scan(NULL, 36, ids, 4), 0);
	assert_int_equal(vp_uuid_scan(id, 36, ids, 0), 0);
	static const char *const not_ids[] = {
		"0192f3a4b5c6-7d8e-9fa0-b1c2d3e4f5a6x", /* a hyphen moved */
		"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5ag", /* not hex */
		"{0192f3a4-b5c6-7d8e-9fa0_b1c2d3e4f5a6}", "",
	};
	for (size_t i = 0; i < sizeof(not_ids) / sizeof(not_ids[0]); i++)
		assert_int_equal(vp_uuid_scan(not_ids[i], strlen(not_ids[i]), ids, 4), 0);
	/* two ids back to back are two; text around them does not matter */
	char two[80];
	snprintf(two, sizeof(two), "%s%s-", id, id);
	assert_int_equal(vp_uuid_scan(two, strlen(two), ids, 4), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v7_has_version_7_and_variant_10),
		cmocka_unit_test(v7_timestamp_is_unix_milliseconds_now),
		cmocka_unit_test(v7_ids_made_in_sequence_strictly_increase),
		cmocka_unit_test(v7_from_many_threads_are_unique_and_ordered_per_thread),
		cmocka_unit_test(format_then_parse_round_trips),
		cmocka_unit_test(format_is_lower_case_canonical),
		cmocka_unit_test(parse_accepts_upper_case_and_formats_lower),
		cmocka_unit_test(parse_accepts_any_version_and_nil),
		cmocka_unit_test(parse_refuses_every_malformed_form),
		cmocka_unit_test(cmp_orders_bytes_and_nil_is_all_zero),
		cmocka_unit_test(scan_finds_ids_in_either_case_in_order),
		cmocka_unit_test(scan_reads_no_byte_past_len_and_skips_what_is_no_id),
	};

	return cmocka_run_group_tests_name("vp_uuid", tests, setup_sodium, NULL);
}
