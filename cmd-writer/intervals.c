/* Sorted disjoint interval sets (see intervals.h). */
#include "intervals.h"

#include <stdlib.h>
#include <string.h>

void wr_intervals_init(WrIntervals *set)
{
	set->items = NULL;
	set->count = 0;
	set->cap = 0;
}

void wr_intervals_clear(WrIntervals *set)
{
	free(set->items);
	wr_intervals_init(set);
}

/* Number of members whose start is < bound (or <= bound when inclusive): the
 * index of the first member starting at or after (after) bound. */
static size_t count_starting_before(const WrIntervals *set, int64_t bound, bool inclusive)
{
	size_t lo = 0, hi = set->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t s = set->items[mid].start;
		if (s < bound || (inclusive && s == bound))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first member whose end is > bound (ends are sorted as well). */
static size_t first_ending_after(const WrIntervals *set, int64_t bound)
{
	size_t lo = 0, hi = set->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->items[mid].end <= bound)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool same(const WrInterval *a, const WrInterval *b)
{
	return b && a->start == b->start && a->end == b->end;
}

bool wr_intervals_overlaps(const WrIntervals *set, int64_t start, int64_t end,
			   const WrInterval *skip)
{
	size_t i = count_starting_before(set, end, false);
	/* Members before i start before `end`; the latest of them ends last, so it
	 * alone decides - or the one before it when it is the skipped member. */
	while (i > 0) {
		const WrInterval *m = &set->items[i - 1];
		if (!same(m, skip))
			return m->end > start;
		i--;
	}
	return false;
}

bool wr_intervals_contains(const WrIntervals *set, int64_t start, int64_t end)
{
	size_t i = count_starting_before(set, start, true);
	return i > 0 && set->items[i - 1].end >= end;
}

static int reserve(WrIntervals *set, size_t extra)
{
	if (set->count + extra <= set->cap)
		return 0;
	size_t cap = set->cap ? set->cap : 4;
	while (cap < set->count + extra)
		cap *= 2;
	WrInterval *grown = realloc(set->items, cap * sizeof(*grown));
	if (!grown)
		return -2;
	set->items = grown;
	set->cap = cap;
	return 0;
}

int wr_intervals_insert(WrIntervals *set, int64_t start, int64_t end)
{
	if (end <= start || wr_intervals_overlaps(set, start, end, NULL))
		return -1;
	if (reserve(set, 1) < 0)
		return -2;
	size_t i = count_starting_before(set, start, false);
	memmove(&set->items[i + 1], &set->items[i], (set->count - i) * sizeof(set->items[0]));
	set->items[i] = (WrInterval){start, end};
	set->count++;
	return 0;
}

bool wr_intervals_remove(WrIntervals *set, int64_t start, int64_t end)
{
	size_t i = count_starting_before(set, start, false);
	if (i == set->count || set->items[i].start != start || set->items[i].end != end)
		return false;
	memmove(&set->items[i], &set->items[i + 1], (set->count - i - 1) * sizeof(set->items[0]));
	set->count--;
	return true;
}

int wr_intervals_subtract(WrIntervals *set, int64_t start, int64_t end)
{
	if (end <= start)
		return 0;
	size_t first = first_ending_after(set, start);
	size_t past = count_starting_before(set, end, false);
	if (first >= past)
		return 0; /* nothing shares an instant with [start, end) */
	WrInterval kept[2];
	size_t n_kept = 0;
	if (set->items[first].start < start)
		kept[n_kept++] = (WrInterval){set->items[first].start, start};
	if (set->items[past - 1].end > end)
		kept[n_kept++] = (WrInterval){end, set->items[past - 1].end};
	size_t removed = past - first;
	if (n_kept > removed && reserve(set, n_kept - removed) < 0)
		return -2;
	memmove(&set->items[first + n_kept], &set->items[past],
		(set->count - past) * sizeof(set->items[0]));
	memcpy(&set->items[first], kept, n_kept * sizeof(kept[0]));
	set->count = set->count - removed + n_kept;
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const WrInterval *x = *(const WrInterval *const *)a, *y = *(const WrInterval *const *)b;
	return x->start < y->start ? -1 : x->start > y->start;
}

int wr_intervals_check_all(const WrIntervals *set, const WrInterval *items, size_t n,
			   size_t *conflict)
{
	const WrInterval **sorted = malloc((n ? n : 1) * sizeof(*sorted));
	int rc = 0;
	if (!sorted)
		return -2;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &items[i];
	qsort(sorted, n, sizeof(*sorted), by_start);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const WrInterval *it = sorted[i];
		if (it->end <= it->start || wr_intervals_overlaps(set, it->start, it->end, NULL) ||
		    (i > 0 && sorted[i - 1]->end > it->start)) {
			*conflict = (size_t)(it - items);
			rc = -1;
		}
	}
	free(sorted);
	return rc;
}

int wr_intervals_insert_all(WrIntervals *set, const WrInterval *items, size_t n)
{
	size_t conflict;
	int rc = wr_intervals_check_all(set, items, n, &conflict);
	if (rc < 0)
		return rc;
	if (reserve(set, n) < 0)
		return -2;
	for (size_t i = 0; i < n; i++)
		wr_intervals_insert(set, items[i].start, items[i].end); /* cannot fail now */
	return 0;
}
