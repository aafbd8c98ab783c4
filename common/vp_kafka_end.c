/* Reading a topic to the end it had when the read began (vp_kafka_end.h). */
#include <stdio.h>
#include <stdlib.h>

#include "vp_kafka_end.h"
#include "vp_time.h"

#define END_UNKNOWN (-1)
#define POSITION_LOOK_US 100000 /* how often a poll looks at the positions */
#define END_QUERY_MS 5000       /* each partition's end, at the start of a read */
#define POLL_MS 200

struct VpKafkaEnd {
	int partitions, left;
	int64_t *end; /* the offset after the last record at the start, or END_UNKNOWN */
	bool *read;
	int64_t look_at; /* when vp_kafka_end_poll looks at the positions next */
};

VpKafkaEnd *vp_kafka_end_new(int partitions)
{
	if (partitions < 1)
		return NULL;
	VpKafkaEnd *e = calloc(1, sizeof(*e));
	if (e) {
		e->end = malloc((size_t)partitions * sizeof(*e->end));
		e->read = calloc((size_t)partitions, sizeof(*e->read));
	}
	if (!e || !e->end || !e->read) {
		vp_kafka_end_free(e);
		return NULL;
	}
	e->partitions = e->left = partitions;
	for (int p = 0; p < partitions; p++)
		e->end[p] = END_UNKNOWN;
	return e;
}

void vp_kafka_end_free(VpKafkaEnd *e)
{
	if (!e)
		return;
	free(e->end);
	free(e->read);
	free(e);
}

static bool in_range(const VpKafkaEnd *e, int partition)
{
	return partition >= 0 && partition < e->partitions;
}

static void mark_read(VpKafkaEnd *e, int partition)
{
	if (!e->read[partition]) {
		e->read[partition] = true;
		e->left--;
	}
}

void vp_kafka_end_set(VpKafkaEnd *e, int partition, int64_t low, int64_t high)
{
	if (!in_range(e, partition) || high < 0)
		return;
	e->end[partition] = high;
	if (high <= low) /* empty (or compacted away to nothing): nothing to wait for */
		mark_read(e, partition);
}

void vp_kafka_end_skip(VpKafkaEnd *e, int partition)
{
	if (in_range(e, partition))
		mark_read(e, partition);
}

void vp_kafka_end_eof(VpKafkaEnd *e, int partition)
{
	if (in_range(e, partition))
		mark_read(e, partition);
}

void vp_kafka_end_message(VpKafkaEnd *e, int partition, int64_t offset)
{
	if (in_range(e, partition) && e->end[partition] != END_UNKNOWN &&
	    offset >= e->end[partition] - 1)
		mark_read(e, partition);
}

void vp_kafka_end_position(VpKafkaEnd *e, int partition, int64_t position)
{
	/* a position is never negative but for librdkafka's "none yet" (-1001) */
	if (in_range(e, partition) && e->end[partition] != END_UNKNOWN && position >= 0 &&
	    position >= e->end[partition])
		mark_read(e, partition);
}

bool vp_kafka_end_partition_read(const VpKafkaEnd *e, int partition)
{
	return in_range(e, partition) && e->read[partition];
}

int vp_kafka_end_left(const VpKafkaEnd *e)
{
	return e->left;
}

void vp_kafka_end_query(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic, int timeout_ms)
{
	for (int p = 0; p < e->partitions; p++) {
		int64_t low = 0, high = 0;
		if (!e->read[p] &&
		    rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, timeout_ms) ==
			    RD_KAFKA_RESP_ERR_NO_ERROR)
			vp_kafka_end_set(e, p, low, high);
	}
}

void vp_kafka_end_polled(VpKafkaEnd *e, const rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		vp_kafka_end_eof(e, m->partition);
	else if (!m->err)
		vp_kafka_end_message(e, m->partition, m->offset);
}

void vp_kafka_end_positions(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic)
{
	if (e->left == 0)
		return;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(e->left);
	for (int p = 0; p < e->partitions; p++)
		if (!e->read[p] && e->end[p] != END_UNKNOWN)
			rd_kafka_topic_partition_list_add(parts, topic, p);
	if (parts->cnt > 0 && rd_kafka_position(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int i = 0; i < parts->cnt; i++)
			if (!parts->elems[i].err)
				vp_kafka_end_position(e, parts->elems[i].partition,
						      parts->elems[i].offset);
	rd_kafka_topic_partition_list_destroy(parts);
}

rd_kafka_message_t *vp_kafka_end_poll(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic,
				      int timeout_ms)
{
	int64_t now = vp_time_mono_us();
	if (now >= e->look_at) { /* past trailing commit markers, which never arrive */
		vp_kafka_end_positions(e, rk, topic);
		e->look_at = now + POSITION_LOOK_US;
	}
	rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout_ms);
	if (m)
		vp_kafka_end_polled(e, m);
	return m;
}

rd_kafka_resp_err_t vp_kafka_assign_known(rd_kafka_t *rk,
					  const rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
	/* The topic's handle made and its metadata asked for first: a consumer
	 * assigned a topic it has no metadata of yet finds no leader for some
	 * partitions and retries their offset queries only after ~0.5 s ("no
	 * current leader for partition: (re)starting offset query timer"). On
	 * failure the assignment still goes ahead: librdkafka asks by itself. */
	rd_kafka_topic_t *rkt =
		parts->cnt > 0 ? rd_kafka_topic_new(rk, parts->elems[0].topic, NULL) : NULL;
	const struct rd_kafka_metadata *md = NULL;
	if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_metadata_destroy(md);
	rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
	if (rkt) /* the assigned partitions hold the topic from here */
		rd_kafka_topic_destroy(rkt);
	return err;
}

/* rk assigned every partition of topic from the beginning; 0 or -1 with why. */
static int assign_all(rd_kafka_t *rk, const char *topic, int partitions, char *why,
		      size_t why_cap)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t err = vp_kafka_assign_known(rk, parts, END_QUERY_MS);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err)
		snprintf(why, why_cap, "%s: %s", topic, rd_kafka_err2str(err));
	return err ? -1 : 0;
}

int vp_kafka_read_to_end(rd_kafka_t *rk, const char *topic, int partitions, int timeout_ms,
			 VpKafkaTake take, void *arg, char *why, size_t why_cap)
{
	int64_t deadline = vp_time_mono_us() + (int64_t)timeout_ms * 1000;
	VpKafkaEnd *end = vp_kafka_end_new(partitions);
	if (!end) {
		snprintf(why, why_cap, "out of memory");
		return VP_KAFKA_READ_UNFINISHED;
	}
	/* the ends before the assignment: a watermark query sent while a fetch
	 * is in flight waits behind it on the broker's connection */
	vp_kafka_end_query(end, rk, topic, END_QUERY_MS);
	if (assign_all(rk, topic, partitions, why, why_cap) < 0) {
		vp_kafka_end_free(end);
		return VP_KAFKA_READ_UNFINISHED;
	}
	int rc = 0;
	while (rc == 0 && vp_kafka_end_left(end) > 0) {
		if (vp_time_mono_us() > deadline) {
			snprintf(why, why_cap, "topic %s not read to its end in %d ms", topic,
				 timeout_ms);
			rc = VP_KAFKA_READ_UNFINISHED;
			break;
		}
		rd_kafka_message_t *m = vp_kafka_end_poll(end, rk, topic, POLL_MS);
		if (!m)
			continue;
		if (!m->err) /* an end of partition event is counted; other errors are
			      * transient: librdkafka retries */
			rc = take(arg, m);
		rd_kafka_message_destroy(m);
		if (rc > 0)
			rc = 0; /* only a value below 0 stops the read */
	}
	vp_kafka_end_free(end);
	return rc;
}
