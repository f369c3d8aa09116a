/*
 * metrics.c - a fixed-size registry of atomic counters and gauges.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct metric {
    enum metric_kind kind;
    char name[96];
    char help[160];
    char labels[96];
    _Atomic int64_t value;
};

struct histogram {
    char name[96];
    char help[160];
    size_t nbounds;
    int64_t bounds_us[METRICS_BUCKETS_MAX];
    double bounds[METRICS_BUCKETS_MAX];
    _Atomic int64_t counts[METRICS_BUCKETS_MAX + 1]; /* the last: above every bound */
    _Atomic int64_t sum_us;
};

static struct metric registry[METRICS_MAX];
static struct histogram histograms[METRICS_HISTOGRAMS_MAX];
static _Atomic size_t histograms_len;
static _Atomic size_t registry_len;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= dstlen)
        n = dstlen - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

struct metric *metrics_get(enum metric_kind kind, const char *name, const char *help,
                           const char *labels)
{
    struct metric *m = NULL;
    const char *lab = labels ? labels : "";
    pthread_mutex_lock(&registry_lock);
    size_t n = atomic_load(&registry_len);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(registry[i].name, name) == 0 && strcmp(registry[i].labels, lab) == 0) {
            m = &registry[i];
            goto out;
        }
    }
    if (n < METRICS_MAX) {
        m = &registry[n];
        m->kind = kind;
        copy(m->name, sizeof(m->name), name);
        copy(m->help, sizeof(m->help), help);
        copy(m->labels, sizeof(m->labels), lab);
        atomic_store(&m->value, 0);
        atomic_store(&registry_len, n + 1);
    }
out:
    pthread_mutex_unlock(&registry_lock);
    return m;
}

void metric_add(struct metric *m, int64_t n)
{
    if (m != NULL)
        atomic_fetch_add(&m->value, n);
}

void metric_set(struct metric *m, int64_t v)
{
    if (m != NULL)
        atomic_store(&m->value, v);
}

int64_t metric_value(const struct metric *m)
{
    return m != NULL ? atomic_load(&((struct metric *)m)->value) : 0;
}

struct histogram *metrics_histogram(const char *name, const char *help, const double *bounds,
                                    size_t nbounds)
{
    struct histogram *h = NULL;
    if (nbounds > METRICS_BUCKETS_MAX)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    size_t n = atomic_load(&histograms_len);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(histograms[i].name, name) == 0) {
            h = &histograms[i];
            goto out;
        }
    }
    if (n < METRICS_HISTOGRAMS_MAX) {
        h = &histograms[n];
        copy(h->name, sizeof(h->name), name);
        copy(h->help, sizeof(h->help), help);
        h->nbounds = nbounds;
        for (size_t i = 0; i < nbounds; i++) {
            h->bounds[i] = bounds[i];
            h->bounds_us[i] = (int64_t)(bounds[i] * 1e6 + 0.5);
        }
        for (size_t i = 0; i <= nbounds; i++)
            atomic_store(&h->counts[i], 0);
        atomic_store(&h->sum_us, 0);
        atomic_store(&histograms_len, n + 1);
    }
out:
    pthread_mutex_unlock(&registry_lock);
    return h;
}

void histogram_observe_us(struct histogram *h, int64_t us)
{
    if (h == NULL)
        return;
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < h->nbounds && us > h->bounds_us[i])
        i++;
    atomic_fetch_add(&h->counts[i], 1);
    atomic_fetch_add(&h->sum_us, us);
}

static sw_err render_histogram(struct buf *out, struct histogram *h)
{
    sw_err rv = buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    int64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds && rv == SW_OK; i++) {
        cum += atomic_load(&h->counts[i]);
        if (i < h->nbounds)
            rv = buf_printf(out, "%s_bucket{le=\"%g\"} %lld\n", h->name, h->bounds[i],
                            (long long)cum);
        else
            rv = buf_printf(out, "%s_bucket{le=\"+Inf\"} %lld\n", h->name, (long long)cum);
    }
    int64_t sum = atomic_load(&h->sum_us);
    if (rv == SW_OK)
        rv = buf_printf(out, "%s_sum %lld.%06lld\n%s_count %lld\n", h->name,
                        (long long)(sum / 1000000), (long long)(sum % 1000000), h->name,
                        (long long)cum);
    return rv;
}

sw_err metrics_render(struct buf *out)
{
    sw_err rv = SW_OK;
    size_t nh = atomic_load(&histograms_len);
    for (size_t i = 0; i < nh && rv == SW_OK; i++)
        rv = render_histogram(out, &histograms[i]);
    size_t n = atomic_load(&registry_len);
    for (size_t i = 0; i < n && rv == SW_OK; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(registry[j].name, registry[i].name) == 0)
                first = 0;
        if (!first)
            continue; /* rendered with the first series of this name */
        rv = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", registry[i].name, registry[i].help,
                        registry[i].name, registry[i].kind == METRIC_COUNTER ? "counter" : "gauge");
        for (size_t j = i; j < n && rv == SW_OK; j++) {
            if (strcmp(registry[j].name, registry[i].name) != 0)
                continue;
            if (registry[j].labels[0] != '\0')
                rv = buf_printf(out, "%s{%s} %lld\n", registry[j].name, registry[j].labels,
                                (long long)atomic_load(&registry[j].value));
            else
                rv = buf_printf(out, "%s %lld\n", registry[j].name,
                                (long long)atomic_load(&registry[j].value));
        }
    }
    return rv;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    atomic_store(&registry_len, 0);
    atomic_store(&histograms_len, 0);
    pthread_mutex_unlock(&registry_lock);
}
