/* The transactional Kafka producer of cmd-writer. Owns the rd_kafka_t; a side
 * thread does the blocking init_transactions so the HTTP loop answers /healthz
 * and a 503 /readyz meanwhile. transactional.id = vetpms-writer-<instance>: a
 * second process with the same instance fences the first (zombie fencing). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vp_kafka.h"
#include "vp_log.h"
#include "writer.h"

struct WrAppender {
	rd_kafka_t *producer;
	char topic[256];
	pthread_t init_thread;
	bool init_started;
	atomic_bool ready;
	atomic_bool fatal;
	atomic_bool stopping;
	int partition_cnt;
	char not_ready_why[256];
	pthread_mutex_t lock; /* guards not_ready_why */
};

static void set_not_ready(WrAppender *a, const char *why)
{
	pthread_mutex_lock(&a->lock);
	snprintf(a->not_ready_why, sizeof(a->not_ready_why), "%s", why);
	pthread_mutex_unlock(&a->lock);
}

/* librdkafka calls this from its own threads: record and let the flow react. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	WrAppender *a = opaque;
	char fatal_reason[512];
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal_reason, sizeof(fatal_reason));
		vp_log_error(NULL, "kafka_fatal", "%s", fatal_reason);
		atomic_store(&a->fatal, true);
		atomic_store(&a->ready, false);
		set_not_ready(a, "producer fenced or fatal error");
		return;
	}
	vp_log_warn(NULL, "kafka_error", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err),
		    reason);
}

WrAppender *wr_appender_new(const WrConfig *cfg, char *why, size_t why_cap)
{
	char transactional_id[64];
	WrAppender *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	snprintf(a->topic, sizeof(a->topic), "%s", cfg->topic);
	snprintf(a->not_ready_why, sizeof(a->not_ready_why), "initialising the producer");
	snprintf(transactional_id, sizeof(transactional_id), "vetpms-writer-%ld", cfg->instance);
	rd_kafka_conf_t *conf =
		vp_kafka_conf_new(cfg->brokers, "vetpms-cmd-writer", cfg->kafka_props, why, why_cap);
	if (!conf)
		goto fail;
	if (vp_kafka_conf_set(conf, "transactional.id", transactional_id, why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "acks", "all", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "enable.idempotence", "true", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "partitioner", "murmur2_random", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "linger.ms", "0", why, why_cap) < 0) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, a);
	a->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, why_cap);
	if (!a->producer) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	return a;
fail:
	wr_appender_free(a);
	return NULL;
}

/* Retries init_transactions on retriable errors; a fatal one stops the writer. */
static void *init_thread_main(void *arg)
{
	WrAppender *a = arg;
	while (!atomic_load(&a->stopping)) {
		rd_kafka_error_t *error = rd_kafka_init_transactions(a->producer, 10000);
		if (!error)
			break;
		vp_log_warn(NULL, "init_transactions", "%s", rd_kafka_error_string(error));
		set_not_ready(a, rd_kafka_error_string(error));
		bool fatal = rd_kafka_error_is_fatal(error);
		rd_kafka_error_destroy(error);
		if (fatal) {
			atomic_store(&a->fatal, true);
			return NULL;
		}
		sleep(1);
	}
	while (!atomic_load(&a->stopping)) {
		int partitions = 0;
		if (vp_kafka_probe(a->producer, a->topic, 5000, &partitions) == 0 && partitions > 0) {
			a->partition_cnt = partitions;
			vp_log_info(NULL, "producer_ready", "transactions initialised; topic %s has %d "
				    "partitions", a->topic, partitions);
			atomic_store(&a->ready, true);
			return NULL;
		}
		set_not_ready(a, "events topic not found");
		sleep(1);
	}
	return NULL;
}

int wr_appender_start(WrAppender *a)
{
	if (pthread_create(&a->init_thread, NULL, init_thread_main, a) != 0)
		return -1;
	a->init_started = true;
	return 0;
}

bool wr_appender_ready(WrAppender *a, char *why, size_t why_cap)
{
	if (atomic_load(&a->ready))
		return true;
	pthread_mutex_lock(&a->lock);
	snprintf(why, why_cap, "%s", a->not_ready_why);
	pthread_mutex_unlock(&a->lock);
	return false;
}

bool wr_appender_fatal(WrAppender *a)
{
	return atomic_load(&a->fatal);
}

WrAppender *wr_appender_free(WrAppender *a)
{
	if (!a)
		return NULL;
	atomic_store(&a->stopping, true);
	if (a->init_started)
		pthread_join(a->init_thread, NULL);
	if (a->producer) {
		rd_kafka_flush(a->producer, 5000);
		rd_kafka_destroy(a->producer);
	}
	pthread_mutex_destroy(&a->lock);
	free(a);
	return NULL;
}
