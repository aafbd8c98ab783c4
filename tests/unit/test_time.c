/* Unit tests of common/vp_time.c: strict RFC 3339 and date parsing, UTC formatting,
 * leap years, pre-1970 instants and round trips. Inputs are copied into buffers of
 * exactly their length, so reading past len shows up under AddressSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_time.h"

#define SEC INT64_C(1000000)

/* Parses s from a heap copy without a NUL, so any read past len is caught. */
static int parse_exact(const char *s, int64_t *out_us)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rc = vp_time_parse_rfc3339(copy, len, out_us);
	free(copy);
	return rc;
}

static int parse_date_exact(const char *s, int32_t *out_days)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rc = vp_date_parse(copy, len, out_days);
	free(copy);
	return rc;
}

static int64_t must_parse(const char *s)
{
	int64_t us = 0;

	if (parse_exact(s, &us) != 0)
		fail_msg("refused: %s", s);
	return us;
}

static void parse_utc_known_instants(void **state)
{
	(void)state;
	assert_int_equal(must_parse("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(must_parse("2000-01-01T00:00:00Z"), INT64_C(946684800) * SEC);
	assert_int_equal(must_parse("2026-11-22T09:30:00Z"), INT64_C(1795339800) * SEC);
	assert_int_equal(must_parse("0001-01-01T00:00:00Z"), INT64_C(-62135596800) * SEC);
	assert_int_equal(must_parse("9999-12-31T23:59:59Z"), INT64_C(253402300799) * SEC);
}

static void parse_applies_offsets_to_utc(void **state)
{
	int64_t utc = must_parse("2026-11-22T09:30:00Z");

	(void)state;
	assert_int_equal(must_parse("2026-11-22T10:30:00+01:00"), utc);
	assert_int_equal(must_parse("2026-11-22T04:00:00-05:30"), utc);
	assert_int_equal(must_parse("2026-11-22T09:30:00+00:00"), utc);
	assert_int_equal(must_parse("2026-11-22T09:30:00-00:00"), utc);
	/* Offsets that cross a day and a year boundary. */
	assert_int_equal(must_parse("2026-11-23T08:29:00+23:59"), utc - 3600 * SEC);
	assert_int_equal(must_parse("2027-01-01T00:30:00+01:00"),
			 must_parse("2026-12-31T23:30:00Z"));
	assert_int_equal(must_parse("2026-12-31T19:00:00-05:00"),
			 must_parse("2027-01-01T00:00:00Z"));
}

/* An offset can carry a local time of year 0001 or 9999 out of the range the
 * formatters write: such an instant is refused, never half-parsed. Every
 * accepted instant formats back and parses to itself. */
static void parse_refuses_utc_instants_outside_years_1_to_9999(void **state)
{
	int64_t us = 42;
	char buf[VP_TIME_RFC3339_MAX];
	(void)state;
	assert_int_equal(parse_exact("0001-01-01T00:00:00+00:01", &us), -1);
	assert_int_equal(parse_exact("0001-01-01T23:58:59+23:59", &us), -1);
	assert_int_equal(parse_exact("9999-12-31T23:59:59-00:01", &us), -1);
	assert_int_equal(parse_exact("9999-12-31T00:01:00-23:59", &us), -1);
	assert_int_equal(us, 42);
	assert_int_equal(must_parse("0001-01-01T00:01:00+00:01"), VP_TIME_MIN_US);
	assert_int_equal(must_parse("0001-01-01T23:59:00+23:59"), VP_TIME_MIN_US);
	assert_int_equal(must_parse("9999-12-31T23:58:59.999999-00:01"), VP_TIME_MAX_US);
	assert_int_equal(must_parse("0001-01-01T00:00:00-23:59"),
			 VP_TIME_MIN_US + (23 * 3600 + 59 * 60) * SEC);
	const char *edges[] = {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00-00:01",
			       "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+23:59",
			       "0001-01-01T23:59:59+23:59"};
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		int64_t back = 0;
		us = must_parse(edges[i]);
		assert_true(vp_time_format_rfc3339_us(us, buf, sizeof(buf)) > 0);
		assert_int_equal(parse_exact(buf, &back), 0);
		assert_int_equal(back, us);
	}
}

static void parse_accepts_lower_case_t_and_z(void **state)
{
	int64_t utc = must_parse("2026-11-22T09:30:00Z");

	(void)state;
	assert_int_equal(must_parse("2026-11-22T09:30:00z"), utc);
	assert_int_equal(must_parse("2026-11-22t09:30:00Z"), utc);
}

static void parse_fractions_truncate_to_microseconds(void **state)
{
	int64_t base = must_parse("2026-11-22T09:30:00Z");

	(void)state;
	assert_int_equal(must_parse("2026-11-22T09:30:00.1Z"), base + 100000);
	assert_int_equal(must_parse("2026-11-22T09:30:00.12Z"), base + 120000);
	assert_int_equal(must_parse("2026-11-22T09:30:00.123456Z"), base + 123456);
	assert_int_equal(must_parse("2026-11-22T09:30:00.1234567Z"), base + 123456);
	assert_int_equal(must_parse("2026-11-22T09:30:00.999999999Z"), base + 999999);
	assert_int_equal(must_parse("2026-11-22T09:30:00.0000009Z"), base);
	assert_int_equal(must_parse("2026-11-22T10:30:00.5+01:00"), base + 500000);
}

static void parse_checks_leap_years(void **state)
{
	int64_t us;
	int32_t days;

	(void)state;
	assert_int_equal(parse_exact("2024-02-29T12:00:00Z", &us), 0);
	assert_int_equal(parse_exact("2000-02-29T12:00:00Z", &us), 0);
	assert_int_equal(parse_exact("2023-02-29T12:00:00Z", &us), -1);
	assert_int_equal(parse_exact("1900-02-29T12:00:00Z", &us), -1);
	assert_int_equal(parse_exact("2024-02-30T12:00:00Z", &us), -1);
	assert_int_equal(parse_date_exact("2024-02-29", &days), 0);
	assert_int_equal(parse_date_exact("2000-02-29", &days), 0);
	assert_int_equal(parse_date_exact("2023-02-29", &days), -1);
	assert_int_equal(parse_date_exact("1900-02-29", &days), -1);
	assert_int_equal(must_parse("2024-03-01T00:00:00Z") - must_parse("2024-02-28T00:00:00Z"),
			 2 * 86400 * SEC);
}

static void parse_refuses_every_malformed_input(void **state)
{
	static const char *const bad[] = {
		"2026-11-22T09:30:00",          /* offset missing */
		"2026-11-22T09:30:00.123",      /* offset missing after a fraction */
		"2026-11-22 09:30:00Z",         /* space for T */
		"2026-11-22X09:30:00Z",
		"2026-11-22T24:00:00Z",         /* hour 24 */
		"2026-11-22T09:60:00Z",
		"2026-11-22T09:30:60Z",         /* leap second: refused by choice */
		"2026-13-01T09:30:00Z",
		"2026-00-01T09:30:00Z",
		"2026-11-00T09:30:00Z",
		"2026-11-31T09:30:00Z",
		"0000-01-01T00:00:00Z",         /* year 0 */
		"2026-11-22T09:30:00Zjunk",     /* trailing garbage */
		"2026-11-22T09:30:00Z ",
		"2026-11-22T09:30:00+01:00x",
		"2026-11-22T09:30:00+01",       /* offset too short */
		"2026-11-22T09:30:00+0100",
		"2026-11-22T09:30:00+24:00",
		"2026-11-22T09:30:00+01:60",
		"2026-11-22T09:30:00.Z",        /* empty fraction */
		"2026-11-22T09:30:00.1234567890Z", /* 10 fraction digits */
		"2026-11-22T09:30:00,5Z",
		"2026-11-22T9:30:00Z",
		"2026-11-2T09:30:00Z",
		"26-11-22T09:30:00Z",
		"+2026-11-22T09:30:00Z",
		"2026/11/22T09:30:00Z",
		"2026-11-22T09-30-00Z",
		"2026-1a-22T09:30:00Z",
		"2026-11-22T09:30:0Z",          /* too short */
		"2026-11-22",
		"",
		" 2026-11-22T09:30:00Z",
	};
	const char with_nul[] = "2026-11-22T09:30:00\0Z";
	int64_t us = 42;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_exact(bad[i], &us) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(vp_time_parse_rfc3339(with_nul, sizeof(with_nul) - 1, &us), -1);
	/* A valid text cut short by len is refused. */
	assert_int_equal(vp_time_parse_rfc3339("2026-11-22T09:30:00Z", 19, &us), -1);
	assert_int_equal(vp_time_parse_rfc3339("2026-11-22T09:30:00+01:00", 24, &us), -1);
	assert_int_equal(vp_time_parse_rfc3339("2026-11-22T09:30:00.5Z", 21, &us), -1);
	assert_int_equal(vp_time_parse_rfc3339(NULL, 20, &us), -1);
	assert_int_equal(us, 42);
}

static void format_drops_zero_fraction_and_keeps_six_digits(void **state)
{
	char buf[VP_TIME_RFC3339_MAX];
	int64_t base = INT64_C(1795339800) * SEC;

	(void)state;
	assert_int_equal(vp_time_format_rfc3339(base, buf, sizeof(buf)), 20);
	assert_string_equal(buf, "2026-11-22T09:30:00Z");
	assert_int_equal(vp_time_format_rfc3339(base + 123456, buf, sizeof(buf)), 27);
	assert_string_equal(buf, "2026-11-22T09:30:00.123456Z");
	assert_int_equal(vp_time_format_rfc3339(base + 500000, buf, sizeof(buf)), 27);
	assert_string_equal(buf, "2026-11-22T09:30:00.500000Z");
	assert_int_equal(vp_time_format_rfc3339_us(base, buf, sizeof(buf)), 27);
	assert_string_equal(buf, "2026-11-22T09:30:00.000000Z");
	assert_int_equal(vp_time_format_rfc3339_us(base + 7, buf, sizeof(buf)), 27);
	assert_string_equal(buf, "2026-11-22T09:30:00.000007Z");
}

static void format_refuses_small_buffers_and_unrepresentable_years(void **state)
{
	char buf[VP_TIME_RFC3339_MAX];
	int64_t base = INT64_C(1795339800) * SEC;

	(void)state;
	assert_int_equal(vp_time_format_rfc3339(base, buf, 20), 0);
	assert_int_equal(vp_time_format_rfc3339(base, buf, 21), 20);
	assert_int_equal(vp_time_format_rfc3339_us(base, buf, 27), 0);
	assert_int_equal(vp_time_format_rfc3339_us(base, buf, 28), 27);
	assert_int_equal(vp_time_format_rfc3339(base, NULL, 0), 0);
	assert_int_equal(vp_time_format_rfc3339(INT64_C(-62135596800) * SEC - 1, buf, sizeof(buf)),
			 0);
	assert_int_equal(vp_time_format_rfc3339(INT64_C(253402300800) * SEC, buf, sizeof(buf)), 0);
	assert_int_equal(vp_time_format_rfc3339(INT64_MIN, buf, sizeof(buf)), 0);
	assert_int_equal(vp_time_format_rfc3339(INT64_MAX, buf, sizeof(buf)), 0);
	assert_int_equal(vp_date_format(0, buf, 10), 0);
	assert_int_equal(vp_date_format(0, buf, 11), 10);
	assert_int_equal(vp_date_format(INT32_MIN, buf, sizeof(buf)), 0);
	assert_int_equal(vp_date_format(INT32_MAX, buf, sizeof(buf)), 0);
}

static void pre_1970_instants_floor_correctly(void **state)
{
	char buf[VP_TIME_RFC3339_MAX];

	(void)state;
	vp_time_format_rfc3339(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
	assert_int_equal(must_parse("1969-12-31T23:59:59.999999Z"), -1);
	vp_time_format_rfc3339(-SEC, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	vp_time_format_rfc3339(INT64_C(-62135596800) * SEC, buf, sizeof(buf));
	assert_string_equal(buf, "0001-01-01T00:00:00Z");
	assert_int_equal(must_parse("1900-03-01T12:34:56.5+02:00"),
			 INT64_C(-2203853104) * SEC + 500000);
	vp_time_format_rfc3339(INT64_C(-2203853104) * SEC + 500000, buf, sizeof(buf));
	assert_string_equal(buf, "1900-03-01T10:34:56.500000Z");
	assert_int_equal(vp_date_from_us(-1), -1);
	assert_int_equal(vp_date_from_us(0), 0);
	assert_int_equal(vp_date_from_us(VP_US_PER_DAY - 1), 0);
	assert_int_equal(vp_date_from_us(-VP_US_PER_DAY), -1);
	assert_int_equal(vp_date_from_us(-VP_US_PER_DAY - 1), -2);
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static void random_instants_round_trip(void **state)
{
	const int64_t lo = INT64_C(-62135596800) * SEC;
	const int64_t hi = INT64_C(253402300800) * SEC - 1;
	uint64_t seed = UINT64_C(0x9E3779B97F4A7C15);
	char buf[VP_TIME_RFC3339_MAX];
	int i;

	(void)state;
	for (i = 0; i < 200000; i++) {
		uint64_t r = next_random(&seed);
		int64_t us = lo + (int64_t)(r % (uint64_t)(hi - lo + 1));
		int64_t back = 0;
		size_t n;

		if (i % 3 == 0)
			us -= us % SEC; /* whole seconds take the short form */
		n = (i % 2) ? vp_time_format_rfc3339(us, buf, sizeof(buf))
			    : vp_time_format_rfc3339_us(us, buf, sizeof(buf));
		assert_true(n == 20 || n == 27);
		assert_int_equal(strlen(buf), n);
		if (vp_time_parse_rfc3339(buf, n, &back) != 0)
			fail_msg("refused own output %s", buf);
		assert_int_equal(back, us);
		assert_int_equal(vp_date_from_us(us), vp_date_from_us(back));
	}
}

static void dates_parse_format_and_round_trip(void **state)
{
	static const char *const bad[] = {
		"2026-13-01", "2026-11-31", "2026-1-01", "2026-11-1", "20261122", "2026-11-22T",
		"2026-11-22 ", "0000-01-01", "2026/11/22", "", "-001-01-01",
	};
	char buf[VP_DATE_MAX];
	int32_t days = 7;
	int32_t d;
	size_t i;

	(void)state;
	assert_int_equal(parse_date_exact("1970-01-01", &days), 0);
	assert_int_equal(days, 0);
	assert_int_equal(parse_date_exact("1969-12-31", &days), 0);
	assert_int_equal(days, -1);
	assert_int_equal(parse_date_exact("2026-11-22", &days), 0);
	assert_int_equal(days, 20779);
	assert_int_equal(vp_date_from_us(must_parse("2026-11-22T23:59:59.999999Z")), 20779);
	assert_int_equal(vp_date_from_us(must_parse("2026-11-22T23:30:00-01:00")), 20780);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_date_exact(bad[i], &days) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(days, 20779);
	assert_int_equal(vp_date_format(-1, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "1969-12-31");
	for (d = -719162; d <= 2932896; d += 37) {
		int32_t back = 0;

		assert_int_equal(vp_date_format(d, buf, sizeof(buf)), 10);
		assert_int_equal(vp_date_parse(buf, 10, &back), 0);
		assert_int_equal(back, d);
	}
	assert_int_equal(vp_date_format(-719162, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "0001-01-01");
	assert_int_equal(vp_date_format(2932896, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "9999-12-31");
	assert_int_equal(vp_date_format(-719163, buf, sizeof(buf)), 0);
	assert_int_equal(vp_date_format(2932897, buf, sizeof(buf)), 0);
}

static void clocks_are_sane(void **state)
{
	int64_t now = vp_time_now_us();
	int64_t m1 = vp_time_mono_us();
	int64_t m2 = vp_time_mono_us();

	(void)state;
	assert_true(now > INT64_C(1704067200) * SEC); /* after 2024-01-01 */
	assert_true(m1 > 0);
	assert_true(m2 >= m1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_utc_known_instants),
		cmocka_unit_test(parse_applies_offsets_to_utc),
		cmocka_unit_test(parse_refuses_utc_instants_outside_years_1_to_9999),
		cmocka_unit_test(parse_accepts_lower_case_t_and_z),
		cmocka_unit_test(parse_fractions_truncate_to_microseconds),
		cmocka_unit_test(parse_checks_leap_years),
		cmocka_unit_test(parse_refuses_every_malformed_input),
		cmocka_unit_test(format_drops_zero_fraction_and_keeps_six_digits),
		cmocka_unit_test(format_refuses_small_buffers_and_unrepresentable_years),
		cmocka_unit_test(pre_1970_instants_floor_correctly),
		cmocka_unit_test(random_instants_round_trip),
		cmocka_unit_test(dates_parse_format_and_round_trip),
		cmocka_unit_test(clocks_are_sane),
	};

	return cmocka_run_group_tests_name("vp_time", tests, NULL, NULL);
}
