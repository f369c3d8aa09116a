/*
 * buf_test.c - the bounded buffer: growth, ceiling, JSON escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_grows_to_ceiling_and_no_further(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_string_equal(buf_cstr(&b), "");
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf_printf(&b, "%09d,", i), SW_OK);
    assert_int_equal(b.len, 100);
    assert_int_equal(buf_puts(&b, "x"), SW_ETOOBIG);
    assert_int_equal(b.len, 100); /* unchanged by the failed append */
    assert_int_equal(buf_printf(&b, "%d", 1), SW_ETOOBIG);
    assert_int_equal(strncmp(buf_cstr(&b), "000000000,000000001,", 20), 0);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
    buf_free(NULL);
}

/*
 * buf_printf formats into the room the buffer has and grows only when it
 * must: text too long for the room (the buffer grows), text that reaches
 * the ceiling exactly, text that fits the room, and text past the ceiling,
 * which leaves the contents as they were even though it was first written
 * into the room (and cut short there).
 */
static void test_printf_in_the_room_and_beyond(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_puts(&b, "0123456789"), SW_OK); /* 64 bytes allocated */
    assert_int_equal(b.cap, 64);
    assert_int_equal(buf_printf(&b, "%s-%053d", "ab", 7), SW_OK); /* 10 + 56 > 63: grows */
    assert_int_equal(b.len, 66);
    assert_int_equal(b.cap, 101);
    assert_int_equal(strncmp(buf_cstr(&b), "0123456789ab-000", 16), 0);
    assert_string_equal(buf_cstr(&b) + 63, "007");
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%0100d", 5), SW_OK); /* exactly the ceiling */
    assert_int_equal(b.len, 100);
    assert_int_equal(b.data[99], '5');
    assert_int_equal(b.data[100], '\0');
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%089d", 1), SW_OK);
    assert_int_equal(b.len, 89); /* 12 bytes of room, the NUL's included */
    assert_int_equal(buf_printf(&b, "%s", "abcdefghij"), SW_OK);
    assert_int_equal(b.len, 99);
    assert_int_equal(buf_printf(&b, "%s", "xy"), SW_ETOOBIG); /* 2 bytes of room, 1 allowed */
    assert_int_equal(b.len, 99);
    assert_int_equal(strlen(buf_cstr(&b)), 99); /* the cut-short "x" is gone */
    assert_string_equal(buf_cstr(&b) + 89, "abcdefghij");
    assert_int_equal(buf_printf(&b, "%d", 9), SW_OK);
    assert_string_equal(buf_cstr(&b) + 89, "abcdefghij9");
    buf_free(&b);
}

static void test_json_string(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1000);
    assert_int_equal(buf_json_string(&b, "a\"b\\c\n\x01 中"), SW_OK);
    assert_string_equal(buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001 中\"");
    buf_free(&b);

    buf_init(&b, 5);
    assert_int_equal(buf_puts(&b, "ab"), SW_OK);
    assert_int_equal(buf_json_string(&b, "too long"), SW_ETOOBIG);
    assert_string_equal(buf_cstr(&b), "ab"); /* rolled back */
    buf_free(&b);
}

static void test_pg_array(void **state)
{
    (void)state;
    struct buf b;
    const char *v[] = {"eng", "a\"b", "c\\d", "漏水", ""};
    buf_init(&b, 1000);
    assert_int_equal(buf_pg_array(&b, v, 5), SW_OK);
    assert_string_equal(buf_cstr(&b), "{\"eng\",\"a\\\"b\",\"c\\\\d\",\"漏水\",\"\"}");
    buf_reset(&b);
    assert_int_equal(buf_pg_array(&b, v, 0), SW_OK);
    assert_string_equal(buf_cstr(&b), "{}");
    /* NULL elements are NULL, not the text "NULL" (which is quoted) */
    const char *w[] = {NULL, "NULL", NULL};
    buf_reset(&b);
    assert_int_equal(buf_pg_array(&b, w, 3), SW_OK);
    assert_string_equal(buf_cstr(&b), "{NULL,\"NULL\",NULL}");
    buf_free(&b);
    buf_init(&b, 4);
    assert_int_equal(buf_pg_array(&b, v, 1), SW_ETOOBIG);
    buf_free(&b);
    /* element by element, the caller writing the braces: the same text */
    buf_init(&b, 1000);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(buf_pg_elem(&b, i == 0, i == 1 ? NULL : v[i]), SW_OK);
    assert_string_equal(buf_cstr(&b), "\"eng\",NULL,\"c\\\\d\"");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_to_ceiling_and_no_further),
        cmocka_unit_test(test_printf_in_the_room_and_beyond),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_pg_array),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
