/* projector: consumes vetpms.events and builds the read model in PostgreSQL,
 * exactly once (offsets stored with the rows). Configuration and module entry
 * points. */
#ifndef PROJECTOR_H
#define PROJECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "apply_runner.h" /* PjApplyResult */
#include "statements.h"   /* offsets.c */
#include "vp_event.h"
#include "vp_keyring.h"

typedef struct PjConfig {
	char *host;
	long port;
	char *brokers;
	char *topic;
	char *kafka_props;
	char *dsn;
	char *schema;
	char *migrations_dir;
	char *log_level;
	char *group;
	char *dlq_topic;
	char *keys_topic;      /* vetpms.keys: the wrapped keys (docs/privacy.md) */
	char *master_key_file; /* else VETPMS_MASTER_KEY, never an option */
	char *master_key_previous_file; /* during a rotation; else VETPMS_MASTER_KEY_PREVIOUS */
	long key_wait_ms;      /* how long a sealed event waits for its client's key */
	long batch_max;
	long batch_ms;
	long connections; /* PostgreSQL connections applying partitions in parallel */
	long mv_refresh_ms;
	long archive_interval_s; /* archive.c: period of the archive pass, 0 = off */
	long archive_batch;	 /* archive.c: rows (records, appointments) per batch */
	long rebuild_index_connections; /* `projector rebuild`: parallel CREATE INDEX */
	/* `projector rebuild`: the live schema to swap with once caught up
	 * (schema is then <live>_next); NULL for the live projector. */
	const char *swap_into;
	/* `projector rebuild --tenant T [--dry-run]`: one tenant only
	 * (rebuild_tenant.c); empty for a whole rebuild. */
	char *rebuild_tenant;
	bool dry_run;
} PjConfig;

/* migrate.c: applies schema/migrations/NNN_name.sql not yet recorded in
 * <schema>.schema_migrations, each in its own transaction, under an advisory
 * lock so two projectors never migrate at once. Returns the number applied or -1. */
int pj_migrate(PGconn *conn, const char *schema, const char *dir, char *why, size_t why_cap);

/* apply_events.c: the event log, and dispatch to the rows of the read models
 * (apply_<read model>.c, run by apply_runner.h). Statements run on a
 * connection whose search_path is the read schema; pj_apply_prepare prepares
 * every one of them once per connection. */
int pj_apply_prepare(PGconn *conn, char *why, size_t why_cap);
PjApplyResult pj_apply_event(PGconn *conn, const VpEvent *ev, const char *raw, size_t raw_len,
			     int32_t partition, int64_t offset, char *why, size_t why_cap);
/* The same in two steps, for a pipelined batch: every event's event_log row in
 * one statement (pj_log_events: the rows inserted, a duplicate id counting
 * none, or PJ_EXEC_*), then each event's read model row (pj_apply_model).
 * pj_apply_check is the catalog's check both run first. */
typedef struct PjLogEntry {
	const VpEvent *ev;
	const char *raw; /* the envelope as received */
	size_t raw_len;
	int32_t partition;
	int64_t offset;
} PjLogEntry;
PjApplyResult pj_apply_check(const VpEvent *ev, char *why, size_t why_cap);
long pj_log_events(PGconn *conn, const PjLogEntry *entries, int n, char *why, size_t why_cap);
PjApplyResult pj_apply_model(PGconn *conn, const VpEvent *ev, char *why, size_t why_cap);

/* apply_keys.c: sealed client events (v2) opened in place for the rows, with
 * the keyring pj_keys_use gave (once, before any apply; NULL: sealed events
 * are refused). PJ_APPLIED (opened, or nothing sealed) or PJ_REJECTED. */
void pj_keys_use(VpKeyring *kr, int wait_ms);
PjApplyResult pj_keys_open(const VpEvent *ev, char *why, size_t why_cap);
/* Whether a tenant's key records are all under a master key this process
 * does not hold (why names both), asked after a failed batch: the
 * projector stops, as it does at start, rather than dead-letter the
 * tenant's client events one by one (a keys topic with no tenant key at
 * start gave nothing to check then). A tenant whose key it unwrapped before
 * a rotation's newer record arrived is not one: a failed batch (PostgreSQL
 * away) during a rotation does not stop it. */
bool pj_keys_wrong_master(char *why, size_t why_cap);
/* Whether the keys topic's first master record this projector read names a
 * master key it does not hold (it started before the deployment's first
 * writer, with another key): why, and the projector stops. */
bool pj_keys_master_refused(char *why, size_t why_cap);
/* Whether the keyring holds the client's erasure marker (false without one;
 * tenant_id NULL: under any tenant). */
bool pj_keys_client_erased(const char *tenant_id, const char *client_id);

/* offsets.c: read.projection_offsets. */
#define PJ_NO_OFFSET (-1) /* no row: start from the beginning */
int pj_offsets_load(PGconn *conn, const char *topic, int32_t partition, int64_t *next_offset,
		    char *why, size_t why_cap);
/* Moves a partition's next_offset from expected (PJ_NO_OFFSET: no row yet) to
 * next, in the caller's transaction. 1 when moved, 0 when the stored value was
 * not the expected one (another projector moved it: fenced), -1 on error. */
int pj_offsets_advance(PGconn *conn, const char *topic, int32_t partition, int64_t expected,
		       int64_t next, char *why, size_t why_cap);
int pj_offsets_prepare(PGconn *conn, char *why, size_t why_cap);

/* deadletter.c: the dead-letter row (in the batch transaction) and the DLQ
 * record (produced before the commit, flushed by pj_deadletter_flush). */
typedef struct PjDeadLetters PjDeadLetters;
PjDeadLetters *pj_deadletter_new(const char *brokers, const char *kafka_props, const char *topic,
				 char *why, size_t why_cap);
PjDeadLetters *pj_deadletter_free(PjDeadLetters *dl);
int pj_deadletter_prepare(PGconn *conn, char *why, size_t why_cap);
/* What the envelope said of a dead letter; NULL members when it did not
 * decode (the tenant then from the record's key, if a UUID). */
typedef struct PjDeadLetterOf {
	const char *tenant_id;
	const char *type;
	const char *aggregate_id;
} PjDeadLetterOf;
/* A dead letter of a client erased before it is recorded discarded, with
 * no payload in the row nor in the DLQ record (deadletter.c). */
int pj_deadletter_record(PjDeadLetters *dl, PGconn *conn, const rd_kafka_message_t *msg,
			 const PjDeadLetterOf *of, const char *error, char *why, size_t why_cap);
/* The reason of a dead letter whose payload erasure removed: ClientErased's
 * statement (apply_directory.c) and dead letters recorded after it. */
#define PJ_ERASED_DEAD_LETTER                                                                  \
	"the client was erased (ClientErased): its personal fields were removed from this "    \
	"dead letter"
/* Waits for every DLQ record produced so far; -1 when one failed. */
int pj_deadletter_flush(PjDeadLetters *dl, int timeout_ms, char *why, size_t why_cap);

/* redrive.c: the dead letters ops asked to apply again (status 'redrive'),
 * in log order, each in its own transaction through pj_apply_event, only
 * those of the partitions owned[] says this process applies; run by the live
 * consume loop between batches. Returns how many were applied (the others
 * are back to 'dead' with the reason in last_error), or -1 (why). Also
 * refreshes the pending-by-type gauges registered by
 * pj_redrive_register_metrics. */
void pj_redrive_register_metrics(void);
int pj_redrive_step(PGconn *conn, const bool *owned, int n_owned, char *why, size_t why_cap);

/* rebuild.c: blue/green rebuild. pj_rebuild_reset drops the fresh schema
 * before its migrations. pj_rebuild_step runs between batches with the events
 * still to fetch (lag, -1 unknown): when the rebuild is nearly caught up (by
 * the lag and by the two schemas' positions) it first builds the deferred
 * indexes (rebuild_indexes.c) and returns to the fill; the next time, it locks
 * the live schema and swaps once the rebuild has applied every position the
 * live one has: 1 swapped, 0 not yet, -1 error (why; retried later). */
typedef struct PjRebuild PjRebuild;
int pj_rebuild_reset(PGconn *conn, const char *next_schema, char *why, size_t why_cap);
PjRebuild *pj_rebuild_new(const PjConfig *cfg, const char *channel);
PjRebuild *pj_rebuild_free(PjRebuild *rb);
int pj_rebuild_step(PjRebuild *rb, int64_t lag, char *why, size_t why_cap);

/* rebuild_indexes.c: the bulk fill. pj_rebuild_defer_indexes, right after
 * the fresh schema's migrations, records and drops every secondary index no
 * handler needs (*n_deferred of them); pj_rebuild_build_indexes (run by
 * pj_rebuild_step once the fill has caught up, before the swap) creates what
 * is still recorded over n_connections connections of its own; 0 when none
 * is left. pj_rebuild_session sets the rebuild's consume session up
 * (synchronous_commit off: a dead rebuild starts again from offset 0). */
#define PJ_REBUILD_MAX_INDEX_CONNECTIONS 16
int pj_rebuild_defer_indexes(PGconn *conn, const char *next_schema, int *n_deferred,
			     char *why, size_t why_cap);
int pj_rebuild_build_indexes(PGconn *conn, const char *dsn, const char *next_schema,
			     int n_connections, char *why, size_t why_cap);
int pj_rebuild_session(PGconn *conn, char *why, size_t why_cap);

/* rebuild_tenant.c: `projector rebuild --tenant T`. Rebuilds T's rows of
 * every table of cfg->schema from T's partition into a scratch schema and
 * replaces them in one transaction (cfg->dry_run: prints what differs and
 * changes nothing). Returns the process's exit code: */
#define PJ_TENANT_EXIT_FAILED  1 /* PostgreSQL, Kafka or the swap failed; nothing replaced */
#define PJ_TENANT_EXIT_BAD     2 /* --tenant is not a UUID */
#define PJ_TENANT_EXIT_UNKNOWN 3 /* the live schema knows no such tenant */
#define PJ_TENANT_EXIT_STOPPED 4 /* a signal stopped it before the swap */
int pj_rebuild_tenant(const PjConfig *cfg, volatile sig_atomic_t *stop);

/* views.c: the refresh thread of the analysts' materialized views. Each view
 * is marked dirty on its own: after a committed batch that applied an event
 * feeding it (pj_views_fed_by: a bit per view), and all of them once at start
 * and after each re-seek (a rebuild may have swapped the schema). A dirty view
 * is refreshed at most every cfg->mv_refresh_ms, a clean one never. */
typedef struct PjViews PjViews;
#define PJ_VIEWS_ALL (~0u)
PjViews *pj_views_start(const PjConfig *cfg); /* NULL: out of memory or no thread */
/* The views an applied event changes: a bit per view (0: none). */
unsigned pj_views_fed_by(const VpEvent *ev);
void pj_views_mark_dirty(PjViews *views, unsigned views_mask);
PjViews *pj_views_stop(PjViews *views);

/* archive.c: moves the closed rows of the tenants of the owned partitions
 * past their settings into the archive_* tables (migration 012). The live
 * consume loop calls pj_archive_step between batches (no applier holds a
 * slice then) on its own connection: it starts a pass when the timer is due
 * or an archive_runs row is pending (polled once a second), and works at
 * most ~100 ms of it per call, each batch one statement. Returns the rows
 * moved in this call, 0 when idle, -1 (why) when it failed (the pass is
 * over; a pending run is taken up again while PostgreSQL was lost).
 * pj_archive_abandon drops a pass in progress (re-seek: the owned partitions
 * may have changed). While a pass is under way the loop does not wait idle
 * for events between its slices. */
typedef struct PjArchive PjArchive;
PjArchive *pj_archive_new(const PjConfig *cfg);
PjArchive *pj_archive_free(PjArchive *ar);
long pj_archive_step(PjArchive *ar, PGconn *conn, const bool *owned, int n_owned, char *why,
		     size_t why_cap);
void pj_archive_abandon(PjArchive *ar);
bool pj_archive_busy(const PjArchive *ar); /* a pass under way (NULL: false) */

/* consumer.c: the consume loop. Returns when *stop becomes true (0), when a
 * rebuild has swapped its schema in (1), or on a fatal error (-1). */
typedef struct PjStatus {
	void (*set_pg_ok)(bool ok);
	void (*set_kafka_ok)(bool ok);
} PjStatus;
int pj_consumer_run(const PjConfig *cfg, volatile sig_atomic_t *stop, const PjStatus *status);
/* Reads a pipeline's results up to its Sync (the live batches and the
 * tenant rebuild's): *clean false when one failed, had 0 rows, or result
 * expect_at (from 0; -1 none) had other than expect_rows rows. -1 when the
 * connection failed (why). */
int pj_drain_pipeline(PGconn *conn, int expect_at, long expect_rows, bool *clean, char *why,
		      size_t why_cap);

#endif
