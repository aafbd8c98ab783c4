/* Sealed personal fields of client events (issue 18, docs/privacy.md).
 *
 * ClientRegistered and ClientContactUpdated v2 carry a client's personal
 * fields (vp_personal_fields) sealed under the client's data key instead of
 * in plain text:
 *
 *   data = {"key_id": "<data key id>",
 *           "sealed": {"email": {"n": "<nonce>", "c": "<ciphertext>"}, ...},
 *           "email_bidx": "<hex>"|null, "phone_bidx": "<hex>"|null}
 *
 * A field given as null stays null (not sealed): ContactUpdated's "null
 * clears" survives. The associated data of each sealed value is
 * "client:<tenant>:<client>:<field>", so a value copied to another field or
 * client does not open. The blind indexes are keyed BLAKE2b of the
 * normalised value under the tenant's index key (exact match without the
 * value in the log).
 *
 * vp_sealed_open is the upcaster the other way: v2 data opened into the v1
 * shape the handlers read (plus the two blind indexes). v1 data is read as
 * it is; new events are always v2.
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
#define VP_SEALED_V 2 /* the version of the client events that seal */

/* Whether events of this type carry personal fields (sealed from v2). */
bool vp_sealed_type(const char *type);

/* The form a field's blind index is taken of: email trimmed and lower-cased
 * (ASCII), phone its digits only (a leading + kept); other fields trimmed.
 * out gets at most cap - 1 bytes and a NUL; returns its length. */
size_t vp_sealed_normalise(const char *field, const char *value, char *out, size_t cap);

/* data (v1 shape) sealed into a new v2 data object, or NULL with why.
 * index_key makes email_bidx / phone_bidx (the members are only present
 * when the field is). */
cJSON *vp_sealed_seal(const cJSON *plain, const char *tenant_id, const char *client_id,
		      const VpKey *data_key, const VpKey *index_key, char *why, size_t why_cap);

/* The data key id a v2 data object names, or NULL. */
const char *vp_sealed_key_id(const cJSON *data);

/* v2 data opened into a new object of the v1 shape plus email_bidx and
 * phone_bidx when present; NULL with why when a field does not open (a
 * tampered value, another key, moved from another field or client) or the
 * key is not the one key_id names. */
cJSON *vp_sealed_open(const cJSON *sealed, const char *tenant_id, const char *client_id,
		      const VpKey *data_key, char *why, size_t why_cap);

/* Key records. */
#define VP_KEYREC_TENANT "tenant"
#define VP_KEYREC_CLIENT "client"
#define VP_KEYREC_ERASED "erased"
/* "tenant:<t>" or "client:<t>:<c>" (client_id NULL for the tenant's). */
void vp_keyrec_name(const char *tenant_id, const char *client_id, char *out, size_t cap);
/* The record's value: {"kind", "kek_id" (the wrapping key's id), "key_id"
 * (the wrapped key's id), "wrapped", "created_at"}; malloc'd text or NULL. */
char *vp_keyrec_value(const VpKey *kek, const VpKey *key, const char *name, int64_t now_us,
		      char *why, size_t why_cap);

#endif
