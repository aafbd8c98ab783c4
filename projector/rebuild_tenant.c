/* One tenant's read model rebuilt (`projector rebuild --tenant T`) while the
 * live projector keeps applying and every other tenant keeps being served.
 *
 * The writer keys every record by its tenant id, so a tenant's events all
 * lie in one partition (vp_kafka_partition_for_key). That partition is read
 * from its beginning by a consumer of no group (assign, no commits); the
 * records whose envelope names T are applied, by the live projector's own
 * handlers (pj_apply_event), into a scratch schema <live>_tenant_<T hex>
 * built by the same migrations, on a connection whose search_path is the
 * scratch schema: the same SQL, only another schema, as the whole-log
 * rebuild does with <live>_next.
 *
 * The swap is one transaction on a connection to the live schema:
 *  1. SELECT ... FOR UPDATE of the partition's projection_offsets row. Every
 *     live batch moves that row first thing (offsets_advance), so from here
 *     the live projector cannot apply the partition: the position N read is
 *     final for this transaction.
 *  2. The scratch schema is caught up to exactly N (records below N, none
 *     beyond) on its own connection, which commits on its own.
 *  3. --dry-run: per table, how many of T's rows differ, printed; then
 *     ROLLBACK. (A real run prints the same just before step 1, unfenced,
 *     to hold the partition no longer than the copy needs.)
 *  4. The user triggers of the tables that have them are disabled (the
 *     append-only registers refuse a DELETE; the appointment rollup would
 *     re-derive rows the scratch schema holds already), then per table
 *     with a tenant_id column: DELETE T's rows the scratch schema does not
 *     have, INSERT the scratch's rows live does not have (rows compared
 *     whole); the triggers are enabled again; COMMIT. T's rows are then
 *     exactly the scratch schema's.
 * The live batch waiting on the offsets row then applies the events after N
 * to the new rows: nothing is lost, nothing applied twice. Readers under
 * READ COMMITTED see, per statement, T's old rows (before the commit) or the
 * new ones (after), never a mix; another tenant's rows are never locked.
 *
 * After the commit the live schema's materialized views are refreshed
 * (CONCURRENTLY: readers keep reading them) and the scratch schema dropped.
 * Dead letters are left as they are: they record what the live projector
 * did, and redriving them is another tool's job.
 *
 * Identifiers cannot be parameters: every statement naming a schema or a
 * table is built server-side with format(%I); the tenant is a parameter. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define LOCK_AT_LAG	1000 /* records left to apply when the swap lock is worth taking */
#define SWAP_TRIES	10
#define STUCK_US	(60 * VP_US_PER_SEC) /* no record for this long: give up */
#define PROGRESS_US	VP_US_PER_SEC

typedef struct TenantRebuild {
	const PjConfig *cfg;
	volatile sig_atomic_t *stop;
	char tenant[37];
	char partition_text[16];
	const char *live;
	char scratch[64];
	int32_t partition;
	bool owns_scratch; /* the advisory lock on its name is held */
	PGconn *apply; /* search_path = scratch: the handlers write there */
	PGconn *swap;  /* the live schema */
	rd_kafka_t *consumer;
	rd_kafka_message_t *pending; /* fetched at or beyond the target: kept */
	rd_kafka_message_t **batch;  /* T's records not applied yet */
	int batch_len;
	int64_t position; /* every record below it is applied (or not T's) */
	int64_t target;	  /* for progress */
	int64_t records, applied, rejected;
	int64_t started, fill_started, last_progress, last_moved;
	int64_t triggers_off_us; /* how long the swap held the triggered tables */
} TenantRebuild;

/* Runs the statement a builder makes with the given parameters; *out as
 * vp_pg_exec. */
static int query_built(PGconn *conn, const char *builder, const char *const *builder_params,
		       int n_params, const char *const *params, PGresult **out, char *why,
		       size_t why_cap)
{
	PGresult *built = NULL;
	if (vp_pg_exec(conn, builder, 1, builder_params, &built, why, why_cap) < 0)
		return -1;
	int rc = vp_pg_exec(conn, PQgetvalue(built, 0, 0), n_params, params, out, why, why_cap);
	PQclear(built);
	return rc;
}

static const char known_tenant[] =
	"SELECT format('SELECT EXISTS (SELECT 1 FROM %1$I.tenants WHERE id = $1::uuid)"
	" OR EXISTS (SELECT 1 FROM %1$I.event_log WHERE tenant_id = $1::uuid)', $1::text)";

static const char live_position[] =
	"SELECT format('SELECT next_offset FROM %I.projection_offsets"
	" WHERE topic = $1 AND partition = $2::integer', $1::text)";

static const char live_position_locked[] =
	"SELECT format('SELECT next_offset FROM %I.projection_offsets"
	" WHERE topic = $1 AND partition = $2::integer FOR UPDATE', $1::text)";

/* Per live table with a tenant_id column (dead letters aside): its name,
 * the DELETE of T's live rows that the scratch schema does not have, the
 * INSERT of the scratch's rows that live does not have (after that DELETE),
 * the count of each, and whether the table has user triggers. Rows are
 * compared whole, by the md5 of their text
 * (NOT IN a hashed subplan: one pass over each side, the hashes small
 * enough for the swap's work_mem): only what differs is written, so the
 * fence is held for reading T's rows, not for rewriting all of them. A row
 * text is never NULL, so NOT IN means "not among". Generated columns are
 * neither inserted (PostgreSQL computes them) nor compared (they follow the
 * rest). ONLY: an archive table (migration 012) is a child of its live
 * table, and each table's own rows are compared and replaced. */
static const char tenant_tables[] =
	"SELECT c.relname,"
	" format('DELETE FROM ONLY %1$I.%3$I x WHERE x.tenant_id = $1::uuid AND md5(ROW(%4$s)::text)"
	"  NOT IN (SELECT md5(ROW(%5$s)::text) FROM ONLY %2$I.%3$I y WHERE y.tenant_id = $1::uuid)',"
	"  $1::text, $2::text, c.relname, cols.x, cols.y),"
	" format('INSERT INTO %1$I.%3$I (%6$s) SELECT %5$s FROM ONLY %2$I.%3$I y"
	"  WHERE y.tenant_id = $1::uuid AND md5(ROW(%5$s)::text) NOT IN"
	"  (SELECT md5(ROW(%4$s)::text) FROM ONLY %1$I.%3$I x WHERE x.tenant_id = $1::uuid)',"
	"  $1::text, $2::text, c.relname, cols.x, cols.y, cols.list),"
	" format('SELECT (SELECT count(*) FROM (SELECT ROW(%4$s)::text FROM ONLY %1$I.%3$I"
	"  WHERE tenant_id = $1::uuid EXCEPT ALL SELECT ROW(%4$s)::text FROM ONLY %2$I.%3$I"
	"  WHERE tenant_id = $1::uuid) d), (SELECT count(*) FROM (SELECT ROW(%4$s)::text"
	"  FROM ONLY %2$I.%3$I WHERE tenant_id = $1::uuid EXCEPT ALL SELECT ROW(%4$s)::text"
	"  FROM ONLY %1$I.%3$I WHERE tenant_id = $1::uuid) a)', $1::text, $2::text, c.relname, cols.list),"
	" EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" CROSS JOIN LATERAL (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)"
	"  AS list, string_agg('x.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) AS x,"
	"  string_agg('y.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) AS y"
	"  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
	"  AND NOT a.attisdropped AND a.attgenerated = '') cols"
	" WHERE n.nspname = $1::text AND c.relkind = 'r' AND c.relname <> 'dead_letters'"
	" AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid"
	"  AND t.attname = 'tenant_id' AND NOT t.attisdropped)"
	" ORDER BY c.relname";

/* ALTER TABLE ... DISABLE/ENABLE TRIGGER USER on the tenant tables that
 * have user triggers (a SHARE ROW EXCLUSIVE lock: other tenants' writes to
 * those tables wait for the swap's commit, their reads do not). */
static const char toggle_triggers[] =
	"SELECT string_agg(format('ALTER TABLE %I.%I %s TRIGGER USER', $1::text, c.relname,"
	" $2::text), '; ' ORDER BY c.relname)"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE n.nspname = $1::text AND c.relkind = 'r' AND c.relname <> 'dead_letters'"
	" AND EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)"
	" AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid"
	"  AND t.attname = 'tenant_id' AND NOT t.attisdropped)";

static const char list_views[] =
	"SELECT format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', schemaname, matviewname)"
	" FROM pg_matviews WHERE schemaname = $1::text ORDER BY matviewname";

static void progress(TenantRebuild *t, bool force)
{
	int64_t now = vp_time_mono_us();
	if (!force && now - t->last_progress < PROGRESS_US)
		return;
	t->last_progress = now;
	double secs = (double)(now - t->fill_started) / VP_US_PER_SEC;
	double rate = secs > 0 ? (double)t->records / secs : 0;
	int64_t left = t->target > t->position ? t->target - t->position : 0;
	fprintf(stderr, "rebuild --tenant %s: partition %d at offset %lld of %lld, %lld record(s) "
		"read, %lld of the tenant applied, %.0f records/s, ~%.0f s left\n", t->tenant,
		(int)t->partition, (long long)t->position, (long long)t->target,
		(long long)t->records, (long long)t->applied, rate, rate > 0 ? (double)left / rate : 0);
}

static int simple(PGconn *conn, const char *sql, char *why, size_t why_cap)
{
	return vp_pg_exec(conn, sql, 0, NULL, NULL, why, why_cap);
}

/* One record of T into the scratch schema, behind a savepoint. 1 applied or
 * skipped (a duplicate id), 0 rejected (a dead letter of the live projector
 * too, left out the same way), -1 failed. */
static int apply_one(TenantRebuild *t, const rd_kafka_message_t *msg, char *why, size_t why_cap)
{
	char reason[512];
	VpEvent ev;
	if (simple(t->apply, "SAVEPOINT ev", why, why_cap) < 0)
		return -1;
	PjApplyResult result = PJ_REJECTED;
	if (vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) == 0) {
		result = pj_apply_event(t->apply, &ev, msg->payload, msg->len, msg->partition,
					msg->offset, reason, sizeof(reason));
		vp_event_release(&ev);
	}
	if (result == PJ_FAILED) {
		snprintf(why, why_cap, "offset %lld: %s", (long long)msg->offset, reason);
		return -1;
	}
	if (result != PJ_REJECTED)
		return simple(t->apply, "RELEASE SAVEPOINT ev", why, why_cap) < 0 ? -1 : 1;
	vp_log_warn(NULL, "rebuild_tenant", "offset %lld not applied (a dead letter): %s",
		    (long long)msg->offset, reason);
	return simple(t->apply, "ROLLBACK TO SAVEPOINT ev", why, why_cap) < 0 ? -1 : 0;
}

static int apply_one_by_one(TenantRebuild *t, char *why, size_t why_cap)
{
	int64_t applied = 0, rejected = 0;
	if (simple(t->apply, "BEGIN", why, why_cap) < 0)
		return -1;
	for (int i = 0; i < t->batch_len; i++) {
		int one = apply_one(t, t->batch[i], why, why_cap);
		if (one < 0)
			return -1;
		applied += one;
		rejected += !one;
	}
	if (simple(t->apply, "COMMIT", why, why_cap) < 0)
		return -1;
	t->applied += applied;
	t->rejected += rejected;
	return 0;
}

/* The batch in one pipeline, one round trip, as the live projector sends
 * its batches: 1 committed, 0 something did not apply cleanly (rolled back:
 * apply it one by one), -1 the connection failed. */
static int apply_pipelined(TenantRebuild *t, char *why, size_t why_cap)
{
	char reason[512];
	bool clean = false;
	if (PQenterPipelineMode(t->apply) != 1) {
		snprintf(why, why_cap, "pipeline mode: %s", PQerrorMessage(t->apply));
		return -1;
	}
	bool queued = PQsendQueryParams(t->apply, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
	for (int i = 0; queued && i < t->batch_len; i++) {
		const rd_kafka_message_t *msg = t->batch[i];
		VpEvent ev;
		queued = vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) == 0;
		if (!queued)
			break;
		queued = pj_apply_event(t->apply, &ev, msg->payload, msg->len, msg->partition,
					msg->offset, reason, sizeof(reason)) == PJ_APPLIED;
		vp_event_release(&ev);
	}
	if (PQpipelineSync(t->apply) != 1) {
		snprintf(why, why_cap, "pipeline sync: %s", PQerrorMessage(t->apply));
		return -1;
	}
	if (pj_drain_pipeline(t->apply, -1, 0, &clean, why, why_cap) < 0)
		return -1;
	if (PQexitPipelineMode(t->apply) != 1) {
		snprintf(why, why_cap, "pipeline exit: %s", PQerrorMessage(t->apply));
		return -1;
	}
	if (!queued || !clean)
		return simple(t->apply, "ROLLBACK", why, why_cap) < 0 ? -1 : 0;
	if (simple(t->apply, "COMMIT", why, why_cap) < 0)
		return -1;
	t->applied += t->batch_len;
	return 1;
}

/* T's pending records into the scratch schema: pipelined, or one by one
 * with a savepoint each when something in the batch did not apply cleanly. */
static int flush_tenant_batch(TenantRebuild *t, char *why, size_t why_cap)
{
	int rc = t->batch_len > 0 ? apply_pipelined(t, why, why_cap) : 1;
	if (rc == 0)
		rc = apply_one_by_one(t, why, why_cap);
	if (rc < 0 && PQstatus(t->apply) == CONNECTION_OK) {
		char ignored[128];
		simple(t->apply, "ROLLBACK", ignored, sizeof(ignored));
	}
	for (int i = 0; i < t->batch_len; i++)
		rd_kafka_message_destroy(t->batch[i]);
	t->batch_len = 0;
	return rc < 0 ? -1 : 0;
}

/* Is the record T's? By its envelope, as the live projector applies it
 * (an undecodable record is a dead letter there: not applied). */
static bool is_tenants(const TenantRebuild *t, const rd_kafka_message_t *msg)
{
	VpEvent ev;
	char reason[256];
	if (vp_event_decode(msg->payload, msg->len, &ev, reason, sizeof(reason)) < 0)
		return false;
	bool mine = !strcmp(ev.tenant_id, t->tenant);
	vp_event_release(&ev);
	return mine;
}

/* Takes one record: 1 when it is below target (consumed), 0 when nothing
 * was consumed (none came, an end of partition, or it is kept as pending). */
static int take_record(TenantRebuild *t, int64_t target, char *why, size_t why_cap)
{
	rd_kafka_message_t *msg = t->pending;
	t->pending = NULL;
	if (!msg)
		msg = rd_kafka_consumer_poll(t->consumer, 200);
	if (!msg)
		return 0;
	if (msg->err) {
		/* The end: every record below the partition's end is read,
		 * transaction markers included. */
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && msg->offset > t->position)
			t->position = msg->offset;
		else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			vp_log_warn(NULL, "rebuild_tenant", "consume: %s", rd_kafka_message_errstr(msg));
		rd_kafka_message_destroy(msg);
		return 0;
	}
	if (msg->offset >= target) {
		if (msg->offset > t->position)
			t->position = msg->offset;
		t->pending = msg;
		return 0;
	}
	t->position = msg->offset + 1;
	t->records++;
	if (!is_tenants(t, msg)) {
		rd_kafka_message_destroy(msg);
		return 1;
	}
	t->batch[t->batch_len++] = msg;
	if (t->batch_len == (int)t->cfg->batch_max && flush_tenant_batch(t, why, why_cap) < 0)
		return -1;
	return 1;
}

/* Applies every record of T below target into the scratch schema. */
static int catch_up(TenantRebuild *t, int64_t target, char *why, size_t why_cap)
{
	t->target = target;
	t->last_moved = vp_time_mono_us();
	while (t->position < target) {
		if (*t->stop) {
			snprintf(why, why_cap, "stopped by a signal");
			return -1;
		}
		int64_t before = t->position;
		int rc = take_record(t, target, why, why_cap);
		if (rc < 0)
			return -1;
		int64_t now = vp_time_mono_us();
		if (t->position > before)
			t->last_moved = now;
		else if (now - t->last_moved > STUCK_US) {
			snprintf(why, why_cap, "partition %d: no record past offset %lld for %d s "
				 "(the live projector is at %lld)", (int)t->partition,
				 (long long)t->position, (int)(STUCK_US / VP_US_PER_SEC),
				 (long long)target);
			return -1;
		}
		progress(t, false);
	}
	return flush_tenant_batch(t, why, why_cap);
}

/* The live position of T's partition, locked (FOR UPDATE) or not; 0 when
 * the partition has none yet. */
static int read_position(TenantRebuild *t, bool lock, int64_t *next, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *schema[] = {t->live};
	const char *params[] = {t->cfg->topic, t->partition_text};
	if (query_built(t->swap, lock ? live_position_locked : live_position, schema, 2, params,
			&res, why, why_cap) < 0)
		return -1;
	*next = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return 0;
}

/* Prints, per table, T's rows only in live (to delete) and only in the
 * rebuilt schema (to insert); *n_differ counts the tables that differ. */
static int compare(TenantRebuild *t, PGresult *tables, int *n_differ, char *why, size_t why_cap)
{
	const char *params[] = {t->tenant};
	*n_differ = 0;
	for (int i = 0; i < PQntuples(tables); i++) {
		PGresult *res = NULL;
		if (vp_pg_exec(t->swap, PQgetvalue(tables, i, 3), 1, params, &res, why, why_cap) < 0)
			return -1;
		long gone = atol(PQgetvalue(res, 0, 0)), added = atol(PQgetvalue(res, 0, 1));
		PQclear(res);
		if (gone == 0 && added == 0)
			continue;
		(*n_differ)++;
		printf("%s\t%ld row(s) of the tenant to replace\t%ld rebuilt row(s) to insert\n",
		       PQgetvalue(tables, i, 0), gone, added);
	}
	printf("%d table(s) differ for tenant %s\n", *n_differ, t->tenant);
	fflush(stdout);
	return 0;
}

/* What the swap is about to replace, compared outside its transaction: the
 * live projector may still add to T's rows until the fence is taken. */
static int report_differences(TenantRebuild *t, char *why, size_t why_cap)
{
	PGresult *tables = NULL;
	const char *names[] = {t->live, t->scratch};
	int n_differ = 0;
	if (vp_pg_exec(t->swap, tenant_tables, 2, names, &tables, why, why_cap) < 0)
		return -1;
	int rc = compare(t, tables, &n_differ, why, why_cap);
	PQclear(tables);
	return rc;
}

/* DELETE then INSERT of the tables with user triggers (triggered true) or
 * of the others. */
static int replace_tables(TenantRebuild *t, PGresult *tables, bool triggered, char *why,
			  size_t why_cap)
{
	const char *params[] = {t->tenant};
	for (int i = 0; i < PQntuples(tables); i++) {
		if ((*PQgetvalue(tables, i, 4) == 't') != triggered)
			continue;
		if (vp_pg_exec(t->swap, PQgetvalue(tables, i, 1), 1, params, NULL, why, why_cap) < 0 ||
		    vp_pg_exec(t->swap, PQgetvalue(tables, i, 2), 1, params, NULL, why, why_cap) < 0)
			return -1;
	}
	return 0;
}

/* The tables without triggers first; then, triggers off, the others: the
 * SHARE ROW EXCLUSIVE lock the toggle takes (other tenants' writes to those
 * tables wait) is held for their rows only. */
static int replace_rows(TenantRebuild *t, PGresult *tables, char *why, size_t why_cap)
{
	const char *disable[] = {t->live, "DISABLE"}, *enable[] = {t->live, "ENABLE"};
	if (replace_tables(t, tables, false, why, why_cap) < 0)
		return -1;
	int64_t off = vp_time_mono_us();
	if (vp_pg_exec_built(t->swap, toggle_triggers, 2, disable, why, why_cap) < 0 ||
	    replace_tables(t, tables, true, why, why_cap) < 0 ||
	    vp_pg_exec_built(t->swap, toggle_triggers, 2, enable, why, why_cap) < 0)
		return -1;
	t->triggers_off_us = vp_time_mono_us() - off;
	return 0;
}

/* One attempt at the swap transaction: 1 swapped (or compared, --dry-run),
 * -1 failed (rolled back; the caller may try again). */
static int swap_once(TenantRebuild *t, char *why, size_t why_cap)
{
	PGresult *tables = NULL;
	const char *names[] = {t->live, t->scratch};
	int64_t locked_at = 0, caught_up_at = 0, n = 0;
	int n_differ = 0, rc = -1;
	if (simple(t->swap, "BEGIN", why, why_cap) < 0 ||
	    simple(t->swap, "SET LOCAL lock_timeout = '2s'", why, why_cap) < 0 ||
	    read_position(t, true, &n, why, why_cap) < 0)
		goto done;
	locked_at = vp_time_mono_us();
	if (catch_up(t, n, why, why_cap) < 0 ||
	    vp_pg_exec(t->swap, tenant_tables, 2, names, &tables, why, why_cap) < 0)
		goto done;
	/* --dry-run compares at the fenced position, exactly; the swap does not
	 * compare again under the fence (fill_and_swap did just before): the
	 * partition is held only to catch up and replace. */
	if (t->cfg->dry_run) {
		if (compare(t, tables, &n_differ, why, why_cap) == 0)
			rc = simple(t->swap, "ROLLBACK", why, why_cap) < 0 ? -1 : 1;
		goto done;
	}
	caught_up_at = vp_time_mono_us();
	/* Below deadlock_timeout (1 s): a lock wait that could be a deadlock
	 * with a live batch gives up here first, and the swap is retried. */
	if (simple(t->swap, "SET LOCAL lock_timeout = '500ms'", why, why_cap) < 0 ||
	    simple(t->swap, "SET LOCAL work_mem = '256MB'", why, why_cap) < 0 ||
	    replace_rows(t, tables, why, why_cap) < 0 ||
	    simple(t->swap, "COMMIT", why, why_cap) < 0)
		goto done;
	vp_log_info(NULL, "rebuild_tenant_swapped", "tenant %s: rows replaced at partition %d "
		    "offset %lld; partition held %.2f s (catching up %.2f s, triggered tables "
		    "%.2f s)", t->tenant, (int)t->partition, (long long)n,
		    (double)(vp_time_mono_us() - locked_at) / VP_US_PER_SEC,
		    (double)(caught_up_at - locked_at) / VP_US_PER_SEC,
		    (double)t->triggers_off_us / VP_US_PER_SEC);
	rc = 1;
done:
	if (rc < 0) {
		char ignored[128];
		simple(t->swap, "ROLLBACK", ignored, sizeof(ignored));
	}
	PQclear(tables);
	return rc;
}

/* The analysts' views derive from every tenant's rows: refreshed so they
 * show T's rebuilt ones (the live projector refreshes only views its own
 * batches dirtied). A failure is reported, not fatal: the rows are right,
 * and the views catch up at the live projector's next refresh of them. */
static void refresh_views(TenantRebuild *t)
{
	PGresult *list = NULL;
	char why[512];
	const char *params[] = {t->live};
	if (vp_pg_exec(t->swap, list_views, 1, params, &list, why, sizeof(why)) < 0) {
		vp_log_warn(NULL, "rebuild_tenant", "views not refreshed: %s", why);
		return;
	}
	for (int i = 0; i < PQntuples(list); i++)
		if (vp_pg_exec(t->swap, PQgetvalue(list, i, 0), 0, NULL, NULL, why, sizeof(why)) < 0)
			vp_log_warn(NULL, "rebuild_tenant", "view not refreshed: %s", why);
	PQclear(list);
}

static int find_partition(TenantRebuild *t, char *why, size_t why_cap)
{
	const struct rd_kafka_metadata *md = NULL;
	int n = 0;
	if (rd_kafka_metadata(t->consumer, 0, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		for (int i = 0; i < md->topic_cnt; i++)
			if (!strcmp(md->topics[i].topic, t->cfg->topic) && !md->topics[i].err)
				n = md->topics[i].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	if (n <= 0) {
		snprintf(why, why_cap, "topic %s: no partitions known (Kafka unreachable?)",
			 t->cfg->topic);
		return -1;
	}
	t->partition = vp_kafka_partition_for_key(t->tenant, strlen(t->tenant), n);
	snprintf(t->partition_text, sizeof(t->partition_text), "%d", (int)t->partition);
	return 0;
}

static int open_consumer(TenantRebuild *t, char *why, size_t why_cap)
{
	char group[256];
	snprintf(group, sizeof(group), "%s-tenant-rebuild", t->cfg->group);
	t->consumer = vp_kafka_log_reader_new(t->cfg->brokers, "vetpms-projector", group,
					      t->cfg->kafka_props, false, why, why_cap);
	if (!t->consumer)
		return -1;
	rd_kafka_poll_set_consumer(t->consumer);
	if (find_partition(t, why, why_cap) < 0)
		return -1;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, t->cfg->topic, t->partition)->offset =
	    RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t err = rd_kafka_assign(t->consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		snprintf(why, why_cap, "assign partition %d: %s", (int)t->partition,
			 rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/* The scratch schema: dropped if a previous run left it, migrated like
 * the live one, its secondary indexes dropped (nothing reads it but the
 * compare and the copy, by tenant), and the handlers prepared on it. */
static int open_scratch(TenantRebuild *t, char *why, size_t why_cap)
{
	int deferred = 0;
	t->apply = vp_pg_connect(t->cfg->dsn, "vetpms-projector-tenant-rebuild", why, why_cap);
	if (!t->apply || pj_rebuild_reset(t->apply, t->scratch, why, why_cap) < 0 ||
	    pj_migrate(t->apply, t->scratch, t->cfg->migrations_dir, why, why_cap) < 0 ||
	    pj_rebuild_defer_indexes(t->apply, t->scratch, &deferred, why, why_cap) < 0 ||
	    pj_rebuild_session(t->apply, why, why_cap) < 0)
		return -1;
	/* pj_migrate leaves search_path on the scratch schema: the handlers'
	 * unqualified table names mean the scratch tables from here on. */
	return pj_apply_prepare(t->apply, why, why_cap);
}

/* Refuses a tenant that the live schema does not know (PJ_TENANT_EXIT_UNKNOWN)
 * or that another `rebuild --tenant` is rebuilding (it would drop this one's
 * scratch schema); 0 when it may go on. The advisory lock is the swap
 * session's: it goes with the process. */
static int check_tenant(TenantRebuild *t, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *schema[] = {t->live}, *params[] = {t->tenant};
	if (query_built(t->swap, known_tenant, schema, 1, params, &res, why, why_cap) < 0)
		return PJ_TENANT_EXIT_FAILED;
	bool known = !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	if (!known) {
		snprintf(why, why_cap, "tenant %s is not known in schema %s (no tenants row, no "
			 "event in event_log)", t->tenant, t->live);
		return PJ_TENANT_EXIT_UNKNOWN;
	}
	const char *lock[] = {t->scratch};
	if (vp_pg_exec(t->swap, "SELECT pg_try_advisory_lock(hashtext($1))", 1, lock, &res, why,
		       why_cap) < 0)
		return PJ_TENANT_EXIT_FAILED;
	bool mine = !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	if (!mine) {
		snprintf(why, why_cap, "another rebuild of tenant %s is running", t->tenant);
		return PJ_TENANT_EXIT_FAILED;
	}
	t->owns_scratch = true;
	return 0;
}

/* The tenant as canonical text, and the scratch schema's name after it. */
static int parse_tenant(TenantRebuild *t, char *why, size_t why_cap)
{
	VpUuid id;
	const char *raw = t->cfg->rebuild_tenant;
	if (vp_uuid_parse(raw, strlen(raw), &id) < 0) {
		snprintf(why, why_cap, "--tenant %.64s is not a UUID", raw);
		return -1;
	}
	vp_uuid_format(&id, t->tenant);
	char hex[33];
	size_t h = 0;
	for (const char *c = t->tenant; *c && h < 32; c++)
		if (*c != '-')
			hex[h++] = *c;
	hex[h] = '\0';
	snprintf(t->scratch, sizeof(t->scratch), "%s_tenant_%s", t->live, hex);
	return 0;
}

/* Fills the scratch schema until it is within LOCK_AT_LAG records of the
 * live position, then swaps (retried on a lock timeout or deadlock). */
static int fill_and_swap(TenantRebuild *t, char *why, size_t why_cap)
{
	for (;;) {
		int64_t live = 0;
		if (read_position(t, false, &live, why, why_cap) < 0)
			return -1;
		if (live - t->position <= LOCK_AT_LAG)
			break;
		if (catch_up(t, live, why, why_cap) < 0)
			return -1;
	}
	progress(t, true);
	if (!t->cfg->dry_run && report_differences(t, why, why_cap) < 0)
		return -1;
	vp_log_info(NULL, "rebuild_tenant_filled", "tenant %s: %lld event(s) applied, %lld not "
		    "(dead letters), %.1f s after start; swapping", t->tenant, (long long)t->applied,
		    (long long)t->rejected, (double)(vp_time_mono_us() - t->started) / VP_US_PER_SEC);
	for (int attempt = 1; attempt <= SWAP_TRIES; attempt++) {
		if (swap_once(t, why, why_cap) > 0)
			return 0;
		if (*t->stop)
			return -1;
		vp_log_warn(NULL, "rebuild_tenant", "swap attempt %d of %d failed: %s", attempt,
			    SWAP_TRIES, why);
	}
	return -1;
}

static void tenant_rebuild_close(TenantRebuild *t)
{
	char why[256];
	if (t->apply && t->owns_scratch && PQstatus(t->apply) == CONNECTION_OK &&
	    pj_rebuild_reset(t->apply, t->scratch, why, sizeof(why)) < 0)
		vp_log_warn(NULL, "rebuild_tenant", "scratch schema %s left: %s", t->scratch, why);
	if (t->batch)
		for (int i = 0; i < t->batch_len; i++)
			rd_kafka_message_destroy(t->batch[i]);
	if (t->pending)
		rd_kafka_message_destroy(t->pending);
	if (t->consumer) {
		rd_kafka_consumer_close(t->consumer);
		rd_kafka_destroy(t->consumer);
	}
	if (t->apply)
		PQfinish(t->apply);
	if (t->swap)
		PQfinish(t->swap);
	free(t->batch);
}

int pj_rebuild_tenant(const PjConfig *cfg, volatile sig_atomic_t *stop)
{
	char why[1024] = "";
	TenantRebuild t = {.cfg = cfg, .stop = stop, .live = cfg->schema};
	int rc = PJ_TENANT_EXIT_FAILED;
	t.started = vp_time_mono_us();
	t.batch = calloc((size_t)cfg->batch_max, sizeof(*t.batch));
	if (!t.batch || strlen(cfg->schema) > 63 - strlen("_tenant_") - 32) {
		snprintf(why, sizeof(why), "out of memory, or schema name %s too long", cfg->schema);
		goto done;
	}
	if (parse_tenant(&t, why, sizeof(why)) < 0) {
		rc = PJ_TENANT_EXIT_BAD;
		goto done;
	}
	t.swap = vp_pg_connect(cfg->dsn, "vetpms-projector-tenant-swap", why, sizeof(why));
	if (!t.swap)
		goto done;
	rc = check_tenant(&t, why, sizeof(why));
	if (rc != 0)
		goto done;
	rc = PJ_TENANT_EXIT_FAILED;
	if (open_consumer(&t, why, sizeof(why)) < 0 || open_scratch(&t, why, sizeof(why)) < 0)
		goto done;
	t.fill_started = t.last_progress = vp_time_mono_us();
	vp_log_info(NULL, "rebuild_tenant", "tenant %s: partition %d into %s%s", t.tenant,
		    (int)t.partition, t.scratch, cfg->dry_run ? " (dry run: nothing swapped)" : "");
	if (fill_and_swap(&t, why, sizeof(why)) < 0) {
		rc = *stop ? PJ_TENANT_EXIT_STOPPED : PJ_TENANT_EXIT_FAILED;
		goto done;
	}
	if (!cfg->dry_run)
		refresh_views(&t);
	progress(&t, true);
	rc = 0;
done:
	if (rc != 0)
		fprintf(stderr, "projector rebuild --tenant: %s\n", why);
	tenant_rebuild_close(&t);
	return rc;
}
