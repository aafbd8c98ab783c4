/* The writer's sorted disjoint interval sets: insert, remove, overlap (with a
 * skipped member), containment, adjacency, subtraction (trim and split), and
 * thousands of random operations checked against a brute-force model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "intervals.h"

static void test_adjacent_intervals_do_not_overlap(void **state)
{
	(void)state;
	WrIntervals set;
	wr_intervals_init(&set);
	assert_int_equal(wr_intervals_insert(&set, 900, 930), 0);
	assert_int_equal(wr_intervals_insert(&set, 930, 1000), 0);
	assert_int_equal(wr_intervals_insert(&set, 830, 900), 0);
	assert_int_equal(set.count, 3);
	assert_int_equal(wr_intervals_insert(&set, 929, 931), -1);
	assert_int_equal(wr_intervals_insert(&set, 800, 1100), -1);
	assert_int_equal(wr_intervals_insert(&set, 915, 920), -1);
	assert_int_equal(wr_intervals_insert(&set, 1000, 1000), -1); /* empty */
	assert_false(wr_intervals_overlaps(&set, 1000, 1030, NULL));
	assert_false(wr_intervals_overlaps(&set, 800, 830, NULL));
	assert_true(wr_intervals_overlaps(&set, 959, 1030, NULL));
	assert_true(wr_intervals_overlaps(&set, 0, 5000, NULL));
	assert_int_equal(set.items[0].start, 830);
	assert_int_equal(set.items[2].end, 1000);
	wr_intervals_clear(&set);
}

static void test_overlap_skips_only_the_named_member(void **state)
{
	(void)state;
	WrIntervals set;
	wr_intervals_init(&set);
	wr_intervals_insert(&set, 100, 200);
	wr_intervals_insert(&set, 200, 300);
	WrInterval own = {200, 300};
	/* moving [200,300) to [150,250) still hits [100,200) */
	assert_true(wr_intervals_overlaps(&set, 150, 250, &own));
	assert_false(wr_intervals_overlaps(&set, 210, 290, &own));
	assert_false(wr_intervals_overlaps(&set, 200, 400, &own));
	WrInterval other = {200, 299}; /* not a member: skips nothing */
	assert_true(wr_intervals_overlaps(&set, 210, 290, &other));
	wr_intervals_clear(&set);
}

static void test_remove_needs_the_exact_member(void **state)
{
	(void)state;
	WrIntervals set;
	wr_intervals_init(&set);
	wr_intervals_insert(&set, 100, 200);
	assert_false(wr_intervals_remove(&set, 100, 199));
	assert_false(wr_intervals_remove(&set, 101, 200));
	assert_true(wr_intervals_remove(&set, 100, 200));
	assert_int_equal(set.count, 0);
	assert_false(wr_intervals_remove(&set, 100, 200));
	wr_intervals_clear(&set);
}

static void test_containment_is_inside_one_block(void **state)
{
	(void)state;
	WrIntervals set;
	wr_intervals_init(&set);
	wr_intervals_insert(&set, 900, 1200);
	wr_intervals_insert(&set, 1200, 1300); /* adjacent blocks stay two blocks */
	wr_intervals_insert(&set, 1400, 1800);
	assert_true(wr_intervals_contains(&set, 900, 1200));
	assert_true(wr_intervals_contains(&set, 1000, 1100));
	assert_true(wr_intervals_contains(&set, 1400, 1800));
	assert_false(wr_intervals_contains(&set, 1100, 1230));
	assert_false(wr_intervals_contains(&set, 850, 950));
	assert_false(wr_intervals_contains(&set, 1300, 1400));
	assert_false(wr_intervals_contains(&set, 1700, 1900));
	wr_intervals_clear(&set);
	assert_false(wr_intervals_contains(&set, 1, 2));
}

static void test_subtract_trims_and_splits(void **state)
{
	(void)state;
	WrIntervals set;
	wr_intervals_init(&set);
	wr_intervals_insert(&set, 100, 200);
	wr_intervals_insert(&set, 300, 400);
	wr_intervals_insert(&set, 500, 600);
	assert_int_equal(wr_intervals_subtract(&set, 150, 350), 0); /* trims two */
	assert_int_equal(set.count, 3);
	assert_true(set.items[0].start == 100 && set.items[0].end == 150);
	assert_true(set.items[1].start == 350 && set.items[1].end == 400);
	assert_int_equal(wr_intervals_subtract(&set, 520, 540), 0); /* splits one */
	assert_int_equal(set.count, 4);
	assert_true(set.items[2].start == 500 && set.items[2].end == 520);
	assert_true(set.items[3].start == 540 && set.items[3].end == 600);
	assert_int_equal(wr_intervals_subtract(&set, 400, 500), 0); /* touches only */
	assert_int_equal(set.count, 4);
	assert_int_equal(wr_intervals_subtract(&set, 0, 1000), 0); /* removes all */
	assert_int_equal(set.count, 0);
	wr_intervals_clear(&set);
}

static void test_insert_all_is_all_or_nothing(void **state)
{
	(void)state;
	WrIntervals set;
	size_t conflict = 99;
	wr_intervals_init(&set);
	wr_intervals_insert(&set, 1000, 2000);
	WrInterval clash_set[] = {{0, 100}, {1500, 2500}};
	assert_int_equal(wr_intervals_insert_all(&set, clash_set, 2), -1);
	assert_int_equal(set.count, 1);
	WrInterval clash_each[] = {{300, 400}, {100, 200}, {150, 250}};
	assert_int_equal(wr_intervals_check_all(&set, clash_each, 3, &conflict), -1);
	assert_int_equal(conflict, 2);
	WrInterval good[] = {{300, 400}, {100, 200}, {2000, 2100}};
	assert_int_equal(wr_intervals_insert_all(&set, good, 3), 0);
	assert_int_equal(set.count, 4);
	assert_int_equal(set.items[0].start, 100);
	assert_int_equal(set.items[3].start, 2000);
	wr_intervals_clear(&set);
}

/* Brute force: a bitmap of occupied instants 0..SPAN and the list of members. */
#define SPAN 2000

static bool brute_overlaps(const WrInterval *m, size_t n, int64_t s, int64_t e,
			   const WrInterval *skip)
{
	for (size_t i = 0; i < n; i++) {
		if (skip && m[i].start == skip->start && m[i].end == skip->end)
			continue;
		if (m[i].start < e && s < m[i].end)
			return true;
	}
	return false;
}

static bool brute_contains(const WrInterval *m, size_t n, int64_t s, int64_t e)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].start <= s && e <= m[i].end)
			return true;
	return false;
}

static void assert_sorted_disjoint(const WrIntervals *set)
{
	for (size_t i = 0; i < set->count; i++) {
		assert_true(set->items[i].start < set->items[i].end);
		if (i > 0)
			assert_true(set->items[i - 1].end <= set->items[i].start);
	}
}

static void test_random_operations_match_brute_force(void **state)
{
	(void)state;
	WrIntervals set;
	unsigned seed = 12345;
	wr_intervals_init(&set);
	for (int round = 0; round < 20000; round++) {
		int64_t s = rand_r(&seed) % SPAN, len = 1 + rand_r(&seed) % 60;
		int64_t e = s + len;
		size_t n = set.count;
		WrInterval *copy = malloc((n + 1) * sizeof(*copy));
		assert_non_null(copy);
		if (n)
			memcpy(copy, set.items, n * sizeof(*copy));
		const WrInterval *skip = n && rand_r(&seed) % 2 ? &copy[rand_r(&seed) % n] : NULL;
		assert_int_equal(wr_intervals_overlaps(&set, s, e, skip),
				 brute_overlaps(copy, n, s, e, skip));
		assert_int_equal(wr_intervals_contains(&set, s, e), brute_contains(copy, n, s, e));
		switch (rand_r(&seed) % 4) {
		case 0:
		case 1: {
			bool free_slot = !brute_overlaps(copy, n, s, e, NULL);
			assert_int_equal(wr_intervals_insert(&set, s, e), free_slot ? 0 : -1);
			assert_int_equal(set.count, n + (free_slot ? 1 : 0));
			break;
		}
		case 2:
			if (n) {
				WrInterval victim = copy[rand_r(&seed) % n];
				assert_true(wr_intervals_remove(&set, victim.start, victim.end));
				assert_int_equal(set.count, n - 1);
			}
			break;
		default:
			if (rand_r(&seed) % 8 == 0) {
				assert_int_equal(wr_intervals_subtract(&set, s, e), 0);
				/* every instant of [s, e) is free now, the others unchanged */
				for (int64_t t = 0; t < SPAN + 100; t++) {
					bool before = brute_contains(copy, n, t, t + 1);
					bool after = wr_intervals_contains(&set, t, t + 1) ||
						     wr_intervals_overlaps(&set, t, t + 1, NULL);
					assert_int_equal(after, before && !(s <= t && t < e));
				}
			}
		}
		assert_sorted_disjoint(&set);
		free(copy);
	}
	wr_intervals_clear(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adjacent_intervals_do_not_overlap),
		cmocka_unit_test(test_overlap_skips_only_the_named_member),
		cmocka_unit_test(test_remove_needs_the_exact_member),
		cmocka_unit_test(test_containment_is_inside_one_block),
		cmocka_unit_test(test_subtract_trims_and_splits),
		cmocka_unit_test(test_insert_all_is_all_or_nothing),
		cmocka_unit_test(test_random_operations_match_brute_force),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
