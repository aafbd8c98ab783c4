/* Versioned SQL migrations (see projector.h). Files are applied in version order
 * with search_path set to the target schema, so the same files build the live
 * schema and a fresh one for a blue/green rebuild. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_pg.h"

#define MAX_MIGRATIONS 512
#define MIGRATE_LOCK_KEY "7301950125"  /* arbitrary, fixed: pg_advisory_lock key */

typedef struct Migration {
	int version;
	char file[256];
} Migration;

static int by_version(const void *a, const void *b)
{
	return ((const Migration *)a)->version - ((const Migration *)b)->version;
}

/* NNN_name.sql → version NNN; anything else in the folder is ignored. */
static int list_migrations(const char *dir, Migration *out, int cap, char *why, size_t why_cap)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d) {
		snprintf(why, why_cap, "cannot open migrations folder %s", dir);
		return -1;
	}
	for (struct dirent *e = readdir(d); e; e = readdir(d)) {
		size_t len = strlen(e->d_name);
		int version = 0, consumed = 0;
		if (len < 9 || len >= sizeof(out[0].file) || strcmp(e->d_name + len - 4, ".sql") ||
		    sscanf(e->d_name, "%d_%n", &version, &consumed) != 1 || consumed == 0)
			continue;
		if (n == cap) {
			closedir(d);
			snprintf(why, why_cap, "too many migrations");
			return -1;
		}
		out[n].version = version;
		snprintf(out[n].file, sizeof(out[n].file), "%s", e->d_name);
		n++;
	}
	closedir(d);
	qsort(out, (size_t)n, sizeof(out[0]), by_version);
	for (int i = 1; i < n; i++) {
		if (out[i].version == out[i - 1].version) {
			snprintf(why, why_cap, "two migrations with version %d", out[i].version);
			return -1;
		}
	}
	return n;
}

static char *read_file(const char *dir, const char *name, char *why, size_t why_cap)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	if (!f || fseek(f, 0, SEEK_END) < 0)
		goto fail;
	long size = ftell(f);
	if (size < 0 || fseek(f, 0, SEEK_SET) < 0)
		goto fail;
	text = malloc((size_t)size + 1);
	if (!text || fread(text, 1, (size_t)size, f) != (size_t)size)
		goto fail;
	text[size] = '\0';
	fclose(f);
	return text;
fail:
	snprintf(why, why_cap, "cannot read %s", path);
	free(text);
	if (f)
		fclose(f);
	return NULL;
}

/* One migration in one transaction, recorded in schema_migrations. */
static int apply_one(PGconn *conn, const char *schema, const char *dir, const Migration *m,
		     char *why, size_t why_cap)
{
	char version[16];
	const char *set_path[] = {schema};
	char *sql = read_file(dir, m->file, why, why_cap);
	if (!sql)
		return -1;
	snprintf(version, sizeof(version), "%d", m->version);
	const char *record[] = {version, m->file};
	int rc = vp_pg_exec(conn, "BEGIN", 0, NULL, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, "SELECT set_config('search_path', format('%I, public', $1::text), true)", 1,
				set_path, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, sql, 0, NULL, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
				2, record, NULL, why, why_cap);
	if (rc == 0)
		rc = vp_pg_exec(conn, "COMMIT", 0, NULL, NULL, why, why_cap);
	if (rc < 0) {
		char ignored[64];
		vp_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, ignored, sizeof(ignored));
		size_t used = strlen(why);
		snprintf(why + used, why_cap - used, " (in %s)", m->file);
	}
	free(sql);
	return rc;
}

/* search_path points at the target schema (prepare_schema). */
static int is_applied(PGconn *conn, int version, char *why, size_t why_cap)
{
	char text[16];
	PGresult *res = NULL;
	snprintf(text, sizeof(text), "%d", version);
	const char *params[] = {text};
	if (vp_pg_exec(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1, params,
		       &res, why, why_cap) < 0)
		return -1;
	int applied = PQntuples(res) > 0;
	PQclear(res);
	return applied;
}

static int prepare_schema(PGconn *conn, const char *schema, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {schema};
	/* Identifiers cannot be parameters: format(%I) quotes the schema name
	 * server-side, and the result is executed as its own statement. */
	static const char *const statements[] = {
		"SELECT format('CREATE SCHEMA IF NOT EXISTS %I', $1::text)",
		"SELECT format('SET search_path = %I, public', $1::text)",
	};
	for (int i = 0; i < 2; i++) {
		if (vp_pg_exec(conn, statements[i], 1, params, &res, why, why_cap) < 0)
			return -1;
		int rc = vp_pg_exec(conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
		PQclear(res);
		if (rc < 0)
			return -1;
	}
	return vp_pg_exec(conn,
			  "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY "
			  "KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
			  0, NULL, NULL, why, why_cap);
}

int pj_migrate(PGconn *conn, const char *schema, const char *dir, char *why, size_t why_cap)
{
	Migration *list = calloc(MAX_MIGRATIONS, sizeof(*list));
	int applied = 0;
	if (!list) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	int n = list_migrations(dir, list, MAX_MIGRATIONS, why, why_cap);
	if (n < 0 ||
	    vp_pg_exec(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, why,
		       why_cap) < 0) {
		applied = -1;
		goto done;
	}
	if (prepare_schema(conn, schema, why, why_cap) < 0)
		applied = -1;
	for (int i = 0; applied >= 0 && i < n; i++) {
		int done_already = is_applied(conn, list[i].version, why, why_cap);
		if (done_already < 0 ||
		    (!done_already && apply_one(conn, schema, dir, &list[i], why, why_cap) < 0))
			applied = -1;
		else if (!done_already)
			applied++;
	}
	char ignored[64];
	vp_pg_exec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, ignored,
		   sizeof(ignored));
done:
	free(list);
	return applied;
}
