/* The consume loop: Kafka consumer group (read_committed, no auto-commit) whose
 * positions live in PostgreSQL. A batch of up to N events or T ms is applied in
 * one transaction that also moves the partitions' next_offset and NOTIFYs the
 * progress, so the read model and its positions move together (exactly-once
 * effect across kill -9). On any PostgreSQL failure the batch is rolled back,
 * the connection remade, and the partitions re-sought to the stored offsets.
 * A batch is first sent whole in one libpq pipeline (one round trip); only
 * when something in it does not apply cleanly (a duplicate, a dead letter, a
 * fenced position, an error) is it rolled back and applied again one statement
 * at a time, with a savepoint per event.
 * Partitions are independent (a tenant's events share one), so a batch is
 * split by partition % VETPMS_PROJECTOR_CONNECTIONS over that many
 * connections (Applier): each slice is its own transaction with its own
 * partitions' positions, and the consumer waits for every slice before it
 * polls again. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "projector.h"
#include "vp_json.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_pg.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define PJ_MAX_PARTITIONS 1024
#define DLQ_FLUSH_MS	  30000

typedef struct Projector Projector;
typedef enum { BATCH_COMMITTED, BATCH_FENCED, BATCH_FAILED } BatchOutcome;

/* One PostgreSQL connection applying the partitions p with p % n_appliers ==
 * index, each slice of a batch in a transaction of its own that also moves
 * those partitions' positions. Applier 0 runs on the consumer thread with its
 * connection (p->conn); the others are threads with connections of their
 * own, woken for a slice and waited for before the next one. */
typedef struct Applier {
	Projector *p;
	int index;
	PGconn *conn; /* applier 0: borrowed p->conn for the slice */
	rd_kafka_message_t **slice; /* borrowed from the batch */
	int slice_len;
	VpEvent *events;	  /* the slice decoded (pipelined apply) */
	PjLogEntry *log_entries; /* its event_log rows */
	int64_t next_of[PJ_MAX_PARTITIONS];
	bool seen[PJ_MAX_PARTITIONS];
	unsigned views_touched; /* the views (pj_views_fed_by) the slice's events change */
	/* the slice's outcome, read by the consumer thread once it is done */
	BatchOutcome outcome;
	int n_applied;
	int n_dead;
	char why[1024];
	/* worker threads (index > 0) */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool has_work; /* under lock: a slice to run, cleared when done */
	bool quit;
} Applier;

struct Projector {
	const PjConfig *cfg;
	const PjStatus *status;
	rd_kafka_t *consumer;
	PjDeadLetters *dead_letters;
	PjViews *views;
	unsigned views_touched; /* the views (pj_views_fed_by) the batch's events change */
	PGconn *conn;
	bool migrated;
	bool need_reseek; /* positions unknown (PostgreSQL lost): drop what is polled */
	char channel[96];
	char live_channel[96]; /* rebuild: where the reader listens */
	bool owned[PJ_MAX_PARTITIONS];
	int64_t committed_next[PJ_MAX_PARTITIONS]; /* stored next_offset or PJ_NO_OFFSET */
	int64_t fetch_next[PJ_MAX_PARTITIONS];	   /* lowest offset still to batch */
	/* fetched up to the end of the partition (its last record may be
	 * followed by transaction markers, so offsets alone cannot tell) */
	bool at_end[PJ_MAX_PARTITIONS];
	PjRebuild *rebuild; /* `projector rebuild` only */
	PjArchive *archive; /* the live projector only (archive.c) */
	rd_kafka_message_t **batch;
	int batch_len;
	Applier *appliers;
	int n_appliers;
	/* The DLQ producer's flush and failure count are shared: one applier at
	 * a time takes the savepoint path, where dead letters are made. */
	pthread_mutex_t dead_letter_lock;
};

static VpMetric *applied_total;
static VpMetric *duplicates_total;
static VpMetric *dead_letters_total;
static VpMetric *batches_total;
static VpMetric *batch_failures_total;
static VpMetric *lag_events;
static VpMetric *batch_seconds;

static void register_metrics(void)
{
	applied_total = vp_metrics_counter("vetpms_projector_events_applied_total", NULL,
					   "Events applied to the read model");
	duplicates_total = vp_metrics_counter("vetpms_projector_events_duplicate_total", NULL,
					      "Events skipped: their id was already in event_log");
	dead_letters_total = vp_metrics_counter("vetpms_projector_dead_letters_total", NULL,
						"Events sent to the dead letters");
	batches_total = vp_metrics_counter("vetpms_projector_batches_total", NULL,
					   "Batches committed");
	batch_failures_total = vp_metrics_counter("vetpms_projector_batch_failures_total", NULL,
						  "Batches rolled back and retried");
	lag_events = vp_metrics_gauge("vetpms_projector_lag_events", NULL,
				      "Records between the stored positions and the high watermarks");
	batch_seconds = vp_metrics_histogram("vetpms_projector_batch_duration_seconds", NULL,
					     "Time to apply and commit one batch");
	pj_redrive_register_metrics();
}

/* NOTIFY channel of a schema's progress: the reader listens on the live one. */
static void progress_channel(const char *schema, char *out, size_t cap)
{
	if (!strcmp(schema, "read"))
		snprintf(out, cap, VP_PROGRESS_CHANNEL);
	else
		snprintf(out, cap, VP_PROGRESS_CHANNEL "_%s", schema);
}

static void drop_batch(Projector *p)
{
	for (int i = 0; i < p->batch_len; i++)
		rd_kafka_message_destroy(p->batch[i]);
	p->batch_len = 0;
}

static void lose_pg(Projector *p)
{
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
	p->need_reseek = true;
	p->status->set_pg_ok(false);
	pj_archive_abandon(p->archive);
}

/* Live projector only, between batches like the redrive: a slice of the
 * archive pass when one is due or running (archive.c). */
static void archive_step(Projector *p)
{
	char why[512];
	if (!p->archive || !p->conn || p->need_reseek)
		return;
	if (pj_archive_step(p->archive, p->conn, p->owned, PJ_MAX_PARTITIONS, why, sizeof(why)) < 0) {
		vp_log_warn(NULL, "archive", "%s", why);
		if (!vp_pg_ping(p->conn))
			lose_pg(p);
	}
}

/* Live projector only, once a second between batches (no applier holds a
 * slice then): the dead letters ops asked to redrive (redrive.c). A failure
 * is only logged: the request stays and is tried again. */
static void redrive_requested(Projector *p)
{
	char why[512];
	if (p->rebuild || !p->conn || p->need_reseek)
		return;
	int redriven = pj_redrive_step(p->conn, p->owned, PJ_MAX_PARTITIONS, why, sizeof(why));
	if (redriven < 0) {
		vp_log_warn(NULL, "redrive", "%s", why);
		if (!vp_pg_ping(p->conn))
			lose_pg(p);
	} else if (redriven > 0) {
		pj_views_mark_dirty(p->views, PJ_VIEWS_ALL);
	}
}

/* search_path = the read schema, then every prepared statement; a rebuild's
 * sessions (every applier's) also get pj_rebuild_session's settings. */
static int setup_session(PGconn *conn, const PjConfig *cfg, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {cfg->schema};
	if (cfg->swap_into && pj_rebuild_session(conn, why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(conn, "SELECT format('SET search_path = %I, public', $1::text)", 1,
		       params, &res, why, why_cap) < 0)
		return -1;
	int rc = vp_pg_exec(conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
	PQclear(res);
	if (rc < 0 || pj_offsets_prepare(conn, why, why_cap) < 0 ||
	    pj_deadletter_prepare(conn, why, why_cap) < 0 ||
	    pj_apply_prepare(conn, why, why_cap) < 0)
		return -1;
	return 0;
}

static int ensure_pg(Projector *p)
{
	char why[512];
	if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	lose_pg(p);
	p->conn = vp_pg_connect(p->cfg->dsn, "vetpms-projector", why, sizeof(why));
	if (!p->conn) {
		vp_log_warn(NULL, "pg_connect", "%s", why);
		return -1;
	}
	if (!p->migrated && p->cfg->swap_into &&
	    pj_rebuild_reset(p->conn, p->cfg->schema, why, sizeof(why)) < 0) {
		vp_log_error(NULL, "rebuild", "cannot reset schema %s: %s", p->cfg->schema, why);
		lose_pg(p);
		return -1;
	}
	if (!p->migrated) {
		int applied = pj_migrate(p->conn, p->cfg->schema, p->cfg->migrations_dir, why,
					 sizeof(why));
		if (applied < 0) {
			vp_log_error(NULL, "migrate", "%s", why);
			lose_pg(p);
			return -1;
		}
		vp_log_info(NULL, "migrate", "schema %s: %d migration(s) applied", p->cfg->schema,
			    applied);
		int deferred = 0;
		if (p->cfg->swap_into && pj_rebuild_defer_indexes(p->conn, p->cfg->schema, &deferred,
								 why, sizeof(why)) < 0) {
			vp_log_error(NULL, "rebuild", "cannot defer the indexes of %s: %s",
				     p->cfg->schema, why);
			lose_pg(p);
			return -1;
		}
		if (p->cfg->swap_into)
			vp_log_info(NULL, "rebuild_deferred", "%d secondary index(es) of %s built "
				    "after the fill", deferred, p->cfg->schema);
		p->migrated = true;
	}
	if (setup_session(p->conn, p->cfg, why, sizeof(why)) < 0) {
		vp_log_error(NULL, "pg_session", "%s", why);
		lose_pg(p);
		return -1;
	}
	p->status->set_pg_ok(true);
	return 0;
}

/* Sets each partition's offset in parts to its stored next_offset (or the
 * beginning) and records it as this process's view. */
static int load_positions(Projector *p, rd_kafka_topic_partition_list_t *parts)
{
	char why[512];
	if (ensure_pg(p) < 0)
		return -1;
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		int64_t next;
		if (tp->partition < 0 || tp->partition >= PJ_MAX_PARTITIONS) {
			vp_log_error(NULL, "assign", "partition %d beyond %d", (int)tp->partition,
				     PJ_MAX_PARTITIONS);
			return -1;
		}
		if (pj_offsets_load(p->conn, p->cfg->topic, tp->partition, &next, why,
				    sizeof(why)) < 0) {
			vp_log_warn(NULL, "assign", "%s", why);
			lose_pg(p);
			return -1;
		}
		tp->offset = next == PJ_NO_OFFSET ? RD_KAFKA_OFFSET_BEGINNING : next;
		p->committed_next[tp->partition] = next;
		p->fetch_next[tp->partition] = next == PJ_NO_OFFSET ? 0 : next;
		p->at_end[tp->partition] = false;
	}
	return 0;
}

/* Assigns parts from the stored positions; while PostgreSQL cannot say them,
 * the partitions stay assigned but paused until reseek() succeeds. */
static void assign_from_store(Projector *p, rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++)
		if (parts->elems[i].partition >= 0 && parts->elems[i].partition < PJ_MAX_PARTITIONS)
			p->owned[parts->elems[i].partition] = true;
	if (load_positions(p, parts) == 0) {
		rd_kafka_resp_err_t err = rd_kafka_assign(p->consumer, parts);
		if (err)
			vp_log_error(NULL, "assign", "%s", rd_kafka_err2str(err));
		rd_kafka_resume_partitions(p->consumer, parts);
		p->need_reseek = err != 0;
		for (int i = 0; i < parts->cnt; i++)
			vp_log_info(NULL, "assign", "partition %d from offset %lld",
				    (int)parts->elems[i].partition,
				    (long long)parts->elems[i].offset);
		return;
	}
	rd_kafka_assign(p->consumer, parts);
	rd_kafka_pause_partitions(p->consumer, parts);
	p->need_reseek = true;
}

static int reseek(Projector *p)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (rd_kafka_assignment(p->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	drop_batch(p);
	pj_archive_abandon(p->archive);
	assign_from_store(p, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (p->need_reseek)
		return -1;
	/* The positions may come from a schema a rebuild swapped in, with
	 * events this process never applied: refresh the views once. */
	pj_views_mark_dirty(p->views, PJ_VIEWS_ALL);
	return 0;
}

/* Invalid UTF-8 in a text parameter would fail the insert, and snprintf may
 * have cut a sequence: trim until the text is valid. */
static void utf8_trim(char *text)
{
	size_t len = strlen(text);
	while (len > 0 && !vp_json_utf8_valid(text, len))
		text[--len] = '\0';
}

/* Tenant of a record whose envelope did not decode: its key, if a UUID. */
static const char *tenant_from_key(const rd_kafka_message_t *msg, char out[37])
{
	VpUuid tenant;
	if (!msg->key || vp_uuid_parse(msg->key, msg->key_len, &tenant) < 0)
		return NULL;
	vp_uuid_format(&tenant, out);
	return out;
}

static int simple(Applier *a, const char *sql, char *why, size_t why_cap)
{
	return vp_pg_exec(a->conn, sql, 0, NULL, NULL, why, why_cap);
}

/* Applies one record inside the batch transaction: 0 done (applied, skipped
 * or dead-lettered), -1 the batch failed. */
static int apply_record(Applier *a, const rd_kafka_message_t *msg, bool first, int *n_applied,
			int *n_dead, char *why, size_t why_cap)
{
	char reason[512] = "";
	char key_tenant[37], type[sizeof(((VpEvent *)0)->type)], aggregate_id[37];
	VpEvent ev;
	PjDeadLetterOf of = {0};
	PjApplyResult result;

	/* One savepoint per event: a bad event rolls back only itself. */
	if (simple(a, first ? "SAVEPOINT ev" : "RELEASE SAVEPOINT ev; SAVEPOINT ev", why,
		   why_cap) < 0)
		return -1;
	if (vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) < 0) {
		result = PJ_REJECTED;
		of.tenant_id = tenant_from_key(msg, key_tenant);
	} else {
		result = pj_apply_event(a->conn, &ev, msg->payload, msg->len, msg->partition,
					msg->offset, reason, sizeof(reason));
		if (result == PJ_APPLIED)
			a->views_touched |= pj_views_fed_by(&ev);
		snprintf(key_tenant, sizeof(key_tenant), "%s", ev.tenant_id);
		snprintf(type, sizeof(type), "%s", ev.type);
		snprintf(aggregate_id, sizeof(aggregate_id), "%s", ev.aggregate_id);
		of = (PjDeadLetterOf){key_tenant, type, aggregate_id};
		vp_event_release(&ev);
	}
	switch (result) {
	case PJ_APPLIED:
		(*n_applied)++;
		return 0;
	case PJ_DUPLICATE:
		vp_metric_add(duplicates_total, 1);
		return 0;
	case PJ_FAILED:
		snprintf(why, why_cap, "%s", reason);
		return -1;
	case PJ_REJECTED:
		break;
	}
	utf8_trim(reason);
	if (of.type)
		utf8_trim(type);
	vp_log_warn(NULL, "dead_letter", "partition %d offset %lld: %s", (int)msg->partition,
		    (long long)msg->offset, reason);
	if (simple(a, "ROLLBACK TO SAVEPOINT ev", why, why_cap) < 0 ||
	    pj_deadletter_record(a->p->dead_letters, a->conn, msg, &of, reason, why, why_cap) < 0)
		return -1;
	(*n_dead)++;
	return 0;
}

/* The batch one statement at a time: a savepoint per event, so a dead letter
 * rolls back only its own event. */
static BatchOutcome apply_one_by_one(Applier *a, const int *touched, int n_touched,
				     const int64_t *next_of, int *n_applied, int *n_dead,
				     char *why, size_t why_cap)
{
	if (simple(a, "BEGIN", why, why_cap) < 0)
		return BATCH_FAILED;
	/* Positions first: the row locks fence another projector for the whole
	 * transaction, and a moved position means this batch is stale. */
	for (int i = 0; i < n_touched; i++) {
		int part = touched[i];
		int moved = pj_offsets_advance(a->conn, a->p->cfg->topic, part,
					       a->p->committed_next[part], next_of[part], why,
					       why_cap);
		if (moved < 0)
			return BATCH_FAILED;
		if (moved == 0) {
			snprintf(why, why_cap, "partition %d: stored offset moved by another projector",
				 part);
			return BATCH_FENCED;
		}
	}
	for (int i = 0; i < a->slice_len; i++)
		if (apply_record(a, a->slice[i], i == 0, n_applied, n_dead, why, why_cap) < 0)
			return BATCH_FAILED;
	for (int i = 0; i < n_touched; i++) {
		char payload[48];
		snprintf(payload, sizeof(payload), "%d:%lld", touched[i],
			 (long long)next_of[touched[i]]);
		const char *params[] = {a->p->channel, payload};
		if (vp_pg_exec(a->conn, "SELECT pg_notify($1, $2)", 2, params, NULL, why,
			       why_cap) < 0)
			return BATCH_FAILED;
	}
	if (*n_dead > 0 && pj_deadletter_flush(a->p->dead_letters, DLQ_FLUSH_MS, why, why_cap) < 0)
		return BATCH_FAILED;
	if (simple(a, "COMMIT", why, why_cap) < 0)
		return BATCH_FAILED;
	return BATCH_COMMITTED;
}

typedef enum {
	PIPE_OPEN,     /* every statement affected a row: the transaction awaits COMMIT */
	PIPE_FALLBACK, /* something did not apply cleanly: rolled back, apply one by one */
	PIPE_FAILED,   /* the connection failed */
} PipeOutcome;

/* Decodes the batch for the pipeline; false when a record cannot apply
 * cleanly (it does not decode, or the catalog rejects it before any SQL). */
static bool decode_batch(Applier *a, VpEvent *events, PjLogEntry *entries, int *n_decoded)
{
	char reason[512];
	*n_decoded = 0;
	for (int i = 0; i < a->slice_len; i++) {
		const rd_kafka_message_t *msg = a->slice[i];
		if (vp_event_decode(msg->payload, msg->len, &events[i], reason, sizeof(reason)) < 0)
			return false;
		(*n_decoded)++;
		if (pj_apply_check(&events[i], reason, sizeof(reason)) != PJ_APPLIED)
			return false;
		entries[i] = (PjLogEntry){&events[i], msg->payload, msg->len, msg->partition,
					  msg->offset};
	}
	return true;
}

/* Reads every result up to the pipeline's Sync. *clean stays true when each
 * one succeeded and none had a row count of 0 (a duplicate event, a violated
 * invariant, a fenced position), and result number expect_at (from 0) had
 * expect_rows rows (the batch's event_log rows: none a duplicate; expect_at
 * -1: no such result). -1 when the connection failed. */
int pj_drain_pipeline(PGconn *conn, int expect_at, long expect_rows, bool *clean, char *why,
		      size_t why_cap)
{
	bool after_null = false;
	int at = 0;
	*clean = true;
	for (;;) {
		PGresult *res = PQgetResult(conn);
		if (!res) {
			/* One NULL ends each statement's results; two in a row, or a
			 * broken connection, mean the Sync will not come. */
			if (after_null || PQstatus(conn) != CONNECTION_OK) {
				snprintf(why, why_cap, "pipeline: %s", PQerrorMessage(conn));
				why[strcspn(why, "\n")] = '\0';
				return -1;
			}
			after_null = true;
			continue;
		}
		after_null = false;
		ExecStatusType status = PQresultStatus(res);
		if (status == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			return 0;
		}
		if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
			const char *affected = PQcmdTuples(res);
			long rows = *affected ? strtol(affected, NULL, 10) : -1;
			if (rows == 0 || (at == expect_at && rows != expect_rows))
				*clean = false;
		} else {
			*clean = false;
		}
		at++;
		PQclear(res);
	}
}

/* The whole batch in one pipeline: BEGIN, the offset moves, every event's
 * event_log row in one statement, each event's read model statement, the
 * NOTIFYs, then one Sync. No savepoints: any event that does not apply
 * cleanly sends the batch to apply_one_by_one. */
static PipeOutcome apply_pipelined(Applier *a, const int *touched, int n_touched,
				   const int64_t *next_of, int *n_applied, char *why,
				   size_t why_cap)
{
	bool queued, clean;
	int n_decoded;
	char reason[512];
	PipeOutcome outcome = PIPE_FAILED;

	if (!decode_batch(a, a->events, a->log_entries, &n_decoded)) {
		outcome = PIPE_FALLBACK;
		goto done;
	}
	if (PQenterPipelineMode(a->conn) != 1) {
		snprintf(why, why_cap, "pipeline mode: %s", PQerrorMessage(a->conn));
		goto done;
	}
	queued = PQsendQueryParams(a->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
	for (int i = 0; queued && i < n_touched; i++)
		queued = pj_offsets_advance(a->conn, a->p->cfg->topic, touched[i],
					    a->p->committed_next[touched[i]], next_of[touched[i]],
					    why, why_cap) == 1;
	/* Result 0 is BEGIN, then one per offset move: then the log's rows. */
	queued = queued && pj_log_events(a->conn, a->log_entries, a->slice_len, why, why_cap) == 1;
	for (int i = 0; queued && i < a->slice_len; i++) {
		queued = pj_apply_model(a->conn, &a->events[i], reason, sizeof(reason)) ==
			 PJ_APPLIED;
		if (queued) {
			a->views_touched |= pj_views_fed_by(&a->events[i]);
			(*n_applied)++;
		}
	}
	for (int i = 0; queued && i < n_touched; i++) {
		char payload[48];
		snprintf(payload, sizeof(payload), "%d:%lld", touched[i],
			 (long long)next_of[touched[i]]);
		const char *params[] = {a->p->channel, payload};
		queued = PQsendQueryParams(a->conn, "SELECT pg_notify($1, $2)", 2, NULL, params,
					   NULL, NULL, 0) == 1;
	}
	if (PQpipelineSync(a->conn) != 1) {
		snprintf(why, why_cap, "pipeline sync: %s", PQerrorMessage(a->conn));
		goto done;
	}
	if (pj_drain_pipeline(a->conn, 1 + n_touched, a->slice_len, &clean, why, why_cap) < 0)
		goto done;
	if (PQexitPipelineMode(a->conn) != 1) {
		snprintf(why, why_cap, "pipeline exit: %s", PQerrorMessage(a->conn));
		goto done;
	}
	if (queued && clean) {
		outcome = PIPE_OPEN;
		goto done;
	}
	if (simple(a, "ROLLBACK", why, why_cap) < 0)
		goto done;
	outcome = PIPE_FALLBACK;
done:
	for (int i = 0; i < n_decoded; i++)
		vp_event_release(&a->events[i]);
	if (outcome == PIPE_FALLBACK) {
		*n_applied = 0;
		a->views_touched = 0;
		vp_log_debug(NULL, "batch", "%d record(s): not clean in the pipeline, one by one",
			     a->slice_len);
	}
	return outcome;
}

static BatchOutcome run_batch(Applier *a, int *n_applied, int *n_dead, char *why,
			      size_t why_cap)
{
	int touched[PJ_MAX_PARTITIONS];
	int n_touched = 0;
	int64_t *next_of = a->next_of;
	bool *seen = a->seen;
	BatchOutcome outcome = BATCH_COMMITTED;

	for (int i = 0; i < a->slice_len; i++) {
		int32_t part = a->slice[i]->partition;
		if (!seen[part]) {
			seen[part] = true;
			touched[n_touched++] = part;
		}
		next_of[part] = a->slice[i]->offset + 1;
	}
	for (int i = 0; i < n_touched; i++)
		seen[touched[i]] = false;
	a->views_touched = 0;

	switch (apply_pipelined(a, touched, n_touched, next_of, n_applied, why, why_cap)) {
	case PIPE_OPEN:
		if (simple(a, "COMMIT", why, why_cap) < 0)
			outcome = BATCH_FAILED;
		break;
	case PIPE_FALLBACK:
		pthread_mutex_lock(&a->p->dead_letter_lock);
		outcome = apply_one_by_one(a, touched, n_touched, next_of, n_applied, n_dead, why,
					   why_cap);
		pthread_mutex_unlock(&a->p->dead_letter_lock);
		break;
	case PIPE_FAILED:
		outcome = BATCH_FAILED;
		break;
	}
	if (outcome != BATCH_COMMITTED)
		return outcome;
	/* Only this applier moves these partitions (partition % n_appliers). */
	for (int i = 0; i < n_touched; i++)
		a->p->committed_next[touched[i]] = next_of[touched[i]];
	return BATCH_COMMITTED;
}

/* A worker's own connection, made on its first slice and after a failure. */
static int applier_connect(Applier *a)
{
	a->conn = vp_pg_connect(a->p->cfg->dsn, "vetpms-projector", a->why, sizeof(a->why));
	if (a->conn && setup_session(a->conn, a->p->cfg, a->why, sizeof(a->why)) == 0)
		return 0;
	if (a->conn)
		PQfinish(a->conn);
	a->conn = NULL;
	return -1;
}

/* Runs a's slice and leaves the outcome in a: committed, or rolled back (a
 * worker that failed drops its connection: the next slice makes a new one). */
static void applier_run(Applier *a)
{
	a->n_applied = a->n_dead = 0;
	a->why[0] = '\0';
	if (!a->conn && applier_connect(a) < 0) {
		a->outcome = BATCH_FAILED;
		return;
	}
	a->outcome = run_batch(a, &a->n_applied, &a->n_dead, a->why, sizeof(a->why));
	if (a->outcome == BATCH_COMMITTED)
		return;
	char ignored[256];
	simple(a, "ROLLBACK", ignored, sizeof(ignored));
	if (a->outcome == BATCH_FAILED && a->index > 0) {
		PQfinish(a->conn);
		a->conn = NULL;
	}
}

static void *applier_main(void *arg)
{
	Applier *a = arg;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->has_work && !a->quit)
			pthread_cond_wait(&a->wake, &a->lock);
		if (a->quit)
			break;
		pthread_mutex_unlock(&a->lock);
		applier_run(a);
		pthread_mutex_lock(&a->lock);
		a->has_work = false;
		pthread_cond_broadcast(&a->wake);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static int appliers_start(Projector *p, int n)
{
	size_t slots = (size_t)p->cfg->batch_max;
	p->appliers = calloc((size_t)n, sizeof(*p->appliers));
	if (!p->appliers)
		return -1;
	p->n_appliers = n;
	for (int i = 0; i < n; i++) {
		Applier *a = &p->appliers[i];
		a->p = p;
		a->index = i;
		a->slice = calloc(slots, sizeof(*a->slice));
		a->events = calloc(slots, sizeof(*a->events));
		a->log_entries = calloc(slots, sizeof(*a->log_entries));
		if (!a->slice || !a->events || !a->log_entries)
			return -1;
		if (i == 0)
			continue;
		pthread_mutex_init(&a->lock, NULL);
		pthread_cond_init(&a->wake, NULL);
		if (pthread_create(&a->thread, NULL, applier_main, a) != 0)
			return -1;
		a->started = true;
	}
	return 0;
}

static void appliers_stop(Projector *p)
{
	for (int i = 0; p->appliers && i < p->n_appliers; i++) {
		Applier *a = &p->appliers[i];
		if (a->started) {
			pthread_mutex_lock(&a->lock);
			a->quit = true;
			pthread_cond_broadcast(&a->wake);
			pthread_mutex_unlock(&a->lock);
			pthread_join(a->thread, NULL);
			pthread_mutex_destroy(&a->lock);
			pthread_cond_destroy(&a->wake);
		}
		if (i > 0 && a->conn)
			PQfinish(a->conn);
		free(a->slice);
		free(a->events);
		free(a->log_entries);
	}
	free(p->appliers);
	p->appliers = NULL;
}

/* Splits the batch by partition % n_appliers, runs every slice (applier 0
 * here, the others on their threads) and waits for all of them: when this
 * returns, no applier holds anything of the batch (a revoked partition's
 * work is drained before the rebalance callback returns). */
static void appliers_run(Projector *p)
{
	for (int i = 0; i < p->n_appliers; i++)
		p->appliers[i].slice_len = 0;
	for (int i = 0; i < p->batch_len; i++) {
		Applier *a = &p->appliers[p->batch[i]->partition % p->n_appliers];
		a->slice[a->slice_len++] = p->batch[i];
	}
	for (int i = 1; i < p->n_appliers; i++) {
		Applier *a = &p->appliers[i];
		if (a->slice_len == 0)
			continue;
		pthread_mutex_lock(&a->lock);
		a->has_work = true;
		pthread_cond_broadcast(&a->wake);
		pthread_mutex_unlock(&a->lock);
	}
	Applier *own = &p->appliers[0];
	if (own->slice_len > 0) {
		own->conn = p->conn;
		applier_run(own);
		own->conn = NULL;
	}
	for (int i = 1; i < p->n_appliers; i++) {
		Applier *a = &p->appliers[i];
		pthread_mutex_lock(&a->lock);
		while (a->has_work)
			pthread_cond_wait(&a->wake, &a->lock);
		pthread_mutex_unlock(&a->lock);
	}
}

/* Events in the owned partitions not applied yet, as far as the last fetch
 * knows; -1 while no partition is owned. */
static int64_t current_lag(Projector *p)
{
	int64_t lag = 0;
	bool any = false;
	for (int part = 0; part < PJ_MAX_PARTITIONS; part++) {
		int64_t low = 0, high = 0;
		if (!p->owned[part] ||
		    rd_kafka_get_watermark_offsets(p->consumer, p->cfg->topic, part, &low, &high))
			continue;
		int64_t next = p->committed_next[part] == PJ_NO_OFFSET ? low : p->committed_next[part];
		any = true;
		if (high > next && !(p->at_end[part] && next == p->fetch_next[part]))
			lag += high - next;
	}
	return any ? lag : -1;
}

static void update_lag(Projector *p)
{
	int64_t lag = current_lag(p);
	vp_metric_set(lag_events, lag < 0 ? 0 : lag);
}

/* Rebuild only: one step towards the swap (rebuild.c). True once swapped. */
static bool swapped_in(Projector *p)
{
	char why[1024];
	if (!p->rebuild || !p->conn || p->need_reseek)
		return false;
	int rc = pj_rebuild_step(p->rebuild, current_lag(p), why, sizeof(why));
	if (rc < 0)
		vp_log_warn(NULL, "rebuild", "swap not done, will retry: %s", why);
	else if (rc == 1)
		vp_log_info(NULL, "rebuild", "schema %s is live as %s", p->cfg->schema,
			    p->cfg->swap_into);
	return rc == 1;
}

/* Applies the pending batch, a slice per applier; a slice that failed was
 * rolled back and its connection forgotten, so the next round reconnects and
 * re-seeks every partition to its stored position (nothing is skipped; the
 * slices that committed are not applied again). */
static int flush_batch(Projector *p)
{
	int n_applied = 0, n_dead = 0, count = p->batch_len;
	unsigned views_touched = 0;
	bool failed = false;
	if (p->batch_len == 0)
		return 0;
	if (!p->conn || p->need_reseek) {
		drop_batch(p);
		return -1;
	}
	int64_t started = vp_time_mono_us();
	appliers_run(p);
	drop_batch(p);
	for (int i = 0; i < p->n_appliers; i++) {
		Applier *a = &p->appliers[i];
		if (a->slice_len == 0)
			continue;
		if (a->outcome == BATCH_COMMITTED) {
			n_applied += a->n_applied;
			n_dead += a->n_dead;
			views_touched |= a->views_touched;
			continue;
		}
		failed = true;
		vp_metric_add(batch_failures_total, 1);
		if (a->outcome == BATCH_FENCED) {
			vp_log_warn(NULL, "batch_fenced", "%s; re-seeking", a->why);
		} else {
			vp_log_error(NULL, "batch_failed", "connection %d: %d record(s) rolled back: %s",
				     i, a->slice_len, a->why);
			if (i == 0)
				lose_pg(p);
		}
		p->need_reseek = true;
	}
	/* What the committed slices applied counts, even when another failed. */
	vp_metric_add(applied_total, n_applied);
	vp_metric_add(dead_letters_total, n_dead);
	pj_views_mark_dirty(p->views, views_touched);
	if (failed)
		return -1;
	vp_metric_add(batches_total, 1);
	vp_metric_observe_us(batch_seconds, vp_time_mono_us() - started);
	update_lag(p);
	vp_log_debug(NULL, "batch", "%d record(s): %d applied, %d dead letter(s)", count, n_applied,
		     n_dead);
	return 0;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	Projector *p = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign_from_store(p, parts);
		return;
	}
	/* Revoked: what was polled is applied now, while we still own it (the
	 * offsets' compare-and-set would refuse it later anyway). */
	flush_batch(p);
	for (int i = 0; i < parts->cnt; i++) {
		int part = parts->elems[i].partition;
		if (part >= 0 && part < PJ_MAX_PARTITIONS)
			p->owned[part] = false;
		vp_log_info(NULL, "revoke", "partition %d", part);
	}
	rd_kafka_assign(rk, NULL);
}

/* The group member's session, before VETPMS_KAFKA_PROPS (ops may change it).
 * After a Kafka outage longer than the session, the member rejoins under a
 * new id and the restarted coordinator holds the join until the member it
 * reloaded with the group expires: with librdkafka's 45 s, projection stood
 * still 31-32 s after a 50 s outage (bench/kafka_restart.py; docs/decisions.md).
 * Heartbeats come from librdkafka's own thread, so a long batch does not
 * end the session; max.poll.interval.ms bounds the loop. */
#define PJ_SESSION_PROPS "session.timeout.ms=10000,heartbeat.interval.ms=1000"

static rd_kafka_t *consumer_new(Projector *p, char *why, size_t why_cap)
{
	const PjConfig *cfg = p->cfg;
	char *props = vp_kafka_props_join(PJ_SESSION_PROPS, cfg->kafka_props);
	if (!props) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	rd_kafka_conf_t *conf = vp_kafka_consumer_conf_new(cfg->brokers, "vetpms-projector",
							   cfg->group, props, why, why_cap);
	free(props);
	if (!conf)
		return NULL;
	if (vp_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "enable.partition.eof", "true", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "auto.offset.reset", "earliest", why, why_cap) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, why_cap);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	return rk;
}

/* Waits up to batch_ms for the first event, then takes only what the
 * consumer already holds, up to batch_max: an event arriving on an idle
 * system is applied at once, and batches grow only while events arrive faster
 * than a transaction commits (they queue meanwhile: group commit, as the
 * writer does). The wait bounds an idle loop, which still probes health. */
static void collect(Projector *p, volatile sig_atomic_t *stop)
{
	/* an archive pass under way works between batches: no idle wait then,
	 * only a look at what the consumer holds */
	long wait_ms = pj_archive_busy(p->archive) ? 1 : p->cfg->batch_ms;
	int64_t deadline = vp_time_mono_us() + wait_ms * 1000;
	while (p->batch_len < p->cfg->batch_max && !*stop) {
		int64_t left_ms = (deadline - vp_time_mono_us()) / 1000;
		if (p->batch_len == 0 && left_ms <= 0)
			break;
		rd_kafka_message_t *msg =
		    rd_kafka_consumer_poll(p->consumer, p->batch_len ? 0 : (int)left_ms);
		if (!msg) {
			if (p->batch_len)
				break; /* drained: apply what we have */
			continue;
		}
		int part = msg->partition;
		bool known = part >= 0 && part < PJ_MAX_PARTITIONS;
		if (msg->err) {
			if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && known)
				p->at_end[part] = true;
			else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				vp_log_warn(NULL, "consume", "%s", rd_kafka_message_errstr(msg));
			rd_kafka_message_destroy(msg);
			continue;
		}
		if (known)
			p->at_end[part] = false;
		/* Stale fetches (before a re-seek) and partitions no longer ours are
		 * dropped; they come again from the stored position. */
		if (p->need_reseek || !known || !p->owned[part] ||
		    msg->offset < p->fetch_next[part]) {
			rd_kafka_message_destroy(msg);
			continue;
		}
		p->fetch_next[part] = msg->offset + 1;
		p->batch[p->batch_len++] = msg;
	}
}

int pj_consumer_run(const PjConfig *cfg, volatile sig_atomic_t *stop, const PjStatus *status)
{
	char why[512];
	int rc = -1;
	Projector *p = calloc(1, sizeof(*p));
	if (!p) {
		vp_log_error(NULL, "startup", "out of memory");
		return -1;
	}
	p->cfg = cfg;
	p->status = status;
	pthread_mutex_init(&p->dead_letter_lock, NULL);
	p->batch = calloc((size_t)cfg->batch_max, sizeof(*p->batch));
	if (!p->batch || appliers_start(p, (int)cfg->connections) < 0) {
		vp_log_error(NULL, "startup", "out of memory or no applier thread");
		goto done;
	}
	progress_channel(cfg->schema, p->channel, sizeof(p->channel));
	if (cfg->swap_into) {
		progress_channel(cfg->swap_into, p->live_channel, sizeof(p->live_channel));
		p->rebuild = pj_rebuild_new(cfg, p->live_channel);
		if (!p->rebuild) {
			vp_log_error(NULL, "startup", "out of memory");
			goto done;
		}
	}
	register_metrics();
	if (!cfg->swap_into && !(p->archive = pj_archive_new(cfg))) {
		vp_log_error(NULL, "startup", "out of memory");
		goto done;
	}
	p->dead_letters = pj_deadletter_new(cfg->brokers, cfg->kafka_props, cfg->dlq_topic, why,
					    sizeof(why));
	if (!p->dead_letters) {
		vp_log_error(NULL, "startup", "dlq producer: %s", why);
		goto done;
	}
	p->consumer = consumer_new(p, why, sizeof(why));
	if (!p->consumer) {
		vp_log_error(NULL, "startup", "kafka consumer: %s", why);
		goto done;
	}
	rd_kafka_poll_set_consumer(p->consumer);
	/* Migrate before joining the group: a fresh schema exists before any
	 * partition is assigned. */
	while (!*stop && ensure_pg(p) < 0)
		sleep(1);
	/* Migrated now: the views exist. One refresh at start catches up with
	 * whatever a previous process applied but did not refresh. */
	p->views = pj_views_start(cfg);
	if (!p->views) {
		vp_log_error(NULL, "startup", "materialized views thread");
		goto done;
	}
	pj_views_mark_dirty(p->views, PJ_VIEWS_ALL);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	if (!topics) {
		vp_log_error(NULL, "startup", "out of memory");
		goto done;
	}
	rd_kafka_topic_partition_list_add(topics, cfg->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		vp_log_error(NULL, "startup", "subscribe %s: %s", cfg->topic, rd_kafka_err2str(err));
		goto done;
	}
	int64_t next_probe = 0;
	while (!*stop) {
		int64_t now = vp_time_mono_us();
		if (now >= next_probe) {
			status->set_kafka_ok(vp_kafka_probe(p->consumer, NULL, 2000, NULL) == 0);
			if (pj_keys_master_refused(why, sizeof(why))) {
				vp_log_error(NULL, "keys", "cannot go on: %s", why);
				rc = -1;
				goto done;
			}
			if (p->conn && !vp_pg_ping(p->conn))
				lose_pg(p);
			else
				redrive_requested(p);
			next_probe = now + VP_US_PER_SEC;
		}
		if ((ensure_pg(p) < 0 || (p->need_reseek && reseek(p) < 0))) {
			/* Keep serving the group (rebalances) while PostgreSQL is away. */
			rd_kafka_message_t *msg = rd_kafka_consumer_poll(p->consumer, 500);
			if (msg)
				rd_kafka_message_destroy(msg);
			continue;
		}
		collect(p, stop);
		if (flush_batch(p) < 0) {
			if (pj_keys_wrong_master(why, sizeof(why))) {
				vp_log_error(NULL, "keys", "cannot go on: %s", why);
				rc = -1;
				goto done;
			}
			usleep(200000);
		} else if (swapped_in(p)) {
			rc = 1;
			goto done;
		} else {
			archive_step(p);
		}
	}
	flush_batch(p);
	rc = 0;
done:
	pj_views_stop(p->views);
	drop_batch(p); /* messages must go before their handle */
	if (p->consumer) {
		rd_kafka_consumer_close(p->consumer);
		rd_kafka_destroy(p->consumer);
	}
	pj_deadletter_free(p->dead_letters);
	pj_rebuild_free(p->rebuild);
	pj_archive_free(p->archive);
	if (p->conn)
		PQfinish(p->conn);
	appliers_stop(p);
	pthread_mutex_destroy(&p->dead_letter_lock);
	free(p->batch);
	free(p);
	return rc;
}
