/* Token buckets per token and per tenant (common/vp_ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "vp_ratelimit.h"

#define S 1000000LL /* a second in microseconds */

static void key_of(int n, unsigned char key[32])
{
	memset(key, 0, 32);
	memcpy(key, &n, sizeof(n));
	key[31] = (unsigned char)n;
}

static int admit(int token, const char *tenant, long long now_us, VpError *err)
{
	unsigned char key[32];
	key_of(token, key);
	vp_error_clear(err);
	return vp_ratelimit_admit(key, tenant, now_us, err);
}

static void configure(long token_per_s, long token_burst, long tenant_per_s, long tenant_burst)
{
	VpRateLimits l = {token_per_s, token_burst, tenant_per_s, tenant_burst};
	vp_ratelimit_configure(&l);
}

static void burst_then_refill_at_the_rate(void **state)
{
	VpError err;
	(void)state;
	configure(2, 5, 0, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(admit(1, NULL, 10 * S, &err), 0);
	assert_int_equal(admit(1, NULL, 10 * S, &err), -1);
	assert_int_equal(err.status, 429);
	assert_string_equal(err.code, "RATE_LIMITED");
	assert_int_equal(err.retry_after_s, 1);
	/* half a second at 2/s: one more */
	assert_int_equal(admit(1, NULL, 10 * S + S / 2, &err), 0);
	assert_int_equal(admit(1, NULL, 10 * S + S / 2, &err), -1);
	/* a long pause refills to the burst, never beyond */
	for (int i = 0; i < 5; i++)
		assert_int_equal(admit(1, NULL, 1000 * S, &err), 0);
	assert_int_equal(admit(1, NULL, 1000 * S, &err), -1);
}

static void tokens_have_their_own_buckets(void **state)
{
	VpError err;
	(void)state;
	configure(1, 2, 0, 1);
	assert_int_equal(admit(1, NULL, S, &err), 0);
	assert_int_equal(admit(1, NULL, S, &err), 0);
	assert_int_equal(admit(1, NULL, S, &err), -1);
	assert_int_equal(admit(2, NULL, S, &err), 0);
}

static void tenant_bucket_is_shared_and_a_refusal_takes_nothing(void **state)
{
	VpError err;
	(void)state;
	configure(100, 100, 1, 3);
	assert_int_equal(admit(1, "t-a", S, &err), 0);
	assert_int_equal(admit(2, "t-a", S, &err), 0);
	assert_int_equal(admit(3, "t-a", S, &err), 0);
	assert_int_equal(admit(4, "t-a", S, &err), -1);
	assert_non_null(strstr(err.message, "tenant"));
	assert_int_equal(admit(4, "t-b", S, &err), 0); /* another tenant */
	assert_int_equal(admit(5, NULL, S, &err), 0);  /* no tenant: token only */
	/* token 1 was refused nothing by the tenant's refusal of token 4 */
	configure(1, 1, 1, 10);
	assert_int_equal(admit(1, "t-a", S, &err), 0);
	assert_int_equal(admit(1, "t-a", S, &err), -1); /* token empty */
	assert_int_equal(admit(2, "t-a", S, &err), 0);  /* tenant still had 9 */
}

static void retry_after_is_the_wait_of_the_slower_bucket(void **state)
{
	VpError err;
	unsigned char key[32];
	(void)state;
	configure(1, 1, 0, 1);
	key_of(9, key);
	assert_int_equal(admit(9, NULL, S, &err), 0);
	assert_int_equal(admit(9, NULL, S + 1, &err), -1);
	assert_int_equal(err.retry_after_s, 1);
	configure(1000000, 1, 0, 1); /* very fast refill: at least 1 s still */
	assert_int_equal(admit(9, NULL, S, &err), 0);
	assert_int_equal(admit(9, NULL, S, &err), -1);
	assert_int_equal(err.retry_after_s, 1);
}

static void no_limits_admit_everything(void **state)
{
	VpError err;
	(void)state;
	configure(0, 1, 0, 1);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(admit(1, "t", S, &err), 0);
}

static void many_keys_evict_the_stalest(void **state)
{
	VpError err;
	(void)state;
	configure(1, 1, 0, 1);
	/* more keys than slots: every one gets a full bucket, none is refused */
	for (int i = 0; i < 20000; i++)
		assert_int_equal(admit(i, NULL, S + i, &err), 0);
	/* the newest are still remembered */
	assert_int_equal(admit(19999, NULL, S + 20000, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(burst_then_refill_at_the_rate),
	    cmocka_unit_test(tokens_have_their_own_buckets),
	    cmocka_unit_test(tenant_bucket_is_shared_and_a_refusal_takes_nothing),
	    cmocka_unit_test(retry_after_is_the_wait_of_the_slower_bucket),
	    cmocka_unit_test(no_limits_admit_everything),
	    cmocka_unit_test(many_keys_evict_the_stalest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
