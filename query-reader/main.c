/* query-reader entry point: configuration, the HTTP service and the non-blocking
 * PostgreSQL pool on one event loop; readiness follows a periodic ping. */
#include <stdio.h>
#include <stdlib.h>
#include <event2/thread.h>
#include <sodium.h>

#include "reader.h"
#include "vp_config.h"
#include "vp_log.h"
#include "vp_service.h"
#include "vp_time.h"

#define PING_EVERY_US 1000000
#define PING_STALE_US 3000000

static RdConfig cfg;

static const VpConfigItem config_items[] = {
	VP_CF_STR("host", "VETPMS_READER_HOST", &cfg.host, "127.0.0.1", "listen address"),
	VP_CF_INT("port", "VETPMS_READER_PORT", &cfg.port, "8081", 0, 65535, "listen port"),
	VP_CF_STR("dsn", "VETPMS_READER_DSN", &cfg.dsn,
		  "host=127.0.0.1 port=55432 dbname=vetpms user=vetpms_reader",
		  "libpq connection string of the read-only role"),
	VP_CF_INT("pool-size", "VETPMS_READER_POOL_SIZE", &cfg.pool_size, "4", 1, 64,
		  "PostgreSQL connections per loop"),
	VP_CF_STR("log-level", "VETPMS_LOG_LEVEL", &cfg.log_level, "info",
		  "debug, info, warn, error"),
};
#define N_CONFIG_ITEMS (sizeof(config_items) / sizeof(config_items[0]))

typedef struct ReaderState {
	RdPgPool *pool;
	struct event *ping_timer;
	bool ping_in_flight;
	int64_t last_ping_ok_us;
	char last_error[256];
} ReaderState;

static void on_ping(const PGresult *res, const char *error, void *arg)
{
	(void)res;
	ReaderState *st = arg;
	st->ping_in_flight = false;
	if (error)
		snprintf(st->last_error, sizeof(st->last_error), "%s", error);
	else
		st->last_ping_ok_us = vp_time_mono_us();
}

static void on_ping_timer(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	ReaderState *st = arg;
	if (!st->ping_in_flight && rd_pgpool_query(st->pool, "SELECT 1", 0, NULL, on_ping, st) == 0)
		st->ping_in_flight = true;
}

static bool check_ready(void *arg, char *why, size_t why_cap)
{
	ReaderState *st = arg;
	if (rd_pgpool_healthy(st->pool) > 0 &&
	    vp_time_mono_us() - st->last_ping_ok_us < PING_STALE_US)
		return true;
	snprintf(why, why_cap, "PostgreSQL unreachable%s%s", *st->last_error ? ": " : "",
		 st->last_error);
	return false;
}

int main(int argc, char **argv)
{
	VpService service = {0};
	ReaderState state = {0};
	char why[512];
	VpError err;
	int exit_code = 1;

	int loaded = vp_config_load(config_items, N_CONFIG_ITEMS, argc, argv,
				    "usage: query-reader [options]", NULL, why, sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "query-reader: %s\n", why);
		vp_config_free(config_items, N_CONFIG_ITEMS);
		return loaded > 0 ? 0 : 2;
	}
	int level = vp_log_level_parse(cfg.log_level);
	vp_log_init("query-reader", level < 0 ? VP_LOG_INFO : (VpLogLevel)level);
	vp_error_clear(&err);
	if (sodium_init() < 0 || evthread_use_pthreads() < 0)
		goto done;
	if (vp_service_open(&service, cfg.host, (int)cfg.port, true, &err) < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	service.ready = check_ready;
	service.ready_arg = &state;
	state.pool = rd_pgpool_new(service.base, cfg.dsn, (int)cfg.pool_size);
	state.ping_timer = event_new(service.base, -1, EV_PERSIST, on_ping_timer, &state);
	struct timeval every = {PING_EVERY_US / 1000000, PING_EVERY_US % 1000000};
	if (!state.pool || !state.ping_timer || event_add(state.ping_timer, &every) < 0) {
		vp_log_error(NULL, "startup", "out of memory");
		goto done;
	}
	on_ping_timer(-1, 0, &state);
	vp_log_info(NULL, "listening", "http://%s:%d", cfg.host, vp_service_port(&service));
	if (vp_service_run(&service) == 0)
		exit_code = 0;
	vp_log_info(NULL, "stopped", "exit code %d", exit_code);
done:
	if (state.ping_timer)
		event_free(state.ping_timer);
	rd_pgpool_free(state.pool);
	vp_service_close(&service);
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
