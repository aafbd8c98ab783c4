/* The ceiling of the commands benchmark: a bare librdkafka transactional
 * producer loop with cmd-writer's producer settings (acks=all, idempotence,
 * transactional, linger.ms=0, retry.backoff.ms=10, Nagle off), appending
 * records of a given size with a given number of records per transaction to
 * one partition, as fast as one thread can begin, produce, commit.
 *   raw_producer BROKERS TOPIC PARTITION RECORD_BYTES RECORDS_PER_TXN SECONDS
 *                [PAUSE_US [KEYS_TOPIC KEYS_PARTITION KEY_RECORD_BYTES]]
 * PAUSE_US (default 0) sleeps after each commit: a transaction begun right after
 * the previous commit often finds the coordinator still writing that commit's
 * markers, and AddPartitionsToTxn then waits out CONCURRENT_TRANSACTIONS
 * retries (p50 31.7 ms a transaction in one cold run here, 12.9 ms with a 1 ms
 * pause). The writer has that gap naturally (it decides the next batch), so
 * bench/run.py takes the best of a few pauses as the ceiling.
 * With KEYS_TOPIC, every record is followed by a key record of
 * KEY_RECORD_BYTES on KEYS_PARTITION of that (compacted) topic, in the same
 * transaction, named like a client's key record: the shape of a sealed
 * RegisterClient (docs/privacy.md), whose transport cost the seal bench sets
 * beside the writer's.
 * Prints one JSON object: records, transactions, seconds, records_per_s and the
 * transaction latency percentiles (a record's wait for its commit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>

#include "vp_catalog.h"

#define MAX_SAMPLES 1000000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[256];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "raw_producer: %s=%s: %s\n", name, value, errstr);
		return -1;
	}
	return 0;
}

/* The same options as cmd-writer/appender.c and common/vp_kafka.c. */
static rd_kafka_t *producer_new(const char *brokers)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf_set(conf, "bootstrap.servers", brokers) < 0 ||
	    conf_set(conf, "client.id", "vetpms-bench-raw-producer") < 0 ||
	    conf_set(conf, "socket.nagle.disable", "true") < 0 ||
	    conf_set(conf, "transactional.id", "vetpms-bench-raw-producer") < 0 ||
	    conf_set(conf, "acks", "all") < 0 || conf_set(conf, "enable.idempotence", "true") < 0 ||
	    conf_set(conf, "linger.ms", "0") < 0 || conf_set(conf, "retry.backoff.ms", "10") < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "raw_producer: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int fail(rd_kafka_error_t *error, const char *what)
{
	fprintf(stderr, "raw_producer: %s: %s\n", what, rd_kafka_error_string(error));
	rd_kafka_error_destroy(error);
	return 1;
}

/* A client key record's shape: named client:<tenant>:<client> (a new name
 * each time, as each new client's is), no headers, no opaque. */
static rd_kafka_resp_err_t produce_key_record(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
					      int partition, const char *tenant, long n,
					      char *value, size_t len)
{
	char name[96];
	snprintf(name, sizeof(name), "client:%s:0193a5c2-7b1e-7c11-9d2a-%012ld", tenant, n);
	return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
				 RD_KAFKA_V_KEY(name, strlen(name)), RD_KAFKA_V_VALUE(value, len),
				 RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
}

int main(int argc, char **argv)
{
	if (argc != 7 && argc != 8 && argc != 11) {
		fprintf(stderr, "usage: raw_producer BROKERS TOPIC PARTITION RECORD_BYTES "
				"RECORDS_PER_TXN SECONDS [PAUSE_US [KEYS_TOPIC KEYS_PARTITION "
				"KEY_RECORD_BYTES]]\n");
		return 2;
	}
	const char *brokers = argv[1], *topic = argv[2];
	int partition = atoi(argv[3]);
	long record_bytes = atol(argv[4]), per_txn = atol(argv[5]);
	double seconds = atof(argv[6]);
	long pause_us = argc >= 8 ? atol(argv[7]) : 0;
	const char *keys_topic = argc == 11 ? argv[8] : NULL;
	int keys_partition = keys_topic ? atoi(argv[9]) : 0;
	long key_bytes = keys_topic ? atol(argv[10]) : 1;
	if (partition < 0 || record_bytes < 1 || record_bytes > 1 << 20 || per_txn < 1 ||
	    per_txn > 100000 || seconds <= 0 || pause_us < 0 || pause_us > 1000000 ||
	    keys_partition < 0 || key_bytes < 1 || key_bytes > 1 << 20) {
		fprintf(stderr, "raw_producer: bad arguments\n");
		return 2;
	}
	/* Key and headers like the writer's: a tenant UUID, type, v, a
	 * 64-character command hash and the command id's origin; the value pads
	 * the record to its size. */
	const char *key = "0193a5c2-7b1e-7c11-9d2a-3f4b5c6d7e8f";
	char hash[65];
	memset(hash, 'a', 64);
	hash[64] = '\0';
	char *value = malloc((size_t)record_bytes), *key_value = malloc((size_t)key_bytes);
	double *latencies = malloc(sizeof(double) * MAX_SAMPLES);
	rd_kafka_t *rk = producer_new(brokers);
	if (!value || !key_value || !latencies || !rk)
		return 1;
	memset(value, 'x', (size_t)record_bytes);
	memset(key_value, 'k', (size_t)key_bytes);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_topic_t *keys_rkt = keys_topic ? rd_kafka_topic_new(rk, keys_topic, NULL) : NULL;
	rd_kafka_error_t *error = rd_kafka_init_transactions(rk, 30000);
	if (error)
		return fail(error, "init_transactions");

	long records = 0, txns = 0;
	double started = now_s(), deadline = started + seconds;
	while (now_s() < deadline) {
		double t0 = now_s();
		if ((error = rd_kafka_begin_transaction(rk)))
			return fail(error, "begin_transaction");
		for (long i = 0; i < per_txn; i++) {
			rd_kafka_resp_err_t err = rd_kafka_producev(
				rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
				RD_KAFKA_V_KEY(key, strlen(key)),
				RD_KAFKA_V_VALUE(value, (size_t)record_bytes),
				RD_KAFKA_V_HEADER("type", VP_EV_PATIENT_REGISTERED, -1),
				RD_KAFKA_V_HEADER("v", "1", 1), RD_KAFKA_V_HEADER("command-hash", hash, -1),
				RD_KAFKA_V_HEADER("command-id-origin", "writer", -1), RD_KAFKA_V_END);
			if (!err && keys_rkt)
				err = produce_key_record(rk, keys_rkt, keys_partition, key, records + i,
							 key_value, (size_t)key_bytes);
			if (err) {
				fprintf(stderr, "raw_producer: produce: %s\n", rd_kafka_err2str(err));
				return 1;
			}
		}
		if ((error = rd_kafka_commit_transaction(rk, 30000)))
			return fail(error, "commit_transaction");
		if (txns < MAX_SAMPLES)
			latencies[txns] = now_s() - t0;
		records += per_txn;
		txns++;
		if (pause_us)
			nanosleep(&(struct timespec){pause_us / 1000000, (pause_us % 1000000) * 1000},
				  NULL);
	}
	double elapsed = now_s() - started;
	long n = txns < MAX_SAMPLES ? txns : MAX_SAMPLES;
	qsort(latencies, (size_t)n, sizeof(double), cmp_double);
	printf("{\"records\":%ld,\"transactions\":%ld,\"seconds\":%.3f,\"records_per_s\":%.1f,"
	       "\"pause_us\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
	       records, txns, elapsed, (double)records / elapsed, pause_us,
	       n ? latencies[n / 2] * 1000 : 0.0, n ? latencies[(n * 99) / 100] * 1000 : 0.0);
	rd_kafka_topic_destroy(rkt);
	if (keys_rkt)
		rd_kafka_topic_destroy(keys_rkt);
	rd_kafka_destroy(rk);
	free(value);
	free(key_value);
	free(latencies);
	return 0;
}
