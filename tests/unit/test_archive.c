/* Unit tests of common/vp_archive.c: the cutoff of a tenant's setting (days
 * of 86 400 s before the pass's moment, 0 = never) and the time left of a
 * pass at the rate seen so far. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vp_archive.h"
#include "vp_time.h"

#define DAY_US (86400LL * 1000000LL)

static int64_t at(const char *rfc3339)
{
	int64_t us = 0;
	assert_int_equal(vp_time_parse_rfc3339(rfc3339, strlen(rfc3339), &us), 0);
	return us;
}

static void cutoff_is_days_before(void **state)
{
	(void)state;
	int64_t cutoff = 0;
	char text[40];
	assert_true(vp_archive_cutoff(at("2026-11-30T17:00:00.123456Z"), 730, &cutoff));
	vp_time_format_rfc3339_us(cutoff, text, sizeof(text));
	assert_string_equal(text, "2024-11-30T17:00:00.123456Z"); /* no 29 February between */
	assert_true(vp_archive_cutoff(at("2026-11-30T00:00:00Z"), 1, &cutoff));
	assert_int_equal(cutoff, at("2026-11-29T00:00:00Z"));
	/* whole days of 86 400 s, whatever the tenant's zone: no DST here */
	assert_true(vp_archive_cutoff(at("2026-03-30T12:00:00Z"), 2555, &cutoff));
	assert_int_equal(cutoff, at("2026-03-30T12:00:00Z") - 2555 * DAY_US);
}

static void zero_days_is_never(void **state)
{
	(void)state;
	int64_t cutoff = 42;
	assert_false(vp_archive_cutoff(at("2026-11-30T00:00:00Z"), 0, &cutoff));
	assert_int_equal(cutoff, 42); /* untouched */
	assert_false(vp_archive_cutoff(at("2026-11-30T00:00:00Z"), -1, &cutoff));
	assert_false(vp_archive_cutoff(at("2026-11-30T00:00:00Z"), 36501, &cutoff));
	assert_true(vp_archive_cutoff(at("2026-11-30T00:00:00Z"), 36500, &cutoff));
	/* no overflow near the bottom of the clock */
	assert_false(vp_archive_cutoff(INT64_MIN + DAY_US, 2, &cutoff));
}

static void eta_at_the_rate_so_far(void **state)
{
	(void)state;
	assert_int_equal(vp_archive_eta_s(100, 300, 2 * 1000000), 6);
	assert_int_equal(vp_archive_eta_s(3, 1, 1000000), 1); /* 0.33 s rounds up */
	assert_int_equal(vp_archive_eta_s(100, 0, 1000000), 0);
	assert_int_equal(vp_archive_eta_s(0, 10, 1000000), -1); /* no rate yet */
	assert_int_equal(vp_archive_eta_s(10, 10, 0), -1);
	assert_int_equal(vp_archive_eta_s(10, -1, 1000000), -1); /* left unknown */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cutoff_is_days_before),
		cmocka_unit_test(zero_days_is_never),
		cmocka_unit_test(eta_at_the_rate_so_far),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
