/* query-reader: answers queries over HTTP from the read model in PostgreSQL,
 * with non-blocking libpq connections driven by the same libevent loop. */
#ifndef READER_H
#define READER_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include <libpq-fe.h>

typedef struct RdConfig {
	char *host;
	long port;
	char *dsn;
	long pool_size;
	char *log_level;
} RdConfig;

/* pgpool.c: a small pool of non-blocking connections on one event_base.
 * Queries queue when every connection is busy; the callback runs on the loop
 * with the last result of the query (NULL and an error text on failure). The
 * callback must not keep `res`: it is cleared when the callback returns. */
typedef struct RdPgPool RdPgPool;
typedef void (*RdPgCallback)(const PGresult *res, const char *error, void *arg);

RdPgPool *rd_pgpool_new(struct event_base *base, const char *dsn, int size);
/* Parameters are copied. -1 when the queue is full (the caller answers 503). */
int rd_pgpool_query(RdPgPool *pool, const char *sql, int n_params, const char *const *params,
		    RdPgCallback cb, void *arg);
/* Connections currently usable (connected, not broken). */
int rd_pgpool_healthy(const RdPgPool *pool);
RdPgPool *rd_pgpool_free(RdPgPool *pool);

#endif
