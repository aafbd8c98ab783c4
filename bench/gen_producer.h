/* What the log generators (gen_events.c, gen_invoices.c) share: a seeded
 * xorshift for reproducible histories, and an idempotent producer that keeps
 * each tenant's records in order, counts failed deliveries and waits for
 * deliveries while its queue is full. Header-only: every C file of bench/
 * is a program of its own. */
#ifndef GEN_PRODUCER_H
#define GEN_PRODUCER_H

#include <stdio.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

static unsigned long long rand_state = 88172645463325252ULL;

static inline unsigned long long next_rand(void)
{
	rand_state ^= rand_state << 13;
	rand_state ^= rand_state >> 7;
	rand_state ^= rand_state << 17;
	return rand_state;
}

/* The optional SEED argument mixed into the state. */
static inline void gen_seed(unsigned long long seed)
{
	rand_state ^= seed * 0x9E3779B97F4A7C15ULL;
}

#define PICK(a) (a[next_rand() % (sizeof(a) / sizeof(a[0]))])

static void gen_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	long *failed = opaque;
	if (m->err)
		(*failed)++;
}

/* A producer with Kafka client.id client_id; program prefixes its error
 * lines; *failed counts deliveries that failed. NULL (reported) when it
 * cannot be made. */
static inline rd_kafka_t *gen_producer_new(const char *brokers, const char *program,
					   const char *client_id, long *failed)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *settings[][2] = {
	    {"bootstrap.servers", brokers},
	    {"client.id", client_id},
	    {"partitioner", "murmur2_random"},
	    {"linger.ms", "20"},
	    {"batch.num.messages", "10000"},
	    {"queue.buffering.max.messages", "1000000"},
	    {"queue.buffering.max.kbytes", "1048576"},
	    {"acks", "all"},
	    {"enable.idempotence", "true"}, /* retries keep each tenant in order */
	};
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr,
				      sizeof(errstr)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "%s: %s\n", program, errstr);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	rd_kafka_conf_set_dr_msg_cb(conf, gen_on_delivery);
	rd_kafka_conf_set_opaque(conf, failed);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s: %s\n", program, errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* One envelope keyed by its tenant, with the type and v headers; waits for
 * deliveries while the queue is full. The first other error, or none. */
/* One record to partition (RD_KAFKA_PARTITION_UA: murmur2 of key, as the
 * writer places events), headers type and v, waiting out a full queue. */
static inline rd_kafka_resp_err_t gen_produce_to(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
						 int32_t partition, const char *key,
						 const char *type, int v, const char *value,
						 size_t len)
{
	char version[12];
	snprintf(version, sizeof(version), "%d", v);
	for (;;) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
		    rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
		    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("type", type, -1),
		    RD_KAFKA_V_HEADER("v", version, -1), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return err;
		rd_kafka_poll(rk, 100); /* backpressure: wait for deliveries */
	}
}

/* A v1 event, placed by its key. */
static inline rd_kafka_resp_err_t gen_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
					      const char *key, const char *type, const char *value,
					      size_t len)
{
	return gen_produce_to(rk, rkt, RD_KAFKA_PARTITION_UA, key, type, 1, value, len);
}

#endif
