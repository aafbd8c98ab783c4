/* Redrive: ops mark dead letters 'redrive' (vetctl deadletters redrive); the
 * live projector, between two batches on its consumer thread, applies each of
 * them through the very handler that refused it (pj_apply_event), in its own
 * transaction, at the dead letter's own Kafka position, the stored offsets
 * untouched (docs/decisions.md, "Dead letters"). Log order within the
 * aggregate: a dead letter is applied only when no earlier dead letter of its
 * aggregate is still unresolved and no later event of the aggregate is in
 * event_log; otherwise it is refused with that reason, back to 'dead'. The
 * pending dead letters per type are exported as gauges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_catalog.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_pg.h"

#define REDRIVE_ROUND 100 /* dead letters looked at per idle step */
#define UNDECODABLE   "(undecodable)"
#define UNCATALOGUED  "(uncatalogued)"

static VpMetric *redriven_total;
static VpMetric *refused_total;
/* vetpms_projector_dead_letters_pending{type=...}: one per catalogued type,
 * and the two buckets above. */
static VpMetric **pending;
static const char **pending_type;
static char **pending_labels;
static size_t n_pending;

void pj_redrive_register_metrics(void)
{
	redriven_total = vp_metrics_counter("vetpms_projector_dead_letters_redriven_total", NULL,
					    "Dead letters applied again on ops' request");
	refused_total = vp_metrics_counter("vetpms_projector_dead_letters_redrive_refused_total",
					   NULL, "Redrives refused (still not applicable, or out "
						 "of log order)");
	pending = calloc(vp_catalog_len + 2, sizeof(*pending));
	pending_type = calloc(vp_catalog_len + 2, sizeof(*pending_type));
	pending_labels = calloc(vp_catalog_len + 2, sizeof(*pending_labels));
	if (!pending || !pending_type || !pending_labels)
		return;
	for (size_t i = 0; i < vp_catalog_len + 2; i++) {
		const char *type = i < vp_catalog_len ? vp_catalog[i].type
				   : i == vp_catalog_len ? UNDECODABLE : UNCATALOGUED;
		bool seen = false; /* a type with two versions is one gauge */
		for (size_t j = 0; j < n_pending; j++)
			seen = seen || !strcmp(pending_type[j], type);
		if (seen)
			continue;
		/* The registry keeps the label text's pointer: it lives as long
		 * as the process (reachable from pending_labels). */
		char *labels = malloc(96);
		if (!labels)
			return;
		snprintf(labels, 96, "type=\"%s\"", type);
		pending_labels[n_pending] = labels;
		pending_type[n_pending] = type;
		pending[n_pending++] = vp_metrics_gauge("vetpms_projector_dead_letters_pending", labels,
							"Dead letters waiting for ops (dead or "
							"redrive requested), by event type");
	}
}

/* The gauges from the table: what is pending now, whoever resolved the rest. */
static int update_pending(PGconn *conn, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	if (vp_pg_exec(conn, "SELECT coalesce(type, '" UNDECODABLE "'), count(*) FROM dead_letters "
			     "WHERE status IN ('dead', 'redrive') GROUP BY 1", 0, NULL, &res, why,
		       why_cap) < 0)
		return -1;
	long long counts[n_pending + 1];
	memset(counts, 0, sizeof(counts));
	for (int r = 0; r < PQntuples(res); r++) {
		const char *type = PQgetvalue(res, r, 0);
		size_t slot = n_pending;
		for (size_t i = 0; i < n_pending; i++)
			if (!strcmp(pending_type[i], type))
				slot = i;
		if (slot == n_pending) /* a type the catalog does not know */
			for (size_t i = 0; i < n_pending; i++)
				if (!strcmp(pending_type[i], UNCATALOGUED))
					slot = i;
		counts[slot] += atoll(PQgetvalue(res, r, 1));
	}
	PQclear(res);
	for (size_t i = 0; i < n_pending; i++)
		vp_metric_set(pending[i], counts[i]);
	return 0;
}

/* Why the dead letter cannot be applied now in log order, or "" when it can. */
static int order_check(PGconn *conn, const VpEvent *ev, const char *part, const char *offset,
		       char *refusal, size_t refusal_cap, char *why, size_t why_cap)
{
	char seq[24];
	PGresult *res = NULL;
	snprintf(seq, sizeof(seq), "%lld", (long long)ev->seq);
	const char *earlier[] = {ev->tenant_id, ev->aggregate_id, part, offset};
	if (vp_pg_exec(conn, "SELECT partition, \"offset\" FROM dead_letters WHERE tenant_id = "
			     "$1::uuid AND aggregate_id = $2 AND status IN ('dead', 'redrive') AND "
			     "(partition, \"offset\") < ($3::integer, $4::bigint) "
			     "ORDER BY partition, \"offset\" LIMIT 1",
		       4, earlier, &res, why, why_cap) < 0)
		return -1;
	if (PQntuples(res) == 1)
		snprintf(refusal, refusal_cap, "an earlier dead letter of aggregate %s is unresolved "
			 "(%s:%s): redrive or discard it first", ev->aggregate_id,
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	PQclear(res);
	if (*refusal)
		return 0;
	const char *later[] = {ev->tenant_id, ev->aggregate_id, seq};
	if (vp_pg_exec(conn, "SELECT seq, partition, \"offset\" FROM event_log WHERE tenant_id = "
			     "$1::uuid AND aggregate_id = $2::uuid AND seq > $3::integer "
			     "ORDER BY seq LIMIT 1",
		       3, later, &res, why, why_cap) < 0)
		return -1;
	if (PQntuples(res) == 1)
		snprintf(refusal, refusal_cap, "a later event of aggregate %s is already applied "
			 "(seq %s at %s:%s): applying seq %lld now would break log order; "
			 "rebuild the read model (projector rebuild) or discard this one",
			 ev->aggregate_id, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			 PQgetvalue(res, 0, 2), (long long)ev->seq);
	PQclear(res);
	return 0;
}

/* The event applied through the projector's own handler: 1 applied (or its
 * id was already there), 0 refused (refusal says why), -1 failed. */
static int apply_dead_letter(PGconn *conn, const char *payload, size_t len, int32_t part,
			     int64_t offset, const char *part_text, const char *offset_text,
			     char *refusal, size_t refusal_cap, char *why, size_t why_cap)
{
	VpEvent ev;
	if (vp_event_decode(payload, len, &ev, refusal, refusal_cap) < 0)
		return 0;
	int rc = order_check(conn, &ev, part_text, offset_text, refusal, refusal_cap, why,
			     why_cap);
	if (rc == 0 && !*refusal) {
		if (vp_pg_exec(conn, "SAVEPOINT redrive", 0, NULL, NULL, why, why_cap) < 0) {
			rc = -1;
		} else {
			PjApplyResult r = pj_apply_event(conn, &ev, payload, len, part, offset,
							 refusal, refusal_cap);
			rc = r == PJ_FAILED ? -1 : r == PJ_REJECTED ? 0 : 1;
			if (r == PJ_FAILED)
				snprintf(why, why_cap, "%s", refusal);
			if (r == PJ_REJECTED &&
			    vp_pg_exec(conn, "ROLLBACK TO SAVEPOINT redrive", 0, NULL, NULL, why,
				       why_cap) < 0)
				rc = -1;
		}
	}
	vp_event_release(&ev);
	return rc;
}

/* One requested dead letter in a transaction of its own: 1 redriven, 0
 * refused or gone, -1 failed (rolled back). */
static int redrive_one(PGconn *conn, const char *part_text, const char *offset_text,
		       char *why, size_t why_cap)
{
	PGresult *res = NULL;
	char refusal[512] = "";
	const char *key[] = {part_text, offset_text};
	if (vp_pg_exec(conn, "BEGIN", 0, NULL, NULL, why, why_cap) < 0)
		return -1;
	/* Binary result: the payload's bytes as they came from Kafka. */
	res = PQexecParams(conn, "SELECT payload FROM dead_letters WHERE partition = $1::integer "
				 "AND \"offset\" = $2::bigint AND status = 'redrive' FOR UPDATE",
			   2, NULL, key, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, why_cap, "redrive: %s", PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	int rc = 0;
	if (PQntuples(res) == 1) /* else discarded or taken meanwhile */
		rc = apply_dead_letter(conn, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
				       atoi(part_text), atoll(offset_text), part_text, offset_text,
				       refusal, sizeof(refusal), why, why_cap);
	bool found = PQntuples(res) == 1;
	PQclear(res);
	if (rc < 0)
		return -1;
	const char *done[] = {part_text, offset_text, refusal};
	if (found && vp_pg_exec(conn, rc == 1
		? "UPDATE dead_letters SET status = 'redriven', resolved_at = now(), "
		  "resolved_by = coalesce(requested_by, session_user), last_error = NULL WHERE "
		  "partition = $1::integer AND "
		  "\"offset\" = $2::bigint"
		: "UPDATE dead_letters SET status = 'dead', last_error = $3 WHERE "
		  "partition = $1::integer AND \"offset\" = $2::bigint",
		rc == 1 ? 2 : 3, done, NULL, why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(conn, "COMMIT", 0, NULL, NULL, why, why_cap) < 0)
		return -1;
	if (found && rc == 1) {
		vp_metric_add(redriven_total, 1);
		vp_log_info(NULL, "redriven", "partition %s offset %s applied", part_text,
			    offset_text);
	} else if (found) {
		vp_metric_add(refused_total, 1);
		vp_log_warn(NULL, "redrive_refused", "partition %s offset %s: %s", part_text,
			    offset_text, refusal);
	}
	return found && rc == 1;
}

int pj_redrive_step(PGconn *conn, const bool *owned, int n_owned, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	char limit[16];
	int redriven = 0;
	snprintf(limit, sizeof(limit), "%d", REDRIVE_ROUND);
	const char *params[] = {limit};
	if (update_pending(conn, why, why_cap) < 0 ||
	    vp_pg_exec(conn, "SELECT partition, \"offset\" FROM dead_letters WHERE status = "
			     "'redrive' ORDER BY partition, \"offset\" LIMIT $1::integer",
		       1, params, &res, why, why_cap) < 0)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		int part = atoi(PQgetvalue(res, r, 0));
		/* Only partitions this process applies: their events and the
		 * redrive are then serialised on this thread. */
		if (part < 0 || part >= n_owned || !owned[part])
			continue;
		int rc = redrive_one(conn, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), why,
				     why_cap);
		if (rc < 0) {
			char ignored[128];
			vp_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, ignored, sizeof(ignored));
			PQclear(res);
			return -1;
		}
		redriven += rc;
	}
	PQclear(res);
	if (redriven > 0 && update_pending(conn, why, why_cap) < 0)
		return -1;
	return redriven;
}
