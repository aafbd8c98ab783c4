/* query-reader/as_of.c's pure parts: the as_of parameter (RFC 3339, not in
 * the future) and the mechanical rewrite of a route's statement onto the
 * fold's temp tables, with now() read as as_of; also every route that answers
 * as_of has a statement the rewrite accepts. The fold itself is tested over
 * HTTP by tests/e2e/test_as_of.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "routes.h"
#include "vp_time.h"

static int64_t at(const char *text)
{
	int64_t us;
	assert_int_equal(vp_time_parse_rfc3339(text, strlen(text), &us), 0);
	return us;
}

static void test_parse_accepts_rfc3339_up_to_now(void **state)
{
	(void)state;
	VpError err;
	int64_t us, now = at("2026-11-30T12:00:00Z");
	vp_error_clear(&err);
	assert_int_equal(rd_asof_parse("2026-11-30T11:59:59.123456Z", now, &us, &err), 0);
	assert_true(us == at("2026-11-30T11:59:59.123456Z"));
	assert_int_equal(rd_asof_parse("2026-11-30T13:00:00+01:00", now, &us, &err), 0);
	assert_true(us == now);
	assert_int_equal(err.n_details, 0);
}

static void test_parse_refuses_malformed_and_future(void **state)
{
	(void)state;
	const char *bad[] = {"",
			     "2026-11-30",
			     "yesterday",
			     "2026-13-01T00:00:00Z",
			     "2026-11-30T12:00:00",
			     "2026-11-30T12:00:00Zjunk"};
	int64_t us, now = at("2026-11-30T12:00:00Z");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		VpError err;
		vp_error_clear(&err);
		assert_int_equal(rd_asof_parse(bad[i], now, &us, &err), -1);
		assert_int_equal(err.n_details, 1);
		assert_string_equal(err.details[0].field, "as_of");
	}
	VpError err;
	vp_error_clear(&err);
	assert_int_equal(rd_asof_parse("2026-11-30T12:00:00.000001Z", now, &us, &err), -1);
	assert_string_equal(err.details[0].issue, "must not be in the future");
}

static void test_sql_points_read_at_the_temp_tables(void **state)
{
	(void)state;
	bool reads_now = true;
	char *sql = rd_asof_sql("SELECT x FROM read.patients p JOIN read.tenants t"
				" ON t.spread.x = 1 WHERE thread.y = 2",
				3, &reads_now);
	assert_non_null(sql);
	assert_string_equal(sql, "SELECT x FROM pg_temp.patients p JOIN pg_temp.tenants t"
				 " ON t.spread.x = 1 WHERE thread.y = 2");
	assert_false(reads_now);
	free(sql);
}

static void test_sql_reads_now_as_the_parameter(void **state)
{
	(void)state;
	bool reads_now = false;
	char *sql =
	    rd_asof_sql("SELECT a < now() AND b < NOW() AND c.snow() FROM read.m", 3, &reads_now);
	assert_non_null(sql);
	assert_string_equal(sql, "SELECT a < $3::timestamptz AND b < $3::timestamptz AND "
				 "c.snow() FROM pg_temp.m");
	assert_true(reads_now);
	free(sql);
}

static void test_sql_with_another_clock_is_refused(void **state)
{
	(void)state;
	bool reads_now;
	assert_null(rd_asof_sql("SELECT current_date FROM read.m", 3, &reads_now));
	assert_null(rd_asof_sql("SELECT clock_timestamp()", 3, &reads_now));
	assert_null(rd_asof_sql("SELECT CURRENT_TIMESTAMP", 3, &reads_now));
}

/* Every route that answers as_of: an item whose statement the rewrite takes,
 * and nothing of schema read left in it. */
static void test_every_as_of_route_rewrites(void **state)
{
	(void)state;
	int routes = 0;
	for (const RdRoute *const *group = rd_route_groups; *group; group++)
		for (const RdRoute *route = *group; route->pattern; route++) {
			if (!route->as_of_roles)
				continue;
			bool reads_now;
			char *sql =
			    rd_asof_sql(route->stmt->sql, route->stmt->n_params + 1, &reads_now);
			assert_non_null(sql);
			assert_int_equal(route->shape, RD_SHAPE_ITEM);
			assert_null(strstr(sql, "read."));
			assert_non_null(strstr(sql, "pg_temp."));
			free(sql);
			routes++;
		}
	assert_int_equal(routes, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts_rfc3339_up_to_now),
	    cmocka_unit_test(test_parse_refuses_malformed_and_future),
	    cmocka_unit_test(test_sql_points_read_at_the_temp_tables),
	    cmocka_unit_test(test_sql_reads_now_as_the_parameter),
	    cmocka_unit_test(test_sql_with_another_clock_is_refused),
	    cmocka_unit_test(test_every_as_of_route_rewrites),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
