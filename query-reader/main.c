/* query-reader entry point: configuration (JWT key, cursor key), then
 * VETPMS_READER_THREADS worker threads, each with its own event loop, HTTP
 * service, non-blocking PostgreSQL pool and LISTEN connection for the
 * consistency waits; readiness follows a periodic ping per loop. The main
 * thread only binds the socket, waits for SIGTERM/SIGINT and joins. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/thread.h>
#include <sodium.h>

#include "projector.h" /* pj_keys_use */
#include "reader.h"
#include "vp_keyring.h"
#include "vp_auth.h"
#include "vp_config.h"
#include "vp_http_guard.h"
#include "vp_ratelimit.h"
#include "vp_log.h"
#include "vp_service.h"
#include "vp_time.h"

#define PING_EVERY_US 1000000
#define PING_STALE_US 3000000
#define MAX_THREADS   64
#define DRAIN_MS      100

static RdConfig cfg;
static VpMasterKeys master_keys;
static VpKeyring *keyring;

static VpHttpLimits http_limits;
static VpRateLimits rate_limits;

static const VpConfigItem config_items[] = {
	VP_HTTP_LIMIT_ITEMS(http_limits),
	VP_RATE_LIMIT_ITEMS(rate_limits),
	VP_CF_STR("host", "VETPMS_READER_HOST", &cfg.host, "127.0.0.1", "listen address"),
	VP_CF_INT("port", "VETPMS_READER_PORT", &cfg.port, "8081", 0, 65535, "listen port"),
	VP_CF_STR("dsn", "VETPMS_READER_DSN", &cfg.dsn,
		  "host=127.0.0.1 port=55432 dbname=vetpms user=vetpms_reader",
		  "libpq connection string of the read-only role"),
	VP_CF_INT("pg-deadline-ms", "VETPMS_READER_PG_DEADLINE_MS", &cfg.pg_deadline_ms, "5000",
		  100, 600000,
		  "a query's wait for a connection and then its answer, before 503; also "
		  "statement_timeout"),
	VP_CF_INT("as-of-folds", "VETPMS_READER_AS_OF_FOLDS", &cfg.as_of_folds, "2", 1, 64,
		  "history folds (?as_of=) running at once per loop, each on a thread and a "
		  "connection of its own (503 over it)"),
	VP_CF_INT("pool-size", "VETPMS_READER_POOL_SIZE", &cfg.pool_size, "4", 1, 64,
		  "PostgreSQL connections per loop"),
	VP_CF_STR("log-level", "VETPMS_LOG_LEVEL", &cfg.log_level, "info",
		  "debug, info, warn, error"),
	VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &cfg.brokers, "127.0.0.1:59092",
		  "Kafka bootstrap servers (the keys topic)"),
	VP_CF_STR("kafka-props", "VETPMS_KAFKA_PROPS", &cfg.kafka_props, "",
		  "extra librdkafka properties a=b,c=d"),
	VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &cfg.keys_topic, VP_TOPIC_KEYS_DEFAULT,
		  "keys topic (history folds open sealed client events; docs/privacy.md)"),
	VP_CF_STR("master-key-file", "VETPMS_MASTER_KEY_FILE", &cfg.master_key_file, "",
		  "file of the master key (mode 0600); else the environment's VETPMS_MASTER_KEY"),
	VP_CF_STR("master-key-previous-file", "VETPMS_MASTER_KEY_PREVIOUS_FILE",
		  &cfg.master_key_previous_file, "",
		  "during a rotation: file of the master key being replaced (mode 0600); else "
		  "the environment's VETPMS_MASTER_KEY_PREVIOUS; records under it are read, "
		  "nothing new is wrapped under it"),
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
	VP_CF_INT("threads", "VETPMS_READER_THREADS", &cfg.threads, "2", 1, MAX_THREADS,
		  "worker threads, each with its own event loop and pool"),
	VP_CF_INT("stream-max", "VETPMS_STREAM_MAX", &cfg.stream_max, "1000", 0, 100000,
		  "open GET /v1/stream answers per process (503 over it)"),
	VP_CF_INT("stream-max-per-tenant", "VETPMS_STREAM_MAX_PER_TENANT",
		  &cfg.stream_max_per_tenant, "200", 0, 100000,
		  "open streams of one tenant per process (429 over it)"),
	VP_CF_INT("stream-heartbeat-ms", "VETPMS_STREAM_HEARTBEAT_MS", &cfg.stream_heartbeat_ms,
		  "15000", 100, 600000, "a comment line on every stream this often"),
	VP_CF_INT("stream-buffer-bytes", "VETPMS_STREAM_BUFFER_BYTES", &cfg.stream_buffer_bytes,
		  "1048576", 4096, 1073741824,
		  "bytes a stream's client has not taken yet before it is dropped"),
	VP_CF_INT("stream-dead-peer-ms", "VETPMS_STREAM_DEAD_PEER_MS", &cfg.stream_dead_peer_ms,
		  "45000", 1000, 3600000,
		  "a stream's peer that acknowledges nothing this long is gone (TCP_USER_TIMEOUT)"),
	VP_CF_STR("app-dir", "VETPMS_READER_APP_DIR", &cfg.app_dir, "web/app",
		  "folder of the dashboard page served at /app/ (relative: to the working "
		  "directory)"),
	VP_CF_STR("vendor-dir", "VETPMS_READER_VENDOR_DIR", &cfg.vendor_dir,
		  "/usr/share/javascript/chart.js",
		  "folder of Chart.js (Debian's libjs-chart.js), served at /app/vendor/"),
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
	sh->verifier.leeway_s = VP_AUTH_LEEWAY_S;
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
	if (!st->pool) {
		snprintf(why, why_cap, "shutting down");
		return false;
	}
	if (rd_pgpool_healthy(st->pool) > 0 &&
	    vp_time_mono_us() - st->last_ping_ok_us < PING_STALE_US)
		return true;
	snprintf(why, why_cap, "PostgreSQL unreachable%s%s", *st->last_error ? ": " : "",
		 st->last_error);
	return false;
}

/* One worker thread: everything it touches is its own, except `shared` and
 * the configuration (read-only once serving), the metrics (atomics) and
 * `ended`, which only wakes the main thread. */
typedef struct RdWorker {
	int index;
	VpService service;
	ReaderState state;
	RdLoop loop;
	pthread_t thread;
	bool started;
	int run_result;
	struct event *ended; /* on the main loop: this worker's loop has ended */
} RdWorker;

/* Registry labels must outlive every render, so they are static. */
static char thread_labels[MAX_THREADS][24];

/* Builds a worker's loop on its dup of the listening socket (taken). Runs on
 * the main thread before the worker starts; pthread_create publishes it. */
static int worker_open(RdWorker *w, int fd, VpError *err)
{
	if (vp_service_open_on_fd(&w->service, fd, false, err) < 0)
		return -1;
	w->service.ready = check_ready;
	w->service.ready_arg = &w->state;
	w->state.pool = rd_pgpool_new(w->service.base, cfg.dsn, (int)cfg.pool_size,
				      cfg.pg_deadline_ms);
	w->state.ping_timer = event_new(w->service.base, -1, EV_PERSIST, on_ping_timer, &w->state);
	w->loop.shared = &shared;
	w->loop.base = w->service.base;
	w->loop.pool = w->state.pool;
	w->loop.consistency = w->state.pool
				      ? rd_consistency_new(w->service.base, cfg.dsn, cfg.topic,
							   w->state.pool, cfg.consistency_wait_ms)
				      : NULL;
	w->loop.streams = w->loop.consistency ? rd_streams_new(&w->loop, &cfg) : NULL;
	w->loop.as_of = rd_asof_new(w->service.base, cfg.dsn, cfg.pg_deadline_ms,
				    (int)cfg.as_of_folds);
	if (w->loop.streams)
		rd_consistency_on_progress(w->loop.consistency, rd_streams_progress,
					   w->loop.streams);
	w->service.route = rd_route;
	w->service.route_arg = &w->loop;
	struct timeval every = {PING_EVERY_US / 1000000, PING_EVERY_US % 1000000};
	if (!w->state.pool || !w->loop.consistency || !w->loop.streams || !w->loop.as_of ||
	    !w->state.ping_timer ||
	    event_add(w->state.ping_timer, &every) < 0)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	on_ping_timer(-1, 0, &w->state);
	return 0;
}

/* Frees the loop's own resources; on the worker thread once its loop has
 * stopped, or on the main thread for a worker never started (or joined). */
static void worker_release(RdWorker *w)
{
	if (w->state.ping_timer)
		event_free(w->state.ping_timer);
	w->state.ping_timer = NULL;
	/* Streams first (each answer ends cleanly; their queries in flight free
	 * them when the pool fails them). Then the pool: its pending table checks
	 * call into the consistency waits; both answer their pending requests
	 * (503) before evhttp_free. */
	if (w->loop.consistency)
		rd_consistency_on_progress(w->loop.consistency, NULL, NULL);
	w->loop.streams = rd_streams_free(w->loop.streams);
	w->loop.as_of = rd_asof_free(w->loop.as_of); /* joins the folds, answers 503 */
	w->state.pool = rd_pgpool_free(w->state.pool);
	w->loop.pool = NULL; /* rd_route answers 503 from now on */
	w->loop.consistency = rd_consistency_free(w->loop.consistency);
}

static void worker_close(RdWorker *w)
{
	worker_release(w);
	vp_service_close(&w->service);
	if (w->ended)
		event_free(w->ended);
	memset(w, 0, sizeof(*w));
}

static void *worker_main(void *arg)
{
	RdWorker *w = arg;
	w->run_result = vp_service_run(&w->service);
	worker_release(w);
	vp_service_drain(&w->service, DRAIN_MS); /* the 503s leave */
	vp_log_debug(NULL, "thread_stopped", "thread %d", w->index);
	/* Wakes the main loop (thread-safe: evthread_use_pthreads); after a stop
	 * it asked for, nobody dispatches it any more and that is harmless. */
	event_active(w->ended, EV_READ, 0);
	return NULL;
}

/* Main thread only: a worker's loop ended before it was asked to (exit 1). */
static bool worker_failed;

static void on_worker_ended(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	RdWorker *w = arg;
	worker_failed = true;
	vp_log_error(NULL, "thread_ended", "the loop of thread %d ended on its own", w->index);
	event_base_loopexit(event_get_base(w->ended), NULL);
}

/* Main thread only: the keys topic's first master record names another master
 * key than this reader's (docs/privacy.md, "Start-up refusal"): exit 1, as at
 * start. Checked once a second. */
static void on_keys_check(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	char why[512];
	if (!vp_keyring_master_refused(keyring, why, sizeof(why)))
		return;
	vp_log_error(NULL, "keys", "cannot go on: %s", why);
	worker_failed = true;
	event_base_loopexit(arg, NULL);
}

static void on_main_signal(evutil_socket_t sig, short events, void *arg)
{
	(void)events;
	vp_log_info(NULL, "signal", "received signal %d, stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

/* The worker threads block SIGTERM and SIGINT (they inherit the mask), so the
 * main thread's loop is the one that takes them. */
static int start_workers(RdWorker *workers, int n)
{
	sigset_t block, saved;
	int rc = 0;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	for (int i = 0; i < n && rc == 0; i++) {
		rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		workers[i].started = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return rc == 0 ? 0 : -1;
}

/* Stops every started loop and joins; 0 when each stopped cleanly. */
static int stop_workers(RdWorker *workers, int n)
{
	int result = 0;
	for (int i = 0; i < n; i++)
		if (workers[i].started)
			vp_service_stop(&workers[i].service);
	for (int i = 0; i < n; i++) {
		if (!workers[i].started)
			continue;
		pthread_join(workers[i].thread, NULL);
		workers[i].started = false;
		if (workers[i].run_result != 0)
			result = -1;
	}
	return result;
}

/* The port a bound socket got (for --port 0). */
static int socket_port(int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		return -1;
	return ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
						 : ((struct sockaddr_in *)&addr)->sin_port);
}

int main(int argc, char **argv)
{
	RdWorker *workers = NULL;
	struct event_base *main_base = NULL;
	struct event *sig_term = NULL;
	struct event *sig_int = NULL;
	struct event *keys_check = NULL; /* on_keys_check */
	int listen_fd = -1;
	int n_workers = 0;
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
	vp_http_guard_set_limits(&http_limits);
	vp_ratelimit_configure(&rate_limits);
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
	/* history folds replay sealed client events (as_of.c): the keys first; a
	 * wrong master key stops the reader here */
	int key_status = 0;
	VpMasterFiles files = {cfg.master_key_file, cfg.master_key_previous_file};
	keyring = vp_keyring_open(cfg.brokers, cfg.kafka_props, cfg.keys_topic, &files, true,
				  120000, NULL, &master_keys, &key_status, why, sizeof(why));
	if (!keyring) {
		vp_log_error(NULL, "keys", "cannot start: %s", why);
		goto done;
	}
	pj_keys_use(keyring, 10000);
	/* One socket per loop on the same port (SO_REUSEPORT): the kernel spreads
	 * connections between the loops by address hash, whatever the scheduler
	 * does. A shared accept queue (one socket, a dup per loop) was tried first:
	 * under load one loop could win every accept and the others idled. The
	 * price: another process of the same user may also bind this port with
	 * SO_REUSEPORT and share the traffic instead of failing (EADDRINUSE still
	 * stops anything that does not set the option). */
	listen_fd = vp_service_bind(cfg.host, (int)cfg.port, true, &err);
	if (listen_fd < 0) {
		vp_log_error(NULL, "startup", "http: %s", err.message);
		goto done;
	}
	int bound_port = socket_port(listen_fd);
	main_base = event_base_new();
	workers = calloc((size_t)cfg.threads, sizeof(*workers));
	if (!main_base || !workers) {
		vp_log_error(NULL, "startup", "out of memory");
		goto done;
	}
	for (n_workers = 0; n_workers < (int)cfg.threads; n_workers++) {
		RdWorker *w = &workers[n_workers];
		w->index = n_workers;
		/* Registered once, here, before any thread runs. */
		snprintf(thread_labels[n_workers], sizeof(thread_labels[n_workers]),
			 "thread=\"%d\"", n_workers);
		w->loop.requests = vp_metrics_counter("vetpms_reader_thread_requests_total",
						      thread_labels[n_workers],
						      "/v1 requests routed by each worker thread");
		w->ended = event_new(main_base, -1, 0, on_worker_ended, w);
		int fd = n_workers == 0 ? dup(listen_fd)
					: vp_service_bind(cfg.host, bound_port, true, &err);
		if (!w->ended || fd < 0) {
			if (fd >= 0)
				close(fd);
			vp_log_error(NULL, "startup", "thread %d: out of resources", n_workers);
			n_workers++;
			goto done;
		}
		if (worker_open(w, fd, &err) < 0) {
			vp_log_error(NULL, "startup", "thread %d: %s", n_workers, err.message);
			n_workers++;
			goto done;
		}
	}
	sig_term = evsignal_new(main_base, SIGTERM, on_main_signal, main_base);
	sig_int = evsignal_new(main_base, SIGINT, on_main_signal, main_base);
	keys_check = event_new(main_base, -1, EV_PERSIST, on_keys_check, main_base);
	struct timeval every_second = {1, 0};
	if (!sig_term || !sig_int || !keys_check || evsignal_add(sig_term, NULL) < 0 ||
	    evsignal_add(sig_int, NULL) < 0 || event_add(keys_check, &every_second) < 0) {
		vp_log_error(NULL, "startup", "cannot install signal handlers or timers");
		goto done;
	}
	if (start_workers(workers, n_workers) < 0) {
		vp_log_error(NULL, "startup", "cannot start the worker threads");
		stop_workers(workers, n_workers);
		goto done;
	}
	vp_log_info(NULL, "listening", "http://%s:%d (%d threads)", cfg.host,
		    vp_service_port(&workers[0].service), n_workers);
	int main_result = event_base_dispatch(main_base);
	if (stop_workers(workers, n_workers) == 0 && main_result == 0 && !worker_failed)
		exit_code = 0;
	vp_log_info(NULL, "stopped", "exit code %d", exit_code);
done:
	for (int i = 0; workers && i < n_workers; i++)
		worker_close(&workers[i]);
	free(workers);
	if (listen_fd >= 0)
		close(listen_fd);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	if (keys_check)
		event_free(keys_check);
	if (main_base)
		event_base_free(main_base);
	pj_keys_use(NULL, 0);
	vp_keyring_free(keyring);
	vp_master_keys_free(&master_keys);
	vp_config_free(config_items, N_CONFIG_ITEMS);
	return exit_code;
}
