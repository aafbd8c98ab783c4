/* vetctl keys (docs/privacy.md, "Key operations"):
 *   keys new-master --out FILE      a new master key in a file only its owner
 *                                   reads (never printed)
 *   keys rotate-master              rewraps every tenant key of the keys topic
 *                                   under the new master key, in one Kafka
 *                                   transaction; events and client keys are not
 *                                   touched (client keys are wrapped under
 *                                   their tenant key, which does not change)
 *   keys status                     how many key records each master key still
 *                                   wraps (keys_status.h): when the old one may
 *                                   be destroyed
 * The master keys come as the daemons read them (vp_master_keys_load). The
 * rotation goes from the previous key to the current one, with the daemons'
 * settings of the rotation (current = NEW, previous = OLD); or, the older
 * form, from the current key to --new-key-file's. Both at once is refused:
 * which key is old would be a guess. A tenant key already under the new key
 * is left (a rotation run twice, or resumed, changes nothing more); one under
 * neither key stops the rotation before anything is written. The keys
 * topic's master record (which key the daemons must hold) is rewritten to
 * name the new key in the same transaction, or recorded if there is none. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "keys_status.h"
#include "tenant_keys.h"
#include "vetctl.h"
#include "vp_config.h"
#include "vp_json.h"
#include "vp_kafka.h"
#include "vp_keyrec_partition.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"


typedef struct KeysOptions {
	char *brokers;
	char *keys_topic;
	char *kafka_props;
	char *master_key_file;
	char *master_key_previous_file;
	char *new_key_file;
	char *out;
} KeysOptions;

/* keys new-master: 32 random bytes as base64url into a new 0600 file. */
static int new_master(const KeysOptions *o)
{
	unsigned char bytes[VP_KEY_BYTES];
	char text[64];
	if (!*o->out) {
		fprintf(stderr, "vetctl: keys new-master needs --out FILE (the key is never "
				"printed)\n");
		return 2;
	}
	int fd = open(o->out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "vetctl: %s: %s\n", o->out, strerror(errno));
		return 1;
	}
	randombytes_buf(bytes, sizeof(bytes));
	sodium_bin2base64(text, sizeof(text), bytes, sizeof(bytes),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t len = strlen(text);
	text[len++] = '\n';
	int rc = write(fd, text, len) == (ssize_t)len && close(fd) == 0 ? 0 : 1;
	sodium_memzero(bytes, sizeof(bytes));
	sodium_memzero(text, sizeof(text));
	if (rc) {
		fprintf(stderr, "vetctl: %s: cannot write the key\n", o->out);
		unlink(o->out);
	} else
		fprintf(stderr, "new master key written to %s\n", o->out);
	return rc;
}

/* A tenant key record, or the master record: what a rotation rewrites. */
static bool tenant_record(const char *name, size_t len, const void *arg)
{
	(void)arg;
	return (len > strlen(VP_KEYREC_TENANT ":") &&
		!memcmp(name, VP_KEYREC_TENANT ":", strlen(VP_KEYREC_TENANT ":"))) ||
	       vp_keyrec_is_master(name, len);
}

/* Reads the keys topic to its end; the latest record of each tenant key
 * name (and of the master record) into t, in topic order. */
static int read_tenant_records(const KeysOptions *o, VcKeyLines *t)
{
	char why[512];
	if (vc_keys_read(o->brokers, o->kafka_props, o->keys_topic, "vetctl-keys", tenant_record,
			 NULL, t, why, sizeof(why)) < 0) {
		fprintf(stderr, "vetctl: %s\n", why);
		return -1;
	}
	return 0;
}

/* A rotation's keys: every tenant key under `from` is rewrapped under `to`.
 * The labels say which setting each came from, in messages. */
typedef struct Rotation {
	VpMasterKeys held; /* the current key and the previous one (if given) */
	VpKey *new_key;    /* --new-key-file's (the older form) */
	const VpKey *from, *to;
	const char *from_label, *to_label;
	char from_id[VP_KEY_ID_CHARS + 1], to_id[VP_KEY_ID_CHARS + 1];
} Rotation;

/* The tenant key record name rewrapped under r->to (NULL when it already is;
 * *failed with the reason printed when it is under neither key). */
static char *rewrap(const char *name, const char *value, const Rotation *r, bool *failed)
{
	char why[384];
	cJSON *v = value ? cJSON_Parse(value) : NULL;
	const char *kek = vp_json_str(v, "kek_id");
	char *out = NULL;
	if (kek && !strcmp(kek, r->to_id)) {
		cJSON_Delete(v);
		return NULL;
	}
	VpKey *key = kek && !strcmp(kek, r->from_id)
			     ? vp_key_unwrap(r->from, vp_json_str(v, "wrapped"), name, why,
					     sizeof(why))
			     : NULL;
	if (!key)
		fprintf(stderr, "vetctl: %s: under master key %s, neither the %s %s nor the "
				"%s %s%s%s\n",
			name, kek ? kek : "(none)", r->from_label, r->from_id, r->to_label,
			r->to_id, kek ? "" : ": ", kek ? "" : "not a key record");
	else if (!(out = vp_keyrec_value(r->to, key, name, vp_time_now_us(), why, sizeof(why))))
		fprintf(stderr, "vetctl: %s: %s\n", name, why);
	*failed = !out;
	vp_key_free(key);
	cJSON_Delete(v);
	return out;
}

/* The master record naming r->to (docs/privacy.md, "Start-up refusal"):
 * NULL when the one at m already does; a new one when there is none (m < 0)
 * or it names r->from; *failed with the reason printed when it names neither
 * (nothing is written then, as for a tenant key). */
static char *master_rewritten(const VcKeyLines *t, long m, const Rotation *r, bool *failed)
{
	cJSON *v = m >= 0 && t->value[m] ? cJSON_Parse(t->value[m]) : NULL;
	const char *kek = vp_json_str(v, "kek_id");
	char *out = NULL;
	if (m >= 0 && kek && !strcmp(kek, r->to_id)) {
		cJSON_Delete(v);
		return NULL;
	}
	if (m >= 0 && t->value[m] && (!kek || strcmp(kek, r->from_id) != 0)) {
		fprintf(stderr, "vetctl: the master record names master key %s, neither the %s %s "
				"nor the %s %s\n",
			kek ? kek : "(none)", r->from_label, r->from_id, r->to_label, r->to_id);
		*failed = true;
	} else if (!(out = vp_keyrec_master_value(r->to_id, vp_time_now_us()))) {
		fprintf(stderr, "vetctl: out of memory\n");
		*failed = true;
	}
	cJSON_Delete(v);
	return out;
}

/* Produces the rewrapped records (and master, unless NULL, on its own
 * partition) in one transaction: all or none. */
static int produce_all(const KeysOptions *o, const Rotation *r, VcKeyLines *t, char **rewrapped,
		       size_t n, char *master)
{
	char why[512];
	rd_kafka_conf_t *conf = vp_kafka_conf_new(o->brokers, "vetctl-keys", o->kafka_props, why,
						  sizeof(why));
	if (!conf || vp_kafka_conf_set(conf, "transactional.id", "vetpms-keys-rotate", why,
				       sizeof(why)) < 0) {
		fprintf(stderr, "vetctl: %s\n", why);
		return -1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "vetctl: %s\n", why);
		return -1;
	}
	int partitions = 0;
	rd_kafka_error_t *error = rd_kafka_init_transactions(rk, 30000);
	if (!error && (vp_kafka_probe(rk, o->keys_topic, 5000, &partitions) < 0 || partitions <= 0))
		error = rd_kafka_error_new(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "keys topic %s not found",
					   o->keys_topic);
	if (!error)
		error = rd_kafka_begin_transaction(rk);
	if (!error && master) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(o->keys_topic),
			RD_KAFKA_V_PARTITION(VP_KEYREC_MASTER_PARTITION),
			RD_KAFKA_V_KEY(VP_KEYREC_MASTER_NAME, strlen(VP_KEYREC_MASTER_NAME)),
			RD_KAFKA_V_VALUE(master, strlen(master)), RD_KAFKA_V_END);
		if (err)
			error = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
	}
	for (size_t i = 0; !error && i < t->n; i++) {
		if (!rewrapped[i])
			continue;
		/* on the tenant's partition, where the writer put the record it
		 * replaces (vp_keyrec_partition): the newer one is read after it,
		 * and compaction (per partition) keeps it */
		int partition = vp_keyrec_partition(t->name[i], partitions);
		if (partition < 0) {
			error = rd_kafka_error_new(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
						   "no partition for %s", t->name[i]);
			break;
		}
		rd_kafka_resp_err_t err = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(o->keys_topic), RD_KAFKA_V_PARTITION(partition),
			RD_KAFKA_V_KEY(t->name[i], strlen(t->name[i])),
			RD_KAFKA_V_VALUE(rewrapped[i], strlen(rewrapped[i])), RD_KAFKA_V_END);
		if (err)
			error = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
	}
	if (!error)
		error = rd_kafka_commit_transaction(rk, 60000);
	int rc = 0;
	if (error) {
		fprintf(stderr, "vetctl: nothing rewrapped: %s\n", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		rc = -1;
	} else
		fprintf(stderr, "rewrapped %zu tenant key(s) under the %s master key %s%s\n", n,
			r->to_label, r->to_id,
			master ? "; the keys topic's master record names it" : "");
	rd_kafka_destroy(rk);
	return rc;
}

/* r's keys from the settings: 0, or the exit status with the reason
 * printed (nothing is read or written then). */
static int rotation_keys(const KeysOptions *o, Rotation *r)
{
	char why[512];
	VpMasterFiles files = {o->master_key_file, o->master_key_previous_file};
	if (vp_master_keys_load(&files, &r->held, why, sizeof(why)) < 0) {
		fprintf(stderr, "vetctl: %s\n", why);
		return 1;
	}
	if (*o->new_key_file && r->held.previous) {
		fprintf(stderr, "vetctl: keys rotate-master: --new-key-file and a previous master "
				"key (VETPMS_MASTER_KEY_PREVIOUS_FILE / VETPMS_MASTER_KEY_PREVIOUS) "
				"together: which key is the old one? Give the daemons' settings "
				"(current = the new key, previous = the old one) without "
				"--new-key-file, or the old key as current with --new-key-file\n");
		return 2;
	}
	if (*o->new_key_file) {
		if (!(r->new_key = vp_key_master_load(o->new_key_file, NULL, why, sizeof(why)))) {
			fprintf(stderr, "vetctl: %s\n", why);
			return 1;
		}
		r->from = r->held.current;
		r->to = r->new_key;
		r->from_label = "current";
		r->to_label = "new";
	} else if (r->held.previous) {
		r->from = r->held.previous;
		r->to = r->held.current;
		r->from_label = "previous";
		r->to_label = "current";
	} else {
		fprintf(stderr, "vetctl: keys rotate-master needs the old master key: as the "
				"daemons hold it during the rotation, current = the new key and "
				"VETPMS_MASTER_KEY_PREVIOUS_FILE (or --master-key-previous-file) = "
				"the old one; or --new-key-file NEW with the old key as current\n");
		return 2;
	}
	vp_key_id(r->from, r->from_id);
	vp_key_id(r->to, r->to_id);
	return 0;
}

static void rotation_release(Rotation *r)
{
	vp_master_keys_free(&r->held);
	r->new_key = vp_key_free(r->new_key);
}

/* What to do next, once every tenant's newest record is under r->to. */
static void after_rotation(const Rotation *r)
{
	if (r->new_key)
		fprintf(stderr, "restart cmd-writer, projector and query-reader with the new master "
				"key now: one holding the old key stops at its next start\n");
	else
		fprintf(stderr, "restart cmd-writer, projector and query-reader with the current "
				"master key alone now (no previous key); destroy the previous one "
				"(%s) once `vetctl keys status` shows no record under it\n",
			r->from_id);
}

static int rotate_master(const KeysOptions *o)
{
	Rotation r = {0};
	VcKeyLines t = {0};
	char **rewrapped = NULL, *master = NULL;
	size_t n = 0;
	bool failed = false;
	int rc = rotation_keys(o, &r);
	if (rc != 0)
		goto done;
	rc = 1;
	if (read_tenant_records(o, &t) < 0)
		goto done;
	long m = -1; /* the master record's index */
	for (size_t i = 0; i < t.n; i++)
		if (vp_keyrec_is_master(t.name[i], strlen(t.name[i])))
			m = (long)i;
	rewrapped = calloc(t.n + 1, sizeof(*rewrapped));
	for (size_t i = 0; rewrapped && i < t.n && !failed; i++) {
		if ((long)i == m)
			continue;
		rewrapped[i] = rewrap(t.name[i], t.value[i], &r, &failed);
		n += rewrapped[i] != NULL;
	}
	master = rewrapped && !failed ? master_rewritten(&t, m, &r, &failed) : NULL;
	if (!rewrapped || failed)
		goto done;
	if (n == 0 && !master) {
		fprintf(stderr, "every tenant key (%zu) is already under the %s master key %s\n",
			t.n - (m >= 0), r.to_label, r.to_id);
		rc = 0;
	} else
		rc = produce_all(o, &r, &t, rewrapped, n, master) < 0 ? 1 : 0;
	if (rc == 0)
		after_rotation(&r);
done:
	for (size_t i = 0; rewrapped && i < t.n; i++)
		free(rewrapped[i]);
	free(rewrapped);
	free(master);
	vc_keys_release(&t);
	rotation_release(&r);
	return rc;
}

/* Whether a master key was given at all (a file, or the environment). */
static bool master_given(const KeysOptions *o)
{
	const char *env = getenv("VETPMS_MASTER_KEY"), *prev = getenv("VETPMS_MASTER_KEY_PREVIOUS");
	return *o->master_key_file || *o->master_key_previous_file || (env && *env) ||
	       (prev && *prev);
}

static int take_status(void *arg, const char *name, size_t name_len, const char *value,
		       size_t value_len)
{
	return vc_status_take(arg, name, name_len, value, value_len);
}

/* keys status: the keys topic read to its end, every tenant key record
 * counted under the master key it names (keys_status.h), printed as one
 * JSON line on stdout; the ids of the keys held (if given: none is needed)
 * among them. */
static int status(const KeysOptions *o)
{
	char why[512], current_id[VP_KEY_ID_CHARS + 1] = "", previous_id[VP_KEY_ID_CHARS + 1] = "";
	VpMasterFiles files = {o->master_key_file, o->master_key_previous_file};
	VpMasterKeys held = {NULL, NULL};
	VcKeysStatus s = {0};
	char *json = NULL;
	int rc = 1;
	if (master_given(o) && vp_master_keys_load(&files, &held, why, sizeof(why)) < 0) {
		fprintf(stderr, "vetctl: %s\n", why);
		return 1;
	}
	if (held.current)
		vp_key_id(held.current, current_id);
	if (held.previous)
		vp_key_id(held.previous, previous_id);
	vp_master_keys_free(&held); /* the ids are all status needs */
	if (vc_keys_scan(o->brokers, o->kafka_props, o->keys_topic, "vetctl-keys-status",
			 take_status, &s, why, sizeof(why)) < 0)
		fprintf(stderr, "vetctl: %s\n", why);
	else if (!(json = vc_status_json(&s, o->keys_topic, *current_id ? current_id : NULL,
					 *previous_id ? previous_id : NULL)))
		fprintf(stderr, "vetctl: out of memory\n");
	else
		rc = printf("%s\n", json) < 0 || fflush(stdout) != 0;
	free(json);
	vc_status_release(&s);
	return rc;
}

int vc_cmd_keys(int argc, char **argv)
{
	KeysOptions o = {0};
	char why[512];
	const VpConfigItem items[] = {
		VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &o.brokers, "127.0.0.1:59092",
			  "Kafka bootstrap servers"),
		VP_CF_STR("keys-topic", "VETPMS_KEYS_TOPIC", &o.keys_topic, VP_TOPIC_KEYS_DEFAULT,
			  "keys topic"),
		VP_CF_STR("kafka-props", "VETPMS_KAFKA_PROPS", &o.kafka_props, "",
			  "extra librdkafka properties a=b,c=d"),
		VP_CF_STR("master-key-file", "VETPMS_MASTER_KEY_FILE", &o.master_key_file, "",
			  "the current master key's file; else the environment's VETPMS_MASTER_KEY "
			  "(status: optional, its id is shown)"),
		VP_CF_STR("master-key-previous-file", "VETPMS_MASTER_KEY_PREVIOUS_FILE",
			  &o.master_key_previous_file, "",
			  "rotate-master: the master key being replaced, as the daemons hold it "
			  "during the rotation (else VETPMS_MASTER_KEY_PREVIOUS); status: its id "
			  "is shown"),
		VP_CF_STR("new-key-file", NULL, &o.new_key_file, "",
			  "rotate-master, with the old key as current: the new master key's file "
			  "(not with a previous key)"),
		VP_CF_STR("out", NULL, &o.out, "", "new-master: the file to create (mode 0600)"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	if (argc < 2 || (strcmp(argv[1], "new-master") != 0 && strcmp(argv[1], "rotate-master") &&
			 strcmp(argv[1], "status"))) {
		fprintf(stderr, "usage: vetctl keys new-master --out FILE | rotate-master "
				"[--new-key-file FILE] | status [options] (--help)\n");
		return 2;
	}
	int loaded = vp_config_load(items, n, argc - 1, argv + 1, "vetctl keys", NULL, why,
				    sizeof(why));
	int rc;
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		rc = loaded < 0 ? 2 : 0;
	} else if (!strcmp(argv[1], "new-master"))
		rc = new_master(&o);
	else if (!strcmp(argv[1], "status"))
		rc = status(&o);
	else
		rc = rotate_master(&o);
	vp_config_free(items, n);
	return rc;
}
