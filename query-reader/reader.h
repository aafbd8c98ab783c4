/* query-reader: answers queries over HTTP from the read model in PostgreSQL,
 * with non-blocking libpq connections driven by the same libevent loop.
 * One RdLoop per thread: its event_base, its evhttp, its pool and its LISTEN
 * connection; nothing is shared between loops but read-only configuration. */
#ifndef READER_H
#define READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "vp_cursor.h"
#include "vp_http.h"
#include "vp_jwt.h"
#include "vp_metrics.h"

typedef struct RdConfig {
	char *host;
	long port;
	char *dsn;
	long pool_size;
	long as_of_folds; /* folds (as_of.c) at once per loop */
	long pg_deadline_ms;
	char *log_level;
	char *topic;
	char *jwt_hs256_secret;
	char *jwt_ed25519_public_key;
	char *jwt_issuer;
	char *jwt_audience;
	char *cursor_secret;
	long consistency_wait_ms;
	long threads;
	long stream_max;            /* open streams per process */
	long stream_max_per_tenant; /* open streams of one tenant per process */
	long stream_heartbeat_ms;
	long stream_buffer_bytes; /* unsent bytes of a stream before it is dropped */
	long stream_dead_peer_ms; /* TCP_USER_TIMEOUT and write timeout of a stream */
	char *app_dir;    /* the dashboard page's files (web/app) */
	char *vendor_dir; /* Debian's Chart.js, served under /app/vendor/ */
	/* The keys of sealed client events, which history folds replay with the
	 * projector's handlers (as_of.c, docs/privacy.md). */
	char *brokers;
	char *kafka_props;
	char *keys_topic;
	char *master_key_file;
	char *master_key_previous_file; /* during a rotation (docs/privacy.md) */
} RdConfig;

/* What every loop reads and nobody writes once serving. */
typedef struct RdShared {
	const RdConfig *cfg;
	VpJwtVerifier verifier;
	VpCursorKey cursor_key;
} RdShared;

/* A prepared statement: prepared once per connection (on first use), then
 * executed with PQsendQueryPrepared. `name` is unique in the process. */
typedef struct RdStatement {
	const char *name;
	const char *sql;
	int n_params;
} RdStatement;

/* pgpool.c: a small pool of non-blocking connections on one event_base, in
 * pipeline mode. A query with a tenant runs as one segment of its connection's
 * pipeline, one implicit transaction: set_config('vetpms.tenant_id', tenant,
 * true), the statement, Sync; so row-level security sees the tenant, the
 * setting ends with the transaction, and an error fails only that query.
 * Several queries ride one connection at once (up to a depth); they queue when
 * every connection is that deep. The callback runs on the loop, never from
 * inside rd_pgpool_query, with the statement's result (NULL and an error text
 * on failure) and must not keep `res`: it is cleared when the callback
 * returns. Every accepted query gets exactly one callback, also at shutdown. */
typedef struct RdPgPool RdPgPool;
typedef void (*RdPgCallback)(const PGresult *res, const char *error, void *arg);

/* deadline_ms: how long a query may wait for a connection and then for its
 * answer before it fails (and a connection that long in a handshake or on an
 * answer is dropped); also the sessions' statement_timeout. */
RdPgPool *rd_pgpool_new(struct event_base *base, const char *dsn, int size, long deadline_ms);
/* tenant_id may be NULL (tables without RLS). Parameters are copied. -1 when
 * the queue is full or memory runs out (the caller answers 503). */
int rd_pgpool_query(RdPgPool *pool, const RdStatement *stmt, const char *tenant_id,
		    const char *const *params, RdPgCallback cb, void *arg);
/* Connections currently usable (connected, not broken). */
int rd_pgpool_healthy(const RdPgPool *pool);
/* Every session starts anew: idle ones now, busy ones after their query
 * (their prepared statements may name objects a rebuild has replaced). */
void rd_pgpool_renew(RdPgPool *pool);
RdPgPool *rd_pgpool_free(RdPgPool *pool);

/* consistency.c: waits for the projector to reach a Kafka position. One LISTEN
 * vetpms_progress connection per loop (payload "<partition>:<next_offset>"),
 * plus one look at read.projection_offsets when a wait starts. */
#define RD_MAX_PARTITIONS 4096
typedef struct RdConsistency RdConsistency;
typedef enum { RD_WAIT_REACHED, RD_WAIT_TIMEOUT, RD_WAIT_SHUTDOWN } RdWaitOutcome;
typedef void (*RdReachedFn)(RdWaitOutcome outcome, void *arg);
typedef struct RdWaiter RdWaiter;

RdConsistency *rd_consistency_new(struct event_base *base, const char *dsn, const char *topic,
				  RdPgPool *pool, long wait_ms);
/* Parses "P:O" (decimal, P < RD_MAX_PARTITIONS). 0 or -1. */
int rd_consistency_parse(const char *token, int *partition, int64_t *offset);
/* Calls fn once, later (never from inside this call), when next_offset of the
 * partition exceeds offset or the wait times out. NULL on out of memory. */
RdWaiter *rd_consistency_wait(RdConsistency *cs, int partition, int64_t offset, RdReachedFn fn,
			      void *arg);
/* fn(partition, arg) after each notification that moved a partition on, and
 * fn(-1, arg) once LISTEN is up again (what it missed is unknown); NULL stops. */
typedef void (*RdProgressFn)(int partition, void *arg);
void rd_consistency_on_progress(RdConsistency *cs, RdProgressFn fn, void *arg);
/* Ends every wait with RD_WAIT_SHUTDOWN. Free the pool first: its pending
 * table checks call back into cs. */
RdConsistency *rd_consistency_free(RdConsistency *cs);

/* stream.c: GET /v1/stream, Server-Sent Events of the tenant's applied
 * events (docs/streaming.md). One RdStreams per loop. */
typedef struct RdStreams RdStreams;
typedef struct RdLoop RdLoop;
RdStreams *rd_streams_new(RdLoop *loop, const RdConfig *cfg);
/* Ends every stream (a clean end of each answer). Before the pool is freed. */
RdStreams *rd_streams_free(RdStreams *hub);
/* An RdProgressFn (arg: the RdStreams). */
void rd_streams_progress(int partition, void *arg);
/* True when r was GET /v1/stream (answered, or streaming from now on). */
bool rd_stream_route(VpHttpRequest *r, RdLoop *loop);

/* The pure parts, unit tested (tests/unit/test_rd_stream.c). */
#define RD_STREAM_MAX_TYPES 32
typedef struct RdStreamPos {
	int partition; /* -1: before every event */
	int64_t offset;
} RdStreamPos;
typedef struct RdStreamFilter {
	char types[RD_STREAM_MAX_TYPES][64];
	int n_types; /* 0: every type */
	bool has_aggregate;
	char aggregate_id[37];
} RdStreamFilter;
typedef struct RdStreamEvent {
	RdStreamPos pos;
	const char *type;
	const char *aggregate;
	const char *aggregate_id;
	const char *at;
} RdStreamEvent;
int rd_stream_pos_cmp(RdStreamPos a, RdStreamPos b);
/* ?types= (comma-separated catalog types) and ?aggregate_id= (a UUID), either
 * NULL; bad input adds details to err (and -1 for types). */
int rd_stream_filter_parse(RdStreamFilter *f, const char *types, const char *aggregate_id,
			   VpError *err);
bool rd_stream_filter_match(const RdStreamFilter *f, const char *type, const char *aggregate_id);
/* Where a stream starts: after Last-Event-ID (when not empty), else after
 * ?after=, else (*has_pos false) after the tenant's last event. -1 with a
 * detail on a malformed position. */
int rd_stream_start_parse(const char *last_event_id, const char *after, RdStreamPos *pos,
			  bool *has_pos, VpError *err);
/* "id: P:O\nevent: T\ndata: {...}\n\n" appended to out; -1 when out is full. */
struct VpBuf;
int rd_stream_format_event(struct VpBuf *out, const RdStreamEvent *ev);

/* as_of.c: GET /v1/patients/{id} and /v1/medical-records/{id} with ?as_of=
 * (docs/history.md), folded from event_log by the projector's handlers on a
 * thread and a connection of their own; at most max_folds at once per loop. */
typedef struct RdAsOf RdAsOf;
typedef struct RdRequest RdRequest;
RdAsOf *rd_asof_new(struct event_base *base, const char *dsn, long deadline_ms, int max_folds);
/* Starts the fold of rq (rq->as_of_us); -1 when max_folds are running or on
 * out of memory (the caller answers 503). The answer comes later, on the loop. */
int rd_asof_start(RdAsOf *a, RdRequest *rq);
/* Joins the running folds and answers their requests 503. */
RdAsOf *rd_asof_free(RdAsOf *a);
/* The pure parts, unit tested (tests/unit/test_rd_as_of.c). rd_asof_parse:
 * RFC 3339 not after now_us, else -1 with a detail on as_of. rd_asof_sql: a
 * reader statement over the fold's temp tables ("read." becomes "pg_temp.")
 * with now() read as the parameter $as_of_param (*reads_now: it does); NULL
 * when the statement reads another clock (or out of memory). */
int rd_asof_parse(const char *text, int64_t now_us, int64_t *out_us, VpError *err);
char *rd_asof_sql(const char *sql, int as_of_param, bool *reads_now);

/* One loop (thread) of the daemon. */
struct RdLoop {
	const RdShared *shared;
	struct event_base *base;
	RdPgPool *pool;
	RdConsistency *consistency;
	RdStreams *streams;
	RdAsOf *as_of;
	VpMetric *requests; /* vetpms_reader_thread_requests_total of this thread */
};

/* static.c: the dashboard page under /app/ (docs/dashboard.md). */
#define RD_STATIC_MAX_NAME 100
typedef enum {
	RD_STATIC_NONE,     /* not under /app */
	RD_STATIC_REDIRECT, /* "/app": to "/app/" */
	RD_STATIC_APP,      /* a file of app_dir */
	RD_STATIC_VENDOR,   /* a file of vendor_dir (/app/vendor/NAME) */
	RD_STATIC_BAD       /* under /app/ but no acceptable name: 404 */
} RdStaticKind;
/* Pure: what a decoded request path names; *name points into path (or at
 * "index.html" for "/app/") for APP and VENDOR. */
RdStaticKind rd_static_map(const char *path, const char **name);
/* One segment of [A-Za-z0-9._-], starting with a letter or digit, no "..",
 * at most RD_STATIC_MAX_NAME bytes, with an extension of the type table. */
bool rd_static_name_ok(const char *name);
/* The Content-Type of a file name by its extension; NULL when unknown. */
const char *rd_static_content_type(const char *name);
/* Answers a request under /app (true) or leaves it to the others (false). */
bool rd_static_route(VpHttpRequest *r, const RdConfig *cfg);

/* routes.c: the /v1 router given to vp_service (arg is the RdLoop). */
bool rd_route(VpHttpRequest *r, void *arg);

#endif
