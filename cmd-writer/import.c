/* Tenant import (POST /v1/ops/tenants/{tenant_id}/import, docs/operations.md):
 * a batch of a `vetctl tenant export` file — {"import": the file's BLAKE2b
 * hex, "from": the index of the batch's first event in the file, "events":
 * the lines as strings} — appended as it was, in one transaction. Each line
 * must pass the catalog exactly as the projector reads it, belong to the
 * path's tenant, and the first of the file must provision it; a tenant that
 * exists and is not this file's import in progress is refused. The events
 * enter the model as the rebuild takes a record (wr_state_apply, no
 * idempotency key: a key of the old deployment was not sent here), and the
 * records carry headers `import` and `import-index` so that a rebuild knows
 * how far an import got: a batch is resumable at `next`, and one that
 * already landed (its reply was lost) is answered again, not appended twice.
 *
 * A batch of a file with keys may also carry key records of the tenant
 * ("keys": [{"name", "value"}]): vetctl sends each with the batch that holds
 * what needs it (the tenant's with the batch from 0, each client's with its
 * client's first event, vetctl/import_plan.c). The batch with the tenant's
 * record also carries the transport key ("transport_key", base64url) it is
 * wrapped under: the tenant key is rewrapped under this writer's master key.
 * The records commit in the batch's transaction (with its first event), so
 * the events never land before their keys, and a batch lands once, so the
 * keys do too. A wrong transport key, a record of another tenant, or a
 * client key of a tenant whose key is neither in the batch nor already in
 * the model's keyring is refused (400) before anything is appended (the
 * last after the position: a batch sent ahead of the one bringing the
 * tenant's key is IMPORT_POSITION, which vetctl resends, not a refusal for
 * good). The key material is never logged nor echoed in an error. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "vp_catalog.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"
#include "vp_uuid.h"
#include "vp_json.h"
#include "writer.h"

static bool digest_ok(const char *digest)
{
	if (!digest || strlen(digest) != 64)
		return false;
	for (const char *c = digest; *c; c++)
		if (!isxdigit((unsigned char)*c) || isupper((unsigned char)*c))
			return false;
	return true;
}

/* One line: the catalog's check of the text as the projector reads it, then
 * the tenant's and the first event's rules. */
static int check_line(WrImportBatch *b, size_t i, const char *tenant_id, VpError *err)
{
	char why[256], field[32];
	const char *line = b->line[i];
	snprintf(field, sizeof(field), "events[%zu]", i);
	if (vp_catalog_check_encoded(line, strlen(line), why, sizeof(why)) < 0 ||
	    vp_event_decode(line, strlen(line), &b->ev[i], why, sizeof(why)) < 0) {
		vp_error_add_detail(err, field, "%s", why);
		return -1;
	}
	b->n_decoded = i + 1;
	if (strcmp(b->ev[i].tenant_id, tenant_id) != 0)
		vp_error_add_detail(err, field, "is an event of tenant %s, not %s",
				    b->ev[i].tenant_id, tenant_id);
	else if (b->from + (int64_t)i == 0 && strcmp(b->ev[i].type, VP_EV_TENANT_PROVISIONED) != 0)
		vp_error_add_detail(err, field, "the first event of an import must be %s",
				    VP_EV_TENANT_PROVISIONED);
	else
		return 0;
	return -1;
}

/* Whether name is the tenant's record ("tenant:<t>", *tenant set) or a
 * client's of the tenant ("client:<t>:<uuid>"). */
static bool key_name_ok(const char *name, const char *tenant_id, bool *tenant)
{
	char own[64];
	VpUuid u;
	snprintf(own, sizeof(own), VP_KEYREC_TENANT ":%s", tenant_id);
	*tenant = !strcmp(name, own);
	if (*tenant)
		return true;
	size_t n = (size_t)snprintf(own, sizeof(own), VP_KEYREC_CLIENT ":%s:", tenant_id);
	return !strncmp(name, own, n) && vp_uuid_parse(name + n, strlen(name + n), &u) == 0 &&
	       strlen(name + n) == 36;
}

/* One key record into b->keys[b->n_keys]: its kind must fit its name; the
 * tenant's is rewrapped from the transport key to the master key. */
static int take_key(WrImportBatch *b, const cJSON *k, const VpKey *transport, bool *has_tenant,
		    bool *has_client, VpError *err)
{
	const char *name = vp_json_str(k, "name"), *value = vp_json_str(k, "value");
	cJSON *v = value ? cJSON_Parse(value) : NULL;
	const char *kind = vp_json_str(v, "kind");
	char field[32], why[256];
	bool tenant = false;
	VpKeyRecord *r = &b->keys[b->n_keys];
	snprintf(field, sizeof(field), "keys[%d]", b->n_keys);
	if (!name || strlen(name) >= sizeof(r->name) || !key_name_ok(name, b->tenant_id, &tenant))
		vp_error_add_detail(err, field, "name must be tenant:%s or client:%s:<uuid>",
				    b->tenant_id, b->tenant_id);
	else if (tenant && !transport)
		vp_error_add_detail(err, "transport_key", "required with the tenant's key record");
	else if (!kind || strcmp(kind, tenant ? VP_KEYREC_TENANT : VP_KEYREC_CLIENT) != 0) {
		if (tenant || !kind || strcmp(kind, VP_KEYREC_ERASED) != 0)
			vp_error_add_detail(err, field, "value must be a key record of kind %s%s",
					    tenant ? "tenant" : "client",
					    tenant ? "" : " or erased");
	}
	if (err->n_details > 0) {
		cJSON_Delete(v);
		return -1;
	}
	*has_client |= !tenant && !strcmp(kind, VP_KEYREC_CLIENT);
	*has_tenant |= tenant;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->value = tenant ? vp_keyrec_rewrap(transport, wr_keys_master(), name, value,
					     vp_time_now_us(), why, sizeof(why))
			  : strdup(value);
	r->erasure = !strcmp(kind, VP_KEYREC_ERASED);
	cJSON_Delete(v);
	if (!r->value) {
		vp_error_add_detail(err, "transport_key", "%s", tenant ? why : "out of memory");
		return -1;
	}
	b->n_keys++;
	return 0;
}

/* "keys", in a batch of at least one event (they ride with its first), and
 * "transport_key" (with the tenant's record; checked whenever given). */
static int parse_keys(const cJSON *body, WrImportBatch *b, VpError *err)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(body, "keys"), *k;
	const char *text = vp_json_str(body, "transport_key");
	char why[128];
	bool has_tenant = false, has_client = false;
	if (!keys && !text)
		return 0;
	if (!cJSON_IsArray(keys) || b->n == 0 || !wr_keys_master()) {
		vp_error_add_detail(err, "keys", "an array, in a batch of at least one event, to "
						 "a writer that seals");
		return -1;
	}
	VpKey *transport = text ? vp_key_from_text(text, why, sizeof(why)) : NULL;
	/* the key's text goes no further than the key: wiped in the parsed
	 * body (the raw body is wiped by the route, vp_http_wipe_body) */
	if (text)
		sodium_memzero((char *)text, strlen(text));
	if (text && !transport) {
		vp_error_add_detail(err, "transport_key", "must be a key in base64url (%s)", why);
		return -1;
	}
	b->keys = calloc((size_t)cJSON_GetArraySize(keys) + 1, sizeof(*b->keys));
	int rc = b->keys ? 0 : -1;
	cJSON_ArrayForEach(k, keys) {
		if (rc < 0 || (rc = take_key(b, k, transport, &has_tenant, &has_client, err)) < 0)
			break;
	}
	vp_key_free(transport);
	/* a client key needs its tenant's: here, or already taken (the keyring
	 * is checked against the model, wr_import_keys_ok) */
	b->needs_tenant_key = rc == 0 && has_client && !has_tenant;
	return rc;
}

int wr_import_parse(const cJSON *body, const char *tenant_id, WrImportBatch *b, VpError *err)
{
	long long from = -1;
	const char *digest = vp_json_str(body, "import");
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(body, "events");
	memset(b, 0, sizeof(*b));
	snprintf(b->tenant_id, sizeof(b->tenant_id), "%s", tenant_id);
	if (!digest_ok(digest))
		vp_error_add_detail(err, "import", "must be the file's BLAKE2b: 64 lower-case hex");
	if (!vp_json_int(body, "from", &from) || from < 0)
		vp_error_add_detail(err, "from", "must be an integer >= 0");
	int n = cJSON_IsArray(events) ? cJSON_GetArraySize(events) : -1;
	if (n < 0 || n > WR_IMPORT_MAX_EVENTS)
		vp_error_add_detail(err, "events", "must be an array of at most %d strings",
				    WR_IMPORT_MAX_EVENTS);
	if (vp_error_finish_validation(err))
		return -1;
	snprintf(b->digest, sizeof(b->digest), "%s", digest);
	b->from = from;
	b->n = (size_t)n;
	b->line = calloc((size_t)n + 1, sizeof(*b->line));
	b->ev = calloc((size_t)n + 1, sizeof(*b->ev));
	if (!b->line || !b->ev)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	size_t i = 0;
	for (const cJSON *e = events ? events->child : NULL; e; e = e->next, i++) {
		b->line[i] = cJSON_IsString(e) ? e->valuestring : NULL;
		if (!b->line[i]) {
			vp_error_add_detail(err, "events", "every event is a line of the file, "
							   "as a string");
			break;
		}
		if (check_line(b, i, tenant_id, err) < 0)
			break;
	}
	if (!vp_error_finish_validation(err) && parse_keys(body, b, err) < 0 &&
	    err->n_details == 0)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	return vp_error_finish_validation(err) ? -1 : 0;
}

int wr_import_position(const WrState *s, const WrImportBatch *b, int64_t *next, VpError *err)
{
	const WrTenant *t = wr_state_tenant(s, b->tenant_id);
	*next = t ? t->import_next : 0;
	if (t && strcmp(t->import_digest, b->digest) != 0)
		return vp_error_set(err, 409, WR_ERR_TENANT_EXISTS,
				    "tenant %s exists here%s; an import only creates a tenant",
				    b->tenant_id, *t->import_digest ? " (imported from another file)"
								    : "");
	if (b->from == *next)
		return b->n == 0 ? 1 : 0;
	if (b->from < *next && b->from + (int64_t)b->n <= *next)
		return 1; /* landed before: a retry whose answer was lost */
	vp_error_set(err, 409, WR_ERR_IMPORT_POSITION,
		     "the import of this file is at event %lld; send from there", (long long)*next);
	vp_error_add_detail(err, "from", "must be %lld", (long long)*next);
	return -1;
}

int wr_import_keys_ok(WrState *s, const WrImportBatch *b, VpError *err)
{
	char why[128];
	if (!b->needs_tenant_key)
		return 0;
	/* whether the model holds the tenant's key: asked, not copied out */
	if (s->keys && vp_keyring_index_key(s->keys, b->tenant_id, NULL, why, sizeof(why)) == 0)
		return 0;
	vp_error_add_detail(err, "keys", "client keys of a tenant whose key is neither in this "
					 "batch nor taken before");
	vp_error_finish_validation(err);
	return -1;
}

int wr_import_apply(WrState *s, WrImportBatch *b, size_t *applied, VpError *err)
{
	char why[256];
	for (*applied = 0; *applied < b->n; (*applied)++) {
		if (wr_state_apply(s, &b->ev[*applied], NULL, why, sizeof(why)) < 0) {
			vp_error_set(err, 409, WR_ERR_IMPORT_REFUSED,
				     "events[%zu] contradicts the history before it: %s; nothing of "
				     "this batch was appended", *applied, why);
			return -1;
		}
	}
	WrTenant *t = wr_state_tenant(s, b->tenant_id);
	if (t)
		wr_import_note(t, b->digest, b->from + (int64_t)b->n);
	return 0;
}

int wr_import_take_keys(WrState *s, const WrAppend *first, VpError *err)
{
	char why[256];
	for (int i = 0; first && i < first->n_import_keys; i++) {
		const VpKeyRecord *k = &first->import_keys[i];
		if (vp_keyring_take(s->keys, k->name, strlen(k->name), k->value, strlen(k->value),
				    why, sizeof(why)) != VP_KEYRING_OK)
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "key record %s: %s", k->name,
					    why);
	}
	return 0;
}

void wr_import_note(WrTenant *t, const char *digest, int64_t next)
{
	snprintf(t->import_digest, sizeof(t->import_digest), "%s", digest);
	t->import_next = next;
}

void wr_import_release(WrImportBatch *b)
{
	for (size_t i = 0; b->ev && i < b->n_decoded; i++)
		vp_event_release(&b->ev[i]);
	free(b->ev);
	free(b->line);
	vp_key_records_release(b->keys, b->n_keys);
	free(b->keys);
	memset(b, 0, sizeof(*b));
}
