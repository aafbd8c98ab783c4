/* librdkafka helpers shared by the daemons and vetctl: one place that sets the
 * client options every VetPMS client must have, the partitioner that decides
 * which writer owns a tenant, and a readiness probe. */
#ifndef VP_KAFKA_H
#define VP_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#define VP_TOPIC_EVENTS_DEFAULT "vetpms.events"
#define VP_TOPIC_DLQ_DEFAULT    "vetpms.events.dlq"

/* Every client's reconnect.backoff.max.ms (librdkafka's default: 10000). */
#define VP_KAFKA_RECONNECT_BACKOFF_MAX_MS "1000"

/* A conf with bootstrap.servers, client.id, socket.nagle.disable=true (Debian's
 * librdkafka 2.0.2 against Kafka 3.9 otherwise waits on Nagle for small
 * requests), reconnect.backoff.max.ms and the `extra` properties: "a=b,c=d" (VETPMS_KAFKA_PROPS; a list
 * value keeps its commas, "debug=eos,broker"), for
 * tuning without a rebuild. NULL with why filled on a bad property. */
rd_kafka_conf_t *vp_kafka_conf_new(const char *brokers, const char *client_id, const char *extra,
				   char *why, size_t why_cap);
/* "defaults,extra" (malloc'd; NULL out of memory): properties of one client
 * kind that VETPMS_KAFKA_PROPS (extra, may be empty) can still change, since
 * a later name=value wins. */
char *vp_kafka_props_join(const char *defaults, const char *extra);
/* The options every reader of the event log shares: `group`, read_committed
 * (records of aborted transactions stay invisible) and no auto-commit (each
 * reader keeps its own positions). NULL with why filled. */
rd_kafka_conf_t *vp_kafka_consumer_conf_new(const char *brokers, const char *client_id,
					    const char *group, const char *extra, char *why,
					    size_t why_cap);
/* A consumer of those options that reports each partition's end, for
 * partitions assigned by hand (no group is joined, nothing committed); quiet:
 * librdkafka logs errors only (a command-line tool's stderr). NULL with why. */
rd_kafka_t *vp_kafka_log_reader_new(const char *brokers, const char *client_id, const char *group,
				    const char *extra, bool quiet, char *why, size_t why_cap);
/* The same for a one-shot read, one that reads to an end and stops (a
 * rebuild, a start-up read, vetctl's export and keys reads):
 * fetch.wait.max.ms is VP_KAFKA_ONCE_FETCH_WAIT_MS (unless extra says
 * otherwise). Never for a reader that tails a topic: it would ask the broker
 * every few ms while the topic is idle. */
#define VP_KAFKA_ONCE_FETCH_WAIT_MS "10"
rd_kafka_t *vp_kafka_once_reader_new(const char *brokers, const char *client_id,
				     const char *group, const char *extra, bool quiet, char *why,
				     size_t why_cap);
int vp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
		      size_t why_cap);

/* Java's murmur2 (Utils.murmur2), as used by the Java client's default
 * partitioner and librdkafka's `murmur2_random`. */
int32_t vp_kafka_murmur2(const void *key, size_t len);
/* Partition of a record key: (murmur2(key) & 0x7fffffff) % partition_cnt. */
int vp_kafka_partition_for_key(const char *key, size_t len, int partition_cnt);

/* 0 when the cluster answered a metadata request within timeout_ms; else -1.
 * *partition_cnt (may be NULL) receives the partition count of `topic` (0 when
 * the topic does not exist; topic may be NULL). Blocking: never on a loop. */
int vp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partition_cnt);

#endif
