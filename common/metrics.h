/*
 * metrics.h - counters and gauges for the admin server's /metrics.
 *
 * A process has one registry with room for METRICS_MAX series.  A series
 * is a metric name plus an optional label text (`partition="3"`); series
 * of one name are rendered together under one HELP and TYPE line, in the
 * Prometheus text exposition format 0.0.4.  Updates are lock-free atomics
 * and may come from any thread; registration takes a lock and is meant
 * for start-up (or the first time a label value is seen).
 */
#ifndef SHOUWEN_METRICS_H
#define SHOUWEN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_MAX 512

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE };

struct metric;

/*
 * metrics_get returns the series (`name`, `labels`), registering it on
 * first use.  `name`, `help` and `labels` are copied.  Returns NULL when
 * the registry is full; the update functions accept NULL and do nothing,
 * so a full registry loses figures, never the service.
 */
struct metric *metrics_get(enum metric_kind kind, const char *name, const char *help,
                           const char *labels);

void metric_add(struct metric *m, int64_t n);
void metric_set(struct metric *m, int64_t v);
int64_t metric_value(const struct metric *m);

/*
 * A histogram (TYPE histogram): observations counted into buckets with
 * upper bounds in seconds, plus their sum and count.  At most
 * METRICS_HISTOGRAMS_MAX histograms of at most METRICS_BUCKETS_MAX
 * bounds; `bounds` ascending.  Returns NULL when full (observe ignores
 * NULL).  Observing is lock-free.
 */
#define METRICS_HISTOGRAMS_MAX 8
#define METRICS_BUCKETS_MAX    16
struct histogram;
struct histogram *metrics_histogram(const char *name, const char *help, const double *bounds,
                                    size_t nbounds);
void histogram_observe_us(struct histogram *h, int64_t us);

/* metrics_render appends every series to `out`. */
sw_err metrics_render(struct buf *out);

/* metrics_reset forgets every series (tests only). */
void metrics_reset(void);

#endif
