/* Unit tests of the signed pagination cursors: round trip, tampering of either
 * part, another key, malformed text, size bounds and key derivation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "vp_cursor.h"

static VpCursorKey key;
static VpCursorKey other_key;

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (vp_cursor_key_derive(&key, "0123456789abcdef-secret", 23, "vetpms cursor v1") < 0)
		return -1;
	vp_cursor_key_random(&other_key);
	return 0;
}

static void test_round_trip(void **state)
{
	char out[VP_CURSOR_MAX_PAYLOAD + 1];
	const char *payload = "clients|2026-11-22 09:30:00.123456+00|0193a5c2-0000-7000-8000-000000000001";
	(void)state;
	char *c = vp_cursor_encode(&key, payload, strlen(payload));
	assert_non_null(c);
	assert_null(strpbrk(c, "+/=\"\\ "));
	assert_int_equal(vp_cursor_decode(&key, c, strlen(c), out, sizeof(out)), 0);
	assert_string_equal(out, payload);
	free(c);
}

static void test_tampering_is_refused(void **state)
{
	char out[64];
	(void)state;
	char *c = vp_cursor_encode(&key, "events|2|41", 11);
	assert_non_null(c);
	size_t len = strlen(c);
	for (size_t i = 0; i < len; i++) {
		char saved = c[i];
		c[i] = saved == 'A' ? 'B' : 'A';
		assert_int_equal(vp_cursor_decode(&key, c, len, out, sizeof(out)), -1);
		assert_string_equal(out, "");
		c[i] = saved;
	}
	assert_int_equal(vp_cursor_decode(&key, c, len, out, sizeof(out)), 0);
	assert_int_equal(vp_cursor_decode(&other_key, c, len, out, sizeof(out)), -1);
	assert_int_equal(vp_cursor_decode(&key, c, len - 1, out, sizeof(out)), -1);
	free(c);
}

static void test_malformed_text_is_refused(void **state)
{
	char out[64];
	static const char *const bad[] = {"", ".", "abc", "abc.", ".abc", "a.b.c", "!!!.???",
					  "ZXZlbnRz.ZXZlbnRz"};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vp_cursor_decode(&key, bad[i], strlen(bad[i]), out, sizeof(out)),
				 -1);
	assert_int_equal(vp_cursor_decode(&key, NULL, 0, out, sizeof(out)), -1);
}

static void test_size_bounds(void **state)
{
	char big[VP_CURSOR_MAX_PAYLOAD + 2];
	char small_out[4];
	(void)state;
	memset(big, 'x', sizeof(big));
	assert_null(vp_cursor_encode(&key, big, VP_CURSOR_MAX_PAYLOAD + 1));
	assert_null(vp_cursor_encode(&key, big, 0));
	char *c = vp_cursor_encode(&key, big, VP_CURSOR_MAX_PAYLOAD);
	assert_non_null(c);
	free(c);
	c = vp_cursor_encode(&key, "abcd", 4);
	assert_non_null(c);
	/* "abcd" plus its NUL does not fit in 4 bytes */
	assert_int_equal(vp_cursor_decode(&key, c, strlen(c), small_out, sizeof(small_out)), -1);
	free(c);
}

static void test_derivation_needs_a_real_secret_and_separates_labels(void **state)
{
	VpCursorKey a, b;
	(void)state;
	assert_int_equal(vp_cursor_key_derive(&a, "short", 5, "x"), -1);
	assert_int_equal(vp_cursor_key_derive(&a, "0123456789abcdef", 16, "one"), 0);
	assert_int_equal(vp_cursor_key_derive(&b, "0123456789abcdef", 16, "two"), 0);
	assert_memory_not_equal(a.bytes, b.bytes, sizeof(a.bytes));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_tampering_is_refused),
	    cmocka_unit_test(test_malformed_text_is_refused),
	    cmocka_unit_test(test_size_bounds),
	    cmocka_unit_test(test_derivation_needs_a_real_secret_and_separates_labels),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
