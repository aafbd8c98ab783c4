/* vetctl events tail: prints the envelopes of vetpms.events as a read_committed
 * consumer sees them, one JSON object per line, optionally only one tenant's or
 * one aggregate's; stops at the end of the log unless --follow.
 * vetctl events check: reads the same way and prints every record that fails
 * the event catalog (what the projector dead-letters and the writer's rebuild
 * stops at), then the quarantine list for them (docs/operations.md). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vetctl.h"
#include "vp_catalog.h"
#include "vp_config.h"
#include "vp_event.h"
#include "vp_kafka.h"

typedef struct TailOptions {
	char *brokers;
	char *topic;
	char *tenant;
	char *aggregate;
	bool follow;
	bool check;          /* events check: report unreadable records instead */
	long long unreadable;
	char *quarantine;    /* "P:O,P:O" of the unreadable records, malloc'd */
} TailOptions;

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Prints the record when it passes the filters; undecodable records are shown
 * as such on stderr (they are the projector's dead letters). */
static void print_record(const TailOptions *o, const rd_kafka_message_t *m)
{
	VpEvent ev;
	char why[256];
	if (vp_event_decode(m->payload, m->len, &ev, why, sizeof(why)) < 0) {
		fprintf(stderr, "partition %d offset %lld: not an event: %s\n", m->partition,
			(long long)m->offset, why);
		return;
	}
	bool show = (!*o->tenant || !strcmp(o->tenant, ev.tenant_id)) &&
		    (!*o->aggregate || !strcmp(o->aggregate, ev.aggregate_id));
	vp_event_release(&ev);
	if (show)
		printf("%.*s\n", (int)m->len, (const char *)m->payload);
}

/* events check: one line per record the catalog refuses, and its position
 * appended to the quarantine list. */
static void check_record(TailOptions *o, const rd_kafka_message_t *m)
{
	char why[256];
	if (vp_catalog_check_encoded(m->payload, m->payload ? m->len : 0, why, sizeof(why)) == 0)
		return;
	printf("partition %d offset %lld: %s\n", m->partition, (long long)m->offset, why);
	o->unreadable++;
	size_t used = o->quarantine ? strlen(o->quarantine) : 0;
	char *grown = realloc(o->quarantine, used + 48);
	if (!grown)
		return;
	snprintf(grown + used, 48, "%s%d:%lld", used ? "," : "", m->partition,
		 (long long)m->offset);
	o->quarantine = grown;
}

static int tail(TailOptions *o, rd_kafka_t *rk)
{
	int partitions = 0, at_end = 0;
	if (vp_kafka_probe(rk, o->topic, 10000, &partitions) < 0 || partitions == 0) {
		fprintf(stderr, "vetctl: topic %s not found at %s\n", o->topic, o->brokers);
		return 1;
	}
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(parts, o->topic, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	while (!interrupted && ((o->follow && !o->check) || at_end < partitions)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			at_end++;
		else if (m->err)
			fprintf(stderr, "vetctl: %s\n", rd_kafka_message_errstr(m));
		else if (o->check)
			check_record(o, m);
		else
			print_record(o, m);
		rd_kafka_message_destroy(m);
		fflush(stdout);
	}
	return 0;
}

int vc_cmd_events(int argc, char **argv)
{
	TailOptions o = {0};
	char why[512];
	int rc = 1;
	const VpConfigItem items[] = {
		VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &o.brokers, "127.0.0.1:59092",
			  "Kafka bootstrap servers"),
		VP_CF_STR("topic", "VETPMS_TOPIC", &o.topic, VP_TOPIC_EVENTS_DEFAULT, "events topic"),
		VP_CF_STR("tenant", NULL, &o.tenant, "", "only this tenant's events"),
		VP_CF_STR("aggregate", NULL, &o.aggregate, "", "only this aggregate's events"),
		VP_CF_BOOL("follow", NULL, &o.follow, "false", "keep waiting for new events"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	if (argc < 2 || (strcmp(argv[1], "tail") != 0 && strcmp(argv[1], "check") != 0)) {
		fprintf(stderr, "usage: vetctl events tail [--tenant T] [--aggregate A] [--follow]\n"
				"       vetctl events check   list the records the catalog refuses\n");
		return 2;
	}
	o.check = !strcmp(argv[1], "check");
	int loaded = vp_config_load(items, n, argc - 1, argv + 1,
				    o.check ? "vetctl events check" : "vetctl events tail", NULL,
				    why, sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		vp_config_free(items, n);
		return loaded < 0 ? 2 : 0;
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	rd_kafka_t *rk =
		vp_kafka_log_reader_new(o.brokers, "vetctl", "vetctl-tail", NULL, true, why, sizeof(why));
	if (!rk)
		fprintf(stderr, "vetctl: %s\n", why);
	else {
		rc = tail(&o, rk);
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	if (rc == 0 && o.check) {
		printf("%lld unreadable record(s)\n", o.unreadable);
		if (o.unreadable)
			printf("VETPMS_WRITER_QUARANTINE=%s\n", o.quarantine ? o.quarantine : "");
		rc = o.unreadable ? 1 : 0;
	}
	free(o.quarantine);
	vp_config_free(items, n);
	return rc;
}
