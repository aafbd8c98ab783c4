/* A counted set of short strings: the ids of a keyring's erased clients
 * whatever their tenant (vp_keyring_erased with no tenant, for a dead letter
 * whose record names none). A lookup is one hash, where a scan of every
 * keyring entry per id named cost as much as the keyring is large, under
 * the lock every applier's key lookup takes. Each string is held as many
 * times as it was added (two tenants' records may name one client id), and
 * goes when removed as often. Not thread-safe: the keyring's lock covers it.
 * Buckets are chosen by a keyed hash (libsodium's crypto_shorthash under a
 * random key): the strings come from a topic anyone with produce rights
 * writes to. */
#ifndef VP_IDSET_H
#define VP_IDSET_H

#include <stdbool.h>

typedef struct VpIdSet VpIdSet;

/* NULL when out of memory. Call sodium_init first. */
VpIdSet *vp_idset_new(void);
VpIdSet *vp_idset_free(VpIdSet *s);
/* 0, or -1 when out of memory (the set is as it was). */
int vp_idset_add(VpIdSet *s, const char *id);
/* One count of id off (nothing when it is not held). */
void vp_idset_remove(VpIdSet *s, const char *id);
bool vp_idset_has(const VpIdSet *s, const char *id);

#endif
