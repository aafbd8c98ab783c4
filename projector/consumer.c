/* The consume loop: Kafka consumer group (read_committed, no auto-commit) whose
 * positions live in PostgreSQL. A batch of up to N events or T ms is applied in
 * one transaction that also moves the partitions' next_offset and NOTIFYs the
 * progress, so the read model and its positions move together (exactly-once
 * effect across kill -9). On any PostgreSQL failure the batch is rolled back,
 * the connection remade, and the partitions re-sought to the stored offsets.
 * A batch is first sent whole in one libpq pipeline (one round trip); only
 * when something in it does not apply cleanly (a duplicate, a dead letter, a
 * fenced position, an error) is it rolled back and applied again one statement
 * at a time, with a savepoint per event. */
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

typedef struct Projector {
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
	rd_kafka_message_t **batch;
	int batch_len;
} Projector;

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
}

/* search_path = the read schema, then every prepared statement. */
static int setup_session(Projector *p, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {p->cfg->schema};
	if (vp_pg_exec(p->conn, "SELECT format('SET search_path = %I, public', $1::text)", 1,
		       params, &res, why, why_cap) < 0)
		return -1;
	int rc = vp_pg_exec(p->conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
	PQclear(res);
	if (rc < 0 || pj_offsets_prepare(p->conn, why, why_cap) < 0 ||
	    pj_deadletter_prepare(p->conn, why, why_cap) < 0 ||
	    pj_apply_prepare(p->conn, why, why_cap) < 0)
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
		p->migrated = true;
	}
	if (setup_session(p, why, sizeof(why)) < 0) {
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

typedef enum { BATCH_COMMITTED, BATCH_FENCED, BATCH_FAILED } BatchOutcome;

static int simple(Projector *p, const char *sql, char *why, size_t why_cap)
{
	return vp_pg_exec(p->conn, sql, 0, NULL, NULL, why, why_cap);
}

/* Applies one record inside the batch transaction: 0 done (applied, skipped
 * or dead-lettered), -1 the batch failed. */
static int apply_record(Projector *p, const rd_kafka_message_t *msg, bool first, int *n_applied,
			int *n_dead, char *why, size_t why_cap)
{
	char reason[512] = "";
	char key_tenant[37];
	VpEvent ev;
	const char *tenant = NULL;
	PjApplyResult result;

	/* One savepoint per event: a bad event rolls back only itself. */
	if (simple(p, first ? "SAVEPOINT ev" : "RELEASE SAVEPOINT ev; SAVEPOINT ev", why,
		   why_cap) < 0)
		return -1;
	if (vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) < 0) {
		result = PJ_REJECTED;
		tenant = tenant_from_key(msg, key_tenant);
	} else {
		result = pj_apply_event(p->conn, &ev, msg->payload, msg->len, msg->partition,
					msg->offset, reason, sizeof(reason));
		if (result == PJ_APPLIED)
			p->views_touched |= pj_views_fed_by(&ev);
		snprintf(key_tenant, sizeof(key_tenant), "%s", ev.tenant_id);
		tenant = key_tenant;
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
	vp_log_warn(NULL, "dead_letter", "partition %d offset %lld: %s", (int)msg->partition,
		    (long long)msg->offset, reason);
	if (simple(p, "ROLLBACK TO SAVEPOINT ev", why, why_cap) < 0 ||
	    pj_deadletter_record(p->dead_letters, p->conn, msg, tenant, reason, why, why_cap) < 0)
		return -1;
	(*n_dead)++;
	return 0;
}

/* The batch one statement at a time: a savepoint per event, so a dead letter
 * rolls back only its own event. */
static BatchOutcome apply_one_by_one(Projector *p, const int *touched, int n_touched,
				     const int64_t *next_of, int *n_applied, int *n_dead,
				     char *why, size_t why_cap)
{
	if (simple(p, "BEGIN", why, why_cap) < 0)
		return BATCH_FAILED;
	/* Positions first: the row locks fence another projector for the whole
	 * transaction, and a moved position means this batch is stale. */
	for (int i = 0; i < n_touched; i++) {
		int part = touched[i];
		int moved = pj_offsets_advance(p->conn, p->cfg->topic, part,
					       p->committed_next[part], next_of[part], why,
					       why_cap);
		if (moved < 0)
			return BATCH_FAILED;
		if (moved == 0) {
			snprintf(why, why_cap, "partition %d: stored offset moved by another projector",
				 part);
			return BATCH_FENCED;
		}
	}
	for (int i = 0; i < p->batch_len; i++)
		if (apply_record(p, p->batch[i], i == 0, n_applied, n_dead, why, why_cap) < 0)
			return BATCH_FAILED;
	for (int i = 0; i < n_touched; i++) {
		char payload[48];
		snprintf(payload, sizeof(payload), "%d:%lld", touched[i],
			 (long long)next_of[touched[i]]);
		const char *params[] = {p->channel, payload};
		if (vp_pg_exec(p->conn, "SELECT pg_notify($1, $2)", 2, params, NULL, why,
			       why_cap) < 0)
			return BATCH_FAILED;
	}
	if (*n_dead > 0 && pj_deadletter_flush(p->dead_letters, DLQ_FLUSH_MS, why, why_cap) < 0)
		return BATCH_FAILED;
	if (simple(p, "COMMIT", why, why_cap) < 0)
		return BATCH_FAILED;
	return BATCH_COMMITTED;
}

typedef enum {
	PIPE_OPEN,     /* every statement affected a row: the transaction awaits COMMIT */
	PIPE_FALLBACK, /* something did not apply cleanly: rolled back, apply one by one */
	PIPE_FAILED,   /* the connection failed */
} PipeOutcome;

/* Queues one record's statements; false when it cannot apply cleanly (it does
 * not decode, is rejected before any SQL) or could not be sent. */
static bool queue_record(Projector *p, const rd_kafka_message_t *msg)
{
	char reason[512] = "";
	VpEvent ev;
	if (vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) < 0)
		return false;
	PjApplyResult result = pj_apply_event(p->conn, &ev, msg->payload, msg->len,
					      msg->partition, msg->offset, reason, sizeof(reason));
	if (result == PJ_APPLIED)
		p->views_touched |= pj_views_fed_by(&ev);
	vp_event_release(&ev);
	return result == PJ_APPLIED;
}

/* Reads every result up to the pipeline's Sync. *clean stays true when each
 * one succeeded and none had a row count of 0 (a duplicate event, a violated
 * invariant, a fenced position). -1 when the connection failed. */
static int drain_pipeline(PGconn *conn, bool *clean, char *why, size_t why_cap)
{
	bool after_null = false;
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
			if (*affected && strtol(affected, NULL, 10) == 0)
				*clean = false;
		} else {
			*clean = false;
		}
		PQclear(res);
	}
}

/* The whole batch in one pipeline: BEGIN, the offset moves, each event's
 * statements, the NOTIFYs, then one Sync. No savepoints: any event that does
 * not apply cleanly sends the batch to apply_one_by_one. */
static PipeOutcome apply_pipelined(Projector *p, const int *touched, int n_touched,
				   const int64_t *next_of, int *n_applied, char *why,
				   size_t why_cap)
{
	bool queued, clean;
	if (PQenterPipelineMode(p->conn) != 1) {
		snprintf(why, why_cap, "pipeline mode: %s", PQerrorMessage(p->conn));
		return PIPE_FAILED;
	}
	queued = PQsendQueryParams(p->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
	for (int i = 0; queued && i < n_touched; i++)
		queued = pj_offsets_advance(p->conn, p->cfg->topic, touched[i],
					    p->committed_next[touched[i]], next_of[touched[i]],
					    why, why_cap) == 1;
	for (int i = 0; queued && i < p->batch_len; i++) {
		queued = queue_record(p, p->batch[i]);
		if (queued)
			(*n_applied)++;
	}
	for (int i = 0; queued && i < n_touched; i++) {
		char payload[48];
		snprintf(payload, sizeof(payload), "%d:%lld", touched[i],
			 (long long)next_of[touched[i]]);
		const char *params[] = {p->channel, payload};
		queued = PQsendQueryParams(p->conn, "SELECT pg_notify($1, $2)", 2, NULL, params,
					   NULL, NULL, 0) == 1;
	}
	if (PQpipelineSync(p->conn) != 1) {
		snprintf(why, why_cap, "pipeline sync: %s", PQerrorMessage(p->conn));
		return PIPE_FAILED;
	}
	if (drain_pipeline(p->conn, &clean, why, why_cap) < 0)
		return PIPE_FAILED;
	if (PQexitPipelineMode(p->conn) != 1) {
		snprintf(why, why_cap, "pipeline exit: %s", PQerrorMessage(p->conn));
		return PIPE_FAILED;
	}
	if (queued && clean)
		return PIPE_OPEN;
	*n_applied = 0;
	if (simple(p, "ROLLBACK", why, why_cap) < 0)
		return PIPE_FAILED;
	vp_log_debug(NULL, "batch", "%d record(s): not clean in the pipeline, one by one",
		     p->batch_len);
	return PIPE_FALLBACK;
}

static BatchOutcome run_batch(Projector *p, int *n_applied, int *n_dead, char *why,
			      size_t why_cap)
{
	int touched[PJ_MAX_PARTITIONS];
	int n_touched = 0;
	static int64_t next_of[PJ_MAX_PARTITIONS];
	static bool seen[PJ_MAX_PARTITIONS];
	BatchOutcome outcome = BATCH_COMMITTED;

	for (int i = 0; i < p->batch_len; i++) {
		int32_t part = p->batch[i]->partition;
		if (!seen[part]) {
			seen[part] = true;
			touched[n_touched++] = part;
		}
		next_of[part] = p->batch[i]->offset + 1;
	}
	for (int i = 0; i < n_touched; i++)
		seen[touched[i]] = false;
	p->views_touched = 0;

	switch (apply_pipelined(p, touched, n_touched, next_of, n_applied, why, why_cap)) {
	case PIPE_OPEN:
		if (simple(p, "COMMIT", why, why_cap) < 0)
			outcome = BATCH_FAILED;
		break;
	case PIPE_FALLBACK:
		outcome = apply_one_by_one(p, touched, n_touched, next_of, n_applied, n_dead, why,
					   why_cap);
		break;
	case PIPE_FAILED:
		outcome = BATCH_FAILED;
		break;
	}
	if (outcome != BATCH_COMMITTED)
		return outcome;
	for (int i = 0; i < n_touched; i++)
		p->committed_next[touched[i]] = next_of[touched[i]];
	pj_views_mark_dirty(p->views, p->views_touched);
	return BATCH_COMMITTED;
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

/* Applies the pending batch; on failure rolls back and forgets the connection,
 * so the next round reconnects and re-seeks (nothing is skipped). */
static int flush_batch(Projector *p)
{
	char why[1024] = "";
	int n_applied = 0, n_dead = 0;
	if (p->batch_len == 0)
		return 0;
	if (!p->conn || p->need_reseek) {
		drop_batch(p);
		return -1;
	}
	int64_t started = vp_time_mono_us();
	BatchOutcome outcome = run_batch(p, &n_applied, &n_dead, why, sizeof(why));
	int count = p->batch_len;
	drop_batch(p);
	if (outcome == BATCH_COMMITTED) {
		vp_metric_add(applied_total, n_applied);
		vp_metric_add(dead_letters_total, n_dead);
		vp_metric_add(batches_total, 1);
		vp_metric_observe_us(batch_seconds, vp_time_mono_us() - started);
		update_lag(p);
		vp_log_debug(NULL, "batch", "%d record(s): %d applied, %d dead letter(s)", count,
			     n_applied, n_dead);
		return 0;
	}
	vp_metric_add(batch_failures_total, 1);
	char ignored[256];
	simple(p, "ROLLBACK", ignored, sizeof(ignored));
	if (outcome == BATCH_FENCED) {
		vp_log_warn(NULL, "batch_fenced", "%s; re-seeking", why);
		p->need_reseek = true;
	} else {
		vp_log_error(NULL, "batch_failed", "%d record(s) rolled back: %s", count, why);
		lose_pg(p);
	}
	return -1;
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

static rd_kafka_t *consumer_new(Projector *p, char *why, size_t why_cap)
{
	const PjConfig *cfg = p->cfg;
	rd_kafka_conf_t *conf = vp_kafka_consumer_conf_new(cfg->brokers, "vetpms-projector",
							   cfg->group, cfg->kafka_props, why,
							   why_cap);
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

/* Polls until the batch is full or the window closed. */
static void collect(Projector *p, volatile sig_atomic_t *stop)
{
	int64_t deadline = vp_time_mono_us() + p->cfg->batch_ms * 1000;
	while (p->batch_len < p->cfg->batch_max && !*stop) {
		int64_t left_ms = (deadline - vp_time_mono_us()) / 1000;
		if (left_ms <= 0)
			break;
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(p->consumer, (int)left_ms);
		if (!msg)
			continue;
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
	p->batch = calloc((size_t)cfg->batch_max, sizeof(*p->batch));
	if (!p->batch) {
		vp_log_error(NULL, "startup", "out of memory");
		goto done;
	}
	progress_channel(cfg->schema, p->channel, sizeof(p->channel));
	if (cfg->swap_into) {
		progress_channel(cfg->swap_into, p->live_channel, sizeof(p->live_channel));
		p->rebuild = pj_rebuild_new(cfg->dsn, cfg->swap_into, cfg->schema, cfg->topic,
					    p->live_channel);
		if (!p->rebuild) {
			vp_log_error(NULL, "startup", "out of memory");
			goto done;
		}
	}
	register_metrics();
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
			if (p->conn && !vp_pg_ping(p->conn))
				lose_pg(p);
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
		if (flush_batch(p) < 0)
			usleep(200000);
		else if (swapped_in(p)) {
			rc = 1;
			goto done;
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
	if (p->conn)
		PQfinish(p->conn);
	free(p->batch);
	free(p);
	return rc;
}
