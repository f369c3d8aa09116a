/*
 * calendar.h - working-day calendars (工作日历): time zones, working hours,
 * rest days, public holidays and make-up working days (调休), and the
 * arithmetic the clocks of first-contact responsibility need: add N working
 * minutes, hours or days to an instant, and measure the working time between
 * two instants.
 *
 * Time zones come from the system's IANA database (TZif files under
 * /usr/share/zoneinfo, or $TZDIR), read by this module itself: no TZ
 * environment variable, no tzset(), no process-wide state, so any number of
 * threads may each use any number of zones.  Instants past a zone's last
 * recorded transition follow the POSIX rule at the end of its file.
 *
 * The model.  A calendar has one time zone; one list of working periods
 * per working day in local wall-clock time ("09:00-12:00,13:30-18:00"),
 * sorted, not overlapping, within one day (a night shift is written as two
 * periods, "22:00-24:00,00:00-06:00"); the ISO weekdays that are rest days
 * (6 and 7 by default); and dated exceptions: a holiday is a rest day
 * whatever its weekday, a workday (补班) is a working day whatever its
 * weekday, with the usual periods.  A period that a daylight-saving change
 * cuts short is counted as the real time it lasts.
 *
 * Working days as an amount.  "N working days" is N times the working time
 * of one working day (09:00-18:00 with a 90-minute lunch: 7 h 30 min), so
 * "answer within 1 working day" from Friday 17:00 falls due on Monday at
 * 17:00, and a holiday week in between is skipped.
 *
 * Times are unix microseconds (UTC) unless named local; local days are
 * counted from 1970-01-01 in the calendar's zone.
 *
 * Thread-safety: a calendar is read-only once built; every function is
 * reentrant.
 */
#ifndef SHOUWEN_CALENDAR_H
#define SHOUWEN_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CAL_PERIODS_MAX 8    /* working periods of one day */
#define CAL_TZ_NAME_MAX 64   /* as core.sites.time_zone */
#define CAL_SCAN_DAYS   4000 /* a search for working time gives up after this many days */
#define CAL_DAY_US      86400000000LL

/* ---- time zones ----------------------------------------------------------------------- */

struct cal_tz;

/*
 * cal_tz_load reads zone `name` ("Asia/Shanghai", "America/New_York",
 * "UTC") from $TZDIR or /usr/share/zoneinfo.  A name that is not a zone
 * (malformed, absent, not a TZif file) is SW_EINVAL / SW_ENOTFOUND with the
 * reason in `err`.  Free with cal_tz_free.
 */
sw_err cal_tz_load(const char *name, struct cal_tz **out, char *err, size_t errlen);
/* cal_tz_parse reads a zone from TZif bytes (for tests and embedded zones). */
sw_err cal_tz_parse(const uint8_t *data, size_t len, const char *name, struct cal_tz **out,
                    char *err, size_t errlen);
void cal_tz_free(struct cal_tz *tz);
const char *cal_tz_name(const struct cal_tz *tz);
/* Offset from UTC, in seconds east, at the UTC instant `utc_s` (seconds). */
int32_t cal_tz_offset(const struct cal_tz *tz, int64_t utc_s);
/*
 * The UTC instant (seconds) of local wall-clock time `local_s` (seconds
 * since 1970-01-01 00:00 local).  A local time that happens twice (the
 * autumn fold) is the earlier; one that never happens (the spring gap) is
 * read with the offset before the gap, so 02:30 on the spring-forward day
 * in New York is 03:30 EDT.
 */
int64_t cal_tz_local_to_utc(const struct cal_tz *tz, int64_t local_s);

/* ---- dates ----------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date; month 1-12. */
int32_t cal_days_from_civil(int year, int month, int day);
void cal_civil_from_days(int32_t days, int *year, int *month, int *day);
/* ISO weekday of a day count: 1 = Monday ... 7 = Sunday. */
int cal_iso_weekday(int32_t days);
/* "2026-10-01" -> days; SW_EINVAL unless exactly YYYY-MM-DD and a real date. */
sw_err cal_parse_date(const char *s, int32_t *days);

/* ---- calendars ------------------------------------------------------------------------- */

struct cal_period {
    int16_t start; /* minutes after local midnight, 0..1439 */
    int16_t end;   /* exclusive, start+1..1440 */
};

enum cal_day_kind { CAL_HOLIDAY = 1, CAL_WORKDAY = 2 };

struct cal_exception {
    int32_t day; /* local day count */
    enum cal_day_kind kind;
};

struct calendar {
    struct cal_tz *tz; /* owned */
    struct cal_period periods[CAL_PERIODS_MAX];
    size_t nperiods;
    uint8_t rest;               /* bit d set: ISO weekday d (1..7) is a rest day */
    struct cal_exception *days; /* sorted by day, distinct; owned */
    size_t ndays;
    int64_t day_work_us; /* working time of one working day (nominal) */
};

/*
 * cal_parse_hours reads "09:00-12:00,13:30-18:00" (spaces allowed around
 * the commas; "24:00" only as an end) into sorted periods.  Refused with
 * the reason: a malformed period, one that ends before it starts (split it
 * at midnight), periods that overlap, more than CAL_PERIODS_MAX.
 */
sw_err cal_parse_hours(const char *text, struct cal_period *out, size_t *n, char *err,
                       size_t errlen);
/* Writes periods back as text ("09:00-12:00,13:30-18:00"). */
void cal_format_hours(const struct cal_period *p, size_t n, char *out, size_t outlen);

/*
 * cal_init builds a calendar in `c` (zeroed first): zone `tz_name`,
 * working periods `hours` (text as above), rest days as a bit set of ISO
 * weekdays (at least one weekday must be a working day).  Exceptions are
 * added with cal_add_exception.  Free with cal_free.
 */
sw_err cal_init(struct calendar *c, const char *tz_name, const char *hours, uint8_t rest, char *err,
                size_t errlen);
/* Adds or replaces a dated exception (keeps the list sorted). */
sw_err cal_add_exception(struct calendar *c, int32_t day, enum cal_day_kind kind);
void cal_free(struct calendar *c);

/* Local day count of a UTC instant in the calendar's zone. */
int32_t cal_local_day(const struct calendar *c, int64_t t_us);
bool cal_is_working_day(const struct calendar *c, int32_t day);
/*
 * The instant `amount_us` of working time after `from_us`.  0 gives
 * `from_us` itself; otherwise the result always lies inside a working
 * period (or at its end).  SW_ERANGE when no working time is found within
 * CAL_SCAN_DAYS days (a calendar that declares every day a holiday).
 */
sw_err cal_add_working(const struct calendar *c, int64_t from_us, int64_t amount_us, int64_t *out);
/* The instant `n` working days (n x day_work_us of working time) after `from_us`. */
sw_err cal_add_working_days(const struct calendar *c, int64_t from_us, int64_t n, int64_t *out);
/* Working time between two instants (0 when to <= from). */
int64_t cal_working_between(const struct calendar *c, int64_t from_us, int64_t to_us);

/*
 * Whether the calendar lacks holiday entries that it should have by
 * `now_us`: none for the current local year, or, from November on, none
 * for the next (the official schedule is published late in the year
 * before).  Writes the first such year to *year.
 */
bool cal_holidays_missing(const struct calendar *c, int64_t now_us, int *year);

/* ---- iCalendar import ------------------------------------------------------------------ */

/*
 * Called for each day of each event of an .ics file.  `name` is the
 * event's SUMMARY (unescaped, may be empty).  Returns SW_OK to go on.
 */
typedef sw_err (*cal_ics_fn)(int32_t day, enum cal_day_kind kind, const char *name, void *arg);

/*
 * cal_ics_parse reads an iCalendar (RFC 5545) file of all-day events: each
 * VEVENT's DTSTART (a date), its DTEND (exclusive) or DURATION (whole days,
 * at most 366) and SUMMARY.  An event is a make-up working day (补班) when
 * X-SHOUWEN-KIND is "workday", when its CATEGORIES hold WORKDAY, or when its
 * SUMMARY says 补班, 上班 or "workday"; otherwise it is a holiday.  Lines
 * may be folded and end in CRLF or LF.  Refused with "line N: reason" for
 * anything it cannot read as such (a missing BEGIN:VCALENDAR, an event
 * without DTSTART, a DTSTART with a time, an RRULE, an unterminated block).
 */
sw_err cal_ics_parse(const char *text, size_t len, cal_ics_fn fn, void *arg, char *err,
                     size_t errlen);

#endif
