/* query-reader/static.c's pure parts: which request paths name which file of
 * the dashboard page (or Chart.js under vendor/), the name check that keeps a
 * request inside its folder, and the Content-Type of each extension. The files
 * themselves (O_NOFOLLOW, regular files only, headers, 304) are tested over HTTP
 * by tests/e2e/test_dashboard_page.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "reader.h"

static void test_paths_outside_app_are_left_alone(void **state)
{
	(void)state;
	const char *name = "x";
	assert_int_equal(rd_static_map("/v1/staff", &name), RD_STATIC_NONE);
	assert_null(name);
	assert_int_equal(rd_static_map("/", &name), RD_STATIC_NONE);
	assert_int_equal(rd_static_map("/application", &name), RD_STATIC_NONE);
	assert_int_equal(rd_static_map("/apps/", &name), RD_STATIC_NONE);
	assert_int_equal(rd_static_map("/APP/", &name), RD_STATIC_NONE);
	assert_int_equal(rd_static_map("", &name), RD_STATIC_NONE);
}

static void test_app_redirects_and_index(void **state)
{
	(void)state;
	const char *name;
	assert_int_equal(rd_static_map("/app", &name), RD_STATIC_REDIRECT);
	assert_int_equal(rd_static_map("/app/", &name), RD_STATIC_APP);
	assert_string_equal(name, "index.html");
	assert_int_equal(rd_static_map("/app/app.js", &name), RD_STATIC_APP);
	assert_string_equal(name, "app.js");
	assert_int_equal(rd_static_map("/app/vendor/chart.min.js", &name), RD_STATIC_VENDOR);
	assert_string_equal(name, "chart.min.js");
}

static void test_escapes_and_odd_names_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "/app/../Makefile", "/app/..", "/app/../", "/app/a/../b.js", "/app/vendor/../app.js",
	    "/app/vendor/", "/app/vendor", "/app//app.js", "/app/app.js/", "/app/.env.js",
	    "/app/.app.js", "/app/-x.js", "/app/_x.js", "/app/a..js", "/app/sub/app.js",
	    "/app/vendor/chunks/helpers.segment.js", "/app/app.js%00.html", "/app/app js",
	    "/app/app\\x.js", "/app/Makefile", "/app/app.exe", "/app/app.JS", "/app/.js",
	    "/app/index.html~", "/app/\xc3\xa9.js",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = "x";
		if (rd_static_map(bad[i], &name) != RD_STATIC_BAD)
			fail_msg("%s was not refused", bad[i]);
		assert_null(name);
	}
}

static void test_name_length_is_capped(void **state)
{
	(void)state;
	char name[RD_STATIC_MAX_NAME + 2];
	memset(name, 'a', sizeof(name));
	strcpy(name + RD_STATIC_MAX_NAME - 3, ".js"); /* exactly the cap */
	assert_true(rd_static_name_ok(name));
	memset(name, 'a', sizeof(name));
	strcpy(name + RD_STATIC_MAX_NAME - 2, ".js"); /* one over */
	assert_false(rd_static_name_ok(name));
	assert_false(rd_static_name_ok(""));
}

static void test_content_types(void **state)
{
	(void)state;
	assert_string_equal(rd_static_content_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(rd_static_content_type("app.css"), "text/css; charset=utf-8");
	assert_string_equal(rd_static_content_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(rd_static_content_type("chart.mjs"), "text/javascript; charset=utf-8");
	assert_string_equal(rd_static_content_type("logo.png"), "image/png");
	assert_string_equal(rd_static_content_type("logo.svg"), "image/svg+xml");
	assert_null(rd_static_content_type("app.js.map"));
	assert_null(rd_static_content_type("html"));
	assert_null(rd_static_content_type("README"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths_outside_app_are_left_alone),
	    cmocka_unit_test(test_app_redirects_and_index),
	    cmocka_unit_test(test_escapes_and_odd_names_are_refused),
	    cmocka_unit_test(test_name_length_is_capped),
	    cmocka_unit_test(test_content_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
