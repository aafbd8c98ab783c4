/* Prepared statements on the projector's connection (statements.h): the
 * read model's writers, the event log and the offsets all go through here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statements.h"

int pj_prepare_statement(PGconn *conn, const char *name, const char *sql, char *why,
			 size_t why_cap)
{
	PGresult *res = PQprepare(conn, name, sql, 0, NULL);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(why, why_cap, "prepare %s: %s", name,
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

int pj_prepare_statements(PGconn *conn, const PjStatement *table, char *why, size_t why_cap)
{
	for (const PjStatement *s = table; s->name; s++)
		if (pj_prepare_statement(conn, s->name, s->sql, why, why_cap) < 0)
			return -1;
	return 0;
}

long pj_apply_exec(PGconn *conn, const char *stmt, int n_params, const char *const *params,
		   char *why, size_t why_cap)
{
	if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
		/* Pipelined batch: queue it; the caller checks the result later. */
		if (PQsendQueryPrepared(conn, stmt, n_params, params, NULL, NULL, 0) == 1)
			return 1;
		snprintf(why, why_cap, "%s: %s", stmt, PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
		return PJ_EXEC_FAILED;
	}
	PGresult *res = PQexecPrepared(conn, stmt, n_params, params, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);
	long rows = PJ_EXEC_FAILED;

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		const char *affected = PQcmdTuples(res);
		rows = *affected ? strtol(affected, NULL, 10) : PQntuples(res);
		goto done;
	}
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(why, why_cap, "%s: %s", stmt,
		 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	why[strcspn(why, "\n")] = '\0';
	/* Class 22 (data exception) and 23 (integrity constraint violation) come
	 * from the event's values: retrying cannot help, so it is a dead letter.
	 * Anything else (connection, resources) fails the batch, which is retried. */
	if (state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2)))
		rows = PJ_EXEC_REJECTED;
done:
	PQclear(res);
	return rows;
}
