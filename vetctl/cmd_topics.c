/* vetctl topics create: makes vetpms.events and vetpms.events.dlq through
 * librdkafka's Admin API, keeping every record forever (retention.ms=-1), and
 * vetpms.keys, compacted: the latest record of each key name is kept forever,
 * a replaced one (a rewrapped tenant key, a client key an erasure marker
 * replaced) is removed by compaction (docs/privacy.md).
 * Idempotent: an existing topic with the asked partition count is fine; one with
 * another count is an error, because tenant ownership depends on the count. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vetctl.h"
#include "vp_config.h"
#include "vp_kafka.h"
#include "vp_keyring.h"
#include "vp_time.h"

typedef struct TopicsOptions {
	char *brokers;
	char *events_topic;
	char *dlq_topic;
	char *keys_topic;
	long partitions;
	long replication_factor;
	long min_insync_replicas;
	long timeout_ms;
} TopicsOptions;

/* Kept forever: the log is the system of record. */
static const char *const LOG_CONFIG[] = {"retention.ms", "-1", "retention.bytes", "-1", NULL};

/* The keys topic: compacted, with small segments and a low dirty ratio so a
 * replaced key record really leaves the disk soon (an erased client's key
 * stays on disk only until the cleaner has compacted its segment: at most
 * segment.ms plus the cleaner's backoff once the segment rolled). */
static const char *const KEYS_CONFIG[] = {"cleanup.policy", "compact", "segment.ms", "600000",
					  "min.cleanable.dirty.ratio", "0.01", NULL};

/* A topic of o's partitions, replication and min.insync.replicas, with the
 * name/value pairs of config (NULL-terminated). */
static rd_kafka_NewTopic_t *new_topic(const char *name, const char *const *config,
				      const TopicsOptions *o, char *why, size_t why_cap)
{
	char min_isr[16];
	rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(name, (int)o->partitions,
						       (int)o->replication_factor, why, why_cap);
	if (!t)
		return NULL;
	snprintf(min_isr, sizeof(min_isr), "%ld", o->min_insync_replicas);
	bool failed = rd_kafka_NewTopic_set_config(t, "min.insync.replicas", min_isr) != 0;
	for (size_t i = 0; !failed && config[i]; i += 2)
		failed = rd_kafka_NewTopic_set_config(t, config[i], config[i + 1]) != 0;
	if (failed) {
		snprintf(why, why_cap, "cannot set topic config");
		rd_kafka_NewTopic_destroy(t);
		return NULL;
	}
	return t;
}

/* Sends CreateTopics and reports each topic; TOPIC_ALREADY_EXISTS is success. */
static int create_topics(rd_kafka_t *rk, rd_kafka_NewTopic_t **topics, size_t n, long timeout_ms)
{
	int rc = 0;
	rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *options =
		rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	char errstr[256];
	rd_kafka_AdminOptions_set_operation_timeout(options, (int)timeout_ms, errstr,
						    sizeof(errstr));
	rd_kafka_CreateTopics(rk, topics, n, options, queue);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, (int)timeout_ms + 5000);
	if (!ev || rd_kafka_event_error(ev)) {
		fprintf(stderr, "vetctl: CreateTopics failed: %s\n",
			ev ? rd_kafka_event_error_string(ev) : "timed out");
		rc = -1;
		goto done;
	}
	size_t n_results = 0;
	const rd_kafka_topic_result_t **results = rd_kafka_CreateTopics_result_topics(
		rd_kafka_event_CreateTopics_result(ev), &n_results);
	for (size_t i = 0; i < n_results; i++) {
		rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
		const char *name = rd_kafka_topic_result_name(results[i]);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			printf("created %s\n", name);
		} else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			printf("exists %s\n", name);
		} else {
			fprintf(stderr, "vetctl: topic %s: %s\n", name,
				rd_kafka_topic_result_error_string(results[i]));
			rc = -1;
		}
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(options);
	rd_kafka_queue_destroy(queue);
	return rc;
}

/* Metadata can lag the controller for a moment after creation (a broker may
 * answer at once with no partitions yet): retry every CHECK_PAUSE_US for up to
 * timeout_ms. A count other than 0 that differs is final. */
#define CHECK_PAUSE_US 100000
static int check_partitions(rd_kafka_t *rk, const char *topic, long expected, long timeout_ms)
{
	int found = 0;
	int64_t deadline = vp_time_mono_us() + timeout_ms * 1000;
	do {
		if (vp_kafka_probe(rk, topic, 5000, &found) == 0 && found == expected)
			return 0;
		if (found > 0 && found != expected)
			break;
		usleep(CHECK_PAUSE_US);
	} while (vp_time_mono_us() < deadline);
	fprintf(stderr, "vetctl: topic %s has %d partitions, expected %ld (changing the count "
			"is a migration: new topic and replay)\n", topic, found, expected);
	return -1;
}

int vc_cmd_topics(int argc, char **argv)
{
	TopicsOptions o = {0};
	char why[512];
	int rc = 1;
	rd_kafka_t *rk = NULL;
	rd_kafka_NewTopic_t *topics[3] = {NULL, NULL, NULL};
	const VpConfigItem items[] = {
		VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &o.brokers, "127.0.0.1:59092",
			  "Kafka bootstrap servers"),
		VP_CF_STR("topic", "VETPMS_TOPIC", &o.events_topic, VP_TOPIC_EVENTS_DEFAULT,
			  "events topic"),
		VP_CF_STR("dlq-topic", "VETPMS_DLQ_TOPIC", &o.dlq_topic, VP_TOPIC_DLQ_DEFAULT,
			  "dead-letter topic"),
		VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &o.keys_topic, VP_TOPIC_KEYS_DEFAULT,
			  "keys topic (compacted)"),
		VP_CF_INT("partitions", "VETPMS_PARTITIONS", &o.partitions, "6", 1, 10000,
			  "partitions of the events topic"),
		VP_CF_INT("replication-factor", "VETPMS_REPLICATION_FACTOR",
			  &o.replication_factor, "1", 1, 16, "replicas per partition"),
		VP_CF_INT("min-insync-replicas", "VETPMS_MIN_INSYNC_REPLICAS",
			  &o.min_insync_replicas, "1", 1, 16, "min.insync.replicas"),
		VP_CF_INT("timeout-ms", NULL, &o.timeout_ms, "30000", 1000, 600000,
			  "operation timeout"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);

	if (argc < 2 || strcmp(argv[1], "create") != 0) {
		fprintf(stderr, "usage: vetctl topics create [options] (--help)\n");
		return 2;
	}
	int loaded = vp_config_load(items, n, argc - 1, argv + 1, "vetctl topics create", NULL,
				    why, sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		rc = loaded < 0 ? 2 : 0;
		goto done;
	}
	rd_kafka_conf_t *conf = vp_kafka_conf_new(o.brokers, "vetctl", NULL, why, sizeof(why));
	if (!conf)
		goto fail;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf); /* still ours when rd_kafka_new fails */
		goto fail;
	}
	topics[0] = new_topic(o.events_topic, LOG_CONFIG, &o, why, sizeof(why));
	topics[1] = topics[0] ? new_topic(o.dlq_topic, LOG_CONFIG, &o, why, sizeof(why)) : NULL;
	topics[2] = topics[1] ? new_topic(o.keys_topic, KEYS_CONFIG, &o, why, sizeof(why)) : NULL;
	if (!topics[2])
		goto fail;
	if (create_topics(rk, topics, 3, o.timeout_ms) < 0 ||
	    check_partitions(rk, o.events_topic, o.partitions, o.timeout_ms) < 0 ||
	    check_partitions(rk, o.dlq_topic, o.partitions, o.timeout_ms) < 0)
		goto done;
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "vetctl: %s\n", why);
done:
	for (int i = 0; i < 3; i++)
		if (topics[i])
			rd_kafka_NewTopic_destroy(topics[i]);
	if (rk)
		rd_kafka_destroy(rk);
	vp_config_free(items, n);
	return rc;
}
