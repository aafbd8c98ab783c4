/* Prepared statements on the projector's connection: preparing a table of
 * them, and running one with text parameters, which only queues it when the
 * connection is in pipeline mode (consumer.c's pipelined batches). Below every
 * module that writes the read model. */
#ifndef PJ_STATEMENTS_H
#define PJ_STATEMENTS_H

#include <stddef.h>
#include <libpq-fe.h>

/* A statement a module prepares; NULL-terminated tables. */
typedef struct PjStatement {
	const char *name;
	const char *sql;
} PjStatement;

int pj_prepare_statement(PGconn *conn, const char *name, const char *sql, char *why,
			 size_t why_cap);
/* Prepares every statement of a NULL-terminated table on conn. */
int pj_prepare_statements(PGconn *conn, const PjStatement *table, char *why, size_t why_cap);

/* One prepared statement, text parameters (NULL = SQL NULL). Returns the
 * affected row count, or PJ_EXEC_REJECTED (a data or integrity error caused by
 * the event: SQLSTATE class 22/23) or PJ_EXEC_FAILED. On a connection in
 * pipeline mode the statement is only queued and 1 is returned (PJ_EXEC_FAILED
 * if it could not be): the caller that entered the pipeline reads the results
 * and checks that every statement affected a row. */
#define PJ_EXEC_REJECTED (-1)
#define PJ_EXEC_FAILED   (-2)
long pj_apply_exec(PGconn *conn, const char *stmt, int n_params, const char *const *params,
		   char *why, size_t why_cap);

#endif
