/*
 * log_test.c - log lines are valid JSON, one per call, at the right
 * level, and never carry a customer's phone number or name unmasked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

/* Run `fn` with stderr sent to a file; return what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/log_test.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return text;
}

static void write_lines(void)
{
    log_init("intake", LOG_INFO);
    LOG(LOG_DEBUG, "T-DEBUG", "not shown %d", 1);
    struct log_field f[] = {{"case", "c-1", LOG_STR},
                            {"phone", "13800001234", LOG_PHONE},
                            {"customer", "张三丰", LOG_NAME},
                            {"missing", NULL, LOG_STR}};
    LOG_FIELDS(LOG_WARN, "T-WARN", f, 4, "customer called from 13912345678 about \"leak\"\n");
    LOG(LOG_ERROR, "T-ERROR", "tab\there");
}

static void test_lines_are_json_and_masked(void **state)
{
    (void)state;
    char *text = capture(write_lines);
    assert_null(strstr(text, "13800001234"));
    assert_null(strstr(text, "13912345678"));
    assert_null(strstr(text, "三丰"));
    assert_null(strstr(text, "not shown"));

    char *line2 = strchr(text, '\n');
    assert_non_null(line2);
    *line2++ = '\0';
    json_error_t jerr;
    json_t *a = json_loads(text, 0, &jerr);
    json_t *b = json_loads(line2, 0, &jerr);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(a, "service")), "intake");
    assert_string_equal(json_string_value(json_object_get(a, "code")), "T-WARN");
    assert_string_equal(json_string_value(json_object_get(a, "phone")), "138****1234");
    assert_string_equal(json_string_value(json_object_get(a, "customer")), "张**");
    assert_string_equal(json_string_value(json_object_get(a, "case")), "c-1");
    assert_true(json_is_null(json_object_get(a, "missing")));
    assert_string_equal(json_string_value(json_object_get(a, "msg")),
                        "customer called from 139****5678 about \"leak\"\n");
    assert_non_null(json_string_value(json_object_get(a, "ts")));
    assert_string_equal(json_string_value(json_object_get(b, "msg")), "tab\there");
    assert_string_equal(json_string_value(json_object_get(b, "level")), "error");
    json_decref(a);
    json_decref(b);
    free(text);
}

static void write_huge(void)
{
    char msg[2000];
    memset(msg, '\x01', sizeof(msg) - 1); /* each escapes to 6 bytes: past the line ceiling */
    msg[sizeof(msg) - 1] = '\0';
    log_init("intake", LOG_INFO);
    LOG(LOG_INFO, "T-HUGE", "%s", msg);
}

/* Regression: an over-long line came out as broken JSON ("msg":}) instead of LOG-TRUNCATED. */
static void test_oversized_line_is_still_json(void **state)
{
    (void)state;
    char *text = capture(write_huge);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (j == NULL)
        fail_msg("not JSON: %s: %.120s", jerr.text, text);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "LOG-TRUNCATED");
    json_decref(j);
    free(text);
}

static void test_masks(void **state)
{
    (void)state;
    char out[64];
    log_mask_phone(out, sizeof(out), "13800001234");
    assert_string_equal(out, "138****1234");
    log_mask_phone(out, sizeof(out), "021-5555-1234");
    assert_string_equal(out, "021******1234");
    log_mask_phone(out, sizeof(out), "110");
    assert_string_equal(out, "***");
    log_mask_phone(out, 4, "13800001234");
    assert_string_equal(out, "138");
    log_mask_name(out, sizeof(out), "Alice");
    assert_string_equal(out, "A****");
    log_mask_name(out, sizeof(out), "李");
    assert_string_equal(out, "李");
    log_mask_name(out, 3, "张三"); /* no room for the first character: nothing */
    assert_string_equal(out, "");
    log_mask_name(out, sizeof(out), "\xe5\xbc"); /* truncated UTF-8 stays in bounds */
    assert_string_equal(out, "\xe5\xbc");
    char text[] = "ids 20261122 and 1380000123 and 13800001234 and 138000012345";
    log_mask_text(text);
    assert_string_equal(text, "ids 20261122 and 1380000123 and 138****1234 and 138000012345");
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_are_json_and_masked),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_oversized_line_is_still_json),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
