/* Blocking libpq helpers (see vp_pg.h). */
#include "vp_pg.h"

#include <stdio.h>
#include <string.h>

#include "vp_log.h"

/* Server notices ("already exists, skipping") go to the structured log rather
 * than raw to stderr, where they would break the one-JSON-object-per-line log. */
static void log_notice(void *arg, const char *message)
{
	(void)arg;
	char line[512];
	snprintf(line, sizeof(line), "%s", message);
	line[strcspn(line, "\n")] = '\0';
	vp_log_debug(NULL, "pg_notice", "%s", line);
}

PGconn *vp_pg_connect(const char *dsn, const char *application_name, char *why, size_t why_cap)
{
	/* A server that vanished or stopped answering shows within seconds
	 * (keepalives, tcp_user_timeout, connect_timeout) instead of hanging the
	 * caller; statement_timeout is a backstop far above any statement here (a
	 * rebuild's largest index build took 5.4 s for 1M events). Later keywords
	 * override the same ones in dsn. */
	const char *keys[] = {"dbname",           "application_name", "connect_timeout",
			      "keepalives",       "keepalives_idle",  "keepalives_interval",
			      "keepalives_count", "tcp_user_timeout", "options",
			      NULL};
	const char *values[] = {dsn, application_name, "10", "1", "5", "2", "3", "10000",
				"-c statement_timeout=300000", NULL};
	/* expand_dbname=1: the dsn string is parsed as a connection string. */
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	if (!conn) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	PQsetNoticeProcessor(conn, log_notice, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(why, why_cap, "%s", PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

int vp_pg_exec(PGconn *conn, const char *sql, int n_params, const char *const *params,
	       PGresult **out, char *why, size_t why_cap)
{
	PGresult *res = n_params > 0 ? PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0)
				     : PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(res);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		snprintf(why, why_cap, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
		PQclear(res);
		if (out)
			*out = NULL;
		return -1;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return 0;
}

int vp_pg_ping(PGconn *conn)
{
	char why[64];
	return conn && PQstatus(conn) == CONNECTION_OK &&
	       vp_pg_exec(conn, "SELECT 1", 0, NULL, NULL, why, sizeof(why)) == 0;
}

int vp_pg_exec_built(PGconn *conn, const char *builder, int n_params, const char *const *params,
		     char *why, size_t why_cap)
{
	PGresult *res = NULL;
	if (vp_pg_exec(conn, builder, n_params, params, &res, why, why_cap) < 0)
		return -1;
	int rc = 0;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && *PQgetvalue(res, 0, 0))
		rc = vp_pg_exec(conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
	PQclear(res);
	return rc;
}
