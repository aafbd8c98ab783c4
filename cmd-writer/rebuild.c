/* Rebuilds the write model from the log: the partitions this instance owns,
 * from offset 0 to their end, read_committed (aborted transactions never
 * enter the model). Runs on the appender thread after init_transactions has
 * fenced older writers, so no other writer can add to these partitions while
 * we read them. Idempotency keys are kept for the window after their event's
 * own time: what expired before now is dropped as the log is read, so the
 * rebuild never holds more keys than the window does. A record that cannot
 * enter the model fails the rebuild, naming its position, unless ops have
 * quarantined that position: skipping silently is how aggregates vanish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_catalog.h"
#include "vp_event.h"
#include "vp_kafka.h"
#include "vp_kafka_end.h"
#include "vp_log.h"
#include "vp_time.h"
#include "writer.h"

/* A batch call waits this long for REBUILD_BATCH records: the last short
 * batch of a read (and an empty partition's end event) waits for no more */
#define REBUILD_POLL_MS 20
#define REBUILD_BATCH 1000
#define REBUILD_MAX_IDLE_US (60 * VP_US_PER_SEC) /* without progress: give up, retry */
#define REBUILD_END_QUERY_MS 5000
#define REBUILD_MAX_LOGGED_UNREADABLE 100 /* a topic of garbage must not flood the log */

bool wr_owns_partition(const WrConfig *cfg, int partition)
{
	return partition % cfg->instances == cfg->instance;
}

static void header_value(const rd_kafka_message_t *m, const char *name, char *out, size_t cap)
{
	rd_kafka_headers_t *headers = NULL;
	const void *value = NULL;
	size_t size = 0;
	out[0] = '\0';
	if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    value && size < cap) {
		memcpy(out, value, size);
		out[size] = '\0';
	}
}

/* An imported record: how far the import of its file got (import.c). */
static void note_import(WrState *state, const rd_kafka_message_t *m, const char *tenant_id)
{
	char digest[65], index[24];
	header_value(m, WR_HEADER_IMPORT, digest, sizeof(digest));
	header_value(m, WR_HEADER_IMPORT_INDEX, index, sizeof(index));
	WrTenant *t = *digest ? wr_state_tenant(state, tenant_id) : NULL;
	if (t)
		wr_import_note(t, digest, strtoll(index, NULL, 10) + 1);
}

/* One record into the model: 0, or -1 with why when it cannot enter it. A
 * record enters when its envelope decodes, the catalog accepts it (the
 * projector applies the same check) and the model takes it; an event the
 * model refuses (its tenant or aggregate unknown) would otherwise leave the
 * model without something the read side shows. Types the model does not track
 * (medical records, ...) are taken and ignored by wr_state_apply. Its command
 * id is remembered unless the record says the writer generated it; a record
 * without the origin header predates it and is remembered, as every record
 * was then (so are other producers' records). */
static int apply_record(WrState *state, const rd_kafka_message_t *m, int64_t now_us, char *why,
			size_t why_cap)
{
	VpEvent ev;
	char hash[65];
	char origin[16];
	char position[32];
	if (!m->payload) {
		snprintf(why, why_cap, "empty record (no value)");
		return -1;
	}
	if (vp_event_decode(m->payload, m->len, &ev, why, why_cap) < 0)
		return -1;
	int rc = vp_catalog_check(&ev, why, why_cap);
	header_value(m, WR_HEADER_COMMAND_HASH, hash, sizeof(hash));
	header_value(m, WR_HEADER_COMMAND_ID_ORIGIN, origin, sizeof(origin));
	snprintf(position, sizeof(position), "%d:%lld", m->partition, (long long)m->offset);
	const WrIdemNote idem = {.request_hash = hash, .position = position, .pending = false};
	/* an imported event's command id was not sent here: not remembered */
	bool generated = !strcmp(origin, WR_ORIGIN_WRITER) || !strcmp(origin, WR_ORIGIN_IMPORT);
	if (rc == 0)
		rc = wr_state_apply(state, &ev, generated ? NULL : &idem, why, why_cap);
	if (rc == 0)
		note_import(state, m, ev.tenant_id);
	WrTenant *t = rc < 0 || generated ? NULL : wr_state_tenant(state, ev.tenant_id);
	if (t) /* only a remembered key can push the window past its bound */
		wr_state_idem_expire(state, t, now_us);
	vp_event_release(&ev);
	return rc;
}

/* What became of the records that could not enter the model. */
typedef struct RebuildRefusals {
	long long unreadable;  /* not quarantined: the rebuild fails */
	long long quarantined; /* skipped because ops listed them */
	char first[384];       /* "partition P offset O: why" of the first unreadable */
} RebuildRefusals;

/* Takes one record. One that cannot enter the model is skipped only when its
 * exact position is quarantined; otherwise it is counted, logged, and the
 * rebuild reads on only to name every such record at once (ops quarantine
 * them in one restart), then fails. A quarantined record that can be read is
 * applied, not skipped: the projector applies it too, and a writer model
 * without it is the vanished aggregate the quarantine must never cause. */
static void take_record(const WrConfig *cfg, WrState *state, const rd_kafka_message_t *m,
			int64_t now_us, RebuildRefusals *refusals)
{
	char why[256];
	bool listed = wr_quarantined(&cfg->quarantine, m->partition, m->offset);
	if (apply_record(state, m, now_us, why, sizeof(why)) == 0) {
		if (listed)
			vp_log_warn(NULL, "quarantine_unneeded",
				    "partition %d offset %lld is readable and was applied; "
				    "remove it from the quarantine",
				    m->partition, (long long)m->offset);
		return;
	}
	if (listed) {
		refusals->quarantined++;
		vp_log_warn(NULL, "rebuild_quarantined",
			    "partition %d offset %lld skipped (quarantined): %s", m->partition,
			    (long long)m->offset, why);
		return;
	}
	if (refusals->unreadable++ == 0)
		snprintf(refusals->first, sizeof(refusals->first), "partition %d offset %lld: %s",
			 m->partition, (long long)m->offset, why);
	if (refusals->unreadable <= REBUILD_MAX_LOGGED_UNREADABLE)
		vp_log_error(NULL, "rebuild_unreadable", "partition %d offset %lld: %s",
			     m->partition, (long long)m->offset, why);
}

/* The owned partitions assigned from the beginning, each one's end taken
 * first (vp_kafka_end.h; partitions of other writers count as read): empty
 * ones are read at once, the others when their end is reached, marker or
 * not. No writer adds to them meanwhile (init_transactions fenced the
 * others), so that end is the end of the log. The number owned, or -1. */
static int assign_owned(const WrConfig *cfg, rd_kafka_t *rk, int partition_cnt, VpKafkaEnd *end,
			char *why, size_t why_cap)
{
	int owned = 0;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partition_cnt);
	for (int p = 0; p < partition_cnt; p++) {
		if (!wr_owns_partition(cfg, p)) {
			vp_kafka_end_skip(end, p);
			continue;
		}
		rd_kafka_topic_partition_list_add(parts, cfg->topic, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
		owned++;
	}
	/* before the assignment: a query sent while a fetch is in flight waits
	 * behind it on the broker's connection */
	vp_kafka_end_query(end, rk, cfg->topic, REBUILD_END_QUERY_MS);
	rd_kafka_resp_err_t err = vp_kafka_assign_known(rk, parts, REBUILD_END_QUERY_MS);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		snprintf(why, why_cap, "cannot assign the owned partitions: %s",
			 rd_kafka_err2str(err));
		return -1;
	}
	return owned;
}

/* Reads what assign_owned assigned until every partition is read: 0, or -1
 * with why after a minute without progress or when stopping. */
static int read_owned(const WrConfig *cfg, rd_kafka_t *rk, rd_kafka_queue_t *queue,
		      VpKafkaEnd *end, int owned, const atomic_bool *stopping, WrState *state,
		      int64_t started_us, RebuildRefusals *refusals, long long *records,
		      char *why, size_t why_cap)
{
	rd_kafka_message_t *batch[REBUILD_BATCH];
	int64_t progress_us = vp_time_mono_us();
	while (vp_kafka_end_left(end) > 0 && !atomic_load(stopping) &&
	       vp_time_mono_us() - progress_us < REBUILD_MAX_IDLE_US) {
		/* a batch per call: one queue lock and wake-up per REBUILD_BATCH
		 * records instead of per record */
		ssize_t n = rd_kafka_consume_batch_queue(queue, REBUILD_POLL_MS, batch, REBUILD_BATCH);
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = batch[i];
			vp_kafka_end_polled(end, m);
			if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				vp_log_warn(NULL, "rebuild_consume", "%s", rd_kafka_message_errstr(m));
			else if (!m->err) {
				take_record(cfg, state, m, started_us, refusals);
				(*records)++;
			}
			rd_kafka_message_destroy(m);
		}
		if (n > 0)
			progress_us = vp_time_mono_us();
		/* past trailing commit markers, which are never delivered */
		vp_kafka_end_positions(end, rk, cfg->topic);
	}
	if (vp_kafka_end_left(end) > 0) {
		snprintf(why, why_cap, "owned partitions not read to the end (%d of %d)",
			 owned - vp_kafka_end_left(end), owned);
		return -1;
	}
	return 0;
}

int wr_rebuild(const WrConfig *cfg, int partition_cnt, const atomic_bool *stopping,
	       WrState *state, long long *quarantined, char *why, size_t why_cap)
{
	int rc = WR_REBUILD_FAILED;
	long long records = 0;
	RebuildRefusals refusals = {0};
	rd_kafka_queue_t *queue = NULL;
	int64_t started_us = vp_time_now_us();
	rd_kafka_t *rk = vp_kafka_once_reader_new(cfg->brokers, "vetpms-cmd-writer-rebuild",
						 "vetpms-writer-rebuild", cfg->kafka_props, false,
						 why, why_cap);
	VpKafkaEnd *end = vp_kafka_end_new(partition_cnt);
	if (!rk || !end) {
		if (!end)
			snprintf(why, why_cap, "out of memory");
		goto done;
	}
	wr_state_init(state);
	if (cfg->idempotency_window_s > 0)
		state->idem_window_us = cfg->idempotency_window_s * VP_US_PER_SEC;
	/* the keys first: new clients' events are sealed with them (keys.c) */
	rc = wr_keys_read(cfg, state, why, why_cap);
	if (rc != WR_REBUILD_OK)
		goto done;
	rc = WR_REBUILD_FAILED;
	int owned = assign_owned(cfg, rk, partition_cnt, end, why, why_cap);
	if (owned < 0)
		goto done;
	queue = rd_kafka_queue_get_consumer(rk);
	if (!queue) {
		snprintf(why, why_cap, "no consumer queue");
		goto done;
	}
	if (read_owned(cfg, rk, queue, end, owned, stopping, state, started_us, &refusals,
		       &records, why, why_cap) < 0)
		goto done;
	*quarantined = refusals.quarantined;
	if (refusals.unreadable) {
		snprintf(why, why_cap, "%s (%lld unreadable record(s), each logged as rebuild_unreadable)",
			 refusals.first, refusals.unreadable);
		rc = WR_REBUILD_UNREADABLE;
		goto done;
	}
	wr_state_idem_expire_all(state, vp_time_now_us());
	vp_log_info(NULL, "rebuild",
		    "%lld records from %d owned partition(s), %lld quarantined and skipped, "
		    "%zu idempotency keys in the window",
		    records, owned, refusals.quarantined, state->idem_keys);
	rc = WR_REBUILD_OK;
done:
	vp_kafka_end_free(end);
	if (queue)
		rd_kafka_queue_destroy(queue);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return rc;
}
