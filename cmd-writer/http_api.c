/* cmd-writer's request path: route → authenticate (JWT) → authorise (role) →
 * parse and validate every field → tenant ownership (421) → idempotency →
 * decide against the write model → apply the command's events to the model and
 * hand them to the appender as one chain (one transaction) → answer once it
 * is committed. Everything here
 * runs on the loop thread, which is the single writer of the model: two
 * commands for one tenant are decided one after the other, never at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sodium.h>

#include "decide.h"
#include "vp_auth.h"
#include "vp_catalog.h"
#include "vp_event.h"
#include "vp_json.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_sealed.h"
#include "vp_time.h"
#include "vp_uuid.h"
#include "writer.h"

#define MAX_KEY_LEN 255
#define IDEM_SWEEP_MAX_S 60

/* A request waiting for its commit, owned by its command's events: the last
 * one to come back answers and frees it. The evhttp request dies with its
 * connection: the close callback marks it orphaned so nobody answers into
 * freed memory. */
typedef struct WrPending {
	VpHttpRequest http;
	WrApi *api;
	bool orphaned;
	bool creates;
	char location[128];
	char aggregate_id[37];
	char tenant_id[37];
	char command_id[MAX_KEY_LEN + 1];
	int64_t version;
	uint8_t types[WR_MAX_COMMAND_EVENTS]; /* wr_event_type_index, in order */
	int n_types;
	int events_left; /* not yet back from the appender */
	bool failed;     /* one failed: all did (one transaction) */
	bool unknown;    /* its transaction's outcome could not be learnt */
	char position[32]; /* the last event's */
	bool import;         /* an import batch: answered {"next": import_next} */
	int64_t import_next;
	LIST_ENTRY(WrPending) link;
} WrPending;

struct WrApi {
	const WrConfig *cfg;
	WrAppender *appender;
	WrState *state; /* NULL until the first rebuild */
	uint64_t generation;
	VpJwtVerifier verifier;
	LIST_HEAD(, WrPending) pending;
	struct event *idem_sweep; /* forgets expired keys of tenants that send nothing */
	VpMetric *m_idem_keys;
	VpBuf encoded; /* reused for every event: one allocation per event, its copy */
	VpBuf scratch; /* the canonical body to hash, an answer's body */
};

/* The command for r's path and method; *path_known when the path exists with
 * another method (405). */
static const WrCommand *find_command(VpHttpRequest *r, bool *path_known, unsigned *allowed)
{
	*path_known = false;
	*allowed = 0;
	const WrCommand *found = NULL;
	for (size_t t = 0; t < wr_n_command_tables; t++) {
		for (size_t i = 0; i < *wr_command_tables[t].n; i++) {
			const WrCommand *c = &wr_command_tables[t].table[i];
			if (!vp_http_route_match(r, c->pattern))
				continue;
			*path_known = true;
			*allowed |= c->method;
			if (c->method == r->method && !found)
				found = c;
		}
	}
	if (found)
		vp_http_route_match(r, found->pattern); /* its captures, not the last tried */
	return found;
}

static int authenticate(WrApi *api, VpHttpRequest *r, VpClaims *claims, VpError *err)
{
	return vp_auth_bearer(&api->verifier, vp_http_header(r, "Authorization"),
			      vp_time_now_us() / 1000000, claims, err);
}

/* If-Match: "N" (or N, or W/"N"); -1 when absent. */
static int parse_if_match(VpHttpRequest *r, int64_t *out, VpError *err)
{
	const char *h = vp_http_header(r, "If-Match");
	*out = -1;
	if (!h)
		return 0;
	if (!strncmp(h, "W/", 2))
		h += 2;
	size_t len = strlen(h);
	if (len >= 2 && h[0] == '"' && h[len - 1] == '"') {
		h++;
		len -= 2;
	}
	int64_t v = 0;
	if (len == 0 || len > 12)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (h[i] < '0' || h[i] > '9')
			goto bad;
		v = v * 10 + (h[i] - '0');
	}
	*out = v;
	return 0;
bad:
	vp_error_add_detail(err, "If-Match", "must be a version such as \"3\"");
	return -1;
}

/* The request's hash: over method, path and the canonical body, so the same
 * command sent twice with one key hashes the same and any other body does
 * not. The body is printed as cJSON_PrintUnformatted prints it
 * (vp_json_write). It is a MAC under a key derived from the master key
 * (key NULL: a plain SHA-256, what the writer wrote before stop 22, and
 * what it still makes without a master key loaded, as in unit tests): it
 * goes into the log's command-hash header, and a plain hash of a
 * RegisterClient's body let anyone holding the log test a guess of a
 * client's details, the client's erasure notwithstanding. */
static void command_hash(WrApi *api, const VpHttpRequest *r, const cJSON *body,
			 const VpKey *key, char out[65])
{
	char method[8];
	VpBuf *canonical = &api->scratch;
	vp_buf_reset(canonical);
	vp_json_write(canonical, body);
	snprintf(method, sizeof(method), "%d ", (int)r->method);
	const void *parts[] = {method, r->path, canonical->data};
	const size_t lens[] = {strlen(method), strlen(r->path) + 1,
			       canonical->oom ? 0 : canonical->len};
	if (key) {
		vp_key_mac_hex(key, parts, lens, 3, out);
		return;
	}
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	for (int i = 0; i < 3; i++)
		crypto_hash_sha256_update(&st, parts[i], lens[i]);
	crypto_hash_sha256_final(&st, digest);
	sodium_bin2hex(out, 65, digest, sizeof(digest));
}

static void request_hash(WrApi *api, const VpHttpRequest *r, const cJSON *body, char out[65])
{
	command_hash(api, r, body, wr_keys_command(false), out);
}

/* Whether a key's recorded hash is this request's under a key the writer
 * held before: the previous master key's during a rotation, or the plain
 * SHA-256 of events appended before stop 22 (a retry across the upgrade or
 * the rotation is the same command, not a reused key). */
static bool hashed_before(WrApi *api, const VpHttpRequest *r, const cJSON *body,
			  const char *recorded)
{
	char older[65];
	const VpKey *previous = wr_keys_command(true);
	if (previous) {
		command_hash(api, r, body, previous, older);
		if (!strcmp(older, recorded))
			return true;
	}
	command_hash(api, r, body, NULL, older);
	return !strcmp(older, recorded);
}

/* {"events":[...],"id":...,"version":N,"position":...}, the members in the
 * order the cJSON tree had them; into api->scratch. */
static int result_body(WrApi *api, const char *aggregate_id, int64_t version,
		       const uint8_t *types, int n_types, const char *position)
{
	VpBuf *out = &api->scratch;
	vp_buf_reset(out);
	vp_buf_append(out, "{\"events\":[", 11);
	for (int i = 0; i < n_types; i++) {
		if (i > 0)
			vp_buf_append(out, ",", 1);
		vp_json_write_string(out, wr_event_type_name(types[i]));
	}
	vp_buf_append(out, "],\"id\":", 7);
	vp_json_write_string(out, aggregate_id);
	vp_buf_printf(out, ",\"version\":%lld,\"position\":", (long long)version);
	vp_json_write_string(out, position);
	return vp_buf_append(out, "}", 1);
}

static void reply_result(WrApi *api, VpHttpRequest *r, int status, const char *aggregate_id,
			 int64_t version, const uint8_t *types, int n_types, const char *position,
			 const char *location, bool replayed)
{
	char etag[32];
	snprintf(etag, sizeof(etag), "\"%lld\"", (long long)version);
	vp_http_add_header(r, "ETag", etag);
	vp_http_add_header(r, "X-Consistency-Token", position);
	if (location && *location)
		vp_http_add_header(r, "Location", location);
	if (replayed)
		vp_http_add_header(r, "Idempotent-Replayed", "true");
	if (result_body(api, aggregate_id, version, types, n_types, position) < 0) {
		VpError err;
		vp_error_clear(&err);
		vp_error_set(&err, 500, VP_ERR_INTERNAL, "out of memory");
		vp_http_reply_error(r, &err);
		return;
	}
	vp_http_reply_json(r, status, api->scratch.data, api->scratch.len);
}

/* 0: go on; 1: answered from the idempotency store; -1: err set. */
static int check_idempotency(WrApi *api, const WrTenant *t, VpHttpRequest *r,
			     const cJSON *body, const WrCommand *cmd, const char *key,
			     const char *hash, VpError *err)
{
	const WrIdem *k = t ? wr_idem_get(&t->idem, key) : NULL;
	char location[128] = "";
	if (!k)
		return 0;
	if (strcmp(k->request_hash, hash) != 0 && !hashed_before(api, r, body, k->request_hash))
		return vp_error_set(err, 409, "IDEMPOTENCY_KEY_REUSED",
				    "this Idempotency-Key was used for another command");
	if (k->pending)
		return vp_error_set(err, 503, VP_ERR_UNAVAILABLE,
				    "the command with this key is still being appended");
	if (cmd->creates)
		snprintf(location, sizeof(location), "%s%s", cmd->location_prefix, k->aggregate_id);
	reply_result(api, r, k->status, k->aggregate_id, k->version, k->event_types, k->n_events,
		     k->position, location, true);
	return 1;
}

static bool owned_tenant(WrApi *api, const char *tenant_id)
{
	int n = wr_appender_partition_count(api->appender);
	int p = vp_kafka_partition_for_key(tenant_id, strlen(tenant_id), n);
	return p >= 0 && wr_owns_partition(api->cfg, p);
}

/* A new tenant id this instance owns, so the creating writer can serve it.
 * With a client key (client_key not NULL) the id is derived from the caller and
 * the key: the first attempt 0, 1, ... that is owned, so a retry names the same
 * tenant, finds the key there and replays instead of creating another tenant.
 * Without one, UUIDv7s are drawn. */
static void new_owned_tenant_id(WrApi *api, const char *sub, const char *client_key,
				char out[37])
{
	VpUuid u;
	for (uint32_t attempt = 0; attempt < 100000; attempt++) {
		if (client_key) {
			wr_tenant_id_for_key(sub, client_key, attempt, out);
		} else {
			vp_uuid_v7(&u);
			vp_uuid_format(&u, out);
		}
		if (owned_tenant(api, out))
			return;
	}
}

/* The command's tenant and target aggregate ids; client_key is the command's
 * key when the client chose it, else NULL. */
static int resolve_ids(WrApi *api, VpHttpRequest *r, const WrCommand *cmd, const VpClaims *claims,
		       const cJSON *body, const char *client_key, char tenant_id[37],
		       char target_id[37], VpError *err)
{
	const char *given = vp_json_str(body, "id");
	VpUuid u;
	bool provisioning = !strcmp(cmd->name, "ProvisionTenant");
	if (given && vp_uuid_parse(given, strlen(given), &u) == 0)
		vp_uuid_format(&u, target_id);
	else if (provisioning)
		new_owned_tenant_id(api, claims->sub, client_key, target_id);
	else if (cmd->creates) {
		vp_uuid_v7(&u);
		vp_uuid_format(&u, target_id);
	} else {
		/* {id} of the path: a malformed one cannot name anything */
		if (vp_uuid_parse(r->params[0], strlen(r->params[0]), &u) < 0)
			return wr_not_found(err, "resource", r->params[0]);
		vp_uuid_format(&u, target_id);
	}
	if (provisioning) {
		snprintf(tenant_id, 37, "%s", target_id);
		return 0;
	}
	if (!claims->has_tid)
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "the token names no tenant");
	snprintf(tenant_id, 37, "%s", claims->tid);
	return 0;
}

/* The path's second id ({diagnosis_id}, {treatment_id}) in its one
 * spelling; a malformed one cannot name anything. "" when the route has none. */
static int resolve_item_id(const VpHttpRequest *r, char item_id[37], VpError *err)
{
	VpUuid u;
	item_id[0] = '\0';
	if (r->n_params < 2)
		return 0;
	if (vp_uuid_parse(r->params[1], strlen(r->params[1]), &u) < 0)
		return wr_not_found(err, "resource", r->params[1]);
	vp_uuid_format(&u, item_id);
	return 0;
}

static void on_connection_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	WrPending *p = arg;
	p->orphaned = true;
}

static WrPending *pending_new(WrApi *api, VpHttpRequest *r)
{
	WrPending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->api = api;
	p->http = *r;
	TAILQ_INIT(&p->http.query); /* the original's query list stays the original's */
	p->http.query_parsed = false;
	LIST_INSERT_HEAD(&api->pending, p, link);
	struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
	if (conn)
		evhttp_connection_set_closecb(conn, on_connection_close, p);
	return p;
}

static void pending_free(WrPending *p)
{
	if (!p->orphaned) {
		struct evhttp_connection *conn = evhttp_request_get_connection(p->http.req);
		if (conn)
			evhttp_connection_set_closecb(conn, NULL, NULL);
	}
	LIST_REMOVE(p, link);
	free(p);
}

/* The envelope of the command's i-th event (0: the target's), taking its
 * data from the decision. */
static void decided_event(WrDecision *d, size_t i, const char *command_id, const char *actor,
			  VpEvent *ev)
{
	VpUuid id;
	const WrDecidedEvent *more = i > 0 ? &d->more[i - 1] : NULL;
	vp_uuid_v7(&id);
	vp_uuid_format(&id, ev->id);
	snprintf(ev->type, sizeof(ev->type), "%s", more ? more->type : d->type);
	ev->v = 1;
	snprintf(ev->tenant_id, sizeof(ev->tenant_id), "%s", d->tenant_id);
	snprintf(ev->aggregate, sizeof(ev->aggregate), "%s", more ? more->aggregate : d->aggregate);
	snprintf(ev->aggregate_id, sizeof(ev->aggregate_id), "%s",
		 more ? more->aggregate_id : d->target_id);
	ev->seq = more ? more->seq : d->seq;
	snprintf(ev->command_id, sizeof(ev->command_id), "%s", command_id);
	snprintf(ev->actor, sizeof(ev->actor), "%s", actor);
	ev->at_us = d->now_us;
	ev->data = more ? more->data : d->data;
	if (more)
		d->more[i - 1].data = NULL;
	else
		d->data = NULL;
}

/* A command's events on their way: envelopes and their encoded items, on
 * the heap and as many as the decision has (an issue: up to
 * WR_MAX_COMMAND_EVENTS envelopes, too many for the loop's stack). */
typedef struct WrCommandEvents {
	VpEvent *ev;
	WrAppend **item;
	size_t n;
} WrCommandEvents;

static void command_events_release(WrCommandEvents *ce)
{
	for (size_t i = 0; i < ce->n; i++) {
		vp_event_release(&ce->ev[i]);
		wr_append_free(ce->item[i]);
		ce->item[i] = NULL;
	}
	ce->n = 0;
	free(ce->ev);
	free(ce->item);
	ce->ev = NULL;
	ce->item = NULL;
}

/* The envelope's text in a malloc'd block of its own size (the item owns
 * it until the appender frees it); NULL on out of memory. */
static char *encode_value(WrApi *api, const VpEvent *ev)
{
	vp_buf_reset(&api->encoded);
	if (vp_event_encode_into(ev, &api->encoded) < 0)
		return NULL;
	char *value = malloc(api->encoded.len + 1);
	if (value)
		memcpy(value, api->encoded.data, api->encoded.len + 1);
	return value;
}

/* Encodes every event of the decision and checks it against the catalog. The
 * log is never repaired: an event the projector would refuse is our bug,
 * answered 500 with nothing appended, never a poison record. */
static int encode_events(WrApi *api, VpHttpRequest *r, const WrCommand *cmd, WrDecision *d,
			 const char *command_id, const char *actor, WrCommandEvents *ce,
			 VpError *err)
{
	char why[256];
	size_t n = 1 + d->n_more;
	ce->ev = calloc(n, sizeof(*ce->ev));
	ce->item = calloc(n, sizeof(*ce->item));
	if (!ce->ev || !ce->item)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	for (ce->n = 0; ce->n < n; ce->n++) {
		VpEvent *ev = &ce->ev[ce->n];
		decided_event(d, ce->n, command_id, actor, ev);
		WrAppend *item = calloc(1, sizeof(*item));
		ce->item[ce->n] = item;
		/* the bench's "without" side only (main.c refuses it elsewhere) */
		bool plain = api->cfg->unsealed_for_bench && vp_sealed_type(ev->type);
		if (item && !plain && wr_keys_seal(api->state, ev, item, why, sizeof(why)) < 0) {
			/* never the plain fields instead: nothing is appended */
			vp_log_error(r->request_id, "seal_failed", "%s %s: %s", cmd->name, ev->type,
				     why);
			ce->n++;
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot seal the personal "
								       "fields; nothing was appended");
		}
		if (*api->cfg->fault_poison_type && !strcmp(api->cfg->fault_poison_type, ev->type))
			cJSON_AddStringToObject(ev->data, "fault_injected",
						"a member no catalog entry has");
		if (item)
			item->value = encode_value(api, ev);
		if (!item || !item->value) {
			ce->n++;
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot record the event");
		}
		if (vp_catalog_check_encoded(item->value, strlen(item->value), why, sizeof(why)) <
		    0) {
			vp_log_error(r->request_id, "event_refused", "%s %s: %s", cmd->name,
				     ev->type, why);
			ce->n++;
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "the event failed the catalog "
								       "check; nothing was appended");
		}
	}
	return 0;
}

/* Applies every event to the model, in order. The decide functions checked
 * them against this model, so only memory can fail here; a failure after the
 * first event leaves the model ahead of the log, so the appender rebuilds it
 * and fails what was decided on it meanwhile. */
static int apply_events(WrApi *api, VpHttpRequest *r, WrCommandEvents *ce, bool client_key,
			const char *hash, VpError *err)
{
	char why[256];
	const WrIdemNote idem = {.request_hash = hash, .position = "", .pending = true};
	for (size_t i = 0; i < ce->n; i++) {
		if (wr_state_apply(api->state, &ce->ev[i], client_key ? &idem : NULL, why,
				   sizeof(why)) == 0)
			continue;
		if (i > 0) {
			vp_log_error(r->request_id, "model_ahead_of_log", "%s: %s; rebuilding",
				     ce->ev[i].type, why);
			wr_appender_rebuild(api->appender);
		}
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot record the event");
	}
	return 0;
}

static void pending_describe(WrPending *p, const WrCommand *cmd, const WrCommandEvents *ce)
{
	const VpEvent *target = &ce->ev[0];
	p->creates = cmd->creates;
	if (cmd->creates)
		snprintf(p->location, sizeof(p->location), "%s%s", cmd->location_prefix,
			 target->aggregate_id);
	snprintf(p->aggregate_id, sizeof(p->aggregate_id), "%s", target->aggregate_id);
	snprintf(p->tenant_id, sizeof(p->tenant_id), "%s", target->tenant_id);
	snprintf(p->command_id, sizeof(p->command_id), "%s", target->command_id);
	p->version = target->seq;
	p->n_types = (int)ce->n;
	p->events_left = (int)ce->n;
	for (size_t i = 0; i < ce->n; i++)
		p->types[i] = wr_event_type_index(ce->ev[i].type);
}

/* Links the items into one chain (one transaction) for p to answer. */
static void chain_items(WrApi *api, WrCommandEvents *ce, WrPending *p, bool client_key,
			const char *hash)
{
	int partition = vp_kafka_partition_for_key(ce->ev[0].tenant_id, strlen(ce->ev[0].tenant_id),
						   wr_appender_partition_count(api->appender));
	for (size_t i = 0; i < ce->n; i++) {
		WrAppend *item = ce->item[i];
		snprintf(item->tenant_id, sizeof(item->tenant_id), "%s", ce->ev[i].tenant_id);
		item->partition = partition;
		snprintf(item->type, sizeof(item->type), "%s", ce->ev[i].type);
		snprintf(item->request_hash, sizeof(item->request_hash), "%s", hash);
		snprintf(item->command_id, sizeof(item->command_id), "%s", ce->ev[i].command_id);
		item->client_key = client_key;
		item->generation = api->generation;
		item->owner = p;
		item->more = i + 1 < ce->n;
		item->next = item->more ? ce->item[i + 1] : NULL;
	}
	for (size_t i = 0; i < ce->n; i++)
		ce->item[i] = NULL; /* the chain's now */
}

/* Builds the command's events, applies them to the model and queues them
 * for the log as one chain. Only a command id the client chose (client_key)
 * is remembered: a generated one can never be sent again. */
static int append_decision(WrApi *api, VpHttpRequest *r, const WrCommand *cmd,
			   const VpClaims *claims, WrDecision *d, const char *command_id,
			   bool client_key, const char *hash, VpError *err)
{
	WrCommandEvents ce = {0};
	WrPending *p = NULL;
	int rc = -1;
	if (encode_events(api, r, cmd, d, command_id, claims->sub, &ce, err) < 0)
		goto done;
	p = pending_new(api, r);
	if (!p) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot record the event");
		goto done;
	}
	if (apply_events(api, r, &ce, client_key, hash, err) < 0) {
		pending_free(p);
		goto done;
	}
	pending_describe(p, cmd, &ce);
	WrAppend *first = ce.item[0];
	chain_items(api, &ce, p, client_key, hash);
	wr_appender_submit(api->appender, first);
	rc = 0;
done:
	/* keys made for events that will not be appended: the model forgets them
	 * (a tenant key that never reached the log must not wrap anything) */
	for (size_t i = 0; rc < 0 && api->state->keys && i < ce.n; i++)
		if (ce.item[i])
			vp_keyring_forget(api->state->keys, ce.item[i]->keyrec, ce.item[i]->n_keyrec);
	command_events_release(&ce);
	return rc;
}

/* The command id: Idempotency-Key, else the body's command_id, else fresh.
 * It is stored in the event and the idempotency store as text: a header's raw
 * bytes or a \u escape must not put broken or control characters there. */
static int command_key(VpHttpRequest *r, const cJSON *body, char out[MAX_KEY_LEN + 1],
		       bool *client_chosen, VpError *err)
{
	const char *field = "Idempotency-Key";
	const char *key = vp_http_header(r, field);
	if (!key) {
		field = "command_id";
		key = vp_json_str(body, field);
	}
	*client_chosen = key != NULL;
	if (!key) {
		VpUuid u;
		vp_uuid_v7(&u);
		vp_uuid_format(&u, out);
		return 0;
	}
	size_t len = strlen(key);
	if (len == 0 || len > MAX_KEY_LEN)
		vp_error_add_detail(err, field, "must be 1-%d bytes", MAX_KEY_LEN);
	else if (!vp_utf8_printable(key, len))
		vp_error_add_detail(err, field, "must be UTF-8 text without control characters");
	if (vp_error_finish_validation(err))
		return -1;
	snprintf(out, MAX_KEY_LEN + 1, "%s", key);
	return 0;
}

static int handle_command(WrApi *api, VpHttpRequest *r, const WrCommand *cmd, VpError *err)
{
	VpClaims claims;
	cJSON *body = NULL;
	char tenant_id[37], target_id[37], item_id[37], hash[65], key[MAX_KEY_LEN + 1];
	char why[200];
	bool client_key;
	int rc = -1;
	WrDecision d = {.if_match = -1, .now_us = vp_time_now_us()};

	if (authenticate(api, r, &claims, err) < 0)
		goto done;
	if (!(claims.roles & cmd->roles)) {
		vp_error_set(err, 403, VP_ERR_FORBIDDEN, "%s needs another role", cmd->name);
		goto done;
	}
	if (vp_http_read_json_or_empty(r, &body, err) < 0)
		goto done;
	/* One spelling per id before anything reads or hashes the body: the
	 * model is keyed by lower-case text, and "A1.." and "a1.." must find the
	 * same aggregate and be the same command for idempotency. */
	if (vp_json_check(body, cmd->fields, cmd->n_fields, false, err) == 0)
		vp_json_uuids_lower(body, cmd->fields, cmd->n_fields);
	if (cmd->validate)
		cmd->validate(body, d.now_us, err);
	parse_if_match(r, &d.if_match, err);
	if (vp_error_finish_validation(err) || command_key(r, body, key, &client_key, err) < 0 ||
	    resolve_ids(api, r, cmd, &claims, body, client_key ? key : NULL, tenant_id, target_id,
			err) < 0 ||
	    resolve_item_id(r, item_id, err) < 0)
		goto done;
	if (!api->state) {
		vp_error_set(err, 503, VP_ERR_UNAVAILABLE, "the write model is being rebuilt");
		goto done;
	}
	/* Refused before deciding, so nothing waits on an append that cannot be
	 * made now (Kafka out of reach, a rebuild, a full queue). */
	if (!api->cfg->dry_run && !wr_appender_accepting(api->appender, why, sizeof(why))) {
		vp_error_set(err, 503, VP_ERR_UNAVAILABLE,
			     "cannot append now (%s); nothing was appended", why);
		err->retry_after_s = 2;
		goto done;
	}
	if (!owned_tenant(api, tenant_id)) {
		vp_error_set(err, 421, VP_ERR_MISDIRECTED,
			     "tenant %s belongs to another writer instance", tenant_id);
		goto done;
	}
	WrTenant *tenant = wr_state_tenant(api->state, tenant_id);
	d.state = api->state;
	d.tenant = tenant;
	d.tenant_id = tenant_id;
	d.target_id = target_id;
	d.item_id = item_id[0] ? item_id : NULL;
	d.body = body;
	d.actor = claims.sub;
	d.roles = claims.roles;
	if (!d.tenant && strcmp(cmd->name, "ProvisionTenant") != 0) {
		vp_error_set(err, 404, VP_ERR_NOT_FOUND, "tenant %s is not provisioned", tenant_id);
		goto done;
	}
	request_hash(api, r, body, hash);
	/* Keys older than the window are forgotten before the lookup: the same
	 * key then makes a new command. Popping the FIFO's expired head costs O(1)
	 * per key over its life. */
	if (tenant)
		wr_state_idem_expire(api->state, tenant, d.now_us);
	if (client_key) {
		rc = check_idempotency(api, d.tenant, r, body, cmd, key, hash, err);
		if (rc != 0)
			goto done;
		rc = -1;
	}
	if (cmd->decide(&d, err) < 0 ||
	    append_decision(api, r, cmd, &claims, &d, key, client_key, hash, err) < 0)
		goto done;
	rc = 1; /* answered later, after the commit */
done:
	if (api->state)
		vp_metric_set(api->m_idem_keys, (int64_t)api->state->idem_keys);
	wr_decision_release(&d);
	cJSON_Delete(body);
	return rc;
}

/* An import batch's answer: where the import stands, and the position of its
 * last event (the consistency token) when it appended any. */
static void reply_import(WrApi *api, VpHttpRequest *r, int64_t next, const char *position)
{
	VpBuf *out = &api->scratch;
	vp_buf_reset(out);
	vp_buf_printf(out, "{\"next\":%lld", (long long)next);
	if (*position) {
		vp_http_add_header(r, "X-Consistency-Token", position);
		vp_buf_append(out, ",\"position\":", 12);
		vp_json_write_string(out, position);
	}
	vp_buf_append(out, "}", 1);
	vp_http_reply_json(r, 200, out->data, out->len);
}

/* The batch's events as one chain (one transaction), each line as it came. */
static int import_chain(WrApi *api, WrImportBatch *b, WrPending *p, WrAppend **first)
{
	int partition = vp_kafka_partition_for_key(b->tenant_id, strlen(b->tenant_id),
						   wr_appender_partition_count(api->appender));
	WrAppend *prev = NULL;
	*first = NULL;
	for (size_t i = 0; i < b->n; i++) {
		WrAppend *item = calloc(1, sizeof(*item));
		if (item && !(item->value = strdup(b->line[i]))) {
			free(item);
			item = NULL;
		}
		if (!item) {
			while (*first) {
				WrAppend *next = (*first)->next;
				wr_append_free(*first);
				*first = next;
			}
			return -1;
		}
		const VpEvent *ev = &b->ev[i];
		snprintf(item->tenant_id, sizeof(item->tenant_id), "%s", ev->tenant_id);
		snprintf(item->type, sizeof(item->type), "%s", ev->type);
		snprintf(item->command_id, sizeof(item->command_id), "%s", ev->command_id);
		snprintf(item->import_digest, sizeof(item->import_digest), "%s", b->digest);
		item->import_index = b->from + (int64_t)i;
		item->v = ev->v;
		item->partition = partition;
		item->generation = api->generation;
		item->owner = p;
		item->more = i + 1 < b->n;
		if (i == 0) { /* the keys commit with the first event (import.c) */
			item->import_keys = b->keys;
			item->n_import_keys = b->n_keys;
			b->keys = NULL;
			b->n_keys = 0;
		}
		if (prev)
			prev->next = item;
		else
			*first = item;
		prev = item;
	}
	return 0;
}

/* Checks that may refuse the batch before the model is touched. */
static int import_admit(WrApi *api, VpHttpRequest *r, cJSON **body, char tenant_id[37],
			VpError *err)
{
	VpClaims claims;
	VpUuid u;
	char why[200];
	if (authenticate(api, r, &claims, err) < 0)
		return -1;
	if (!(claims.roles & VP_ROLE_PLATFORM_OPS) || claims.has_tid)
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "an import needs a platform-ops "
								"token that names no tenant");
	if (vp_http_read_json(r, body, err) < 0)
		return -1;
	if (vp_uuid_parse(r->params[0], strlen(r->params[0]), &u) < 0)
		return wr_not_found(err, "tenant", r->params[0]);
	vp_uuid_format(&u, tenant_id);
	if (!api->state)
		return vp_error_set(err, 503, VP_ERR_UNAVAILABLE, "the write model is being rebuilt");
	if (!api->cfg->dry_run && !wr_appender_accepting(api->appender, why, sizeof(why))) {
		err->retry_after_s = 2;
		return vp_error_set(err, 503, VP_ERR_UNAVAILABLE,
				    "cannot append now (%s); nothing was appended", why);
	}
	if (!owned_tenant(api, tenant_id))
		return vp_error_set(err, 421, VP_ERR_MISDIRECTED,
				    "tenant %s belongs to another writer instance", tenant_id);
	return 0;
}

/* POST /v1/ops/tenants/{tenant_id}/import: 1 answered later (after the
 * commit), 0 answered now, -1 err. */
static int handle_import(WrApi *api, VpHttpRequest *r, VpError *err)
{
	cJSON *body = NULL;
	char tenant_id[37];
	WrImportBatch b = {0};
	int64_t next = 0;
	size_t applied = 0;
	WrAppend *first = NULL;
	int rc = -1;
	int parsed = import_admit(api, r, &body, tenant_id, err) < 0
			     ? -1
			     : wr_import_parse(body, tenant_id, &b, err);
	vp_http_wipe_body(r); /* a first batch carries the transport key */
	if (parsed < 0)
		goto done;
	int position = wr_import_position(api->state, &b, &next, err);
	if (position == 0 && wr_import_keys_ok(api->state, &b, err) < 0)
		goto done;
	if (position != 0) {
		if (position == 1)
			reply_import(api, r, next, "");
		rc = position == 1 ? 0 : -1;
		goto done;
	}
	WrPending *p = pending_new(api, r);
	if (!p || import_chain(api, &b, p, &first) < 0) {
		if (p)
			pending_free(p);
		vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
		goto done;
	}
	if (wr_import_apply(api->state, &b, &applied, err) < 0 ||
	    wr_import_take_keys(api->state, first, err) < 0) {
		if (applied > 0) /* the model is ahead of the log: take it back from the log */
			wr_appender_rebuild(api->appender);
		while (first) {
			WrAppend *item = first->next;
			wr_append_free(first);
			first = item;
		}
		pending_free(p);
		goto done;
	}
	p->import = true;
	p->import_next = b.from + (int64_t)b.n;
	p->events_left = (int)b.n;
	snprintf(p->tenant_id, sizeof(p->tenant_id), "%s", tenant_id);
	wr_appender_submit(api->appender, first);
	rc = 1;
done:
	wr_import_release(&b);
	cJSON_Delete(body);
	return rc;
}

bool wr_api_route(VpHttpRequest *r, void *arg)
{
	WrApi *api = arg;
	bool path_known;
	unsigned allowed;
	VpError err;
	vp_error_clear(&err);
	if (vp_http_route_match(r, WR_IMPORT_ROUTE)) {
		if (vp_http_require_method(r, EVHTTP_REQ_POST, &err) < 0 ||
		    handle_import(api, r, &err) < 0)
			vp_http_reply_error(r, &err);
		return true;
	}
	const WrCommand *cmd = find_command(r, &path_known, &allowed);
	if (!path_known)
		return false;
	if (!cmd) {
		vp_http_require_method(r, allowed, &err);
		vp_http_reply_error(r, &err);
		return true;
	}
	if (handle_command(api, r, cmd, &err) < 0)
		vp_http_reply_error(r, &err);
	return true;
}

/* The command's last event is back: remember the key's answer and reply. */
static void finish_command(WrApi *api, WrPending *p, const WrAppend *item)
{
	if (!p->failed && item->client_key && api->state && item->generation == api->generation)
		wr_state_idem_done(api->state, p->tenant_id, p->command_id, p->position);
	if (!p->orphaned) {
		if (!p->failed && p->import) {
			reply_import(api, &p->http, p->import_next, p->position);
		} else if (!p->failed) {
			reply_result(api, &p->http, p->creates ? 201 : 200, p->aggregate_id, p->version,
				     p->types, p->n_types, p->position,
				     p->location, false);
		} else {
			VpError err;
			vp_error_clear(&err);
			vp_error_set(&err, 503, VP_ERR_UNAVAILABLE,
				     p->unknown ? "Kafka did not tell whether the events were "
						  "appended: retry with the same Idempotency-Key"
						: "the events could not be appended; nothing was written");
			err.retry_after_s = 2; /* a failed commit rebuilds the model first */
			vp_http_reply_error(&p->http, &err);
		}
	}
	pending_free(p);
}

/* Appender callback: the commit's outcome for each event, on the loop. A
 * command's events were in one transaction, so they all failed or all
 * committed; its answer waits for the last of them (stale ones may come
 * back in another order). */
static void on_appended(WrAppend *list, void *arg)
{
	WrApi *api = arg;
	while (list) {
		WrAppend *item = list;
		WrPending *p = item->owner;
		list = item->next;
		if (p && item->error)
			p->failed = true;
		if (p && item->error == WR_ERR_OUTCOME_UNKNOWN)
			p->unknown = true;
		if (p && !item->error && !item->more)
			snprintf(p->position, sizeof(p->position), "%d:%lld", item->partition,
				 (long long)item->offset);
		if (p && --p->events_left == 0)
			finish_command(api, p, item);
		wr_append_free(item);
	}
}

/* Appender callback: a model rebuilt from the log replaces ours. */
static void on_rebuilt(WrState *state, uint64_t generation, void *arg)
{
	WrApi *api = arg;
	if (api->state) {
		wr_state_clear(api->state);
		free(api->state);
	}
	api->state = state;
	api->generation = generation;
	vp_metric_set(api->m_idem_keys, (int64_t)state->idem_keys);
}

/* The request path forgets a tenant's expired keys when the tenant sends a
 * command; this timer does it for every tenant, so a tenant that went quiet
 * does not keep its keys forever. O(tenants) per tick. */
static void on_idem_sweep(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	WrApi *api = arg;
	if (!api->state)
		return;
	wr_state_idem_expire_all(api->state, vp_time_now_us());
	vp_metric_set(api->m_idem_keys, (int64_t)api->state->idem_keys);
}

static int setup_verifier(WrApi *api, char *why, size_t why_cap)
{
	const WrConfig *cfg = api->cfg;
	bool hs = *cfg->jwt_secret, ed = *cfg->jwt_ed25519_public_key;
	if (hs == ed) {
		snprintf(why, why_cap, "set exactly one of VETPMS_JWT_HS256_SECRET and "
				       "VETPMS_JWT_ED25519_PUBLIC_KEY");
		return -1;
	}
	int rc = hs ? vp_jwt_key_from_hs256_secret(&api->verifier.key, cfg->jwt_secret)
		    : vp_jwt_key_from_ed25519_public_b64(&api->verifier.key,
							  cfg->jwt_ed25519_public_key);
	if (rc < 0) {
		snprintf(why, why_cap, hs ? "the HS256 secret must be 16-256 bytes"
					  : "the Ed25519 public key must be 32 bytes of base64");
		return -1;
	}
	api->verifier.issuer = *cfg->jwt_issuer ? cfg->jwt_issuer : NULL;
	api->verifier.audience = *cfg->jwt_audience ? cfg->jwt_audience : NULL;
	api->verifier.leeway_s = VP_AUTH_LEEWAY_S;
	return 0;
}

WrApi *wr_api_new(const WrConfig *cfg, VpService *service, char *why, size_t why_cap)
{
	WrApi *api = calloc(1, sizeof(*api));
	if (!api) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	api->cfg = cfg;
	LIST_INIT(&api->pending);
	vp_http_allow_large_body(WR_IMPORT_ROUTE); /* batches up to 1 MiB (import.c) */
	vp_buf_init(&api->encoded, VP_EVENT_MAX_ENCODED);
	vp_buf_init(&api->scratch, VP_EVENT_MAX_ENCODED);
	if (setup_verifier(api, why, why_cap) < 0)
		return wr_api_free(api);
	api->appender = wr_appender_new(cfg, service->base, on_appended, on_rebuilt, api, why,
					why_cap);
	if (!api->appender)
		return wr_api_free(api);
	api->m_idem_keys = vp_metrics_gauge("vetpms_writer_idempotency_keys", NULL,
					    "client idempotency keys remembered (inside the window)");
	/* a key of a quiet tenant outlives its window by at most one period */
	long sweep_s = cfg->idempotency_window_s < IDEM_SWEEP_MAX_S ? cfg->idempotency_window_s
								    : IDEM_SWEEP_MAX_S;
	struct timeval every = {sweep_s > 0 ? sweep_s : 1, 0};
	api->idem_sweep = event_new(service->base, -1, EV_PERSIST, on_idem_sweep, api);
	if (!api->idem_sweep || event_add(api->idem_sweep, &every) < 0) {
		snprintf(why, why_cap, "cannot start the idempotency key sweep");
		return wr_api_free(api);
	}
	if (wr_appender_start(api->appender) < 0)
		return wr_api_free(api);
	return api;
}

bool wr_api_ready(void *arg, char *why, size_t why_cap)
{
	WrApi *api = arg;
	return wr_appender_ready(api->appender, why, why_cap);
}

bool wr_api_fatal(WrApi *api)
{
	return wr_appender_fatal(api->appender);
}

WrApi *wr_api_free(WrApi *api)
{
	if (!api)
		return NULL;
	wr_appender_free(api->appender);
	if (api->idem_sweep)
		event_free(api->idem_sweep);
	while (!LIST_EMPTY(&api->pending))
		pending_free(LIST_FIRST(&api->pending));
	if (api->state) {
		wr_state_clear(api->state);
		free(api->state);
	}
	vp_buf_free(&api->encoded);
	vp_buf_free(&api->scratch);
	free(api);
	return NULL;
}
