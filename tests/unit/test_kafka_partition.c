/* The writer decides tenant ownership with its own murmur2: it must agree with
 * the Java client (Kafka's own test vectors) and with librdkafka's partitioner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vp_kafka.h"

static void murmur2_matches_java_vectors(void **state)
{
	(void)state;
	/* From Kafka's UtilsTest.testMurmur2. */
	assert_int_equal(vp_kafka_murmur2("21", 2), -973932308);
	assert_int_equal(vp_kafka_murmur2("foobar", 6), -790332482);
	assert_int_equal(vp_kafka_murmur2("a-little-bit-long-string", 24), -985981536);
	assert_int_equal(vp_kafka_murmur2("a-little-bit-longer-string", 26), -1486304829);
	const char *long_key = "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8";
	assert_int_equal(vp_kafka_murmur2(long_key, strlen(long_key)), -58897971);
	assert_int_equal(vp_kafka_murmur2("abc", 3), 479470107);
}

static void partition_matches_librdkafka(void **state)
{
	(void)state;
	char key[64];
	for (int i = 0; i < 2000; i++) {
		int len = snprintf(key, sizeof(key), "0193a5c2-%04x-7abc-8def-%012d", i, i * 7919);
		for (int cnt = 1; cnt <= 12; cnt++) {
			int ours = vp_kafka_partition_for_key(key, (size_t)len, cnt);
			int theirs = rd_kafka_msg_partitioner_murmur2(NULL, key, (size_t)len, cnt,
								      NULL, NULL);
			assert_int_equal(ours, theirs);
			assert_in_range(ours, 0, cnt - 1);
		}
	}
}

static void partition_refuses_zero_partitions(void **state)
{
	(void)state;
	assert_int_equal(vp_kafka_partition_for_key("x", 1, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(murmur2_matches_java_vectors),
		cmocka_unit_test(partition_matches_librdkafka),
		cmocka_unit_test(partition_refuses_zero_partitions),
	};
	return cmocka_run_group_tests_name("kafka_partition", tests, NULL, NULL);
}
