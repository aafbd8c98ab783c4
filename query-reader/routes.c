/* The /v1 queries: route table, authentication and roles, parameter checks,
 * then the asynchronous part. A request that passes the checks becomes a heap
 * RdRequest owning its evhttp_request until the one reply: vp_service keeps
 * VpHttpRequest on its stack, so the fields a reply needs are copied (the
 * parsed query list is not; parameters are extracted first).
 *
 * A client that disconnects while its answer is pending: libevent 2.1
 * detaches the request from the dying connection instead of freeing it
 * (evhttp_connection_incoming_fail, req->userdone == 0) and evhttp_send_reply
 * on a detached request only frees it. So the RdRequest always replies, exactly
 * once, and the evhttp_request stays valid until then. At shutdown every
 * pending request is answered (503) before evhttp_free.
 *
 * Ids in the path that are not UUIDs answer 404 NOT_FOUND (no such resource),
 * like an unknown or another tenant's id; ids in query parameters (client_id,
 * aggregate_id) that are not UUIDs are input errors, 400 VALIDATION_ERROR. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/queue.h>

#include "reader.h"
#include "routes.h"
#include "vp_auth.h"
#include "vp_buf.h"
#include "vp_log.h"
#include "vp_money.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define JWT_LEEWAY_S       5
#define MAX_SEARCH_LEN     200
#define MAX_REPLY_BYTES    (64 * 1024 * 1024)
#define DEFAULT_LIMIT      50
#define MAX_LIMIT          200

static void param_clear(RdRequest *rq, int index)
{
	if (rq->heap_params & (1u << index))
		free(rq->params[index]);
	rq->heap_params &= ~(1u << index);
	rq->params[index] = NULL;
}

static void request_free(RdRequest *rq)
{
	if (!rq)
		return;
	for (int i = 0; i < RD_MAX_PARAMS; i++)
		param_clear(rq, i);
	vp_http_request_release(&rq->http);
	free(rq);
}

static void reply_error_and_free(RdRequest *rq, int status, const char *code, const char *msg)
{
	VpError err;
	vp_error_clear(&err);
	vp_error_set(&err, status, code, "%s", msg);
	vp_http_reply_error(&rq->http, &err);
	request_free(rq);
}

/* --- parameters -------------------------------------------------------- */

int rd_param_set(RdRequest *rq, int index, const char *value)
{
	if (index < 0 || index >= RD_MAX_PARAMS)
		return -1;
	param_clear(rq, index);
	if (!value)
		return 0;
	size_t size = strlen(value) + 1;
	if (size <= sizeof(rq->param_text) - rq->param_text_used) {
		rq->params[index] = rq->param_text + rq->param_text_used;
		memcpy(rq->params[index], value, size);
		rq->param_text_used += size;
		return 0;
	}
	rq->params[index] = strdup(value);
	if (!rq->params[index])
		return -1;
	rq->heap_params |= 1u << index;
	return 0;
}

/* Canonical lower-case text of a UUID; -1 when s is not one. */
int rd_uuid_canonical(const char *s, char out[37])
{
	VpUuid id;
	if (!s || vp_uuid_parse(s, strlen(s), &id) < 0)
		return -1;
	vp_uuid_format(&id, out);
	return 0;
}

/* Optional UUID query parameter into params[index]; a detail when malformed. */
int rd_bind_uuid_query(RdRequest *rq, VpHttpRequest *r, const char *name, int index,
		       VpError *err)
{
	const char *value = vp_http_query(r, name);
	char canonical[37];
	if (!value)
		return 0;
	if (rd_uuid_canonical(value, canonical) < 0) {
		vp_error_add_detail(err, name, "must be a UUID");
		return 0;
	}
	return rd_param_set(rq, index, canonical);
}

/* Optional free-text query parameter, at most max_len bytes. */
int rd_bind_text_query(RdRequest *rq, VpHttpRequest *r, const char *name, int index,
		       size_t max_len, VpError *err)
{
	const char *value = vp_http_query(r, name);
	if (!value || !*value)
		return 0;
	if (strlen(value) > max_len) {
		vp_error_add_detail(err, name, "must be at most %zu bytes", max_len);
		return 0;
	}
	return rd_param_set(rq, index, value);
}

int rd_bind_search(RdRequest *rq, VpHttpRequest *r, int index, VpError *err)
{
	return rd_bind_text_query(rq, r, "search", index, MAX_SEARCH_LEN, err);
}

/* The currencies whose exponent is not 2 (common/vp_money.c's table), built
 * once. */
static char currency_exponents[1024];
static pthread_once_t currency_exponents_once = PTHREAD_ONCE_INIT;

static void currency_exponents_build(void)
{
	if (vp_currency_exponents_json(currency_exponents, sizeof(currency_exponents)) < 0)
		snprintf(currency_exponents, sizeof(currency_exponents), "{}");
}

int rd_bind_currency_exponents(RdRequest *rq, int index)
{
	pthread_once(&currency_exponents_once, currency_exponents_build);
	return rd_param_set(rq, index, currency_exponents);
}

static int parse_limit(const char *text, int *limit)
{
	long value = 0;
	if (!text || !*text || strlen(text) > 4)
		return -1;
	for (const char *s = text; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		value = value * 10 + (*s - '0');
	}
	if (value < 1 || value > MAX_LIMIT)
		return -1;
	*limit = (int)value;
	return 0;
}

/* limit and cursor of every list: $2 limit, $3 and $4 the keyset position
 * (NULL for the first page). A cursor is "<kind>|<k1>|<k2>" signed; k2 never
 * holds '|' (a UUID or a number), so it is split at the last one. */
static int bind_page(RdRequest *rq, VpHttpRequest *r, VpError *err)
{
	const char *limit_text = vp_http_query(r, "limit");
	const char *cursor = vp_http_query(r, "cursor");
	char payload[VP_CURSOR_MAX_PAYLOAD + 1];
	char limit_param[16];
	size_t kind_len = strlen(rq->route->cursor_kind);

	rq->limit = DEFAULT_LIMIT;
	if (limit_text && parse_limit(limit_text, &rq->limit) < 0)
		vp_error_add_detail(err, "limit", "must be an integer from 1 to %d", MAX_LIMIT);
	snprintf(limit_param, sizeof(limit_param), "%d", rq->limit);
	if (rd_param_set(rq, 1, limit_param) < 0)
		return -1;
	if (!cursor)
		return 0;
	if (vp_cursor_decode(&rq->loop->shared->cursor_key, cursor, strlen(cursor), payload,
			     sizeof(payload)) < 0 ||
	    strncmp(payload, rq->route->cursor_kind, kind_len) != 0 || payload[kind_len] != '|') {
		vp_error_add_detail(err, "cursor", "is not a cursor of this list");
		return 0;
	}
	char *k1 = payload + kind_len + 1;
	char *last = strrchr(k1, '|');
	if (!last) {
		vp_error_add_detail(err, "cursor", "is not a cursor of this list");
		return 0;
	}
	*last = '\0';
	if (rd_param_set(rq, 2, k1) < 0 || rd_param_set(rq, 3, last + 1) < 0)
		return -1;
	return 0;
}

/* --- answers ----------------------------------------------------------- */

static void reply_item(RdRequest *rq, const PGresult *res)
{
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		reply_error_and_free(rq, 404, VP_ERR_NOT_FOUND, "no such resource");
		return;
	}
	vp_http_reply_json(&rq->http, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	request_free(rq);
}

/* Columns: data (a JSON array), next k1, next k2 (NULL on the last page) and,
 * for lists under a parent resource, whether the parent exists, then
 * optionally a JSON object whose members lead the answer (a statement's
 * balances beside its rows). */
static void reply_list(RdRequest *rq, const PGresult *res)
{
	VpBuf body;
	char payload[VP_CURSOR_MAX_PAYLOAD + 1];
	char *cursor = NULL;

	if (PQntuples(res) != 1 || PQnfields(res) < 3) {
		reply_error_and_free(rq, 500, VP_ERR_INTERNAL, "unexpected result shape");
		return;
	}
	if (PQnfields(res) >= 4 && strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
		reply_error_and_free(rq, 404, VP_ERR_NOT_FOUND, "no such resource");
		return;
	}
	if (!PQgetisnull(res, 0, 1)) {
		int n = snprintf(payload, sizeof(payload), "%s|%s|%s", rq->route->cursor_kind,
				 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		if (n > 0 && (size_t)n < sizeof(payload))
			cursor = vp_cursor_encode(&rq->loop->shared->cursor_key, payload, (size_t)n);
		if (!cursor) {
			reply_error_and_free(rq, 500, VP_ERR_INTERNAL, "cannot make the cursor");
			return;
		}
	}
	vp_buf_init(&body, MAX_REPLY_BYTES);
	const char *extra = PQnfields(res) >= 5 ? PQgetvalue(res, 0, 4) : "";
	size_t extra_len = PQnfields(res) >= 5 ? (size_t)PQgetlength(res, 0, 4) : 0;
	if (extra_len > 2 && extra[0] == '{' && extra[extra_len - 1] == '}') {
		vp_buf_append(&body, extra, extra_len - 1); /* without its '}' */
		vp_buf_puts(&body, ",\"data\":");
	} else {
		vp_buf_puts(&body, "{\"data\":");
	}
	vp_buf_append(&body, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	vp_buf_puts(&body, ",\"next_cursor\":");
	if (cursor)
		vp_buf_printf(&body, "\"%s\"}", cursor); /* base64url and '.': no escaping */
	else
		vp_buf_puts(&body, "null}");
	if (body.oom)
		reply_error_and_free(rq, 500, VP_ERR_INTERNAL, "answer too large");
	else {
		vp_http_reply_json(&rq->http, 200, vp_buf_str(&body), body.len);
		request_free(rq);
	}
	vp_buf_free(&body);
	free(cursor);
}

void rd_request_result(const PGresult *res, const char *error, void *arg)
{
	RdRequest *rq = arg;
	if (error) {
		vp_log_warn(rq->http.request_id, "query_failed", "%s: %s", rq->route->stmt->name,
			    error);
		reply_error_and_free(rq, 503, VP_ERR_UNAVAILABLE, "the read model is unavailable");
		return;
	}
	if (rq->route->shape == RD_SHAPE_LIST)
		reply_list(rq, res);
	else
		reply_item(rq, res);
}

void rd_request_reply_error(RdRequest *rq, VpError *err)
{
	vp_http_reply_error(&rq->http, err);
	request_free(rq);
}

static void start_query(RdRequest *rq)
{
	if (rq->has_as_of) {
		if (rd_asof_start(rq->loop->as_of, rq) < 0)
			reply_error_and_free(rq, 503, VP_ERR_UNAVAILABLE,
					     "too many history queries running");
		return;
	}
	if (rd_pgpool_query(rq->loop->pool, rq->route->stmt, rq->tenant_id,
			    (const char *const *)rq->params, rd_request_result, rq) < 0)
		reply_error_and_free(rq, 503, VP_ERR_UNAVAILABLE, "too many queries waiting");
}

static void on_position(RdWaitOutcome outcome, void *arg)
{
	RdRequest *rq = arg;
	if (outcome == RD_WAIT_REACHED)
		start_query(rq);
	else if (outcome == RD_WAIT_TIMEOUT)
		reply_error_and_free(rq, 504, VP_ERR_CONSISTENCY,
				     "the read model did not reach the position in time");
	else
		reply_error_and_free(rq, 503, VP_ERR_UNAVAILABLE, "shutting down");
}

/* --- checks ------------------------------------------------------------ */

static int authenticate(const RdShared *shared, VpHttpRequest *r, VpClaims *claims,
			VpError *err)
{
	return vp_auth_bearer(&shared->verifier, vp_http_header(r, "Authorization"),
			      (int64_t)time(NULL), claims, err);
}

/* With ?as_of= on a route that answers it, its as_of_roles decide. */
static int authorize(const RdRoute *route, bool as_of, const VpClaims *claims, VpError *err)
{
	if (!(claims->roles & (as_of ? route->as_of_roles : route->roles)))
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "role not allowed");
	if (!claims->has_tid)
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "a tenant token is required");
	return 0;
}

/* Checks everything that can be refused synchronously and, on success, hands
 * back a heap request ready to run. */
static RdRequest *prepare(RdLoop *loop, const RdRoute *route, VpHttpRequest *r, VpError *err,
			  int *partition, int64_t *offset, bool *wait)
{
	VpClaims claims;
	RdRequest *rq = NULL;
	char id[37];
	const char *as_of = route->as_of_roles ? vp_http_query(r, "as_of") : NULL;

	if (vp_http_require_method(r, EVHTTP_REQ_GET, err) < 0 ||
	    authenticate(loop->shared, r, &claims, err) < 0 ||
	    authorize(route, as_of != NULL, &claims, err) < 0)
		return NULL;
	if (r->n_params > 0 && rd_uuid_canonical(r->params[0], id) < 0) {
		vp_error_set(err, 404, VP_ERR_NOT_FOUND, "no such resource");
		return NULL;
	}
	const char *token = vp_http_query(r, "consistent_with");
	if (!token)
		token = vp_http_header(r, "X-Consistency-Token");
	*wait = token != NULL;
	if (token && rd_consistency_parse(token, partition, offset) < 0)
		vp_error_add_detail(err, "consistent_with", "must be a position P:O");
	rq = calloc(1, sizeof(*rq));
	if (!rq)
		goto oom;
	rq->loop = loop;
	rq->route = route;
	snprintf(rq->tenant_id, sizeof(rq->tenant_id), "%s", claims.tid);
	if (rd_param_set(rq, 0, claims.tid) < 0)
		goto oom;
	rq->has_as_of = as_of != NULL;
	if (as_of)
		rd_asof_parse(as_of, vp_time_now_us(), &rq->as_of_us, err);
	if (route->shape == RD_SHAPE_LIST && bind_page(rq, r, err) < 0)
		goto oom;
	if (route->shape == RD_SHAPE_ITEM && r->n_params > 0 && rd_param_set(rq, 1, id) < 0)
		goto oom;
	if (route->bind && route->bind(rq, r, r->n_params > 0 ? id : NULL, err) < 0)
		goto oom;
	if (vp_error_finish_validation(err)) {
		request_free(rq);
		return NULL;
	}
	/* The copy keeps what a reply needs; the query list stays with r. */
	rq->http = *r;
	TAILQ_INIT(&rq->http.query);
	rq->http.query_parsed = false;
	return rq;
oom:
	request_free(rq);
	vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	return NULL;
}

bool rd_route(VpHttpRequest *r, void *arg)
{
	RdLoop *loop = arg;
	const RdRoute *route = NULL;
	VpError err;
	int partition = 0;
	int64_t offset = 0;
	bool wait = false;

	vp_metric_add(loop->requests, 1);
	if (rd_static_route(r, loop->shared->cfg))
		return true;
	if (rd_stream_route(r, loop))
		return true;
	for (const RdRoute *const *group = rd_route_groups; *group && !route; group++)
		for (const RdRoute *candidate = *group; candidate->pattern && !route; candidate++)
			if (vp_http_route_match(r, candidate->pattern))
				route = candidate;
	if (!route)
		return false;
	vp_error_clear(&err);
	if (!loop->pool) {
		vp_error_set(&err, 503, VP_ERR_UNAVAILABLE, "shutting down");
		vp_http_reply_error(r, &err);
		return true;
	}
	RdRequest *rq = prepare(loop, route, r, &err, &partition, &offset, &wait);
	if (!rq) {
		if (err.status == 401)
			vp_http_add_header(r, "WWW-Authenticate", "Bearer");
		vp_http_reply_error(r, &err);
		return true;
	}
	if (!wait)
		start_query(rq);
	else if (!rd_consistency_wait(loop->consistency, partition, offset, on_position, rq))
		reply_error_and_free(rq, 500, VP_ERR_INTERNAL, "out of memory");
	return true;
}
