/* tenant_keys.c: the tenant's key records in a tenant export file. */
#ifndef VC_TENANT_KEYS_H
#define VC_TENANT_KEYS_H

#include <stdbool.h>
#include <stdio.h>

#include "vp_crypto.h"
#include "vp_keyring.h"

/* Key records by name (the value that counts, vp_keyrec_newer.h), in
 * topic / file order. */
typedef struct VcKeyLines {
	char **name;
	char **value;
	size_t n, cap;
	/* names by hash, for vc_keys_remember: a name's index + 1 (0: empty),
	 * open addressing over n_slots (a power of two, over twice the names);
	 * name[0, indexed) are in it, the rest are added at the next look */
	size_t *slot;
	size_t n_slots, indexed;
} VcKeyLines;

/* name and value (NULL: a tombstone) added at the end, copied. 0, or -1 (out
 * of memory). */
int vc_keys_append(VcKeyLines *k, const char *name, size_t name_len, const char *value,
		   size_t value_len);

/* value (NULL: a tombstone, kept as NULL) as name's, unless the value held
 * supersedes it (vp_keyrec_supersedes: a newer tenant record, an erasure
 * marker). 0, or -1 (out of memory). */
int vc_keys_remember(VcKeyLines *k, const char *name, size_t name_len, const char *value,
		     size_t value_len);

/* The keys topic read to its end (vp_kafka_read_to_end, read_committed) by a
 * consumer named client_id: every record handed to take (value NULL: a
 * tombstone), in each partition's order. take returns 0, or -1 to stop (out
 * of memory). 0, or -1 with why. */
typedef int (*VcKeyTake)(void *arg, const char *name, size_t name_len, const char *value,
			 size_t value_len);
int vc_keys_scan(const char *brokers, const char *props, const char *topic,
		 const char *client_id, VcKeyTake take, void *arg, char *why, size_t why_cap);

/* The same read: the record that counts of each name wanted() says yes to,
 * into k (tombstones as NULL values). 0, or -1 with why. */
typedef bool (*VcKeyWanted)(const char *name, size_t len, const void *arg);
int vc_keys_read(const char *brokers, const char *props, const char *topic,
		 const char *client_id, VcKeyWanted wanted, const void *arg, VcKeyLines *k,
		 char *why, size_t why_cap);

/* Export: the latest record of each of the tenant's names in the keys topic
 * (tombstones dropped). 0, or -1 with why. */
int vc_keys_collect(const char *brokers, const char *props, const char *topic,
		    const char *tenant, VcKeyLines *k, char *why, size_t why_cap);
/* The tenant record rewrapped to `to` in place (none: nothing), from the
 * master key its kek_id names: masters->current, or masters->previous when
 * given (vp_master_key_of, the keyring's choice). 0, or -1 with why (a
 * record under neither: naming its kek_id and the ids held). */
int vc_keys_rewrap(VcKeyLines *k, const VpMasterKeys *masters, const VpKey *to, char *why,
		   size_t why_cap);
/* The key lines to out; digest gets their BLAKE2b (32 bytes). */
int vc_keys_write(const VcKeyLines *k, FILE *out, unsigned char digest[32]);

/* Whether every record is an erasure marker (none: true): a tenant whose
 * erased clients were all registered in clear (v1), before its first sealed
 * client made its tenant key. No key travels, so no transport key is needed
 * on either side. */
bool vc_keys_markers_only(const VcKeyLines *k);

/* Import: the file's key lines are parsed by vc_plan_parse_line (import_plan.h). */
/* Every record of the tenant, the tenant's key among them and wrapped under
 * transport; or erasure markers only (vc_keys_markers_only; transport may be
 * NULL). 0, or -1 with why. */
int vc_keys_check(const VcKeyLines *k, const char *tenant, const VpKey *transport, char *why,
		  size_t why_cap);

/* The transport key file's text (checked like a master key file: mode 0600,
 * 32 bytes of base64url) in locked memory; free with vc_transport_text_free
 * (wipes). NULL with why. */
char *vc_transport_text(const char *path, char *why, size_t why_cap);
void vc_transport_text_free(char *text);

void vc_keys_release(VcKeyLines *k);

#endif
