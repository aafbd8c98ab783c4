/* Unit tests of the API error: setting, details and their cap, the validation
 * finish, and the JSON body (escaping, UTF-8, truncation marker, timestamp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "vp_error.h"

#define T_2026_11_22_103000 1795343400LL /* seconds since the epoch */

/* Parses a body, checks its shape and returns the inner "error" object; the
 * caller cJSON_Deletes *root. */
static cJSON *parse_error_body(const char *text, cJSON **root)
{
	cJSON *error;

	assert_non_null(text);
	*root = cJSON_Parse(text);
	assert_non_null(*root);
	assert_int_equal(cJSON_GetArraySize(*root), 1);
	error = cJSON_GetObjectItemCaseSensitive(*root, "error");
	assert_true(cJSON_IsObject(error));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "code")));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "message")));
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(error, "details")));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "timestamp")));
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "request_id")));
	return error;
}

static const char *str_of(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	assert_true(cJSON_IsString(item));
	return item->valuestring;
}

static void test_clear_leaves_no_error(void **state)
{
	VpError err;
	(void)state;
	memset(&err, 0x5a, sizeof(err));
	vp_error_clear(&err);
	assert_int_equal(err.status, 0);
	assert_null(err.code);
	assert_int_equal(err.n_details, 0);
	assert_false(err.details_truncated);
	assert_string_equal(err.message, "");
	assert_int_equal(err.retry_after_s, 0);
	vp_error_clear(NULL);
}

/* clear leaves the old details' text in place (it is never read): a cleared
 * error reused for another command shows only what was added after */
static void test_clear_then_reuse_shows_only_new_details(void **state)
{
	VpError err;
	cJSON *root;
	(void)state;
	vp_error_clear(&err);
	vp_error_add_detail(&err, "email", "old %d", 1);
	vp_error_add_detail(&err, "phone", "old %d", 2);
	vp_error_set(&err, 409, VP_ERR_VALIDATION, "old");
	vp_error_clear(&err);
	assert_false(vp_error_finish_validation(&err));
	vp_error_add_detail(&err, "name", "new");
	assert_true(vp_error_finish_validation(&err));
	char *text = vp_error_body_json(&err, "req-1", T_2026_11_22_103000 * 1000000LL);
	cJSON *error = parse_error_body(text, &root);
	const cJSON *details = cJSON_GetObjectItemCaseSensitive(error, "details");
	assert_int_equal(cJSON_GetArraySize(details), 1);
	assert_string_equal(str_of(cJSON_GetArrayItem(details, 0), "field"), "name");
	assert_string_equal(str_of(cJSON_GetArrayItem(details, 0), "issue"), "new");
	assert_string_equal(str_of(error, "message"), "Invalid input data");
	cJSON_Delete(root);
	free(text);
}

static void test_set_formats_and_returns_minus_one(void **state)
{
	VpError err;
	(void)state;
	vp_error_clear(&err);
	vp_error_add_detail(&err, "start", "must be in the future");
	assert_int_equal(
	    vp_error_set(&err, 409, "SLOT_UNAVAILABLE", "vet %s busy until %d", "v1", 11), -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.code, "SLOT_UNAVAILABLE");
	assert_string_equal(err.message, "vet v1 busy until 11");
	assert_int_equal(err.n_details, 1); /* details are kept */
	assert_int_equal(vp_error_set(NULL, 500, VP_ERR_INTERNAL, "x"), -1);
}

static void test_message_truncates_on_character_boundary(void **state)
{
	VpError err;
	char text[400];
	(void)state;
	vp_error_clear(&err);
	memset(text, 'a', 254);
	memcpy(text + 254, "\xc3\xa9tail", 7); /* "é" would need bytes 254 and 255 */
	vp_error_set(&err, 400, VP_ERR_VALIDATION, "%s", text);
	assert_int_equal(strlen(err.message), 254);
	assert_int_equal(err.message[253], 'a');
}

static void test_details_cap_marks_truncated(void **state)
{
	VpError err;
	cJSON *root;
	cJSON *error;
	cJSON *details;
	char *body;
	(void)state;
	vp_error_clear(&err);
	for (int i = 0; i < VP_ERROR_MAX_DETAILS + 5; i++)
		vp_error_add_detail(&err, "lines", "bad line %d", i);
	assert_int_equal(err.n_details, VP_ERROR_MAX_DETAILS);
	assert_true(err.details_truncated);
	assert_string_equal(err.details[VP_ERROR_MAX_DETAILS - 1].issue, "bad line 31");
	assert_true(vp_error_finish_validation(&err));

	body = vp_error_body_json(&err, "rid-1", T_2026_11_22_103000 * 1000000);
	error = parse_error_body(body, &root);
	details = cJSON_GetObjectItemCaseSensitive(error, "details");
	assert_int_equal(cJSON_GetArraySize(details), VP_ERROR_MAX_DETAILS + 1);
	assert_string_equal(str_of(cJSON_GetArrayItem(details, 0), "issue"), "bad line 0");
	assert_string_equal(str_of(cJSON_GetArrayItem(details, VP_ERROR_MAX_DETAILS), "field"),
			    "*");
	assert_string_equal(str_of(cJSON_GetArrayItem(details, VP_ERROR_MAX_DETAILS), "issue"),
			    "more errors omitted");
	cJSON_Delete(root);
	free(body);
}

static void test_finish_validation(void **state)
{
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_false(vp_error_finish_validation(&err)); /* nothing wrong */
	assert_int_equal(err.status, 0);

	vp_error_add_detail(&err, "name", "is required");
	assert_true(vp_error_finish_validation(&err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.code, VP_ERR_VALIDATION);
	assert_string_equal(err.message, "Invalid input data");

	/* A status already set wins over the validation default. */
	vp_error_clear(&err);
	vp_error_set(&err, 413, VP_ERR_TOO_LARGE, "body over 64 KiB");
	vp_error_add_detail(&err, "body", "too large");
	assert_true(vp_error_finish_validation(&err));
	assert_int_equal(err.status, 413);
	assert_string_equal(err.message, "body over 64 KiB");

	/* An error without details still counts. */
	vp_error_clear(&err);
	vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no such patient");
	assert_true(vp_error_finish_validation(&err));
	assert_int_equal(err.status, 404);
	assert_false(vp_error_finish_validation(NULL));
}

static void test_body_shape_with_no_details(void **state)
{
	VpError err;
	cJSON *root;
	cJSON *error;
	char *body;
	(void)state;
	vp_error_clear(&err);
	vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no such client");
	body = vp_error_body_json(&err, "0190b0a2-0000-7000-8000-000000000001",
				  T_2026_11_22_103000 * 1000000 + 999999);
	assert_string_equal(body,
			    "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such client\","
			    "\"details\":[],\"timestamp\":\"2026-11-22T10:30:00Z\","
			    "\"request_id\":\"0190b0a2-0000-7000-8000-000000000001\"}}");
	error = parse_error_body(body, &root);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(error, "details")), 0);
	cJSON_Delete(root);
	free(body);
}

static void test_body_escapes_quotes_and_control_characters(void **state)
{
	static const char nasty[] = "say \"hi\"\\ back\n\ttab\x01\x1f end";
	VpError err;
	cJSON *root;
	cJSON *error;
	cJSON *detail;
	char *body;
	(void)state;
	vp_error_clear(&err);
	vp_error_set(&err, 400, VP_ERR_VALIDATION, "%s", nasty);
	vp_error_add_detail(&err, "na\"me\n", "%s", nasty);
	body = vp_error_body_json(&err, "a\"b", 0);
	/* Raw text: every special character escaped, no raw control byte left. */
	assert_non_null(strstr(body, "say \\\"hi\\\"\\\\ back\\n\\ttab\\u0001\\u001f end"));
	for (const char *p = body; *p; p++)
		assert_true((unsigned char)*p >= 0x20);
	error = parse_error_body(body, &root);
	assert_string_equal(str_of(error, "message"), nasty);
	detail = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(error, "details"), 0);
	assert_string_equal(str_of(detail, "field"), "na\"me\n");
	assert_string_equal(str_of(detail, "issue"), nasty);
	assert_string_equal(str_of(error, "request_id"), "a\"b");
	assert_string_equal(str_of(error, "timestamp"), "1970-01-01T00:00:00Z");
	cJSON_Delete(root);
	free(body);
}

static void test_body_keeps_utf8_and_replaces_invalid_bytes(void **state)
{
	static const char utf8[] = "Zo\xc3\xab \xe2\x80\x93 \xe7\x8c\xab \xf0\x9f\x90\x88";
	VpError err;
	cJSON *root;
	cJSON *error;
	cJSON *detail;
	char *body;
	char long_field[200];
	(void)state;
	vp_error_clear(&err);
	vp_error_set(&err, 400, VP_ERR_VALIDATION, "%s", utf8);
	/* Invalid: lone continuation, overlong '/', surrogate, truncated sequence. */
	vp_error_add_detail(&err, "\x80x\xc0\xaf\xed\xa0\x80y\xe2\x82", "bad");
	memset(long_field, 'f', 95);
	memcpy(long_field + 95, "\xc3\xa9", 3); /* 'é' does not fit in field[96] */
	vp_error_add_detail(&err, long_field, "long");
	body = vp_error_body_json(&err, "rid", 0);
	assert_non_null(strstr(body, utf8)); /* UTF-8 passes through unescaped */
	error = parse_error_body(body, &root);
	assert_string_equal(str_of(error, "message"), utf8);
	detail = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(error, "details"), 0);
	assert_string_equal(str_of(detail, "field"), "?x?????y??");
	detail = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(error, "details"), 1);
	assert_int_equal(strlen(str_of(detail, "field")), 95);
	cJSON_Delete(root);
	free(body);
}

static void test_body_defaults(void **state)
{
	VpError err;
	cJSON *root;
	cJSON *error;
	char *body;
	(void)state;
	vp_error_clear(&err); /* no code set: reported as INTERNAL */
	body = vp_error_body_json(&err, NULL, -1);
	error = parse_error_body(body, &root);
	assert_string_equal(str_of(error, "code"), "INTERNAL");
	assert_string_equal(str_of(error, "request_id"), "");
	assert_string_equal(str_of(error, "timestamp"), "1969-12-31T23:59:59Z");
	cJSON_Delete(root);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clear_leaves_no_error),
	    cmocka_unit_test(test_clear_then_reuse_shows_only_new_details),
	    cmocka_unit_test(test_set_formats_and_returns_minus_one),
	    cmocka_unit_test(test_message_truncates_on_character_boundary),
	    cmocka_unit_test(test_details_cap_marks_truncated),
	    cmocka_unit_test(test_finish_validation),
	    cmocka_unit_test(test_body_shape_with_no_details),
	    cmocka_unit_test(test_body_escapes_quotes_and_control_characters),
	    cmocka_unit_test(test_body_keeps_utf8_and_replaces_invalid_bytes),
	    cmocka_unit_test(test_body_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
