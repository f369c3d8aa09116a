/*
 * calendar_test.c - working-day calendars on their hard edges: across
 * midnight, the lunch break, a holiday spanning a weekend, make-up
 * Saturdays (调休), a zone with daylight saving time (America/New_York)
 * next to one without (Asia/Shanghai), zones past their last recorded
 * transition, and iCalendar files good and bad.
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

#include "calendar.h"

#define H (3600LL * 1000000)
#define M (60LL * 1000000)

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    return ((int64_t)cal_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60) *
           1000000;
}

static int64_t local(const struct calendar *c, int y, int mo, int d, int h, int mi)
{
    int64_t l =
        (int64_t)cal_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60;
    return cal_tz_local_to_utc(c->tz, l) * 1000000;
}

static int32_t day(int y, int mo, int d)
{
    return cal_days_from_civil(y, mo, d);
}

/* Mainland China 2026 around the holidays the tests cross (deploy/data/cn-holidays-2026.txt). */
static void china(struct calendar *c)
{
    char err[200];
    assert_int_equal(
        cal_init(c, "Asia/Shanghai", "09:00-12:00, 13:30-18:00", 1 << 6 | 1 << 7, err, sizeof(err)),
        SW_OK);
    for (int d = 1; d <= 7; d++)
        assert_int_equal(cal_add_exception(c, day(2026, 10, d), CAL_HOLIDAY), SW_OK);
    for (int d = 25; d <= 27; d++)
        assert_int_equal(cal_add_exception(c, day(2026, 9, d), CAL_HOLIDAY), SW_OK);
    assert_int_equal(cal_add_exception(c, day(2026, 10, 10), CAL_WORKDAY), SW_OK);
    assert_int_equal(cal_add_exception(c, day(2026, 9, 20), CAL_WORKDAY), SW_OK);
    for (int d = 15; d <= 23; d++)
        assert_int_equal(cal_add_exception(c, day(2026, 2, d), CAL_HOLIDAY), SW_OK);
    assert_int_equal(cal_add_exception(c, day(2026, 2, 14), CAL_WORKDAY), SW_OK);
    assert_int_equal(cal_add_exception(c, day(2026, 2, 28), CAL_WORKDAY), SW_OK);
    /* a repeated entry replaces, it does not duplicate */
    assert_int_equal(cal_add_exception(c, day(2026, 10, 1), CAL_HOLIDAY), SW_OK);
    assert_int_equal(c->ndays, 7 + 3 + 2 + 9 + 2);
}

static int64_t add(const struct calendar *c, int64_t from, int64_t amount)
{
    int64_t out = 0;
    assert_int_equal(cal_add_working(c, from, amount, &out), SW_OK);
    return out;
}

static void test_dates(void **state)
{
    (void)state;
    int y, m, d;
    assert_int_equal(cal_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(cal_days_from_civil(2000, 3, 1), 11017);
    cal_civil_from_days(cal_days_from_civil(2028, 2, 29), &y, &m, &d);
    assert_true(y == 2028 && m == 2 && d == 29);
    cal_civil_from_days(-1, &y, &m, &d);
    assert_true(y == 1969 && m == 12 && d == 31);
    assert_int_equal(cal_iso_weekday(0), 4);                 /* Thursday */
    assert_int_equal(cal_iso_weekday(day(2026, 11, 23)), 1); /* Monday */
    assert_int_equal(cal_iso_weekday(day(2026, 10, 10)), 6); /* Saturday */
    assert_int_equal(cal_iso_weekday(day(1969, 12, 28)), 7); /* Sunday, before the epoch */
    int32_t v;
    assert_int_equal(cal_parse_date("2026-10-01", &v), SW_OK);
    assert_int_equal(v, day(2026, 10, 1));
    assert_int_equal(cal_parse_date("2026-02-29", &v), SW_EINVAL);
    assert_int_equal(cal_parse_date("2026-1-01", &v), SW_EINVAL);
    assert_int_equal(cal_parse_date("2026-10-01x", &v), SW_EINVAL);
    assert_int_equal(cal_parse_date(NULL, &v), SW_EINVAL);
}

static void test_zones(void **state)
{
    (void)state;
    struct cal_tz *ny, *sh;
    char err[200];
    assert_int_equal(cal_tz_load("America/New_York", &ny, err, sizeof(err)), SW_OK);
    assert_int_equal(cal_tz_load("Asia/Shanghai", &sh, err, sizeof(err)), SW_OK);
    assert_string_equal(cal_tz_name(ny), "America/New_York");
    int64_t s = utc(2026, 3, 8, 7, 0) / 1000000; /* 02:00 EST: clocks go forward */
    assert_int_equal(cal_tz_offset(ny, s - 1), -5 * 3600);
    assert_int_equal(cal_tz_offset(ny, s), -4 * 3600);
    s = utc(2026, 11, 1, 6, 0) / 1000000; /* 02:00 EDT: clocks go back */
    assert_int_equal(cal_tz_offset(ny, s - 1), -4 * 3600);
    assert_int_equal(cal_tz_offset(ny, s), -5 * 3600);
    assert_int_equal(cal_tz_offset(sh, s), 8 * 3600);
    /* past the file's last transition: the POSIX rule of its footer */
    assert_int_equal(cal_tz_offset(ny, utc(2051, 7, 1, 12, 0) / 1000000), -4 * 3600);
    assert_int_equal(cal_tz_offset(ny, utc(2051, 1, 1, 12, 0) / 1000000), -5 * 3600);
    assert_int_equal(cal_tz_offset(ny, utc(2051, 3, 12, 6, 59) / 1000000), -5 * 3600);
    assert_int_equal(cal_tz_offset(ny, utc(2051, 3, 12, 7, 0) / 1000000), -4 * 3600);
    assert_int_equal(cal_tz_offset(sh, utc(2051, 7, 1, 12, 0) / 1000000), 8 * 3600);
    /* before the first transition: local mean time of the first type */
    assert_true(cal_tz_offset(sh, utc(1890, 1, 1, 0, 0) / 1000000) > 8 * 3600 - 600);
    /* the spring gap reads with the offset before it; the autumn fold is the earlier */
    int64_t gap = (int64_t)day(2026, 3, 8) * 86400 + 2 * 3600LL + 30 * 60LL;
    assert_int_equal(cal_tz_local_to_utc(ny, gap), utc(2026, 3, 8, 7, 30) / 1000000);
    int64_t fold = (int64_t)day(2026, 11, 1) * 86400 + 1 * 3600LL + 30 * 60LL;
    assert_int_equal(cal_tz_local_to_utc(ny, fold), utc(2026, 11, 1, 5, 30) / 1000000);
    int64_t plain = (int64_t)day(2026, 7, 1) * 86400 + 9 * 3600LL;
    assert_int_equal(cal_tz_local_to_utc(ny, plain), utc(2026, 7, 1, 13, 0) / 1000000);
    assert_int_equal(cal_tz_local_to_utc(sh, plain), utc(2026, 7, 1, 1, 0) / 1000000);
    cal_tz_free(ny);
    cal_tz_free(sh);

    struct cal_tz *z = NULL;
    assert_int_equal(cal_tz_load("Mars/Olympus", &z, err, sizeof(err)), SW_ENOTFOUND);
    assert_non_null(strstr(err, "unknown time zone \"Mars/Olympus\""));
    assert_null(z);
    assert_int_equal(cal_tz_load("../../etc/passwd", &z, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "not an IANA time zone name"));
    assert_int_equal(cal_tz_load("", &z, err, sizeof(err)), SW_EINVAL);
    /* a file in the zone directory that is not a zone */
    char dir[] = "/tmp/shouwen-tz-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/Bad", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# not a zone\n", f);
    fclose(f);
    const char *old = getenv("TZDIR");
    char *saved = old != NULL ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1);
    assert_int_equal(cal_tz_load("Bad", &z, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "Bad: not a TZif"));
    assert_null(z);
    assert_int_equal(cal_tz_load("Asia/Shanghai", &z, err, sizeof(err)), SW_ENOTFOUND);
    /* with no database at all, UTC still works */
    assert_int_equal(cal_tz_load("UTC", &z, err, sizeof(err)), SW_OK);
    assert_int_equal(cal_tz_offset(z, utc(2026, 7, 1, 0, 0) / 1000000), 0);
    assert_int_equal(cal_tz_local_to_utc(z, 86400), 86400);
    assert_string_equal(cal_tz_name(z), "UTC");
    cal_tz_free(z);
    z = NULL;
    if (saved != NULL)
        setenv("TZDIR", saved, 1);
    else
        unsetenv("TZDIR");
    free(saved);
    remove(path);
    rmdir(dir);
}

/* A TZif file with no transitions and only a footer rule: every instant follows the rule. */
static size_t slim_tzif(uint8_t *buf, const char *footer, int32_t off0)
{
    uint8_t *p = buf;
    for (int block = 0; block < 2; block++) {
        memset(p, 0, 44);
        memcpy(p, "TZif2", 5);
        p[39] = 1; /* typecnt */
        p[43] = 4; /* charcnt */
        p += 44;
        p[0] = (uint8_t)((uint32_t)off0 >> 24);
        p[1] = (uint8_t)((uint32_t)off0 >> 16);
        p[2] = (uint8_t)((uint32_t)off0 >> 8);
        p[3] = (uint8_t)off0;
        p[4] = 0;
        p[5] = 0;
        memcpy(p + 6, "XST", 4);
        p += 10;
    }
    *p++ = '\n';
    memcpy(p, footer, strlen(footer));
    p += strlen(footer);
    *p++ = '\n';
    return (size_t)(p - buf);
}

static void test_posix_rules(void **state)
{
    (void)state;
    uint8_t buf[256];
    char err[200];
    struct cal_tz *tz;
    /* the southern hemisphere: daylight time spans the new year */
    size_t n = slim_tzif(buf, "AEST-10AEDT,M10.1.0,M4.1.0/3", 10 * 3600);
    assert_int_equal(cal_tz_parse(buf, n, "Sydney", &tz, err, sizeof(err)), SW_OK);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 1, 15, 0, 0) / 1000000), 11 * 3600);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 7, 15, 0, 0) / 1000000), 10 * 3600);
    /* 2026-04-05 03:00 AEDT = 04-04 16:00 UTC; 2026-10-04 02:00 AEST = 10-03 16:00 UTC */
    assert_int_equal(cal_tz_offset(tz, utc(2026, 4, 4, 15, 59) / 1000000), 11 * 3600);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 4, 4, 16, 0) / 1000000), 10 * 3600);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 10, 3, 15, 59) / 1000000), 10 * 3600);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 10, 3, 16, 0) / 1000000), 11 * 3600);
    cal_tz_free(tz);
    /* a Julian-day rule, and names in angle brackets */
    n = slim_tzif(buf, "<-03>3<-02>,J60/0,J300/0", -3 * 3600);
    assert_int_equal(cal_tz_parse(buf, n, "J", &tz, err, sizeof(err)), SW_OK);
    /* J60 is March 1 in every year, leap or not */
    assert_int_equal(cal_tz_offset(tz, utc(2028, 3, 1, 2, 59) / 1000000), -3 * 3600);
    assert_int_equal(cal_tz_offset(tz, utc(2028, 3, 1, 3, 0) / 1000000), -2 * 3600);
    cal_tz_free(tz);
    /* standard time only */
    n = slim_tzif(buf, "CST-8", 8 * 3600);
    assert_int_equal(cal_tz_parse(buf, n, "C", &tz, err, sizeof(err)), SW_OK);
    assert_int_equal(cal_tz_offset(tz, utc(2026, 7, 1, 0, 0) / 1000000), 8 * 3600);
    cal_tz_free(tz);
    /* broken files are refused, whole or cut */
    n = slim_tzif(buf, "CST-8", 8 * 3600);
    assert_int_equal(cal_tz_parse(buf, 30, "cut", &tz, err, sizeof(err)), SW_EINVAL);
    assert_int_equal(cal_tz_parse(buf, 60, "cut", &tz, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "truncated"));
    buf[0] = 'X';
    assert_int_equal(cal_tz_parse(buf, n, "bad", &tz, err, sizeof(err)), SW_EINVAL);
    assert_null(tz);
}

static void test_hours(void **state)
{
    (void)state;
    struct cal_period p[CAL_PERIODS_MAX];
    size_t n;
    char err[200], text[200];
    assert_int_equal(cal_parse_hours("13:30-18:00,09:00-12:00", p, &n, err, sizeof(err)), SW_OK);
    assert_int_equal(n, 2);
    cal_format_hours(p, n, text, sizeof(text));
    assert_string_equal(text, "09:00-12:00,13:30-18:00");
    assert_int_equal(cal_parse_hours("22:00-24:00,00:00-06:00", p, &n, err, sizeof(err)), SW_OK);
    assert_int_equal(p[0].start, 0);
    assert_int_equal(p[1].end, 1440);

    assert_int_equal(cal_parse_hours("09:00-12:00,11:00-14:00", p, &n, err, sizeof(err)),
                     SW_EINVAL);
    assert_string_equal(err, "11:00-14:00 overlaps 09:00-12:00");
    assert_int_equal(cal_parse_hours("22:00-06:00", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "22:00-06:00 ends before it starts"));
    assert_int_equal(cal_parse_hours("9-18", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "\"9-18\" is not a period"));
    assert_int_equal(cal_parse_hours("24:00-24:00", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_int_equal(cal_parse_hours("09:00-18:60", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_int_equal(cal_parse_hours("09:00-12:00,", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_int_equal(cal_parse_hours("09:00-12:00;13:00-14:00", p, &n, err, sizeof(err)),
                     SW_EINVAL);
    assert_int_equal(cal_parse_hours("", p, &n, err, sizeof(err)), SW_EINVAL);
    assert_int_equal(cal_parse_hours("00:00-01:00,01:00-02:00,02:00-03:00,03:00-04:00,"
                                     "04:00-05:00,05:00-06:00,06:00-07:00,07:00-08:00,"
                                     "08:00-09:00",
                                     p, &n, err, sizeof(err)),
                     SW_ERANGE);

    struct calendar c;
    assert_int_equal(cal_init(&c, "Asia/Shanghai", "09:00-18:00", 0xfe, err, sizeof(err)),
                     SW_EINVAL);
    assert_non_null(strstr(err, "every weekday is a rest day"));
    assert_int_equal(cal_init(&c, "Nowhere/City", "09:00-18:00", 0, err, sizeof(err)),
                     SW_ENOTFOUND);
    cal_free(&c);
}

static void test_china(void **state)
{
    (void)state;
    struct calendar c;
    china(&c);
    assert_int_equal(c.day_work_us, 7 * H + 30 * M);
    /* across midnight: Tuesday 17:00 + 2 h is Wednesday 10:00 */
    assert_int_equal(add(&c, local(&c, 2026, 11, 24, 17, 0), 2 * H),
                     local(&c, 2026, 11, 25, 10, 0));
    /* from the evening, the night and the early morning alike: next morning's working time */
    assert_int_equal(add(&c, local(&c, 2026, 11, 24, 23, 59), 30 * M),
                     local(&c, 2026, 11, 25, 9, 30));
    assert_int_equal(add(&c, local(&c, 2026, 11, 25, 0, 0), 30 * M),
                     local(&c, 2026, 11, 25, 9, 30));
    /* the lunch break: 11:30 + 1 h is 14:00 */
    assert_int_equal(add(&c, local(&c, 2026, 11, 24, 11, 30), 1 * H),
                     local(&c, 2026, 11, 24, 14, 0));
    assert_int_equal(add(&c, local(&c, 2026, 11, 24, 12, 30), 1 * H),
                     local(&c, 2026, 11, 24, 14, 30));
    /* exactly the rest of a period ends at its end */
    assert_int_equal(add(&c, local(&c, 2026, 11, 24, 11, 0), 1 * H),
                     local(&c, 2026, 11, 24, 12, 0));
    /* nothing to add: the instant itself, even outside hours */
    assert_int_equal(add(&c, local(&c, 2026, 11, 28, 3, 0), 0), local(&c, 2026, 11, 28, 3, 0));
    /* a weekend: Friday 17:00 + 1 working day (7 h 30: 1 h on Friday) is Monday 17:00 */
    int64_t out;
    assert_int_equal(cal_add_working_days(&c, local(&c, 2026, 11, 27, 17, 0), 1, &out), SW_OK);
    assert_int_equal(out, local(&c, 2026, 11, 30, 17, 0));
    /* from a morning: 10:00 + 2 working days crosses two lunches and a weekend */
    assert_int_equal(cal_add_working_days(&c, local(&c, 2026, 11, 26, 10, 0), 2, &out), SW_OK);
    assert_int_equal(out, local(&c, 2026, 11, 30, 10, 0));
    /* the National Day week spans a weekend: 9-30 17:00 + 1 working day is 10-08 17:00 */
    assert_int_equal(cal_add_working_days(&c, local(&c, 2026, 9, 30, 17, 0), 1, &out), SW_OK);
    assert_int_equal(out, local(&c, 2026, 10, 8, 17, 0));
    /* Mid-Autumn (Fri-Sun) and its make-up Sunday before it: 9-19 is Saturday, 9-20 worked */
    assert_int_equal(add(&c, local(&c, 2026, 9, 18, 17, 0), 2 * H), local(&c, 2026, 9, 20, 10, 0));
    assert_int_equal(add(&c, local(&c, 2026, 9, 24, 17, 0), 2 * H), local(&c, 2026, 9, 28, 10, 0));
    /* a make-up Saturday is worked: Friday 10-09 17:00 + 2 h is Saturday 10-10 10:00 */
    assert_int_equal(add(&c, local(&c, 2026, 10, 9, 17, 0), 2 * H), local(&c, 2026, 10, 10, 10, 0));
    /* Spring Festival: Saturday 02-14 is worked, then nine days off */
    assert_int_equal(add(&c, local(&c, 2026, 2, 13, 17, 0), 2 * H), local(&c, 2026, 2, 14, 10, 0));
    assert_int_equal(add(&c, local(&c, 2026, 2, 14, 17, 0), 2 * H), local(&c, 2026, 2, 24, 10, 0));
    /* measuring: Friday 17:00 to Monday 10:00 is 2 h; a holiday counts nothing */
    assert_int_equal(
        cal_working_between(&c, local(&c, 2026, 11, 27, 17, 0), local(&c, 2026, 11, 30, 10, 0)),
        2 * H);
    assert_int_equal(
        cal_working_between(&c, local(&c, 2026, 10, 1, 0, 0), local(&c, 2026, 10, 8, 0, 0)), 0);
    assert_int_equal(
        cal_working_between(&c, local(&c, 2026, 11, 24, 11, 30), local(&c, 2026, 11, 24, 14, 0)),
        1 * H);
    assert_int_equal(
        cal_working_between(&c, local(&c, 2026, 11, 24, 14, 0), local(&c, 2026, 11, 24, 11, 30)),
        0);
    /* adding then measuring gives back the amount */
    int64_t from = local(&c, 2026, 9, 29, 10, 17);
    for (int64_t a = 0; a < 40 * H; a += 97 * M)
        assert_int_equal(cal_working_between(&c, from, add(&c, from, a)), a);
    assert_true(cal_is_working_day(&c, day(2026, 10, 10)));
    assert_false(cal_is_working_day(&c, day(2026, 10, 5)));
    assert_false(cal_is_working_day(&c, day(2026, 11, 29)));
    assert_int_equal(cal_local_day(&c, utc(2026, 11, 23, 16, 0)), day(2026, 11, 24));
    cal_free(&c);
}

static void test_daylight_saving(void **state)
{
    (void)state;
    struct calendar ny, sh;
    char err[200];
    assert_int_equal(
        cal_init(&ny, "America/New_York", "09:00-17:00", 1 << 6 | 1 << 7, err, sizeof(err)), SW_OK);
    assert_int_equal(
        cal_init(&sh, "Asia/Shanghai", "09:00-17:00", 1 << 6 | 1 << 7, err, sizeof(err)), SW_OK);
    /* Friday 16:00 + 2 h: Monday 10:00 local in both; in New York the clocks moved between */
    assert_int_equal(add(&ny, local(&ny, 2026, 3, 6, 16, 0), 2 * H), utc(2026, 3, 9, 14, 0));
    assert_int_equal(add(&sh, local(&sh, 2026, 3, 6, 16, 0), 2 * H), utc(2026, 3, 9, 2, 0));
    assert_int_equal(local(&ny, 2026, 3, 6, 16, 0), utc(2026, 3, 6, 21, 0));
    /* and back in autumn */
    assert_int_equal(add(&ny, local(&ny, 2026, 10, 30, 16, 0), 2 * H), utc(2026, 11, 2, 15, 0));
    assert_int_equal(
        cal_working_between(&ny, local(&ny, 2026, 3, 6, 9, 0), local(&ny, 2026, 3, 9, 17, 0)),
        16 * H);
    cal_free(&ny);
    cal_free(&sh);
    /* a round-the-clock calendar: the spring-forward Sunday has 23 hours, the autumn one 25 */
    struct calendar all;
    assert_int_equal(cal_init(&all, "America/New_York", "00:00-24:00", 0, err, sizeof(err)), SW_OK);
    assert_int_equal(
        cal_working_between(&all, local(&all, 2026, 3, 8, 0, 0), local(&all, 2026, 3, 9, 0, 0)),
        23 * H);
    assert_int_equal(
        cal_working_between(&all, local(&all, 2026, 11, 1, 0, 0), local(&all, 2026, 11, 2, 0, 0)),
        25 * H);
    assert_int_equal(add(&all, local(&all, 2026, 3, 8, 1, 0), 2 * H), utc(2026, 3, 8, 8, 0));
    cal_free(&all);
}

static void test_nowhere_to_work(void **state)
{
    (void)state;
    struct calendar c;
    char err[200];
    assert_int_equal(cal_init(&c, "UTC", "09:00-17:00", 0, err, sizeof(err)), SW_OK);
    for (int32_t d = day(2026, 1, 1); d < day(2026, 1, 1) + CAL_SCAN_DAYS + 10; d++)
        assert_int_equal(cal_add_exception(&c, d, CAL_HOLIDAY), SW_OK);
    int64_t out;
    assert_int_equal(cal_add_working(&c, utc(2026, 1, 1, 0, 0), 1 * H, &out), SW_ERANGE);
    assert_int_equal(cal_add_working_days(&c, 0, INT64_MAX / 2, &out), SW_ERANGE);
    cal_free(&c);
}

static void test_holidays_missing(void **state)
{
    (void)state;
    struct calendar c;
    china(&c);
    int year = 0;
    assert_false(cal_holidays_missing(&c, utc(2026, 6, 1, 0, 0), &year));
    /* from November on, next year's dates are due */
    assert_true(cal_holidays_missing(&c, utc(2026, 11, 5, 0, 0), &year));
    assert_int_equal(year, 2027);
    /* a local November: 2026-10-31 16:30 UTC is already November 1 in Shanghai */
    assert_true(cal_holidays_missing(&c, utc(2026, 10, 31, 16, 30), &year));
    assert_false(cal_holidays_missing(&c, utc(2026, 10, 31, 15, 30), &year));
    assert_int_equal(cal_add_exception(&c, day(2027, 1, 1), CAL_HOLIDAY), SW_OK);
    assert_false(cal_holidays_missing(&c, utc(2026, 11, 5, 0, 0), &year));
    /* a year with only make-up days has no holidays */
    assert_true(cal_holidays_missing(&c, utc(2028, 3, 1, 0, 0), &year));
    assert_int_equal(year, 2028);
    cal_free(&c);
}

struct got {
    int n;
    int32_t days[64];
    enum cal_day_kind kinds[64];
    char names[64][64];
};

static sw_err collect(int32_t d, enum cal_day_kind kind, const char *name, void *arg)
{
    struct got *g = arg;
    if (g->n == 64)
        return SW_ERANGE;
    g->days[g->n] = d;
    g->kinds[g->n] = kind;
    snprintf(g->names[g->n], sizeof(g->names[0]), "%s", name);
    g->n++;
    return SW_OK;
}

static const char good_ics[] = "\xEF\xBB\xBF"
                               "BEGIN:VCALENDAR\r\n"
                               "VERSION:2.0\r\n"
                               "PRODID:-//test//cn holidays//ZH\r\n"
                               "BEGIN:VTIMEZONE\r\n"
                               "TZID:Asia/Shanghai\r\n"
                               "END:VTIMEZONE\r\n"
                               "BEGIN:VEVENT\r\n"
                               "UID:1@test\r\n"
                               "DTSTART;VALUE=DATE:20260101\r\n"
                               "DTEND;VALUE=DATE:20260104\r\n"
                               "SUMMARY:元旦\\, New\r\n"
                               "  Year\r\n"
                               "BEGIN:VALARM\r\n"
                               "TRIGGER:-PT15M\r\n"
                               "END:VALARM\r\n"
                               "END:VEVENT\r\n"
                               "BEGIN:VEVENT\n"
                               "DTSTART:20260104\n"
                               "SUMMARY:元旦补班\n"
                               "END:VEVENT\n"
                               "BEGIN:VEVENT\n"
                               "DTSTART;VALUE=DATE:20260214\n"
                               "X-SHOUWEN-KIND:workday\n"
                               "SUMMARY:Spring Festival make-up\n"
                               "END:VEVENT\n"
                               "BEGIN:VEVENT\n"
                               "DTSTART;VALUE=DATE:20260228\n"
                               "CATEGORIES:HOLIDAY-CN,WORKDAY\n"
                               "END:VEVENT\n"
                               "BEGIN:VEVENT\n"
                               "DTSTART;VALUE=DATE:20261001\n"
                               "DURATION:P1W\n"
                               "SUMMARY:国庆节\n"
                               "END:VEVENT\n"
                               "END:VCALENDAR\n";

static sw_err parse(const char *text, struct got *g, char *err)
{
    memset(g, 0, sizeof(*g));
    return cal_ics_parse(text, strlen(text), collect, g, err, 200);
}

static void test_ics(void **state)
{
    (void)state;
    struct got g;
    char err[200] = "";
    assert_int_equal(parse(good_ics, &g, err), SW_OK);
    assert_int_equal(g.n, 3 + 1 + 1 + 1 + 7);
    assert_int_equal(g.days[0], day(2026, 1, 1));
    assert_int_equal(g.days[2], day(2026, 1, 3));
    assert_int_equal(g.kinds[0], CAL_HOLIDAY);
    assert_string_equal(g.names[0], "元旦, New Year");
    assert_int_equal(g.days[3], day(2026, 1, 4));
    assert_int_equal(g.kinds[3], CAL_WORKDAY); /* 补班 in the summary */
    assert_int_equal(g.kinds[4], CAL_WORKDAY); /* X-SHOUWEN-KIND */
    assert_int_equal(g.kinds[5], CAL_WORKDAY); /* CATEGORIES */
    assert_int_equal(g.days[12], day(2026, 10, 7));
    assert_int_equal(g.kinds[12], CAL_HOLIDAY);

    static const struct {
        const char *text, *err;
    } bad[] = {
        {"", "no BEGIN:VCALENDAR"},
        {"hello world\n", "line 1: not a content line"},
        {"BEGIN:VEVENT\nEND:VEVENT\n", "line 1: an iCalendar file starts with BEGIN:VCALENDAR"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101T090000Z\nEND:VEVENT\nEND:VCALENDAR\n",
         "line 3: the date has a time"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260230\nEND:VEVENT\nEND:VCALENDAR\n",
         "line 3: not a real date"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n",
         "line 2: an event without DTSTART"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nRRULE:FREQ=YEARLY\nEND:VEVENT\n"
         "END:VCALENDAR\n",
         "line 4: repeating events"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nDTEND:20260101\nEND:VEVENT\n"
         "END:VCALENDAR\n",
         "line 2: the event's DTEND is not after its DTSTART"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nDURATION:PT3H\nEND:VEVENT\n"
         "END:VCALENDAR\n",
         "line 4: DURATION must be whole days"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nX-SHOUWEN-KIND:maybe\nEND:VEVENT\n"
         "END:VCALENDAR\n",
         "line 4: X-SHOUWEN-KIND is holiday or workday"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\n", "line 3: the file ends inside"},
        {"BEGIN:VCALENDAR\nBEGIN:VEVENT\nBEGIN:VEVENT\n", "line 3: BEGIN:VEVENT inside another"},
        {"BEGIN:VCALENDAR\nEND:VEVENT\n", "line 2: END:VEVENT without BEGIN:VEVENT"},
        {"BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VEVENT\n", "line 3: BEGIN after END:VCALENDAR"},
        {"BEGIN:VCALENDAR\nEND:VCALENDAR\nX:1\n", "line 3: content after END:VCALENDAR"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i].text, &g, err), SW_EINVAL);
        if (strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, bad[i].err);
    }
    /* a NUL byte and an endless line are refused, not read past */
    char nul[] = "BEGIN:VCALENDAR\nX-A:a\0b\nEND:VCALENDAR\n";
    assert_int_equal(cal_ics_parse(nul, sizeof(nul) - 1, collect, &g, err, sizeof(err)), SW_EINVAL);
    assert_non_null(strstr(err, "line 2: a NUL byte"));
    size_t big = 10000;
    char *longline = malloc(big + 40);
    assert_non_null(longline);
    snprintf(longline, big + 40, "%s", "BEGIN:VCALENDAR\nX-A:");
    memset(longline + 20, 'a', big);
    snprintf(longline + 20 + big, 20, "\nEND:VCALENDAR\n");
    assert_int_equal(cal_ics_parse(longline, strlen(longline), collect, &g, err, sizeof(err)),
                     SW_EINVAL);
    assert_non_null(strstr(err, "line 2: a content line longer than 4096 bytes"));
    free(longline);
    /* a callback that refuses stops the reading */
    memset(&g, 0, sizeof(g));
    g.n = 64;
    assert_int_equal(cal_ics_parse(good_ics, strlen(good_ics), collect, &g, err, sizeof(err)),
                     SW_ERANGE);
    assert_non_null(strstr(err, "line 7: the event was refused"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_zones),
        cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_hours),
        cmocka_unit_test(test_china),
        cmocka_unit_test(test_daylight_saving),
        cmocka_unit_test(test_nowhere_to_work),
        cmocka_unit_test(test_holidays_missing),
        cmocka_unit_test(test_ics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
