/* Idempotency keys bounded in time (see idem.h). */
#include "idem.h"

#include <stdlib.h>
#include <string.h>

#include "vp_catalog.h"

_Static_assert(WR_MAX_COMMAND_EVENTS <= INT8_MAX, "n_events and the indices stay small");

uint8_t wr_event_type_index(const char *type)
{
	for (size_t i = 0; type && i < vp_catalog_len && i < WR_EVENT_TYPE_UNKNOWN; i++)
		if (!strcmp(vp_catalog[i].type, type))
			return (uint8_t)i;
	return WR_EVENT_TYPE_UNKNOWN;
}

const char *wr_event_type_name(uint8_t index)
{
	return index < vp_catalog_len ? vp_catalog[index].type : "?";
}

static void unlink_entry(WrIdemStore *st, WrIdem *k)
{
	if (k->older)
		k->older->newer = k->newer;
	else
		st->oldest = k->newer;
	if (k->newer)
		k->newer->older = k->older;
	else
		st->newest = k->older;
	k->newer = k->older = NULL;
}

void wr_idem_clear(WrIdemStore *st)
{
	wr_map_clear(&st->by_key, free);
	st->oldest = st->newest = NULL;
}

WrIdem *wr_idem_get(const WrIdemStore *st, const char *key)
{
	return wr_map_get(&st->by_key, key);
}

WrIdem *wr_idem_put(WrIdemStore *st, const char *key, int64_t expires_us)
{
	size_t len = strlen(key);
	bool oom = false;
	WrIdem *k = calloc(1, sizeof(*k) + len + 1);
	if (!k)
		return NULL;
	memcpy(k->key, key, len + 1);
	WrIdem *previous = wr_map_put(&st->by_key, key, k, &oom);
	if (oom) {
		free(k);
		return NULL;
	}
	if (previous) {
		unlink_entry(st, previous);
		free(previous);
	}
	if (st->newest && expires_us < st->newest->expires_us)
		expires_us = st->newest->expires_us;
	k->expires_us = expires_us;
	k->older = st->newest;
	if (st->newest)
		st->newest->newer = k;
	else
		st->oldest = k;
	st->newest = k;
	return k;
}

size_t wr_idem_expire(WrIdemStore *st, int64_t now_us)
{
	size_t forgotten = 0;
	while (st->oldest && st->oldest->expires_us <= now_us && !st->oldest->pending) {
		WrIdem *k = st->oldest;
		unlink_entry(st, k);
		wr_map_remove(&st->by_key, k->key);
		free(k);
		forgotten++;
	}
	return forgotten;
}

size_t wr_idem_count(const WrIdemStore *st)
{
	return st->by_key.count;
}
