/* The keys of the keys topic (vetpms.keys, docs/privacy.md) in memory: each
 * tenant's key unwrapped under the master key (with its blind-index key), and
 * each client's data key still wrapped under its tenant key (unwrapped only
 * for the moment it is used, so at most a few data keys are ever in the
 * clear). Thread-safe: the projector's appliers share one keyring.
 *
 * A tenant key wrapped under another master key is refused
 * (VP_KEYRING_WRONG_MASTER, why naming the key ids): a daemon given the
 * wrong master key stops at start instead of projecting garbage. During a
 * rotation a keyring may also accept the previous master key: records under
 * either open, new ones are wrapped under the current (master) key only. */
#ifndef VP_KEYRING_H
#define VP_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vp_crypto.h"

#define VP_TOPIC_KEYS_DEFAULT "vetpms.keys"

enum {
	VP_KEYRING_OK = 0,
	VP_KEYRING_FAILED = -1,       /* Kafka, memory, a record that is not a key record */
	VP_KEYRING_WRONG_MASTER = -2, /* a tenant key does not open under our master key */
	VP_KEYRING_NONE = -3,         /* no key for this client (yet) */
	VP_KEYRING_ERASED = -4,       /* the client's key was destroyed (EraseClient) */
};

typedef struct VpKeyring VpKeyring;

/* master is borrowed and must outlive the keyring. */
VpKeyring *vp_keyring_new(const VpKey *master, char *why, size_t why_cap);
/* Tenant records wrapped under previous (borrowed, outliving the keyring;
 * NULL: none) are taken too, before any record is: the zero-downtime
 * rotation (docs/privacy.md, "Key operations"). New tenant keys are still
 * wrapped under master only. */
void vp_keyring_accept_previous(VpKeyring *kr, const VpKey *previous);
VpKeyring *vp_keyring_free(VpKeyring *kr);

/* One record of the keys topic (value NULL: a tombstone). A record the one
 * held supersedes (vp_keyrec_newer.h: a tenant record older by created_at, a
 * client's key after its erasure marker) is passed over; a tenant record
 * under another master key is held against the tenant, not refused at once. */
int vp_keyring_take(VpKeyring *kr, const char *name, size_t name_len, const char *value,
		    size_t value_len, char *why, size_t why_cap);
/* After records were taken: VP_KEYRING_WRONG_MASTER (why naming both key
 * ids) when a tenant's newest record, or the newest master record
 * (VP_KEYREC_MASTER_NAME), names another master key, else OK. */
int vp_keyring_wrong_master(VpKeyring *kr, char *why, size_t why_cap);
/* Whether some tenant's key records are all under a master key not held
 * (why names the ids): what stops a running daemon (its clients cannot be
 * opened). Unlike vp_keyring_wrong_master, a tenant whose key was
 * unwrapped from an earlier record before a newer one under another key
 * arrived (a rotation seen while running) does not count: its key still
 * serves until the next start. */
bool vp_keyring_keyless_tenant(VpKeyring *kr, char *why, size_t why_cap);
/* Whether a master record was taken (the writer records one when the topic
 * has none). */
bool vp_keyring_has_master(VpKeyring *kr);
/* Whether the first master record this keyring took (following the topic)
 * names a key it does not hold, and still counts (why), while the keyring
 * held no tenant key: the daemon started before the deployment's first
 * writer recorded its key, holding another one, and must stop. A later
 * record under another key, or a first one arriving when tenant keys were
 * unwrapped (a rotation: the writer holds the new key and the previous one),
 * is not this: the tenant keys the daemon unwrapped still serve it. */
bool vp_keyring_master_refused(VpKeyring *kr, char *why, size_t why_cap);

/* Reads every partition of topic from the beginning to its end
 * (read_committed) into kr, within timeout_ms. */
int vp_keyring_read(VpKeyring *kr, const char *brokers, const char *kafka_props,
		    const char *topic, int timeout_ms, char *why, size_t why_cap);

/* Reads topic to its end as vp_keyring_read does (a one-shot reader), then
 * follows it from there (projector, query-reader): a consumer of its own,
 * with librdkafka's long fetch wait, reads new records on a thread of its
 * own, so a key committed with an event is found by
 * vp_keyring_client_key(wait_ms > 0). */
int vp_keyring_follow(VpKeyring *kr, const char *brokers, const char *kafka_props,
		      const char *topic, char *why, size_t why_cap);

/* The client's data key into out (a locked key the caller reuses and wipes,
 * vp_crypto.h) and, unless NULL, the id its record gives into key_id ("" for
 * a record without one): VP_KEYRING_OK, or NONE (after waiting up to wait_ms
 * for it to arrive), ERASED, WRONG_MASTER (the tenant's only key record is
 * under another master key: no wait, why naming both key ids) or FAILED
 * (why). */
int vp_keyring_client_key(VpKeyring *kr, const char *tenant_id, const char *client_id,
			  int wait_ms, VpKey *out, char key_id[VP_KEY_ID_CHARS + 1], char *why,
			  size_t why_cap);
/* Whether the client's latest key record is an erasure marker (no wait);
 * tenant_id NULL: under any tenant (for a record that names no tenant,
 * projector/deadletter.c). */
bool vp_keyring_erased(VpKeyring *kr, const char *tenant_id, const char *client_id);
/* The tenant's blind-index key into out (NULL: only whether the tenant has
 * a key); 0, or -1 (no tenant key). */
int vp_keyring_index_key(VpKeyring *kr, const char *tenant_id, VpKey *out, char *why,
			 size_t why_cap);

/* A key record to produce (name = record key, value = its JSON). */
typedef struct VpKeyRecord {
	char name[128];
	char *value;  /* malloc'd */
	bool erasure; /* an erasure marker: the keyring made nothing to forget */
} VpKeyRecord;

/* The erasure marker of a client's key record: {"kind": "erased",
 * "erased_at"}; the keyring keeps the fact and drops the key. malloc'd. */
char *vp_keyrec_erased_value(int64_t now_us);

/* What a new client needs: its data key (into out, its id into key_id;
 * 0 or -1), and
 * the key records to produce in the same transaction as its first event:
 * the tenant's key first when the tenant has none yet, then the client's.
 * The keyring holds them at once (the caller's model must forget them if the
 * transaction fails: the writer rebuilds its model, keyring included). */
int vp_keyring_new_client(VpKeyring *kr, const char *tenant_id, const char *client_id,
			  int64_t now_us, VpKey *key, char key_id[VP_KEY_ID_CHARS + 1],
			  VpKeyRecord out[2], int *n_out, char *why, size_t why_cap);
void vp_key_records_release(VpKeyRecord *records, int n);
/* Drops what records made (their event will not be appended after all). */
void vp_keyring_forget(VpKeyring *kr, const VpKeyRecord *records, int n);

/* The master key files a daemon is given ("" or NULL: none): the current
 * one (else the environment's VETPMS_MASTER_KEY) and, during a rotation,
 * the previous one (else VETPMS_MASTER_KEY_PREVIOUS). */
typedef struct VpMasterFiles {
	const char *current;
	const char *previous;
} VpMasterFiles;
/* The keys loaded (locked memory; the caller frees both with vp_key_free
 * after the keyring). previous is NULL when none was given. */
typedef struct VpMasterKeys {
	VpKey *current;
	VpKey *previous;
} VpMasterKeys;

/* The master key (files->current, else the environment's
 * VETPMS_MASTER_KEY; neither is an error saying how to give one) and the
 * optional previous one (vp_key_master_previous_load: files->previous, else
 * VETPMS_MASTER_KEY_PREVIOUS): one loader for every holder of the keys (the
 * daemons, vetctl tenant export). 0, or -1 with why and nothing held. */
int vp_master_keys_load(const VpMasterFiles *files, VpMasterKeys *out, char *why,
			size_t why_cap);
/* Both keys freed (wiped), out emptied. */
void vp_master_keys_free(VpMasterKeys *keys);

/* The master key a tenant key record names by its kek_id: current, or
 * previous (NULL: none held) when it is that one. NULL with why naming the
 * record (name), its kek_id and the ids holder ("this daemon", "vetctl")
 * holds, when it is neither. The one decision of every holder of the keys:
 * the keyring's and vetctl tenant export's (not "whichever opens"). */
const VpKey *vp_master_key_of(const VpKey *current, const VpKey *previous, const char *name,
			      const char *kek_id, const char *holder, char *why, size_t why_cap);

/* A daemon's start: libsodium, the master key (files->current, else the
 * environment's VETPMS_MASTER_KEY; neither is an error saying how to give
 * one) and the optional previous one (vp_key_master_previous_load), then the
 * keys topic read to its end (follow: and followed after), the read retried
 * every second while Kafka fails and *stop is 0, up to timeout_ms. NULL with
 * *status and why (VP_KEYRING_WRONG_MASTER: a key of the topic was wrapped
 * under a master key the daemon does not hold; do not start). */
VpKeyring *vp_keyring_open(const char *brokers, const char *kafka_props, const char *topic,
			   const VpMasterFiles *files, bool follow, int timeout_ms,
			   const volatile int *stop, VpMasterKeys *keys_out, int *status, char *why,
			   size_t why_cap);

/* A tenant key record's value (wrapped under `from`) rewrapped under `to`:
 * the same key (its key_id stays), kek_id becomes to's. Tenant export and
 * import carry a tenant key from one master key to another through a
 * transport key (docs/privacy.md, "Export and import"). malloc'd, or NULL
 * with why (not a tenant record, under another key, or it does not open). */
char *vp_keyrec_rewrap(const VpKey *from, const VpKey *to, const char *name, const char *value,
		       int64_t now_us, char *why, size_t why_cap);

/* Counts, for logs and tests. */
size_t vp_keyring_tenants(VpKeyring *kr);
size_t vp_keyring_clients(VpKeyring *kr);

#endif
