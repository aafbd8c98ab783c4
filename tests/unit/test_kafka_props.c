/* The defaults every Kafka client gets, and VETPMS_KAFKA_PROPS ("a=b,c=d"):
 * a list value (librdkafka's debug contexts)
 * keeps its commas, and what is not name=value is refused with its text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_kafka.h"

/* The value librdkafka holds for name after conf built from extra. */
static void expect_prop(const char *extra, const char *name, const char *value)
{
	char why[256] = "", got[256];
	size_t size = sizeof(got);
	rd_kafka_conf_t *conf = vp_kafka_conf_new("127.0.0.1:9", "test", extra, why, sizeof(why));
	assert_non_null(conf);
	assert_int_equal(rd_kafka_conf_get(conf, name, got, &size), RD_KAFKA_CONF_OK);
	assert_string_equal(got, value);
	rd_kafka_conf_destroy(conf);
}

static void refused(const char *extra, const char *why_has)
{
	char why[256] = "";
	assert_null(vp_kafka_conf_new("127.0.0.1:9", "test", extra, why, sizeof(why)));
	assert_non_null(strstr(why, why_has));
}

static void plain_pairs(void **state)
{
	(void)state;
	expect_prop("session.timeout.ms=6000,heartbeat.interval.ms=500", "session.timeout.ms",
		    "6000");
	expect_prop("session.timeout.ms=6000,heartbeat.interval.ms=500", "heartbeat.interval.ms",
		    "500");
}

static void a_list_value_keeps_its_commas(void **state)
{
	(void)state;
	expect_prop("debug=eos,broker", "debug", "broker,eos");
	expect_prop("linger.ms=7,debug=eos,broker,retry.backoff.ms=20", "debug", "broker,eos");
	expect_prop("linger.ms=7,debug=eos,broker,retry.backoff.ms=20", "linger.ms", "7");
	expect_prop("linger.ms=7,debug=eos,broker,retry.backoff.ms=20", "retry.backoff.ms", "20");
}

/* Every client reconnects within a second of its broker's return (vp_kafka.h),
 * unless ops say otherwise. */
static void reconnect_backoff_is_capped_unless_set(void **state)
{
	(void)state;
	expect_prop("", "reconnect.backoff.max.ms", VP_KAFKA_RECONNECT_BACKOFF_MAX_MS);
	expect_prop("linger.ms=7", "reconnect.backoff.max.ms", "1000");
	expect_prop("reconnect.backoff.max.ms=5000", "reconnect.backoff.max.ms", "5000");
}

/* A client kind's defaults go first: VETPMS_KAFKA_PROPS still wins. */
static void joined_defaults_yield_to_extra(void **state)
{
	(void)state;
	const char *defaults = "session.timeout.ms=10000,heartbeat.interval.ms=1000";
	char *alone = vp_kafka_props_join(defaults, "");
	char *both = vp_kafka_props_join(defaults, "session.timeout.ms=6000,debug=cgrp,broker");
	assert_string_equal(alone, defaults);
	expect_prop(alone, "session.timeout.ms", "10000");
	expect_prop(both, "session.timeout.ms", "6000");
	expect_prop(both, "heartbeat.interval.ms", "1000");
	expect_prop(both, "debug", "broker,cgrp");
	free(alone);
	free(both);
}

static void not_name_value_is_refused(void **state)
{
	(void)state;
	refused("broker,debug=eos", "'broker' is not name=value");
	refused("=5", "'=5' is not name=value");
	refused("linger.ms=7,debug=nosuchcontext", "debug");
	/* a number is never a list: a stray word after one is not joined to it */
	refused("linger.ms=7,oops", "'oops' is not name=value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_pairs),
		cmocka_unit_test(a_list_value_keeps_its_commas),
		cmocka_unit_test(reconnect_backoff_is_capped_unless_set),
		cmocka_unit_test(joined_defaults_yield_to_extra),
		cmocka_unit_test(not_name_value_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
