/* The projector's consumer positions in PostgreSQL (projection_offsets): read
 * on partition assignment, moved in the same transaction as the rows of a
 * batch. The move is a compare-and-set from the position this process started
 * the batch at, so a second projector that still believes it owns a partition
 * (a zombie after a rebalance) cannot apply the same events twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"

static const PjStatement offset_statements[] = {
	{"offsets_load",
	 "SELECT next_offset FROM projection_offsets WHERE topic = $1 AND partition = $2::integer"},
	/* $4 = -1 when no row is expected: next_offset is never negative, so an
	 * existing row fails the WHERE and nothing is moved. */
	{"offsets_advance",
	 "INSERT INTO projection_offsets AS o (topic, partition, next_offset) "
	 "VALUES ($1, $2::integer, $3::bigint) ON CONFLICT (topic, partition) DO UPDATE "
	 "SET next_offset = EXCLUDED.next_offset, updated_at = now() "
	 "WHERE o.next_offset = $4::bigint"},
	{NULL, NULL},
};

int pj_offsets_prepare(PGconn *conn, char *why, size_t why_cap)
{
	return pj_prepare_statements(conn, offset_statements, why, why_cap);
}

int pj_offsets_load(PGconn *conn, const char *topic, int32_t partition, int64_t *next_offset,
		    char *why, size_t why_cap)
{
	char partition_text[16];
	snprintf(partition_text, sizeof(partition_text), "%d", (int)partition);
	const char *params[] = {topic, partition_text};
	PGresult *res = PQexecPrepared(conn, "offsets_load", 2, params, NULL, NULL, 0);
	int rc = -1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, why_cap, "load offset: %s",
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
		goto done;
	}
	*next_offset = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : PJ_NO_OFFSET;
	rc = 0;
done:
	PQclear(res);
	return rc;
}

int pj_offsets_advance(PGconn *conn, const char *topic, int32_t partition, int64_t expected,
		       int64_t next, char *why, size_t why_cap)
{
	char partition_text[16], next_text[24], expected_text[24];
	snprintf(partition_text, sizeof(partition_text), "%d", (int)partition);
	snprintf(next_text, sizeof(next_text), "%lld", (long long)next);
	snprintf(expected_text, sizeof(expected_text), "%lld", (long long)expected);
	const char *params[] = {topic, partition_text, next_text, expected_text};
	long rows = pj_apply_exec(conn, "offsets_advance", 4, params, why, why_cap);
	if (rows < 0)
		return -1;
	return rows > 0 ? 1 : 0;
}
