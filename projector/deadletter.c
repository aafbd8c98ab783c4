/* Dead letters: an event the projector cannot apply becomes a row of
 * dead_letters in the batch's own transaction and a copy on the DLQ topic with
 * the error in its headers. The copy is produced before the commit and flushed;
 * when the batch then fails and is retried, the copy is produced again, so the
 * DLQ topic is at-least-once while the table is exactly-once. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_catalog.h"
#include "vp_kafka.h"
#include "vp_sealed.h"
#include "vp_uuid.h"

struct PjDeadLetters {
	rd_kafka_t *producer;
	char *topic;
	atomic_int failed; /* delivery reports with an error since the last flush */
	char last_error[256];
};

/* A dead letter of a client erased before it (an event appended after the
 * ClientErased by another producer, an ops replay of old events; in a
 * rebuild too) is recorded discarded, without its payload, here and on the
 * DLQ topic: the client's personal fields must not come back through the
 * dead letters (docs/privacy.md). "Of the client": a client event ($8, its
 * client's id when the type carries personal fields), or an envelope that
 * did not decode whose bytes name an erased client of the record key's
 * tenant ($10, the ids it names, kept in named_ids: a ClientErased
 * applied later scrubs the rows naming its client). event_log says who is erased:
 * ClientErased is in it from the statement that applied it, in this batch
 * too, whatever the keyring has read by now; and the keyring's erasure
 * markers ($9, of $8 or of an id in $10) say it before ClientErased is
 * replayed (a rebuild reads the keys first), so a rebuild does not write the
 * client's dead letters to the DLQ topic again. The answer is whether it was. */
static const PjStatement deadletter_statements[] = {
	{"dead_letter_insert",
	 "WITH e AS (SELECT CASE WHEN $9::boolean THEN true WHEN $8::uuid IS NOT NULL THEN "
	 "EXISTS (SELECT 1 FROM event_log l WHERE l.tenant_id = $3::uuid AND l.aggregate_id = "
	 "$8::uuid AND l.type = '" VP_EV_CLIENT_ERASED "') "
	 "WHEN $6::text IS NULL THEN EXISTS (SELECT 1 FROM event_log l WHERE ($3::uuid IS NULL "
	 "OR l.tenant_id = $3::uuid) AND l.aggregate_id = ANY($10::uuid[]) AND l.type = '"
	 VP_EV_CLIENT_ERASED "') "
	 "ELSE false END AS erased), "
	 "i AS (INSERT INTO dead_letters (partition, \"offset\", tenant_id, error, payload, type, "
	 "aggregate_id, named_ids, status, resolved_by, resolved_at, reason) SELECT $1::integer, "
	 "$2::bigint, $3::uuid, $4, CASE WHEN erased THEN NULL ELSE $5::bytea END, $6, $7, "
	 "$10::uuid[], CASE WHEN erased "
	 "THEN 'discarded' ELSE 'dead' END, CASE WHEN erased THEN 'projector' END, CASE WHEN "
	 "erased THEN now() END, CASE WHEN erased THEN '" PJ_ERASED_DEAD_LETTER "' END FROM e "
	 "ON CONFLICT DO NOTHING) "
	 "SELECT erased FROM e"},
	{NULL, NULL},
};

/* Runs on the thread that polls or flushes the producer (the main thread). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	(void)rk;
	PjDeadLetters *dl = opaque;
	if (msg->err) {
		atomic_fetch_add(&dl->failed, 1);
		snprintf(dl->last_error, sizeof(dl->last_error), "%s", rd_kafka_err2str(msg->err));
	}
}

PjDeadLetters *pj_deadletter_new(const char *brokers, const char *kafka_props, const char *topic,
				 char *why, size_t why_cap)
{
	PjDeadLetters *dl = calloc(1, sizeof(*dl));
	rd_kafka_conf_t *conf = NULL;
	if (!dl || !(dl->topic = strdup(topic))) {
		snprintf(why, why_cap, "out of memory");
		goto fail;
	}
	conf = vp_kafka_conf_new(brokers, "vetpms-projector-dlq", kafka_props, why, why_cap);
	if (!conf || vp_kafka_conf_set(conf, "enable.idempotence", "true", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "linger.ms", "0", why, why_cap) < 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, dl);
	dl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, why_cap);
	if (!dl->producer)
		goto fail;
	return dl;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	pj_deadletter_free(dl);
	return NULL;
}

PjDeadLetters *pj_deadletter_free(PjDeadLetters *dl)
{
	if (!dl)
		return NULL;
	if (dl->producer) {
		rd_kafka_flush(dl->producer, 5000);
		rd_kafka_destroy(dl->producer);
	}
	free(dl->topic);
	free(dl);
	return NULL;
}

int pj_deadletter_prepare(PGconn *conn, char *why, size_t why_cap)
{
	const PjStatement *s = deadletter_statements;
	PGresult *res = PQprepare(conn, s->name, s->sql, 0, NULL);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(why, why_cap, "prepare %s: %s", s->name,
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/* The client a dead letter is of when its type carries personal fields and
 * its aggregate id is a UUID (else NULL: $8::uuid must not fail the batch). */
static const char *client_of(const PjDeadLetterOf *of)
{
	VpUuid id;
	if (!of->type || !of->aggregate_id || !vp_sealed_type(of->type) ||
	    vp_uuid_parse(of->aggregate_id, strlen(of->aggregate_id), &id) < 0)
		return NULL;
	return of->aggregate_id;
}

/* The UUIDs a payload that did not decode names (vp_uuid_scan: either case,
 * at most MAX_NAMED), as a PostgreSQL array literal of their canonical
 * text, or NULL when it names none: a torn client event may hold an erased
 * client's fields. Looked up by id through event_log's index, not by
 * scanning the bytes once per erased client of the tenant (a flood of such
 * records from a tenant with many erasures would have cost their product),
 * and in the keyring: *marked when one is a client of tenant_id (NULL, a
 * record naming no tenant: of any tenant) with an erasure marker, so a rebuild, which reads the markers before it replays
 * the ClientErased, makes no new copy of the record on the DLQ topic. */
#define MAX_NAMED 32
#define NAMED_CAP (2 + MAX_NAMED * (VP_UUID_STR_LEN + 1))
static const char *uuids_named(const rd_kafka_message_t *msg, const char *tenant_id,
			       char out[NAMED_CAP], bool *marked)
{
	VpUuid ids[MAX_NAMED];
	size_t n = vp_uuid_scan(msg->payload, msg->len, ids, MAX_NAMED), used = 1;
	out[0] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			out[used++] = ',';
		vp_uuid_format(&ids[i], out + used); /* NUL-terminated until the next append */
		*marked = *marked || pj_keys_client_erased(tenant_id, out + used);
		used += VP_UUID_STR_LEN;
	}
	out[used++] = '}';
	out[used] = '\0';
	return n > 0 ? out : NULL;
}

int pj_deadletter_record(PjDeadLetters *dl, PGconn *conn, const rd_kafka_message_t *msg,
			 const PjDeadLetterOf *of, const char *error, char *why, size_t why_cap)
{
	char partition_text[16], offset_text[24];
	snprintf(partition_text, sizeof(partition_text), "%d", (int)msg->partition);
	snprintf(offset_text, sizeof(offset_text), "%lld", (long long)msg->offset);
	char named_text[NAMED_CAP];
	const char *client = client_of(of);
	bool marked = client && of->tenant_id && pj_keys_client_erased(of->tenant_id, client);
	const char *named = of->type ? NULL : uuids_named(msg, of->tenant_id, named_text, &marked);
	const char *params[] = {partition_text, offset_text, of->tenant_id, error,
				msg->payload ? (const char *)msg->payload : "", of->type,
				of->aggregate_id, client, marked ? "true" : "false", named};
	const int lengths[] = {0, 0, 0, 0, (int)msg->len, 0, 0, 0, 0, 0};
	const int formats[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0}; /* the payload as binary bytea */
	PGresult *res = PQexecPrepared(conn, "dead_letter_insert", 10, params, lengths, formats, 0);
	int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	bool erased = ok && PQgetvalue(res, 0, 0)[0] == 't';
	if (!ok) {
		snprintf(why, why_cap, "dead letter: %s",
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
	}
	PQclear(res);
	if (!ok)
		return -1;

	rd_kafka_resp_err_t err;
	for (;;) {
		err = rd_kafka_producev(
			dl->producer, RD_KAFKA_V_TOPIC(dl->topic),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(msg->key, msg->key_len),
			RD_KAFKA_V_VALUE(erased ? NULL : msg->payload, erased ? 0 : msg->len),
			RD_KAFKA_V_HEADER("error", erased ? PJ_ERASED_DEAD_LETTER : error, -1),
			RD_KAFKA_V_HEADER("source-partition", partition_text, -1),
			RD_KAFKA_V_HEADER("source-offset", offset_text, -1), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(dl->producer, 100); /* backpressure: let deliveries drain */
	}
	if (err) {
		snprintf(why, why_cap, "dead letter to %s: %s", dl->topic, rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

int pj_deadletter_flush(PjDeadLetters *dl, int timeout_ms, char *why, size_t why_cap)
{
	rd_kafka_resp_err_t err = rd_kafka_flush(dl->producer, timeout_ms);
	int failed = atomic_exchange(&dl->failed, 0);
	if (err) {
		snprintf(why, why_cap, "dead letter flush: %s", rd_kafka_err2str(err));
		return -1;
	}
	if (failed) {
		snprintf(why, why_cap, "%d dead letter(s) not delivered: %s", failed,
			 dl->last_error);
		return -1;
	}
	return 0;
}
