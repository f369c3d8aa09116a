/*
 * bus_test.c - the bus's pure parts: the wire layout, partitioning, the
 * ids it makes, and what the outbox accepts before anything reaches the
 * database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bus.h"

static void test_wire_decode_takes_a_well_formed_message(void **state)
{
    (void)state;
    static const uint8_t msg[] = {'c', 'a', 's', 'e', '.', 'x', 0, 0, 0,    0,   7,
                                  0,   0,   0,   0,   0,   0,   1, 2, 0xAA, 0xBB};
    const char *type;
    size_t tl, envlen;
    uint32_t part;
    uint64_t seq;
    const uint8_t *env;
    assert_int_equal(bus_wire_decode(msg, sizeof(msg), &type, &tl, &part, &seq, &env, &envlen),
                     SW_OK);
    assert_int_equal(tl, 6);
    assert_memory_equal(type, "case.x", 6);
    assert_int_equal(part, 7);
    assert_int_equal(seq, 258);
    assert_int_equal(envlen, 2);
    assert_int_equal(env[0], 0xAA);
}

static void test_wire_decode_refuses_malformed_messages(void **state)
{
    (void)state;
    const char *type;
    size_t tl, envlen;
    uint32_t part;
    uint64_t seq;
    const uint8_t *env;
    static const uint8_t no_nul[] = "case.registered-without-a-terminator";
    static const uint8_t empty_type[14] = {0};
    static const uint8_t short_header[] = {'c', 0, 0, 0, 0, 1, 0, 0};
    uint8_t long_type[BUS_TYPE_MAX + 20];
    memset(long_type, 'a', sizeof(long_type));
    long_type[BUS_TYPE_MAX + 1] = 0;
    assert_int_equal(
        bus_wire_decode(no_nul, sizeof(no_nul) - 1, &type, &tl, &part, &seq, &env, &envlen),
        SW_EINVAL);
    assert_int_equal(
        bus_wire_decode(empty_type, sizeof(empty_type), &type, &tl, &part, &seq, &env, &envlen),
        SW_EINVAL);
    assert_int_equal(
        bus_wire_decode(short_header, sizeof(short_header), &type, &tl, &part, &seq, &env, &envlen),
        SW_EINVAL);
    assert_int_equal(
        bus_wire_decode(long_type, sizeof(long_type), &type, &tl, &part, &seq, &env, &envlen),
        SW_EINVAL);
    assert_int_equal(bus_wire_decode(NULL, 0, &type, &tl, &part, &seq, &env, &envlen), SW_EINVAL);
}

static void test_partition_follows_the_case_then_the_event(void **state)
{
    (void)state;
    const char *c = "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f11";
    uint32_t p = bus_partition_of(c, "11111111-1111-4111-8111-111111111111", 16);
    assert_true(p < 16);
    assert_int_equal(bus_partition_of(c, "22222222-2222-4222-8222-222222222222", 16), p);
    assert_int_equal(bus_partition_of("", "22222222-2222-4222-8222-222222222222", 16),
                     bus_partition_of(NULL, "22222222-2222-4222-8222-222222222222", 16));
    assert_int_equal(bus_partition_of(c, NULL, 0), 0);
}

static sw_err add(struct bus_outbox *ob, const char *event_id, const char *case_id)
{
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    env.type = "case.registered";
    env.site = "SH01";
    env.event_id = (char *)event_id;
    env.case_id = (char *)case_id;
    return bus_outbox_add(ob, &env);
}

/* The binary COPY sends ids as 16 bytes: a malformed id must stop at the door. */
static void test_outbox_refuses_ids_that_are_not_uuids(void **state)
{
    (void)state;
    struct bus_outbox *ob = NULL;
    assert_int_equal(bus_outbox_alloc(&ob, 16), SW_OK);
    assert_int_equal(add(ob, "", ""), SW_OK); /* a new event id, no case */
    assert_int_equal(add(ob, "0B6F1A52-64C2-4A1C-9A4E-3C1D2B0E9F11", ""), SW_OK);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f11"), SW_OK);
    assert_int_equal(bus_outbox_len(ob), 3);
    assert_int_equal(add(ob, "not-a-uuid", ""), SW_EINVAL);
    assert_int_equal(add(ob, "0b6f1a52x64c2-4a1c-9a4e-3c1d2b0e9f11", ""), SW_EINVAL);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f1g"), SW_EINVAL);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f1"), SW_EINVAL);
    assert_int_equal(bus_outbox_len(ob), 3); /* nothing refused was staged */
    bus_outbox_clear(ob);
    assert_int_equal(bus_outbox_len(ob), 0);
    bus_outbox_free(ob);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

/*
 * The ids the services make are version 7: well formed, their first 48
 * bits the time they were made, in the order they were made (time, then
 * the fraction of the millisecond), and never the same twice.
 */
static void test_uuid_v7_is_time_ordered(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char ids[N][37];
    uint64_t before = now_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(bus_uuid_v7(ids[i]), SW_OK);
    uint64_t after = now_ms();
    for (int i = 0; i < N; i++) {
        const char *u = ids[i];
        assert_int_equal(strlen(u), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                assert_int_equal(u[k], '-');
            else
                assert_non_null(strchr("0123456789abcdef", u[k]));
        }
        assert_int_equal(u[14], '7');           /* the version */
        assert_non_null(strchr("89ab", u[19])); /* the variant */
        char hex[13];
        memcpy(hex, u, 8);
        memcpy(hex + 8, u + 9, 4);
        hex[12] = '\0';
        uint64_t ms = strtoull(hex, NULL, 16);
        assert_true(ms >= before && ms <= after);
        /* time and fraction (the first 18 characters) never go back */
        if (i > 0)
            assert_true(strncmp(ids[i - 1], u, 18) <= 0);
    }
    qsort(ids, N, sizeof(ids[0]), by_text);
    for (int i = 1; i < N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_decode_takes_a_well_formed_message),
        cmocka_unit_test(test_wire_decode_refuses_malformed_messages),
        cmocka_unit_test(test_partition_follows_the_case_then_the_event),
        cmocka_unit_test(test_outbox_refuses_ids_that_are_not_uuids),
        cmocka_unit_test(test_uuid_v7_is_time_ordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
