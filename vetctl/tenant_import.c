/* vetctl tenant import --file t.ndjson --writer URL --token JWT: loads a
 * `vetctl tenant export` file into another deployment through the writer's
 * ops route (cmd-writer/import.c). First the whole file is checked here: the
 * trailer's count and BLAKE2b, every line against the event catalog, one
 * tenant, provisioned by the first line; nothing is sent when it fails (and
 * --dry-run stops there). Then an empty batch asks the writer where the
 * import of this file stands (0, or how far an interrupted run got; another
 * tenant with that id is refused), and the rest goes in batches, each one
 * transaction. A batch whose answer was lost is sent again: the writer answers
 * it without appending it twice. Progress on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <sodium.h>

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
	bool dry_run;
} ImportOptions;

typedef struct Import {
	const ImportOptions *o;
	FILE *in;
	char tenant[37];
	char digest[65];
	long long count;
	VcHttp *http;
	char path[128];
	VpBuf body;
	char *line;
	size_t line_cap;
	char why[512];
} Import;

static const char usage[] =
	"usage: vetctl tenant import --file t.ndjson --writer http://HOST:PORT --token JWT\n"
	"                            [--batch N] [--retry-s S] [--dry-run]\n"
	"  the token needs the platform-ops role and no tenant (vetctl token --role platform-ops)\n";

/* The trailer line: 0 with its count and digest, else -1. */
static int parse_trailer(const char *line, long long *count, char digest[65])
{
	cJSON *root = cJSON_Parse(line);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "trailer");
	long long n;
	const char *hex = vp_json_str(t, "blake2b");
	int rc = t && vp_json_int(t, "count", &n) && hex && strlen(hex) == 64 ? 0 : -1;
	if (rc == 0) {
		*count = n;
		memcpy(digest, hex, 65);
	}
	cJSON_Delete(root);
	return rc;
}

/* The bytes line takes in a batch's body, as a JSON string with
 * vp_json_write_string's escapes (a control character's \u00XX at most). */
static size_t escaped_len(const char *line, size_t len)
{
	size_t n = len + 2;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		n += c == '"' || c == '\\' ? 1 : c < 0x20 ? 5 : 0;
	}
	return n;
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
	if (rc == 0 && escaped_len(line, len) + 128 > BATCH_BYTES)
		rc = -1, snprintf(im->why, sizeof(im->why), "line %lld: %zu bytes, more than one "
			 "import request carries", index + 1, len);
	vp_event_release(&ev);
	return rc;
}

/* The check pass over the whole file: lines, trailer, digest. */
static int check_file(Import *im)
{
	crypto_generichash_state hash;
	unsigned char digest[crypto_generichash_BYTES];
	char hex[65], *last = NULL;
	long long n = 0;
	ssize_t len;
	crypto_generichash_init(&hash, NULL, 0, sizeof(digest));
	while ((len = getline(&im->line, &im->line_cap, im->in)) > 0) {
		if (last && check_line(im, last, strlen(last), n++) < 0)
			goto fail;
		if (last) {
			crypto_generichash_update(&hash, (const unsigned char *)last, strlen(last));
			crypto_generichash_update(&hash, (const unsigned char *)"\n", 1);
		}
		free(last);
		if (im->line[len - 1] == '\n')
			im->line[len - 1] = '\0';
		if (!(last = strdup(im->line)) || strlen(last) != strlen(im->line))
			goto fail;
	}
	crypto_generichash_final(&hash, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (!last || parse_trailer(last, &im->count, im->digest) < 0) {
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
	free(last);
	return 0;
fail:
	if (!im->why[0])
		snprintf(im->why, sizeof(im->why), "cannot read %s", im->o->file);
	free(last);
	return -1;
}

/* The batch body: {"import":..., "from":N, "events":["line", ...]}. */
static void body_start(Import *im, long long from)
{
	vp_buf_reset(&im->body);
	vp_buf_printf(&im->body, "{\"import\":\"%s\",\"from\":%lld,\"events\":[", im->digest, from);
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
	for (long long i = 0; i < at; i++)
		if (getline(&im->line, &im->line_cap, im->in) <= 0)
			return -1;
	return 0;
}

static int send_events(Import *im, long long start)
{
	VcProgress progress;
	long long at = start, next = start;
	char position[48];
	vc_progress_start(&progress, "import", im->count - start);
	if (seek_event(im, at) < 0)
		return -1;
	while (at < im->count) {
		long long n = 0;
		body_start(im, at);
		while (at + n < im->count && n < im->o->batch) {
			long pos = ftell(im->in);
			ssize_t len = getline(&im->line, &im->line_cap, im->in);
			if (len <= 0)
				return -1;
			im->line[len - 1] = '\0';
			size_t mark = im->body.len;
			vp_buf_append(&im->body, n ? "," : "", n ? 1 : 0);
			vp_json_write_string(&im->body, im->line);
			if (im->body.len + 2 > BATCH_BYTES && n > 0) {
				im->body.len = mark; /* over: the next batch's first */
				im->body.data[mark] = '\0';
				fseek(im->in, pos, SEEK_SET);
				break;
			}
			n++;
		}
		vp_buf_append(&im->body, "]}", 2);
		if (im->body.oom || send_batch(im, &next) < 0)
			return -1;
		if (next != at + n && seek_event(im, next) < 0)
			return -1; /* the writer stands elsewhere: resume there */
		at = next;
		snprintf(position, sizeof(position), "event %lld of %lld", at, im->count);
		vc_progress_report(&progress, at - start, position, false);
	}
	vc_progress_report(&progress, at - start, position, true);
	return 0;
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
	im->http = vc_http_new(im->o->writer, im->o->token, 60, im->why, sizeof(im->why));
	if (!im->http)
		return -1;
	body_start(im, 0);
	vp_buf_append(&im->body, "]}", 2);
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
		VP_CF_INT("retry-s", NULL, &o.retry_s, "120", 1, 86400,
			  "how long to retry a batch the writer does not answer"),
		VP_CF_BOOL("dry-run", NULL, &o.dry_run, "false", "check the file, send nothing"),
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
	vp_buf_free(&im.body);
	free(im.line);
	vp_config_free(items, n);
	return rc;
}
