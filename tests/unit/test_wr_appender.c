/* The appender against librdkafka's mock cluster: commits, group commit, and the
 * failure path (a failed transaction fails its items and the stale ones, then a
 * rebuilt model of the next generation arrives without the failed events).
 * Fencing needs a real broker and is proved by the end-to-end suite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sodium.h>

#include "vp_event.h"
#include "vp_kafka.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_time.h"
#include "vp_uuid.h"
#include "writer.h"

#define TOPIC      "vetpms.events"
#define PARTITIONS 2
#define WAIT_US    (8 * VP_US_PER_SEC)

typedef struct Fixture {
	rd_kafka_t *mock_owner;
	rd_kafka_mock_cluster_t *mcluster;
	WrConfig cfg;
	struct event_base *base;
	struct event *tick;
	WrAppender *appender;
	WrState *model;          /* the latest model handed over by rebuilt_cb */
	uint64_t generation;
	int rebuilds;
	WrAppend *done;          /* finished items, in arrival order */
	int done_count;
	int done_batches;        /* calls of done_cb */
} Fixture;

static void on_done(WrAppend *list, void *arg)
{
	Fixture *f = arg;
	WrAppend **tail = &f->done;
	while (*tail)
		tail = &(*tail)->next;
	*tail = list;
	for (WrAppend *it = list; it; it = it->next)
		f->done_count++;
	f->done_batches++;
}

static void on_rebuilt(WrState *state, uint64_t generation, void *arg)
{
	Fixture *f = arg;
	if (f->model) {
		wr_state_clear(f->model);
		free(f->model);
	}
	f->model = state;
	f->generation = generation;
	f->rebuilds++;
}

/* Keeps EVLOOP_ONCE from blocking forever when nothing else happens. */
static void on_tick(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
}

static void run_until_done(Fixture *f, int count)
{
	int64_t deadline = vp_time_mono_us() + WAIT_US;
	while (f->done_count < count && vp_time_mono_us() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(f->done_count, count);
}

static void run_until_rebuilds(Fixture *f, int rebuilds)
{
	int64_t deadline = vp_time_mono_us() + WAIT_US;
	while (f->rebuilds < rebuilds && vp_time_mono_us() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(f->rebuilds, rebuilds);
}

static void free_done(Fixture *f)
{
	while (f->done) {
		WrAppend *next = f->done->next;
		wr_append_free(f->done);
		f->done = next;
	}
	f->done_count = 0;
	f->done_batches = 0;
}

/* A TenantProvisioned event for a fresh tenant, so the model's tenants map
 * shows whether it was committed. */
static WrAppend *provision(Fixture *f, char tenant_out[37])
{
	VpUuid u;
	WrAppend *item = calloc(1, sizeof(*item));
	assert_non_null(item);
	VpEvent ev = {.v = 1, .seq = 1, .at_us = vp_time_now_us()};
	vp_uuid_v7(&u);
	vp_uuid_format(&u, ev.tenant_id);
	vp_uuid_v7(&u);
	vp_uuid_format(&u, ev.id);
	snprintf(ev.type, sizeof(ev.type), "TenantProvisioned");
	snprintf(ev.aggregate, sizeof(ev.aggregate), "tenant");
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", ev.tenant_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "cmd-%s", ev.id);
	snprintf(ev.actor, sizeof(ev.actor), "test");
	ev.data = cJSON_Parse("{\"name\":\"Clinic\",\"timezone\":\"UTC\",\"currency\":\"EUR\"}");
	assert_non_null(ev.data);
	item->value = vp_event_encode(&ev);
	assert_non_null(item->value);
	cJSON_Delete(ev.data);
	snprintf(item->tenant_id, sizeof(item->tenant_id), "%s", ev.tenant_id);
	snprintf(item->type, sizeof(item->type), "%s", ev.type);
	snprintf(item->command_id, sizeof(item->command_id), "%s", ev.command_id);
	item->partition =
		vp_kafka_partition_for_key(ev.tenant_id, strlen(ev.tenant_id), PARTITIONS);
	item->generation = f->generation;
	item->offset = -1;
	if (tenant_out)
		snprintf(tenant_out, 37, "%s", ev.tenant_id);
	return item;
}

/* A command of two events: TenantProvisioned then TenantSettingsChanged of the
 * same tenant, chained as the request path chains them (`more` on the first). */
static WrAppend *provision_with_settings(Fixture *f, char tenant_out[37])
{
	WrAppend *first = provision(f, tenant_out);
	WrAppend *second = calloc(1, sizeof(*second));
	assert_non_null(second);
	VpEvent ev = {.v = 1, .seq = 2, .at_us = vp_time_now_us()};
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, ev.id);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", first->tenant_id);
	snprintf(ev.type, sizeof(ev.type), "TenantSettingsChanged");
	snprintf(ev.aggregate, sizeof(ev.aggregate), "tenant");
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", first->tenant_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "%s", first->command_id);
	snprintf(ev.actor, sizeof(ev.actor), "test");
	ev.data = cJSON_Parse("{\"record_lock_hours\":24}");
	second->value = vp_event_encode(&ev);
	assert_non_null(second->value);
	cJSON_Delete(ev.data);
	snprintf(second->tenant_id, sizeof(second->tenant_id), "%s", first->tenant_id);
	snprintf(second->type, sizeof(second->type), "%s", ev.type);
	snprintf(second->command_id, sizeof(second->command_id), "%s", ev.command_id);
	second->partition = first->partition;
	second->generation = first->generation;
	second->offset = -1;
	first->more = true;
	first->next = second;
	return first;
}

static long long metric(const char *name)
{
	size_t len = 0;
	char *text = vp_metrics_render(&len);
	long long value = -1;
	assert_non_null(text);
	size_t n = strlen(name);
	for (const char *line = text; line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, name, n) && line[n] == ' ')
			value = strtoll(line + n + 1, NULL, 10);
	}
	free(text);
	return value;
}

static int group_setup(void **state)
{
	char why[256];
	char errstr[256];
	Fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	vp_log_init("test_wr_appender", getenv("TEST_LOG") ? VP_LOG_DEBUG : VP_LOG_ERROR);
	assert_int_equal(evthread_use_pthreads(), 0);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* the handle only hosts the mock cluster: no bootstrap.servers warning */
	assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)), 0);
	f->mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(f->mock_owner);
	f->mcluster = rd_kafka_mock_cluster_new(f->mock_owner, 1);
	assert_non_null(f->mcluster);
	assert_int_equal(rd_kafka_mock_topic_create(f->mcluster, TOPIC, PARTITIONS, 1), 0);
	/* the keys topic every rebuild reads first (keys.c), under a test master key */
	assert_int_equal(rd_kafka_mock_topic_create(f->mcluster, VP_TOPIC_KEYS_DEFAULT, 1, 1), 0);
	f->cfg.keys_topic = VP_TOPIC_KEYS_DEFAULT;
	f->cfg.master_key_file = "";
	setenv("VETPMS_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1);
	if (wr_keys_init(&f->cfg, why, sizeof(why)) < 0)
		fail_msg("wr_keys_init: %s", why);

	f->cfg.brokers = strdup(rd_kafka_mock_cluster_bootstraps(f->mcluster));
	f->cfg.topic = TOPIC;
	f->cfg.instance = 0;
	f->cfg.instances = 1;
	f->cfg.max_batch = 1000;
	f->base = event_base_new();
	assert_non_null(f->base);
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval every = {0, 20000};
	event_add(f->tick, &every);

	f->appender = wr_appender_new(&f->cfg, f->base, on_done, on_rebuilt, f, why, sizeof(why));
	if (!f->appender)
		fail_msg("wr_appender_new: %s", why);
	assert_int_equal(wr_appender_start(f->appender), 0);
	run_until_rebuilds(f, 1);
	assert_int_equal(f->generation, 0);
	assert_int_equal(wr_appender_partition_count(f->appender), PARTITIONS);
	assert_true(wr_appender_ready(f->appender, why, sizeof(why)));
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	Fixture *f = *state;
	free_done(f);
	f->appender = wr_appender_free(f->appender);
	if (f->model) {
		wr_state_clear(f->model);
		free(f->model);
	}
	event_free(f->tick);
	event_base_free(f->base);
	rd_kafka_mock_cluster_destroy(f->mcluster);
	wr_keys_release();
	rd_kafka_destroy(f->mock_owner);
	free(f->cfg.brokers);
	free(f);
	return 0;
}

static void commits_answer_with_increasing_offsets(void **state)
{
	Fixture *f = *state;
	char tenant[37];
	WrAppend *first = provision(f, tenant);
	int partition = first->partition;
	wr_appender_submit(f->appender, first);
	run_until_done(f, 1);
	/* same partition again: the offset must move past the first record */
	WrAppend *second = provision(f, NULL);
	second->partition = partition;
	wr_appender_submit(f->appender, second);
	run_until_done(f, 2);
	assert_ptr_equal(f->done, first);
	assert_ptr_equal(f->done->next, second);
	assert_int_equal(first->error, 0);
	assert_int_equal(second->error, 0);
	assert_true(first->offset >= 0);
	assert_true(second->offset > first->offset);
	free_done(f);
}

static void items_submitted_together_commit_in_few_transactions(void **state)
{
	Fixture *f = *state;
	long long commits_before = metric("vetpms_writer_commits_total");
	assert_true(commits_before >= 2);
	for (int i = 0; i < 50; i++)
		wr_appender_submit(f->appender, provision(f, NULL));
	run_until_done(f, 50);
	for (WrAppend *it = f->done; it; it = it->next) {
		assert_int_equal(it->error, 0);
		assert_true(it->offset >= 0);
	}
	/* The first item may be taken alone before the rest is queued; the rest
	 * ride together. */
	long long commits = metric("vetpms_writer_commits_total") - commits_before;
	assert_true(commits >= 1 && commits <= 3);
	assert_true(f->done_batches <= 3);
	free_done(f);
}

/* One ProvisionTenant whose commit fails: AddPartitionsToTxn answers
 * TOPIC_AUTHORIZATION_FAILED, an abortable error (see the test below for why
 * this one). Returns the partition it was meant for. */
static int fail_one_commit(Fixture *f, char tenant_id[37])
{
	rd_kafka_mock_push_request_errors(f->mcluster, 24 /* AddPartitionsToTxn */, 1,
					  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	WrAppend *bad = provision(f, tenant_id);
	wr_appender_submit(f->appender, bad);
	run_until_done(f, 1);
	assert_int_not_equal(bad->error, 0);
	int partition = bad->partition;
	free_done(f);
	return partition;
}

static void failed_commit_fails_items_and_rebuilds_without_them(void **state)
{
	Fixture *f = *state;
	char committed[37], failed[37], stale[37], after[37];
	char why[256];

	WrAppend *ok = provision(f, committed);
	wr_appender_submit(f->appender, ok);
	run_until_done(f, 1);
	assert_int_equal(ok->error, 0);
	free_done(f);

	/* The failure: AddPartitionsToTxn answered TOPIC_AUTHORIZATION_FAILED, an
	 * abortable (non-fatal) error, so commit_transaction fails and the
	 * appender aborts. Chosen by experiment on librdkafka 2.0.2's mock:
	 *  - EndTxn errors are either fatal (INVALID_TXN_STATE, PRODUCER_FENCED)
	 *    or, when abortable (UNKNOWN_PRODUCER_ID), leave the records readable:
	 *    the mock does not hide aborted records from read_committed readers,
	 *    so the rebuild cannot be checked with them;
	 *  - a Produce TOPIC_AUTHORIZATION_FAILED leaves a sequence gap in that
	 *    partition: the next transaction there fails too (OUT_OF_ORDER_SEQUENCE,
	 *    epoch bump), which makes the test depend on the tenant's partition;
	 *  - a Produce OUT_OF_ORDER_SEQUENCE_NUMBER is recovered internally.
	 * Here the records are never sent, so the log holds none of them. */
	int bad_partition = fail_one_commit(f, failed);

	/* Decided on the old model before the loop got the new one: failed too. */
	WrAppend *old = provision(f, stale);
	assert_int_equal(old->generation, 0);
	wr_appender_submit(f->appender, old);
	run_until_rebuilds(f, 2);
	assert_int_equal(f->generation, 1);
	assert_non_null(wr_state_tenant(f->model, committed));
	assert_null(wr_state_tenant(f->model, failed));
	run_until_done(f, 1);
	assert_ptr_equal(f->done, old);
	assert_int_not_equal(old->error, 0);
	free_done(f);
	assert_false(wr_appender_fatal(f->appender));
	assert_true(wr_appender_ready(f->appender, why, sizeof(why)));
	assert_true(metric("vetpms_writer_commit_failures_total") >= 1);

	/* The next generation commits again and the rebuild kept nothing stale. */
	WrAppend *next = provision(f, after);
	next->partition = bad_partition; /* no sequence gap left behind there */
	assert_int_equal(next->generation, 1);
	wr_appender_submit(f->appender, next);
	run_until_done(f, 1);
	assert_int_equal(next->error, 0);
	assert_true(next->offset >= 0);
	assert_null(wr_state_tenant(f->model, stale));
	free_done(f);
}

/* Produces `item`'s event as records were written before the origin header:
 * headers type, v and command-hash only (another producer, not transactional). */
static void produce_without_origin(Fixture *f, const WrAppend *item)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.brokers, errstr,
					   sizeof(errstr)),
			 RD_KAFKA_CONF_OK);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(rk);
	assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC),
					   RD_KAFKA_V_PARTITION(item->partition),
					   RD_KAFKA_V_KEY(item->tenant_id, strlen(item->tenant_id)),
					   RD_KAFKA_V_VALUE(item->value, strlen(item->value)),
					   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					   RD_KAFKA_V_HEADER("type", item->type, -1),
					   RD_KAFKA_V_HEADER("v", "1", 1),
					   RD_KAFKA_V_HEADER("command-hash", "old-hash", -1),
					   RD_KAFKA_V_END),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(rk, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(rk);
}

/* The rebuild remembers the command id of an event whose header says the
 * client chose it, and of a record without that header (written before it
 * existed: behaviour for old logs is unchanged), not one the writer generated. */
static void rebuild_remembers_client_and_old_command_ids_only(void **state)
{
	Fixture *f = *state;
	char keyed[37], generated[37], old[37], failed[37];
	char keyed_cmd[256], generated_cmd[256], old_cmd[256];
	int rebuilds = f->rebuilds;

	WrAppend *a = provision(f, keyed);
	WrAppend *b = provision(f, generated);
	a->client_key = true;
	snprintf(a->request_hash, sizeof(a->request_hash), "keyed-hash");
	snprintf(keyed_cmd, sizeof(keyed_cmd), "%s", a->command_id);
	snprintf(generated_cmd, sizeof(generated_cmd), "%s", b->command_id);
	wr_appender_submit(f->appender, a);
	wr_appender_submit(f->appender, b);
	run_until_done(f, 2);
	assert_int_equal(a->error, 0);
	assert_int_equal(b->error, 0);
	free_done(f);
	WrAppend *c = provision(f, old);
	snprintf(old_cmd, sizeof(old_cmd), "%s", c->command_id);
	produce_without_origin(f, c);
	wr_append_free(c);

	/* a failed commit makes the appender rebuild the model from the log */
	fail_one_commit(f, failed);
	run_until_rebuilds(f, rebuilds + 1);

	const WrTenant *t = wr_state_tenant(f->model, keyed);
	assert_non_null(t);
	const WrIdem *k = wr_idem_get(&t->idem, keyed_cmd);
	assert_non_null(k);
	assert_string_equal(k->request_hash, "keyed-hash");
	assert_false(k->pending);
	assert_true(k->position[0] != '\0');
	t = wr_state_tenant(f->model, generated);
	assert_non_null(t);
	assert_null(wr_idem_get(&t->idem, generated_cmd));
	assert_int_equal(wr_idem_count(&t->idem), 0);
	t = wr_state_tenant(f->model, old);
	assert_non_null(t);
	k = wr_idem_get(&t->idem, old_cmd);
	assert_non_null(k);
	assert_string_equal(k->request_hash, "old-hash");
	/* the earlier tests' events carry generated ids: only these two count */
	assert_int_equal(f->model->idem_keys, 2);
}

/* One command's two events commit in one transaction at consecutive offsets,
 * even with max_batch 1: the batch bound never splits a command. */
static void a_commands_events_commit_together_past_max_batch(void **state)
{
	Fixture *f = *state;
	char tenant[37];
	long long commits_before = metric("vetpms_writer_commits_total");
	f->cfg.max_batch = 1;
	WrAppend *chain = provision_with_settings(f, tenant);
	WrAppend *first = chain, *second = chain->next;
	wr_appender_submit(f->appender, chain);
	run_until_done(f, 2);
	f->cfg.max_batch = 1000;
	assert_int_equal(first->error, 0);
	assert_int_equal(second->error, 0);
	assert_int_equal(second->offset, first->offset + 1);
	assert_int_equal(metric("vetpms_writer_commits_total") - commits_before, 1);
	free_done(f);
}

/* A two-event command whose transaction fails: both fail and the rebuilt
 * model has neither; the same command committed later has both. */
static void a_failed_two_event_command_leaves_neither_event(void **state)
{
	Fixture *f = *state;
	char failed[37], committed[37], probe[37];
	int rebuilds = f->rebuilds;
	rd_kafka_mock_push_request_errors(f->mcluster, 24 /* AddPartitionsToTxn */, 1,
					  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	WrAppend *chain = provision_with_settings(f, failed);
	WrAppend *first = chain, *second = chain->next;
	wr_appender_submit(f->appender, chain);
	run_until_done(f, 2);
	assert_int_not_equal(first->error, 0);
	assert_int_not_equal(second->error, 0);
	int partition = first->partition;
	free_done(f);
	run_until_rebuilds(f, rebuilds + 1);
	assert_null(wr_state_tenant(f->model, failed));

	chain = provision_with_settings(f, committed);
	chain->partition = chain->next->partition = partition;
	wr_appender_submit(f->appender, chain);
	run_until_done(f, 2);
	assert_int_equal(f->done->error, 0);
	assert_int_equal(f->done->next->error, 0);
	free_done(f);
	/* another failed commit rebuilds the model from the log: both events */
	fail_one_commit(f, probe);
	run_until_rebuilds(f, rebuilds + 2);
	const WrTenant *t = wr_state_tenant(f->model, committed);
	assert_non_null(t);
	assert_int_equal(t->version, 2);
	assert_int_equal(t->record_lock_hours, 24);
	assert_null(wr_state_tenant(f->model, failed));
}

/* The loop's model got ahead of the log: a requested rebuild fails what was
 * decided on it and hands over a model read from the log, of the next
 * generation. */
static void a_requested_rebuild_fails_what_the_old_model_decided(void **state)
{
	Fixture *f = *state;
	char tenant[37];
	int rebuilds = f->rebuilds;
	uint64_t generation = f->generation;
	wr_appender_rebuild(f->appender);
	WrAppend *old = provision(f, tenant);
	assert_int_equal(old->generation, generation);
	wr_appender_submit(f->appender, old);
	run_until_rebuilds(f, rebuilds + 1);
	assert_int_equal(f->generation, generation + 1);
	run_until_done(f, 1);
	assert_int_not_equal(old->error, 0);
	assert_null(wr_state_tenant(f->model, tenant));
	free_done(f);
	WrAppend *next = provision(f, tenant);
	wr_appender_submit(f->appender, next);
	run_until_done(f, 1);
	assert_int_equal(next->error, 0);
	free_done(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(commits_answer_with_increasing_offsets),
		cmocka_unit_test(items_submitted_together_commit_in_few_transactions),
		cmocka_unit_test(failed_commit_fails_items_and_rebuilds_without_them),
		cmocka_unit_test(rebuild_remembers_client_and_old_command_ids_only),
		cmocka_unit_test(a_commands_events_commit_together_past_max_batch),
		cmocka_unit_test(a_failed_two_event_command_leaves_neither_event),
		cmocka_unit_test(a_requested_rebuild_fails_what_the_old_model_decided),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
