/* Unit tests of common/vp_keyrec_partition.c: every key record of one tenant
 * on the partition its events get (for the same count), whatever the client;
 * one partition a transaction, one partition a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vp_kafka.h"
#include "vp_keyrec_partition.h"

#define TENANT "0190a1b2-0000-7000-8000-000000000001"
#define CLIENT "0190a1b2-0000-7000-8000-000000000002"
#define OTHER  "0190a1b2-0000-7000-8000-000000000003"

static void a_tenants_records_share_its_events_partition(void **state)
{
	(void)state;
	for (int cnt = 1; cnt <= 12; cnt++) {
		int want = vp_kafka_partition_for_key(TENANT, strlen(TENANT), cnt);
		assert_int_equal(vp_keyrec_partition("tenant:" TENANT, cnt), want);
		assert_int_equal(vp_keyrec_partition("client:" TENANT ":" CLIENT, cnt), want);
		assert_int_equal(vp_keyrec_partition("client:" TENANT ":" OTHER, cnt), want);
	}
}

static void tenants_spread_over_the_partitions(void **state)
{
	(void)state;
	int seen[6] = {0}, spread = 0;
	for (int i = 0; i < 60; i++) {
		char name[64];
		snprintf(name, sizeof(name), "tenant:0190a1b2-0000-7000-8000-%012d", i);
		int p = vp_keyrec_partition(name, 6);
		assert_in_range(p, 0, 5);
		spread += !seen[p]++;
	}
	assert_int_equal(spread, 6);
}

static void a_name_without_a_tenant_has_no_partition(void **state)
{
	(void)state;
	assert_int_equal(vp_keyrec_partition("no-tenant", 6), -1);
	assert_int_equal(vp_keyrec_partition("tenant:", 6), -1);
	assert_int_equal(vp_keyrec_partition("client::" CLIENT, 6), -1);
	assert_int_equal(vp_keyrec_partition(NULL, 6), -1);
	assert_int_equal(vp_keyrec_partition("tenant:" TENANT, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_tenants_records_share_its_events_partition),
		cmocka_unit_test(tenants_spread_over_the_partitions),
		cmocka_unit_test(a_name_without_a_tenant_has_no_partition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
