/* Materialized views for analysts, refreshed CONCURRENTLY on a side thread with
 * its own connection, every VETPMS_PROJECTOR_MV_REFRESH_MS. Each view has its
 * own dirty flag, set when the consume loop committed an event of the
 * aggregate that feeds it (appointments, medical records, invoices): a view is
 * refreshed only when such an event was applied since its last refresh.
 * CONCURRENTLY takes only an ExclusiveLock on the view: readers keep reading
 * the old contents and event application (writes to the base tables) never
 * waits for a refresh. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "projector.h"
#include "vp_catalog.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_pg.h"
#include "vp_time.h"

/* Fixed names, never input: each refresh statement is a constant. */
typedef struct PjView {
	const char *name;
	const char *aggregate; /* VP_AGG_*: the events that change what it shows */
	const char *labels; /* kept by the metrics registry: a literal */
	const char *refresh_sql;
	VpMetric *refreshes;
	VpMetric *failures;
	VpMetric *seconds;
} PjView;

static PjView views[] = {
    {.name = "appointment_type_mix_monthly",
     .aggregate = VP_AGG_APPOINTMENT,
     .labels = "view=\"appointment_type_mix_monthly\"",
     .refresh_sql = "REFRESH MATERIALIZED VIEW CONCURRENTLY appointment_type_mix_monthly"},
    {.name = "diagnosis_counts_monthly",
     .aggregate = VP_AGG_MEDICAL_RECORD,
     .labels = "view=\"diagnosis_counts_monthly\"",
     .refresh_sql = "REFRESH MATERIALIZED VIEW CONCURRENTLY diagnosis_counts_monthly"},
    {.name = "treatment_counts_monthly",
     .aggregate = VP_AGG_MEDICAL_RECORD,
     .labels = "view=\"treatment_counts_monthly\"",
     .refresh_sql = "REFRESH MATERIALIZED VIEW CONCURRENTLY treatment_counts_monthly"},
    {.name = "revenue_monthly_summary",
     .aggregate = VP_AGG_INVOICE,
     .labels = "view=\"revenue_monthly_summary\"",
     .refresh_sql = "REFRESH MATERIALIZED VIEW CONCURRENTLY revenue_monthly_summary"},
};
#define N_VIEWS (sizeof(views) / sizeof(views[0]))
_Static_assert(N_VIEWS <= sizeof(unsigned) * 8, "one dirty bit per view");

struct PjViews {
	const PjConfig *cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	unsigned dirty; /* bit i: views[i] changed since its last refresh */
	bool stopping;
	PGconn *conn;
};

static void register_metrics(void)
{
	for (size_t i = 0; i < N_VIEWS; i++) {
		const char *labels = views[i].labels;
		views[i].refreshes = vp_metrics_counter("vetpms_projector_mv_refreshes_total",
							labels, "Materialized view refreshes done");
		views[i].failures =
		    vp_metrics_counter("vetpms_projector_mv_refresh_failures_total", labels,
				       "Materialized view refreshes failed");
		views[i].seconds =
		    vp_metrics_histogram("vetpms_projector_mv_refresh_duration_seconds", labels,
					 "Time of one materialized view refresh");
	}
}

static int connect_views(PjViews *v, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {v->cfg->schema};
	if (v->conn && PQstatus(v->conn) == CONNECTION_OK)
		return 0;
	if (v->conn)
		PQfinish(v->conn);
	v->conn = vp_pg_connect(v->cfg->dsn, "vetpms-projector-views", why, why_cap);
	if (!v->conn)
		return -1;
	if (vp_pg_exec(v->conn, "SELECT format('SET search_path = %I, public', $1::text)", 1,
		       params, &res, why, why_cap) < 0) {
		PQfinish(v->conn);
		v->conn = NULL;
		return -1;
	}
	int rc = vp_pg_exec(v->conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
	PQclear(res);
	if (rc < 0) {
		/* Never keep a connection without its search_path. */
		PQfinish(v->conn);
		v->conn = NULL;
	}
	return rc;
}

unsigned pj_views_fed_by(const VpEvent *ev)
{
	unsigned mask = 0;
	for (size_t i = 0; i < N_VIEWS; i++)
		if (!strcmp(ev->aggregate, views[i].aggregate))
			mask |= 1u << i;
	return mask;
}

/* The dirty views once each; returns those that are still dirty (their
 * refresh failed, or the connection did): the caller marks them dirty again.
 * One view that fails does not hold the others back. */
static unsigned refresh_dirty(PjViews *v, unsigned dirty)
{
	char why[512];
	if (connect_views(v, why, sizeof(why)) < 0) {
		vp_log_warn(NULL, "mv_refresh", "connect: %s", why);
		return dirty;
	}
	for (size_t i = 0; i < N_VIEWS; i++) {
		if (!(dirty & (1u << i)))
			continue;
		int64_t started = vp_time_mono_us();
		if (vp_pg_exec(v->conn, views[i].refresh_sql, 0, NULL, NULL, why, sizeof(why)) <
		    0) {
			vp_metric_add(views[i].failures, 1);
			vp_log_warn(NULL, "mv_refresh", "%s: %s", views[i].name, why);
			if (PQstatus(v->conn) != CONNECTION_OK)
				return dirty;
			continue;
		}
		dirty &= ~(1u << i);
		vp_metric_add(views[i].refreshes, 1);
		vp_metric_observe_us(views[i].seconds, vp_time_mono_us() - started);
		vp_log_debug(NULL, "mv_refresh", "%s refreshed", views[i].name);
	}
	return dirty;
}

static void *views_thread(void *arg)
{
	PjViews *v = arg;
	pthread_mutex_lock(&v->lock);
	while (!v->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += v->cfg->mv_refresh_ms / 1000;
		until.tv_nsec += (v->cfg->mv_refresh_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		int rc = 0;
		while (!v->stopping && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&v->wake, &v->lock, &until);
		if (v->stopping || !v->dirty)
			continue;
		unsigned dirty = v->dirty;
		v->dirty = 0;
		pthread_mutex_unlock(&v->lock);
		unsigned left = refresh_dirty(v, dirty);
		pthread_mutex_lock(&v->lock);
		v->dirty |= left;
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

PjViews *pj_views_start(const PjConfig *cfg)
{
	PjViews *v = calloc(1, sizeof(*v));
	pthread_condattr_t attr;
	if (!v)
		return NULL;
	v->cfg = cfg;
	register_metrics();
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wake, &attr);
	pthread_condattr_destroy(&attr);
	/* SIGTERM belongs to the consume loop's thread. */
	sigset_t blocked, previous;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	pthread_sigmask(SIG_BLOCK, &blocked, &previous);
	int created = pthread_create(&v->thread, NULL, views_thread, v);
	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	if (created != 0) {
		pthread_cond_destroy(&v->wake);
		pthread_mutex_destroy(&v->lock);
		free(v);
		return NULL;
	}
	return v;
}

void pj_views_mark_dirty(PjViews *v, unsigned views_mask)
{
	if (!v || !views_mask)
		return;
	pthread_mutex_lock(&v->lock);
	v->dirty |= views_mask & ((1u << (N_VIEWS - 1)) * 2 - 1);
	pthread_mutex_unlock(&v->lock);
}

PjViews *pj_views_stop(PjViews *v)
{
	if (!v)
		return NULL;
	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	if (v->conn)
		PQfinish(v->conn);
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->lock);
	free(v);
	return NULL;
}
