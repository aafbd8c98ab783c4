/* Unit tests of the keys topic's master record (common/vp_keyring.c;
 * docs/privacy.md, "Start-up refusal"): the record names the master key the
 * deployment's keys are wrapped under, so a keyring holding another key is
 * refused at the end of its read even when the topic holds no tenant key;
 * the newest record counts in either read order (a rotation rewrites it);
 * the previous key of a rotation is held too; only the first record a
 * keyring takes can stop a running daemon (vp_keyring_master_refused), a
 * later one under another key is a rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_keyring.h"
#include "vp_sealed.h"

static char why[512];
static VpKey *master_a, *master_b;
static char a_id[VP_KEY_ID_CHARS + 1], b_id[VP_KEY_ID_CHARS + 1];

static int setup(void **state)
{
	(void)state;
	if (vp_crypto_init(why, sizeof(why)) < 0)
		return -1;
	master_a = vp_key_random(why, sizeof(why));
	master_b = vp_key_random(why, sizeof(why));
	if (!master_a || !master_b)
		return -1;
	vp_key_id(master_a, a_id);
	vp_key_id(master_b, b_id);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	master_a = vp_key_free(master_a);
	master_b = vp_key_free(master_b);
	return 0;
}

/* The master record naming kek_id, made at at_us, taken by kr. */
static int take_master(VpKeyring *kr, const char *kek_id, int64_t at_us)
{
	char *value = vp_keyrec_master_value(kek_id, at_us);
	assert_non_null(value);
	int rc = vp_keyring_take(kr, VP_KEYREC_MASTER_NAME, strlen(VP_KEYREC_MASTER_NAME), value,
				 strlen(value), why, sizeof(why));
	free(value);
	return rc;
}

static void the_record_of_the_key_held_passes(void **state)
{
	(void)state;
	VpKeyring *kr = vp_keyring_new(master_a, why, sizeof(why));
	assert_false(vp_keyring_has_master(kr));
	assert_int_equal(take_master(kr, a_id, 1000000), VP_KEYRING_OK);
	assert_true(vp_keyring_has_master(kr));
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	assert_false(vp_keyring_master_refused(kr, why, sizeof(why)));
	/* nothing else was made of it: no tenant, no client */
	assert_int_equal(vp_keyring_tenants(kr), 0);
	assert_int_equal(vp_keyring_clients(kr), 0);
	vp_keyring_free(kr);
}

/* The case a tenant key could not catch: no tenant key in the topic yet. */
static void a_record_of_another_key_is_refused_without_any_tenant_key(void **state)
{
	(void)state;
	VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
	assert_int_equal(take_master(kr, a_id, 1000000), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	char expected[256];
	snprintf(expected, sizeof(expected),
		 "master record says the deployment's keys are wrapped under master key %s, but "
		 "this daemon holds master key %s: wrong VETPMS_MASTER_KEY_FILE",
		 a_id, b_id);
	assert_non_null(strstr(why, expected));
	/* the first record taken: a running daemon stops too */
	why[0] = '\0';
	assert_true(vp_keyring_master_refused(kr, why, sizeof(why)));
	assert_non_null(strstr(why, expected));
	vp_keyring_free(kr);

	/* a record without a kek_id names no key anyone holds */
	kr = vp_keyring_new(master_b, why, sizeof(why));
	const char *bare = "{\"kind\":\"master\",\"created_at\":\"2026-12-03T07:00:00Z\"}";
	assert_int_equal(vp_keyring_take(kr, VP_KEYREC_MASTER_NAME, strlen(VP_KEYREC_MASTER_NAME),
					 bare, strlen(bare), why, sizeof(why)),
			 VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	assert_non_null(strstr(why, "master key (none)"));
	vp_keyring_free(kr);
}

/* A rotation from A to B: the record under B is newer; whatever the read
 * order, a keyring holding B counts B, one holding A alone counts B too
 * (refused at start), one holding B with previous A passes. */
static void the_newest_record_counts_in_either_order(void **state)
{
	(void)state;
	const char *order[2][2] = {{a_id, b_id}, {b_id, a_id}};
	const int64_t at[2][2] = {{1000000, 2000000}, {2000000, 1000000}};
	for (int i = 0; i < 2; i++) {
		VpKeyring *holds_b = vp_keyring_new(master_b, why, sizeof(why));
		VpKeyring *holds_a = vp_keyring_new(master_a, why, sizeof(why));
		VpKeyring *holds_both = vp_keyring_new(master_b, why, sizeof(why));
		vp_keyring_accept_previous(holds_both, master_a);
		for (int j = 0; j < 2; j++) {
			assert_int_equal(take_master(holds_b, order[i][j], at[i][j]), VP_KEYRING_OK);
			assert_int_equal(take_master(holds_a, order[i][j], at[i][j]), VP_KEYRING_OK);
			assert_int_equal(take_master(holds_both, order[i][j], at[i][j]),
					 VP_KEYRING_OK);
		}
		assert_int_equal(vp_keyring_wrong_master(holds_b, why, sizeof(why)), VP_KEYRING_OK);
		assert_int_equal(vp_keyring_wrong_master(holds_both, why, sizeof(why)),
				 VP_KEYRING_OK);
		assert_int_equal(vp_keyring_wrong_master(holds_a, why, sizeof(why)),
				 VP_KEYRING_WRONG_MASTER);
		assert_non_null(strstr(why, b_id));
		vp_keyring_free(holds_b);
		vp_keyring_free(holds_a);
		vp_keyring_free(holds_both);
	}
	/* the previous key alone is enough while the record still names it */
	VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
	vp_keyring_accept_previous(kr, master_a);
	assert_int_equal(take_master(kr, a_id, 1000000), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	vp_keyring_free(kr);
}

/* Following the topic: a daemon holding A that first read A's record keeps
 * going when a rotation's record under B arrives (it is wrong at its next
 * start, not now); one that started before any record and first reads B's
 * stops; a later record under its own key lifts that. */
static void only_the_first_record_taken_stops_a_running_daemon(void **state)
{
	(void)state;
	VpKeyring *kr = vp_keyring_new(master_a, why, sizeof(why));
	assert_int_equal(take_master(kr, a_id, 1000000), VP_KEYRING_OK);
	assert_int_equal(take_master(kr, b_id, 2000000), VP_KEYRING_OK);
	assert_false(vp_keyring_master_refused(kr, why, sizeof(why)));
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	vp_keyring_free(kr);

	kr = vp_keyring_new(master_a, why, sizeof(why));
	assert_int_equal(take_master(kr, b_id, 1000000), VP_KEYRING_OK);
	assert_true(vp_keyring_master_refused(kr, why, sizeof(why)));
	assert_int_equal(take_master(kr, a_id, 2000000), VP_KEYRING_OK);
	assert_false(vp_keyring_master_refused(kr, why, sizeof(why)));
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	vp_keyring_free(kr);
}

/* A tombstone drops the record (an operator's deletion): nothing is held
 * against the keyring, and a writer would record its key again. A record
 * of another kind under the master's name, or the master's kind under
 * another name, is not a master record. */
static void a_tombstone_drops_it_and_other_shapes_are_not_it(void **state)
{
	(void)state;
	VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
	assert_int_equal(take_master(kr, a_id, 1000000), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_take(kr, VP_KEYREC_MASTER_NAME, strlen(VP_KEYREC_MASTER_NAME),
					 NULL, 0, why, sizeof(why)),
			 VP_KEYRING_OK);
	assert_false(vp_keyring_has_master(kr));
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);

	char *value = vp_keyrec_master_value(a_id, 1000000);
	const char *name = "master:elsewhere";
	assert_int_equal(
		vp_keyring_take(kr, name, strlen(name), value, strlen(value), why, sizeof(why)),
		VP_KEYRING_FAILED);
	assert_non_null(strstr(why, "unknown kind of key record"));
	free(value);
	assert_false(vp_keyring_has_master(kr));
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	vp_keyring_free(kr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_record_of_the_key_held_passes),
		cmocka_unit_test(a_record_of_another_key_is_refused_without_any_tenant_key),
		cmocka_unit_test(the_newest_record_counts_in_either_order),
		cmocka_unit_test(only_the_first_record_taken_stops_a_running_daemon),
		cmocka_unit_test(a_tombstone_drops_it_and_other_shapes_are_not_it),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
