/* cmd-writer entry point: configuration, the HTTP service, the transactional
 * producer; exits non-zero when Kafka fences this instance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/thread.h>
#include <sodium.h>

#include "decide.h"
#include "vp_config.h"
#include "vp_http_guard.h"
#include "vp_ratelimit.h"
#include "vp_log.h"
#include "writer.h"

static WrConfig cfg;

static VpHttpLimits http_limits;
static VpRateLimits rate_limits;

static const VpConfigItem config_items[] = {
	VP_HTTP_LIMIT_ITEMS(http_limits),
	VP_RATE_LIMIT_ITEMS(rate_limits),
	VP_CF_STR("host", "VETPMS_WRITER_HOST", &cfg.host, "127.0.0.1", "listen address"),
	VP_CF_INT("port", "VETPMS_WRITER_PORT", &cfg.port, "8080", 0, 65535, "listen port"),
	VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &cfg.brokers, "127.0.0.1:59092",
		  "Kafka bootstrap servers"),
	VP_CF_STR("topic", "VETPMS_TOPIC", &cfg.topic, "vetpms.events", "events topic"),
	VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &cfg.keys_topic, VP_TOPIC_KEYS_DEFAULT,
		  "keys topic (compacted; docs/privacy.md)"),
	VP_CF_STR("master-key-file", "VETPMS_MASTER_KEY_FILE", &cfg.master_key_file, "",
		  "file of the master key (mode 0600); else the environment's VETPMS_MASTER_KEY"),
	VP_CF_STR("master-key-previous-file", "VETPMS_MASTER_KEY_PREVIOUS_FILE",
		  &cfg.master_key_previous_file, "",
		  "during a rotation: file of the master key being replaced (mode 0600); else "
		  "the environment's VETPMS_MASTER_KEY_PREVIOUS; records under it are read, "
		  "nothing new is wrapped under it"),
	VP_CF_STR("kafka-props", "VETPMS_KAFKA_PROPS", &cfg.kafka_props, "",
		  "extra librdkafka properties a=b,c=d"),
	VP_CF_INT("instance", "VETPMS_WRITER_INSTANCE", &cfg.instance, "0", 0, 1023,
		  "this writer's index i (owns partitions p with p % n == i)"),
	VP_CF_INT("instances", "VETPMS_WRITER_INSTANCES", &cfg.instances, "1", 1, 1024,
		  "number of writer instances n"),
	VP_CF_STR("jwt-hs256-secret", "VETPMS_JWT_HS256_SECRET", &cfg.jwt_secret, "",
		  "HS256 secret (16-256 bytes); or the Ed25519 key below"),
	VP_CF_STR("jwt-ed25519-public-key", "VETPMS_JWT_ED25519_PUBLIC_KEY",
		  &cfg.jwt_ed25519_public_key, "", "EdDSA public key, base64 (instead of HS256)"),
	VP_CF_STR("jwt-issuer", "VETPMS_JWT_ISSUER", &cfg.jwt_issuer, "", "required iss, if set"),
	VP_CF_STR("jwt-audience", "VETPMS_JWT_AUDIENCE", &cfg.jwt_audience, "",
		  "required aud, if set"),
	VP_CF_INT("max-queue", "VETPMS_WRITER_MAX_QUEUE", &cfg.max_queue, "20000", 1, 10000000,
		  "events decided and waiting for a commit; over it commands get 503"),
	VP_CF_INT("max-batch", "VETPMS_WRITER_MAX_BATCH", &cfg.max_batch, "1000", 1, 100000,
		  "most events in one transaction (group commit)"),
	VP_CF_INT("idempotency-window-s", "VETPMS_IDEMPOTENCY_WINDOW_S", &cfg.idempotency_window_s,
		  "86400", 1, 315360000,
		  "seconds an Idempotency-Key is remembered after its command; later it is new"),
	VP_CF_STR("log-level", "VETPMS_LOG_LEVEL", &cfg.log_level, "info",
		  "debug, info, warn, error"),
	VP_CF_BOOL("dry-run", "VETPMS_WRITER_DRY_RUN", &cfg.dry_run, "false",
		   "benchmarks only: decide and answer but append nothing to Kafka"),
	VP_CF_BOOL("unsealed-for-bench", "VETPMS_WRITER_UNSEALED_FOR_BENCH", &cfg.unsealed_for_bench,
		   "false", "benchmarks only, NEVER in production: client events are written in "
		   "plain text (v1, not sealed); refused unless --dry-run or a bench.* topic"),
	VP_CF_STR("quarantine", "VETPMS_WRITER_QUARANTINE", &cfg.quarantine_text, "",
		  "P:O[,P:O...] records the rebuild may skip if unreadable (docs/operations.md)"),
	VP_CF_STR("fault-commit", "VETPMS_WRITER_FAULT_COMMIT", &cfg.fault_commit, "",
		  "tests only: abort-once (the first transaction waits past its timeout before "
		  "its commit, so the broker aborts it) or lose-answer-once (the first commit's "
		  "answer is taken as lost): either way the outcome is read from the log; "
		  "abort-once-alone: abort-once with one command in that transaction (what "
		  "was decided behind it stays queued)"),
	VP_CF_STR("fault-poison-type", "VETPMS_WRITER_FAULT_POISON_TYPE", &cfg.fault_poison_type, "",
		  "tests only: events of this type get a member the catalog refuses, to prove the "
		  "pre-append check answers 500 and appends nothing"),
};
#define N_CONFIG_ITEMS (sizeof(config_items) / sizeof(config_items[0]))

/* A fenced producer must stop serving at once: another writer owns the id now. */
static void on_watchdog(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	VpService *service = arg;
	if (wr_api_fatal(service->ready_arg)) {
		vp_log_error(NULL, "fenced", "the producer is fenced or failed fatally; exiting");
		vp_service_stop(service);
	}
}

/* Plain personal fields written to a log kept forever cannot be taken back
 * (docs/privacy.md): the bench switch writes only where that cannot happen to
 * a real log, a dry run (nothing appended) or the bench's own topics. */
static bool unsealed_refused(void)
{
	return cfg.unsealed_for_bench && !cfg.dry_run && strncmp(cfg.topic, "bench.", 6) != 0;
}

static int load_config(int argc, char **argv)
{
	char why[512];
	int rc = vp_config_load(config_items, N_CONFIG_ITEMS, argc, argv,
				"usage: cmd-writer [options]\n"
				"       cmd-writer --list-commands   print the command tables as JSON",
				NULL, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "cmd-writer: %s\n", why);
	if (rc == 0) {
		vp_http_guard_set_limits(&http_limits);
		vp_ratelimit_configure(&rate_limits);
	}
	if (rc == 0 && cfg.instance >= cfg.instances) {
		fprintf(stderr, "cmd-writer: --instance must be below --instances\n");
		rc = -1;
	}
	if (rc == 0 && wr_quarantine_parse(cfg.quarantine_text, &cfg.quarantine, why, sizeof(why)) < 0) {
		fprintf(stderr, "cmd-writer: %s\n", why);
		rc = -1;
	}
	if (rc == 0 && unsealed_refused()) {
		fprintf(stderr, "cmd-writer: --unsealed-for-bench (VETPMS_WRITER_UNSEALED_FOR_BENCH) "
				"is for benchmarks only: it needs --dry-run or an events topic named "
				"bench.*, never the production log (docs/decisions.md)\n");
		rc = -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	VpService service = {0};
	WrApi *api = NULL;
	struct event *watchdog = NULL;
	char why[512];
	VpError err;
	int exit_code = 1;

	/* Before the configuration: listing needs neither Kafka nor a secret. */
	if (argc == 2 && !strcmp(argv[1], "--list-commands"))
		return wr_commands_print(stdout) == 0 ? 0 : 1;
	int loaded = load_config(argc, argv);
	if (loaded != 0)
		return loaded > 0 ? 0 : 2;
	vp_log_init("cmd-writer", vp_log_level_parse(cfg.log_level) < 0
					  ? VP_LOG_INFO
					  : (VpLogLevel)vp_log_level_parse(cfg.log_level));
	if (sodium_init() < 0 || evthread_use_pthreads() < 0) {
		vp_log_error(NULL, "startup", "libsodium or libevent threads failed to initialise");
		goto done;
	}
	/* personal fields are sealed under keys the master key wraps: no master
	 * key, no writer (a wrong one stops the first rebuild, keys.c) */
	if (wr_keys_init(&cfg, why, sizeof(why)) < 0) {
		vp_log_error(NULL, "keys", "cannot start: %s", why);
		exit_code = 2;
		goto done;
	}
	vp_error_clear(&err);
	if (vp_service_open(&service, cfg.host, (int)cfg.port, true, &err) < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	api = wr_api_new(&cfg, &service, why, sizeof(why));
	if (!api) {
		vp_log_error(NULL, "startup", "%s", why);
		exit_code = 2;
		goto done;
	}
	service.ready = wr_api_ready;
	service.ready_arg = api;
	service.route = wr_api_route;
	service.route_arg = api;
	watchdog = event_new(service.base, -1, EV_PERSIST, on_watchdog, &service);
	struct timeval every = {0, 200000};
	if (!watchdog || event_add(watchdog, &every) < 0) {
		vp_log_error(NULL, "startup", "cannot start the watchdog");
		goto done;
	}
	vp_log_info(NULL, "listening", "http://%s:%d instance %ld of %ld", cfg.host,
		    vp_service_port(&service), cfg.instance, cfg.instances);
	if (cfg.quarantine.len)
		vp_log_warn(NULL, "quarantine", "%zu position(s) may be skipped if unreadable: %s",
			    cfg.quarantine.len, cfg.quarantine_text);
	if (cfg.unsealed_for_bench)
		vp_log_warn(NULL, "UNSEALED_FOR_BENCH",
			    "BENCHMARK ONLY, NEVER IN PRODUCTION: personal fields of client events "
			    "are written in PLAIN TEXT (v1, not sealed) to %s; unset "
			    "VETPMS_WRITER_UNSEALED_FOR_BENCH",
			    cfg.dry_run ? "nothing (dry run)" : cfg.topic);
	if (cfg.dry_run)
		vp_log_warn(NULL, "dry_run", "dry run: commands are decided and answered, "
					     "but nothing is appended to the log");
	if (vp_service_run(&service) == 0)
		exit_code = wr_api_fatal(api) ? 3 : 0;
	vp_log_info(NULL, "stopped", "exit code %d", exit_code);
done:
	if (watchdog)
		event_free(watchdog);
	wr_api_free(api);
	wr_keys_release();
	vp_service_close(&service);
	wr_quarantine_clear(&cfg.quarantine);
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
