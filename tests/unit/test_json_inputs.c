/* Unit tests of the input helpers vp_json adds for issue 10: printable UTF-8
 * for stored header-like values, lower-casing every UUID member a field table
 * names (nested too), and the issue a time gets when only its UTC instant
 * leaves years 1-9999. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_json.h"

static void printable_utf8(void **state)
{
	(void)state;
	const char *good[] = {"abc", "order-42:retry", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x90\xb6",
			      "\xc2\xa0" /* U+00A0, the first after C1 */, ""};
	const char *bad[] = {"\xff\xfe", "a\x01", "a\tb", "a\x7f", "\xc2\x80", "x\xc2\x9f",
			     "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!vp_utf8_printable(good[i], strlen(good[i])))
			fail_msg("good[%zu] refused", i);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vp_utf8_printable(bad[i], strlen(bad[i])))
			fail_msg("bad[%zu] accepted", i);
	assert_false(vp_utf8_printable("a\0b", 3)); /* NUL is a control character */
}

static const VpJsonField block_fields[] = {
	{.name = "vet_id", .type = VP_JSON_UUID},
	{.name = "note", .type = VP_JSON_STRING},
};
static const VpJsonField owner_fields[] = {
	{.name = "client_id", .type = VP_JSON_UUID},
};
static const VpJsonField fields[] = {
	{.name = "id", .type = VP_JSON_UUID},
	{.name = "client_id", .type = VP_JSON_UUID, .required = true},
	{.name = "name", .type = VP_JSON_STRING},
	{.name = "owner", .type = VP_JSON_OBJECT, .fields = owner_fields, .n_fields = 1},
	{.name = "blocks", .type = VP_JSON_ARRAY, .fields = block_fields, .n_fields = 2},
	{.name = "at", .type = VP_JSON_TIME},
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static cJSON *parsed(const char *text)
{
	cJSON *body = NULL;
	VpError err;
	vp_error_clear(&err);
	assert_int_equal(vp_json_parse(text, strlen(text), &body, &err), 0);
	return body;
}

static void uuids_lowered_everywhere_the_table_says(void **state)
{
	(void)state;
	cJSON *body = parsed("{\"id\":\"0190B0A2-1C2D-7E3F-8A4B-5C6D7E8F9A0B\","
			     "\"client_id\":\"ABCDEF01-2345-6789-ABCD-EF0123456789\","
			     "\"name\":\"ABCDEF01-2345-6789-ABCD-EF0123456789\","
			     "\"owner\":{\"client_id\":\"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\"},"
			     "\"blocks\":[{\"vet_id\":\"AAAAAAAA-0000-7000-8000-00000000000A\","
			     "\"note\":\"KEEP\"},{\"note\":\"x\"}],"
			     "\"at\":\"2026-11-22T09:30:00Z\"}");
	VpError err;
	vp_error_clear(&err);
	assert_int_equal(vp_json_check(body, fields, N_FIELDS, false, &err), 0);
	vp_json_uuids_lower(body, fields, N_FIELDS);
	char *text = vp_json_print(body);
	assert_string_equal(text, "{\"id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\","
				  "\"client_id\":\"abcdef01-2345-6789-abcd-ef0123456789\","
				  "\"name\":\"ABCDEF01-2345-6789-ABCD-EF0123456789\","
				  "\"owner\":{\"client_id\":\"ffffffff-ffff-ffff-ffff-ffffffffffff\"},"
				  "\"blocks\":[{\"vet_id\":\"aaaaaaaa-0000-7000-8000-00000000000a\","
				  "\"note\":\"KEEP\"},{\"note\":\"x\"}],"
				  "\"at\":\"2026-11-22T09:30:00Z\"}");
	free(text);
	cJSON_Delete(body);
}

static void upper_and_lower_print_the_same(void **state)
{
	(void)state;
	cJSON *upper = parsed("{\"client_id\":\"ABCDEF01-2345-6789-ABCD-EF0123456789\"}");
	cJSON *lower = parsed("{\"client_id\":\"abcdef01-2345-6789-abcd-ef0123456789\"}");
	vp_json_uuids_lower(upper, fields, N_FIELDS);
	vp_json_uuids_lower(lower, fields, N_FIELDS);
	char *a = vp_json_print(upper), *b = vp_json_print(lower);
	assert_string_equal(a, b);
	free(a);
	free(b);
	cJSON_Delete(upper);
	cJSON_Delete(lower);
}

static void what_is_not_uuid_text_is_left_alone(void **state)
{
	(void)state;
	cJSON *body = parsed("{\"client_id\":42,\"owner\":\"NOT-AN-OBJECT\",\"blocks\":{\"vet_id\":"
			     "\"AAAAAAAA-0000-7000-8000-00000000000A\"},\"id\":\"NOPE\"}");
	vp_json_uuids_lower(body, fields, N_FIELDS);
	vp_json_uuids_lower(NULL, fields, N_FIELDS);
	char *text = vp_json_print(body);
	assert_string_equal(text, "{\"client_id\":42,\"owner\":\"NOT-AN-OBJECT\",\"blocks\":{\"vet_id\":"
				  "\"AAAAAAAA-0000-7000-8000-00000000000A\"},\"id\":\"NOPE\"}");
	free(text);
	cJSON_Delete(body);
}

static const char *time_issue(const char *value)
{
	static VpError err;
	char text[128];
	snprintf(text, sizeof(text), "{\"client_id\":\"abcdef01-2345-6789-abcd-ef0123456789\","
				     "\"at\":\"%s\"}", value);
	cJSON *body = parsed(text);
	vp_error_clear(&err);
	int rc = vp_json_check(body, fields, N_FIELDS, false, &err);
	cJSON_Delete(body);
	if (rc == 0)
		return NULL;
	assert_int_equal(err.n_details, 1);
	assert_string_equal(err.details[0].field, "at");
	return err.details[0].issue;
}

static void utc_outside_years_1_to_9999_says_so(void **state)
{
	(void)state;
	const char *range = "must fall in years 0001-9999 once in UTC";
	const char *syntax = "must be an RFC 3339 time with offset";
	assert_string_equal(time_issue("0001-01-01T00:00:00+00:01"), range);
	assert_string_equal(time_issue("9999-12-31T23:59:59-00:01"), range);
	assert_string_equal(time_issue("9999-12-31T23:00:00.5-23:59"), range);
	assert_null(time_issue("0001-01-01T00:00:00-00:01"));
	assert_null(time_issue("9999-12-31T23:59:59+00:01"));
	assert_null(time_issue("0001-01-01T00:00:00Z"));
	/* a bad offset or a bad text stays a syntax issue */
	assert_string_equal(time_issue("0001-01-01T00:00:00+24:00"), syntax);
	assert_string_equal(time_issue("0001-01-01T00:00:00+00:60"), syntax);
	assert_string_equal(time_issue("0000-01-01T00:00:00+00:00"), syntax);
	assert_string_equal(time_issue("2026-02-30T00:00:00+01:00"), syntax);
	assert_string_equal(time_issue("2026-01-01T00:00:00"), syntax);
	assert_string_equal(time_issue("+00:01"), syntax);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(printable_utf8),
		cmocka_unit_test(uuids_lowered_everywhere_the_table_says),
		cmocka_unit_test(upper_and_lower_print_the_same),
		cmocka_unit_test(what_is_not_uuid_text_is_left_alone),
		cmocka_unit_test(utc_outside_years_1_to_9999_says_so),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
