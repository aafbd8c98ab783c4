/* Unit tests of the bounded growable buffer: growth, the hard limit, sticky
 * failure, printf, take/reset/free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_buf.h"

static void test_empty_buffer_reads_as_empty_string(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 100);
	assert_string_equal(vp_buf_str(&b), "");
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	vp_buf_free(&b);
}

static void test_append_grows_past_initial_capacity(void **state)
{
	VpBuf b;
	char chunk[1000];
	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	vp_buf_init(&b, 1 << 20);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vp_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 100000);
	assert_int_equal(strlen(vp_buf_str(&b)), 100000);
	assert_true(b.cap >= b.len + 1);
	assert_false(b.oom);
	vp_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_limit_is_exact_and_failure_is_sticky(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 10);
	assert_int_equal(vp_buf_append(&b, "0123456789", 10), 0); /* exactly the limit */
	assert_true(b.cap <= 11);
	assert_int_equal(vp_buf_append(&b, "x", 1), -1);
	assert_true(b.oom);
	assert_string_equal(vp_buf_str(&b), "0123456789"); /* content unchanged */
	assert_int_equal(vp_buf_append(&b, "", 0), -1);	   /* sticky */
	assert_int_equal(vp_buf_printf(&b, "%d", 1), -1);
	assert_null(vp_buf_take(&b)); /* a failed text is never handed out */
	assert_null(b.data);
	vp_buf_free(&b);
}

static void test_oversized_single_append_is_refused_whole(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 5);
	assert_int_equal(vp_buf_append(&b, "ab", 2), 0);
	assert_int_equal(vp_buf_append(&b, "cdef", 4), -1);
	assert_string_equal(vp_buf_str(&b), "ab");
	assert_int_equal(b.len, 2);
	vp_buf_free(&b);
}

static void test_printf_formats_and_respects_limit(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 32);
	assert_int_equal(vp_buf_printf(&b, "%s=%d", "limit", 50), 0);
	assert_int_equal(vp_buf_puts(&b, ";"), 0);
	assert_int_equal(vp_buf_printf(&b, "%05.1f", 2.5), 0);
	assert_string_equal(vp_buf_str(&b), "limit=50;002.5");
	assert_int_equal(vp_buf_printf(&b, "%40s", "x"), -1);
	assert_true(b.oom);
	assert_string_equal(vp_buf_str(&b), "limit=50;002.5");
	vp_buf_free(&b);
}

static void test_printf_long_output_grows(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 4096);
	assert_int_equal(vp_buf_printf(&b, "%1000d|%1000d", 1, 2), 0);
	assert_int_equal(b.len, 2001);
	assert_int_equal(b.data[1000], '|');
	assert_int_equal(b.data[2000], '2');
	vp_buf_free(&b);
}

static void test_reset_clears_oom_and_keeps_memory(void **state)
{
	VpBuf b;
	char *kept;
	(void)state;
	vp_buf_init(&b, 4);
	assert_int_equal(vp_buf_puts(&b, "abcd"), 0);
	assert_int_equal(vp_buf_puts(&b, "e"), -1);
	kept = b.data;
	vp_buf_reset(&b);
	assert_false(b.oom);
	assert_ptr_equal(b.data, kept);
	assert_string_equal(vp_buf_str(&b), "");
	assert_int_equal(vp_buf_puts(&b, "xy"), 0);
	assert_string_equal(vp_buf_str(&b), "xy");
	vp_buf_free(&b);
}

static void test_take_hands_over_text(void **state)
{
	VpBuf b;
	char *text;
	(void)state;
	vp_buf_init(&b, 64);
	text = vp_buf_take(&b); /* even an empty buffer gives "" */
	assert_non_null(text);
	assert_string_equal(text, "");
	free(text);
	assert_int_equal(vp_buf_puts(&b, "hello"), 0);
	text = vp_buf_take(&b);
	assert_string_equal(text, "hello");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(vp_buf_puts(&b, "again"), 0); /* reusable */
	assert_string_equal(vp_buf_str(&b), "again");
	free(text);
	vp_buf_free(&b);
}

static void test_zero_limit_and_free_null(void **state)
{
	VpBuf b;
	(void)state;
	vp_buf_init(&b, 0);
	assert_int_equal(vp_buf_append(&b, "", 0), 0);
	assert_string_equal(vp_buf_str(&b), "");
	assert_int_equal(vp_buf_append(&b, "a", 1), -1);
	vp_buf_free(&b);
	vp_buf_free(NULL);
	vp_buf_init(&b, SIZE_MAX); /* the limit never wraps */
	assert_int_equal(vp_buf_puts(&b, "ok"), 0);
	vp_buf_free(&b);
}

/* A buffer on the caller's storage: no allocation while the text fits, the
 * text moved to the heap whole when it outgrows it, the storage never freed
 * (ASan would catch a free of the stack array) and take giving a copy. */
static void test_caller_storage_used_first_then_left(void **state)
{
	VpBuf b;
	char room[8], *text;
	(void)state;
	vp_buf_init_on(&b, room, sizeof(room), 100);
	assert_string_equal(vp_buf_str(&b), "");
	assert_int_equal(vp_buf_puts(&b, "abcdefg"), 0); /* 7 + NUL: fits exactly */
	assert_ptr_equal(b.data, room);
	assert_int_equal(vp_buf_puts(&b, "h"), 0); /* outgrows it */
	assert_ptr_not_equal(b.data, room);
	assert_string_equal(vp_buf_str(&b), "abcdefgh");
	assert_string_equal(room, "abcdefg"); /* the storage is left as it was */
	vp_buf_free(&b);

	vp_buf_init_on(&b, room, sizeof(room), 100);
	assert_int_equal(vp_buf_puts(&b, "short"), 0);
	text = vp_buf_take(&b);
	assert_ptr_not_equal(text, room);
	assert_string_equal(text, "short");
	free(text);
	assert_null(b.data);
	assert_int_equal(vp_buf_puts(&b, "reused on the heap"), 0);
	assert_string_equal(vp_buf_str(&b), "reused on the heap");
	vp_buf_free(&b);
}

/* The limit still holds on the caller's storage, even one larger than it. */
static void test_caller_storage_keeps_the_limit(void **state)
{
	VpBuf b;
	char room[64];
	(void)state;
	vp_buf_init_on(&b, room, sizeof(room), 4);
	assert_int_equal(vp_buf_puts(&b, "abcd"), 0);
	assert_int_equal(vp_buf_puts(&b, "e"), -1);
	assert_true(b.oom);
	assert_string_equal(vp_buf_str(&b), "abcd");
	vp_buf_reset(&b);
	assert_ptr_equal(b.data, room);
	assert_int_equal(vp_buf_printf(&b, "%d", 42), 0);
	assert_string_equal(vp_buf_str(&b), "42");
	vp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_buffer_reads_as_empty_string),
	    cmocka_unit_test(test_append_grows_past_initial_capacity),
	    cmocka_unit_test(test_limit_is_exact_and_failure_is_sticky),
	    cmocka_unit_test(test_oversized_single_append_is_refused_whole),
	    cmocka_unit_test(test_printf_formats_and_respects_limit),
	    cmocka_unit_test(test_printf_long_output_grows),
	    cmocka_unit_test(test_reset_clears_oom_and_keeps_memory),
	    cmocka_unit_test(test_take_hands_over_text),
	    cmocka_unit_test(test_zero_limit_and_free_null),
	    cmocka_unit_test(test_caller_storage_used_first_then_left),
	    cmocka_unit_test(test_caller_storage_keeps_the_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
