/* The declarative configuration: defaults, environment, flags (which win),
 * bounds and the refusals a mistyped option must get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_config.h"

static char *host;
static long port;
static bool verbose;

static const VpConfigItem items[] = {
	VP_CF_STR("host", "VPTEST_HOST", &host, "127.0.0.1", "address"),
	VP_CF_INT("port", "VPTEST_PORT", &port, "8080", 0, 65535, "port"),
	VP_CF_BOOL("verbose", "VPTEST_VERBOSE", &verbose, "false", "chatty"),
};
#define N_ITEMS (sizeof(items) / sizeof(items[0]))

static int load(int argc, char **argv, char *why)
{
	return vp_config_load(items, N_ITEMS, argc, argv, "usage: test", NULL, why, 256);
}

static int teardown(void **state)
{
	(void)state;
	vp_config_free(items, N_ITEMS);
	unsetenv("VPTEST_HOST");
	unsetenv("VPTEST_PORT");
	unsetenv("VPTEST_VERBOSE");
	return 0;
}

static void defaults_apply(void **state)
{
	(void)state;
	char why[256];
	char *argv[] = {"prog"};
	assert_int_equal(load(1, argv, why), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_false(verbose);
}

static void environment_overrides_default_and_flag_overrides_environment(void **state)
{
	(void)state;
	char why[256];
	setenv("VPTEST_HOST", "0.0.0.0", 1);
	setenv("VPTEST_PORT", "9000", 1);
	char *argv[] = {"prog", "--port", "9100", "--verbose"};
	assert_int_equal(load(4, argv, why), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 9100);
	assert_true(verbose);
	char *argv2[] = {"prog", "--port=9200", "--verbose=false"};
	assert_int_equal(load(3, argv2, why), 0);
	assert_int_equal(port, 9200);
	assert_false(verbose);
}

static void bad_values_are_refused_with_a_reason(void **state)
{
	(void)state;
	char why[256];
	char *out_of_range[] = {"prog", "--port", "70000"};
	assert_int_equal(load(3, out_of_range, why), -1);
	assert_non_null(strstr(why, "port"));
	char *not_a_number[] = {"prog", "--port", "80x"};
	assert_int_equal(load(3, not_a_number, why), -1);
	char *unknown[] = {"prog", "--nope"};
	assert_int_equal(load(2, unknown, why), -1);
	assert_non_null(strstr(why, "unknown option"));
	char *missing_value[] = {"prog", "--host"};
	assert_int_equal(load(2, missing_value, why), -1);
	char *positional[] = {"prog", "extra"};
	assert_int_equal(load(2, positional, why), -1);
	setenv("VPTEST_VERBOSE", "maybe", 1);
	char *argv[] = {"prog"};
	assert_int_equal(load(1, argv, why), -1);
	assert_non_null(strstr(why, "VPTEST_VERBOSE"));
}

static void extra_arguments_stop_flag_parsing(void **state)
{
	(void)state;
	char why[256];
	int first = 0;
	char *argv[] = {"prog", "--port", "1", "create", "--x"};
	assert_int_equal(vp_config_load(items, N_ITEMS, 5, argv, "u", &first, why, sizeof(why)), 0);
	assert_int_equal(first, 3);
	assert_int_equal(port, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(defaults_apply, teardown),
		cmocka_unit_test_teardown(
			environment_overrides_default_and_flag_overrides_environment, teardown),
		cmocka_unit_test_teardown(bad_values_are_refused_with_a_reason, teardown),
		cmocka_unit_test_teardown(extra_arguments_stop_flag_parsing, teardown),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
