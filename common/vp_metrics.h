/* Prometheus metrics: counters, gauges and latency histograms registered once at
 * start, updated lock-free (C11 atomics) from any thread, rendered as the text
 * exposition format for GET /metrics. */
#ifndef VP_METRICS_H
#define VP_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct VpMetric VpMetric;

/* `labels` is NULL or a Prometheus label set without braces: "status=\"200\"".
 * Metrics sharing a name share HELP/TYPE; register each (name, labels) once.
 * Returns NULL when the registry is full (a programming error: checked at start). */
VpMetric *vp_metrics_counter(const char *name, const char *labels, const char *help);
VpMetric *vp_metrics_gauge(const char *name, const char *labels, const char *help);
/* Buckets in seconds are fixed: 0.0005 … 10 s; observe in microseconds. */
VpMetric *vp_metrics_histogram(const char *name, const char *labels, const char *help);

void vp_metric_add(VpMetric *m, int64_t delta); /* counters and gauges */
void vp_metric_set(VpMetric *m, int64_t value); /* gauges */
void vp_metric_observe_us(VpMetric *m, int64_t us); /* histograms */
int64_t vp_metric_value(const VpMetric *m);

/* The whole registry as text/plain; version=0.0.4, malloc'd, *len set. */
char *vp_metrics_render(size_t *len);

#endif
