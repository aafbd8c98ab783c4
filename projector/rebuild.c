/* Blue/green rebuild (`projector rebuild`): the whole log is projected into a
 * fresh schema (<live>_next) by a second projector process while the live one
 * keeps serving; once nearly caught up, the two schemas are swapped.
 *
 * The swap runs on a connection of its own. It first locks every relation of
 * the live schema (ACCESS EXCLUSIVE): the live projector's next batch and the
 * reader's queries wait, so the live positions stop moving. The rebuild's
 * consume loop goes on meanwhile (its schema is not locked) until it has
 * applied at least every position the live one has; then, in the same locked
 * transaction, the fresh schema's materialized views are refreshed, the
 * live schema's grants are copied, its functions pinned to its name are
 * re-pinned to the live name, live is renamed
 * <live>_retired and next renamed live, the retired schema is dropped, and the
 * positions are NOTIFYed. Dropping (not keeping) the old tables is what makes
 * the daemons' prepared statements re-plan against the new ones by name. The
 * live projector's waiting batch fails on the dropped tables and rolls back;
 * it reconnects and re-seeks from the positions it finds, so every event is
 * still applied exactly once. A rebuild that cannot catch up within
 * CATCH_UP_US releases the lock and tries again later.
 *
 * The fill runs without the fresh schema's secondary indexes
 * (rebuild_indexes.c). The first time the rebuild is nearly caught up it
 * builds them, while nothing is locked but its own tables, then catches up
 * again with them in place; only then is the live schema locked.
 *
 * Identifiers cannot be parameters: every statement that names a schema is
 * built server-side with format(%I) and run as a statement of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_time.h"

int pj_rebuild_reset(PGconn *conn, const char *next_schema, char *why, size_t why_cap)
{
	const char *params[] = {next_schema};
	/* identifiers cannot be parameters: format(%I) quotes them server-side */
	return vp_pg_exec_built(conn, "SELECT format('DROP SCHEMA IF EXISTS %I CASCADE', $1::text)",
				1, params, why, why_cap);
}

/* Every table of the live schema, offsets last (LOCK TABLE refuses
 * materialized views; the DROP takes theirs, within lock_timeout). */
static const char lock_live[] =
	"SELECT 'SET LOCAL lock_timeout = ''2s''; LOCK TABLE ' ||"
	" string_agg(format('%I.%I', n.nspname, c.relname), ', '"
	"  ORDER BY c.relname = 'projection_offsets', c.relname) || ' IN ACCESS EXCLUSIVE MODE'"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')";

/* Partitions the live schema has applied further than the fresh one. */
static const char behind[] =
	"SELECT format('SELECT count(*) FROM %I.projection_offsets l WHERE l.topic = %L"
	" AND NOT EXISTS (SELECT 1 FROM %I.projection_offsets n WHERE n.topic = l.topic"
	" AND n.partition = l.partition AND n.next_offset >= l.next_offset)', $1::text,"
	" $3::text, $2::text)";

/* Events the fresh schema has still to apply to reach the live positions.
 * The consumer's lag comes from Kafka's cached watermarks, which read 0 for
 * a partition not fetched yet: at start it can say "caught up" wrongly. */
static const char behind_live[] =
	"SELECT format('SELECT coalesce(sum(l.next_offset - coalesce(n.next_offset, 0)), 0)"
	" FROM %I.projection_offsets l LEFT JOIN %I.projection_offsets n ON n.topic = l.topic"
	" AND n.partition = l.partition WHERE l.topic = %L"
	" AND l.next_offset > coalesce(n.next_offset, 0)', $1::text, $2::text, $3::text)";

/* The live schema's grants to other roles, on the schema, on its relations
 * and as default privileges, given the same way in the fresh one. */
static const char copy_grants[] =
	"SELECT string_agg(stmt, '; ') FROM ("
	" SELECT format('GRANT %s ON SCHEMA %I TO %I', a.privilege_type, $2::text, r.rolname) AS stmt"
	"  FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee"
	"  WHERE n.nspname = $1::text AND a.grantee <> n.nspowner"
	" UNION ALL"
	" SELECT format('GRANT %s ON %I.%I TO %I', a.privilege_type, $2::text, c.relname, r.rolname)"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
	"  aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee"
	"  WHERE n.nspname = $1::text AND a.grantee <> c.relowner AND c.relkind IN ('r', 'm', 'v', 'p')"
	"  AND EXISTS (SELECT 1 FROM pg_class f JOIN pg_namespace fn ON fn.oid = f.relnamespace"
	"   WHERE fn.nspname = $2::text AND f.relname = c.relname)"
	" UNION ALL"
	" SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT %s ON %s TO %I',"
	"  o.rolname, $2::text, a.privilege_type, CASE d.defaclobjtype WHEN 'r' THEN 'TABLES'"
	"  WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' END,"
	"  r.rolname)"
	"  FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace"
	"  JOIN pg_roles o ON o.oid = d.defaclrole,"
	"  aclexplode(d.defaclacl) a JOIN pg_roles r ON r.oid = a.grantee"
	"  WHERE n.nspname = $1::text AND d.defaclobjtype IN ('r', 'S', 'f', 'T')) g";

/* The fresh schema's materialized views, refreshed in the swap transaction:
 * no process refreshes them before (the rebuild's own refresh thread names
 * the fresh schema, which the swap renames), and a live projector that is
 * idle at the swap has nothing to mark them dirty. Not CONCURRENTLY: nobody
 * reads the fresh schema yet. */
static const char refresh_views[] =
	"SELECT string_agg(format('REFRESH MATERIALIZED VIEW %I.%I', schemaname, matviewname),"
	" '; ' ORDER BY matviewname) FROM pg_matviews"
	" WHERE schemaname = $2::text AND $1::text IS NOT NULL";

/* Functions of the fresh schema pinned to it by name (SET search_path FROM
 * CURRENT while migrating into it, e.g. the appointment_rollups trigger):
 * a search_path does not follow a rename, so they are re-pinned to the live
 * name, which the fresh schema is about to take. */
static const char repin_functions[] =
	"SELECT string_agg(format('ALTER FUNCTION %I.%I(%s) SET search_path = %s', n.nspname,"
	"  p.proname, pg_get_function_identity_arguments(p.oid),"
	"  array_to_string(array_replace(string_to_array(substr(c.setting, 13), ', '),"
	"   quote_ident($2::text), quote_ident($1::text)), ', ')), '; ')"
	" FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,"
	"  unnest(p.proconfig) c(setting)"
	" WHERE n.nspname = $2::text AND c.setting LIKE 'search\\_path=%'"
	"  AND quote_ident($2::text) = ANY (string_to_array(substr(c.setting, 13), ', '))";

static const char rename_and_drop[] =
	"SELECT format('ALTER SCHEMA %1$I RENAME TO %3$I; ALTER SCHEMA %2$I RENAME TO %1$I;"
	" DROP SCHEMA %3$I CASCADE', $1::text, $2::text, $1::text || '_retired')";

/* The reader waits on these to serve read-your-writes; positions may have
 * moved (a rebuild ahead of the live projector). */
static const char notify_positions[] =
	"SELECT format('SELECT pg_notify(%L, partition || '':'' || next_offset)"
	" FROM %I.projection_offsets WHERE topic = %L', $3::text, $1::text, $2::text)";

/* Sessions that prepared statements against the old schema must start anew:
 * a statement calling a dropped function keeps failing ("cache lookup
 * failed for function"), re-analysis does not save it. The reader renews its
 * pool on VP_PROGRESS_SCHEMA_SWAPPED. */
static const char notify_swapped[] = "SELECT pg_notify($1, $2)";

#define CATCH_UP_US   (10 * VP_US_PER_SEC)
#define RETRY_US      VP_US_PER_SEC
#define LOCK_AT_LAG   1000 /* events left to fetch when the lock is worth taking */

struct PjRebuild {
	const char *dsn;
	int index_connections;
	bool indexed; /* the deferred indexes are built */
	int64_t started_at;
	const char *params[3]; /* live, next, topic */
	const char *notify[3]; /* live, topic, channel */
	PGconn *conn;	       /* the swap's own connection */
	bool locked;
	int64_t locked_at;
	int64_t next_try;
};

PjRebuild *pj_rebuild_new(const PjConfig *cfg, const char *channel)
{
	PjRebuild *rb = calloc(1, sizeof(*rb));
	if (!rb)
		return NULL;
	rb->dsn = cfg->dsn;
	rb->index_connections = (int)cfg->rebuild_index_connections;
	rb->started_at = vp_time_mono_us();
	rb->params[0] = cfg->swap_into;
	rb->params[1] = cfg->schema;
	rb->params[2] = cfg->topic;
	rb->notify[0] = cfg->swap_into;
	rb->notify[1] = cfg->topic;
	rb->notify[2] = channel;
	return rb;
}

PjRebuild *pj_rebuild_free(PjRebuild *rb)
{
	if (rb) {
		if (rb->conn)
			PQfinish(rb->conn);
		free(rb);
	}
	return NULL;
}

static void release(PjRebuild *rb, int64_t now)
{
	char ignored[256];
	if (rb->conn && vp_pg_exec(rb->conn, "ROLLBACK", 0, NULL, NULL, ignored,
				   sizeof(ignored)) < 0) {
		PQfinish(rb->conn);
		rb->conn = NULL;
	}
	rb->locked = false;
	rb->next_try = now + RETRY_US;
}

static int count_behind(PGconn *conn, const char *const *params, char *why, size_t why_cap)
{
	PGresult *built = NULL, *res = NULL;
	int n = -1;
	if (vp_pg_exec(conn, behind, 3, params, &built, why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(conn, PQgetvalue(built, 0, 0), 0, NULL, &res, why, why_cap) == 0)
		n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQclear(built);
	return n;
}

static int connect_swap(PjRebuild *rb, char *why, size_t why_cap)
{
	if (rb->conn && PQstatus(rb->conn) != CONNECTION_OK) {
		PQfinish(rb->conn);
		rb->conn = NULL;
	}
	if (!rb->conn)
		rb->conn = vp_pg_connect(rb->dsn, "vetpms-projector-swap", why, why_cap);
	return rb->conn ? 0 : -1;
}

/* The deferred indexes, once the fill has caught up (the consume loop waits
 * meanwhile: CREATE INDEX would block its inserts anyway). */
static int build_indexes(PjRebuild *rb, int64_t now, char *why, size_t why_cap)
{
	vp_log_info(NULL, "rebuild_filled", "%s caught up without its secondary indexes %.1f s "
		    "after start", rb->params[1], (double)(now - rb->started_at) / VP_US_PER_SEC);
	if (connect_swap(rb, why, why_cap) < 0 ||
	    pj_rebuild_build_indexes(rb->conn, rb->dsn, rb->params[1], rb->index_connections,
				     why, why_cap) < 0) {
		rb->next_try = now + RETRY_US;
		return -1;
	}
	rb->indexed = true;
	return 0;
}

/* 1 when the fresh schema is within LOCK_AT_LAG events of the live one. */
static int near_live(PjRebuild *rb, char *why, size_t why_cap)
{
	PGresult *built = NULL, *res = NULL;
	int near = -1;
	if (connect_swap(rb, why, why_cap) < 0 ||
	    vp_pg_exec(rb->conn, behind_live, 3, rb->params, &built, why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(rb->conn, PQgetvalue(built, 0, 0), 0, NULL, &res, why, why_cap) == 0)
		near = atoll(PQgetvalue(res, 0, 0)) <= LOCK_AT_LAG;
	PQclear(res);
	PQclear(built);
	return near;
}

/* Takes the live schema's locks; -1 when busy (lock timeout) or failed. */
static int lock_live_schema(PjRebuild *rb, int64_t now, char *why, size_t why_cap)
{
	if (connect_swap(rb, why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(rb->conn, "BEGIN", 0, NULL, NULL, why, why_cap) < 0 ||
	    vp_pg_exec_built(rb->conn, lock_live, 1, rb->params, why, why_cap) < 0) {
		release(rb, now);
		return -1;
	}
	rb->locked = true;
	rb->locked_at = now;
	return 0;
}

int pj_rebuild_step(PjRebuild *rb, int64_t lag, char *why, size_t why_cap)
{
	int64_t now = vp_time_mono_us();
	if (!rb->locked) {
		if (lag < 0 || lag > LOCK_AT_LAG || now < rb->next_try)
			return 0;
		int near = near_live(rb, why, why_cap);
		if (near <= 0) {
			if (near < 0)
				release(rb, now);
			return near;
		}
		if (!rb->indexed) /* then catch up again, indexed, before locking */
			return build_indexes(rb, now, why, why_cap);
		if (lock_live_schema(rb, now, why, why_cap) < 0)
			return -1;
	}
	int n_behind = count_behind(rb->conn, rb->params, why, why_cap);
	if (n_behind < 0) {
		release(rb, now);
		return -1;
	}
	if (n_behind > 0) {
		if (now - rb->locked_at > CATCH_UP_US) {
			snprintf(why, why_cap, "%d partition(s) still behind after %d s; lock released",
				 n_behind, (int)(CATCH_UP_US / VP_US_PER_SEC));
			release(rb, now);
			return -1;
		}
		return 0;
	}
	int64_t caught_up = vp_time_mono_us();
	if (vp_pg_exec_built(rb->conn, refresh_views, 2, rb->params, why, why_cap) < 0 ||
	    vp_pg_exec_built(rb->conn, copy_grants, 2, rb->params, why, why_cap) < 0 ||
	    vp_pg_exec_built(rb->conn, repin_functions, 2, rb->params, why, why_cap) < 0 ||
	    vp_pg_exec_built(rb->conn, rename_and_drop, 2, rb->params, why, why_cap) < 0 ||
	    vp_pg_exec_built(rb->conn, notify_positions, 3, rb->notify, why, why_cap) < 0 ||
	    vp_pg_exec(rb->conn, notify_swapped, 2,
		       (const char *const[]){rb->notify[2], VP_PROGRESS_SCHEMA_SWAPPED}, NULL, why,
		       why_cap) < 0 ||
	    vp_pg_exec(rb->conn, "COMMIT", 0, NULL, NULL, why, why_cap) < 0) {
		release(rb, now);
		return -1;
	}
	rb->locked = false;
	int64_t done = vp_time_mono_us();
	vp_log_info(NULL, "rebuild_swapped", "live schema locked %.2f s (catching up %.2f s, "
		    "views, grants, rename and commit %.2f s); %.1f s after start",
		    (double)(done - rb->locked_at) / VP_US_PER_SEC,
		    (double)(caught_up - rb->locked_at) / VP_US_PER_SEC,
		    (double)(done - caught_up) / VP_US_PER_SEC,
		    (double)(done - rb->started_at) / VP_US_PER_SEC);
	return 1;
}
