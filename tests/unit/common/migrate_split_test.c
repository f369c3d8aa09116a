/*
 * migrate_split_test.c - cutting migration files into statements, and
 * mapping PostgreSQL's error positions back to file lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migrate.h"

static char *stmt(const char *sql, const struct migrate_stmt *s)
{
    return strndup(sql + s->off, s->len);
}

static void test_split(void **state)
{
    (void)state;
    const char *sql = "-- header; with a semicolon\n"                     /* 1 */
                      "CREATE TABLE a (x text DEFAULT ';');\n"            /* 2 */
                      "\n"                                                /* 3 */
                      "/* block ; /* nested ; */ still */\n"              /* 4 */
                      "CREATE FUNCTION f() RETURNS int AS $body$\n"       /* 5 */
                      "BEGIN RETURN 1; END;\n"                            /* 6 */
                      "$body$ LANGUAGE plpgsql;\n"                        /* 7 */
                      "SELECT 'it''s', E'a\\';b', \"q;\"\"x\" , $$;$$;\n" /* 8 */
                      "SELECT a$b, $1 ; ;\n"                              /* 9 */
                      "  -- trailing comment only\n";                     /* 10 */
    struct migrate_stmt *st = NULL;
    size_t n = 0;
    int line = 0;
    assert_int_equal(migrate_split(sql, strlen(sql), &st, &n, &line), SW_OK);
    assert_int_equal(n, 4);
    const char *want[] = {
        "CREATE TABLE a (x text DEFAULT ';')",
        "CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN RETURN 1; END;\n$body$ LANGUAGE plpgsql",
        "SELECT 'it''s', E'a\\';b', \"q;\"\"x\" , $$;$$",
        "SELECT a$b, $1 ",
    };
    int lines[] = {2, 5, 8, 9};
    for (size_t i = 0; i < n; i++) {
        char *s = stmt(sql, &st[i]);
        assert_string_equal(s, want[i]);
        assert_int_equal(st[i].line, lines[i]);
        free(s);
    }
    /* position 1 of statement 2 is line 5; "LANGUAGE" is on line 7 */
    assert_int_equal(migrate_line_of(sql, &st[1], 1), 5);
    const char *lang = strstr(sql, "LANGUAGE");
    int pos = (int)(lang - (sql + st[1].off)) + 1;
    assert_int_equal(migrate_line_of(sql, &st[1], pos), 7);
    free(st);
}

static void test_last_statement_without_semicolon(void **state)
{
    (void)state;
    const char *sql = "SELECT 1;\nSELECT 2";
    struct migrate_stmt *st = NULL;
    size_t n = 0;
    int line = 0;
    assert_int_equal(migrate_split(sql, strlen(sql), &st, &n, &line), SW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(st[1].line, 2);
    assert_int_equal(st[1].len, 8);
    free(st);
}

static void test_positions_count_characters_not_bytes(void **state)
{
    (void)state;
    const char *sql = "COMMENT ON TABLE t IS '中文\n说明' bad;";
    struct migrate_stmt *st = NULL;
    size_t n = 0;
    int line = 0;
    assert_int_equal(migrate_split(sql, strlen(sql), &st, &n, &line), SW_OK);
    assert_int_equal(n, 1);
    /*
     * Characters (1-based): 23 ASCII, 中 24, 文 25, newline 26, 说 27.
     * Counting bytes instead, position 27 would still be inside 中文, line 1.
     */
    assert_int_equal(migrate_line_of(sql, &st[0], 27), 2);
    assert_int_equal(migrate_line_of(sql, &st[0], 25), 1);
    free(st);
}

static void test_unterminated(void **state)
{
    (void)state;
    const char *bad[] = {"SELECT 1;\nSELECT 'open;\n", "SELECT 1;\n\n/* never closed",
                         "CREATE FUNCTION f() AS $x$ body;\n", "SELECT \"id"};
    int lines[] = {2, 3, 1, 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct migrate_stmt *st = (void *)0x1;
        size_t n = 99;
        int line = 0;
        assert_int_equal(migrate_split(bad[i], strlen(bad[i]), &st, &n, &line), SW_EINVAL);
        assert_int_equal(line, lines[i]);
        assert_ptr_equal(st, (void *)0x1); /* outputs untouched on failure */
        assert_int_equal(n, 99);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_last_statement_without_semicolon),
        cmocka_unit_test(test_positions_count_characters_not_bytes),
        cmocka_unit_test(test_unterminated),
    };
    return cmocka_run_group_tests_name("migrate_split", tests, NULL, NULL);
}
