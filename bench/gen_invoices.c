/* Fills one tenant for the revenue benchmark (docs/bench.md, revenue): its
 * TenantProvisioned, CLIENTS ClientRegistered, then N invoices issued on dates
 * spread evenly over MONTHS months from FIRST_MONTH (YYYY-MM): InvoiceCreated,
 * one or two InvoiceLineAdded (amounts from vp_line_amounts), InvoiceIssued
 * (INV-000001, ... in issue order, total = the lines'), then for most a
 * PaymentRecorded (full or partial, received on or after the issue and before
 * today), a few PaymentRefunded, and InvoiceVoided only for unpaid ones. Every
 * envelope is checked with the catalog as the writer does; key = tenant_id
 * (one partition), headers type and v, an idempotent producer (retries keep
 * the order), no transactions (read_committed consumers read plain records).
 *   gen_invoices BROKERS TOPIC N_INVOICES FIRST_MONTH MONTHS [CLIENTS] [SEED]
 * Prints one JSON object: tenant, events, bytes, seconds, failed, the count
 * of each type, and the sums a revenue answer over the MONTHS months must
 * give (invoices not void, their totals, their net payments, the money
 * collected within the months). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

#include "gen_producer.h"
#include "vp_catalog.h"
#include "vp_money.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define DAY_US	(86400LL * 1000000)
#define HOUR_US (3600LL * 1000000)

enum { T_TENANT, T_CLIENT, T_CREATED, T_LINE, T_ISSUED, T_PAYMENT, T_REFUND, T_VOIDED, N_TYPES };
/* Names and aggregates from the event catalog. */
static const char *const type_names[N_TYPES] = {VP_EV_TENANT_PROVISIONED, VP_EV_CLIENT_REGISTERED,
						VP_EV_INVOICE_CREATED,	  VP_EV_INVOICE_LINE_ADDED,
						VP_EV_INVOICE_ISSUED,	  VP_EV_PAYMENT_RECORDED,
						VP_EV_PAYMENT_REFUNDED,	  VP_EV_INVOICE_VOIDED};

static const char *const first_names[] = {"Jane",   "John",  "Maria", "Ahmed", "Li",	"Olga",
					  "Pierre", "Aisha", "Tom",   "Sofia", "Kenji", "Ana"};
static const char *const last_names[] = {"Smith",  "Garcia", "Muller", "Rossi",	   "Nowak",
					 "Dubois", "Jensen", "Silva",  "Kowalski", "Brown"};
static const char *const descriptions[] = {
    "Consultation",	"Vaccination booster",	  "Dental scale and polish",
    "Blood panel",	"Meloxicam 1 mg x 30",	  "Nail clipping",
    "X-ray, two views", "Flea and worm treatment"};
static const char *const methods[] = {"card", "card", "card", "cash", "bank_transfer", "insurance"};
static const int64_t quantities_milli[] = {1000, 1000, 1000, 2000, 500, 1500, 3000};
typedef struct GenOut {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	char tenant[37];
	long counts[N_TYPES];
	long events;
	size_t bytes;
	long failed; /* delivery reports with an error */
} GenOut;

/* The revenue the reader must answer over the months, summed. */
typedef struct GenTotals {
	long invoice_count;
	int64_t invoiced_cents, paid_cents, collected_cents;
	long partial, full, unpaid, voided, refunds;
} GenTotals;

static void new_id(char out[37])
{
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, out);
}

/* One envelope of the tenant: built, checked against the catalog, produced
 * (waiting for deliveries while the queue is full). */
static int emit(GenOut *out, int type, const char *aggregate_id, int seq, int64_t at_us,
		const char *data)
{
	static char envelope[4096];
	char at[40], event_id[37], command_id[37], why[256];
	new_id(event_id);
	new_id(command_id);
	vp_time_format_rfc3339_us(at_us, at, sizeof(at));
	int len = snprintf(envelope, sizeof(envelope),
			   "{\"id\":\"%s\",\"type\":\"%s\",\"v\":1,\"tenant_id\":\"%s\","
			   "\"aggregate\":\"%s\",\"aggregate_id\":\"%s\",\"seq\":%d,"
			   "\"command_id\":\"%s\",\"actor\":\"bench-user\",\"at\":\"%s\","
			   "\"data\":%s}",
			   event_id, type_names[type], out->tenant,
			   vp_catalog_find(type_names[type], 1)->aggregate, aggregate_id, seq,
			   command_id, at, data);
	if (len < 0 || (size_t)len >= sizeof(envelope)) {
		fprintf(stderr, "gen_invoices: envelope of event %ld too long\n", out->events);
		return -1;
	}
	if (vp_catalog_check_encoded(envelope, (size_t)len, why, sizeof(why)) < 0) {
		fprintf(stderr, "gen_invoices: event %ld (%s) fails the catalog: %s\n", out->events,
			type_names[type], why);
		return -1;
	}
	rd_kafka_resp_err_t err =
	    gen_produce(out->rk, out->rkt, out->tenant, type_names[type], envelope, (size_t)len);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "gen_invoices: cannot produce event %ld: %s\n", out->events,
			rd_kafka_err2str(err));
		return -1;
	}
	rd_kafka_poll(out->rk, 0);
	out->counts[type]++;
	out->events++;
	out->bytes += (size_t)len;
	return 0;
}

/* The first day (days since 1970-01-01) of month ordinal (year × 12 + month − 1). */
static int month_first_day(int ordinal, int32_t *days)
{
	char text[32];
	if (ordinal < 0 || ordinal >= 10000 * 12)
		return -1;
	snprintf(text, sizeof(text), "%04d-%02d-01", ordinal / 12, ordinal % 12 + 1);
	return vp_date_parse(text, 10, days);
}

static void date_text(int32_t days, char out[16])
{
	vp_date_format(days, out, 16);
}

/* One invoice, issued on day issued_on as the tenant's seq-th: its events and
 * its share of the totals. Payments land on or after the issue and no later
 * than last_day; collected counts what moved before end_day. */
static int invoice(GenOut *out, GenTotals *tot, const char *client, int32_t issued_on,
		   long number_seq, int32_t last_day, int32_t end_day)
{
	char id[37], data[1024], issued[16], due[16];
	int seq = 0;
	new_id(id);
	int64_t at = issued_on * DAY_US + 8 * HOUR_US + (int64_t)(next_rand() % (8 * HOUR_US));
	snprintf(data, sizeof(data), "{\"client_id\":\"%s\"}", client);
	if (emit(out, T_CREATED, id, ++seq, at, data) < 0)
		return -1;
	int64_t total = 0;
	int n_lines = 1 + (int)(next_rand() % 2);
	for (int k = 0; k < n_lines; k++) {
		char line_id[37];
		new_id(line_id);
		int64_t qty = PICK(quantities_milli);
		int64_t price = 500 + (int64_t)(next_rand() % 19500);
		int64_t discount_bp = next_rand() % 5 == 0 ? 1000 : 0;
		int64_t tax_bp = next_rand() % 4 == 0 ? 0 : 2000;
		VpLineAmounts a;
		vp_line_amounts(qty, price, discount_bp, tax_bp, &a);
		total += a.line_total_cents;
		snprintf(data, sizeof(data),
			 "{\"line_id\":\"%s\",\"description\":\"%s\",\"quantity_milli\":%lld,"
			 "\"unit_price_cents\":%lld,\"discount_bp\":%lld,\"tax_rate_bp\":%lld,"
			 "\"net_cents\":%lld,\"discount_cents\":%lld,\"tax_cents\":%lld,"
			 "\"line_total_cents\":%lld}",
			 line_id, PICK(descriptions), (long long)qty, (long long)price,
			 (long long)discount_bp, (long long)tax_bp, (long long)a.net_cents,
			 (long long)a.discount_cents, (long long)a.tax_cents,
			 (long long)a.line_total_cents);
		at += 20 * 1000000;
		if (emit(out, T_LINE, id, ++seq, at, data) < 0)
			return -1;
	}
	char number[VP_INVOICE_NUMBER_CAP];
	vp_invoice_number(number_seq, number, sizeof(number));
	date_text(issued_on, issued);
	date_text(issued_on + 30, due);
	snprintf(data, sizeof(data),
		 "{\"number\":\"%s\",\"issued_on\":\"%s\",\"due_on\":\"%s\",\"total_cents\":%lld}",
		 number, issued, due, (long long)total);
	at += 60 * 1000000;
	if (emit(out, T_ISSUED, id, ++seq, at, data) < 0)
		return -1;

	unsigned fate = (unsigned)(next_rand() % 1000);
	if (fate < 20) { /* 2 %: voided, nothing paid */
		tot->voided++;
		return emit(out, T_VOIDED, id, ++seq, at + DAY_US,
			    "{\"reason\":\"issued to the wrong client\"}");
	}
	tot->invoice_count++;
	tot->invoiced_cents += total;
	if (fate < 150) { /* 13 %: unpaid */
		tot->unpaid++;
		return 0;
	}
	/* 15 % partially paid (half), 70 % paid in full */
	int64_t amount = fate < 300 ? (total / 2 > 0 ? total / 2 : total) : total;
	if (amount < total)
		tot->partial++;
	else
		tot->full++;
	int32_t paid_day = issued_on + (int32_t)(next_rand() % 41);
	if (paid_day > last_day)
		paid_day = last_day;
	char payment_id[37], received[16];
	new_id(payment_id);
	date_text(paid_day, received);
	const char *method = PICK(methods);
	char reference[48] = "";
	if (strcmp(method, "cash") != 0)
		snprintf(reference, sizeof(reference), ",\"reference\":\"TX-%08u\"",
			 (unsigned)(next_rand() % 100000000));
	snprintf(data, sizeof(data),
		 "{\"payment_id\":\"%s\",\"amount_cents\":%lld,\"method\":\"%s\"%s,"
		 "\"received_on\":\"%s\"}",
		 payment_id, (long long)amount, method, reference, received);
	if (emit(out, T_PAYMENT, id, ++seq, paid_day * DAY_US + 11 * HOUR_US, data) < 0)
		return -1;
	tot->paid_cents += amount;
	if (paid_day < end_day)
		tot->collected_cents += amount;
	if (next_rand() % 100 >= 2) /* 2 % of the payments get a refund */
		return 0;
	int64_t refund = next_rand() % 2 ? amount : (amount / 4 > 0 ? amount / 4 : amount);
	int32_t refund_day = paid_day + 1 + (int32_t)(next_rand() % 10);
	if (refund_day > last_day)
		refund_day = last_day;
	char refund_id[37];
	new_id(refund_id);
	snprintf(data, sizeof(data),
		 "{\"refund_id\":\"%s\",\"payment_id\":\"%s\",\"amount_cents\":%lld,"
		 "\"reason\":\"treatment not given\"}",
		 refund_id, payment_id, (long long)refund);
	/* 15:00 UTC: the same date in the tenant's zone (Europe/London) */
	if (emit(out, T_REFUND, id, ++seq, refund_day * DAY_US + 15 * HOUR_US, data) < 0)
		return -1;
	tot->refunds++;
	tot->paid_cents -= refund;
	if (refund_day < end_day)
		tot->collected_cents -= refund;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: gen_invoices BROKERS TOPIC N_INVOICES FIRST_MONTH MONTHS "
				"[CLIENTS] [SEED]\n");
		return 2;
	}
	long n_invoices = atol(argv[3]), months = atol(argv[5]);
	long n_clients = argc > 6 ? atol(argv[6]) : 300;
	if (argc > 7)
		gen_seed(strtoull(argv[7], NULL, 10));
	int32_t first_day, end_day, today = vp_date_from_us(vp_time_now_us());
	int month = strlen(argv[4]) == 7 && argv[4][4] == '-' ? atoi(argv[4] + 5) : 0;
	int first_ordinal = month >= 1 && month <= 12 ? atoi(argv[4]) * 12 + month - 1 : -1;
	if (n_invoices < 1 || n_invoices > 10000000 || months < 1 || months > 120 ||
	    n_clients < 1 || n_clients > 100000 || first_ordinal < 0 ||
	    month_first_day(first_ordinal, &first_day) < 0 ||
	    month_first_day(first_ordinal + (int)months, &end_day) < 0 || end_day > today) {
		fprintf(stderr, "gen_invoices: bad arguments (the months must end before today)\n");
		return 2;
	}
	GenOut out = {0};
	GenTotals tot = {0};
	char(*clients)[37] = calloc((size_t)n_clients, sizeof(*clients));
	out.rk =
	    gen_producer_new(argv[1], "gen_invoices", "vetpms-bench-gen-invoices", &out.failed);
	if (!clients || !out.rk)
		return 1;
	out.rkt = rd_kafka_topic_new(out.rk, argv[2], NULL);
	int64_t started = vp_time_mono_us();
	char data[512];
	new_id(out.tenant);
	if (emit(&out, T_TENANT, out.tenant, 1, first_day * DAY_US - 30 * DAY_US,
		 "{\"name\":\"Bench Billing Vets\",\"timezone\":\"Europe/London\","
		 "\"currency\":\"GBP\"}") < 0)
		return 1;
	for (long c = 0; c < n_clients; c++) {
		new_id(clients[c]);
		snprintf(
		    data, sizeof(data),
		    "{\"first_name\":\"%s\",\"last_name\":\"%s\",\"email\":\"c%ld@mail.example\","
		    "\"phone\":\"+44 20 7946 %04u\"}",
		    PICK(first_names), PICK(last_names), c, (unsigned)(next_rand() % 10000));
		if (emit(&out, T_CLIENT, clients[c], 1,
			 first_day * DAY_US - 29 * DAY_US + c * 60 * 1000000LL, data) < 0)
			return 1;
	}
	int64_t span = end_day - first_day;
	for (long i = 0; i < n_invoices; i++) {
		int32_t issued_on = first_day + (int32_t)(i * span / n_invoices);
		if (invoice(&out, &tot, clients[next_rand() % (unsigned long long)n_clients],
			    issued_on, i + 1, today - 1, end_day) < 0)
			return 1;
	}
	rd_kafka_flush(out.rk, 120000);
	double seconds = (double)(vp_time_mono_us() - started) / 1e6;
	char first[16], last[32];
	snprintf(first, sizeof(first), "%.7s", argv[4]);
	int last_ordinal = first_ordinal + (int)months - 1;
	snprintf(last, sizeof(last), "%04d-%02d", last_ordinal / 12, last_ordinal % 12 + 1);
	printf("{\"tenant\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"invoices\":%ld,\"clients\":%ld,"
	       "\"events\":%ld,\"bytes\":%zu,\"seconds\":%.3f,\"failed\":%ld,\"types\":{",
	       out.tenant, first, last, n_invoices, n_clients, out.events, out.bytes, seconds,
	       out.failed);
	for (int k = 0; k < N_TYPES; k++)
		printf("%s\"%s\":%ld", k ? "," : "", type_names[k], out.counts[k]);
	printf("},\"revenue\":{\"invoice_count\":%ld,\"invoiced_cents\":%lld,\"paid_cents\":%lld,"
	       "\"collected_cents\":%lld},\"fates\":{\"paid\":%ld,\"partially_paid\":%ld,"
	       "\"unpaid\":%ld,\"voided\":%ld,\"refunded\":%ld}}\n",
	       tot.invoice_count, (long long)tot.invoiced_cents, (long long)tot.paid_cents,
	       (long long)tot.collected_cents, tot.full, tot.partial, tot.unpaid, tot.voided,
	       tot.refunds);
	rd_kafka_topic_destroy(out.rkt);
	rd_kafka_destroy(out.rk);
	free(clients);
	return out.failed ? 1 : 0;
}
