/* Unit tests of the strict JSON parser, the field-table validation (every rule,
 * every bad field reported) and the type-safe getters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_json.h"

#define N_FIELDS(table) (sizeof(table) / sizeof((table)[0]))

static const char *const sexes[] = {"male", "female", "unknown", NULL};
static const char *const units[] = {"kg", "g", "lb", NULL};

static const VpJsonField weight_fields[] = {
    {.name = "value", .type = VP_JSON_NUMBER, .required = true, .min = 0, .max = 2000},
    {.name = "unit", .type = VP_JSON_STRING, .required = true, .enum_values = units},
};

static const VpJsonField block_fields[] = {
    {.name = "start", .type = VP_JSON_TIME, .required = true},
    {.name = "end", .type = VP_JSON_TIME, .required = true},
};

static const VpJsonField patient_fields[] = {
    {.name = "client_id", .type = VP_JSON_UUID, .required = true},
    {.name = "name", .type = VP_JSON_STRING, .required = true, .max_len = 10, .min_len = 1},
    {.name = "sex", .type = VP_JSON_STRING, .required = true, .enum_values = sexes},
    {.name = "neutered", .type = VP_JSON_BOOL},
    {.name = "date_of_birth", .type = VP_JSON_DATE},
    {.name = "age", .type = VP_JSON_INT, .min = 0, .max = 100},
    {.name = "count", .type = VP_JSON_INT},
    {.name = "weight",
     .type = VP_JSON_OBJECT,
     .fields = weight_fields,
     .n_fields = N_FIELDS(weight_fields)},
    {.name = "blocks",
     .type = VP_JSON_ARRAY,
     .max_len = 3,
     .fields = block_fields,
     .n_fields = N_FIELDS(block_fields)},
    {.name = "tags", .type = VP_JSON_ARRAY, .min_len = 1},
    {.name = "meta", .type = VP_JSON_OBJECT},
};

#define VALID_PATIENT                                                                              \
	"\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":\"Rex\",\"sex\":\"male\""

/* Parses text (must succeed), checks it against patient_fields and returns what
 * vp_json_check returned; err holds the details. */
static int check_text(const char *text, bool allow_unknown, VpError *err)
{
	cJSON *body = NULL;
	int rc;

	vp_error_clear(err);
	assert_int_equal(vp_json_parse(text, strlen(text), &body, err), 0);
	rc = vp_json_check(body, patient_fields, N_FIELDS(patient_fields), allow_unknown, err);
	cJSON_Delete(body);
	return rc;
}

/* The single detail of a check that must fail on exactly one field. */
static void assert_one_detail(const char *text, const char *field, const char *issue)
{
	VpError err;

	assert_int_equal(check_text(text, false, &err), -1);
	if (err.n_details != 1)
		fail_msg("%s: %d details, first %s: %s", text, err.n_details,
			 err.n_details ? err.details[0].field : "",
			 err.n_details ? err.details[0].issue : "");
	assert_string_equal(err.details[0].field, field);
	assert_string_equal(err.details[0].issue, issue);
	assert_int_equal(err.status, 0); /* the caller finishes */
}

static void assert_parse_fails(const char *text, size_t len, const char *issue)
{
	cJSON *out = (cJSON *)1;
	VpError err;

	vp_error_clear(&err);
	assert_int_equal(vp_json_parse(text, len, &out, &err), -1);
	assert_null(out);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.code, VP_ERR_VALIDATION);
	assert_int_equal(err.n_details, 1);
	assert_string_equal(err.details[0].field, "body");
	assert_string_equal(err.details[0].issue, issue);
}

static void test_parse_accepts_object_and_needs_no_nul(void **state)
{
	const char text[] = "{\"a\":[1,2,{\"b\":\"c\"}]}GARBAGE";
	cJSON *out = NULL;
	VpError err;
	(void)state;
	vp_error_clear(&err);
	/* Only the first 21 bytes are the text: the rest must never be read. */
	assert_int_equal(vp_json_parse(text, 21, &out, &err), 0);
	assert_true(cJSON_IsObject(out));
	cJSON_Delete(out);
	assert_int_equal(vp_json_parse(" \r\n\t[true] \n", 12, &out, &err), 0);
	assert_true(cJSON_IsArray(out));
	cJSON_Delete(out);
	assert_int_equal(err.status, 0);
}

static void test_parse_refuses_trailing_data(void **state)
{
	(void)state;
	assert_parse_fails("{\"a\":1} x", 9, "unexpected data after the JSON value at byte 8");
	assert_parse_fails("{}{}", 4, "unexpected data after the JSON value at byte 2");
}

static void test_parse_refuses_malformed(void **state)
{
	(void)state;
	assert_parse_fails("{\"a\":}", 6, "invalid JSON at byte 5");
	assert_parse_fails("", 0, "empty JSON text at byte 0");
	assert_parse_fails("  \n", 3, "empty JSON text at byte 3");
	assert_parse_fails("{\"a\":\"\\ud800\"}", 14,
			   "invalid JSON at byte 6"); /* lone surrogate */
}

static void test_parse_refuses_invalid_utf8(void **state)
{
	(void)state;
	assert_parse_fails("{\"a\":\"\xff\"}", 9, "invalid UTF-8 at byte 6");
	assert_parse_fails("{\"a\":\"\xc0\xaf\"}", 10, "invalid UTF-8 at byte 6"); /* overlong */
	assert_parse_fails("{\"a\":\"\xed\xa0\x80\"}", 11,
			   "invalid UTF-8 at byte 6"); /* surrogate */
	assert_parse_fails("{\"a\":\"\xf4\x90\x80\x80\"}", 12, "invalid UTF-8 at byte 6");
	assert_parse_fails("{\"a\":\"\xe2\x82\"}", 10, "invalid UTF-8 at byte 6"); /* cut short */
}

static void test_parse_refuses_nul_and_control_characters(void **state)
{
	cJSON *out = NULL;
	VpError err;
	const char *text;
	(void)state;
	assert_parse_fails("{\"a\":\"x\0y\"}", 11, "NUL byte at byte 7");
	assert_parse_fails("{\"a\":\"x\\u0000y\"}", 15, "\\u0000 in string at byte 7");
	assert_parse_fails("{\"a\":\"x\ny\"}", 10, "control character in string at byte 7");
	assert_parse_fails("{\"a\":\"\t\"}", 9, "control character in string at byte 6");
	/* An escaped backslash followed by "u0000" is just text. */
	vp_error_clear(&err);
	text = "{\"a\":\"\\\\u0000\",\n\"b\":\"\\u00e9\\\"\"}";
	assert_int_equal(vp_json_parse(text, strlen(text), &out, &err), 0);
	assert_string_equal(vp_json_str(out, "a"), "\\u0000");
	assert_string_equal(vp_json_str(out, "b"), "\xc3\xa9\"");
	cJSON_Delete(out);
}

/* The screen skips plain runs of a string (and of the text between strings)
 * eight bytes at a time: a bad byte is found, at its offset, wherever it
 * falls in or after such a word, and escapes there still count. */
static void test_parse_screens_every_place_of_a_long_string(void **state)
{
	(void)state;
	for (size_t k = 0; k < 32; k++) {
		char text[64], want[64];
		VpError err;
		cJSON *out = NULL;
		/* {"a":"<32 x's with a control byte at k>"} */
		memcpy(text, "{\"a\":\"", 6);
		memset(text + 6, 'x', 32);
		memcpy(text + 38, "\"}", 3);
		text[6 + k] = '\x1f';
		snprintf(want, sizeof(want), "control character in string at byte %zu", 6 + k);
		assert_parse_fails(text, 40, want);
		text[6 + k] = '\0';
		snprintf(want, sizeof(want), "NUL byte at byte %zu", 6 + k);
		assert_parse_fails(text, 40, want);
		/* a quote there ends the string early: invalid JSON, not a screen error */
		text[6 + k] = '"';
		vp_error_clear(&err);
		assert_int_equal(vp_json_parse(text, 40, &out, &err), -1);
		assert_non_null(strstr(err.details[0].issue, "invalid JSON"));
		if (k + 6 <= 32) { /* \u0000 at k */
			memcpy(text + 6 + k, "\\u0000", 6);
			snprintf(want, sizeof(want), "\\u0000 in string at byte %zu", 6 + k);
			assert_parse_fails(text, 40, want);
			memset(text + 6 + k, 'x', 6);
		}
		/* an escaped quote at k: the string goes on, the value keeps it */
		memset(text + 6, 'x', 32);
		if (k < 31) {
			text[6 + k] = '\\';
			text[7 + k] = '"';
			vp_error_clear(&err);
			assert_int_equal(vp_json_parse(text, 40, &out, &err), 0);
			assert_int_equal(strlen(vp_json_str(out, "a")), 31);
			assert_int_equal(vp_json_str(out, "a")[k], '"');
			cJSON_Delete(out);
		}
	}
	/* a NUL between members, past a long plain run outside strings */
	char text[] = "{\"a\":1,          \"b\":2}";
	text[8] = '\0';
	assert_parse_fails(text, sizeof(text) - 1, "NUL byte at byte 8");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(vp_json_utf8_valid("", 0));
	assert_true(vp_json_utf8_valid("Zo\xc3\xab \xe7\x8c\xab \xf0\x9f\x90\x88", 13));
	assert_true(vp_json_utf8_valid("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7)); /* U+FFFF, U+10FFFF */
	assert_false(vp_json_utf8_valid("\x80", 1));
	assert_false(vp_json_utf8_valid("\xc1\xbf", 2));
	assert_false(vp_json_utf8_valid("\xe0\x9f\xbf", 3));
	assert_false(vp_json_utf8_valid("\xf0\x8f\xbf\xbf", 4));
	assert_false(vp_json_utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(vp_json_utf8_valid("\xc3", 1));
}

static void test_check_accepts_valid_body(void **state)
{
	VpError err;
	(void)state;
	assert_int_equal(check_text("{" VALID_PATIENT ",\"neutered\":true,\"date_of_birth\":"
				    "\"2020-02-29\",\"age\":100,\"count\":-9007199254740992,"
				    "\"weight\":{\"value\":12.5,\"unit\":\"kg\"},\"blocks\":"
				    "[{\"start\":\"2026-11-22T09:00:00Z\",\"end\":\"2026-11-22T"
				    "12:00:00+01:00\"}],\"tags\":[1,\"x\"],\"meta\":{\"any\":1}}",
				    false, &err),
			 0);
	assert_int_equal(err.n_details, 0);
	assert_false(vp_error_finish_validation(&err));
}

static void test_required_and_null(void **state)
{
	VpError err;
	(void)state;
	assert_one_detail(
	    "{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"sex\":\"male\"}", "name",
	    "is required");
	assert_one_detail("{" VALID_PATIENT ",\"client_id\":null}", "client_id",
			  "must not be repeated");
	assert_one_detail("{\"client_id\":null,\"name\":\"Rex\",\"sex\":\"male\"}", "client_id",
			  "is required");
	/* An optional null is simply absent. */
	assert_int_equal(
	    check_text("{" VALID_PATIENT ",\"age\":null,\"weight\":null}", false, &err), 0);
}

static void test_string_rules(void **state)
{
	VpError err;
	cJSON *body;
	(void)state;
	assert_one_detail("{" VALID_PATIENT ",\"sex\":1}", "sex", "must not be repeated");
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":7,"
			  "\"sex\":\"male\"}",
			  "name", "must be a string");
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":"
			  "\"abcdefghijk\",\"sex\":\"male\"}",
			  "name", "must be at most 10 characters");
	/* Bytes, not characters: five 'é' are ten bytes (fits), six are twelve. */
	assert_int_equal(check_text("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\","
				    "\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"sex\":"
				    "\"male\"}",
				    false, &err),
			 0);
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":"
			  "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"sex\":\"male\"}",
			  "name", "must be at most 10 characters");
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":\"\","
			  "\"sex\":\"male\"}",
			  "name", "must not be empty");
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"name\":\"R\","
			  "\"sex\":\"Male\"}",
			  "sex", "must be one of: male, female, unknown");

	/* A string that did not come through vp_json_parse is still checked. */
	body = cJSON_Parse(
	    "{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\",\"sex\":\"male\"}");
	cJSON_AddStringToObject(body, "name", "R\xffx");
	vp_error_clear(&err);
	assert_int_equal(vp_json_check(body, patient_fields, N_FIELDS(patient_fields), false, &err),
			 -1);
	assert_string_equal(err.details[0].field, "name");
	assert_string_equal(err.details[0].issue, "must be valid UTF-8");
	cJSON_Delete(body);
}

static void test_enum_list_is_cut_to_fit(void **state)
{
	static const char *const many[] = {"alpha-alpha-alpha",
					   "bravo-bravo-bravo",
					   "charlie-charlie",
					   "delta-delta-delta",
					   "echo-echo-echo-echo",
					   "foxtrot-foxtrot",
					   "golf-golf-golf-golf",
					   "hotel-hotel-hotel",
					   "india-india-india",
					   "juliet-juliet",
					   NULL};
	static const VpJsonField fields[] = {
	    {.name = "code", .type = VP_JSON_STRING, .enum_values = many},
	};
	cJSON *body = cJSON_Parse("{\"code\":\"zulu\"}");
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_int_equal(vp_json_check(body, fields, 1, false, &err), -1);
	assert_true(strncmp(err.details[0].issue, "must be one of: alpha-alpha-alpha, bravo", 40) ==
		    0);
	assert_non_null(strstr(err.details[0].issue, "..."));
	assert_true(strlen(err.details[0].issue) < sizeof(err.details[0].issue));
	cJSON_Delete(body);
}

static void test_integer_rules(void **state)
{
	VpError err;
	(void)state;
	assert_one_detail("{" VALID_PATIENT ",\"age\":\"3\"}", "age", "must be an integer");
	assert_one_detail("{" VALID_PATIENT ",\"age\":1.5}", "age", "must be an integer");
	assert_one_detail("{" VALID_PATIENT ",\"age\":true}", "age", "must be an integer");
	assert_one_detail("{" VALID_PATIENT ",\"age\":101}", "age", "must be between 0 and 100");
	assert_one_detail("{" VALID_PATIENT ",\"age\":-1}", "age", "must be between 0 and 100");
	assert_one_detail("{" VALID_PATIENT ",\"count\":9007199254740994}", "count",
			  "must be an integer");
	assert_one_detail("{" VALID_PATIENT ",\"count\":1e400}", "count", "must be an integer");
	/* 1e2 and 3.0 are integral; no range when min == max. */
	assert_int_equal(check_text("{" VALID_PATIENT ",\"age\":1e2,\"count\":3.0}", false, &err),
			 0);
	assert_int_equal(check_text("{" VALID_PATIENT ",\"count\":9007199254740992}", false, &err),
			 0);
}

static void test_number_bool_object_array_rules(void **state)
{
	(void)state;
	assert_one_detail("{" VALID_PATIENT ",\"neutered\":\"yes\"}", "neutered",
			  "must be a boolean");
	assert_one_detail("{" VALID_PATIENT ",\"neutered\":0}", "neutered", "must be a boolean");
	assert_one_detail("{" VALID_PATIENT ",\"weight\":[]}", "weight", "must be an object");
	assert_one_detail("{" VALID_PATIENT ",\"weight\":{\"value\":\"1\",\"unit\":\"kg\"}}",
			  "weight.value", "must be a number");
	assert_one_detail("{" VALID_PATIENT ",\"weight\":{\"value\":2000.5,\"unit\":\"kg\"}}",
			  "weight.value", "must be between 0 and 2000");
	assert_one_detail("{" VALID_PATIENT ",\"weight\":{\"value\":1}}", "weight.unit",
			  "is required");
	assert_one_detail("{" VALID_PATIENT ",\"weight\":{\"value\":1,\"unit\":\"kg\",\"x\":1}}",
			  "weight.x", "is not a known field");
	assert_one_detail("{" VALID_PATIENT ",\"blocks\":{}}", "blocks", "must be an array");
	assert_one_detail("{" VALID_PATIENT ",\"blocks\":[{},{},{},{}]}", "blocks",
			  "must have at most 3 items");
	assert_one_detail("{" VALID_PATIENT ",\"tags\":[]}", "tags", "must not be empty");
	assert_one_detail("{" VALID_PATIENT ",\"blocks\":[{\"start\":\"2026-11-22T09:00:00Z\","
			  "\"end\":\"2026-11-22T10:00:00Z\"},7]}",
			  "blocks[1]", "must be an object");
	assert_one_detail("{" VALID_PATIENT ",\"blocks\":[{\"start\":\"2026-11-22T09:00:00Z\","
			  "\"end\":\"2026-11-22T10:00:00Z\"},{\"start\":\"2026-11-22T09:00:00Z\","
			  "\"end\":\"2026-11-22 10:00:00Z\"}]}",
			  "blocks[1].end", "must be an RFC 3339 time with offset");
}

static void test_uuid_date_time_rules(void **state)
{
	(void)state;
	assert_one_detail("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0\",\"name\":\"R\","
			  "\"sex\":\"male\"}",
			  "client_id", "must be a UUID");
	assert_one_detail("{\"client_id\":42,\"name\":\"R\",\"sex\":\"male\"}", "client_id",
			  "must be a UUID");
	assert_one_detail("{" VALID_PATIENT ",\"date_of_birth\":\"2021-02-29\"}", "date_of_birth",
			  "must be a date YYYY-MM-DD");
	assert_one_detail("{" VALID_PATIENT ",\"date_of_birth\":\"2021-2-3\"}", "date_of_birth",
			  "must be a date YYYY-MM-DD");
	assert_one_detail("{" VALID_PATIENT ",\"blocks\":[{\"start\":\"2026-11-22T09:00:00\","
			  "\"end\":\"2026-11-22T10:00:00Z\"}]}",
			  "blocks[0].start", "must be an RFC 3339 time with offset");
}

static void test_unknown_fields(void **state)
{
	VpError err;
	(void)state;
	assert_one_detail("{" VALID_PATIENT ",\"colour\":\"red\"}", "colour",
			  "is not a known field");
	assert_int_equal(check_text("{" VALID_PATIENT ",\"colour\":\"red\"}", true, &err), 0);
	/* Keys are case-sensitive: "Name" is unknown and "name" is then missing. */
	assert_int_equal(check_text("{\"client_id\":\"0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b\","
				    "\"Name\":\"R\",\"sex\":\"male\"}",
				    false, &err),
			 -1);
	assert_int_equal(err.n_details, 2);
	assert_string_equal(err.details[0].field, "name");
	assert_string_equal(err.details[1].field, "Name");
}

static void test_five_bad_fields_give_five_details(void **state)
{
	VpError err;
	(void)state;
	assert_int_equal(check_text("{\"client_id\":\"nope\",\"sex\":\"cat\",\"age\":2.5,"
				    "\"neutered\":\"no\",\"extra\":1}",
				    false, &err),
			 -1);
	/* Five bad values plus the missing name, in table order, then unknown keys. */
	assert_int_equal(err.n_details, 6);
	assert_string_equal(err.details[0].field, "client_id");
	assert_string_equal(err.details[0].issue, "must be a UUID");
	assert_string_equal(err.details[1].field, "name");
	assert_string_equal(err.details[1].issue, "is required");
	assert_string_equal(err.details[2].field, "sex");
	assert_string_equal(err.details[3].field, "neutered");
	assert_string_equal(err.details[3].issue, "must be a boolean");
	assert_string_equal(err.details[4].field, "age");
	assert_string_equal(err.details[4].issue, "must be an integer");
	assert_string_equal(err.details[5].field, "extra");
	assert_string_equal(err.details[5].issue, "is not a known field");

	/* Exactly five bad fields, five details, then the caller's 400. */
	assert_int_equal(check_text("{\"client_id\":1,\"name\":\"\",\"sex\":\"x\",\"age\":-5,"
				    "\"date_of_birth\":\"yesterday\"}",
				    false, &err),
			 -1);
	assert_int_equal(err.n_details, 5);
	assert_false(err.details_truncated);
	assert_true(vp_error_finish_validation(&err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.code, VP_ERR_VALIDATION);
}

static void test_top_level_must_be_object(void **state)
{
	cJSON *array = cJSON_Parse("[1]");
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_int_equal(
	    vp_json_check(array, patient_fields, N_FIELDS(patient_fields), false, &err), -1);
	assert_string_equal(err.details[0].field, "body");
	assert_string_equal(err.details[0].issue, "must be an object");
	vp_error_clear(&err);
	assert_int_equal(vp_json_check(NULL, patient_fields, 1, false, &err), -1);
	cJSON_Delete(array);
}

static void test_getters_never_trust_types(void **state)
{
	cJSON *obj = cJSON_Parse("{\"s\":\"txt\",\"i\":42,\"f\":1.5,\"big\":1e300,\"b\":false,"
				 "\"n\":null,\"neg\":-7}");
	long long i = 0;
	bool b = true;
	double d = 0;
	(void)state;
	assert_string_equal(vp_json_str(obj, "s"), "txt");
	assert_null(vp_json_str(obj, "i"));
	assert_null(vp_json_str(obj, "n"));
	assert_null(vp_json_str(obj, "missing"));
	assert_null(vp_json_str(NULL, "s"));
	assert_true(vp_json_int(obj, "i", &i));
	assert_int_equal(i, 42);
	assert_true(vp_json_int(obj, "neg", &i));
	assert_int_equal(i, -7);
	assert_false(vp_json_int(obj, "f", &i));
	assert_false(vp_json_int(obj, "big", &i));
	assert_false(vp_json_int(obj, "s", &i));
	assert_false(vp_json_int(obj, "b", &i));
	assert_true(vp_json_bool(obj, "b", &b));
	assert_false(b);
	assert_false(vp_json_bool(obj, "i", &b));
	assert_true(vp_json_number(obj, "f", &d));
	assert_true(d == 1.5);
	assert_false(vp_json_number(obj, "s", &d));
	assert_null(
	    vp_json_str(cJSON_GetObjectItemCaseSensitive(obj, "s"), "s")); /* not an object */
	cJSON_Delete(obj);
}

static void test_print_is_unformatted(void **state)
{
	cJSON *obj = cJSON_Parse("{ \"a\" : [ 1 , \"x\\\"y\" ] }");
	char *text;
	(void)state;
	text = vp_json_print(obj);
	assert_string_equal(text, "{\"a\":[1,\"x\\\"y\"]}");
	free(text);
	assert_null(vp_json_print(NULL));
	cJSON_Delete(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts_object_and_needs_no_nul),
	    cmocka_unit_test(test_parse_refuses_trailing_data),
	    cmocka_unit_test(test_parse_refuses_malformed),
	    cmocka_unit_test(test_parse_refuses_invalid_utf8),
	    cmocka_unit_test(test_parse_refuses_nul_and_control_characters),
	    cmocka_unit_test(test_parse_screens_every_place_of_a_long_string),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_check_accepts_valid_body),
	    cmocka_unit_test(test_required_and_null),
	    cmocka_unit_test(test_string_rules),
	    cmocka_unit_test(test_enum_list_is_cut_to_fit),
	    cmocka_unit_test(test_integer_rules),
	    cmocka_unit_test(test_number_bool_object_array_rules),
	    cmocka_unit_test(test_uuid_date_time_rules),
	    cmocka_unit_test(test_unknown_fields),
	    cmocka_unit_test(test_five_bad_fields_give_five_details),
	    cmocka_unit_test(test_top_level_must_be_object),
	    cmocka_unit_test(test_getters_never_trust_types),
	    cmocka_unit_test(test_print_is_unformatted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
