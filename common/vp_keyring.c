/* The keys topic in memory (vp_keyring.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <sodium.h>

#include "vp_idset.h"
#include "vp_json.h"
#include "vp_kafka.h"
#include "vp_kafka_end.h"
#include "vp_keyrec_newer.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_table_hash.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define POLL_MS 200

/* What a client's entry holds: its latest key record's kind (the wrapped
 * key itself as bytes: a client entry is most of a keyring, one per client
 * in each daemon). */
typedef enum ClientKey {
	CLIENT_NOTHING, /* no record taken yet */
	CLIENT_KEY,     /* wrapped[] holds its wrapped key */
	CLIENT_KEY_BAD, /* a record whose text is not a wrapped key: refused at
			 * use, like a key that does not open, not when read */
	CLIENT_ERASED,  /* its erasure marker: the key was destroyed */
} ClientKey;

/* A tenant's entry (name "tenant:...") or a client's ("client:..."): the
 * names' prefixes keep the two kinds apart, and `tenant` says which of the
 * union's members is live. A client's entry is one allocation of 208
 * bytes of heap (name included); with a malloc'd text of the wrapped key
 * and the tenant's members beside it, it was 304 in two. */
typedef struct Entry {
	struct Entry *next;
	uint64_t hash; /* of name: compared before the name, and kept for growing */
	char key_id[VP_KEY_ID_CHARS + 1]; /* the key's id (a hash): kept, not redone per use */
	bool tenant;
	unsigned char client_key; /* a client's ClientKey (in the padding before the union) */
	union {
		struct {
			VpKey *key;   /* the tenant's key, unwrapped */
			VpKey *index; /* its blind-index key */
			char *wrong;  /* its latest record is under another master key: why */
			int64_t created_us; /* its record's created_at: the newest one counts */
		};
		/* the client's data key, wrapped under its tenant's key */
		unsigned char wrapped[VP_WRAPPED_BYTES];
	};
	char name[]; /* in the entry's own allocation: one cache line less per look */
} Entry;

struct VpKeyring {
	const VpKey *master;
	/* during a rotation: the key the master replaces; records under it are
	 * read, nothing new is wrapped under it (NULL: none) */
	const VpKey *previous;
	Entry **buckets;
	size_t n_buckets, n_tenants, n_clients;
	/* the client ids of the erasure markers held, whatever the tenant
	 * (vp_keyring_erased without one): one per marker entry */
	VpIdSet *erased;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	pthread_mutex_t lock;
	pthread_cond_t arrived; /* a record was taken by the follower */
	/* the follower (projector) */
	rd_kafka_t *rk;
	pthread_t thread;
	bool following;
	atomic_bool stop;
	int broken;         /* a record the follower could not take: its status */
	char broken_why[256];
	/* the master record (VP_KEYREC_MASTER_NAME), the newest taken */
	bool master_seen;
	int64_t master_created_us;
	char *master_wrong; /* it names a master key not held: why (NULL: held) */
	/* the first master record taken named a key not held: a daemon started
	 * before any was written, with another key than the writer's */
	bool master_refused;
};

VpKeyring *vp_keyring_new(const VpKey *master, char *why, size_t why_cap)
{
	VpKeyring *kr = calloc(1, sizeof(*kr));
	if (kr) {
		kr->buckets = calloc(kr->n_buckets = 1024, sizeof(*kr->buckets));
		kr->erased = vp_idset_new();
	}
	if (!kr || !kr->buckets || !kr->erased) {
		if (kr) {
			free(kr->buckets);
			vp_idset_free(kr->erased);
		}
		free(kr);
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	kr->master = master;
	randombytes_buf(kr->hash_key, sizeof(kr->hash_key));
	pthread_mutex_init(&kr->lock, NULL);
	pthread_cond_init(&kr->arrived, NULL);
	return kr;
}

static void entry_free(Entry *e)
{
	if (e->tenant) {
		vp_key_free(e->key);
		vp_key_free(e->index);
		free(e->wrong);
	} else
		sodium_memzero(e->wrapped, sizeof(e->wrapped));
	free(e);
}

void vp_keyring_accept_previous(VpKeyring *kr, const VpKey *previous)
{
	kr->previous = previous;
}

VpKeyring *vp_keyring_free(VpKeyring *kr)
{
	if (!kr)
		return NULL;
	if (kr->following) {
		atomic_store(&kr->stop, true);
		pthread_join(kr->thread, NULL);
	}
	if (kr->rk) {
		rd_kafka_consumer_close(kr->rk);
		rd_kafka_destroy(kr->rk);
	}
	for (size_t i = 0; i < kr->n_buckets; i++)
		for (Entry *e = kr->buckets[i], *next; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	free(kr->buckets);
	vp_idset_free(kr->erased);
	free(kr->master_wrong);
	pthread_mutex_destroy(&kr->lock);
	pthread_cond_destroy(&kr->arrived);
	free(kr);
	return NULL;
}

static uint64_t hash_of(const VpKeyring *kr, const char *name)
{
	return vp_table_hash(kr->hash_key, name);
}

static Entry *find_hashed(const VpKeyring *kr, const char *name, uint64_t hash)
{
	for (Entry *e = kr->buckets[hash & (kr->n_buckets - 1)]; e; e = e->next)
		if (e->hash == hash && !strcmp(e->name, name))
			return e;
	return NULL;
}

static Entry *find(const VpKeyring *kr, const char *name)
{
	return find_hashed(kr, name, hash_of(kr, name));
}

/* Doubles the buckets when there are more entries than buckets (chains of
 * one on average: a client event looks up two names, a new client three). */
static void grow(VpKeyring *kr)
{
	size_t n = kr->n_tenants + kr->n_clients;
	if (n < kr->n_buckets)
		return;
	Entry **old = kr->buckets;
	size_t old_n = kr->n_buckets;
	Entry **fresh = calloc(old_n * 2, sizeof(*fresh));
	if (!fresh)
		return; /* longer chains, still correct */
	kr->buckets = fresh;
	kr->n_buckets = old_n * 2;
	for (size_t i = 0; i < old_n; i++)
		for (Entry *e = old[i], *next; e; e = next) {
			next = e->next;
			size_t b = e->hash & (kr->n_buckets - 1);
			e->next = fresh[b];
			fresh[b] = e;
		}
	free(old);
}

static Entry *find_or_add(VpKeyring *kr, const char *name, bool tenant)
{
	uint64_t hash = hash_of(kr, name);
	Entry *e = find_hashed(kr, name, hash);
	if (e) /* one name, one kind: the prefixes see to it (take_locked) */
		return e->tenant == tenant ? e : NULL;
	size_t len = strlen(name);
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	memcpy(e->name, name, len + 1);
	e->hash = hash;
	e->tenant = tenant;
	size_t b = hash & (kr->n_buckets - 1);
	e->next = kr->buckets[b];
	kr->buckets[b] = e;
	if (tenant)
		kr->n_tenants++;
	else
		kr->n_clients++;
	grow(kr);
	return e;
}

/* The client id of a client record's name, "client:<tenant id>:<client
 * id>" (vp_keyrec_name), or NULL for a name of another shape (junk in the
 * topic names no client). */
static const char *client_id_of(const char *name)
{
	static const char prefix[] = VP_KEYREC_CLIENT ":";
	size_t head = sizeof(prefix) - 1 + VP_UUID_STR_LEN;
	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0 || strlen(name) <= head + 1 ||
	    name[head] != ':')
		return NULL;
	return name + head + 1;
}

static void remove_entry(VpKeyring *kr, const char *name)
{
	uint64_t hash = hash_of(kr, name);
	for (Entry **p = &kr->buckets[hash & (kr->n_buckets - 1)]; *p; p = &(*p)->next)
		if ((*p)->hash == hash && !strcmp((*p)->name, name)) {
			Entry *e = *p;
			*p = e->next;
			if (e->tenant)
				kr->n_tenants--;
			else
				kr->n_clients--;
			const char *client = client_id_of(e->name);
			if (!e->tenant && e->client_key == CLIENT_ERASED && client)
				vp_idset_remove(kr->erased, client);
			entry_free(e);
			return;
		}
}

/* A tenant record under another master key is held against the tenant, not
 * refused at once: a rotation leaves the old record before the new one until
 * compaction, and only the latest record of a name counts
 * (vp_keyring_wrong_master says at the end of a read). */
static int take_tenant_under(VpKeyring *kr, const char *name, const cJSON *v, char *why,
			     size_t why_cap);

static int take_tenant(VpKeyring *kr, const char *name, const cJSON *v, char *why,
		       size_t why_cap)
{
	VpKeyrecRank next = vp_keyrec_rank_json(v), had = {VP_KEYREC_NOTHING, false, INT64_MIN};
	Entry *held = find(kr, name);
	if (held && held->tenant && (held->key || held->wrong))
		had = (VpKeyrecRank){VP_KEYREC_KEY, true, held->created_us};
	/* The newest record of a tenant counts, whatever the read order: before
	 * vp_keyrec_partition a tenant's records were placed by name, and a keys
	 * topic written then may hold the record `keys rotate-master` made on
	 * the tenant's partition and the older one on another, read after it
	 * (vp_keyrec_newer.h, the rule vetctl's readers share). */
	if (!vp_keyrec_supersedes(&had, &next))
		return VP_KEYRING_OK;
	int rc = take_tenant_under(kr, name, v, why, why_cap);
	Entry *e = rc == VP_KEYRING_FAILED ? NULL : find_or_add(kr, name, true);
	if (!e)
		return rc == VP_KEYRING_FAILED ? rc : VP_KEYRING_FAILED;
	free(e->wrong);
	e->wrong = rc == VP_KEYRING_WRONG_MASTER ? strdup(why) : NULL;
	e->created_us = next.created_us;
	return VP_KEYRING_OK;
}

/* A tenant whose newest record is under a master key not held (keyless:
 * and whose key was not unwrapped from an earlier record) into why; the
 * lock held. */
static bool wrong_tenant_locked(const VpKeyring *kr, bool keyless, char *why, size_t why_cap)
{
	for (size_t i = 0; i < kr->n_buckets; i++)
		for (const Entry *e = kr->buckets[i]; e; e = e->next)
			if (e->tenant && e->wrong && !(keyless && e->key)) {
				snprintf(why, why_cap, "%s", e->wrong);
				return true;
			}
	return false;
}

int vp_keyring_wrong_master(VpKeyring *kr, char *why, size_t why_cap)
{
	pthread_mutex_lock(&kr->lock);
	bool wrong = wrong_tenant_locked(kr, false, why, why_cap);
	if (!wrong && kr->master_wrong) {
		snprintf(why, why_cap, "%s", kr->master_wrong);
		wrong = true;
	}
	pthread_mutex_unlock(&kr->lock);
	return wrong ? VP_KEYRING_WRONG_MASTER : VP_KEYRING_OK;
}

bool vp_keyring_keyless_tenant(VpKeyring *kr, char *why, size_t why_cap)
{
	pthread_mutex_lock(&kr->lock);
	bool found = wrong_tenant_locked(kr, true, why, why_cap);
	pthread_mutex_unlock(&kr->lock);
	return found;
}

bool vp_keyring_has_master(VpKeyring *kr)
{
	pthread_mutex_lock(&kr->lock);
	bool seen = kr->master_seen;
	pthread_mutex_unlock(&kr->lock);
	return seen;
}

bool vp_keyring_master_refused(VpKeyring *kr, char *why, size_t why_cap)
{
	pthread_mutex_lock(&kr->lock);
	bool refused = kr->master_refused && kr->master_wrong;
	if (refused)
		snprintf(why, why_cap, "%s", kr->master_wrong);
	pthread_mutex_unlock(&kr->lock);
	return refused;
}

/* "but <holder> holds master key Y[ and previous master key Z]: wrong ...?"
 * into out: how every refusal names the keys held. */
static void keys_held(const VpKey *current, const VpKey *previous, const char *holder,
		      char *out, size_t cap)
{
	char current_id[VP_KEY_ID_CHARS + 1], previous_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(current, current_id);
	if (previous) {
		vp_key_id(previous, previous_id);
		snprintf(out, cap,
			 "but %s holds master key %s and previous master key %s: wrong "
			 "VETPMS_MASTER_KEY_FILE / VETPMS_MASTER_KEY_PREVIOUS_FILE?",
			 holder, current_id, previous_id);
	} else
		snprintf(out, cap,
			 "but %s holds master key %s: wrong VETPMS_MASTER_KEY_FILE / "
			 "VETPMS_MASTER_KEY?",
			 holder, current_id);
}

/* The master key (current or previous) the record's kek_id names, or NULL
 * with why naming every key held. */
const VpKey *vp_master_key_of(const VpKey *current, const VpKey *previous, const char *name,
			      const char *kek_id, const char *holder, char *why, size_t why_cap)
{
	char id[VP_KEY_ID_CHARS + 1], held[384];
	vp_key_id(current, id);
	if (kek_id && !strcmp(kek_id, id))
		return current;
	if (previous)
		vp_key_id(previous, id);
	if (kek_id && previous && !strcmp(kek_id, id))
		return previous;
	keys_held(current, previous, holder, held, sizeof(held));
	snprintf(why, why_cap, "the key of %s is wrapped under master key %s, %s", name,
		 kek_id ? kek_id : "(none)", held);
	return NULL;
}

/* Whether some tenant's key was unwrapped; the lock held. */
static bool holds_tenant_key(const VpKeyring *kr)
{
	for (size_t i = 0; i < kr->n_buckets; i++)
		for (const Entry *e = kr->buckets[i]; e; e = e->next)
			if (e->tenant && e->key)
				return true;
	return false;
}

/* The master record: the newest counts (vp_keyrec_newer.h); one naming a
 * key not held is held against the keyring (vp_keyring_wrong_master), and
 * when it is the first one taken by a keyring that holds no tenant key yet,
 * against a running daemon too (vp_keyring_master_refused). A keyring that
 * holds tenant keys is watching a rotation (a writer holding the new key and
 * the previous one recorded the new key in a topic of before the record):
 * the tenant keys it unwrapped still serve it, as in vp_keyring_keyless_tenant. */
static int take_master(VpKeyring *kr, const cJSON *v)
{
	VpKeyrecRank next = vp_keyrec_rank_json(v);
	VpKeyrecRank had = {kr->master_seen ? VP_KEYREC_KEY : VP_KEYREC_NOTHING, true,
			    kr->master_created_us};
	if (!vp_keyrec_supersedes(&had, &next))
		return VP_KEYRING_OK;
	char ignored[384], held[384];
	const char *kek = vp_json_str(v, "kek_id");
	free(kr->master_wrong);
	kr->master_wrong = NULL;
	if (!vp_master_key_of(kr->master, kr->previous, VP_KEYREC_MASTER_NAME, kek, "",
			      ignored, sizeof(ignored))) {
		keys_held(kr->master, kr->previous, "this daemon", held, sizeof(held));
		if (asprintf(&kr->master_wrong,
			     "the keys topic's master record says the deployment's keys are "
			     "wrapped under master key %s, %s",
			     kek ? kek : "(none)", held) < 0)
			kr->master_wrong = NULL;
		kr->master_refused = kr->master_refused || (!kr->master_seen && !holds_tenant_key(kr));
		if (!kr->master_wrong)
			return VP_KEYRING_FAILED;
	}
	kr->master_seen = true;
	kr->master_created_us = next.created_us;
	return VP_KEYRING_OK;
}

static int take_tenant_under(VpKeyring *kr, const char *name, const cJSON *v, char *why,
			     size_t why_cap)
{
	const char *wrapped = vp_json_str(v, "wrapped");
	/* the key the record names, as vetctl tenant export decides */
	const VpKey *kek = vp_master_key_of(kr->master, kr->previous, name,
					    vp_json_str(v, "kek_id"), "this daemon", why, why_cap);
	if (!kek)
		return VP_KEYRING_WRONG_MASTER;
	char inner[256];
	VpKey *key = vp_key_unwrap(kek, wrapped, name, inner, sizeof(inner));
	VpKey *index = key ? vp_key_derive_index(key, inner, sizeof(inner)) : NULL;
	Entry *e = index ? find_or_add(kr, name, true) : NULL;
	if (!e) {
		snprintf(why, why_cap, "%s: %s", name, key && index ? "out of memory" : inner);
		vp_key_free(key);
		vp_key_free(index);
		return key ? VP_KEYRING_FAILED : VP_KEYRING_WRONG_MASTER;
	}
	vp_key_free(e->key);
	vp_key_free(e->index);
	e->key = key;
	e->index = index;
	vp_key_id(key, e->key_id);
	return VP_KEYRING_OK;
}

static VpKeyrecState rank_of(ClientKey kind)
{
	return kind == CLIENT_ERASED ? VP_KEYREC_MARKER
	       : kind == CLIENT_NOTHING ? VP_KEYREC_NOTHING
					: VP_KEYREC_KEY;
}

/* A client's record under name: its kind, the wrapped key (CLIENT_KEY) and
 * the key's id. */
static int set_client(VpKeyring *kr, const char *name, ClientKey kind,
		      const unsigned char wrapped[VP_WRAPPED_BYTES], const char *key_id, char *why,
		      size_t why_cap)
{
	Entry *e = find_or_add(kr, name, false);
	if (!e) {
		snprintf(why, why_cap, "out of memory");
		return VP_KEYRING_FAILED;
	}
	/* the record held supersedes this one? (vp_keyrec_newer.h: an erasure
	 * marker is final, so a late copy of the key changes nothing, in either
	 * read order: on a keys topic written before vp_keyrec_partition the
	 * client's key may sit on its name's partition and the marker on the
	 * tenant's) */
	VpKeyrecRank had = {rank_of(e->client_key), false, INT64_MIN};
	VpKeyrecRank next = {rank_of(kind), false, INT64_MIN};
	if (!vp_keyrec_supersedes(&had, &next))
		return VP_KEYRING_OK;
	const char *client = client_id_of(name);
	if (kind == CLIENT_ERASED && e->client_key != CLIENT_ERASED && client &&
	    vp_idset_add(kr->erased, client) < 0) {
		snprintf(why, why_cap, "out of memory");
		return VP_KEYRING_FAILED;
	}
	sodium_memzero(e->wrapped, sizeof(e->wrapped));
	if (kind == CLIENT_KEY)
		memcpy(e->wrapped, wrapped, sizeof(e->wrapped));
	e->client_key = (unsigned char)kind;
	snprintf(e->key_id, sizeof(e->key_id), "%s",
		 key_id && kind != CLIENT_ERASED ? key_id : "");
	return VP_KEYRING_OK;
}

static int take_client(VpKeyring *kr, const char *name, const cJSON *v, bool erased, char *why,
		       size_t why_cap)
{
	const char *text = vp_json_str(v, "wrapped");
	unsigned char wrapped[VP_WRAPPED_BYTES];
	if (!erased && !text) {
		snprintf(why, why_cap, "%s: no wrapped key", name);
		return VP_KEYRING_FAILED;
	}
	ClientKey kind = erased					  ? CLIENT_ERASED
			 : vp_key_wrapped_decode(text, wrapped) == 0 ? CLIENT_KEY
								     : CLIENT_KEY_BAD;
	return set_client(kr, name, kind, wrapped, vp_json_str(v, "key_id"), why, why_cap);
}

static int take_locked(VpKeyring *kr, const char *name, const char *value, size_t value_len,
		       char *why, size_t why_cap)
{
	if (!value) { /* a tombstone supersedes any record (vp_keyrec_newer.h) */
		if (vp_keyrec_is_master(name, strlen(name))) {
			kr->master_seen = false;
			free(kr->master_wrong);
			kr->master_wrong = NULL;
		}
		remove_entry(kr, name);
		return VP_KEYRING_OK;
	}
	cJSON *v = cJSON_ParseWithLength(value, value_len);
	const char *kind = vp_json_str(v, "kind");
	bool tenant_name = !strncmp(name, VP_KEYREC_TENANT ":", strlen(VP_KEYREC_TENANT) + 1);
	int rc;
	if (!kind) {
		snprintf(why, why_cap, "%s: not a key record", name);
		rc = VP_KEYRING_FAILED;
	} else if (!strcmp(kind, VP_KEYREC_MASTER) && vp_keyrec_is_master(name, strlen(name))) {
		rc = take_master(kr, v);
		if (rc != VP_KEYRING_OK)
			snprintf(why, why_cap, "%s: out of memory", name);
	} else if (!strcmp(kind, VP_KEYREC_TENANT) && tenant_name)
		rc = take_tenant(kr, name, v, why, why_cap);
	else if (!strcmp(kind, VP_KEYREC_CLIENT) && !tenant_name)
		rc = take_client(kr, name, v, false, why, why_cap);
	else if (!strcmp(kind, VP_KEYREC_ERASED) && !tenant_name)
		rc = take_client(kr, name, v, true, why, why_cap);
	else {
		snprintf(why, why_cap, "%s: unknown kind of key record", name);
		rc = VP_KEYRING_FAILED;
	}
	cJSON_Delete(v);
	return rc;
}

int vp_keyring_take(VpKeyring *kr, const char *name, size_t name_len, const char *value,
		    size_t value_len, char *why, size_t why_cap)
{
	char key[160];
	if (!name || name_len == 0 || name_len >= sizeof(key)) {
		snprintf(why, why_cap, "a key record without a usable record key");
		return VP_KEYRING_FAILED;
	}
	memcpy(key, name, name_len);
	key[name_len] = '\0';
	pthread_mutex_lock(&kr->lock);
	int rc = take_locked(kr, key, value, value_len, why, why_cap);
	pthread_mutex_unlock(&kr->lock);
	return rc;
}

/* A consumer for the keys topic (assigned by the read), or NULL: one that
 * stops at the end (once) asks the broker to answer a fetch that finds
 * nothing at once; a follower keeps the long fetch wait (vp_kafka.h). */
static rd_kafka_t *reader_new(const char *brokers, const char *props, const char *topic,
			      bool once, int *partitions, char *why, size_t why_cap)
{
	rd_kafka_t *rk = once ? vp_kafka_once_reader_new(brokers, "vetpms-keys",
							 "vetpms-keys-reader", props, false, why,
							 why_cap)
			      : vp_kafka_log_reader_new(brokers, "vetpms-keys", "vetpms-keys-reader",
							props, false, why, why_cap);
	if (!rk)
		return NULL;
	if (vp_kafka_probe(rk, topic, 5000, partitions) < 0 || *partitions <= 0) {
		snprintf(why, why_cap, "keys topic %s not found (`vetctl topics create` makes it)",
			 topic);
		rd_kafka_destroy(rk);
		return NULL;
	}
	return rk;
}

typedef struct Taking {
	VpKeyring *kr;
	char *why;
	size_t why_cap;
} Taking;

/* One message of the start-up read into the keyring: 0, or its status. */
static int take_read(void *arg, const rd_kafka_message_t *m)
{
	Taking *t = arg;
	return vp_keyring_take(t->kr, m->key, m->key_len, m->payload, m->len, t->why, t->why_cap);
}

/* Reads every partition from the beginning to the end it had when the read
 * began (vp_kafka_end.h): one tenant's key records share a partition
 * (vp_keyrec_partition), and a tenant registering clients without pause keeps
 * that partition's end moving, so waiting for its end of partition event
 * starved this read (test_rebuild); status. */
static int consume_to_end(VpKeyring *kr, rd_kafka_t *rk, const char *topic, int partitions,
			  int timeout_ms, char *why, size_t why_cap)
{
	Taking t = {kr, why, why_cap};
	int rc = vp_kafka_read_to_end(rk, topic, partitions, timeout_ms, take_read, &t, why,
				      why_cap);
	if (rc == VP_KAFKA_READ_UNFINISHED)
		return VP_KEYRING_FAILED;
	return rc == 0 ? vp_keyring_wrong_master(kr, why, why_cap) : rc;
}

int vp_keyring_read(VpKeyring *kr, const char *brokers, const char *kafka_props,
		    const char *topic, int timeout_ms, char *why, size_t why_cap)
{
	int partitions = 0;
	rd_kafka_t *rk = reader_new(brokers, kafka_props, topic, true, &partitions, why, why_cap);
	if (!rk)
		return VP_KEYRING_FAILED;
	int rc = consume_to_end(kr, rk, topic, partitions, timeout_ms, why, why_cap);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

static void *follow_main(void *arg)
{
	VpKeyring *kr = arg;
	char why[256];
	while (!atomic_load(&kr->stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(kr->rk, POLL_MS);
		if (!m)
			continue;
		/* an end of partition event or a transient error: nothing to take */
		int rc = m->err ? 0
				: vp_keyring_take(kr, m->key, m->key_len, m->payload, m->len, why,
						  sizeof(why));
		rd_kafka_message_destroy(m);
		pthread_mutex_lock(&kr->lock);
		if (rc < 0 && !kr->broken) {
			kr->broken = rc;
			snprintf(kr->broken_why, sizeof(kr->broken_why), "%s", why);
		}
		pthread_cond_broadcast(&kr->arrived);
		pthread_mutex_unlock(&kr->lock);
	}
	return NULL;
}

/* Where the follower starts: each partition of the one-shot read's
 * assignment after the last record it delivered (its position, commit
 * markers passed), or from the beginning where it delivered none (a
 * partition empty when the read began: what came since is the follower's). */
static rd_kafka_topic_partition_list_t *positions_reached(rd_kafka_t *once)
{
	rd_kafka_topic_partition_list_t *assigned = NULL, *from = NULL;
	if (rd_kafka_assignment(once, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	if (rd_kafka_position(once, assigned) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* a list of its own: the assignment's elements hold references
		 * into `once`, whose rd_kafka_destroy waits for them */
		from = rd_kafka_topic_partition_list_new(assigned->cnt);
		for (int i = 0; i < assigned->cnt; i++) {
			const rd_kafka_topic_partition_t *a = &assigned->elems[i];
			rd_kafka_topic_partition_list_add(from, a->topic, a->partition)->offset =
				a->err || a->offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : a->offset;
		}
	}
	rd_kafka_topic_partition_list_destroy(assigned);
	return from;
}

/* The start-up read by a one-shot reader (a short fetch wait: the read ends
 * without waiting on the broker for empty fetches); status, and into *from
 * where the follower goes on. */
static int read_once(VpKeyring *kr, const char *brokers, const char *kafka_props,
		     const char *topic, rd_kafka_topic_partition_list_t **from, char *why,
		     size_t why_cap)
{
	int partitions = 0;
	rd_kafka_t *once = reader_new(brokers, kafka_props, topic, true, &partitions, why, why_cap);
	if (!once)
		return VP_KEYRING_FAILED;
	int rc = consume_to_end(kr, once, topic, partitions, 60000, why, why_cap);
	if (rc == VP_KEYRING_OK) {
		*from = positions_reached(once);
		if (!*from) {
			snprintf(why, why_cap, "no positions after reading %s", topic);
			rc = VP_KEYRING_FAILED;
		}
	}
	rd_kafka_consumer_close(once);
	rd_kafka_destroy(once);
	return rc;
}

int vp_keyring_follow(VpKeyring *kr, const char *brokers, const char *kafka_props,
		      const char *topic, char *why, size_t why_cap)
{
	rd_kafka_topic_partition_list_t *from = NULL;
	int rc = read_once(kr, brokers, kafka_props, topic, &from, why, why_cap);
	if (rc != VP_KEYRING_OK)
		return rc;
	/* the follower keeps librdkafka's long fetch wait: idle, it asks the
	 * broker twice a second, not every few ms */
	kr->rk = vp_kafka_log_reader_new(brokers, "vetpms-keys", "vetpms-keys-reader", kafka_props,
					 false, why, why_cap);
	rd_kafka_resp_err_t err =
		kr->rk ? vp_kafka_assign_known(kr->rk, from, 5000) : RD_KAFKA_RESP_ERR__FAIL;
	rd_kafka_topic_partition_list_destroy(from);
	if (err) {
		if (kr->rk)
			snprintf(why, why_cap, "%s: %s", topic, rd_kafka_err2str(err));
		return VP_KEYRING_FAILED;
	}
	if (pthread_create(&kr->thread, NULL, follow_main, kr) != 0) {
		snprintf(why, why_cap, "cannot start the keys follower");
		return VP_KEYRING_FAILED;
	}
	kr->following = true;
	return VP_KEYRING_OK;
}

/* The client's entry under the lock, waiting up to wait_ms for it and for
 * its tenant's key: records placed by name (before vp_keyrec_partition,
 * still in a keys topic written then) may be read a client's (one partition)
 * before its tenant's (another), though both committed in one transaction;
 * refusing then made a dead letter of the client's first event (a loaded CI
 * run of test_billing_flow). On the tenant's partition the tenant's record
 * comes first and this waits for nothing more than the client's. */
static int client_entry(VpKeyring *kr, const char *name, const char *tenant_name, int wait_ms,
			Entry **client, Entry **tenant)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	for (;;) {
		Entry *e = find(kr, name);
		if (e && e->client_key == CLIENT_ERASED)
			return VP_KEYRING_ERASED;
		bool wrapped = e && e->client_key != CLIENT_NOTHING;
		Entry *t = wrapped ? find(kr, tenant_name) : NULL;
		*client = e;
		*tenant = t;
		if (t && t->key)
			return VP_KEYRING_OK;
		if (t && t->wrong)
			return VP_KEYRING_WRONG_MASTER; /* no key will come under ours */
		if (wrapped && (!kr->following || wait_ms <= 0))
			return VP_KEYRING_OK; /* the caller says which key is missing */
		if (!kr->following || wait_ms <= 0)
			return VP_KEYRING_NONE;
		if (pthread_cond_timedwait(&kr->arrived, &kr->lock, &until) != 0)
			wait_ms = 0; /* timed out: one last look, then say what is missing */
	}
}

int vp_keyring_client_key(VpKeyring *kr, const char *tenant_id, const char *client_id,
			  int wait_ms, VpKey *key, char key_id[VP_KEY_ID_CHARS + 1], char *why,
			  size_t why_cap)
{
	char name[128], tenant_name[64];
	Entry *client = NULL, *t = NULL;
	vp_keyrec_name(tenant_id, client_id, name, sizeof(name));
	vp_keyrec_name(tenant_id, NULL, tenant_name, sizeof(tenant_name));
	pthread_mutex_lock(&kr->lock);
	/* the key is unwrapped under the lock, from the entry itself: an entry
	 * changes or goes only under the lock */
	int status = client_entry(kr, name, tenant_name, wait_ms, &client, &t);
	if (status == VP_KEYRING_OK && (!t || !t->key)) {
		snprintf(why, why_cap, "no key for tenant %s (its client %s has one)", tenant_id,
			 client_id);
		status = VP_KEYRING_FAILED;
	} else if (status == VP_KEYRING_OK) {
		if (client->client_key != CLIENT_KEY) {
			snprintf(why, why_cap, VP_NOT_A_WRAPPED_KEY);
			status = VP_KEYRING_FAILED;
		} else if (vp_key_unwrap_bytes_into(t->key, client->wrapped, name, key, why,
						    why_cap) < 0)
			status = VP_KEYRING_FAILED;
		else if (key_id)
			memcpy(key_id, client->key_id, VP_KEY_ID_CHARS + 1);
	} else if (status == VP_KEYRING_NONE)
		snprintf(why, why_cap, "no key for client %s of tenant %s in the keys topic",
			 client_id, tenant_id);
	else if (status == VP_KEYRING_ERASED)
		snprintf(why, why_cap, "client %s was erased: its key is destroyed", client_id);
	else if (status == VP_KEYRING_WRONG_MASTER)
		snprintf(why, why_cap, "%s", t->wrong);
	if (status == VP_KEYRING_NONE && kr->broken) {
		status = kr->broken;
		snprintf(why, why_cap, "%s", kr->broken_why);
	}
	pthread_mutex_unlock(&kr->lock);
	return status;
}

bool vp_keyring_erased(VpKeyring *kr, const char *tenant_id, const char *client_id)
{
	if (!tenant_id) {
		pthread_mutex_lock(&kr->lock);
		bool erased = vp_idset_has(kr->erased, client_id);
		pthread_mutex_unlock(&kr->lock);
		return erased;
	}
	char name[128];
	vp_keyrec_name(tenant_id, client_id, name, sizeof(name));
	pthread_mutex_lock(&kr->lock);
	const Entry *e = find(kr, name);
	bool erased = e && e->client_key == CLIENT_ERASED;
	pthread_mutex_unlock(&kr->lock);
	return erased;
}

int vp_keyring_index_key(VpKeyring *kr, const char *tenant_id, VpKey *out, char *why,
			 size_t why_cap)
{
	char name[64];
	int rc = -1;
	vp_keyrec_name(tenant_id, NULL, name, sizeof(name));
	pthread_mutex_lock(&kr->lock);
	Entry *t = find(kr, name);
	if (t && t->index) {
		if (out)
			vp_key_copy(out, t->index);
		rc = 0;
	} else
		snprintf(why, why_cap, "no key for tenant %s", tenant_id);
	pthread_mutex_unlock(&kr->lock);
	return rc;
}

/* The tenant's entry (borrowed, under the lock), its key made and recorded
 * when there is none: out gets its record. */
static Entry *tenant_locked(VpKeyring *kr, const char *tenant_id, int64_t now_us,
			    VpKeyRecord *out, int *n_out, char *why, size_t why_cap)
{
	char name[64];
	vp_keyrec_name(tenant_id, NULL, name, sizeof(name));
	Entry *t = find(kr, name);
	if (t && t->key)
		return t;
	VpKey *key = vp_key_random(why, why_cap);
	VpKey *index = key ? vp_key_derive_index(key, why, why_cap) : NULL;
	char *value = index ? vp_keyrec_value(kr->master, key, name, now_us, why, why_cap) : NULL;
	t = value ? find_or_add(kr, name, true) : NULL;
	if (!t) {
		if (value)
			snprintf(why, why_cap, "out of memory");
		free(value);
		vp_key_free(key);
		vp_key_free(index);
		return NULL;
	}
	t->key = key;
	t->index = index;
	t->created_us = now_us;
	vp_key_id(key, t->key_id);
	snprintf(out[*n_out].name, sizeof(out[*n_out].name), "%s", name);
	out[(*n_out)++].value = value;
	return t;
}

/* A new data key for name under the tenant's key: into data, its id into
 * key_id, its record's value returned (malloc'd) and its wrapped form taken
 * into the keyring; NULL with why. */
static char *client_key_locked(VpKeyring *kr, const Entry *tenant, const char *name,
			       int64_t now_us, VpKey *data, char key_id[VP_KEY_ID_CHARS + 1],
			       char *why, size_t why_cap)
{
	VpBuf text;
	unsigned char wrapped[VP_WRAPPED_BYTES];
	char *value = NULL, room[VP_WRAPPED_CHARS + 1];
	vp_buf_init_on(&text, room, sizeof(room), 4096);
	vp_key_fill_random(data);
	vp_key_id(data, key_id);
	/* the bytes into the keyring, their text into the record: not the text
	 * decoded again */
	vp_key_wrap_bytes(tenant->key, data, name, wrapped);
	if (vp_key_wrapped_text(wrapped, &text, why, why_cap) == 0 &&
	    set_client(kr, name, CLIENT_KEY, wrapped, key_id, why, why_cap) == VP_KEYRING_OK &&
	    !(value = vp_keyrec_text(name, tenant->key_id, key_id, vp_buf_str(&text), now_us))) {
		snprintf(why, why_cap, "out of memory");
		remove_entry(kr, name);
	}
	vp_buf_free(&text);
	if (!value)
		vp_key_wipe(data);
	return value;
}

int vp_keyring_new_client(VpKeyring *kr, const char *tenant_id, const char *client_id,
			  int64_t now_us, VpKey *data, char key_id[VP_KEY_ID_CHARS + 1],
			  VpKeyRecord out[2], int *n_out, char *why, size_t why_cap)
{
	char name[128];
	*n_out = 0;
	vp_keyrec_name(tenant_id, client_id, name, sizeof(name));
	pthread_mutex_lock(&kr->lock);
	const Entry *tenant = tenant_locked(kr, tenant_id, now_us, out, n_out, why, why_cap);
	char *value = tenant ? client_key_locked(kr, tenant, name, now_us, data, key_id, why,
						 why_cap)
			     : NULL;
	if (value) {
		snprintf(out[*n_out].name, sizeof(out[*n_out].name), "%s", name);
		out[(*n_out)++].value = value;
	} else if (*n_out > 0) /* a tenant key made here and never to be produced */
		remove_entry(kr, out[0].name);
	pthread_mutex_unlock(&kr->lock);
	if (!value) {
		vp_key_records_release(out, *n_out);
		*n_out = 0;
	}
	return value ? 0 : -1;
}

void vp_key_records_release(VpKeyRecord *records, int n)
{
	for (int i = 0; i < n; i++) {
		free(records[i].value);
		records[i].value = NULL;
	}
}

char *vp_keyrec_erased_value(int64_t now_us)
{
	char at[40], *text = NULL;
	vp_time_format_rfc3339_us(now_us, at, sizeof(at));
	cJSON *v = cJSON_CreateObject();
	if (v && cJSON_AddStringToObject(v, "kind", VP_KEYREC_ERASED) &&
	    cJSON_AddStringToObject(v, "erased_at", at))
		text = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return text;
}

size_t vp_keyring_tenants(VpKeyring *kr)
{
	pthread_mutex_lock(&kr->lock);
	size_t n = kr->n_tenants;
	pthread_mutex_unlock(&kr->lock);
	return n;
}

size_t vp_keyring_clients(VpKeyring *kr)
{
	pthread_mutex_lock(&kr->lock);
	size_t n = kr->n_clients;
	pthread_mutex_unlock(&kr->lock);
	return n;
}

int vp_master_keys_load(const VpMasterFiles *files, VpMasterKeys *out, char *why,
			size_t why_cap)
{
	*out = (VpMasterKeys){NULL, NULL};
	out->current = vp_key_master_load(files->current, getenv("VETPMS_MASTER_KEY"), why,
					  why_cap);
	if (!out->current || vp_key_master_previous_load(files->previous,
							 getenv("VETPMS_MASTER_KEY_PREVIOUS"),
							 out->current, &out->previous, why,
							 why_cap) < 0) {
		vp_master_keys_free(out);
		return -1;
	}
	return 0;
}

void vp_master_keys_free(VpMasterKeys *keys)
{
	keys->current = vp_key_free(keys->current);
	keys->previous = vp_key_free(keys->previous);
}

VpKeyring *vp_keyring_open(const char *brokers, const char *kafka_props, const char *topic,
			   const VpMasterFiles *files, bool follow, int timeout_ms,
			   const volatile int *stop, VpMasterKeys *keys_out, int *status, char *why,
			   size_t why_cap)
{
	VpMasterKeys keys = {NULL, NULL};
	*keys_out = keys;
	*status = VP_KEYRING_FAILED;
	if (vp_crypto_init(why, why_cap) < 0 || vp_master_keys_load(files, &keys, why, why_cap) < 0)
		return NULL;
	int64_t deadline = vp_time_mono_us() + (int64_t)timeout_ms * 1000;
	for (;;) {
		VpKeyring *kr = vp_keyring_new(keys.current, why, why_cap);
		if (!kr)
			break;
		vp_keyring_accept_previous(kr, keys.previous);
		*status = follow ? vp_keyring_follow(kr, brokers, kafka_props, topic, why, why_cap)
				 : vp_keyring_read(kr, brokers, kafka_props, topic, 30000, why,
						   why_cap);
		if (*status == VP_KEYRING_OK) {
			*keys_out = keys;
			return kr;
		}
		vp_keyring_free(kr);
		if (*status != VP_KEYRING_FAILED || (stop && *stop) || vp_time_mono_us() > deadline)
			break;
		sleep(1);
	}
	vp_master_keys_free(&keys);
	return NULL;
}

void vp_keyring_forget(VpKeyring *kr, const VpKeyRecord *records, int n)
{
	pthread_mutex_lock(&kr->lock);
	for (int i = 0; i < n; i++)
		if (!records[i].erasure)
			remove_entry(kr, records[i].name);
	pthread_mutex_unlock(&kr->lock);
}

char *vp_keyrec_rewrap(const VpKey *from, const VpKey *to, const char *name, const char *value,
		       int64_t now_us, char *why, size_t why_cap)
{
	char from_id[VP_KEY_ID_CHARS + 1], inner[256];
	vp_key_id(from, from_id);
	cJSON *v = value ? cJSON_Parse(value) : NULL;
	const char *kind = vp_json_str(v, "kind"), *kek = vp_json_str(v, "kek_id");
	VpKey *key = NULL;
	char *out = NULL;
	if (!kind || strcmp(kind, VP_KEYREC_TENANT) != 0 ||
	    strncmp(name, VP_KEYREC_TENANT ":", sizeof(VP_KEYREC_TENANT)) != 0)
		snprintf(why, why_cap, "%s: not a tenant key record", name);
	else if (!kek || strcmp(kek, from_id) != 0)
		snprintf(why, why_cap, "%s: wrapped under key %s, not under the key given (%s)", name,
			 kek ? kek : "(none)", from_id);
	else if (!(key = vp_key_unwrap(from, vp_json_str(v, "wrapped"), name, inner,
				       sizeof(inner))))
		snprintf(why, why_cap, "%s: %s", name, inner);
	else
		out = vp_keyrec_value(to, key, name, now_us, why, why_cap);
	vp_key_free(key);
	cJSON_Delete(v);
	return out;
}
