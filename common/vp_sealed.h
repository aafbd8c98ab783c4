/* Sealed personal fields of client events (issue 18, docs/privacy.md).
 *
 * ClientRegistered and ClientContactUpdated from v2 carry a client's
 * personal fields (vp_personal_fields) sealed under the client's data key
 * instead of in plain text. New events are v3: the personal members present
 * as one JSON object, sealed once:
 *
 *   data = {"key_id": "<data key id>",
 *           "sealed": {"n": "<nonce>", "c": "<ciphertext of {"email": ..., ...}>"},
 *           "email_bidx": "<hex>"|null, "phone_bidx": "<hex>"|null}
 *
 * with associated data "client:<tenant>:<client>:<type>", so sealed data
 * moved to another client or event type does not open. v2 (the first form,
 * still read) sealed each field on its own: "sealed": {"email": {"n", "c"},
 * ...}, associated data "client:<tenant>:<client>:<field>"; one AEAD, nonce
 * and base64 text per field cost the writer and the projector about twice
 * v3's CPU (docs/bench.md). A member given as null stays null; an absent one
 * stays absent (ContactUpdated's "unchanged"). The blind indexes are keyed
 * BLAKE2b of the normalised value under the tenant's index key (exact match
 * without the value in the log).
 *
 * vp_sealed_open is the upcaster the other way: v2 or v3 data opened into
 * the v1 shape the handlers read (plus the two blind indexes). v1 data is
 * read as it is.
 *
 * Key records of the keys topic (vetpms.keys, compacted) are built and read
 * here too: record key "tenant:<t>" (the tenant key wrapped under the master
 * key) and "client:<t>:<c>" (the client's data key wrapped under the tenant
 * key); the wrap's context is the record key. */
#ifndef VP_SEALED_H
#define VP_SEALED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "vp_crypto.h"

/* The personal fields of client events, NULL-terminated. */
extern const char *const vp_personal_fields[];
#define VP_SEALED_V 3       /* the version client events are written in */
#define VP_SEALED_V_FIRST 2 /* the first sealed version (one value per field) */

/* Whose data is sealed: the event's type, tenant and client (the associated
 * data binds them). */
typedef struct VpSealedOf {
	const char *type;
	const char *tenant_id;
	const char *client_id;
} VpSealedOf;

/* The types of the events carrying personal fields (sealed from v2),
 * NULL-terminated, and whether type is one of them. */
extern const char *const vp_sealed_types[];
bool vp_sealed_type(const char *type);

/* The form a field's blind index is taken of: email trimmed and lower-cased
 * (ASCII), phone its digits only (a leading + kept); other fields trimmed.
 * out gets at most cap - 1 bytes and a NUL; returns its length. */
size_t vp_sealed_normalise(const char *field, const char *value, char *out, size_t cap);

/* data (v1 shape) sealed into a new v3 data object, or NULL with why.
 * index_key makes email_bidx / phone_bidx (the members are only present
 * when the field is). key_id is data_key's (vp_key_id), or NULL or "" to
 * have it computed (a hash: the writer passes the one of the key's record). */
cJSON *vp_sealed_seal(const cJSON *plain, const VpSealedOf *of, const VpKey *data_key,
		      const char *key_id, const VpKey *index_key, char *why, size_t why_cap);

/* The data key id a sealed data object names, or NULL. */
const char *vp_sealed_key_id(const cJSON *data);

/* v2 or v3 (v) data opened into a new object of the v1 shape plus
 * email_bidx and phone_bidx when present; NULL with why when it does not open
 * (tampered, another key, moved from another field, client or type), holds a
 * member that is no personal field of the type, or data_key (whose id is
 * key_id, or NULL to have it computed) is not the key data names. */
cJSON *vp_sealed_open(const cJSON *sealed, int v, const VpSealedOf *of, const VpKey *data_key,
		      const char *key_id, char *why, size_t why_cap);

/* The personal fields an event of this type may carry, NULL-terminated. */
const char *const *vp_sealed_fields_of(const char *type);

/* What a personal field of an erased client reads as (EraseClient,
 * docs/privacy.md): first_name "erased", last_name "client", any other null.
 * A new item, or NULL (out of memory). */
cJSON *vp_sealed_erased_value(const char *field);

/* The personal members plain (v1) data holds replaced by an erased client's
 * (absent ones stay absent: "unchanged" in ClientContactUpdated v1): what
 * an erased client's v1 event is exported as (vetctl tenant export). 0, or
 * -1 (out of memory; data may be half done). */
int vp_sealed_erase_plain(cJSON *data, const char *type);

/* Key records. */
#define VP_KEYREC_TENANT "tenant"
#define VP_KEYREC_CLIENT "client"
#define VP_KEYREC_ERASED "erased"
/* The keys topic's master record: which master key the deployment's keys
 * are wrapped under (docs/privacy.md, "Start-up refusal"). Written by the
 * deployment's first writer and by `vetctl keys rotate-master`; it names no
 * tenant, so it lives on partition 0. */
#define VP_KEYREC_MASTER "master"
#define VP_KEYREC_MASTER_NAME "master"
#define VP_KEYREC_MASTER_PARTITION 0
/* "tenant:<t>" or "client:<t>:<c>" (client_id NULL for the tenant's). */
void vp_keyrec_name(const char *tenant_id, const char *client_id, char *out, size_t cap);
/* The record's value: {"kind", "kek_id" (the wrapping key's id), "key_id"
 * (the wrapped key's id), "wrapped", "created_at"}; malloc'd text or NULL. */
char *vp_keyrec_value(const VpKey *kek, const VpKey *key, const char *name, int64_t now_us,
		      char *why, size_t why_cap);
/* The same value from its parts (ids from vp_key_id, wrapped from
 * vp_key_wrap), for callers that hold the ids already. */
char *vp_keyrec_text(const char *name, const char *kek_id, const char *key_id,
		     const char *wrapped, int64_t now_us);
/* The master record's value: {"kind": "master", "kek_id" (the master key's
 * id, vp_key_id), "created_at"}; malloc'd text or NULL. The id alone says
 * which key: it is a hash of the key, made by no one without it. */
char *vp_keyrec_master_value(const char *kek_id, int64_t now_us);
/* Whether a record key (len bytes, not NUL-terminated) is the master
 * record's: the one test of every reader of the keys topic. */
bool vp_keyrec_is_master(const char *name, size_t len);

#endif
