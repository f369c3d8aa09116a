/*
 * notify_test.c - templates, signatures (checked against vectors computed
 * by Python's hmac module and the Standard Webhooks specification's
 * example), MIME mail, retry timing, token buckets, masking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "notify.h"

static void test_template_check_refuses_with_the_place(void **state)
{
    (void)state;
    char err[1024] = "";
    assert_int_equal(
        ntf_template_check("案件 {{case_number}} 已转{{ department }}", err, sizeof(err)), SW_OK);
    assert_int_equal(ntf_template_check("", err, sizeof(err)), SW_OK);
    assert_int_equal(ntf_template_check("literal {{{{ braces", err, sizeof(err)), SW_OK);

    assert_int_equal(ntf_template_check("abc {{case_numbr}}", err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "at character 5: unknown variable {{case_numbr}}"));
    assert_non_null(strstr(err, "case_number")); /* the known names are listed */

    assert_int_equal(ntf_template_check("x {{site", err, sizeof(err)), SW_EINVAL);
    assert_string_equal(err, "at character 3: '{{' without '}}'");
    assert_int_equal(ntf_template_check("{{}}", err, sizeof(err)), SW_EINVAL);
    assert_string_equal(err, "at character 1: empty variable {{}}");
    assert_int_equal(ntf_template_check("{{Site}}", err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "lower-case"));
    assert_int_equal(ntf_template_check("ab }} cd", err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "at character 4: '}}' without '{{'"));
}

static void test_render(void **state)
{
    (void)state;
    const char *vals[NTF_VARS] = {0};
    vals[NTF_CASE_NUMBER] = "SH01-20261123-0001";
    vals[NTF_DEPARTMENT] = "工程部";
    struct buf b;
    buf_init(&b, 1000);
    assert_int_equal(ntf_render(&b, "{{case_number}} → {{ department }}{{handler}} {{{{x", vals),
                     SW_OK);
    assert_string_equal(buf_cstr(&b), "SH01-20261123-0001 → 工程部 {{x");
    buf_free(&b);
}

static void test_standard_webhooks_vector(void **state)
{
    (void)state;
    /* the example of the Standard Webhooks specification */
    const char *body = "{\"test\": 2432232314}";
    char sig[128];
    assert_int_equal(ntf_webhook_signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                           "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                                           strlen(body), sig, sizeof(sig)),
                     SW_OK);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_int_equal(
        ntf_webhook_signature("whsec_!!!", "id", 1, body, strlen(body), sig, sizeof(sig)),
        SW_EINVAL);
}

static void test_robot_signatures(void **state)
{
    (void)state;
    char q[256], s[128];
    assert_int_equal(ntf_dingtalk_query("SEC000000000000000000000", 1700000000000LL, q, sizeof(q)),
                     SW_OK);
    assert_string_equal(q, "&timestamp=1700000000000&sign=1zJ%2Fw34EOSVAYr7cu7Vo8LnebmK2%2FGrCgegt"
                           "r8mQrqM%3D");
    assert_int_equal(ntf_feishu_sign("demo-secret", 1700000000, s, sizeof(s)), SW_OK);
    assert_string_equal(s, "mYHw2R2SOm8Rw/sne3lQdmz4sOfntKR+1P/8RKKTwmA=");
}

static void test_mime(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10000);
    assert_int_equal(ntf_mime(&b, "desk@example.org", "zhou@example.org", "首问责任制 subject",
                              "正文 body", "d1@shouwen", 0),
                     SW_OK);
    const char *m = buf_cstr(&b);
    assert_non_null(strstr(m, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
    assert_non_null(strstr(m, "Subject: =?UTF-8?B?6aaW6Zeu6LSj5Lu75Yi2IHN1YmplY3Q=?=\r\n"));
    assert_non_null(strstr(m, "Message-ID: <d1@shouwen>\r\n"));
    assert_non_null(strstr(m, "charset=UTF-8"));
    assert_non_null(strstr(m, "\r\n\r\n5q2j5paHIGJvZHk=\r\n")); /* base64 of the body */
    buf_reset(&b);
    /* no header injection */
    assert_int_equal(ntf_mime(&b, "a@b", "c@d\r\nBcc: e@f", "s", "b", "id", 0), SW_EINVAL);
    assert_int_equal(ntf_mime(&b, "a@b", "c@d", "s\nX: y", "b", "id", 0), SW_EINVAL);
    /* a long subject is split into words on character boundaries */
    buf_reset(&b);
    assert_int_equal(ntf_mime(&b, "a@b", "c@d",
                              "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十", "b",
                              "id", 0),
                     SW_OK);
    assert_non_null(strstr(buf_cstr(&b), "?=\r\n =?UTF-8?B?"));
    buf_free(&b);
}

static void test_backoff(void **state)
{
    (void)state;
    /* base 1 s: attempt 1 waits 0.5-1 s, attempt 3 waits 2-4 s, the cap holds */
    assert_int_equal(ntf_backoff_ms(1, 1000, 60000, 0, 0), 500);
    assert_int_equal(ntf_backoff_ms(1, 1000, 60000, 500, 0), 1000);
    assert_int_equal(ntf_backoff_ms(3, 1000, 60000, 0, 0), 2000);
    assert_int_equal(ntf_backoff_ms(3, 1000, 60000, 2000, 0), 4000);
    assert_int_equal(ntf_backoff_ms(30, 1000, 60000, 30000, 0), 60000);
    for (uint32_t r = 0; r < 5000; r += 7) {
        int64_t d = ntf_backoff_ms(2, 1000, 60000, r, 0);
        assert_true(d >= 1000 && d <= 2000);
    }
    /* Retry-After is a floor, capped */
    assert_int_equal(ntf_backoff_ms(1, 1000, 60000, 0, 7000), 7000);
    assert_int_equal(ntf_backoff_ms(1, 1000, 60000, 0, 3600000), 60000);
}

static void test_retryable(void **state)
{
    (void)state;
    assert_true(ntf_retryable(false, 0, true));
    assert_true(ntf_retryable(false, 408, false));
    assert_true(ntf_retryable(false, 429, false));
    assert_true(ntf_retryable(false, 500, false));
    assert_true(ntf_retryable(false, 503, false));
    assert_false(ntf_retryable(false, 400, false));
    assert_false(ntf_retryable(false, 401, false));
    assert_false(ntf_retryable(false, 404, false));
    assert_true(ntf_retryable(true, 421, false));
    assert_true(ntf_retryable(true, 451, false));
    assert_false(ntf_retryable(true, 550, false));
}

static void test_bucket(void **state)
{
    (void)state;
    struct ntf_bucket b = {0};
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) /* a full burst of 3 */
        assert_int_equal(ntf_bucket_take(&b, t, 2, 3), 0);
    int64_t wait = ntf_bucket_take(&b, t, 2, 3); /* 2 a second: the next in 0.5 s */
    assert_true(wait > 499000 && wait <= 500001);
    assert_int_equal(ntf_bucket_take(&b, t + 500001, 2, 3), 0);
    assert_true(ntf_bucket_take(&b, t + 500001, 2, 3) > 0);
    /* a long pause refills to the burst, no more */
    t += 100000000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ntf_bucket_take(&b, t, 2, 3), 0);
    assert_true(ntf_bucket_take(&b, t, 2, 3) > 0);
}

static void test_customer_events(void **state)
{
    (void)state;
    assert_true(ntf_customer_event("case.registered"));
    assert_true(ntf_customer_event("case.resolved"));
    assert_true(ntf_customer_event("case.resolved_on_spot"));
    assert_true(ntf_customer_event("case.progress"));
    assert_false(ntf_customer_event("case.transferred")); /* internal: never told to customers */
    assert_false(ntf_customer_event("case.escalated"));
    assert_false(ntf_customer_event(""));
}

static void test_masking(void **state)
{
    (void)state;
    char o[64];
    ntf_mask_phone("13800001234", o, sizeof(o));
    assert_string_equal(o, "138****1234");
    ntf_mask_phone("1234", o, sizeof(o));
    assert_string_equal(o, "****34");
    ntf_mask_phone("", o, sizeof(o));
    assert_string_equal(o, "");
    ntf_mask_name("张三丰", o, sizeof(o));
    assert_string_equal(o, "张*");
    ntf_mask_name("Zhang", o, sizeof(o));
    assert_string_equal(o, "Z*");
    ntf_mask_name("", o, sizeof(o));
    assert_string_equal(o, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_check_refuses_with_the_place),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_standard_webhooks_vector),
        cmocka_unit_test(test_robot_signatures),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_masking),
        cmocka_unit_test(test_customer_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
