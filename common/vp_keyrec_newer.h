/* Which record of a key-record name counts when the keys topic holds more
 * than one (docs/privacy.md, "Which record of a name counts").
 *
 * Before vp_keyrec_partition, key records were placed by their name; now on
 * their tenant's partition. A keys topic written across that change holds,
 * for one name, an older record on the name's partition and a newer one on
 * the tenant's (a tenant record `vetctl keys rotate-master` rewrapped, a
 * client's erasure marker), and partitions are read in no set order, so "the
 * last record read wins" may keep the older one. One rule, for every reader
 * of the topic (the daemons' keyring, vetctl's keys readers):
 *  - a tombstone (null value) supersedes whatever is held: nothing in VetPMS
 *    writes one (erasure writes a marker), so it is an operator's deletion,
 *    and the keyring has always dropped the name on it; a record read after
 *    it counts as if nothing were held (the keyring keeps no trace of a
 *    dropped name, so an older record on another partition read after a
 *    tombstone comes back: not handled, nothing writes tombstones);
 *  - an erasure marker is final: only a tombstone supersedes it, and it
 *    supersedes a client's key, whatever the read order (a key read after
 *    the marker must neither open fields nor be exported);
 *  - of two tenant records (or two master records), the one with the newer
 *    created_at (a record
 *    without a parsable one is older than any; equal: the later read, as
 *    within one partition);
 *  - otherwise (a client's key records) the later read. */
#ifndef VP_KEYREC_NEWER_H
#define VP_KEYREC_NEWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef enum VpKeyrecState {
	VP_KEYREC_NOTHING = 0, /* no record held, or a tombstone */
	VP_KEYREC_KEY,	       /* a tenant's or a client's key */
	VP_KEYREC_MARKER,      /* a client's erasure marker */
} VpKeyrecState;

/* What of a record the rule looks at. */
typedef struct VpKeyrecRank {
	VpKeyrecState state;
	bool dated;	    /* a tenant or master record: ordered by created_us */
	int64_t created_us; /* its created_at, INT64_MIN when it has none that parses */
} VpKeyrecRank;

/* The rank of a record's parsed value (NULL: a tombstone). */
VpKeyrecRank vp_keyrec_rank_json(const cJSON *v);
/* The rank of a record's value text (NULL: a tombstone); a value that is not
 * JSON is an undated key. */
VpKeyrecRank vp_keyrec_rank(const char *value, size_t len);

/* Whether next, read after held (same name), supersedes it. */
bool vp_keyrec_supersedes(const VpKeyrecRank *held, const VpKeyrecRank *next);

#endif
