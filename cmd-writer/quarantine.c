/* The positions ops have quarantined (--quarantine "P:O,P:O"): records they
 * inspected and accept the rebuild skipping because nobody can read them. The
 * list is parsed strictly at start, since a typo that quarantined nothing (or
 * the wrong record) would only show as a writer that stays down, or worse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"

/* Kafka partitions are int32; offsets int64. */
#define QUARANTINE_MAX_PARTITION 2147483647LL

/* Reads an unsigned decimal of at most max from *s, leaving *s after it. */
static int parse_number(const char **s, long long max, long long *out)
{
	const char *p = *s;
	long long value = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		int digit = *p - '0';
		if (value > (max - digit) / 10)
			return -1;
		value = value * 10 + digit;
	}
	*s = p;
	*out = value;
	return 0;
}

static int compare_positions(const void *a, const void *b)
{
	const WrPosition *x = a, *y = b;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* One "P:O" item of length len at item; 0 or -1 with why naming it. */
static int parse_item(const char *item, size_t len, WrPosition *out, char *why, size_t why_cap)
{
	const char *p = item;
	long long partition = 0, offset = 0;
	if (parse_number(&p, QUARANTINE_MAX_PARTITION, &partition) < 0 || *p++ != ':' ||
	    parse_number(&p, INT64_MAX, &offset) < 0 || (size_t)(p - item) != len) {
		snprintf(why, why_cap, "quarantine: \"%.*s\" is not PARTITION:OFFSET", (int)len,
			 item);
		return -1;
	}
	out->partition = (int)partition;
	out->offset = offset;
	return 0;
}

int wr_quarantine_parse(const char *text, WrQuarantine *q, char *why, size_t why_cap)
{
	size_t cap = 1;
	q->positions = NULL;
	q->len = 0;
	if (!text || !*text)
		return 0;
	for (const char *c = text; *c; c++)
		cap += *c == ',';
	q->positions = calloc(cap, sizeof(*q->positions));
	if (!q->positions) {
		snprintf(why, why_cap, "quarantine: out of memory");
		return -1;
	}
	for (const char *item = text;; item++) {
		const char *comma = strchr(item, ',');
		size_t len = comma ? (size_t)(comma - item) : strlen(item);
		if (parse_item(item, len, &q->positions[q->len], why, why_cap) < 0)
			goto bad;
		q->len++;
		if (!comma)
			break;
		item = comma;
	}
	qsort(q->positions, q->len, sizeof(*q->positions), compare_positions);
	for (size_t i = 1; i < q->len; i++)
		if (!compare_positions(&q->positions[i - 1], &q->positions[i])) {
			/* twice is a sign of a copy-paste slip in the list */
			snprintf(why, why_cap, "quarantine: %d:%lld is listed twice",
				 q->positions[i].partition, (long long)q->positions[i].offset);
			goto bad;
		}
	return 0;
bad:
	wr_quarantine_clear(q);
	return -1;
}

bool wr_quarantined(const WrQuarantine *q, int partition, int64_t offset)
{
	const WrPosition key = {.partition = partition, .offset = offset};
	return q->len && bsearch(&key, q->positions, q->len, sizeof(key), compare_positions);
}

void wr_quarantine_clear(WrQuarantine *q)
{
	free(q->positions);
	q->positions = NULL;
	q->len = 0;
}
