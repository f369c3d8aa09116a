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

static struct metric registry[METRICS_MAX];
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

sw_err metrics_render(struct buf *out)
{
    sw_err rv = SW_OK;
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
    pthread_mutex_unlock(&registry_lock);
}
