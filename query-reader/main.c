/* query-reader entry point: configuration (JWT key, cursor key), the HTTP
 * service, the non-blocking PostgreSQL pool and the LISTEN connection of the
 * consistency waits on one event loop; readiness follows a periodic ping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	VP_CF_STR("topic", "VETPMS_TOPIC", &cfg.topic, "vetpms.events",
		  "events topic (consistency tokens are positions in it)"),
	VP_CF_STR("jwt-hs256-secret", "VETPMS_JWT_HS256_SECRET", &cfg.jwt_hs256_secret, NULL,
		  "HS256 secret (16-256 bytes); exactly one of this and the Ed25519 key"),
	VP_CF_STR("jwt-ed25519-public-key", "VETPMS_JWT_ED25519_PUBLIC_KEY",
		  &cfg.jwt_ed25519_public_key, NULL, "base64 Ed25519 public key (EdDSA tokens)"),
	VP_CF_STR("jwt-issuer", "VETPMS_JWT_ISSUER", &cfg.jwt_issuer, NULL,
		  "required iss claim (empty: not checked)"),
	VP_CF_STR("jwt-audience", "VETPMS_JWT_AUDIENCE", &cfg.jwt_audience, NULL,
		  "required aud claim (empty: not checked)"),
	VP_CF_STR("cursor-secret", "VETPMS_CURSOR_SECRET", &cfg.cursor_secret, NULL,
		  "key of the pagination cursors (default: derived from the HS256 secret)"),
	VP_CF_INT("consistency-wait-ms", "VETPMS_CONSISTENCY_WAIT_MS", &cfg.consistency_wait_ms,
		  "2000", 0, 60000, "longest wait for a consistency token's position"),
};
#define N_CONFIG_ITEMS (sizeof(config_items) / sizeof(config_items[0]))

static const RdStatement ping = {"rd_ping", "SELECT 1", 0};

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
	if (!st->ping_in_flight && rd_pgpool_query(st->pool, &ping, NULL, NULL, on_ping, st) == 0)
		st->ping_in_flight = true;
}

static RdShared shared;

static bool is_set(const char *s)
{
	return s && *s;
}

/* The JWT verifier and the cursor key; -1 with why filled (exit 2). */
static int setup_keys(RdShared *sh, char *why, size_t why_cap)
{
	memset(sh, 0, sizeof(*sh));
	sh->cfg = &cfg;
	if (is_set(cfg.jwt_hs256_secret) == is_set(cfg.jwt_ed25519_public_key)) {
		snprintf(why, why_cap, "set exactly one of VETPMS_JWT_HS256_SECRET and "
				       "VETPMS_JWT_ED25519_PUBLIC_KEY");
		return -1;
	}
	if (is_set(cfg.jwt_hs256_secret) &&
	    vp_jwt_key_from_hs256_secret(&sh->verifier.key, cfg.jwt_hs256_secret) < 0) {
		snprintf(why, why_cap, "VETPMS_JWT_HS256_SECRET must be 16-256 bytes");
		return -1;
	}
	if (is_set(cfg.jwt_ed25519_public_key) &&
	    vp_jwt_key_from_ed25519_public_b64(&sh->verifier.key, cfg.jwt_ed25519_public_key) < 0) {
		snprintf(why, why_cap, "VETPMS_JWT_ED25519_PUBLIC_KEY is not a base64 Ed25519 key");
		return -1;
	}
	sh->verifier.issuer = is_set(cfg.jwt_issuer) ? cfg.jwt_issuer : NULL;
	sh->verifier.audience = is_set(cfg.jwt_audience) ? cfg.jwt_audience : NULL;
	sh->verifier.leeway_s = 5;
	if (is_set(cfg.cursor_secret)) {
		if (vp_cursor_key_derive(&sh->cursor_key, cfg.cursor_secret,
					 strlen(cfg.cursor_secret), "vetpms cursor v1") < 0) {
			snprintf(why, why_cap, "VETPMS_CURSOR_SECRET must be at least 16 bytes");
			return -1;
		}
	} else if (is_set(cfg.jwt_hs256_secret)) {
		vp_cursor_key_derive(&sh->cursor_key, cfg.jwt_hs256_secret,
				     strlen(cfg.jwt_hs256_secret), "vetpms cursor v1");
	} else {
		/* No shared secret at all: cursors are valid only in this process. */
		vp_cursor_key_random(&sh->cursor_key);
		vp_log_warn(NULL, "startup", "no VETPMS_CURSOR_SECRET: cursors die with the process");
	}
	return 0;
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
	RdLoop loop = {0};
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
	if (setup_keys(&shared, why, sizeof(why)) < 0) {
		vp_log_error(NULL, "startup", "%s", why);
		exit_code = 2;
		goto done;
	}
	if (vp_service_open(&service, cfg.host, (int)cfg.port, true, &err) < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	service.ready = check_ready;
	service.ready_arg = &state;
	state.pool = rd_pgpool_new(service.base, cfg.dsn, (int)cfg.pool_size);
	state.ping_timer = event_new(service.base, -1, EV_PERSIST, on_ping_timer, &state);
	loop.shared = &shared;
	loop.base = service.base;
	loop.pool = state.pool;
	loop.consistency = state.pool ? rd_consistency_new(service.base, cfg.dsn, cfg.topic,
							   state.pool, cfg.consistency_wait_ms)
				      : NULL;
	service.route = rd_route;
	service.route_arg = &loop;
	struct timeval every = {PING_EVERY_US / 1000000, PING_EVERY_US % 1000000};
	if (!state.pool || !loop.consistency || !state.ping_timer ||
	    event_add(state.ping_timer, &every) < 0) {
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
	/* Pool first: its pending table checks call into the consistency waits;
	 * both answer their pending requests before evhttp_free. */
	rd_pgpool_free(state.pool);
	rd_consistency_free(loop.consistency);
	vp_service_close(&service);
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
