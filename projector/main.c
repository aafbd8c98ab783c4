/* projector entry point: configuration, PostgreSQL connection and migrations,
 * the Kafka consumer, and the health/metrics HTTP service on a side thread. The
 * main thread runs the consume loop until SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/thread.h>
#include <sodium.h>

#include "projector.h"
#include "vp_config.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_service.h"

static PjConfig cfg;
static volatile sig_atomic_t stop_requested;

static const VpConfigItem config_items[] = {
	VP_CF_STR("host", "VETPMS_PROJECTOR_HOST", &cfg.host, "127.0.0.1",
		  "listen address (health, metrics)"),
	VP_CF_INT("port", "VETPMS_PROJECTOR_PORT", &cfg.port, "8082", 0, 65535, "listen port"),
	VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &cfg.brokers, "127.0.0.1:59092",
		  "Kafka bootstrap servers"),
	VP_CF_STR("topic", "VETPMS_TOPIC", &cfg.topic, "vetpms.events", "events topic"),
	VP_CF_STR("kafka-props", "VETPMS_KAFKA_PROPS", &cfg.kafka_props, "",
		  "extra librdkafka properties a=b,c=d"),
	VP_CF_STR("dsn", "VETPMS_PROJECTOR_DSN", &cfg.dsn,
		  "host=127.0.0.1 port=55432 dbname=vetpms user=vetpms_projector",
		  "libpq connection string of the projector role"),
	VP_CF_STR("schema", "VETPMS_READ_SCHEMA", &cfg.schema, "read", "read model schema"),
	VP_CF_STR("migrations", "VETPMS_MIGRATIONS_DIR", &cfg.migrations_dir, "schema/migrations",
		  "folder of NNN_name.sql migrations"),
	VP_CF_STR("log-level", "VETPMS_LOG_LEVEL", &cfg.log_level, "info",
		  "debug, info, warn, error"),
};
#define N_CONFIG_ITEMS (sizeof(config_items) / sizeof(config_items[0]))

/* Readiness, written by the main loop and read by the HTTP thread. */
static atomic_bool pg_ok;
static atomic_bool kafka_ok;

static bool check_ready(void *arg, char *why, size_t why_cap)
{
	(void)arg;
	if (!atomic_load(&pg_ok))
		snprintf(why, why_cap, "PostgreSQL unreachable");
	else if (!atomic_load(&kafka_ok))
		snprintf(why, why_cap, "Kafka unreachable");
	return atomic_load(&pg_ok) && atomic_load(&kafka_ok);
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void *service_thread(void *arg)
{
	vp_service_run(arg);
	return NULL;
}

/* The HTTP thread must not take SIGTERM: block it there, keep it here. */
static int start_service(VpService *service, pthread_t *thread)
{
	sigset_t blocked, previous;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	pthread_sigmask(SIG_BLOCK, &blocked, &previous);
	int rc = pthread_create(thread, NULL, service_thread, service);
	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	return rc == 0 ? 0 : -1;
}

static rd_kafka_t *consumer_new(char *why, size_t why_cap)
{
	rd_kafka_conf_t *conf =
		vp_kafka_conf_new(cfg.brokers, "vetpms-projector", cfg.kafka_props, why, why_cap);
	if (!conf)
		return NULL;
	if (vp_kafka_conf_set(conf, "group.id", "vetpms-projector", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "isolation.level", "read_committed", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "enable.auto.commit", "false", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, why_cap) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, why_cap);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	return rk;
}

/* Keeps one PostgreSQL connection, migrating on first contact; reconnects. */
static PGconn *ensure_pg(PGconn *conn, bool *migrated)
{
	char why[512];
	if (conn && vp_pg_ping(conn))
		return conn;
	if (conn)
		PQfinish(conn);
	conn = vp_pg_connect(cfg.dsn, "vetpms-projector", why, sizeof(why));
	if (!conn) {
		vp_log_warn(NULL, "pg_connect", "%s", why);
		return NULL;
	}
	if (!*migrated) {
		int applied = pj_migrate(conn, cfg.schema, cfg.migrations_dir, why, sizeof(why));
		if (applied < 0) {
			vp_log_error(NULL, "migrate", "%s", why);
			PQfinish(conn);
			return NULL;
		}
		vp_log_info(NULL, "migrate", "schema %s: %d migration(s) applied", cfg.schema,
			    applied);
		*migrated = true;
	}
	return conn;
}

static int load_config(int argc, char **argv)
{
	char why[512];
	int rc = vp_config_load(config_items, N_CONFIG_ITEMS, argc, argv,
				"usage: projector [options]", NULL, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "projector: %s\n", why);
	return rc;
}

int main(int argc, char **argv)
{
	VpService service = {0};
	pthread_t http_thread;
	bool http_started = false;
	rd_kafka_t *consumer = NULL;
	PGconn *conn = NULL;
	bool migrated = false;
	char why[512];
	VpError err;
	int exit_code = 1;

	int loaded = load_config(argc, argv);
	if (loaded != 0)
		return loaded > 0 ? 0 : 2;
	int level = vp_log_level_parse(cfg.log_level);
	vp_log_init("projector", level < 0 ? VP_LOG_INFO : (VpLogLevel)level);
	struct sigaction sa = {0};
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (sodium_init() < 0 || evthread_use_pthreads() < 0)
		goto done;
	vp_error_clear(&err);
	consumer = consumer_new(why, sizeof(why));
	if (!consumer) {
		vp_log_error(NULL, "startup", "kafka consumer: %s", why);
		goto done;
	}
	service.ready = check_ready;
	if (vp_service_open(&service, cfg.host, (int)cfg.port, false, &err) < 0 ||
	    start_service(&service, &http_thread) < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	http_started = true;
	vp_log_info(NULL, "listening", "http://%s:%d", cfg.host, vp_service_port(&service));
	while (!stop_requested) {
		conn = ensure_pg(conn, &migrated);
		atomic_store(&pg_ok, conn != NULL && migrated);
		atomic_store(&kafka_ok, vp_kafka_probe(consumer, NULL, 2000, NULL) == 0);
		for (int i = 0; i < 10 && !stop_requested; i++)
			usleep(100000);
	}
	vp_log_info(NULL, "stopped", "signal received, clean stop");
	exit_code = 0;
done:
	if (http_started) {
		vp_service_stop(&service);
		pthread_join(http_thread, NULL);
	}
	vp_service_close(&service);
	if (consumer) {
		rd_kafka_consumer_close(consumer);
		rd_kafka_destroy(consumer);
	}
	if (conn)
		PQfinish(conn);
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
