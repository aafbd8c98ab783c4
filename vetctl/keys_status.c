/* How many tenant key records each master key wraps (keys_status.h).
 *
 * Every record still in the topic is counted, superseded ones included: a
 * tenant record under the old master key stays in the topic (on disk, and
 * read by any consumer from the beginning) until compaction removes it, and
 * anyone holding the old key opens it until then. So the old key may be
 * destroyed when its "records" is 0, not when its "newest" is (that is the
 * case right after rotate-master). The counts are of committed records
 * (read_committed): an aborted rotation's records are never read. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "keys_status.h"
#include "vp_json.h"
#include "vp_keyrec_newer.h"
#include "vp_sealed.h"

static bool is_tenant_name(const char *name, size_t len)
{
	size_t prefix = strlen(VP_KEYREC_TENANT ":");
	return len > prefix && !memcmp(name, VP_KEYREC_TENANT ":", prefix);
}

/* The count of id, added (0, 0) when new; NULL out of memory. */
static VcKekCount *count_of(VcKeysStatus *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->kek[i].id, id))
			return &s->kek[i];
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		VcKekCount *kek = realloc(s->kek, cap * sizeof(*kek));
		if (!kek)
			return NULL;
		s->kek = kek;
		s->cap = cap;
	}
	char *copy = strdup(id);
	if (!copy)
		return NULL;
	s->kek[s->n] = (VcKekCount){copy, 0, 0};
	return &s->kek[s->n++];
}

/* The kek_id of a record's value (malloc'd), NULL when it names none; *oom
 * when out of memory. */
static char *kek_id_of(const char *value, size_t value_len, bool *oom)
{
	cJSON *v = cJSON_ParseWithLength(value, value_len);
	const char *kek = vp_json_str(v, "kek_id");
	char *id = kek ? strdup(kek) : NULL;
	*oom = kek && !id;
	cJSON_Delete(v);
	return id;
}

/* A tenant record counted under the master key it names: in its records, or
 * (newest) in its newest; one naming none is unnamed. 0, or -1 out of
 * memory. */
static int count_record(VcKeysStatus *s, const char *value, size_t value_len, bool newest)
{
	bool oom;
	char *id = kek_id_of(value, value_len, &oom);
	VcKekCount *c = id ? count_of(s, id) : NULL;
	free(id);
	if (oom || (id && !c))
		return -1;
	if (c && newest)
		c->newest++;
	else if (c)
		c->records++;
	else if (!newest)
		s->unnamed++;
	return 0;
}

/* The master record, kept when it supersedes the one held (the newest by
 * created_at, vp_keyrec_newer.h; a tombstone drops it). 0, or -1 out of
 * memory. */
static int take_master(VcKeysStatus *s, const char *value, size_t value_len)
{
	VpKeyrecRank held = vp_keyrec_rank(s->master, s->master ? strlen(s->master) : 0);
	VpKeyrecRank next = vp_keyrec_rank(value, value_len);
	if (!vp_keyrec_supersedes(&held, &next))
		return 0;
	free(s->master);
	s->master = value ? strndup(value, value_len) : NULL;
	return value && !s->master ? -1 : 0;
}

int vc_status_take(VcKeysStatus *s, const char *name, size_t name_len, const char *value,
		   size_t value_len)
{
	if (vp_keyrec_is_master(name, name_len))
		return take_master(s, value, value_len);
	if (!is_tenant_name(name, name_len))
		return 0;
	if (value && count_record(s, value, value_len, false) < 0)
		return -1;
	return vc_keys_remember(&s->newest, name, name_len, value, value_len);
}

/* Each tenant's record that counts, under its master key; the tenants. */
static int count_newest(VcKeysStatus *s, size_t *tenants)
{
	*tenants = 0;
	for (size_t i = 0; i < s->newest.n; i++) {
		const char *value = s->newest.value[i];
		if (!value)
			continue; /* a tombstone: the tenant has no key record */
		(*tenants)++;
		if (count_record(s, value, strlen(value), true) < 0)
			return -1;
	}
	return 0;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const VcKekCount *)a)->id, ((const VcKekCount *)b)->id);
}

static cJSON *held_json(const char *current_id, const char *previous_id)
{
	cJSON *held = cJSON_CreateObject();
	if (held) {
		cJSON_AddItemToObject(held, "current", current_id ? cJSON_CreateString(current_id)
								   : cJSON_CreateNull());
		cJSON_AddItemToObject(held, "previous", previous_id ? cJSON_CreateString(previous_id)
								     : cJSON_CreateNull());
	}
	return held;
}

static cJSON *kek_json(const VcKekCount *c, const char *current_id, const char *previous_id)
{
	cJSON *o = cJSON_CreateObject();
	const char *held = current_id && !strcmp(c->id, current_id)	  ? "current"
			   : previous_id && !strcmp(c->id, previous_id) ? "previous"
									: NULL;
	if (o) {
		cJSON_AddNumberToObject(o, "records", (double)c->records);
		cJSON_AddNumberToObject(o, "newest", (double)c->newest);
		cJSON_AddItemToObject(o, "held", held ? cJSON_CreateString(held) : cJSON_CreateNull());
	}
	return o;
}

char *vc_status_json(VcKeysStatus *s, const char *topic, const char *current_id,
		     const char *previous_id)
{
	size_t tenants = 0, records = s->unnamed;
	for (size_t i = 0; i < s->n; i++)
		s->kek[i].newest = 0; /* counted again: a second call says the same */
	if ((current_id && !count_of(s, current_id)) || (previous_id && !count_of(s, previous_id)) ||
	    count_newest(s, &tenants) < 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		records += s->kek[i].records;
	if (s->n > 1) /* none: s->kek may be NULL, which qsort must not get */
		qsort(s->kek, s->n, sizeof(*s->kek), by_id);
	char *out = NULL;
	cJSON *root = cJSON_CreateObject(), *keks = NULL;
	if (root && cJSON_AddStringToObject(root, "topic", topic) &&
	    cJSON_AddNumberToObject(root, "tenants", (double)tenants) &&
	    cJSON_AddNumberToObject(root, "records", (double)records) &&
	    cJSON_AddNumberToObject(root, "unnamed", (double)s->unnamed) &&
	    cJSON_AddItemToObject(root, "held", held_json(current_id, previous_id)) &&
	    (keks = cJSON_AddObjectToObject(root, "master_keys"))) {
		bool ok = true;
		for (size_t i = 0; ok && i < s->n; i++)
			ok = cJSON_AddItemToObject(keks, s->kek[i].id,
						   kek_json(&s->kek[i], current_id, previous_id));
		bool oom = false;
		char *master = s->master ? kek_id_of(s->master, strlen(s->master), &oom) : NULL;
		ok = ok && !oom &&
		     cJSON_AddItemToObject(root, "master", master ? cJSON_CreateString(master)
								  : cJSON_CreateNull());
		free(master);
		out = ok ? cJSON_PrintUnformatted(root) : NULL;
	}
	cJSON_Delete(root);
	return out;
}

void vc_status_release(VcKeysStatus *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->kek[i].id);
	free(s->kek);
	vc_keys_release(&s->newest);
	free(s->master);
	memset(s, 0, sizeof(*s));
}
