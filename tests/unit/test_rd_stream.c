/* Unit tests of the pure parts of GET /v1/stream (query-reader/stream.c):
 * where a stream starts (Last-Event-ID over ?after=), the ?types= and
 * ?aggregate_id= filters and their match, position order, and the exact wire
 * text of one event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reader.h"
#include "vp_buf.h"

static int details_of(const VpError *err)
{
	return (int)err->n_details;
}

static void test_start_position(void **state)
{
	RdStreamPos pos;
	bool has;
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_int_equal(rd_stream_start_parse(NULL, NULL, &pos, &has, &err), 0);
	assert_false(has);
	assert_int_equal(rd_stream_start_parse("3:17", NULL, &pos, &has, &err), 0);
	assert_true(has);
	assert_int_equal(pos.partition, 3);
	assert_int_equal(pos.offset, 17);
	/* the header wins over ?after= (a reconnecting browser keeps its URL) */
	assert_int_equal(rd_stream_start_parse("1:5", "0:0", &pos, &has, &err), 0);
	assert_int_equal(pos.partition, 1);
	assert_int_equal(pos.offset, 5);
	/* an empty Last-Event-ID is none: ?after= then */
	assert_int_equal(rd_stream_start_parse("", "2:9223372036854775807", &pos, &has, &err), 0);
	assert_true(has);
	assert_int_equal(pos.partition, 2);
	assert_true(pos.offset == INT64_MAX);
	assert_int_equal(details_of(&err), 0);
}

static void test_bad_positions_name_their_field(void **state)
{
	static const char *const bad[] = {"x",     "1",       ":1",  "1:",  "-1:2", "1:-2",
					  "4096:0", "1:2:3",  " 1:2", "1:2 ", "1:0x10",
					  "0:9223372036854775808"};
	RdStreamPos pos;
	bool has;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		VpError err;
		vp_error_clear(&err);
		assert_int_equal(rd_stream_start_parse(bad[i], NULL, &pos, &has, &err), -1);
		assert_false(has);
		assert_int_equal(details_of(&err), 1);
		assert_string_equal(err.details[0].field, "Last-Event-ID");
		vp_error_clear(&err);
		assert_int_equal(rd_stream_start_parse(NULL, bad[i], &pos, &has, &err), -1);
		assert_string_equal(err.details[0].field, "after");
	}
}

static void test_types_filter(void **state)
{
	RdStreamFilter f;
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_int_equal(rd_stream_filter_parse(&f, NULL, NULL, &err), 0);
	assert_true(rd_stream_filter_match(&f, "AnythingAtAll", "x"));
	assert_int_equal(
		rd_stream_filter_parse(&f, "ClientRegistered,PatientRegistered,ClientRegistered", NULL,
				       &err),
		0);
	assert_int_equal(f.n_types, 2); /* a repeated type counts once */
	assert_true(rd_stream_filter_match(&f, "PatientRegistered", "a"));
	assert_false(rd_stream_filter_match(&f, "ClientContactUpdated", "a"));
	assert_false(rd_stream_filter_match(&f, "Client", "a"));
	assert_int_equal(details_of(&err), 0);

	static const char *const bad[] = {"", ",", "ClientRegistered,", ",ClientRegistered",
					  "NoSuchEvent", "clientregistered", "ClientRegistered ,x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vp_error_clear(&err);
		assert_int_equal(rd_stream_filter_parse(&f, bad[i], NULL, &err), -1);
		assert_int_equal(details_of(&err), 1);
		assert_string_equal(err.details[0].field, "types");
	}
}

static void test_aggregate_filter(void **state)
{
	RdStreamFilter f;
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_int_equal(rd_stream_filter_parse(&f, "ClientContactUpdated",
						"0193A5C2-0000-7000-8000-00000000000A", &err),
			 0);
	assert_true(f.has_aggregate);
	assert_string_equal(f.aggregate_id, "0193a5c2-0000-7000-8000-00000000000a");
	assert_true(rd_stream_filter_match(&f, "ClientContactUpdated",
					   "0193a5c2-0000-7000-8000-00000000000a"));
	assert_false(rd_stream_filter_match(&f, "ClientRegistered",
					    "0193a5c2-0000-7000-8000-00000000000a"));
	assert_false(rd_stream_filter_match(&f, "ClientContactUpdated",
					    "0193a5c2-0000-7000-8000-00000000000b"));
	assert_int_equal(rd_stream_filter_parse(&f, NULL, "42", &err), 0);
	assert_false(f.has_aggregate);
	assert_int_equal(details_of(&err), 1);
	assert_string_equal(err.details[0].field, "aggregate_id");
}

static void test_position_order(void **state)
{
	(void)state;
	RdStreamPos none = {-1, -1}, a = {0, 5}, b = {0, 6}, c = {1, 0};
	assert_true(rd_stream_pos_cmp(none, a) < 0);
	assert_true(rd_stream_pos_cmp(a, b) < 0);
	assert_true(rd_stream_pos_cmp(b, c) < 0);
	assert_true(rd_stream_pos_cmp(c, a) > 0);
	assert_int_equal(rd_stream_pos_cmp(b, b), 0);
}

static void test_wire_text(void **state)
{
	VpBuf out;
	(void)state;
	vp_buf_init(&out, 4096);
	RdStreamEvent ev = {{2, 1187}, "AppointmentCheckedIn", "appointment",
			    "0193a5c2-0000-7000-8000-000000000001", "2026-11-22T09:30:00Z"};
	assert_int_equal(rd_stream_format_event(&out, &ev), 0);
	assert_string_equal(vp_buf_str(&out),
			    "id: 2:1187\nevent: AppointmentCheckedIn\n"
			    "data: {\"type\":\"AppointmentCheckedIn\",\"aggregate\":\"appointment\","
			    "\"aggregate_id\":\"0193a5c2-0000-7000-8000-000000000001\","
			    "\"position\":\"2:1187\",\"at\":\"2026-11-22T09:30:00Z\"}\n\n");
	/* whatever a row holds, the event stays on its lines */
	vp_buf_reset(&out);
	RdStreamEvent odd = {{0, 1}, "Bad\ntype\r", "a\"b\n", "x", "y"};
	assert_int_equal(rd_stream_format_event(&out, &odd), 0);
	assert_string_equal(vp_buf_str(&out),
			    "id: 0:1\nevent: Badtype\n"
			    "data: {\"type\":\"Bad\\ntype\\r\",\"aggregate\":\"a\\\"b\\n\","
			    "\"aggregate_id\":\"x\",\"position\":\"0:1\",\"at\":\"y\"}\n\n");
	/* a full buffer is an error, not a cut event */
	VpBuf small;
	vp_buf_init(&small, 16);
	assert_int_equal(rd_stream_format_event(&small, &ev), -1);
	vp_buf_free(&small);
	vp_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_start_position),
	    cmocka_unit_test(test_bad_positions_name_their_field),
	    cmocka_unit_test(test_types_filter),
	    cmocka_unit_test(test_aggregate_filter),
	    cmocka_unit_test(test_position_order),
	    cmocka_unit_test(test_wire_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
