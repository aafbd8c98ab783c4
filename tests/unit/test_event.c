/* Unit tests of common/vp_event.c: the envelope round trip, and every way a
 * record value can fail the envelope check (the projector dead-letters those). */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_event.h"
#include "vp_time.h"

#define GOOD_ID     "0193a5c2-7b1d-7000-8000-00000000000a"
#define GOOD_TENANT "0193a5c2-7b1d-7000-8000-0000000000b1"
#define GOOD_AGG    "0193a5c2-7b1d-7000-8000-0000000000c2"

static int decode_text(const char *text, VpEvent *ev, char *why, size_t cap)
{
	return vp_event_decode(text, strlen(text), ev, why, cap);
}

static void encode_then_decode_gives_the_same_event(void **state)
{
	VpEvent ev, back;
	char why[256];

	(void)state;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.id, sizeof(ev.id), "%s", GOOD_ID);
	snprintf(ev.type, sizeof(ev.type), "%s", "ClientRegistered");
	ev.v = 1;
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", GOOD_TENANT);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", "client");
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", GOOD_AGG);
	ev.seq = 9007199254740992LL; /* 2^53: the largest exact JSON integer */
	snprintf(ev.command_id, sizeof(ev.command_id), "%s", "cmd-1 \"quoted\" é");
	snprintf(ev.actor, sizeof(ev.actor), "%s", "alice");
	ev.at_us = 1795339800123456LL;
	ev.data = cJSON_Parse("{\"first_name\":\"Ann\",\"email\":null,\"n\":[1,2]}");
	assert_non_null(ev.data);

	char *text = vp_event_encode(&ev);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"at\":\"2026-11-22T09:30:00.123456Z\""));
	assert_int_equal(decode_text(text, &back, why, sizeof(why)), 0);
	assert_string_equal(back.id, ev.id);
	assert_string_equal(back.type, ev.type);
	assert_int_equal(back.v, 1);
	assert_string_equal(back.tenant_id, ev.tenant_id);
	assert_string_equal(back.aggregate, ev.aggregate);
	assert_string_equal(back.aggregate_id, ev.aggregate_id);
	assert_true(back.seq == ev.seq);
	assert_string_equal(back.command_id, ev.command_id);
	assert_string_equal(back.actor, ev.actor);
	assert_true(back.at_us == ev.at_us);
	assert_true(cJSON_Compare(back.data, ev.data, true));

	/* Microseconds are always written, even when zero. */
	ev.at_us = 1795339800000000LL;
	char *again = vp_event_encode(&ev);
	assert_non_null(again);
	assert_non_null(strstr(again, "\"at\":\"2026-11-22T09:30:00.000000Z\""));
	free(again);
	free(text);
	vp_event_release(&back);
	vp_event_release(&ev);
	vp_event_release(&ev); /* twice is harmless */
	vp_event_release(NULL);
}

static void decode_normalises_uuid_case_and_time_offset(void **state)
{
	VpEvent ev;
	char why[256];
	const char *text =
		"{\"id\":\"0193A5C2-7B1D-7000-8000-00000000000A\",\"type\":\"PatientDied\",\"v\":1,"
		"\"tenant_id\":\"" GOOD_TENANT "\",\"aggregate\":\"patient\","
		"\"aggregate_id\":\"" GOOD_AGG "\",\"seq\":3,\"command_id\":\"c\","
		"\"actor\":\"a\",\"at\":\"2026-11-22T10:30:00+01:00\",\"data\":{}}";

	(void)state;
	assert_int_equal(decode_text(text, &ev, why, sizeof(why)), 0);
	assert_string_equal(ev.id, GOOD_ID);
	assert_true(ev.at_us == 1795339800000000LL);
	assert_true(ev.seq == 3);
	assert_true(cJSON_IsObject(ev.data));
	vp_event_release(&ev);
}

/* A valid envelope with one member replaced (or removed when value is NULL). */
static char *envelope_with(const char *member, const char *value)
{
	static const char *const members[][2] = {
		{"id", "\"" GOOD_ID "\""},
		{"type", "\"ClientRegistered\""},
		{"v", "1"},
		{"tenant_id", "\"" GOOD_TENANT "\""},
		{"aggregate", "\"client\""},
		{"aggregate_id", "\"" GOOD_AGG "\""},
		{"seq", "1"},
		{"command_id", "\"cmd\""},
		{"actor", "\"alice\""},
		{"at", "\"2026-11-22T09:30:00.123456Z\""},
		{"data", "{\"first_name\":\"Ann\"}"},
	};
	char *out = calloc(1, 2048);
	size_t used = 0;
	assert_non_null(out);
	used += (size_t)snprintf(out + used, 2048 - used, "{");
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		const char *v = members[i][1];
		if (!strcmp(members[i][0], member)) {
			if (!value)
				continue;
			v = value;
		}
		used += (size_t)snprintf(out + used, 2048 - used, "%s\"%s\":%s",
					 used > 1 ? "," : "", members[i][0], v);
	}
	snprintf(out + used, 2048 - used, "}");
	return out;
}

static void expect_refused(const char *member, const char *value, const char *why_has)
{
	VpEvent ev;
	char why[256] = "";
	char *text = envelope_with(member, value);

	memset(&ev, 0, sizeof(ev));
	if (decode_text(text, &ev, why, sizeof(why)) != -1)
		fail_msg("accepted %s = %s: %s", member, value ? value : "(absent)", text);
	if (!strstr(why, why_has))
		fail_msg("%s = %s: why \"%s\" lacks \"%s\"", member, value ? value : "(absent)",
			 why, why_has);
	assert_null(ev.data);
	free(text);
}

static void the_reference_envelope_is_valid(void **state)
{
	VpEvent ev;
	char why[256];
	char *text = envelope_with("", NULL);

	(void)state;
	assert_int_equal(decode_text(text, &ev, why, sizeof(why)), 0);
	vp_event_release(&ev);
	free(text);
}

static void every_missing_member_is_refused(void **state)
{
	static const char *const required[] = {"id", "type", "v", "tenant_id", "aggregate",
					       "aggregate_id", "seq", "command_id", "actor",
					       "at", "data"};
	(void)state;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		expect_refused(required[i], NULL, required[i]);
		expect_refused(required[i], "null", required[i]);
	}
}

static void wrong_types_and_values_are_refused(void **state)
{
	(void)state;
	expect_refused("id", "42", "id must be a string");
	expect_refused("id", "\"0193a5c27b1d70008000000000000000\"", "id must be a canonical UUID");
	expect_refused("id", "\"{0193a5c2-7b1d-7000-8000-00000000000a}\"", "canonical UUID");
	expect_refused("id", "\"0193a5c2-7b1d-7000-8000-00000000000g\"", "canonical UUID");
	expect_refused("tenant_id", "\"\"", "tenant_id must be a canonical UUID");
	expect_refused("aggregate_id", "[]", "aggregate_id must be a string");
	expect_refused("type", "\"\"", "type must not be empty");
	expect_refused("type", "7", "type must be a string");
	expect_refused("type", "\"Client Registered\"", "letters and digits");
	expect_refused("type", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
		       "type is too long");
	expect_refused("v", "0", "v is out of range");
	expect_refused("v", "-1", "v is out of range");
	expect_refused("v", "1.5", "v must be an integer");
	expect_refused("v", "\"1\"", "v must be an integer");
	expect_refused("seq", "0", "seq is out of range");
	expect_refused("seq", "1e300", "seq must be an integer");
	expect_refused("seq", "true", "seq must be an integer");
	expect_refused("aggregate", "\"an-aggregate-name-that-is-too-long\"", "aggregate is too long");
	expect_refused("command_id", "\"\"", "command_id must not be empty");
	expect_refused("actor", "{}", "actor must be a string");
	expect_refused("at", "\"2026-11-22 09:30:00Z\"", "at must be an RFC 3339 time");
	expect_refused("at", "\"2026-11-22T09:30:00\"", "at must be an RFC 3339 time");
	expect_refused("at", "1795339800", "at must be an RFC 3339 time");
	expect_refused("data", "[]", "data must be an object");
	expect_refused("data", "\"x\"", "data must be an object");
}

static void long_command_id_and_actor_are_refused(void **state)
{
	char value[400];
	(void)state;
	value[0] = '"';
	memset(value + 1, 'c', 256);
	snprintf(value + 257, sizeof(value) - 257, "\"");
	expect_refused("command_id", value, "command_id is too long");
	value[0] = '"';
	memset(value + 1, 'a', 129);
	snprintf(value + 130, sizeof(value) - 130, "\"");
	expect_refused("actor", value, "actor is too long");
	/* The limits themselves are accepted. */
	VpEvent ev;
	char why[256];
	value[0] = '"';
	memset(value + 1, 'c', 255);
	snprintf(value + 256, sizeof(value) - 256, "\"");
	char *text = envelope_with("command_id", value);
	assert_int_equal(decode_text(text, &ev, why, sizeof(why)), 0);
	assert_int_equal(strlen(ev.command_id), 255);
	vp_event_release(&ev);
	free(text);
}

static void bad_json_is_refused(void **state)
{
	static const char *const texts[] = {
		"", "   ", "not json", "{", "{\"id\":}", "[1,2]", "\"a string\"", "42", "null",
		"{} trailing", "{\"a\":\"\x01\"}",
	};
	VpEvent ev;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		memset(&ev, 0, sizeof(ev));
		why[0] = '\0';
		assert_int_equal(decode_text(texts[i], &ev, why, sizeof(why)), -1);
		assert_true(why[0] != '\0');
		assert_null(ev.data);
	}
	/* Invalid UTF-8 and an embedded NUL inside the length. */
	const char bad_utf8[] = "{\"a\":\"\xc3\x28\"}";
	assert_int_equal(vp_event_decode(bad_utf8, sizeof(bad_utf8) - 1, &ev, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not JSON"));
	const char with_nul[] = "{\"a\":1}\0{}";
	assert_int_equal(vp_event_decode(with_nul, sizeof(with_nul) - 1, &ev, why, sizeof(why)), -1);
	assert_int_equal(vp_event_decode(NULL, 0, &ev, why, sizeof(why)), -1);
}

static void decode_reads_only_len_bytes(void **state)
{
	VpEvent ev;
	char why[256];
	char *text = envelope_with("", NULL);
	size_t len = strlen(text);
	char *padded = malloc(len + 8);

	(void)state;
	assert_non_null(padded);
	memcpy(padded, text, len);
	memcpy(padded + len, "garbage", 8);
	assert_int_equal(vp_event_decode(padded, len, &ev, why, sizeof(why)), 0);
	vp_event_release(&ev);
	/* cut short: refused */
	assert_int_equal(vp_event_decode(padded, len - 1, &ev, why, sizeof(why)), -1);
	free(padded);
	free(text);
}

/* The envelope as the writer built it before it encoded straight into a
 * buffer: a cJSON tree printed by cJSON. The log written then and the log
 * written now must read the same. */
static char *tree_encode(const VpEvent *ev)
{
	char at[VP_TIME_RFC3339_MAX], v[24], seq[24];
	cJSON *root = cJSON_CreateObject();
	assert_non_null(root);
	assert_true(vp_time_format_rfc3339_us(ev->at_us, at, sizeof(at)) > 0);
	snprintf(v, sizeof(v), "%d", ev->v);
	snprintf(seq, sizeof(seq), "%lld", (long long)ev->seq);
	cJSON_AddStringToObject(root, "id", ev->id);
	cJSON_AddStringToObject(root, "type", ev->type);
	cJSON_AddRawToObject(root, "v", v);
	cJSON_AddStringToObject(root, "tenant_id", ev->tenant_id);
	cJSON_AddStringToObject(root, "aggregate", ev->aggregate);
	cJSON_AddStringToObject(root, "aggregate_id", ev->aggregate_id);
	cJSON_AddRawToObject(root, "seq", seq);
	cJSON_AddStringToObject(root, "command_id", ev->command_id);
	cJSON_AddStringToObject(root, "actor", ev->actor);
	cJSON_AddStringToObject(root, "at", at);
	cJSON_AddItemToObject(root, "data",
			      ev->data ? cJSON_Duplicate(ev->data, true) : cJSON_CreateObject());
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

static void fill_event(VpEvent *ev, const char *command_id, const char *actor, const char *data)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->id, sizeof(ev->id), "%s", GOOD_ID);
	snprintf(ev->type, sizeof(ev->type), "%s", "PatientRegistered");
	ev->v = 1;
	snprintf(ev->tenant_id, sizeof(ev->tenant_id), "%s", GOOD_TENANT);
	snprintf(ev->aggregate, sizeof(ev->aggregate), "%s", "patient");
	snprintf(ev->aggregate_id, sizeof(ev->aggregate_id), "%s", GOOD_AGG);
	ev->seq = 9007199254740991LL; /* above 10^15: no double rounding */
	snprintf(ev->command_id, sizeof(ev->command_id), "%s", command_id);
	snprintf(ev->actor, sizeof(ev->actor), "%s", actor);
	ev->at_us = 1795339800000001LL;
	ev->data = data ? cJSON_Parse(data) : NULL;
	assert_true(!data || ev->data);
}

/* Byte-identical to the tree encoder, and decodes back to the same event. */
static void assert_encodes_like_the_tree(VpEvent *ev)
{
	VpEvent back;
	char why[256];
	char *expected = tree_encode(ev);
	char *text = vp_event_encode(ev);
	assert_non_null(expected);
	assert_non_null(text);
	assert_string_equal(text, expected);
	if (decode_text(text, &back, why, sizeof(why)) != 0)
		fail_msg("%s: %s", why, text);
	assert_string_equal(back.command_id, ev->command_id);
	assert_string_equal(back.actor, ev->actor);
	assert_true(back.seq == ev->seq);
	assert_true(back.at_us == ev->at_us);
	if (ev->data)
		assert_true(cJSON_Compare(back.data, ev->data, true));
	else
		assert_null(back.data->child);
	vp_event_release(&back);
	free(text);
	cJSON_free(expected);
}

static void encode_writes_what_the_tree_encoder_wrote(void **state)
{
	VpEvent ev;
	(void)state;
	/* escapes in the envelope's own strings and in data, multi-byte UTF-8,
	 * nested objects and arrays, numbers cJSON prints three ways */
	fill_event(&ev, "key \"q\" \\ \t\n\r\b\f \x01\x1f end", "Zoë 猫 🐈",
		   "{\"name\":\"Rex \\\"the\\\" dog\\n\\u0007\",\"species\":\"dog\","
		   "\"notes\":\"Größe 12 cm — ok ✓\",\"weight\":12.5,\"n\":3,\"tiny\":1e-7,"
		   "\"third\":0.3333333333333333,\"big\":9007199254740993,"
		   "\"nested\":{\"list\":[1,\"two\",{\"three\":[true,false,null]}],\"empty\":{},"
		   "\"none\":[]}}");
	assert_encodes_like_the_tree(&ev);
	vp_event_release(&ev);
	fill_event(&ev, "c", "a", NULL); /* no data: {} */
	assert_encodes_like_the_tree(&ev);
	fill_event(&ev, "c", "a", "{}");
	assert_encodes_like_the_tree(&ev);
	vp_event_release(&ev);
}

static void encode_into_appends_to_a_reused_buffer(void **state)
{
	VpEvent ev;
	VpBuf out;
	(void)state;
	fill_event(&ev, "c", "a", "{\"x\":1}");
	char *single = vp_event_encode(&ev);
	assert_non_null(single);
	vp_buf_init(&out, VP_EVENT_MAX_ENCODED);
	assert_int_equal(vp_event_encode_into(&ev, &out), 0);
	assert_string_equal(vp_buf_str(&out), single);
	vp_buf_reset(&out);
	assert_int_equal(vp_event_encode_into(&ev, &out), 0);
	assert_string_equal(vp_buf_str(&out), single);
	vp_buf_free(&out);
	vp_buf_init(&out, 64); /* too small: fails, nothing half-written is handed out */
	assert_int_equal(vp_event_encode_into(&ev, &out), -1);
	assert_null(vp_buf_take(&out));
	free(single);
	vp_event_release(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encode_then_decode_gives_the_same_event),
		cmocka_unit_test(decode_normalises_uuid_case_and_time_offset),
		cmocka_unit_test(the_reference_envelope_is_valid),
		cmocka_unit_test(every_missing_member_is_refused),
		cmocka_unit_test(wrong_types_and_values_are_refused),
		cmocka_unit_test(long_command_id_and_actor_are_refused),
		cmocka_unit_test(bad_json_is_refused),
		cmocka_unit_test(decode_reads_only_len_bytes),
		cmocka_unit_test(encode_writes_what_the_tree_encoder_wrote),
		cmocka_unit_test(encode_into_appends_to_a_reused_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
