/*
 * cfg_test.c - the settings table: good values, defaults, missing,
 * malformed and out-of-range values, and the messages that name them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

static const struct cfg_def defs[] = {
    {"SHOUWEN_RUN_DIR", CFG_STRING, 1, 200, "/tmp/run", NULL, "run folder"},
    {"T_URL", CFG_STRING, 1, 100, "host={run}/pg dbname=x", NULL, "database"},
    {"T_REQ", CFG_STRING, 1, 10, NULL, NULL, "a required name"},
    {"T_INT", CFG_INT, 1, 100, "10", NULL, "an integer"},
    {"T_BOOL", CFG_BOOL, 0, 0, "false", NULL, "a flag"},
    {"T_LEVEL", CFG_ENUM, 0, 0, "info", "debug|info|warn|error", "a level"},
    {"T_WAIT", CFG_DURATION, 100, 300000, "5s", NULL, "a duration"},
    {"T_BUS", CFG_NNG_URL, 0, 0, "ipc://{run}/x.pub", NULL, "a bus url"},
    {"T_ADDR", CFG_HOSTPORT, 0, 0, "127.0.0.1:7401", NULL, "an address"},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static const char *const names[] = {"SHOUWEN_RUN_DIR", "T_URL",  "T_REQ", "T_INT", "T_BOOL",
                                    "T_LEVEL",         "T_WAIT", "T_BUS", "T_ADDR"};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    setenv("T_REQ", "abc", 1);
    return 0;
}

/* Load expecting failure; returns the error and leaves the message in err. */
static sw_err load_fail(char *err, size_t errlen)
{
    struct cfg c;
    memset(&c, 0x5a, sizeof(c));
    sw_err rv = cfg_load(&c, defs, NDEFS, err, errlen);
    assert_int_not_equal(rv, SW_OK);
    /* out is written only on success */
    assert_int_equal(((unsigned char *)&c)[0], 0x5a);
    return rv;
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg c;
    char err[256] = "";
    assert_int_equal(cfg_load(&c, defs, NDEFS, err, sizeof(err)), SW_OK);
    assert_string_equal(cfg_str(&c, "T_URL"), "host=/tmp/run/pg dbname=x");
    assert_string_equal(cfg_str(&c, "T_BUS"), "ipc:///tmp/run/x.pub");
    assert_int_equal(cfg_int(&c, "T_INT"), 10);
    assert_false(cfg_bool(&c, "T_BOOL"));
    assert_int_equal(cfg_ms(&c, "T_WAIT"), 5000);
    assert_string_equal(cfg_str(&c, "T_LEVEL"), "info");
    cfg_fini(&c);
}

static void test_good_values(void **state)
{
    (void)state;
    struct cfg c;
    char err[256] = "";
    setenv("SHOUWEN_RUN_DIR", "/srv/sw", 1);
    setenv("T_INT", "100", 1);
    setenv("T_BOOL", "yes", 1);
    setenv("T_LEVEL", "debug", 1);
    setenv("T_WAIT", "2m", 1);
    setenv("T_BUS", "tls+tcp://bus.example:7501", 1);
    setenv("T_ADDR", "[::1]:8080", 1);
    assert_int_equal(cfg_load(&c, defs, NDEFS, err, sizeof(err)), SW_OK);
    assert_string_equal(cfg_str(&c, "T_URL"), "host=/srv/sw/pg dbname=x");
    assert_int_equal(cfg_int(&c, "T_INT"), 100);
    assert_true(cfg_bool(&c, "T_BOOL"));
    assert_int_equal(cfg_ms(&c, "T_WAIT"), 120000);
    assert_string_equal(cfg_str(&c, "T_BUS"), "tls+tcp://bus.example:7501");
    assert_string_equal(cfg_str(&c, "T_ADDR"), "[::1]:8080");
    cfg_fini(&c);
}

static void test_missing(void **state)
{
    (void)state;
    char err[256] = "";
    unsetenv("T_REQ");
    assert_int_equal(load_fail(err, sizeof(err)), SW_EMISSING);
    assert_non_null(strstr(err, "T_REQ: required setting is missing"));
}

struct bad {
    const char *env;
    const char *val;
    sw_err want;
    const char *says; /* part of the message */
};

static void test_malformed_and_out_of_range(void **state)
{
    (void)state;
    static const struct bad bad[] = {
        {"T_INT", "ten", SW_EINVAL,
         "T_INT: invalid value \"ten\": expected an integer from 1 to 100"},
        {"T_INT", "10x", SW_EINVAL, "T_INT: invalid value"},
        {"T_INT", "", SW_EINVAL, "T_INT: empty value"},
        {"T_INT", "0", SW_ERANGE, "T_INT: value 0 out of range"},
        {"T_INT", "101", SW_ERANGE, "T_INT: value 101 out of range"},
        {"T_INT", "99999999999999999999", SW_EINVAL, "T_INT: invalid value"},
        {"T_BOOL", "maybe", SW_EINVAL, "T_BOOL: invalid value \"maybe\": expected true or false"},
        {"T_LEVEL", "loud", SW_EINVAL, "expected one of debug|info|warn|error"},
        {"T_WAIT", "5", SW_EINVAL, "T_WAIT: invalid value \"5\""},
        {"T_WAIT", "5 s", SW_EINVAL, "with unit ms, s, m, h or d"},
        {"T_WAIT", "-5s", SW_EINVAL, "T_WAIT: invalid value"},
        {"T_WAIT", "99ms", SW_ERANGE, "out of range: expected a duration from 100ms to 5m"},
        {"T_WAIT", "6m", SW_ERANGE, "T_WAIT: value \"6m\" out of range"},
        {"T_WAIT", "99999999999999999d", SW_EINVAL, "T_WAIT: invalid value"},
        {"T_BUS", "http://x:1", SW_EINVAL,
         "T_BUS: invalid value \"http://x:1\": expected an nng URL"},
        {"T_BUS", "tcp://host", SW_EINVAL, "T_BUS: invalid value"},
        {"T_BUS", "ipc://", SW_EINVAL, "T_BUS: invalid value"},
        {"T_ADDR", "localhost", SW_EINVAL,
         "T_ADDR: invalid value \"localhost\": expected host:port"},
        {"T_ADDR", "host:0", SW_EINVAL, "T_ADDR: invalid value"},
        {"T_ADDR", "host:65536", SW_EINVAL, "T_ADDR: invalid value"},
        {"T_ADDR", ":80", SW_EINVAL, "T_ADDR: invalid value"},
        {"T_REQ", "much-too-long", SW_ERANGE, "T_REQ: value is 13 bytes long"},
        {"T_REQ", "", SW_ERANGE, "T_REQ: value is 0 bytes long"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        clean_env(NULL);
        setenv(bad[i].env, bad[i].val, 1);
        sw_err rv = load_fail(err, sizeof(err));
        if (rv != bad[i].want || strstr(err, bad[i].says) == NULL)
            fail_msg("%s=\"%s\": got %s, \"%s\"; want %s, \"...%s...\"", bad[i].env, bad[i].val,
                     sw_strerror(rv), err, sw_strerror(bad[i].want), bad[i].says);
    }
}

static void test_duration_units(void **state)
{
    (void)state;
    long long ms = -1;
    assert_int_equal(cfg_parse_duration("250ms", &ms), SW_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(cfg_parse_duration("1h", &ms), SW_OK);
    assert_int_equal(ms, 3600000);
    assert_int_equal(cfg_parse_duration("1d", &ms), SW_OK);
    assert_int_equal(ms, 86400000);
    assert_int_equal(cfg_parse_duration("1w", &ms), SW_EINVAL);
    assert_int_equal(cfg_parse_duration("ms", &ms), SW_EINVAL);
}

static void test_help_lists_everything(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_help(f, defs, NDEFS);
    fclose(f);
    for (size_t i = 0; i < NDEFS; i++)
        assert_non_null(strstr(text, defs[i].env));
    assert_non_null(strstr(text, "(none: required)"));
    assert_non_null(strstr(text, "default: 5s"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_good_values, clean_env),
        cmocka_unit_test_setup(test_missing, clean_env),
        cmocka_unit_test_setup(test_malformed_and_out_of_range, clean_env),
        cmocka_unit_test_setup(test_duration_units, clean_env),
        cmocka_unit_test_setup(test_help_lists_everything, clean_env),
    };
    return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
