/* vetctl tenant export: every committed event of one tenant, in log order, as
 * NDJSON on stdout — each line the envelope exactly as stored in the record
 * (EVENTS.md), then one trailer line
 *   {"trailer":{"count":N,"blake2b":"<64 hex>"}}
 * where count is the number of event lines and blake2b is libsodium's
 * crypto_generichash (BLAKE2b, 32-byte output, no key) of the bytes of every
 * event line including its "\n", in file order; the trailer line is not
 * hashed. The events come from the tenant's partition (the record key is the
 * tenant id), read_committed from the earliest offset to the end of what is
 * committed when the read reaches it; records of other tenants are skipped.
 * A record keyed by the tenant that is not an event of the tenant, or holds a
 * newline, stops the export (exit 1): a file that leaves out part of a history
 * must not look complete. Progress goes to stderr.
 *
 * The tenant's key records (tenant_keys.c) go before the events, with the
 * trailer's "keys" and "keys_blake2b": the tenant key rewrapped from the
 * master key (VETPMS_MASTER_KEY_FILE / VETPMS_MASTER_KEY) to the transport
 * key of --key-file. A tenant with key records and no --key-file is refused
 * (its sealed events would not open anywhere else) unless --without-keys.
 * During a rotation (docs/privacy.md, "Key operations") the tenant's record
 * may still be under the previous master key: given it
 * (VETPMS_MASTER_KEY_PREVIOUS_FILE / VETPMS_MASTER_KEY_PREVIOUS, as the
 * daemons take it), export unwraps with whichever of the two the record
 * names.
 *
 * An erased client's plain-text (v1) events, written before sealing began,
 * are exported as the erased client's (vp_sealed_erase_plain): the keys
 * topic's erasure markers say which clients, read whether or not the keys go
 * into the file. Sealed events are exported as they are: their key is gone.
 * The log itself still holds those v1 fields (docs/privacy.md). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "tenant_keys.h"
#include "vetctl.h"
#include "vp_keyring.h"
#include "vp_config.h"
#include "vp_event.h"
#include "vp_kafka.h"
#include "vp_kafka_end.h"
#include "vp_keyrec_newer.h"
#include "vp_sealed.h"
#include "vp_uuid.h"

typedef struct ExportOptions {
	char *brokers;
	char *topic;
	char *tenant;
	char *kafka_props;
	char *keys_topic;
	char *master_key_file;
	char *master_key_previous_file;
	char *key_file;
	bool without_keys;
} ExportOptions;

typedef struct Export {
	const ExportOptions *o;
	rd_kafka_t *rk;
	int partition;
	int64_t low, high;
	long long count;
	size_t n_keys;
	char keys_hex[65];
	/* the erased clients' ids, sorted (erased_clients) */
	char (*erased)[VP_UUID_STR_LEN + 1];
	size_t n_erased;
	crypto_generichash_state hash;
	VcProgress progress;
	char why[512];
} Export;

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char usage[] =
	"usage: vetctl tenant export --tenant UUID --key-file F [--brokers B] [--topic T]\n"
	"                            [--keys-topic K] [--without-keys] > tenant.ndjson\n"
	"       vetctl tenant import --file tenant.ndjson --writer URL --token JWT\n"
	"                            [--key-file F] [--dry-run]\n"
	"  --key-file: a transport key (vetctl keys new-master --out F) the tenant's key is\n"
	"  rewrapped under in the file; export needs the master key (VETPMS_MASTER_KEY_FILE)\n"
	"  every committed event of the tenant in log order, one envelope per line, then\n"
	"  {\"trailer\":{\"count\":N,\"blake2b\":\"<hex>\"}} (docs/operations.md)\n";

static int id_order(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The ids of the clients whose record in k is an erasure marker, sorted
 * into x->erased. 0, or -1 (out of memory). */
static int erased_clients(Export *x, const VcKeyLines *k)
{
	char prefix[64];
	size_t n_prefix = (size_t)snprintf(prefix, sizeof(prefix), VP_KEYREC_CLIENT ":%s:",
					   x->o->tenant);
	for (size_t i = 0; i < k->n; i++) {
		VpKeyrecRank rank = vp_keyrec_rank(k->value[i], strlen(k->value[i]));
		if (rank.state != VP_KEYREC_MARKER || strncmp(k->name[i], prefix, n_prefix) != 0 ||
		    strlen(k->name[i] + n_prefix) != VP_UUID_STR_LEN)
			continue;
		if (!x->erased && !(x->erased = calloc(k->n, sizeof(*x->erased))))
			return -1;
		memcpy(x->erased[x->n_erased++], k->name[i] + n_prefix, VP_UUID_STR_LEN + 1);
	}
	if (x->n_erased > 1)
		qsort(x->erased, x->n_erased, sizeof(*x->erased), id_order);
	return 0;
}

/* Whether ev is a plain-text (v1) event of an erased client. */
static bool erased_plain(const Export *x, const VpEvent *ev)
{
	return ev->v == 1 && vp_sealed_type(ev->type) && x->n_erased > 0 &&
	       bsearch(ev->aggregate_id, x->erased, x->n_erased, sizeof(*x->erased), id_order);
}

/* ev (an erased client's v1 event) encoded with its personal members as the
 * erased client's: malloc'd text, or NULL (out of memory). */
static char *erased_text(VpEvent *ev)
{
	return vp_sealed_erase_plain(ev->data, ev->type) == 0 ? vp_event_encode(ev) : NULL;
}

/* One record of the partition: written and hashed when it is the tenant's;
 * 0, or -1 with x->why. */
static int export_record(Export *x, const rd_kafka_message_t *m)
{
	const char *tenant = x->o->tenant;
	if (!m->key || m->key_len != strlen(tenant) || memcmp(m->key, tenant, m->key_len) != 0)
		return 0; /* another tenant's */
	VpEvent ev;
	char why[256];
	if (!m->payload || vp_event_decode(m->payload, m->len, &ev, why, sizeof(why)) < 0) {
		snprintf(x->why, sizeof(x->why), "partition %d offset %lld: keyed by the tenant "
			 "but not an event (%s); see vetctl events check", m->partition,
			 (long long)m->offset, m->payload ? why : "no payload");
		return -1;
	}
	bool ours = !strcmp(ev.tenant_id, tenant);
	bool scrub = ours && erased_plain(x, &ev);
	char *erased = scrub ? erased_text(&ev) : NULL;
	bool lost = scrub && !erased;
	vp_event_release(&ev);
	if (!ours || lost || memchr(m->payload, '\n', m->len)) {
		snprintf(x->why, sizeof(x->why), "partition %d offset %lld: %s", m->partition,
			 (long long)m->offset,
			 lost   ? "out of memory"
			 : ours ? "the envelope holds a newline"
				: "keyed by the tenant but of another tenant");
		return -1;
	}
	const void *line = erased ? erased : m->payload;
	size_t len = erased ? strlen(erased) : m->len;
	crypto_generichash_update(&x->hash, line, len);
	crypto_generichash_update(&x->hash, (const unsigned char *)"\n", 1);
	bool written = fwrite(line, 1, len, stdout) == len && putchar('\n') != EOF;
	free(erased);
	if (!written) {
		snprintf(x->why, sizeof(x->why), "cannot write the output");
		return -1;
	}
	x->count++;
	return 0;
}

static void report(Export *x, int64_t offset, bool final)
{
	char position[64];
	snprintf(position, sizeof(position), "partition %d offset %lld of %lld", x->partition,
		 (long long)offset, (long long)x->high);
	vc_progress_report(&x->progress, x->count, position, final);
}

/* Reads the partition from the earliest offset to the end it had when the
 * export began (x->low, x->high; common/vp_kafka_end.h): waiting for an end
 * of partition event instead never ends while the partition's tenants write
 * without pause. The file is the log's prefix up to that end at least. */
static int export_partition(Export *x)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, x->o->topic, x->partition)->offset =
		RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t err = rd_kafka_assign(x->rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	VpKafkaEnd *end = err ? NULL : vp_kafka_end_new(x->partition + 1);
	if (!end) {
		snprintf(x->why, sizeof(x->why), "assign: %s",
			 err ? rd_kafka_err2str(err) : "out of memory");
		return -1;
	}
	for (int p = 0; p < x->partition; p++)
		vp_kafka_end_set(end, p, 0, 0); /* only the tenant's partition is read */
	vp_kafka_end_set(end, x->partition, x->low, x->high);
	int64_t offset = x->low;
	int rc = 0;
	while (rc == 0 && vp_kafka_end_left(end) > 0) {
		if (interrupted) {
			snprintf(x->why, sizeof(x->why), "interrupted; the output is incomplete");
			rc = -1;
			break;
		}
		rd_kafka_message_t *m = vp_kafka_end_poll(end, x->rk, x->o->topic, 500);
		if (!m || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m)
				rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			snprintf(x->why, sizeof(x->why), "%s", rd_kafka_message_errstr(m));
			rc = -1;
		} else {
			offset = m->offset + 1;
			rc = export_record(x, m);
			report(x, offset, false);
		}
		rd_kafka_message_destroy(m);
	}
	vp_kafka_end_free(end);
	if (rc == 0)
		report(x, offset, true);
	return rc;
}

/* The tenant's key lines, before the events; 0, or -1 with x->why. The
 * tenant record is rewrapped to the transport key from the master key its
 * kek_id names (the current or the previous one, as the daemons choose:
 * vc_keys_rewrap), never from whichever opens. */
static int export_keys(Export *x)
{
	const ExportOptions *o = x->o;
	VcKeyLines k = {0};
	VpMasterKeys masters = {NULL, NULL};
	VpMasterFiles files = {o->master_key_file, o->master_key_previous_file};
	VpKey *transport = NULL;
	unsigned char digest[32];
	int rc = -1;
	/* read also without keys: the erasure markers say which v1 events to
	 * export as the erased client's */
	if (vc_keys_collect(o->brokers, o->kafka_props, o->keys_topic, o->tenant, &k, x->why,
			    sizeof(x->why)) < 0)
		goto done;
	if (erased_clients(x, &k) < 0) {
		snprintf(x->why, sizeof(x->why), "out of memory");
		goto done;
	}
	if (o->without_keys) {
		rc = 0;
		goto done;
	}
	/* erasure markers only: no key to carry, no transport key needed */
	bool keyless = vc_keys_markers_only(&k);
	if (!keyless && !*o->key_file) {
		snprintf(x->why, sizeof(x->why), "tenant %s has %zu key record(s): its client "
			 "events are sealed and open nowhere else without its keys; give "
			 "--key-file F (a transport key: vetctl keys new-master --out F) to carry "
			 "them, or --without-keys for a file whose sealed events cannot be opened "
			 "after an import", o->tenant, k.n);
		goto done;
	}
	if (!keyless &&
	    (vp_master_keys_load(&files, &masters, x->why, sizeof(x->why)) < 0 ||
	     !(transport = vp_key_master_load(o->key_file, NULL, x->why, sizeof(x->why))) ||
	     vc_keys_rewrap(&k, &masters, transport, x->why, sizeof(x->why)) < 0))
		goto done;
	if (vc_keys_write(&k, stdout, digest) < 0) {
		snprintf(x->why, sizeof(x->why), "cannot write the output");
		goto done;
	}
	x->n_keys = k.n;
	sodium_bin2hex(x->keys_hex, sizeof(x->keys_hex), digest, sizeof(digest));
	rc = 0;
done:
	vp_master_keys_free(&masters);
	vp_key_free(transport);
	vc_keys_release(&k);
	return rc;
}

static int export_tenant(Export *x)
{
	int partitions = 0;
	if (vp_kafka_probe(x->rk, x->o->topic, 10000, &partitions) < 0 || partitions == 0) {
		snprintf(x->why, sizeof(x->why), "topic %s not found at %s", x->o->topic,
			 x->o->brokers);
		return -1;
	}
	x->partition = vp_kafka_partition_for_key(x->o->tenant, strlen(x->o->tenant), partitions);
	rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
		x->rk, x->o->topic, x->partition, &x->low, &x->high, 10000);
	if (err) {
		snprintf(x->why, sizeof(x->why), "watermarks: %s", rd_kafka_err2str(err));
		return -1;
	}
	if (vp_crypto_init(x->why, sizeof(x->why)) < 0 || export_keys(x) < 0)
		return -1;
	vc_progress_start(&x->progress, "export", 0);
	crypto_generichash_init(&x->hash, NULL, 0, crypto_generichash_BYTES);
	if (export_partition(x) < 0)
		return -1;
	unsigned char digest[crypto_generichash_BYTES];
	char hex[2 * crypto_generichash_BYTES + 1];
	crypto_generichash_final(&x->hash, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (x->n_keys > 0) /* a file without keys keeps the old trailer */
		printf("{\"trailer\":{\"count\":%lld,\"blake2b\":\"%s\",\"keys\":%zu,"
		       "\"keys_blake2b\":\"%s\"}}\n",
		       x->count, hex, x->n_keys, x->keys_hex);
	else
		printf("{\"trailer\":{\"count\":%lld,\"blake2b\":\"%s\"}}\n", x->count, hex);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		snprintf(x->why, sizeof(x->why), "cannot write the output");
		return -1;
	}
	fprintf(stderr, "exported %lld event(s) and %zu key record(s) of tenant %s\n", x->count,
		x->n_keys, x->o->tenant);
	return 0;
}

static int cmd_export(int argc, char **argv)
{
	ExportOptions o = {0};
	Export x = {.o = &o};
	const VpConfigItem items[] = {
		VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &o.brokers, "127.0.0.1:59092",
			  "Kafka bootstrap servers"),
		VP_CF_STR("topic", "VETPMS_TOPIC", &o.topic, VP_TOPIC_EVENTS_DEFAULT, "events topic"),
		VP_CF_STR("kafka-props", "VETPMS_KAFKA_PROPS", &o.kafka_props, "",
			  "extra librdkafka properties a=b,c=d"),
		VP_CF_STR("tenant", NULL, &o.tenant, "", "the tenant to export (UUID)"),
		VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &o.keys_topic, VP_TOPIC_KEYS_DEFAULT,
			  "keys topic"),
		VP_CF_STR("master-key-file", "VETPMS_MASTER_KEY_FILE", &o.master_key_file, "",
			  "the deployment's master key (else VETPMS_MASTER_KEY)"),
		VP_CF_STR("master-key-previous-file", "VETPMS_MASTER_KEY_PREVIOUS_FILE",
			  &o.master_key_previous_file, "",
			  "during a rotation: the master key being replaced (else "
			  "VETPMS_MASTER_KEY_PREVIOUS); a tenant key still under it exports too"),
		VP_CF_STR("key-file", NULL, &o.key_file, "",
			  "transport key (mode 0600) the tenant's key is rewrapped under"),
		VP_CF_BOOL("without-keys", NULL, &o.without_keys, "false",
			   "export no key records: sealed events will not open after an import"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	int rc = vp_config_load(items, n, argc, argv, "vetctl tenant export", NULL, x.why,
				sizeof(x.why));
	VpUuid tenant;
	if (rc == 0 && vp_uuid_parse(o.tenant, strlen(o.tenant), &tenant) < 0) {
		snprintf(x.why, sizeof(x.why), "--tenant must be a UUID");
		rc = -1;
	}
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "vetctl: %s\n%s", x.why, usage);
		vp_config_free(items, n);
		return rc < 0 ? 2 : 0;
	}
	vp_uuid_format(&tenant, o.tenant); /* the key's spelling: canonical lower case */
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	x.rk = vp_kafka_once_reader_new(o.brokers, "vetctl", "vetctl-export", o.kafka_props, true,
					x.why, sizeof(x.why));
	rc = x.rk && export_tenant(&x) == 0 ? 0 : 1;
	if (rc)
		fprintf(stderr, "vetctl: tenant export: %s\n", x.why);
	if (x.rk) {
		rd_kafka_consumer_close(x.rk);
		rd_kafka_destroy(x.rk);
	}
	free(x.erased);
	vp_config_free(items, n);
	return rc;
}

int vc_cmd_tenant(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "export"))
		return cmd_export(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "import"))
		return vc_tenant_import(argc - 1, argv + 1);
	bool help = argc >= 2 && !strcmp(argv[1], "--help");
	fputs(usage, help ? stdout : stderr);
	return help ? 0 : 2;
}
