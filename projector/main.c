/* projector entry point: configuration, PostgreSQL connection and migrations,
 * and the health/metrics HTTP service on a side thread. The main thread runs the
 * consume loop (consumer.c) until SIGTERM, or with `rebuild`, until the fresh
 * schema it built is swapped in (rebuild.c); `rebuild --tenant T` rebuilds one
 * tenant's rows and exits (rebuild_tenant.c, no HTTP service). Exit codes: 0
 * clean stop or swapped, 1 fatal error, 2 bad options (also a --tenant that
 * is not a UUID), 3 unknown tenant, 4 a rebuild stopped before its swap. */
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
#include "vp_http_guard.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_service.h"

static PjConfig cfg;
static volatile sig_atomic_t stop_requested;

static VpHttpLimits http_limits;

static const VpConfigItem config_items[] = {
	VP_HTTP_LIMIT_ITEMS(http_limits),
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
	VP_CF_STR("group", "VETPMS_PROJECTOR_GROUP", &cfg.group, "vetpms-projector",
		  "Kafka consumer group"),
	VP_CF_STR("dlq-topic", "VETPMS_DLQ_TOPIC", &cfg.dlq_topic, "vetpms.events.dlq",
		  "dead-letter topic"),
	VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &cfg.keys_topic, VP_TOPIC_KEYS_DEFAULT,
		  "keys topic (compacted; docs/privacy.md)"),
	VP_CF_STR("master-key-file", "VETPMS_MASTER_KEY_FILE", &cfg.master_key_file, "",
		  "file of the master key (mode 0600); else the environment's VETPMS_MASTER_KEY"),
	VP_CF_STR("master-key-previous-file", "VETPMS_MASTER_KEY_PREVIOUS_FILE",
		  &cfg.master_key_previous_file, "",
		  "during a rotation: file of the master key being replaced (mode 0600); else "
		  "the environment's VETPMS_MASTER_KEY_PREVIOUS; records under it are read, "
		  "nothing new is wrapped under it"),
	VP_CF_INT("key-wait-ms", "VETPMS_PROJECTOR_KEY_WAIT_MS", &cfg.key_wait_ms, "10000", 0,
		  600000, "how long a sealed client event waits for its key before it is a dead "
		  "letter, ms"),
	VP_CF_INT("batch", "VETPMS_PROJECTOR_BATCH", &cfg.batch_max, "500", 1, 100000,
		  "events per batch (one transaction)"),
	VP_CF_INT("batch-ms", "VETPMS_PROJECTOR_BATCH_MS", &cfg.batch_ms, "50", 1, 60000,
		  "longest idle wait for the first event of a batch, ms"),
	VP_CF_INT("connections", "VETPMS_PROJECTOR_CONNECTIONS", &cfg.connections, "2", 1, 64,
		  "PostgreSQL connections applying partitions in parallel (partition % n)"),
	VP_CF_INT("mv-refresh-ms", "VETPMS_PROJECTOR_MV_REFRESH_MS", &cfg.mv_refresh_ms, "5000",
		  100, 86400000, "period of the materialized views' refresh (only when changed), ms"),
	VP_CF_INT("archive-interval-s", "VETPMS_PROJECTOR_ARCHIVE_INTERVAL_S",
		  &cfg.archive_interval_s, "3600", 0, 31622400,
		  "period of the archive pass, s (0 = only when `vetctl archive run` asks)"),
	VP_CF_INT("archive-batch", "VETPMS_PROJECTOR_ARCHIVE_BATCH", &cfg.archive_batch, "500", 1,
		  100000, "appointments or records moved per archive batch (one transaction)"),
	VP_CF_INT("rebuild-index-connections", "VETPMS_PROJECTOR_REBUILD_INDEX_CONNECTIONS",
		  &cfg.rebuild_index_connections, "2", 1, PJ_REBUILD_MAX_INDEX_CONNECTIONS,
		  "`rebuild`: connections building the deferred indexes in parallel"),
	VP_CF_STR("tenant", "VETPMS_REBUILD_TENANT", &cfg.rebuild_tenant, "",
		  "`rebuild`: rebuild only this tenant's rows (its id, a UUID)"),
	VP_CF_BOOL("dry-run", NULL, &cfg.dry_run, "false",
		   "`rebuild --tenant`: build and compare, print what differs, change nothing"),
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

static void set_pg_ok(bool ok)
{
	atomic_store(&pg_ok, ok);
}

static void set_kafka_ok(bool ok)
{
	atomic_store(&kafka_ok, ok);
}

static int load_config(int argc, char **argv)
{
	char why[512];
	int rc = vp_config_load(config_items, N_CONFIG_ITEMS, argc, argv,
				"usage: projector [rebuild] [options]", NULL, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "projector: %s\n", why);
	if (rc == 0)
		vp_http_guard_set_limits(&http_limits);
	return rc;
}

/* `projector rebuild [options]`: project into <schema>_next under a consumer
 * group of its own, then swap it with <schema> (rebuild.c). The names are
 * made here, after the options; vp_config_free frees them like the options. */
static int setup_rebuild(char *live_schema, size_t cap)
{
	char next[64], group[256];
	if (strlen(cfg.schema) + sizeof("_retired") > sizeof(next) ||
	    snprintf(live_schema, cap, "%s", cfg.schema) >= (int)cap) {
		fprintf(stderr, "projector: schema name %s too long to rebuild\n", cfg.schema);
		return -1;
	}
	snprintf(next, sizeof(next), "%s_next", cfg.schema);
	snprintf(group, sizeof(group), "%s-rebuild", cfg.group);
	char *next_copy = strdup(next), *group_copy = strdup(group);
	if (!next_copy || !group_copy) {
		free(next_copy);
		free(group_copy);
		return -1;
	}
	free(cfg.schema);
	free(cfg.group);
	cfg.schema = next_copy;
	cfg.group = group_copy;
	cfg.swap_into = live_schema;
	return 0;
}

/* The master key and the keys topic, before anything is projected: sealed
 * client events open with them (apply_keys.c). A master key that is missing
 * or is not the one the tenant keys were wrapped under stops the projector
 * here, with why, instead of dead-lettering every client event. */
static VpMasterKeys master_keys;
static VpKeyring *keyring;

#define KEYS_START_TIMEOUT_MS 120000

static int start_keys(void)
{
	char why[512];
	int status = 0;
	VpMasterFiles files = {cfg.master_key_file, cfg.master_key_previous_file};
	keyring = vp_keyring_open(cfg.brokers, cfg.kafka_props, cfg.keys_topic, &files, true,
				  KEYS_START_TIMEOUT_MS, &stop_requested, &master_keys, &status, why,
				  sizeof(why));
	if (!keyring) {
		vp_log_error(NULL, "keys", "cannot start: %s", why);
		return -1;
	}
	vp_log_info(NULL, "keys", "%zu tenant key(s), %zu client key(s) from %s",
		    vp_keyring_tenants(keyring), vp_keyring_clients(keyring), cfg.keys_topic);
	pj_keys_use(keyring, (int)cfg.key_wait_ms);
	return 0;
}

static void stop_keys(void)
{
	pj_keys_use(NULL, 0);
	keyring = vp_keyring_free(keyring);
	vp_master_keys_free(&master_keys);
}

/* `projector rebuild --tenant T`: no HTTP service, no consume loop; the
 * live projector keeps running (rebuild_tenant.c). */
static int rebuild_one_tenant(void)
{
	int level = vp_log_level_parse(cfg.log_level);
	vp_log_init("projector", level < 0 ? VP_LOG_INFO : (VpLogLevel)level);
	struct sigaction sa = {0};
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int code = start_keys() < 0 ? PJ_TENANT_EXIT_FAILED : pj_rebuild_tenant(&cfg, &stop_requested);
	stop_keys();
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return code;
}

int main(int argc, char **argv)
{
	static char live_schema[64];
	VpService service = {0};
	pthread_t http_thread;
	bool http_started = false;
	const PjStatus status = {set_pg_ok, set_kafka_ok};
	VpError err;
	int exit_code = 1;

	bool rebuild = argc > 1 && !strcmp(argv[1], "rebuild");
	if (rebuild) {
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	int loaded = load_config(argc, argv);
	if (loaded != 0)
		return loaded > 0 ? 0 : 2;
	bool one_tenant = *cfg.rebuild_tenant != '\0';
	if ((one_tenant || cfg.dry_run) && !rebuild) {
		fprintf(stderr, "projector: --tenant and --dry-run go with `projector rebuild`\n");
		vp_config_free(config_items, N_CONFIG_ITEMS);
		return 2;
	}
	if (cfg.dry_run && !one_tenant) {
		fprintf(stderr, "projector: --dry-run needs --tenant (a whole rebuild swaps nothing "
			"until it is caught up; stop it instead)\n");
		vp_config_free(config_items, N_CONFIG_ITEMS);
		return 2;
	}
	if (one_tenant)
		return rebuild_one_tenant();
	if (rebuild && setup_rebuild(live_schema, sizeof(live_schema)) < 0) {
		vp_config_free(config_items, N_CONFIG_ITEMS);
		return 2;
	}
	int level = vp_log_level_parse(cfg.log_level);
	vp_log_init("projector", level < 0 ? VP_LOG_INFO : (VpLogLevel)level);
	struct sigaction sa = {0};
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (sodium_init() < 0 || evthread_use_pthreads() < 0 || start_keys() < 0)
		goto done;
	vp_error_clear(&err);
	service.ready = check_ready;
	if (vp_service_open(&service, cfg.host, (int)cfg.port, false, &err) < 0 ||
	    start_service(&service, &http_thread) < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	http_started = true;
	vp_log_info(NULL, "listening", "http://%s:%d", cfg.host, vp_service_port(&service));
	int outcome = pj_consumer_run(&cfg, &stop_requested, &status);
	if (outcome < 0)
		goto done;
	if (rebuild && outcome == 0) {
		vp_log_warn(NULL, "stopped", "signal received before the swap; %s left as built",
			    cfg.schema);
		exit_code = 4;
		goto done;
	}
	vp_log_info(NULL, "stopped", rebuild ? "rebuilt and swapped in" : "signal received, clean stop");
	exit_code = 0;
done:
	if (http_started) {
		vp_service_stop(&service);
		pthread_join(http_thread, NULL);
	}
	vp_service_close(&service);
	stop_keys();
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
