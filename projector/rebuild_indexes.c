/* The bulk path of `projector rebuild`: the fresh schema is filled without its
 * secondary indexes and indexed once the fill has caught up, as pg_restore
 * does: one sorted build per index instead of a tree insert per row, and the
 * trigram GIN indexes (fastupdate off) no longer cost a posting-list update
 * per registration. The rows are written by the same handlers as live
 * projection; only the time the indexes are built at differs.
 *
 * Right after the migrations built <live>_next, pj_rebuild_defer_indexes
 * records the definition (pg_get_indexdef) of every index no statement needs
 * while applying and drops it, in one transaction. Kept: primary keys, unique
 * indexes and indexes behind constraints (ON CONFLICT targets and the
 * uniqueness checks that make dead letters), indexes of materialized views,
 * and the ones migration 009 comments 'projector lookup: ...' (handlers find
 * rows by them). The definitions live in <next>.rebuild_deferred_indexes, so
 * the schema itself says what it still lacks: each index is created in the
 * transaction that deletes its row, and a build that fails half way goes on
 * from what is left when retried. (A restarted rebuild process drops the
 * fresh schema and starts again from offset 0 anyway: pj_rebuild_reset.)
 *
 * pj_rebuild_build_indexes runs the CREATE INDEX statements over a few
 * connections of their own in parallel (largest tables first), each with a
 * raised maintenance_work_mem, then drops the bookkeeping table. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_time.h"

#define INDEX_MAINTENANCE_MEM "'256MB'"

/* One statement, built server-side (identifiers cannot be parameters): the
 * bookkeeping table, then per deferred index its row and its DROP. The
 * definitions are taken with search_path = <next>, public (the migration
 * session's), which is how the builders replay them. */
static const char defer_indexes[] =
	"SELECT format('CREATE TABLE %1$I.rebuild_deferred_indexes (name text PRIMARY KEY,"
	" table_name text NOT NULL, definition text NOT NULL, comment text)', $1::text)"
	" || coalesce(string_agg(format('; INSERT INTO %1$I.rebuild_deferred_indexes"
	" VALUES (%2$L, %3$L, %4$L, %5$L); DROP INDEX %1$I.%2$I', $1::text, i.relname,"
	" t.relname, pg_get_indexdef(i.oid), obj_description(i.oid, 'pg_class')), ''"
	" ORDER BY i.relname), ''), count(i.oid)"
	" FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
	" JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
	" WHERE n.nspname = $1::text AND t.relkind = 'r' AND NOT x.indisunique"
	" AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
	" AND coalesce(obj_description(i.oid, 'pg_class'), '') NOT LIKE 'projector lookup:%'";

/* What is left to build, largest table first (its indexes take longest):
 * name, CREATE INDEX, COMMENT ON INDEX (or NULL). */
static const char list_deferred[] =
	"SELECT CASE WHEN to_regclass(format('%I.rebuild_deferred_indexes', $1::text)) IS NOT NULL"
	" THEN format('SELECT d.name, d.definition, CASE WHEN d.comment IS NOT NULL THEN"
	" format(%3$L, %1$L, d.name, d.comment) END FROM %1$I.rebuild_deferred_indexes d"
	" ORDER BY pg_relation_size(format(%2$L, %1$L, d.table_name)::regclass) DESC, d.name',"
	" $1::text, '%I.%I', 'COMMENT ON INDEX %I.%I IS %L') END";

int pj_rebuild_defer_indexes(PGconn *conn, const char *next_schema, int *n_deferred,
			     char *why, size_t why_cap)
{
	PGresult *built = NULL;
	const char *params[] = {next_schema};
	if (vp_pg_exec(conn, defer_indexes, 1, params, &built, why, why_cap) < 0)
		return -1;
	/* Several statements in one simple query: one implicit transaction. */
	int rc = vp_pg_exec(conn, PQgetvalue(built, 0, 0), 0, NULL, NULL, why, why_cap);
	*n_deferred = atoi(PQgetvalue(built, 0, 1));
	PQclear(built);
	return rc;
}

int pj_rebuild_session(PGconn *conn, char *why, size_t why_cap)
{
	/* A rebuild that dies is redone from offset 0 (pj_rebuild_reset), and
	 * the fresh schema's positions commit with its rows: a commit lost in a
	 * server crash loses both together. Nothing waits for the WAL flush. */
	return vp_pg_exec(conn, "SET synchronous_commit = off", 0, NULL, NULL, why, why_cap);
}

typedef struct IndexBuild {
	const char *dsn;
	const char *schema;
	PGresult *jobs; /* name, CREATE INDEX, COMMENT ON INDEX or NULL */
	char delete_sql[256];
	pthread_mutex_t lock;
	int next_job; /* under lock */
	bool failed;  /* under lock */
	char why[512];
} IndexBuild;

static int take_job(IndexBuild *b)
{
	pthread_mutex_lock(&b->lock);
	int job = b->failed || b->next_job >= PQntuples(b->jobs) ? -1 : b->next_job++;
	pthread_mutex_unlock(&b->lock);
	return job;
}

static void fail(IndexBuild *b, const char *what, const char *why)
{
	pthread_mutex_lock(&b->lock);
	if (!b->failed)
		snprintf(b->why, sizeof(b->why), "%.100s: %.400s", what, why);
	b->failed = true;
	pthread_mutex_unlock(&b->lock);
}

/* The index, its comment and the removal of its row: one transaction. */
static int build_one(PGconn *conn, IndexBuild *b, int job, char *why, size_t why_cap)
{
	const char *name = PQgetvalue(b->jobs, job, 0);
	bool commented = !PQgetisnull(b->jobs, job, 2);
	int rc = vp_pg_exec(conn, "BEGIN", 0, NULL, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, PQgetvalue(b->jobs, job, 1), 0, NULL, NULL, why, why_cap);
	if (rc == 0 && commented)
		rc = vp_pg_exec(conn, PQgetvalue(b->jobs, job, 2), 0, NULL, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, b->delete_sql, 1, (const char *const[]){name}, NULL, why,
				why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, "COMMIT", 0, NULL, NULL, why, why_cap);
	return rc;
}

static void *index_builder(void *arg)
{
	IndexBuild *b = arg;
	char why[512];
	PGresult *res = NULL;
	const char *params[] = {b->schema};
	PGconn *conn = vp_pg_connect(b->dsn, "vetpms-projector-index", why, sizeof(why));
	if (!conn) {
		fail(b, "connect", why);
		return NULL;
	}
	/* The search_path the definitions were taken with; memory for the
	 * sorts; no parallel workers of its own (the builders are the
	 * parallelism, on a box of few cores). */
	if (vp_pg_exec(conn, "SELECT format('SET search_path = %I, public', $1::text)", 1, params,
		       &res, why, sizeof(why)) < 0 ||
	    vp_pg_exec(conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, sizeof(why)) < 0 ||
	    vp_pg_exec(conn,
		       "SET maintenance_work_mem = " INDEX_MAINTENANCE_MEM
		       "; SET max_parallel_maintenance_workers = 0; SET synchronous_commit = off",
		       0, NULL, NULL, why, sizeof(why)) < 0) {
		fail(b, "session", why);
		goto done;
	}
	for (int job = take_job(b); job >= 0; job = take_job(b)) {
		int64_t started = vp_time_mono_us();
		if (build_one(conn, b, job, why, sizeof(why)) < 0) {
			fail(b, PQgetvalue(b->jobs, job, 0), why);
			break;
		}
		vp_log_debug(NULL, "rebuild_index", "%s built in %.2f s", PQgetvalue(b->jobs, job, 0),
			     (double)(vp_time_mono_us() - started) / VP_US_PER_SEC);
	}
done:
	PQclear(res);
	PQfinish(conn);
	return NULL;
}

int pj_rebuild_build_indexes(PGconn *conn, const char *dsn, const char *next_schema,
			     int n_connections, char *why, size_t why_cap)
{
	PGresult *built = NULL, *res = NULL;
	const char *params[] = {next_schema};
	IndexBuild b = {.dsn = dsn, .schema = next_schema};
	pthread_t threads[PJ_REBUILD_MAX_INDEX_CONNECTIONS];
	int n_threads = 0, rc = -1;
	int64_t started = vp_time_mono_us();

	if (vp_pg_exec(conn, list_deferred, 1, params, &built, why, why_cap) < 0)
		return -1;
	if (PQgetisnull(built, 0, 0)) { /* built already (a retried swap) */
		PQclear(built);
		return 0;
	}
	if (vp_pg_exec(conn, PQgetvalue(built, 0, 0), 0, NULL, &b.jobs, why, why_cap) < 0 ||
	    vp_pg_exec(conn,
		       "SELECT format('DELETE FROM %I.rebuild_deferred_indexes WHERE name = $1',"
		       " $1::text), format('DROP TABLE %I.rebuild_deferred_indexes', $1::text)",
		       1, params, &res, why, why_cap) < 0)
		goto done;
	snprintf(b.delete_sql, sizeof(b.delete_sql), "%s", PQgetvalue(res, 0, 0));
	pthread_mutex_init(&b.lock, NULL);
	int n_jobs = PQntuples(b.jobs);
	if (n_connections > PJ_REBUILD_MAX_INDEX_CONNECTIONS)
		n_connections = PJ_REBUILD_MAX_INDEX_CONNECTIONS;
	if (n_connections > n_jobs)
		n_connections = n_jobs;
	for (int i = 0; i < n_connections; i++) {
		if (pthread_create(&threads[n_threads], NULL, index_builder, &b) != 0) {
			fail(&b, "thread", "cannot start an index builder");
			break;
		}
		n_threads++;
	}
	for (int i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&b.lock);
	if (b.failed) {
		snprintf(why, why_cap, "index build: %s", b.why);
		goto done;
	}
	if (vp_pg_exec(conn, PQgetvalue(res, 0, 1), 0, NULL, NULL, why, why_cap) < 0)
		goto done;
	vp_log_info(NULL, "rebuild_indexed", "%d index(es) of %s built in %.1f s over %d connection(s)",
		    n_jobs, next_schema, (double)(vp_time_mono_us() - started) / VP_US_PER_SEC,
		    n_threads);
	rc = 0;
done:
	PQclear(res);
	PQclear(b.jobs);
	PQclear(built);
	return rc;
}
