/* Unit tests of common/vp_kafka_end.c's pure part: when a partition counts as
 * read to the end it had when the read began. The starvation it is for (a
 * partition whose end keeps moving) is tests/e2e/test_keys_read_end.py's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vp_kafka_end.h"

#define NO_POSITION (-1001) /* librdkafka's RD_KAFKA_OFFSET_INVALID */

static void an_empty_partition_is_read_at_once(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(3);
	assert_non_null(e);
	assert_int_equal(vp_kafka_end_left(e), 3);
	vp_kafka_end_set(e, 0, 0, 0);   /* never written */
	vp_kafka_end_set(e, 1, 40, 40); /* compacted or deleted to nothing */
	vp_kafka_end_set(e, 2, 0, 10);
	assert_true(vp_kafka_end_partition_read(e, 0));
	assert_true(vp_kafka_end_partition_read(e, 1));
	assert_false(vp_kafka_end_partition_read(e, 2));
	assert_int_equal(vp_kafka_end_left(e), 1);
	vp_kafka_end_free(e);
}

/* The last record before the end, or any later one: read, though the end
 * moved on and no end of partition event came. */
static void a_message_at_the_end_less_one_or_later_reads_it(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(2);
	vp_kafka_end_set(e, 0, 0, 10);
	vp_kafka_end_set(e, 1, 0, 10);
	vp_kafka_end_message(e, 0, 0);
	vp_kafka_end_message(e, 0, 8);
	assert_false(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_message(e, 0, 9);
	assert_true(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_message(e, 1, 57); /* the end was a commit marker: the next record */
	assert_true(vp_kafka_end_partition_read(e, 1));
	assert_int_equal(vp_kafka_end_left(e), 0);
	vp_kafka_end_free(e);
}

/* Trailing commit markers never arrive as messages: the position past them
 * reads the partition; a position short of the end or none does not. */
static void a_position_at_the_end_reads_it(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(1);
	vp_kafka_end_set(e, 0, 0, 10);
	vp_kafka_end_position(e, 0, NO_POSITION);
	vp_kafka_end_position(e, 0, 9);
	vp_kafka_end_message(e, 0, 7); /* the last data record; 8 and 9 are markers */
	assert_false(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_position(e, 0, 10);
	assert_true(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_free(e);
}

/* An end not known (its query failed): only the end of partition event
 * counts, as before ends were taken. */
static void without_an_end_only_eof_reads_it(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(2);
	vp_kafka_end_set(e, 1, 0, 5);
	vp_kafka_end_message(e, 0, 1000000);
	vp_kafka_end_position(e, 0, 1000000);
	assert_false(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_eof(e, 0);
	vp_kafka_end_eof(e, 1);
	assert_true(vp_kafka_end_partition_read(e, 0));
	assert_true(vp_kafka_end_partition_read(e, 1));
	assert_int_equal(vp_kafka_end_left(e), 0);
	vp_kafka_end_free(e);
}

/* Each partition counts once whatever says so, how often; partitions out of
 * range are ignored. */
static void each_partition_counts_once(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(3);
	for (int p = 0; p < 3; p++)
		vp_kafka_end_set(e, p, 0, 4);
	vp_kafka_end_eof(e, 1);
	vp_kafka_end_eof(e, 1);
	vp_kafka_end_message(e, 1, 3);
	vp_kafka_end_position(e, 1, 4);
	vp_kafka_end_eof(e, 3);
	vp_kafka_end_eof(e, -1);
	vp_kafka_end_message(e, 7, 100);
	vp_kafka_end_set(e, 5, 0, 0);
	assert_int_equal(vp_kafka_end_left(e), 2);
	assert_false(vp_kafka_end_partition_read(e, 3));
	vp_kafka_end_free(e);
}

/* The writer's rebuild reads only the partitions it owns: the others count
 * as read from the start, and an owned one is still read only at its end. */
static void a_skipped_partition_is_read_and_no_other(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(3);
	vp_kafka_end_skip(e, 1);
	vp_kafka_end_skip(e, 1);
	vp_kafka_end_skip(e, 3);
	assert_true(vp_kafka_end_partition_read(e, 1));
	assert_int_equal(vp_kafka_end_left(e), 2);
	vp_kafka_end_set(e, 0, 0, 0);
	vp_kafka_end_set(e, 2, 5, 12);
	assert_int_equal(vp_kafka_end_left(e), 1);
	vp_kafka_end_position(e, 2, 11);
	assert_false(vp_kafka_end_partition_read(e, 2));
	vp_kafka_end_position(e, 2, 12);
	assert_int_equal(vp_kafka_end_left(e), 0);
	vp_kafka_end_free(e);
}

/* A tail of commit markers: the last data record comes before end - 1 and
 * is not enough; the position past the markers is. With the end unknown
 * (its query failed) neither a record nor a position is: only the end of
 * partition event. */
static void markers_after_the_last_record_wait_for_the_position(void **state)
{
	(void)state;
	VpKafkaEnd *e = vp_kafka_end_new(2);
	vp_kafka_end_set(e, 0, 0, 4); /* record 0, marker 1, record 2, marker 3 */
	vp_kafka_end_message(e, 0, 2);
	assert_false(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_position(e, 0, 4);
	assert_true(vp_kafka_end_partition_read(e, 0));
	vp_kafka_end_message(e, 1, 2);
	vp_kafka_end_position(e, 1, 4);
	assert_false(vp_kafka_end_partition_read(e, 1));
	vp_kafka_end_eof(e, 1);
	assert_int_equal(vp_kafka_end_left(e), 0);
	vp_kafka_end_free(e);
}

static void no_tracker_without_partitions(void **state)
{
	(void)state;
	assert_null(vp_kafka_end_new(0));
	assert_null(vp_kafka_end_new(-1));
	vp_kafka_end_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_empty_partition_is_read_at_once),
		cmocka_unit_test(a_message_at_the_end_less_one_or_later_reads_it),
		cmocka_unit_test(a_position_at_the_end_reads_it),
		cmocka_unit_test(without_an_end_only_eof_reads_it),
		cmocka_unit_test(each_partition_counts_once),
		cmocka_unit_test(a_skipped_partition_is_read_and_no_other),
		cmocka_unit_test(markers_after_the_last_record_wait_for_the_position),
		cmocka_unit_test(no_tracker_without_partitions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
