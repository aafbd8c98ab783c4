/* A set of pairwise disjoint half-open intervals [start, end) of instants
 * (microseconds), kept sorted by start in one array. Because the intervals never
 * overlap, their ends are sorted too, so every question is one binary search:
 * does [s, e) overlap something (the last interval starting before e must end by
 * s), or lie inside one interval (the last one starting at or before s must end
 * at or after e). Used for a vet's published blocks and for the active
 * appointments of a vet and of a patient. Insertion and removal move the tail
 * of the array (memmove), which stays cheap for the few thousand intervals one
 * vet or patient holds. */
#ifndef WR_INTERVALS_H
#define WR_INTERVALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct WrInterval {
	int64_t start;
	int64_t end; /* > start */
} WrInterval;

typedef struct WrIntervals {
	WrInterval *items; /* sorted by start, pairwise disjoint */
	size_t count;
	size_t cap;
} WrIntervals;

void wr_intervals_init(WrIntervals *set);
void wr_intervals_clear(WrIntervals *set);

/* True when [start, end) shares an instant with a member other than `skip`
 * (a member equal to *skip is ignored; NULL ignores nothing). Touching
 * intervals ([9:00, 9:30) and [9:30, 10:00)) do not overlap. O(log n). */
bool wr_intervals_overlaps(const WrIntervals *set, int64_t start, int64_t end,
			   const WrInterval *skip);

/* True when [start, end) lies inside one member. O(log n). */
bool wr_intervals_contains(const WrIntervals *set, int64_t start, int64_t end);

/* Adds [start, end). 0; -1 when it would overlap a member or end <= start
 * (the set is unchanged); -2 out of memory. */
int wr_intervals_insert(WrIntervals *set, int64_t start, int64_t end);

/* Removes the member exactly equal to [start, end); false when there is none. */
bool wr_intervals_remove(WrIntervals *set, int64_t start, int64_t end);

/* Subtracts [start, end) from the set: members inside it go, members partly
 * inside are trimmed, a member strictly containing it is split in two.
 * 0, or -2 out of memory (the set is unchanged). */
int wr_intervals_subtract(WrIntervals *set, int64_t start, int64_t end);

/* Adds n intervals at once, all or none: -1 when one has end <= start, two of
 * them overlap, or one overlaps a member; -2 out of memory. */
int wr_intervals_insert_all(WrIntervals *set, const WrInterval *items, size_t n);

/* Whether the n intervals could be added: disjoint from each other and from the
 * set. -1 with *conflict = the index of an offending item (one that is empty,
 * overlaps the set, or overlaps an item starting at or before it).
 * Does not change anything; O(n log n + n log m). -2 out of memory. */
int wr_intervals_check_all(const WrIntervals *set, const WrInterval *items, size_t n,
			   size_t *conflict);

#endif
