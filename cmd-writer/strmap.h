/* A string-keyed hash map (open addressing, linear probing) for the write
 * model: ids, microchips, idempotency keys. Keys are copied; values are the
 * caller's. Hashing is libsodium's keyed SipHash with a per-process random key,
 * so keys chosen by clients cannot be crafted to collide. */
#ifndef WR_STRMAP_H
#define WR_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct WrMapSlot {
	char *key; /* NULL: empty; WR_MAP_TOMBSTONE: deleted */
	void *value;
	uint64_t hash; /* the key's: probes skip other keys without a strcmp, and
			* growing does not hash again */
} WrMapSlot;

typedef struct WrMap {
	WrMapSlot *slots;
	size_t cap;   /* power of two */
	size_t count; /* live keys */
	size_t used;  /* live + tombstones */
} WrMap;

void wr_map_init(WrMap *m);
void *wr_map_get(const WrMap *m, const char *key);
/* Inserts or replaces; returns the previous value (or NULL). -1 via *oom. */
void *wr_map_put(WrMap *m, const char *key, void *value, bool *oom);
void *wr_map_remove(WrMap *m, const char *key);
/* Calls fn(value, arg) on each value; fn must not add or remove keys. */
void wr_map_each(const WrMap *m, void (*fn)(void *value, void *arg), void *arg);
/* Calls fn on each value (for freeing), then empties the map. */
void wr_map_clear(WrMap *m, void (*fn)(void *value));

#endif
