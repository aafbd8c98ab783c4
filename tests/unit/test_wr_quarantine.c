/* The quarantine list of cmd-writer (--quarantine "P:O,P:O"): exact positions
 * only, anything else refuses to start, so a typo can neither quarantine the
 * wrong record nor silently quarantine nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "writer.h"

static void empty_means_none(void **state)
{
	(void)state;
	WrQuarantine q;
	char why[256];
	assert_int_equal(wr_quarantine_parse("", &q, why, sizeof(why)), 0);
	assert_int_equal(q.len, 0);
	assert_false(wr_quarantined(&q, 0, 0));
	assert_int_equal(wr_quarantine_parse(NULL, &q, why, sizeof(why)), 0);
	assert_int_equal(q.len, 0);
	wr_quarantine_clear(&q);
}

static void exact_positions_only(void **state)
{
	(void)state;
	WrQuarantine q;
	char why[256];
	assert_int_equal(wr_quarantine_parse("3:17,0:9223372036854775807,3:2", &q, why,
					     sizeof(why)),
			 0);
	assert_int_equal(q.len, 3);
	assert_true(wr_quarantined(&q, 3, 17));
	assert_true(wr_quarantined(&q, 3, 2));
	assert_true(wr_quarantined(&q, 0, INT64_MAX));
	/* neighbours and the same offset elsewhere are not quarantined */
	assert_false(wr_quarantined(&q, 3, 16));
	assert_false(wr_quarantined(&q, 3, 18));
	assert_false(wr_quarantined(&q, 0, 17));
	assert_false(wr_quarantined(&q, 17, 3));
	wr_quarantine_clear(&q);
	assert_int_equal(q.len, 0);
}

static void bad_syntax_is_refused_naming_the_item(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"3",	  "3:",	      ":17",	"3:17,",      ",3:17",	   "3:17,,4:1", "3:17 ",
		" 3:17",  "3:17, 4:1", "-1:5",	"3:-5",	      "+3:5",	   "3:+5",	"3;17",
		"3:17:1", "a:1",      "3:1a",	"0x1:2",      "3:17\n",	   "2147483648:0",
		"1:9223372036854775808", "99999999999999999999:1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		WrQuarantine q;
		char why[256] = "";
		assert_int_equal(wr_quarantine_parse(bad[i], &q, why, sizeof(why)), -1);
		assert_int_equal(q.len, 0);
		assert_null(q.positions);
		assert_non_null(strstr(why, "is not PARTITION:OFFSET"));
	}
	WrQuarantine q;
	char why[256];
	assert_int_equal(wr_quarantine_parse("1:2,3:x4,5:6", &q, why, sizeof(why)), -1);
	assert_string_equal(why, "quarantine: \"3:x4\" is not PARTITION:OFFSET");
}

static void a_position_listed_twice_is_refused(void **state)
{
	(void)state;
	WrQuarantine q;
	char why[256];
	assert_int_equal(wr_quarantine_parse("1:5,2:5,1:5", &q, why, sizeof(why)), -1);
	assert_string_equal(why, "quarantine: 1:5 is listed twice");
	assert_int_equal(q.len, 0);
	assert_int_equal(wr_quarantine_parse("2147483647:0", &q, why, sizeof(why)), 0);
	assert_true(wr_quarantined(&q, 2147483647, 0));
	wr_quarantine_clear(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_means_none),
		cmocka_unit_test(exact_positions_only),
		cmocka_unit_test(bad_syntax_is_refused_naming_the_item),
		cmocka_unit_test(a_position_listed_twice_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
