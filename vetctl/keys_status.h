/* keys_status.c: how many tenant key records of the keys topic each master
 * key wraps (vetctl keys status, docs/privacy.md, "Key operations"). */
#ifndef VC_KEYS_STATUS_H
#define VC_KEYS_STATUS_H

#include <stddef.h>

#include "tenant_keys.h"

/* One master key id (a record's kek_id) and its tenant key records. */
typedef struct VcKekCount {
	char *id;
	size_t records; /* every record under it still in the topic, superseded ones too */
	size_t newest;  /* those that are their tenant's record that counts */
} VcKekCount;

typedef struct VcKeysStatus {
	VcKekCount *kek; /* in the order first seen */
	size_t n, cap;
	size_t unnamed;     /* tenant records naming no master key (no kek_id) */
	VcKeyLines newest;  /* each tenant's record that counts (vc_keys_remember) */
	char *master;       /* the master record that counts (its value; NULL: none) */
} VcKeysStatus;

/* One record of the keys topic (value NULL: a tombstone), in topic order
 * (the master record kept apart); client records and erasure markers are not
 * counted (they are wrapped
 * under a tenant key, not a master key). 0, or -1 (out of memory). */
int vc_status_take(VcKeysStatus *s, const char *name, size_t name_len, const char *value,
		   size_t value_len);

/* The status once every record was taken (each tenant's newest record
 * counted into s->kek, the ids held added), as one JSON object (malloc'd;
 * NULL out of memory):
 *   {"topic":T,"tenants":N,"records":R,"unnamed":U,
 *    "held":{"current":ID|null,"previous":ID|null},
 *    "master_keys":{ID:{"records":R,"newest":N,"held":"current"|"previous"|null},...},
 *    "master":ID|null}
 * master_keys by id in ascending order, the ids held among them (0 and 0
 * when nothing is under one). master: the id the keys topic's master record
 * names (the key every daemon must hold, docs/privacy.md "Start-up
 * refusal"), null when there is none. current_id / previous_id: NULL when not held. */
char *vc_status_json(VcKeysStatus *s, const char *topic, const char *current_id,
		     const char *previous_id);

void vc_status_release(VcKeysStatus *s);

#endif
