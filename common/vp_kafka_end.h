/* Reading every partition of a topic to the end it had when the read began.
 *
 * A consumer's end of partition event (enable.partition.eof) comes only when
 * a fetch finds nothing more: a partition one producer writes to without
 * pause may never report it, and a start-up read waiting for it starves (the
 * keys topic's read with a tenant's key records on one partition,
 * docs/privacy.md). So each partition's end is taken once at the start and
 * the partition counts as read when any of these is seen:
 *  - its end of partition event;
 *  - a message at offset >= end - 1 (the last record before the end, or any
 *    later one);
 *  - the consumer's position at or past the end: the last offsets before the
 *    end are often transaction control records (commit markers), which a
 *    consumer never receives, but its position moves past them.
 * The end is the last stable offset under read_committed (what the query
 * answers for such a consumer): what was committed when the read began. */
#ifndef VP_KAFKA_END_H
#define VP_KAFKA_END_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct VpKafkaEnd VpKafkaEnd;

/* A tracker of partitions 0..partitions-1, none read, no end known; NULL
 * when out of memory or partitions < 1. */
VpKafkaEnd *vp_kafka_end_new(int partitions);
void vp_kafka_end_free(VpKafkaEnd *e);

/* The pure part (unit-tested): each returns nothing, a partition out of
 * range is ignored. A partition whose end is unknown counts as read on its
 * end of partition event only. */
void vp_kafka_end_set(VpKafkaEnd *e, int partition, int64_t low, int64_t high);
/* A partition the read leaves out (another writer's) counts as read. */
void vp_kafka_end_skip(VpKafkaEnd *e, int partition);
void vp_kafka_end_eof(VpKafkaEnd *e, int partition);
void vp_kafka_end_message(VpKafkaEnd *e, int partition, int64_t offset);
void vp_kafka_end_position(VpKafkaEnd *e, int partition, int64_t position);
bool vp_kafka_end_partition_read(const VpKafkaEnd *e, int partition);
/* Partitions not read yet. */
int vp_kafka_end_left(const VpKafkaEnd *e);

/* With a consumer rk of topic (the ends are best taken before its
 * assignment, the others after it): */
/* Takes each partition's end now (a broker round trip each, up to
 * timeout_ms), best before the assignment (a query sent while a fetch is in
 * flight waits behind it); a partition whose query fails keeps no end, one
 * read already (skipped) is not asked. */
void vp_kafka_end_query(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic, int timeout_ms);
/* rd_kafka_assign(rk, parts) (all of one topic) once rk has the topic's
 * metadata (asked for up to timeout_ms), so no offset query waits for a
 * leader; rd_kafka_assign's error. */
rd_kafka_resp_err_t vp_kafka_assign_known(rd_kafka_t *rk,
					  const rd_kafka_topic_partition_list_t *parts, int timeout_ms);
/* A polled message (or end of partition event) of topic counted. */
void vp_kafka_end_polled(VpKafkaEnd *e, const rd_kafka_message_t *m);
/* The consumer's positions of the partitions not read yet counted (local,
 * no round trip). */
void vp_kafka_end_positions(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic);
/* One poll of rk (up to timeout_ms) counted, its positions looked at every
 * 100 ms: the message to handle and destroy (an end of partition event
 * included), or NULL. */
rd_kafka_message_t *vp_kafka_end_poll(VpKafkaEnd *e, rd_kafka_t *rk, const char *topic,
				      int timeout_ms);

/* The whole read: consumer rk (vp_kafka_log_reader_new) is assigned every
 * partition of topic (partitions of them) from the beginning, and each
 * message is handed to take until every partition is read to the end it had
 * when the read began. The assignment stays (a follower may go on reading).
 * 0 read to the end; take's value when it returned one below 0 (the read
 * stops there); VP_KAFKA_READ_UNFINISHED with why when the assignment failed
 * or timeout_ms passed first. */
#define VP_KAFKA_READ_UNFINISHED 1
typedef int (*VpKafkaTake)(void *arg, const rd_kafka_message_t *m);
int vp_kafka_read_to_end(rd_kafka_t *rk, const char *topic, int partitions, int timeout_ms,
			 VpKafkaTake take, void *arg, char *why, size_t why_cap);

#endif
