/* Rebuilds the write model from the log: the partitions this instance owns,
 * from offset 0 to their end, read_committed (aborted transactions never
 * enter the model). Runs on the appender thread after init_transactions has
 * fenced older writers, so no other writer can add to these partitions while
 * we read them. Idempotency keys are kept for the window after their event's
 * own time: what expired before now is dropped as the log is read, so the
 * rebuild never holds more keys than the window does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_event.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_time.h"
#include "writer.h"

#define REBUILD_POLL_MS 500
#define REBUILD_MAX_IDLE_POLLS 120 /* a minute without progress: give up, retry */

bool wr_owns_partition(const WrConfig *cfg, int partition)
{
	return partition % cfg->instances == cfg->instance;
}

static rd_kafka_t *reader_new(const WrConfig *cfg, char *why, size_t why_cap)
{
	/* The group is never joined: partitions are assigned explicitly and no
	 * position is committed. */
	rd_kafka_conf_t *conf = vp_kafka_consumer_conf_new(cfg->brokers, "vetpms-cmd-writer-rebuild",
							   "vetpms-writer-rebuild", cfg->kafka_props,
							   why, why_cap);
	if (!conf)
		return NULL;
	if (vp_kafka_conf_set(conf, "enable.partition.eof", "true", why, why_cap) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, why_cap);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	return rk;
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

/* One record into the model; a record we cannot read is logged and skipped
 * (the projector dead-letters it; the writer cannot do better than ignore).
 * Its command id is remembered unless the record says the writer generated
 * it; a record without the origin header predates it and is remembered, as
 * every record was then (so are other producers' records). */
static void apply_record(WrState *state, const rd_kafka_message_t *m, int64_t now_us)
{
	VpEvent ev;
	char why[256];
	char hash[65];
	char origin[16];
	char position[32];
	if (vp_event_decode(m->payload, m->len, &ev, why, sizeof(why)) < 0) {
		vp_log_warn(NULL, "rebuild_skip", "partition %d offset %lld: %s", m->partition,
			    (long long)m->offset, why);
		return;
	}
	header_value(m, WR_HEADER_COMMAND_HASH, hash, sizeof(hash));
	header_value(m, WR_HEADER_COMMAND_ID_ORIGIN, origin, sizeof(origin));
	snprintf(position, sizeof(position), "%d:%lld", m->partition, (long long)m->offset);
	const WrIdemNote idem = {.request_hash = hash, .position = position, .pending = false};
	bool generated = !strcmp(origin, WR_ORIGIN_WRITER);
	if (wr_state_apply(state, &ev, generated ? NULL : &idem, why, sizeof(why)) < 0)
		vp_log_warn(NULL, "rebuild_skip", "partition %d offset %lld: %s", m->partition,
			    (long long)m->offset, why);
	WrTenant *t = generated ? NULL : wr_state_tenant(state, ev.tenant_id);
	if (t) /* only a remembered key can push the window past its bound */
		wr_state_idem_expire(state, t, now_us);
	vp_event_release(&ev);
}

int wr_rebuild(const WrConfig *cfg, int partition_cnt, const atomic_bool *stopping,
	       WrState *state, char *why, size_t why_cap)
{
	int rc = -1, owned = 0, at_end = 0, idle = 0;
	long long records = 0;
	int64_t started_us = vp_time_now_us();
	rd_kafka_t *rk = reader_new(cfg, why, why_cap);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partition_cnt);
	if (!rk || !parts)
		goto done;
	wr_state_init(state);
	if (cfg->idempotency_window_s > 0)
		state->idem_window_us = cfg->idempotency_window_s * VP_US_PER_SEC;
	for (int p = 0; p < partition_cnt; p++) {
		if (!wr_owns_partition(cfg, p))
			continue;
		rd_kafka_topic_partition_list_add(parts, cfg->topic, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
		owned++;
	}
	if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(why, why_cap, "cannot assign the owned partitions");
		goto done;
	}
	while (at_end < owned && idle < REBUILD_MAX_IDLE_POLLS && !atomic_load(stopping)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, REBUILD_POLL_MS);
		if (!m) {
			idle++;
			continue;
		}
		idle = 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			at_end++;
		else if (m->err)
			vp_log_warn(NULL, "rebuild_consume", "%s", rd_kafka_message_errstr(m));
		else {
			apply_record(state, m, started_us);
			records++;
		}
		rd_kafka_message_destroy(m);
	}
	if (at_end < owned) {
		snprintf(why, why_cap, "owned partitions not read to the end (%d of %d)", at_end,
			 owned);
		goto done;
	}
	wr_state_idem_expire_all(state, vp_time_now_us());
	vp_log_info(NULL, "rebuild",
		    "%lld records from %d owned partition(s), %zu idempotency keys in the window",
		    records, owned, state->idem_keys);
	rc = 0;
done:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return rc;
}
