/* Unit tests of common/vp_idset.c: a counted set of short strings (the
 * keyring's erased client ids): held as often as added, gone when removed
 * as often, every string still found after the buckets grew. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <sodium.h>

#include "vp_idset.h"

#define MANY 5000 /* buckets double from 16 to 8,192 */

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static void a_string_is_held_as_often_as_it_was_added(void **state)
{
	(void)state;
	VpIdSet *s = vp_idset_new();
	assert_non_null(s);
	assert_false(vp_idset_has(s, "a"));
	vp_idset_remove(s, "a"); /* not held: nothing */
	assert_int_equal(vp_idset_add(s, "a"), 0);
	assert_int_equal(vp_idset_add(s, "a"), 0);
	assert_int_equal(vp_idset_add(s, "ab"), 0);
	assert_true(vp_idset_has(s, "a"));
	assert_false(vp_idset_has(s, "b")); /* a suffix, not held */
	assert_false(vp_idset_has(s, ""));
	vp_idset_remove(s, "a");
	assert_true(vp_idset_has(s, "a"));
	vp_idset_remove(s, "a");
	assert_false(vp_idset_has(s, "a"));
	assert_true(vp_idset_has(s, "ab"));
	assert_null(vp_idset_free(s));
}

static void every_string_is_found_after_the_buckets_grew(void **state)
{
	(void)state;
	VpIdSet *s = vp_idset_new();
	char id[32];
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "client-%d", i);
		assert_int_equal(vp_idset_add(s, id), 0);
	}
	for (int i = 0; i < MANY; i += 2) {
		snprintf(id, sizeof(id), "client-%d", i);
		vp_idset_remove(s, id);
	}
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "client-%d", i);
		assert_int_equal(vp_idset_has(s, id), i % 2 == 1);
	}
	snprintf(id, sizeof(id), "client-%d", MANY);
	assert_false(vp_idset_has(s, id));
	vp_idset_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_string_is_held_as_often_as_it_was_added),
	    cmocka_unit_test(every_string_is_found_after_the_buckets_grew),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
