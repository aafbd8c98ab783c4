/* vetctl tenant import --file t.ndjson --writer URL --token JWT: loads a
 * `vetctl tenant export` file into another deployment through the writer's
 * ops route (cmd-writer/import.c). First the whole file is checked here: the
 * trailer's count and BLAKE2b, every line against the event catalog, one
 * tenant, provisioned by the first line; nothing is sent when it fails (and
 * --dry-run stops there). Then an empty batch asks the writer where the
 * import of this file stands (0, or how far an interrupted run got; another
 * tenant with that id is refused), and the rest goes in batches, each one
 * transaction, up to --in-flight of them sent before the first is answered
 * (send_events says how order is kept). A batch whose answer was lost is sent
 * again: the writer answers it without appending it twice. Progress on
 * stderr.
 *
 * A file with the tenant's key records (key lines before the events,
 * tenant_keys.c) needs --key-file, the transport key its tenant key is
 * wrapped under: checked here (a wrong key sends nothing). Then each record
 * goes with the batch that carries what needs it (import_plan.c): the
 * tenant's, with the transport key, in the batch from 0, each client's in
 * the batch of its client's first event; the writer appends a batch's
 * records in its transaction, the tenant key rewrapped under its own master
 * key. Which batch carries a record depends only on where the batch starts
 * and ends, so a resumed import (from the writer's position) or batches
 * resent after an overtaking one carry exactly the records not committed
 * yet; a batch is appended at most once, so its records are too. A batch's
 * records count toward its bytes: one that brings many keys is cut earlier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "import_plan.h"
#include "tenant_keys.h"
#include "vetctl.h"
#include "vp_buf.h"
#include "vp_catalog.h"
#include "vp_config.h"
#include "vp_event.h"
#include "vp_json.h"
#include "vp_time.h"

/* The route's body limit is 1 MiB (VP_HTTP_LIBEVENT_MAX_BODY, the one route
 * allowed over the common 64 KiB): batches stay under, with room for the
 * envelope of the body. An import is bound by the round trip per batch (one
 * transaction each), so fewer, larger batches go faster (docs/bench.md). */
#define BATCH_BYTES (1000 * 1024)

typedef struct ImportOptions {
	char *file;
	char *writer;
	char *token;
	long batch;
	long retry_s;
	long in_flight;
	bool dry_run;
	char *key_file;
} ImportOptions;

typedef struct Import {
	const ImportOptions *o;
	FILE *in;
	char tenant[37];
	char digest[65];
	long long count;
	VcKeyLines keys;      /* the file's key records */
	VcPlan plan;          /* which batch carries each (import_plan.c) */
	bool planned;
	size_t first_len;     /* the first event line, escaped */
	long long key_lines;  /* lines before the first event */
	long long trailer_keys;
	char keys_digest[65];
	char *transport;      /* the transport key's text, locked (tenant_keys.c) */
	VcHttp *http;
	char path[128];
	VpBuf body;
	char *line;
	size_t line_cap;
	char why[512];
} Import;

static const char usage[] =
	"usage: vetctl tenant import --file t.ndjson --writer http://HOST:PORT --token JWT\n"
	"                            [--key-file F] [--batch N] [--in-flight N] [--retry-s S]\n"
	"                            [--dry-run]\n"
	"  --key-file: the transport key the export was made with (a file with keys needs it)\n"
	"  the token needs the platform-ops role and no tenant (vetctl token --role platform-ops)\n";

/* The trailer line: 0 with its count and digest (and those of the key
 * lines: 0 and "" in a file without keys), else -1. */
static int parse_trailer(Import *im, const char *line)
{
	cJSON *root = cJSON_Parse(line);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "trailer");
	long long n, keys = 0;
	const char *hex = vp_json_str(t, "blake2b"), *keys_hex = vp_json_str(t, "keys_blake2b");
	int rc = t && vp_json_int(t, "count", &n) && hex && strlen(hex) == 64 ? 0 : -1;
	if (cJSON_GetObjectItemCaseSensitive(t, "keys") &&
	    (!vp_json_int(t, "keys", &keys) || !keys_hex || strlen(keys_hex) != 64))
		rc = -1;
	if (rc == 0) {
		im->count = n;
		memcpy(im->digest, hex, 65);
		im->trailer_keys = keys;
		snprintf(im->keys_digest, sizeof(im->keys_digest), "%s", keys ? keys_hex : "");
	}
	cJSON_Delete(root);
	return rc;
}

/* A body's own bytes besides its event lines and key records: the import's
 * digest, "from", the transport key and the punctuation. */
#define BODY_ROOM 256

/* The key lines against the trailer, and the transport key against them;
 * 0, or -1 with im->why. */
static int check_keys(Import *im, crypto_generichash_state *keys_hash)
{
	unsigned char digest[crypto_generichash_BYTES];
	char hex[65], why[384];
	crypto_generichash_final(keys_hash, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (im->trailer_keys != im->key_lines ||
	    (im->key_lines > 0 && strcmp(im->keys_digest, hex) != 0)) {
		snprintf(im->why, sizeof(im->why), "the trailer says %lld key record(s) and "
			 "BLAKE2b %s; the file has %lld and %s", im->trailer_keys, im->keys_digest,
			 im->key_lines, hex);
		return -1;
	}
	if (im->key_lines == 0)
		return 0;
	size_t at_zero;
	vc_plan_finish(&im->plan, &at_zero);
	if (im->first_len + at_zero + BODY_ROOM > BATCH_BYTES) {
		snprintf(im->why, sizeof(im->why), "the tenant's key record and those of clients "
			 "without an event, %zu bytes with the first event: more than one import "
			 "request carries", at_zero);
		return -1;
	}
	bool keyless = vc_keys_markers_only(&im->keys);
	if (!keyless && !*im->o->key_file) {
		snprintf(im->why, sizeof(im->why), "the file carries %lld key record(s) of the "
			 "tenant: give --key-file, the transport key of the export",
			 im->key_lines);
		return -1;
	}
	VpKey *transport =
		keyless ? NULL : vp_key_master_load(im->o->key_file, NULL, why, sizeof(why));
	int rc = keyless || transport
			 ? vc_keys_check(&im->keys, im->tenant, transport, why, sizeof(why))
			 : -1;
	vp_key_free(transport);
	if (rc < 0) {
		snprintf(im->why, sizeof(im->why), "--key-file %s: %s: wrong transport key?",
			 im->o->key_file, why);
		return -1;
	}
	if (im->o->dry_run || keyless)
		return 0; /* markers only: no transport key is sent */
	im->transport = vc_transport_text(im->o->key_file, im->why, sizeof(im->why));
	return im->transport ? 0 : -1;
}

/* One event line of the check pass; 0, or -1 with im->why. */
static int check_line(Import *im, const char *line, size_t len, long long index)
{
	VpEvent ev;
	char why[256];
	if (vp_catalog_check_encoded(line, len, why, sizeof(why)) < 0 ||
	    vp_event_decode(line, len, &ev, why, sizeof(why)) < 0) {
		snprintf(im->why, sizeof(im->why), "line %lld: %s", index + 1, why);
		return -1;
	}
	int rc = 0;
	if (index == 0 && strcmp(ev.type, VP_EV_TENANT_PROVISIONED) != 0)
		rc = -1, snprintf(im->why, sizeof(im->why), "line 1 is not %s",
				  VP_EV_TENANT_PROVISIONED);
	else if (index == 0)
		memcpy(im->tenant, ev.tenant_id, sizeof(im->tenant));
	else if (strcmp(ev.tenant_id, im->tenant) != 0)
		rc = -1, snprintf(im->why, sizeof(im->why), "line %lld: an event of tenant %s in "
			 "the file of %s", index + 1, ev.tenant_id, im->tenant);
	/* the key record of the client whose first event this is rides with it */
	size_t keys = im->planned && !strcmp(ev.aggregate, VP_AGG_CLIENT)
			      ? vc_plan_event(&im->plan, ev.aggregate_id, index)
			      : 0;
	if (index == 0)
		im->first_len = vp_json_string_len(line, len);
	if (rc == 0 && vp_json_string_len(line, len) + keys + BODY_ROOM > BATCH_BYTES)
		rc = -1, snprintf(im->why, sizeof(im->why), "line %lld: %zu bytes%s, more than "
			 "one import request carries", index + 1, len,
			 keys ? " with its client's key record" : "");
	vp_event_release(&ev);
	return rc;
}

/* One line before the trailer: a key line (only before the first event) or
 * an event line, hashed with its own kind. */
static int check_any(Import *im, const char *line, long long *n, crypto_generichash_state *hash,
		     crypto_generichash_state *keys_hash)
{
	char why[256];
	int key = *n == 0 ? vc_plan_parse_line(&im->keys, line, why, sizeof(why)) : 0;
	if (key < 0) {
		snprintf(im->why, sizeof(im->why), "line %lld: %s", im->key_lines + 1, why);
		return -1;
	}
	if (key == 0 && check_line(im, line, strlen(line), (*n)++) < 0)
		return -1;
	/* after the first event (the tenant known), every key line read */
	if (key == 0 && *n == 1 && im->key_lines > 0) {
		if (vc_plan_init(&im->plan, &im->keys, im->tenant, why, sizeof(why)) < 0) {
			snprintf(im->why, sizeof(im->why), "%s", why);
			return -1;
		}
		im->planned = true;
	}
	crypto_generichash_state *h = key ? keys_hash : hash;
	if (key)
		im->key_lines++;
	crypto_generichash_update(h, (const unsigned char *)line, strlen(line));
	crypto_generichash_update(h, (const unsigned char *)"\n", 1);
	return 0;
}

/* The check pass over the whole file: lines, trailer, digests, keys. */
static int check_file(Import *im)
{
	crypto_generichash_state hash, keys_hash;
	unsigned char digest[crypto_generichash_BYTES];
	char hex[65], *last = NULL;
	long long n = 0;
	ssize_t len;
	crypto_generichash_init(&hash, NULL, 0, sizeof(digest));
	crypto_generichash_init(&keys_hash, NULL, 0, sizeof(digest));
	while ((len = getline(&im->line, &im->line_cap, im->in)) > 0) {
		if (last && check_any(im, last, &n, &hash, &keys_hash) < 0)
			goto fail;
		free(last);
		if (im->line[len - 1] == '\n')
			im->line[len - 1] = '\0';
		if (!(last = strdup(im->line)) || strlen(last) != strlen(im->line))
			goto fail;
	}
	crypto_generichash_final(&hash, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (!last || parse_trailer(im, last) < 0) {
		snprintf(im->why, sizeof(im->why), "no trailer: the file is incomplete");
		goto fail;
	}
	if (im->count != n || strcmp(im->digest, hex) != 0) {
		snprintf(im->why, sizeof(im->why), "the trailer says %lld event(s) and BLAKE2b %s; "
			 "the file has %lld and %s", im->count, im->digest, n, hex);
		goto fail;
	}
	if (n == 0) {
		snprintf(im->why, sizeof(im->why), "the file holds no event");
		goto fail;
	}
	if (check_keys(im, &keys_hash) < 0)
		goto fail;
	free(last);
	return 0;
fail:
	if (!im->why[0])
		snprintf(im->why, sizeof(im->why), "cannot read %s", im->o->file);
	free(last);
	return -1;
}

/* The batch body: {"import":..., "from":N, "events":["line", ...]} and,
 * after the events, the key records due in the batch (body_keys). */
static void body_start(Import *im, long long from)
{
	vp_buf_reset(&im->body);
	vp_buf_printf(&im->body, "{\"import\":\"%s\",\"from\":%lld,", im->digest, from);
	vp_buf_append(&im->body, "\"events\":[", 10);
}

/* The end of the body: "keys":[{"name","value"}...] of the plan's order[lo,
 * hi) and, with the tenant's record (due at 0: the batch from 0), the
 * transport key it is wrapped under. */
static void body_end(Import *im, long long from, size_t lo, size_t hi)
{
	vp_buf_append(&im->body, "]", 1);
	if (lo < hi) {
		vp_buf_append(&im->body, ",\"keys\":[", 9);
		for (size_t j = lo; j < hi; j++) {
			size_t i = im->plan.order[j];
			vp_buf_append(&im->body, j > lo ? ",{\"name\":" : "{\"name\":",
				      j > lo ? 9 : 8);
			vp_json_write_string(&im->body, im->keys.name[i]);
			vp_buf_append(&im->body, ",\"value\":", 9);
			vp_json_write_string(&im->body, im->keys.value[i]);
			vp_buf_append(&im->body, "}", 1);
		}
		vp_buf_append(&im->body, "]", 1);
		if (from == 0 && im->transport)
			vp_buf_printf(&im->body, ",\"transport_key\":\"%s\"", im->transport);
	}
	vp_buf_append(&im->body, "}", 1);
}

/* `from` of an IMPORT_POSITION answer's detail ("must be N"), or -1. */
static long long position_of(const char *body)
{
	long long at = -1;
	cJSON *root = cJSON_Parse(body ? body : "");
	const cJSON *details = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(root, "error"), "details");
	const cJSON *d;
	cJSON_ArrayForEach(d, details) {
		const char *field = vp_json_str(d, "field"), *issue = vp_json_str(d, "issue");
		if (field && issue && !strcmp(field, "from"))
			sscanf(issue, "must be %lld", &at);
	}
	cJSON_Delete(root);
	return at;
}

/* Sends the body until the writer answers it: *next where the import stands
 * (200, or 409 IMPORT_POSITION when a batch must start elsewhere). 0, or -1
 * with why (refused, or no answer within --retry-s). */
static int send_batch(Import *im, long long *next)
{
	int64_t deadline = vp_time_mono_us() + im->o->retry_s * VP_US_PER_SEC;
	for (;;) {
		VcHttpReply reply;
		int rc = vc_http_post(im->http, im->path, im->body.data, im->body.len, &reply);
		cJSON *root = rc == 0 && reply.status == 200 ? cJSON_Parse(reply.body) : NULL;
		long long at = -1;
		if (root && vp_json_int(root, "next", &at)) {
			*next = at;
		} else if (rc == 0 && reply.status == 409 && (at = position_of(reply.body)) >= 0) {
			*next = at;
		} else if (rc == 0 && reply.status != 0 && reply.status != 503 && reply.status != 429) {
			snprintf(im->why, sizeof(im->why), "the writer answered %d: %.400s",
				 reply.status, reply.body ? reply.body : "");
			at = -2;
		}
		int wait_s = rc == 0 && reply.retry_after_s > 0 ? reply.retry_after_s : 1;
		cJSON_Delete(root);
		vc_http_reply_release(&reply);
		if (at >= 0)
			return 0;
		if (at == -2)
			return -1;
		if (vp_time_mono_us() + wait_s * VP_US_PER_SEC > deadline) {
			snprintf(im->why, sizeof(im->why), "no answer from %s for %ld s",
				 im->o->writer, im->o->retry_s);
			return -1;
		}
		fprintf(stderr, "import: the writer is not answering (status %d); again in %d s\n",
			rc == 0 ? reply.status : 0, wait_s);
		sleep((unsigned)wait_s);
	}
}

/* Positions the file at event `at` (0-based): from the start, skipping. */
static int seek_event(Import *im, long long at)
{
	rewind(im->in);
	for (long long i = 0; i < im->key_lines + at; i++)
		if (getline(&im->line, &im->line_cap, im->in) <= 0)
			return -1;
	return 0;
}

/* Reads the batch starting at event `at` (the file is there) into im->body,
 * with the key records due in it, counted in its bytes: its number of
 * events, or -1 when the file cannot be read. */
static long long build_batch(Import *im, long long at)
{
	long long n = 0;
	size_t lo = 0, hi = 0, key_bytes = 0;
	if (im->planned)
		vc_plan_range(&im->plan, at, at, &lo, &hi); /* the first due at or after `at` */
	body_start(im, at);
	while (at + n < im->count && n < im->o->batch) {
		long pos = ftell(im->in);
		ssize_t len = getline(&im->line, &im->line_cap, im->in);
		if (len <= 0)
			return -1;
		im->line[len - 1] = '\0';
		size_t mark = im->body.len, end = hi;
		size_t more = im->planned ? vc_plan_due_at(&im->plan, at + n, &end) : 0;
		vp_buf_append(&im->body, n ? "," : "", n ? 1 : 0);
		vp_json_write_string(&im->body, im->line);
		if (im->body.len + key_bytes + more + BODY_ROOM > BATCH_BYTES && n > 0) {
			im->body.len = mark; /* over: the next batch's first */
			im->body.data[mark] = '\0';
			fseek(im->in, pos, SEEK_SET);
			break;
		}
		key_bytes += more;
		hi = end;
		n++;
	}
	body_end(im, at, lo, hi);
	return im->body.oom ? -1 : n;
}

/* A batch in flight on the connection of the same index. */
typedef struct Flight {
	long long from, n;
	long offset; /* of its first line in the file */
	VcHttpReply reply;
	bool busy;
} Flight;

/* What an answer says: 1 the batch landed (the import stands right after
 * it, so every batch before it landed too: the writer appends only where the
 * import stands), 0 the window must be drained and the position asked again
 * (the batch overtook an earlier one, the writer could not take it now, or
 * stands elsewhere), -1 refused for good (im->why). */
static int judge(Import *im, const Flight *f, int *wait_s)
{
	const VcHttpReply *r = &f->reply;
	cJSON *root = r->status == 200 ? cJSON_Parse(r->body ? r->body : "") : NULL;
	long long next = -1;
	int verdict = 0;
	if (root && vp_json_int(root, "next", &next)) {
		verdict = next == f->from + f->n;
	} else if (r->status == 0 || r->status == 503 || r->status == 429) {
		*wait_s = r->retry_after_s > 0 ? r->retry_after_s : 1;
		fprintf(stderr, "import: the writer did not take a batch (status %d); again in "
				"%d s\n", r->status, *wait_s);
	} else if (r->status != 409 || position_of(r->body) < 0) {
		snprintf(im->why, sizeof(im->why), "the writer answered %d: %.400s", r->status,
			 r->body ? r->body : "");
		verdict = -1;
	}
	cJSON_Delete(root);
	return verdict;
}

/* After a drain: where the writer says the import stands, the file put
 * there (at a batch's first line when one started there, else by skipping
 * from the start). */
static int resync(Import *im, const Flight *flights, int w, long long *at)
{
	long long next;
	body_start(im, *at);
	body_end(im, *at, 0, 0);
	if (send_batch(im, &next) < 0)
		return -1;
	for (int s = 0; s < w; s++)
		if (flights[s].n > 0 && flights[s].from == next)
			return fseek(im->in, flights[s].offset, SEEK_SET) == 0 ? (*at = next, 0) : -1;
	*at = next;
	return seek_event(im, next);
}

/* The events from `start` on, with up to --in-flight batches in flight, each
 * on a connection of its own. The writer appends a batch only where the
 * import stands, so order is kept by the writer, not by the network: a batch
 * that overtakes an earlier one is refused (IMPORT_POSITION) and, like any
 * batch not taken, makes vetctl stop sending, wait for every answer, ask
 * where the import stands and go on from there — no gap, nothing twice. */
static int send_events(Import *im, long long start)
{
	Flight flights[VC_HTTP_MAX_CONNS];
	int w = (int)im->o->in_flight, busy = 0, wait_s = 0, rc = -1;
	long long at = start, landed = start;
	bool drain = false;
	int64_t progress_us = vp_time_mono_us();
	VcProgress progress;
	char position[48] = "";
	memset(flights, 0, sizeof(flights));
	vc_progress_start(&progress, "import", im->count - start);
	if (seek_event(im, at) < 0)
		return -1;
	while (landed < im->count) {
		for (int s = 0; s < w && !drain && at < im->count; s++) {
			Flight *f = &flights[s];
			if (f->busy)
				continue;
			f->offset = ftell(im->in);
			f->from = at;
			if ((f->n = build_batch(im, at)) <= 0)
				goto done;
			if (vc_http_send(im->http, s, im->path, im->body.data, im->body.len,
					 &f->reply) < 0) {
				snprintf(im->why, sizeof(im->why), "cannot send to %s", im->o->writer);
				goto done;
			}
			f->busy = true;
			busy++;
			at += f->n;
		}
		if (busy == 0) { /* drained: ask where the import stands */
			if (vp_time_mono_us() - progress_us > im->o->retry_s * VP_US_PER_SEC) {
				snprintf(im->why, sizeof(im->why), "no batch taken by %s for %ld s",
					 im->o->writer, im->o->retry_s);
				goto done;
			}
			sleep((unsigned)wait_s);
			if (resync(im, flights, w, &at) < 0)
				goto done;
			fprintf(stderr, "import: a batch was not taken; going on from event %lld, "
					"where the writer stands\n", at);
			landed = at;
			drain = false;
			wait_s = 0;
			continue;
		}
		if (vc_http_wait(im->http) < 0) {
			snprintf(im->why, sizeof(im->why), "the HTTP client's event loop failed");
			goto done;
		}
		for (int s = 0; s < w; s++) {
			Flight *f = &flights[s];
			if (!f->busy || !f->reply.done)
				continue;
			int verdict = judge(im, f, &wait_s);
			f->busy = false;
			busy--;
			vc_http_reply_release(&f->reply);
			if (verdict < 0)
				goto done;
			if (verdict == 0)
				drain = true;
			else if (f->from + f->n > landed) {
				landed = f->from + f->n;
				progress_us = vp_time_mono_us();
			}
		}
		snprintf(position, sizeof(position), "event %lld of %lld", landed, im->count);
		vc_progress_report(&progress, landed - start, position, false);
	}
	vc_progress_report(&progress, landed - start, position, true);
	rc = 0;
done:
	/* answers still on their way are dropped with the connections
	 * (vc_http_free), never written into flights after this returns */
	for (int s = 0; s < w; s++)
		vc_http_reply_release(&flights[s].reply);
	return rc;
}

static int run_import(Import *im)
{
	long long next = 0;
	if (!(im->in = fopen(im->o->file, "r"))) {
		snprintf(im->why, sizeof(im->why), "cannot open %s", im->o->file);
		return -1;
	}
	if (check_file(im) < 0)
		return -1;
	fprintf(stderr, "%s: %lld event(s) of tenant %s, BLAKE2b %s: checked\n", im->o->file,
		im->count, im->tenant, im->digest);
	if (im->o->dry_run) {
		fprintf(stderr, "dry run: nothing sent\n");
		return 0;
	}
	snprintf(im->path, sizeof(im->path), "/v1/ops/tenants/%s/import", im->tenant);
	im->http = vc_http_new(im->o->writer, im->o->token, 60, (int)im->o->in_flight, im->why,
			       sizeof(im->why));
	if (!im->http)
		return -1;
	body_start(im, 0);
	body_end(im, 0, 0, 0);
	if (send_batch(im, &next) < 0) /* where does the import of this file stand? */
		return -1;
	if (next > 0)
		fprintf(stderr, "import: resuming at event %lld of %lld\n", next, im->count);
	if (next < im->count && send_events(im, next) < 0) {
		if (!im->why[0])
			snprintf(im->why, sizeof(im->why), "cannot read %s", im->o->file);
		return -1;
	}
	fprintf(stderr, "imported tenant %s: %lld event(s) in the log\n", im->tenant, im->count);
	return 0;
}

int vc_tenant_import(int argc, char **argv)
{
	ImportOptions o = {0};
	Import im = {.o = &o};
	const VpConfigItem items[] = {
		VP_CF_STR("file", NULL, &o.file, "", "the export file"),
		VP_CF_STR("writer", "VETPMS_WRITER_URL", &o.writer, "http://127.0.0.1:8080",
			  "the target deployment's writer (the instance owning the tenant)"),
		VP_CF_STR("token", "VETPMS_TOKEN", &o.token, "",
			  "bearer token with the platform-ops role and no tenant"),
		VP_CF_INT("batch", NULL, &o.batch, "2000", 1, 5000, "events per request (one "
								  "transaction), at most 1000 KiB"),
		VP_CF_INT("in-flight", NULL, &o.in_flight, "1", 1, VC_HTTP_MAX_CONNS,
			  "batches sent before the first is answered, each on a connection"),
		VP_CF_INT("retry-s", NULL, &o.retry_s, "120", 1, 86400,
			  "how long to retry a batch the writer does not answer"),
		VP_CF_BOOL("dry-run", NULL, &o.dry_run, "false", "check the file, send nothing"),
		VP_CF_STR("key-file", NULL, &o.key_file, "",
			  "the transport key of the export (mode 0600)"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	int rc = vp_config_load(items, n, argc, argv, "vetctl tenant import", NULL, im.why,
				sizeof(im.why));
	if (rc == 0 && (!*o.file || (!o.dry_run && !*o.token))) {
		snprintf(im.why, sizeof(im.why), "--file and --token are required");
		rc = -1;
	}
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "vetctl: %s\n%s", im.why, usage);
		vp_config_free(items, n);
		return rc < 0 ? 2 : 0;
	}
	/* room for one line over BATCH_BYTES: send_events takes it back */
	vp_buf_init(&im.body, 2 * BATCH_BYTES + 4096);
	rc = run_import(&im) == 0 ? 0 : 1;
	if (rc)
		fprintf(stderr, "vetctl: tenant import: %s\n", im.why);
	if (im.in)
		fclose(im.in);
	vc_http_free(im.http);
	if (im.body.data) /* it held the transport key */
		sodium_memzero(im.body.data, im.body.cap);
	vp_buf_free(&im.body);
	vc_plan_release(&im.plan);
	vc_keys_release(&im.keys);
	vc_transport_text_free(im.transport);
	free(im.line);
	vp_config_free(items, n);
	return rc;
}
