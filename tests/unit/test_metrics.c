/* The Prometheus text: one HELP/TYPE per family with its samples together,
 * cumulative histogram buckets, and counts that add up across threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_metrics.h"

static VpMetric *hits_a;

static void *add_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		vp_metric_add(hits_a, 1);
	return NULL;
}

static void families_are_contiguous_and_counts_exact(void **state)
{
	(void)state;
	hits_a = vp_metrics_counter("t_hits_total", "kind=\"a\"", "hits");
	VpMetric *depth = vp_metrics_gauge("t_depth", NULL, "queue depth");
	VpMetric *hits_b = vp_metrics_counter("t_hits_total", "kind=\"b\"", "hits");
	VpMetric *latency = vp_metrics_histogram("t_latency_seconds", NULL, "latency");
	pthread_t threads[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&threads[i], NULL, add_many, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	vp_metric_add(hits_b, 2);
	vp_metric_set(depth, 7);
	vp_metric_observe_us(latency, 300);     /* ≤ 0.0005 */
	vp_metric_observe_us(latency, 2000);    /* ≤ 0.0025 */
	vp_metric_observe_us(latency, 20000000); /* +Inf only */

	size_t len = 0;
	char *text = vp_metrics_render(&len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "t_hits_total{kind=\"a\"} 400000\n"
				     "t_hits_total{kind=\"b\"} 2\n"));
	assert_null(strstr(strstr(text, "# TYPE t_hits_total") + 1, "# TYPE t_hits_total"));
	assert_non_null(strstr(text, "# TYPE t_depth gauge\nt_depth 7\n"));
	assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.0025\"} 2\n"));
	assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"10\"} 2\n"));
	assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "t_latency_seconds_count 3\n"));
	assert_non_null(strstr(text, "t_latency_seconds_sum 20.002300\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(families_are_contiguous_and_counts_exact),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
