/* String-keyed hash map (see strmap.h). */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

static char tombstone;
#define WR_MAP_TOMBSTONE (&tombstone)

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static bool hash_key_ready;

static uint64_t hash_of(const char *key)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;
	if (!hash_key_ready) {
		randombytes_buf(hash_key, sizeof(hash_key));
		hash_key_ready = true;
	}
	crypto_shorthash(out, (const unsigned char *)key, strlen(key), hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

void wr_map_init(WrMap *m)
{
	memset(m, 0, sizeof(*m));
}

/* Slot holding key (whose hash is h), or NULL. Ids share long prefixes
 * (UUIDv7s of one second), so a strcmp of another key is not cheap: the
 * stored hash settles almost every probe of a key that is not there. */
static WrMapSlot *find(const WrMap *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		WrMapSlot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != WR_MAP_TOMBSTONE && s->hash == h && !strcmp(s->key, key))
			return s;
	}
}

/* Rehashes into a table sized by the live keys alone (at most half full), so
 * tombstones are dropped: a map whose keys come and go (idempotency keys
 * inside a time window) keeps the size its live keys need instead of doubling
 * each time the tombstones fill it. */
static int grow(WrMap *m)
{
	size_t cap = 16;
	while ((m->count + 1) * 2 >= cap)
		cap *= 2;
	WrMapSlot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		WrMapSlot *old = &m->slots[i];
		if (!old->key || old->key == WR_MAP_TOMBSTONE)
			continue;
		size_t j = old->hash & (cap - 1);
		while (slots[j].key)
			j = (j + 1) & (cap - 1);
		slots[j] = *old;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	m->used = m->count;
	return 0;
}

void *wr_map_get(const WrMap *m, const char *key)
{
	WrMapSlot *s = find(m, key, hash_of(key));
	return s ? s->value : NULL;
}

void *wr_map_put(WrMap *m, const char *key, void *value, bool *oom)
{
	*oom = false;
	uint64_t h = hash_of(key);
	WrMapSlot *s = find(m, key, h);
	if (s) {
		void *previous = s->value;
		s->value = value;
		return previous;
	}
	/* Keep the load (tombstones included) under 3/4. */
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) < 0) {
		*oom = true;
		return NULL;
	}
	char *copy = strdup(key);
	if (!copy) {
		*oom = true;
		return NULL;
	}
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].key && m->slots[i].key != WR_MAP_TOMBSTONE)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i].key = copy;
	m->slots[i].value = value;
	m->slots[i].hash = h;
	m->count++;
	return NULL;
}

void *wr_map_remove(WrMap *m, const char *key)
{
	WrMapSlot *s = find(m, key, hash_of(key));
	if (!s)
		return NULL;
	void *value = s->value;
	free(s->key);
	s->key = WR_MAP_TOMBSTONE;
	s->value = NULL;
	m->count--;
	return value;
}

void wr_map_each(const WrMap *m, void (*fn)(void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++) {
		const WrMapSlot *s = &m->slots[i];
		if (s->key && s->key != WR_MAP_TOMBSTONE)
			fn(s->value, arg);
	}
}

void wr_map_clear(WrMap *m, void (*fn)(void *value))
{
	for (size_t i = 0; i < m->cap; i++) {
		WrMapSlot *s = &m->slots[i];
		if (s->key && s->key != WR_MAP_TOMBSTONE) {
			if (fn)
				fn(s->value);
			free(s->key);
		}
	}
	free(m->slots);
	wr_map_init(m);
}
