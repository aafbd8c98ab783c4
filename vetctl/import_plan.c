/* The assignment of a tenant export file's key records to the import's
 * batches (import_plan.h). A real clinic has tens of thousands of clients
 * and millions of events: the client of each event line is looked up by
 * bsearch in the records sorted by client id, and a batch finds its records
 * by bsearch in the records sorted by the index they are due at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "import_plan.h"
#include "vp_json.h"
#include "vp_keyring.h"
#include "vp_sealed.h"

static const VcKeyLines *sort_keys; /* qsort has no argument: vetctl is one thread */
static size_t sort_prefix;
static const long long *sort_due;

static const char *client_of(const VcKeyLines *k, size_t i, size_t prefix)
{
	return k->name[i] + prefix;
}

static int by_client_cmp(const void *a, const void *b)
{
	return strcmp(client_of(sort_keys, *(const size_t *)a, sort_prefix),
		      client_of(sort_keys, *(const size_t *)b, sort_prefix));
}

static int by_due_cmp(const void *a, const void *b)
{
	long long x = sort_due[*(const size_t *)a], y = sort_due[*(const size_t *)b];
	if (x != y)
		return x < y ? -1 : 1;
	/* file order among records due at the same index: the tenant's first */
	return *(const size_t *)a < *(const size_t *)b ? -1 : *(const size_t *)a > *(const size_t *)b;
}

size_t vc_plan_record_bytes(const char *name, const char *value)
{
	return sizeof("{\"name\":,\"value\":},") - 1 + vp_json_string_len(name, strlen(name)) +
	       vp_json_string_len(value, strlen(value));
}

static int append(VcKeyLines *k, const char *name, const char *value)
{
	return vc_keys_append(k, name, strlen(name), value, strlen(value));
}

int vc_plan_parse_line(VcKeyLines *k, const char *line, char *why, size_t why_cap)
{
	static const char prefix[] = "{\"keyrec\":";
	if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	cJSON *root = cJSON_Parse(line);
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(root, "keyrec");
	const char *name = vp_json_str(rec, "name"), *value = vp_json_str(rec, "value");
	cJSON *v = value ? cJSON_Parse(value) : NULL;
	const char *kind = vp_json_str(v, "kind");
	int rc = -1;
	if (!name || !kind || strlen(name) >= sizeof(((VpKeyRecord *)0)->name))
		snprintf(why, why_cap, "not a key record line");
	else if (append(k, name, value) < 0)
		snprintf(why, why_cap, "out of memory");
	else
		rc = 1;
	cJSON_Delete(v);
	cJSON_Delete(root);
	return rc;
}

/* A name twice in the file (by_client sorted; the tenant's counted): -1
 * with why. */
static int unique(const VcPlan *p, const char *tenant, char *why, size_t why_cap)
{
	char own[64];
	size_t tenants = 0;
	snprintf(own, sizeof(own), VP_KEYREC_TENANT ":%s", tenant);
	for (size_t i = 0; i < p->keys->n; i++)
		tenants += !strcmp(p->keys->name[i], own);
	for (size_t j = 1; j < p->n_clients && tenants < 2; j++)
		if (!strcmp(p->keys->name[p->by_client[j - 1]], p->keys->name[p->by_client[j]])) {
			snprintf(why, why_cap, "key record %s twice in the file",
				 p->keys->name[p->by_client[j]]);
			return -1;
		}
	if (tenants > 1)
		snprintf(why, why_cap, "key record %s twice in the file", own);
	return tenants > 1 ? -1 : 0;
}

int vc_plan_init(VcPlan *p, const VcKeyLines *keys, const char *tenant, char *why,
		 size_t why_cap)
{
	char prefix[64];
	memset(p, 0, sizeof(*p));
	p->keys = keys;
	size_t n = keys->n ? keys->n : 1;
	p->by_client = calloc(n, sizeof(*p->by_client));
	p->due = calloc(n, sizeof(*p->due));
	p->order = calloc(n, sizeof(*p->order));
	p->bytes = calloc(n, sizeof(*p->bytes));
	if (!p->by_client || !p->due || !p->order || !p->bytes) {
		vc_plan_release(p);
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	size_t len = (size_t)snprintf(prefix, sizeof(prefix), VP_KEYREC_CLIENT ":%s:", tenant);
	for (size_t i = 0; i < keys->n; i++) {
		p->due[i] = -1;
		p->order[i] = i;
		p->bytes[i] = vc_plan_record_bytes(keys->name[i], keys->value[i]);
		if (!strncmp(keys->name[i], prefix, len))
			p->by_client[p->n_clients++] = i;
	}
	p->prefix = len;
	sort_keys = keys;
	sort_prefix = len;
	qsort(p->by_client, p->n_clients, sizeof(*p->by_client), by_client_cmp);
	if (unique(p, tenant, why, why_cap) < 0) {
		vc_plan_release(p);
		return -1;
	}
	return 0;
}

size_t vc_plan_event(VcPlan *p, const char *client_id, long long index)
{
	size_t lo = 0, hi = p->n_clients;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, i = p->by_client[mid];
		int c = strcmp(client_of(p->keys, i, p->prefix), client_id);
		if (c == 0) {
			if (p->due[i] >= 0)
				return 0;
			p->due[i] = index;
			return p->bytes[i];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int vc_plan_finish(VcPlan *p, size_t *at_zero)
{
	*at_zero = 0;
	for (size_t i = 0; i < p->keys->n; i++) {
		if (p->due[i] < 0) /* the tenant's, a client without an event */
			p->due[i] = 0;
		if (p->due[i] == 0)
			*at_zero += p->bytes[i];
	}
	sort_due = p->due;
	qsort(p->order, p->keys->n, sizeof(*p->order), by_due_cmp);
	return 0;
}

/* The first position in order whose record is due at or after index. */
static size_t lower_bound(const VcPlan *p, long long index)
{
	size_t lo = 0, hi = p->keys->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->due[p->order[mid]] < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void vc_plan_range(const VcPlan *p, long long from, long long end, size_t *lo, size_t *hi)
{
	*lo = lower_bound(p, from);
	*hi = lower_bound(p, end);
}

size_t vc_plan_due_at(const VcPlan *p, long long index, size_t *pos)
{
	size_t bytes = 0;
	for (; *pos < p->keys->n && p->due[p->order[*pos]] == index; (*pos)++)
		bytes += p->bytes[p->order[*pos]];
	return bytes;
}

size_t vc_plan_bytes_at(const VcPlan *p, long long index)
{
	size_t pos = lower_bound(p, index);
	return vc_plan_due_at(p, index, &pos);
}

void vc_plan_release(VcPlan *p)
{
	free(p->by_client);
	free(p->due);
	free(p->order);
	free(p->bytes);
	memset(p, 0, sizeof(*p));
}
