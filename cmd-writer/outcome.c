/* What became of a transaction whose commit outcome the producer could not
 * tell (it failed fatally inside the commit, e.g. Kafka aborted the
 * transaction for its timeout while the writer was frozen, and the abort then
 * met INVALID_TXN_STATE).
 *
 * A transaction commits whole or not at all, so one of its records answers
 * for all of them. librdkafka sends EndTxn(commit) only once every record of
 * the transaction has a successful delivery report, so a batch with a record
 * that has none cannot have committed. Otherwise the first record's delivery
 * report gave its offset: read that partition read_committed from there. The
 * record itself comes back when the transaction committed; a later record, or
 * the partition's end past it, means it was aborted (read_committed skips
 * aborted records). While the transaction is still open its last stable
 * offset stays at or before the record and nothing comes back: the outcome is
 * unknown until whoever holds the transactional.id next (this writer
 * re-initialised, or the newer instance that fenced it) completes it. */
#include <stdio.h>
#include <string.h>

#include "vp_kafka.h"
#include "vp_time.h"
#include "writer.h"

#define OUTCOME_POLL_MS 200

/* The record that answers for the batch: NULL when one of them has no
 * successful delivery report (then nothing of it can have committed). */
static const WrAppend *probe_record(const WrAppend *batch)
{
	for (const WrAppend *it = batch; it; it = it->next)
		if (!it->delivered) /* its error says why the commit failed, not this */
			return NULL;
	return batch;
}

static rd_kafka_t *reader_at(const WrConfig *cfg, const WrAppend *probe, char *why, size_t why_cap)
{
	rd_kafka_t *rk = vp_kafka_log_reader_new(cfg->brokers, "vetpms-cmd-writer-outcome",
						"vetpms-writer-rebuild", cfg->kafka_props, false, why,
						why_cap);
	if (!rk)
		return NULL;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, cfg->topic, probe->partition)->offset =
		probe->offset;
	rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		snprintf(why, why_cap, "cannot assign partition %d: %s", probe->partition,
			 rd_kafka_err2str(err));
		rd_kafka_destroy(rk);
		return NULL;
	}
	return rk;
}

/* One consumed message against the probe: 1 landed, 0 aborted, -1 no answer
 * yet (an EOF at or before the record: the transaction is still open). */
static int judge(const rd_kafka_message_t *m, const WrAppend *probe)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		return m->offset > probe->offset ? 0 : -1;
	if (m->err)
		return -1;
	if (m->offset > probe->offset)
		return 0;
	size_t len = strlen(probe->value);
	if (m->offset == probe->offset && m->len == len && !memcmp(m->payload, probe->value, len))
		return 1;
	return -1; /* a record before ours (cannot happen from its own offset) */
}

int wr_outcome_landed(const WrConfig *cfg, const WrAppend *batch, int timeout_ms,
		      const atomic_bool *stopping, char *why, size_t why_cap)
{
	const WrAppend *probe = probe_record(batch);
	if (!probe) {
		snprintf(why, why_cap, "a record of it was never delivered");
		return WR_OUTCOME_ABORTED;
	}
	rd_kafka_t *rk = reader_at(cfg, probe, why, why_cap);
	if (!rk)
		return WR_OUTCOME_UNKNOWN;
	int verdict = -1;
	int64_t deadline = vp_time_mono_us() + (int64_t)timeout_ms * 1000;
	while (verdict < 0 && vp_time_mono_us() < deadline && !atomic_load(stopping)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, OUTCOME_POLL_MS);
		if (!m)
			continue;
		verdict = judge(m, probe);
		rd_kafka_message_destroy(m);
	}
	rd_kafka_destroy(rk);
	if (verdict < 0) {
		snprintf(why, why_cap,
			 "partition %d offset %lld: the transaction was still open after %d ms",
			 probe->partition, (long long)probe->offset, timeout_ms);
		return WR_OUTCOME_UNKNOWN;
	}
	snprintf(why, why_cap, "partition %d offset %lld read back %s", probe->partition,
		 (long long)probe->offset, verdict ? "committed" : "skipped as aborted");
	return verdict ? WR_OUTCOME_LANDED : WR_OUTCOME_ABORTED;
}
