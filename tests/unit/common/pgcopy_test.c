/*
 * pgcopy_test.c - the binary COPY rows as they go on the wire, and the
 * first failure kept (a malformed id stops the rows, names the value).
 * The COPY itself against a real server: tests/integration (bus_test's
 * outbox, audit_test's log).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgcopy.h"

/* A pgcopy that has not talked to a server: its rows stay in the buffer. */
static void offline(struct pgcopy *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->what = "write the test rows";
    buf_init(&pc->b, 1u << 20);
}

static void test_fields_on_the_wire(void **state)
{
    (void)state;
    struct pgcopy pc;
    offline(&pc);
    pgcopy_row(&pc, 6);
    pgcopy_int8(&pc, -2);
    pgcopy_int4(&pc, 258);
    pgcopy_uuid(&pc, "00112233-4455-6677-8899-AABBCCddeeff");
    pgcopy_text(&pc, NULL);
    pgcopy_text(&pc, "漏");
    pgcopy_time_us(&pc, INT64_C(946684800000001)); /* 2000-01-01 00:00:00.000001 UTC */
    static const uint8_t want[] = {
        0,    6,                                                                /* fields */
        0,    0,    0,    8,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* int8 -2 */
        0,    0,    0,    4,    0,    0,    1,    2,                            /* int4 258 */
        0,    0,    0,    16,   0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,                            /* uuid */
        0xff, 0xff, 0xff, 0xff,                                              /* NULL */
        0,    0,    0,    3,    0xe6, 0xbc, 0x8f,                            /* text, UTF-8 */
        0,    0,    0,    8,    0,    0,    0,    0,    0,    0,    0,    1, /* 1 us after
                                                                                PostgreSQL's epoch
                                                                              */
    };
    assert_int_equal(pc.rv, SW_OK);
    assert_int_equal(pc.rows, 1);
    assert_int_equal(pc.b.len, sizeof(want));
    assert_memory_equal(pc.b.data, want, sizeof(want));
    char err[256] = "";
    assert_int_equal(pgcopy_end(&pc, err, sizeof(err)), SW_OK);
    assert_null(pc.b.data);
}

static void test_bad_uuid_stops_the_rows(void **state)
{
    (void)state;
    struct pgcopy pc;
    offline(&pc);
    pgcopy_row(&pc, 2);
    pgcopy_uuid(&pc, ""); /* empty is NULL, not an error */
    assert_int_equal(pc.rv, SW_OK);
    pgcopy_uuid(&pc, "00112233-4455-6677-8899-aabbccddeefg");
    assert_int_equal(pc.rv, SW_EINVAL);
    size_t len = pc.b.len;
    pgcopy_row(&pc, 1);
    pgcopy_int8(&pc, 1);
    assert_int_equal(pc.b.len, len); /* nothing after the failure */
    char err[256] = "";
    assert_int_equal(pgcopy_end(&pc, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "\"00112233-4455-6677-8899-aabbccddeefg\" is not a UUID"));
    assert_null(pc.b.data);
}

static void test_uuid_bytes(void **state)
{
    (void)state;
    uint8_t u[16];
    assert_true(pgcopy_uuid_bytes("ffffffff-ffff-ffff-ffff-ffffffffffff", u));
    assert_int_equal(u[0], 0xff);
    assert_int_equal(u[15], 0xff);
    assert_false(pgcopy_uuid_bytes("ffffffff-ffff-ffff-ffff-fffffffffff", u));   /* short */
    assert_false(pgcopy_uuid_bytes("ffffffff-ffff-ffff-ffff-ffffffffffff0", u)); /* long */
    assert_false(pgcopy_uuid_bytes("ffffffffaffff-ffff-ffff-ffffffffffff", u));  /* no dash */
    assert_false(pgcopy_uuid_bytes("{fffffff-ffff-ffff-ffff-ffffffffffff", u));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_on_the_wire),
        cmocka_unit_test(test_bad_uuid_stops_the_rows),
        cmocka_unit_test(test_uuid_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
