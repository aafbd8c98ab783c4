/* Metrics registry (see vp_metrics.h). A fixed array: registration happens at
 * start from one thread, updates are relaxed atomics, rendering reads a snapshot
 * that may be a few increments stale, which Prometheus tolerates. */
#include "vp_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 256
#define N_BUCKETS   12

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } MetricKind;

struct VpMetric {
	const char *name;
	const char *labels;
	const char *help;
	MetricKind kind;
	_Atomic int64_t value;                /* counter/gauge; histogram: count */
	_Atomic int64_t sum_us;               /* histogram */
	_Atomic int64_t buckets[N_BUCKETS];   /* histogram, non-cumulative */
};

static const int64_t bucket_le_us[N_BUCKETS] = {500,    1000,    2500,    5000,
						 10000,  25000,   50000,   100000,
						 250000, 1000000, 2500000, 10000000};

static struct VpMetric registry[MAX_METRICS];
static int n_registered;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static VpMetric *register_metric(const char *name, const char *labels, const char *help,
				 MetricKind kind)
{
	VpMetric *m = NULL;
	pthread_mutex_lock(&registry_lock);
	if (n_registered < MAX_METRICS) {
		m = &registry[n_registered++];
		m->name = name;
		m->labels = labels;
		m->help = help;
		m->kind = kind;
	}
	pthread_mutex_unlock(&registry_lock);
	return m;
}

VpMetric *vp_metrics_counter(const char *name, const char *labels, const char *help)
{
	return register_metric(name, labels, help, KIND_COUNTER);
}

VpMetric *vp_metrics_gauge(const char *name, const char *labels, const char *help)
{
	return register_metric(name, labels, help, KIND_GAUGE);
}

VpMetric *vp_metrics_histogram(const char *name, const char *labels, const char *help)
{
	return register_metric(name, labels, help, KIND_HISTOGRAM);
}

void vp_metric_add(VpMetric *m, int64_t delta)
{
	if (m)
		atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void vp_metric_set(VpMetric *m, int64_t value)
{
	if (m)
		atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t vp_metric_value(const VpMetric *m)
{
	return m ? atomic_load_explicit(&m->value, memory_order_relaxed) : 0;
}

void vp_metric_observe_us(VpMetric *m, int64_t us)
{
	if (!m)
		return;
	int b = 0;
	while (b < N_BUCKETS && us > bucket_le_us[b])
		b++;
	if (b < N_BUCKETS)
		atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

/* Prints HELP/TYPE once per metric name: the first registration of a name. */
static bool first_of_name(int index)
{
	for (int i = 0; i < index; i++)
		if (!strcmp(registry[i].name, registry[index].name))
			return false;
	return true;
}

static void render_labels(FILE *out, const char *labels, const char *extra)
{
	bool has = labels && *labels;
	if (!has && !extra)
		return;
	fprintf(out, "{%s%s%s}", has ? labels : "", has && extra ? "," : "", extra ? extra : "");
}

static void render_histogram(FILE *out, const VpMetric *m)
{
	int64_t cumulative = 0;
	char le[48];
	for (int b = 0; b < N_BUCKETS; b++) {
		cumulative += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
		snprintf(le, sizeof(le), "le=\"%g\"", (double)bucket_le_us[b] / 1e6);
		fprintf(out, "%s_bucket", m->name);
		render_labels(out, m->labels, le);
		fprintf(out, " %lld\n", (long long)cumulative);
	}
	int64_t count = atomic_load_explicit(&m->value, memory_order_relaxed);
	fprintf(out, "%s_bucket", m->name);
	render_labels(out, m->labels, "le=\"+Inf\"");
	fprintf(out, " %lld\n%s_sum", (long long)count, m->name);
	render_labels(out, m->labels, NULL);
	fprintf(out, " %.6f\n%s_count", (double)atomic_load(&m->sum_us) / 1e6, m->name);
	render_labels(out, m->labels, NULL);
	fprintf(out, " %lld\n", (long long)count);
}

char *vp_metrics_render(size_t *len)
{
	static const char *const kind_names[] = {"counter", "gauge", "histogram"};
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	int n = n_registered;
	pthread_mutex_unlock(&registry_lock);
	/* A family's samples must be contiguous: render each name's group at its
	 * first registration. */
	for (int i = 0; i < n; i++) {
		if (!first_of_name(i))
			continue;
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", registry[i].name, registry[i].help,
			registry[i].name, kind_names[registry[i].kind]);
		for (int j = i; j < n; j++) {
			const VpMetric *m = &registry[j];
			if (strcmp(m->name, registry[i].name) != 0)
				continue;
			if (m->kind == KIND_HISTOGRAM) {
				render_histogram(out, m);
				continue;
			}
			fputs(m->name, out);
			render_labels(out, m->labels, NULL);
			fprintf(out, " %lld\n", (long long)vp_metric_value(m));
		}
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
