/*
 * metrics_test.c - the registry renders valid Prometheus text, groups
 * series of one name, and survives being full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void test_render(void **state)
{
    (void)state;
    metrics_reset();
    struct metric *a = metrics_get(METRIC_COUNTER, "t_events_total", "Events", NULL);
    struct metric *g0 = metrics_get(METRIC_GAUGE, "t_lag", "Lag", "partition=\"0\"");
    struct metric *other = metrics_get(METRIC_GAUGE, "t_other", "Other", NULL);
    struct metric *g1 = metrics_get(METRIC_GAUGE, "t_lag", "Lag", "partition=\"1\"");
    assert_ptr_equal(metrics_get(METRIC_COUNTER, "t_events_total", "Events", NULL), a);
    metric_add(a, 3);
    metric_add(a, 2);
    metric_set(g0, 7);
    metric_set(g1, -1);
    metric_set(other, 1);
    metric_add(NULL, 1); /* no registry room: ignored, not a crash */
    assert_int_equal(metric_value(a), 5);

    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(metrics_render(&b), SW_OK);
    assert_string_equal(buf_cstr(&b), "# HELP t_events_total Events\n"
                                      "# TYPE t_events_total counter\n"
                                      "t_events_total 5\n"
                                      "# HELP t_lag Lag\n"
                                      "# TYPE t_lag gauge\n"
                                      "t_lag{partition=\"0\"} 7\n"
                                      "t_lag{partition=\"1\"} -1\n"
                                      "# HELP t_other Other\n"
                                      "# TYPE t_other gauge\n"
                                      "t_other 1\n");
    buf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics_reset();
    static const double bounds[] = {0.001, 0.0025, 1};
    struct histogram *h = metrics_histogram("t_seconds", "Time", bounds, 3);
    assert_non_null(h);
    assert_ptr_equal(metrics_histogram("t_seconds", "Time", bounds, 3), h);
    histogram_observe_us(h, 1000);    /* on a bound: that bucket (le) */
    histogram_observe_us(h, 1001);    /* just above: the next */
    histogram_observe_us(h, -5);      /* a clock step back counts as 0 */
    histogram_observe_us(h, 3000000); /* above every bound: +Inf only */
    histogram_observe_us(NULL, 1);    /* no room: ignored */
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(metrics_render(&b), SW_OK);
    assert_string_equal(buf_cstr(&b), "# HELP t_seconds Time\n"
                                      "# TYPE t_seconds histogram\n"
                                      "t_seconds_bucket{le=\"0.001\"} 2\n"
                                      "t_seconds_bucket{le=\"0.0025\"} 3\n"
                                      "t_seconds_bucket{le=\"1\"} 3\n"
                                      "t_seconds_bucket{le=\"+Inf\"} 4\n"
                                      "t_seconds_sum 3.002001\n"
                                      "t_seconds_count 4\n");
    buf_free(&b);
    double many[METRICS_BUCKETS_MAX + 1] = {0};
    assert_null(metrics_histogram("t_too_many_buckets", "x", many, METRICS_BUCKETS_MAX + 1));
    metrics_reset();
}

static void test_full_registry(void **state)
{
    (void)state;
    char name[32];
    metrics_reset();
    for (int i = 0; i < METRICS_MAX; i++) {
        snprintf(name, sizeof(name), "t_m%d", i);
        assert_non_null(metrics_get(METRIC_COUNTER, name, "x", NULL));
    }
    assert_null(metrics_get(METRIC_COUNTER, "t_one_too_many", "x", NULL));
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(metrics_render(&b), SW_ETOOBIG);
    buf_free(&b);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_full_registry),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
