/* The tenant's key records in a tenant export file (docs/privacy.md, "Export
 * and import"). Key lines come before the event lines, one per record:
 *   {"keyrec":{"name":"tenant:<t>"|"client:<t>:<c>","value":"<record text>"}}
 * the record that counts of each of the tenant's names in the keys topic
 * (vp_keyrec_newer.h: the latest, but the newest tenant record and an
 * erasure marker whatever the read order): the
 * tenant key rewrapped from the source master key to the operator's transport
 * key (--key-file), client keys as they are (wrapped under the tenant key,
 * which does not change), erasure markers as they are (an erased client's key
 * is gone from the topic's latest records, so it cannot be exported). The
 * key lines have a digest of their own in the trailer, so the events' digest
 * (the import's identity) is that of a file without keys. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "tenant_keys.h"
#include "vp_json.h"
#include "vp_kafka.h"
#include "vp_kafka_end.h"
#include "vp_keyrec_newer.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"

#define READ_TIMEOUT_MS 60000
#define TRANSPORT_TEXT_MAX 128

/* Whether the record name is one of the tenant's. */
static bool tenant_name(const char *tenant, const char *name, size_t len)
{
	char own[64];
	size_t n = (size_t)snprintf(own, sizeof(own), VP_KEYREC_TENANT ":%s", tenant);
	if (len == n && !memcmp(name, own, n))
		return true;
	n = (size_t)snprintf(own, sizeof(own), VP_KEYREC_CLIENT ":%s:", tenant);
	return len > n && !memcmp(name, own, n);
}

/* Whether value (NULL: a tombstone) supersedes held, the value kept for its
 * name: the keyring's rule (vp_keyrec_newer.h), so that on a keys topic
 * written before vp_keyrec_partition, read in no set order across
 * partitions, rotate-master rewraps and export carries the tenant's newest
 * record and an erased client's marker, not what happened to be read last. */
static bool supersedes(const char *held, const char *value, size_t value_len)
{
	VpKeyrecRank had = vp_keyrec_rank(held, held ? strlen(held) : 0);
	VpKeyrecRank next = vp_keyrec_rank(value, value_len);
	return vp_keyrec_supersedes(&had, &next);
}

int vc_keys_append(VcKeyLines *k, const char *name, size_t name_len, const char *value,
		   size_t value_len)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;
		char **names = realloc(k->name, cap * sizeof(*names));
		if (names)
			k->name = names;
		char **values = names ? realloc(k->value, cap * sizeof(*values)) : NULL;
		if (!values)
			return -1;
		k->value = values;
		k->cap = cap;
	}
	k->name[k->n] = strndup(name, name_len);
	k->value[k->n] = value ? strndup(value, value_len) : NULL;
	if (!k->name[k->n] || (value && !k->value[k->n])) {
		free(k->name[k->n]);
		free(k->value[k->n]);
		return -1;
	}
	k->n++;
	return 0;
}

static uint64_t name_hash(const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a: names are ours, not a client's */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Every name in k->slot, the table grown (and filled again) to over twice
 * the names. 0, or -1 (out of memory). */
static int index_names(VcKeyLines *k)
{
	if (k->n_slots < 2 * (k->n + 1)) {
		size_t n_slots = k->n_slots ? k->n_slots : 128;
		while (n_slots < 2 * (k->n + 1))
			n_slots *= 2;
		size_t *slot = calloc(n_slots, sizeof(*slot));
		if (!slot)
			return -1;
		free(k->slot);
		k->slot = slot;
		k->n_slots = n_slots;
		k->indexed = 0;
	}
	for (; k->indexed < k->n; k->indexed++) {
		const char *name = k->name[k->indexed];
		size_t s = name_hash(name, strlen(name)) & (k->n_slots - 1);
		while (k->slot[s])
			s = (s + 1) & (k->n_slots - 1);
		k->slot[s] = k->indexed + 1;
	}
	return 0;
}

/* The index of name in k, k->n when it has none, SIZE_MAX out of memory. A
 * table, not a scan: a tenant's export reads one record per client, and the
 * scan made 30,000 clients take 3 s, growing with their square. */
static size_t find_name(VcKeyLines *k, const char *name, size_t len)
{
	if (index_names(k) < 0)
		return SIZE_MAX;
	for (size_t s = name_hash(name, len) & (k->n_slots - 1); k->slot[s];
	     s = (s + 1) & (k->n_slots - 1)) {
		size_t i = k->slot[s] - 1;
		if (strlen(k->name[i]) == len && !memcmp(k->name[i], name, len))
			return i;
	}
	return k->n;
}

int vc_keys_remember(VcKeyLines *k, const char *name, size_t name_len, const char *value,
		     size_t value_len)
{
	size_t i = find_name(k, name, name_len);
	if (i == SIZE_MAX)
		return -1;
	if (i == k->n)
		return vc_keys_append(k, name, name_len, value, value_len);
	if (!supersedes(k->value[i], value, value_len))
		return 0;
	free(k->value[i]);
	k->value[i] = value ? strndup(value, value_len) : NULL;
	return value && !k->value[i] ? -1 : 0;
}

/* Drops the names whose latest record is a tombstone. */
static void drop_tombstones(VcKeyLines *k)
{
	size_t out = 0;
	for (size_t i = 0; i < k->n; i++) {
		if (k->value[i]) {
			k->name[out] = k->name[i];
			k->value[out++] = k->value[i];
		} else
			free(k->name[i]);
	}
	k->n = out;
	free(k->slot); /* the indexes moved: built again at the next look */
	k->slot = NULL;
	k->n_slots = k->indexed = 0;
}

typedef struct Scan {
	VcKeyTake take;
	void *arg;
} Scan;

static int take_record(void *arg, const rd_kafka_message_t *m)
{
	const Scan *s = arg;
	return m->key ? s->take(s->arg, m->key, m->key_len, m->payload, m->len) : 0;
}

int vc_keys_scan(const char *brokers, const char *props, const char *topic,
		 const char *client_id, VcKeyTake take, void *arg, char *why, size_t why_cap)
{
	int partitions = 0;
	rd_kafka_t *rk =
		vp_kafka_once_reader_new(brokers, client_id, client_id, props, true, why, why_cap);
	if (!rk)
		return -1;
	if (vp_kafka_probe(rk, topic, 10000, &partitions) < 0 || partitions <= 0) {
		snprintf(why, why_cap, "keys topic %s not found at %s", topic, brokers);
		rd_kafka_destroy(rk);
		return -1;
	}
	/* to each partition's end at the start: a tenant's clients may be
	 * registering without pause, its partition's end moving (vp_kafka_end.h) */
	Scan s = {take, arg};
	int rc = vp_kafka_read_to_end(rk, topic, partitions, READ_TIMEOUT_MS, take_record, &s, why,
				      why_cap);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	if (rc < 0)
		snprintf(why, why_cap, "out of memory");
	return rc == 0 ? 0 : -1;
}

typedef struct Reading {
	VcKeyWanted wanted;
	const void *arg;
	VcKeyLines *k;
} Reading;

static int take_wanted(void *arg, const char *name, size_t name_len, const char *value,
		       size_t value_len)
{
	Reading *r = arg;
	if (!r->wanted(name, name_len, r->arg))
		return 0;
	return vc_keys_remember(r->k, name, name_len, value, value_len);
}

int vc_keys_read(const char *brokers, const char *props, const char *topic,
		 const char *client_id, VcKeyWanted wanted, const void *arg, VcKeyLines *k,
		 char *why, size_t why_cap)
{
	Reading r = {wanted, arg, k};
	return vc_keys_scan(brokers, props, topic, client_id, take_wanted, &r, why, why_cap);
}

static bool of_tenant(const char *name, size_t len, const void *tenant)
{
	return tenant_name(tenant, name, len);
}

int vc_keys_collect(const char *brokers, const char *props, const char *topic,
		    const char *tenant, VcKeyLines *k, char *why, size_t why_cap)
{
	int rc = vc_keys_read(brokers, props, topic, "vetctl-export-keys", of_tenant, tenant, k,
			      why, why_cap);
	drop_tombstones(k);
	return rc;
}

/* The index of the tenant record, or -1. */
static long tenant_record(const VcKeyLines *k)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strncmp(k->name[i], VP_KEYREC_TENANT ":", sizeof(VP_KEYREC_TENANT)))
			return (long)i;
	return -1;
}

int vc_keys_rewrap(VcKeyLines *k, const VpMasterKeys *masters, const VpKey *to, char *why,
		   size_t why_cap)
{
	long t = tenant_record(k);
	if (t < 0)
		return 0;
	cJSON *v = cJSON_Parse(k->value[t]);
	const VpKey *from = vp_master_key_of(masters->current, masters->previous, k->name[t],
					     vp_json_str(v, "kek_id"), "vetctl", why, why_cap);
	cJSON_Delete(v);
	char *value = from ? vp_keyrec_rewrap(from, to, k->name[t], k->value[t], vp_time_now_us(),
					      why, why_cap)
			   : NULL;
	if (!value)
		return -1;
	free(k->value[t]);
	k->value[t] = value;
	return 0;
}

int vc_keys_write(const VcKeyLines *k, FILE *out, unsigned char digest[32])
{
	crypto_generichash_state hash;
	crypto_generichash_init(&hash, NULL, 0, 32);
	for (size_t i = 0; i < k->n; i++) {
		cJSON *root = cJSON_CreateObject(), *rec = cJSON_AddObjectToObject(root, "keyrec");
		char *line = rec && cJSON_AddStringToObject(rec, "name", k->name[i]) &&
					     cJSON_AddStringToObject(rec, "value", k->value[i])
				     ? cJSON_PrintUnformatted(root)
				     : NULL;
		cJSON_Delete(root);
		if (!line)
			return -1;
		size_t len = strlen(line);
		crypto_generichash_update(&hash, (const unsigned char *)line, len);
		crypto_generichash_update(&hash, (const unsigned char *)"\n", 1);
		int rc = fwrite(line, 1, len, out) == len && fputc('\n', out) != EOF ? 0 : -1;
		free(line);
		if (rc < 0)
			return -1;
	}
	crypto_generichash_final(&hash, digest, 32);
	return 0;
}

bool vc_keys_markers_only(const VcKeyLines *k)
{
	for (size_t i = 0; i < k->n; i++) {
		const char *v = k->value[i];
		if (vp_keyrec_rank(v, v ? strlen(v) : 0).state != VP_KEYREC_MARKER)
			return false;
	}
	return true;
}

int vc_keys_check(const VcKeyLines *k, const char *tenant, const VpKey *transport, char *why,
		  size_t why_cap)
{
	for (size_t i = 0; i < k->n; i++)
		if (!tenant_name(tenant, k->name[i], strlen(k->name[i]))) {
			snprintf(why, why_cap, "key record %s is not of tenant %s", k->name[i],
				 tenant);
			return -1;
		}
	long t = tenant_record(k);
	if (t < 0 && vc_keys_markers_only(k))
		return 0; /* no key travels: nothing to unwrap */
	if (t < 0 || !transport) {
		snprintf(why, why_cap, "the file carries key records but not the tenant's key");
		return -1;
	}
	/* unwrap once to learn the transport key is the right one: nothing is
	 * sent with the wrong one */
	char *probe = vp_keyrec_rewrap(transport, transport, k->name[t], k->value[t], 0, why,
				       why_cap);
	if (!probe)
		return -1;
	free(probe);
	return 0;
}

char *vc_transport_text(const char *path, char *why, size_t why_cap)
{
	VpKey *key = vp_key_master_load(path, NULL, why, why_cap); /* mode and form */
	if (!key)
		return NULL;
	vp_key_free(key);
	char *text = sodium_malloc(TRANSPORT_TEXT_MAX);
	int fd = text ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t n = fd >= 0 ? read(fd, text, TRANSPORT_TEXT_MAX - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		snprintf(why, why_cap, "%s: cannot read the key", path);
		vc_transport_text_free(text);
		return NULL;
	}
	text[n] = '\0';
	text[strcspn(text, " \t\r\n")] = '\0';
	return text;
}

void vc_transport_text_free(char *text)
{
	if (text) {
		sodium_memzero(text, TRANSPORT_TEXT_MAX);
		sodium_free(text);
	}
}

void vc_keys_release(VcKeyLines *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->name[i]);
		free(k->value[i]);
	}
	free(k->name);
	free(k->value);
	free(k->slot);
	memset(k, 0, sizeof(*k));
}
