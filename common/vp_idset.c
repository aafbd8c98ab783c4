/* A counted set of short strings (vp_idset.h): chained buckets, doubled when
 * the set holds more strings than buckets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "vp_idset.h"
#include "vp_table_hash.h"

#define FIRST_BUCKETS 16

typedef struct Item {
	struct Item *next;
	uint64_t hash;
	unsigned count;
	char id[];
} Item;

struct VpIdSet {
	Item **buckets;
	size_t n_buckets, n_items;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

VpIdSet *vp_idset_new(void)
{
	VpIdSet *s = calloc(1, sizeof(*s));
	if (s)
		s->buckets = calloc(s->n_buckets = FIRST_BUCKETS, sizeof(*s->buckets));
	if (!s || !s->buckets) {
		free(s);
		return NULL;
	}
	randombytes_buf(s->key, sizeof(s->key));
	return s;
}

VpIdSet *vp_idset_free(VpIdSet *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (Item *it = s->buckets[i], *next; it; it = next) {
			next = it->next;
			free(it);
		}
	free(s->buckets);
	free(s);
	return NULL;
}

static uint64_t hash_of(const VpIdSet *s, const char *id)
{
	return vp_table_hash(s->key, id);
}

/* The link that points at id's item (or the bucket's last, NULL, link). */
static Item **link_of(const VpIdSet *s, const char *id, uint64_t hash)
{
	Item **p = &s->buckets[hash & (s->n_buckets - 1)];
	while (*p && ((*p)->hash != hash || strcmp((*p)->id, id) != 0))
		p = &(*p)->next;
	return p;
}

/* Doubles the buckets when the set holds more strings than buckets; a set
 * that cannot grow keeps longer chains, still correct. */
static void grow(VpIdSet *s)
{
	if (s->n_items <= s->n_buckets)
		return;
	size_t n = s->n_buckets * 2;
	Item **fresh = calloc(n, sizeof(*fresh));
	if (!fresh)
		return;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (Item *it = s->buckets[i], *next; it; it = next) {
			next = it->next;
			it->next = fresh[it->hash & (n - 1)];
			fresh[it->hash & (n - 1)] = it;
		}
	free(s->buckets);
	s->buckets = fresh;
	s->n_buckets = n;
}

int vp_idset_add(VpIdSet *s, const char *id)
{
	uint64_t hash = hash_of(s, id);
	Item **p = link_of(s, id, hash);
	if (*p) {
		(*p)->count++;
		return 0;
	}
	size_t len = strlen(id);
	Item *it = calloc(1, sizeof(*it) + len + 1);
	if (!it)
		return -1;
	memcpy(it->id, id, len + 1);
	it->hash = hash;
	it->count = 1;
	*p = it;
	s->n_items++;
	grow(s);
	return 0;
}

void vp_idset_remove(VpIdSet *s, const char *id)
{
	Item **p = link_of(s, id, hash_of(s, id));
	Item *it = *p;
	if (!it || --it->count > 0)
		return;
	*p = it->next;
	s->n_items--;
	free(it);
}

bool vp_idset_has(const VpIdSet *s, const char *id)
{
	return *link_of(s, id, hash_of(s, id)) != NULL;
}
