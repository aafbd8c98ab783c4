/* Idempotency keys bounded in time: the store forgets keys oldest first, never
 * a pending one, takes a key again once it expired, keeps its FIFO sorted when
 * times step back a little, and stays the size of its window under churn; the
 * write model counts the keys of every tenant and expires them from the
 * events' own times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "idem.h"
#include "state.h"
#include "vp_time.h"

static WrIdem *put(WrIdemStore *st, const char *key, int64_t expires_us)
{
	WrIdem *k = wr_idem_put(st, key, expires_us);
	assert_non_null(k);
	return k;
}

static void expiry_is_oldest_first(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	put(&st, "a", 100);
	put(&st, "b", 200);
	put(&st, "c", 300);
	assert_int_equal(wr_idem_expire(&st, 99), 0);
	assert_int_equal(wr_idem_expire(&st, 150), 1);
	assert_null(wr_idem_get(&st, "a"));
	assert_non_null(wr_idem_get(&st, "b"));
	assert_non_null(wr_idem_get(&st, "c"));
	assert_string_equal(st.oldest->key, "b");
	/* the expiry instant itself is outside the window */
	assert_int_equal(wr_idem_expire(&st, 300), 2);
	assert_int_equal(wr_idem_count(&st), 0);
	assert_null(st.oldest);
	assert_null(st.newest);
	wr_idem_clear(&st);
}

static void pending_entries_are_never_evicted(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	WrIdem *first = put(&st, "first", 100);
	first->pending = true;
	put(&st, "second", 200);
	/* a pending head holds the queue: the later key waits behind it */
	assert_int_equal(wr_idem_expire(&st, 1000), 0);
	assert_ptr_equal(wr_idem_get(&st, "first"), first);
	assert_non_null(wr_idem_get(&st, "second"));
	first->pending = false; /* appended */
	assert_int_equal(wr_idem_expire(&st, 1000), 2);
	assert_int_equal(wr_idem_count(&st), 0);

	/* a pending entry behind expired ones: those go, it stays */
	put(&st, "done", 100);
	put(&st, "in-flight", 200)->pending = true;
	assert_int_equal(wr_idem_expire(&st, 1000), 1);
	assert_null(wr_idem_get(&st, "done"));
	assert_true(wr_idem_get(&st, "in-flight")->pending);
	wr_idem_clear(&st);
}

static void key_is_new_again_after_expiry(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	WrIdem *k = put(&st, "key", 100);
	snprintf(k->request_hash, sizeof(k->request_hash), "first-command");
	k->version = 7;
	assert_int_equal(wr_idem_expire(&st, 100), 1);
	assert_null(wr_idem_get(&st, "key"));
	k = put(&st, "key", 500);
	assert_string_equal(k->request_hash, "");
	assert_int_equal(k->version, 0);
	assert_int_equal(k->expires_us, 500);
	assert_int_equal(wr_idem_count(&st), 1);
	wr_idem_clear(&st);
}

/* A replayed log can hold one key twice (used again after it expired): the
 * later command replaces the earlier, whose FIFO place goes with it. */
static void a_key_put_again_replaces_the_older_entry(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	put(&st, "key", 100);
	put(&st, "other", 150);
	WrIdem *again = put(&st, "key", 300);
	assert_int_equal(wr_idem_count(&st), 2);
	assert_string_equal(st.oldest->key, "other");
	assert_ptr_equal(st.newest, again);
	assert_int_equal(wr_idem_expire(&st, 200), 1);
	assert_ptr_equal(wr_idem_get(&st, "key"), again);
	assert_int_equal(wr_idem_expire(&st, 300), 1);
	assert_int_equal(wr_idem_count(&st), 0);
	wr_idem_clear(&st);
}

static void times_stepping_back_keep_the_fifo_sorted(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	put(&st, "a", 200);
	WrIdem *b = put(&st, "b", 150); /* the clock stepped back 50 us */
	assert_int_equal(b->expires_us, 200);
	assert_int_equal(wr_idem_expire(&st, 199), 0);
	assert_int_equal(wr_idem_expire(&st, 200), 2);
	wr_idem_clear(&st);
}

static void many_keys(void **state)
{
	(void)state;
	WrIdemStore st = {0};
	char key[32];
	for (long i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "key-%ld", i);
		put(&st, key, i);
	}
	assert_int_equal(wr_idem_count(&st), 100000);
	assert_int_equal(wr_idem_expire(&st, 49999), 50000);
	for (long i = 0; i < 100000; i += 997) {
		snprintf(key, sizeof(key), "key-%ld", i);
		if (i < 50000)
			assert_null(wr_idem_get(&st, key));
		else
			assert_int_equal(wr_idem_get(&st, key)->expires_us, i);
	}
	/* a steady stream with a window of 1,000 keys: the store (map table
	 * included) stays the size of the window */
	for (long i = 100000; i < 400000; i++) {
		snprintf(key, sizeof(key), "key-%ld", i);
		put(&st, key, i);
		wr_idem_expire(&st, i - 1000);
		if (i >= 101000)
			assert_int_equal(wr_idem_count(&st), 1000);
		assert_true(st.by_key.cap <= 262144); /* what 100,000 keys needed */
	}
	assert_true(st.by_key.cap <= 4096);
	assert_int_equal(wr_idem_expire(&st, INT64_MAX), 1000);
	wr_idem_clear(&st);
}

/* The model: keys kept for the window after the event's `at`, counted over all
 * tenants, expired per tenant or for all; only client keys are kept. */
static void apply_event(WrState *s, const char *tenant, const char *aggregate, const char *type,
			const char *aggregate_id, const char *command_id, int64_t at_us,
			const WrIdemNote *idem)
{
	VpEvent ev = {.v = 1, .seq = 1, .at_us = at_us};
	char why[128];
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", tenant);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", aggregate);
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", aggregate_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "%s", command_id);
	assert_int_equal(wr_state_apply(s, &ev, idem, why, sizeof(why)), 0);
}

/* An event whose command id the client chose. */
static void apply(WrState *s, const char *tenant, const char *aggregate, const char *type,
		  const char *aggregate_id, const char *command_id, int64_t at_us)
{
	const WrIdemNote idem = {.request_hash = "hash", .position = "0:1"};
	apply_event(s, tenant, aggregate, type, aggregate_id, command_id, at_us, &idem);
}

#define T1 "01a20807-0000-7000-8000-000000000001"
#define T2 "01a20807-0000-7000-8000-000000000002"
#define C1 "01a20807-0000-7000-8000-000000000003"
#define C2 "01a20807-0000-7000-8000-000000000004"

static void the_model_counts_and_expires_keys_of_every_tenant(void **state)
{
	(void)state;
	WrState s;
	const int64_t sec = VP_US_PER_SEC;
	wr_state_init(&s);
	assert_int_equal(s.idem_window_us, WR_IDEM_DEFAULT_WINDOW_S * sec);
	s.idem_window_us = 10 * sec;
	apply(&s, T1, "tenant", "TenantProvisioned", T1, "provision-1", 0);
	apply(&s, T2, "tenant", "TenantProvisioned", T2, "provision-2", 5 * sec);
	apply(&s, T1, "client", "ClientRegistered", C1, "client-1", 8 * sec);
	apply(&s, T2, "client", "ClientRegistered", C2, "client-2", 12 * sec);
	assert_int_equal(s.idem_keys, 4);
	WrTenant *t1 = wr_state_tenant(&s, T1);
	wr_state_idem_expire(&s, t1, 10 * sec); /* provision-1: at 0 + 10 s */
	assert_int_equal(s.idem_keys, 3);
	assert_null(wr_idem_get(&t1->idem, "provision-1"));
	assert_non_null(wr_idem_get(&t1->idem, "client-1"));
	wr_state_idem_expire_all(&s, 18 * sec); /* provision-2, client-1 */
	assert_int_equal(s.idem_keys, 1);
	assert_non_null(wr_idem_get(&wr_state_tenant(&s, T2)->idem, "client-2"));
	/* a key put again replaces its entry: counted once */
	apply(&s, T2, "client", "ClientRegistered", C1, "client-2", 13 * sec);
	assert_int_equal(s.idem_keys, 1);
	wr_state_idem_expire_all(&s, 23 * sec);
	assert_int_equal(s.idem_keys, 0);
	wr_state_clear(&s);
}

/* A command id the writer generated is not remembered: no entry, not counted,
 * and marking it appended finds nothing; a client key pending on the loop is
 * marked appended by wr_state_idem_done and can expire after that. */
static void only_client_keys_are_remembered(void **state)
{
	(void)state;
	WrState s;
	const int64_t sec = VP_US_PER_SEC;
	const WrIdemNote pending = {.request_hash = "h", .position = "", .pending = true};
	wr_state_init(&s);
	s.idem_window_us = 10 * sec;
	apply_event(&s, T1, "tenant", "TenantProvisioned", T1, "generated-1", 0, NULL);
	apply_event(&s, T1, "client", "ClientRegistered", C1, "generated-2", 0, NULL);
	WrTenant *t1 = wr_state_tenant(&s, T1);
	assert_non_null(t1);
	assert_int_equal(s.idem_keys, 0);
	assert_int_equal(wr_idem_count(&t1->idem), 0);
	wr_state_idem_done(&s, T1, "generated-2", "0:2");
	assert_null(wr_idem_get(&t1->idem, "generated-2"));

	apply_event(&s, T1, "client", "ClientRegistered", C2, "client-key", sec, &pending);
	assert_int_equal(s.idem_keys, 1);
	assert_true(wr_idem_get(&t1->idem, "client-key")->pending);
	wr_state_idem_expire(&s, t1, 20 * sec); /* pending: kept */
	assert_int_equal(s.idem_keys, 1);
	wr_state_idem_done(&s, T1, "client-key", "0:3");
	assert_false(wr_idem_get(&t1->idem, "client-key")->pending);
	assert_string_equal(wr_idem_get(&t1->idem, "client-key")->position, "0:3");
	wr_state_idem_expire(&s, t1, 20 * sec);
	assert_int_equal(s.idem_keys, 0);
	wr_state_clear(&s);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(expiry_is_oldest_first),
		cmocka_unit_test(pending_entries_are_never_evicted),
		cmocka_unit_test(key_is_new_again_after_expiry),
		cmocka_unit_test(a_key_put_again_replaces_the_older_entry),
		cmocka_unit_test(times_stepping_back_keep_the_fifo_sorted),
		cmocka_unit_test(many_keys),
		cmocka_unit_test(the_model_counts_and_expires_keys_of_every_tenant),
		cmocka_unit_test(only_client_keys_are_remembered),
	};
	return cmocka_run_group_tests_name("writer_idem", tests, NULL, NULL);
}
