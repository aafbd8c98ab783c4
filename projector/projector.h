/* projector: consumes vetpms.events and builds the read model in PostgreSQL,
 * exactly once (offsets stored with the rows). Configuration and module entry
 * points. */
#ifndef PROJECTOR_H
#define PROJECTOR_H

#include <stddef.h>
#include <libpq-fe.h>

typedef struct PjConfig {
	char *host;
	long port;
	char *brokers;
	char *topic;
	char *kafka_props;
	char *dsn;
	char *schema;
	char *migrations_dir;
	char *log_level;
} PjConfig;

/* migrate.c: applies schema/migrations/NNN_name.sql not yet recorded in
 * <schema>.schema_migrations, each in its own transaction, under an advisory
 * lock so two projectors never migrate at once. Returns the number applied or -1. */
int pj_migrate(PGconn *conn, const char *schema, const char *dir, char *why, size_t why_cap);

#endif
