/* librdkafka helpers (see vp_kafka.h). */
#include "vp_kafka.h"
#include "vp_log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
		      size_t why_cap)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		snprintf(why, why_cap, "kafka option %s=%s: %s", name, value, errstr);
		return -1;
	}
	return 0;
}

/* Where the value starting at v ends: at the first comma that a name=value
 * segment follows (one with '=' before its own next comma), else at the end.
 * So a list value keeps its commas: "debug=eos,broker,linger.ms=5" is
 * debug=eos,broker and linger.ms=5. A number is never a list, and librdkafka
 * takes "7,oops" as 7: a stray word after one stays an error of its own. */
static char *value_end(char *v)
{
	if (isdigit((unsigned char)*v) || *v == '-') {
		char *comma = strchr(v, ',');
		return comma ? comma : v + strlen(v);
	}
	for (char *c = strchr(v, ','); c; c = strchr(c + 1, ',')) {
		char *eq = strchr(c + 1, '='), *comma = strchr(c + 1, ',');
		if (eq && (!comma || eq < comma))
			return c;
	}
	return v + strlen(v);
}

/* Applies "a=b,c=d"; a value may be a comma-separated list (librdkafka's
 * debug contexts) but may not hold '=' itself. */
static int apply_extra(rd_kafka_conf_t *conf, const char *extra, char *why, size_t why_cap)
{
	int rc = -1;
	char *copy = strdup(extra);
	if (!copy) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	char *cursor = copy;
	while (cursor && *cursor) {
		char *eq = strchr(cursor, '='), *comma = strchr(cursor, ',');
		if (!eq || eq == cursor || (comma && comma < eq)) {
			if (comma)
				*comma = '\0';
			snprintf(why, why_cap, "kafka option '%s' is not name=value", cursor);
			goto done;
		}
		*eq = '\0';
		char *end = value_end(eq + 1);
		char *next = *end ? end + 1 : NULL;
		*end = '\0';
		if (vp_kafka_conf_set(conf, cursor, eq + 1, why, why_cap) < 0)
			goto done;
		cursor = next;
	}
	rc = 0;
done:
	free(copy);
	return rc;
}

/* librdkafka's own messages join the structured log instead of raw stderr. */
static void log_to_vp(const rd_kafka_t *rk, int level, const char *facility, const char *message)
{
	(void)rk;
	VpLogLevel ours = level <= 3 ? VP_LOG_ERROR : level == 4 ? VP_LOG_WARN
					: level <= 6 ? VP_LOG_INFO : VP_LOG_DEBUG;
	vp_log_write(ours, NULL, "librdkafka", "%s: %s", facility, message);
}

rd_kafka_conf_t *vp_kafka_conf_new(const char *brokers, const char *client_id, const char *extra,
				   char *why, size_t why_cap)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, log_to_vp);
	if (vp_kafka_conf_set(conf, "bootstrap.servers", brokers, why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "client.id", client_id, why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "socket.nagle.disable", "true", why, why_cap) < 0 ||
	    /* While Kafka is away each broker handle's reconnect backoff doubles
	     * up to this, and a handle is not woken when the broker is back: with
	     * librdkafka's 10 s the writer's commit in flight (docs/testing.md,
	     * "The writer after a Kafka restart") and the projector's group
	     * coordinator connection waited up to 10 s after the broker took
	     * connections again. A connection attempt a second per broker while
	     * one is down costs nothing. Before extra: ops may set it. */
	    vp_kafka_conf_set(conf, "reconnect.backoff.max.ms", VP_KAFKA_RECONNECT_BACKOFF_MAX_MS,
			      why, why_cap) < 0 ||
	    (extra && *extra && apply_extra(conf, extra, why, why_cap) < 0)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

char *vp_kafka_props_join(const char *defaults, const char *extra)
{
	size_t cap = strlen(defaults) + 1 + (extra ? strlen(extra) : 0) + 1;
	char *props = malloc(cap);
	if (props)
		snprintf(props, cap, "%s%s%s", defaults, extra && *extra ? "," : "",
			 extra ? extra : "");
	return props;
}

rd_kafka_conf_t *vp_kafka_consumer_conf_new(const char *brokers, const char *client_id,
					    const char *group, const char *extra, char *why,
					    size_t why_cap)
{
	rd_kafka_conf_t *conf = vp_kafka_conf_new(brokers, client_id, extra, why, why_cap);
	if (!conf)
		return NULL;
	if (vp_kafka_conf_set(conf, "group.id", group, why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "isolation.level", "read_committed", why, why_cap) < 0 ||
	    vp_kafka_conf_set(conf, "enable.auto.commit", "false", why, why_cap) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

static rd_kafka_t *reader_new(const char *brokers, const char *client_id, const char *group,
			      const char *props, bool quiet, char *why, size_t why_cap)
{
	rd_kafka_conf_t *conf =
		vp_kafka_consumer_conf_new(brokers, client_id, group, props, why, why_cap);
	if (!conf)
		return NULL;
	if (vp_kafka_conf_set(conf, "enable.partition.eof", "true", why, why_cap) < 0 ||
	    (quiet && vp_kafka_conf_set(conf, "log_level", "3", why, why_cap) < 0)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, why_cap);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	return rk;
}

rd_kafka_t *vp_kafka_log_reader_new(const char *brokers, const char *client_id, const char *group,
				    const char *extra, bool quiet, char *why, size_t why_cap)
{
	return reader_new(brokers, client_id, group, extra, quiet, why, why_cap);
}

rd_kafka_t *vp_kafka_once_reader_new(const char *brokers, const char *client_id,
				     const char *group, const char *extra, bool quiet, char *why,
				     size_t why_cap)
{
	/* The broker holds a fetch that finds nothing for fetch.wait.max.ms
	 * (500 by default) and answers the requests queued behind it on the
	 * same connection only then: a read's end of partition events, and the
	 * watermark queries made while a fetch was in flight, waited ~0.5 s
	 * each (docs/testing.md, "Daemon start-up waits"). A reader that stops
	 * at the end polls the broker this often only until it gets there. */
	char *props = vp_kafka_props_join("fetch.wait.max.ms=" VP_KAFKA_ONCE_FETCH_WAIT_MS, extra);
	if (!props) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	rd_kafka_t *rk = reader_new(brokers, client_id, group, props, quiet, why, why_cap);
	free(props);
	return rk;
}

int32_t vp_kafka_murmur2(const void *key, size_t len)
{
	const uint32_t seed = 0x9747b28cu;
	const uint32_t m = 0x5bd1e995u;
	const int r = 24;
	const unsigned char *data = key;
	uint32_t h = seed ^ (uint32_t)len;
	size_t n4 = len / 4;

	for (size_t i = 0; i < n4; i++) {
		/* Java reads each 4-byte block little-endian. */
		uint32_t k = (uint32_t)data[i * 4] | (uint32_t)data[i * 4 + 1] << 8 |
			     (uint32_t)data[i * 4 + 2] << 16 | (uint32_t)data[i * 4 + 3] << 24;
		k *= m;
		k ^= k >> r;
		k *= m;
		h *= m;
		h ^= k;
	}
	const unsigned char *tail = data + n4 * 4;
	switch (len & 3) {
	case 3:
		h ^= (uint32_t)tail[2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)tail[1] << 8;
		/* fall through */
	case 1:
		h ^= tail[0];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return (int32_t)h;
}

int vp_kafka_partition_for_key(const char *key, size_t len, int partition_cnt)
{
	if (partition_cnt <= 0)
		return -1;
	uint32_t positive = (uint32_t)vp_kafka_murmur2(key, len) & 0x7fffffffu;
	return (int)(positive % (uint32_t)partition_cnt);
}

int vp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partition_cnt)
{
	const struct rd_kafka_metadata *md = NULL;
	if (partition_cnt)
		*partition_cnt = 0;
	if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	int ok = md->broker_cnt > 0 ? 0 : -1;
	for (int i = 0; topic && partition_cnt && i < md->topic_cnt; i++)
		if (!strcmp(md->topics[i].topic, topic) && !md->topics[i].err)
			*partition_cnt = md->topics[i].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return ok;
}
