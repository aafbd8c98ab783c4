/* Unit tests of common/vp_json_write.c: vp_json_write must print what
 * cJSON_PrintUnformatted prints, byte for byte, for every kind of value the
 * writer puts in an event (strings with escapes and UTF-8, numbers of every
 * shape, nesting), since the log was written by cJSON's printer before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_json.h"

/* j printed both ways must give the same bytes. */
static void assert_prints_like_cjson(const cJSON *j)
{
	VpBuf out;
	char *expected = cJSON_PrintUnformatted(j);
	assert_non_null(expected);
	vp_buf_init(&out, 1 << 20);
	assert_int_equal(vp_json_write(&out, j), 0);
	assert_string_equal(vp_buf_str(&out), expected);
	vp_buf_free(&out);
	cJSON_free(expected);
}

static void assert_text_prints_like_cjson(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	assert_prints_like_cjson(j);
	cJSON_Delete(j);
}

static void strings_escape_as_cjson_does(void **state)
{
	(void)state;
	cJSON *j = cJSON_CreateObject();
	char controls[40];
	for (int i = 1; i < 32; i++)
		controls[i - 1] = (char)i;
	memcpy(controls + 31, "\"\\/\x7f", 5);
	assert_non_null(cJSON_AddStringToObject(j, "controls", controls));
	assert_non_null(cJSON_AddStringToObject(j, "utf8", "Ünïcödé 猫 🐈 \xe2\x80\xa8"));
	assert_non_null(cJSON_AddStringToObject(j, "empty", ""));
	assert_non_null(cJSON_AddStringToObject(j, "key \"with\" quotes\n", "v"));
	assert_prints_like_cjson(j);
	cJSON_Delete(j);
	assert_text_prints_like_cjson("\"a\\u0001b\\u001f\"");
}

/* Every special byte at every place of a long plain run: the writer copies
 * such runs eight bytes at a time, and what comes before, in and after a
 * word must still print as cJSON prints it. */
static void specials_at_every_place_print_as_cjson_does(void **state)
{
	static const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f', '/'};
	(void)state;
	for (size_t k = 0; k < 40; k++)
		for (size_t i = 0; i < sizeof(specials); i++) {
			char text[48];
			memset(text, 'a', 40);
			text[k] = specials[i];
			text[40] = '\0';
			cJSON *j = cJSON_CreateString(text);
			assert_non_null(j);
			assert_prints_like_cjson(j);
			cJSON_Delete(j);
		}
	cJSON *j = cJSON_CreateString("abcdefgh\xc3\xa9ijklmnop\"qrstuvw");
	assert_prints_like_cjson(j);
	cJSON_Delete(j);
}

static void numbers_print_as_cjson_does(void **state)
{
	static const double samples[] = {
		0, -0.0, 1, -1, 42, 2147483647.0, 2147483648.0, -2147483649.0,
		9007199254740992.0, 1e300, -1e-300, 0.1, 0.2 + 0.1, 1.0 / 3, 12.5, 100.25,
		123456789.123456789, 5e-324, 1.7976931348623157e308,
	};
	(void)state;
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		assert_true(cJSON_AddItemToArray(arr, cJSON_CreateNumber(samples[i])));
	assert_prints_like_cjson(arr);
	cJSON_Delete(arr);
	assert_text_prints_like_cjson("[1e400,-1e400]"); /* infinities print as null */
}

static void nested_values_print_as_cjson_does(void **state)
{
	(void)state;
	assert_text_prints_like_cjson("{\"a\":{\"b\":[1,{\"c\":null},[],{}],\"d\":true,"
				      "\"e\":false},\"f\":[\"x\",\"y\\n\"],\"g\":{}}");
	assert_text_prints_like_cjson("[]");
	assert_text_prints_like_cjson("{}");
	assert_text_prints_like_cjson("\"just a string\"");
	cJSON *raw = cJSON_CreateObject();
	assert_non_null(cJSON_AddRawToObject(raw, "seq", "12345678901234567"));
	assert_prints_like_cjson(raw);
	cJSON_Delete(raw);
}

static void a_full_buffer_fails_and_stays_failed(void **state)
{
	(void)state;
	VpBuf out;
	cJSON *j = cJSON_Parse("{\"name\":\"a value longer than the limit\"}");
	assert_non_null(j);
	vp_buf_init(&out, 10);
	assert_int_equal(vp_json_write(&out, j), -1);
	assert_true(out.oom);
	assert_null(vp_buf_take(&out));
	vp_buf_init(&out, 100);
	assert_int_equal(vp_json_write(&out, NULL), -1);
	vp_buf_free(&out);
	cJSON_Delete(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strings_escape_as_cjson_does),
		cmocka_unit_test(specials_at_every_place_print_as_cjson_does),
		cmocka_unit_test(numbers_print_as_cjson_does),
		cmocka_unit_test(nested_values_print_as_cjson_does),
		cmocka_unit_test(a_full_buffer_fails_and_stays_failed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
