/*
 * handle_calendar.c - a site's working-day calendar (工作日历) over the
 * public API:
 *
 *   GET    /v1/sites/{code}/calendar              zone, hours, rest days, holidays missing?
 *   PATCH  /v1/sites/{code}/calendar              {"name", "time_zone", "hours", "rest_days"}
 *   GET    /v1/sites/{code}/calendar/days         ?year=2026: holidays and make-up workdays
 *   PUT    /v1/sites/{code}/calendar/days/{date}  {"kind": "holiday"|"workday", "name": "..."}
 *   DELETE /v1/sites/{code}/calendar/days/{date}  remove that day's entry
 *   POST   /v1/sites/{code}/calendar/import       an iCalendar file (Content-Type
 *                                                 text/calendar, or {"ics": "..."}), ?source=
 *
 * The calendar belongs to the escalation service (schema escalation,
 * common/calendar.c says what a valid one is); intake serves it so that it
 * lives under the same base URL as the rest of the API, and escalation
 * picks every change up through the settings stamp its triggers bump.
 *
 * A site has its own calendar, a shared one (escalation.calendars with no
 * site, such as the national calendar the demo loads, kept by SQL), or
 * none: Monday to Friday, 09:00-18:00 in the site's time zone.  A change
 * through the API never alters a calendar other sites use: the first one
 * gives the site a calendar of its own, a copy of what it used (copy on
 * write), and changes that.
 *
 * Bad input: an unknown zone, periods that overlap or do not parse, a
 * week with no working day, an .ics file that cannot be read ("line N:
 * reason") are answered 422 naming the field, and nothing is saved.  An
 * import is all or nothing.
 *
 * The holiday flag: the official schedule of a year is published late in
 * the year before, so a calendar with no holiday for the current year (or,
 * from November on, for the next) says so in "holidays_missing"; until
 * the dates are entered the clocks count the weekly rest days only.
 *
 * Who may: reading as the site (an admin API key or a manager), changes
 * as the directory (the same).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "db.h"
#include "intake.h"
#include "log.h"

#define CALDAYS_IMPORT_MAX 4000 /* days one import may hold */
#define CALDAYS_LIST_MAX   "5000"
#define CALDAYS_NAME_CHARS 100 /* as escalation.calendar_days.name */
#define CALDAYS_SOURCE_MAX 200

/* The calendar a site uses, as stored. */
struct site_cal {
    char id[37]; /* "" for none (the default) */
    bool own;    /* the site's own (not shared) */
    char name[101];
    char tz[65];
    char hours[201];
    uint8_t rest; /* bit d: ISO weekday d is a rest day */
    char site_tz[65];
};

static uint8_t rest_bits(const char *pg_array)
{
    uint8_t bits = 0;
    for (const char *p = pg_array; *p; p++)
        if (*p >= '1' && *p <= '7')
            bits |= (uint8_t)(1u << (*p - '0'));
    return bits;
}

static void rest_text(uint8_t bits, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (int d = 1; d <= 7 && used + 3 < outlen; d++)
        if (bits & (1u << d))
            used += (size_t)snprintf(out + used, outlen - used, "%s%d", used ? "," : "", d);
}

/* The calendar of the caller's site; `lock` locks the site row against concurrent changes. */
static sw_err site_cal_read(PGconn *db, const struct principal *who, bool lock, struct site_cal *c,
                            char *err, size_t errlen)
{
    const char *v[] = {who->site_id};
    PGresult *r;
    sw_err rv =
        db_run(db, "read the site's calendar",
               lock ? "SELECT c.id::text, c.site_id IS NOT DISTINCT FROM s.id, c.name, "
                      "c.time_zone, c.hours, c.weekend_days::text, s.time_zone FROM "
                      "core.sites s LEFT JOIN escalation.calendars c ON c.id = s.calendar_id "
                      "WHERE s.id = $1::uuid FOR NO KEY UPDATE OF s"
                    : "SELECT c.id::text, c.site_id IS NOT DISTINCT FROM s.id, c.name, "
                      "c.time_zone, c.hours, c.weekend_days::text, s.time_zone FROM "
                      "core.sites s LEFT JOIN escalation.calendars c ON c.id = s.calendar_id "
                      "WHERE s.id = $1::uuid",
               1, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(err, errlen, "the site %s is gone", who->site);
        return SW_ENOTFOUND;
    }
    memset(c, 0, sizeof(*c));
    snprintf(c->site_tz, sizeof(c->site_tz), "%s", PQgetvalue(r, 0, 6));
    if (!PQgetisnull(r, 0, 0)) {
        snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(r, 0, 0));
        c->own = PQgetvalue(r, 0, 1)[0] == 't';
        snprintf(c->name, sizeof(c->name), "%s", PQgetvalue(r, 0, 2));
        snprintf(c->tz, sizeof(c->tz), "%s", PQgetvalue(r, 0, 3));
        snprintf(c->hours, sizeof(c->hours), "%s", PQgetvalue(r, 0, 4));
        c->rest = rest_bits(PQgetvalue(r, 0, 5));
    } else {
        /* escalation's default (services/escalation/sites.c) */
        snprintf(c->tz, sizeof(c->tz), "%s", c->site_tz);
        snprintf(c->hours, sizeof(c->hours), "09:00-18:00");
        c->rest = 1u << 6 | 1u << 7;
    }
    PQclear(r);
    return SW_OK;
}

/*
 * The id of the site's own calendar, made now as a copy of what the site
 * used when it has none (see the file's comment).  The site row is locked.
 */
static sw_err own_calendar(PGconn *db, const struct principal *who, struct site_cal *c, char *err,
                           size_t errlen)
{
    if (c->own)
        return SW_OK;
    char rest[32], name[sizeof(c->name)];
    rest_text(c->rest, rest, sizeof(rest));
    char arr[40];
    snprintf(arr, sizeof(arr), "{%s}", rest);
    if (c->name[0] != '\0')
        snprintf(name, sizeof(name), "%s", c->name);
    else
        snprintf(name, sizeof(name), "%s working days", who->site);
    const char *v[] = {who->site_id, name, c->tz, c->hours, arr};
    PGresult *r;
    /* an own calendar of that name that the site no longer uses is taken over */
    sw_err rv = db_run(db, "make the site's own calendar",
                       "INSERT INTO escalation.calendars (site_id, name, time_zone, hours, "
                       "weekend_days) VALUES ($1::uuid, $2, $3, $4, $5::smallint[]) ON CONFLICT ON "
                       "CONSTRAINT calendars_name_unique DO UPDATE SET time_zone = "
                       "EXCLUDED.time_zone, hours = EXCLUDED.hours, weekend_days = "
                       "EXCLUDED.weekend_days, updated_at = now() RETURNING id::text",
                       5, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *copy[] = {id, c->id};
    const char *give[] = {id, who->site_id};
    rv = db_run(db, "clear the new calendar's days",
                "DELETE FROM escalation.calendar_days WHERE calendar_id = $1::uuid", 1, copy, NULL,
                err, errlen);
    if (rv == SW_OK && c->id[0] != '\0')
        rv = db_run(db, "copy the shared calendar's days",
                    "INSERT INTO escalation.calendar_days (calendar_id, day, kind, name, source) "
                    "SELECT $1::uuid, day, kind, name, source FROM escalation.calendar_days WHERE "
                    "calendar_id = $2::uuid",
                    2, copy, NULL, err, errlen);
    if (rv == SW_OK)
        rv = db_run(db, "give the site its calendar",
                    "UPDATE core.sites SET calendar_id = $1::uuid, updated_at = now() WHERE id = "
                    "$2::uuid",
                    2, give, NULL, err, errlen);
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "CALENDAR-OWN",
        "site %s has its own calendar \"%s\" now, a copy of %s, for a change by %s %s", who->site,
        name, c->id[0] ? "the shared one it used" : "the default",
        who->kind == 'k' ? "api key" : "staff", who->name);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->own = true;
    return SW_OK;
}

/* The site's own calendar, the site row locked: own_calendar after site_cal_read. */
static sw_err own_locked(PGconn *db, const struct principal *who, struct site_cal *c, char *err,
                         size_t errlen)
{
    sw_err rv = site_cal_read(db, who, true, c, err, errlen);
    return rv == SW_OK ? own_calendar(db, who, c, err, errlen) : rv;
}

/* ---- answers --------------------------------------------------------------------------- */

/*
 * Members "holidays_missing" and "problem" of a calendar's answer: built
 * as escalation builds it, with its holidays of this year and the next.
 */
static sw_err flag_members(PGconn *db, const struct site_cal *c, struct buf *b, char *err,
                           size_t errlen)
{
    struct calendar cal;
    char why[200] = "";
    sw_err rv = cal_init(&cal, c->tz, c->hours, c->rest, why, sizeof(why));
    if (rv == SW_ENOMEM)
        return rv;
    if (rv != SW_OK) {
        /* changed behind the API's back: escalation runs the default until it is put right */
        buf_puts(b, ",\"holidays_missing\":null,\"problem\":");
        buf_json_string(b, why);
        return SW_OK;
    }
    if (c->id[0] != '\0') {
        const char *v[] = {c->id};
        PGresult *r;
        rv = db_run(db, "read the calendar's holidays",
                    "SELECT (day - date '1970-01-01')::int FROM escalation.calendar_days WHERE "
                    "calendar_id = $1::uuid AND kind = 'holiday' AND day >= date_trunc('year', "
                    "now() - interval '1 day')",
                    1, v, &r, err, errlen);
        if (rv != SW_OK) {
            cal_free(&cal);
            return rv;
        }
        for (int i = 0; i < PQntuples(r) && rv == SW_OK; i++)
            rv = cal_add_exception(&cal, (int32_t)strtol(PQgetvalue(r, i, 0), NULL, 10),
                                   CAL_HOLIDAY);
        PQclear(r);
        if (rv != SW_OK) {
            cal_free(&cal);
            return rv;
        }
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int year = 0;
    if (cal_holidays_missing(&cal, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &year)) {
        char msg[240];
        snprintf(msg, sizeof(msg),
                 "no public holidays are entered for %d: until they are, the clocks count only "
                 "the weekly rest days as days off",
                 year);
        buf_printf(b, ",\"holidays_missing\":{\"year\":%d,\"message\":", year);
        buf_json_string(b, msg);
        buf_puts(b, "}");
    } else {
        buf_puts(b, ",\"holidays_missing\":null");
    }
    buf_puts(b, ",\"problem\":null");
    cal_free(&cal);
    return SW_OK;
}

static sw_err calendar_answer(struct job *j, PGconn *db, const struct site_cal *c, char *err,
                              size_t errlen)
{
    struct buf *b = &j->body;
    int64_t minutes = 0;
    struct cal_period p[CAL_PERIODS_MAX];
    size_t np = 0;
    if (cal_parse_hours(c->hours, p, &np, NULL, 0) == SW_OK)
        for (size_t i = 0; i < np; i++)
            minutes += p[i].end - p[i].start;
    long long ndays = 0;
    if (c->id[0] != '\0') {
        const char *v[] = {c->id};
        PGresult *r;
        sw_err rv = db_run(db, "count the calendar's days",
                           "SELECT count(*) FROM escalation.calendar_days WHERE calendar_id = "
                           "$1::uuid",
                           1, v, &r, err, errlen);
        if (rv != SW_OK)
            return rv;
        ndays = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    buf_reset(b);
    buf_puts(b, "{\"site\":");
    buf_json_string(b, j->who.site);
    buf_puts(b, ",\"source\":");
    buf_json_string(b, c->id[0] == '\0' ? "default" : c->own ? "own" : "shared");
    buf_puts(b, ",\"name\":");
    if (c->id[0] != '\0')
        buf_json_string(b, c->name);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"time_zone\":");
    buf_json_string(b, c->tz);
    buf_puts(b, ",\"hours\":");
    buf_json_string(b, c->hours);
    buf_puts(b, ",\"rest_days\":[");
    bool first = true;
    for (int d = 1; d <= 7; d++)
        if (c->rest & (1u << d)) {
            buf_printf(b, "%s%d", first ? "" : ",", d);
            first = false;
        }
    buf_printf(b, "],\"working_day_minutes\":%lld,\"days\":%lld", (long long)minutes, ndays);
    sw_err rv = flag_members(db, c, b, err, errlen);
    if (rv != SW_OK)
        return rv;
    buf_puts(b, "}");
    j->status = 200;
    return SW_OK;
}

sw_err calendar_get(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct site_cal c;
    sw_err rv = site_cal_read(db, &j->who, false, &c, err, errlen);
    return rv != SW_OK ? rv : calendar_answer(j, db, &c, err, errlen);
}

/* ---- PATCH the calendar ------------------------------------------------------------------ */

sw_err calendar_patch(struct job *j, PGconn *db, char *err, size_t errlen)
{
    static const char *const known[] = {"name", "time_zone", "hours", "rest_days", NULL};
    struct field_errors f = {.n = 0};
    json_t *o = j->json;
    char why[200];
    if (o == NULL) {
        job_reply_error(j, 400,
                        "the body must be a JSON object with any of name, time_zone, hours, "
                        "rest_days");
        return SW_OK;
    }
    members_only(&f, o, known, "a calendar");
    const char *name = json_str_member(&f, o, "name", 100, false);
    const char *tz = json_str_member(&f, o, "time_zone", CAL_TZ_NAME_MAX, false);
    const char *hours = json_str_member(&f, o, "hours", 200, false);
    json_t *rd = json_object_get(o, "rest_days");
    uint8_t rest = 0;
    bool rest_given = rd != NULL && !json_is_null(rd);
    if (rest_given) {
        size_t i;
        json_t *e;
        bool ok = json_is_array(rd);
        if (ok)
            json_array_foreach(rd, i, e)
            {
                json_int_t d = json_is_integer(e) ? json_integer_value(e) : 0;
                if (d < 1 || d > 7 || (rest & (1u << d))) {
                    ok = false;
                    break;
                }
                rest |= (uint8_t)(1u << d);
            }
        if (!ok)
            field_bad(&f, "rest_days",
                      "must be a list of distinct ISO weekdays, 1 (Monday) to 7 (Sunday): [6, 7]");
        else if (rest == 0xfe)
            field_bad(&f, "rest_days", "every weekday is a rest day: at least one must be worked");
    }
    struct cal_period p[CAL_PERIODS_MAX];
    size_t np = 0;
    if (hours != NULL && cal_parse_hours(hours, p, &np, why, sizeof(why)) != SW_OK)
        field_bad(&f, "hours", "%s", why);
    if (tz != NULL) {
        struct cal_tz *z = NULL;
        if (cal_tz_load(tz, &z, why, sizeof(why)) != SW_OK)
            field_bad(&f, "time_zone", "not a time zone of the IANA database: %s", why);
        cal_tz_free(z);
    }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    struct site_cal c;
    sw_err rv = own_locked(db, &j->who, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    char arr[40] = "", text[32];
    if (rest_given) {
        rest_text(rest, text, sizeof(text));
        snprintf(arr, sizeof(arr), "{%s}", text);
    }
    char canon[200] = "";
    if (hours != NULL)
        cal_format_hours(p, np, canon, sizeof(canon));
    const char *v[] = {c.id, name, tz, hours != NULL ? canon : NULL, rest_given ? arr : NULL};
    PGresult *r;
    rv = db_run(
        db, "change the calendar",
        "UPDATE escalation.calendars SET name = coalesce($2, name), time_zone = coalesce($3, "
        "time_zone), hours = coalesce($4, hours), weekend_days = coalesce($5::smallint[], "
        "weekend_days), updated_at = now() WHERE id = $1::uuid AND NOT EXISTS (SELECT 1 "
        "FROM escalation.calendars o WHERE o.site_id = escalation.calendars.site_id AND "
        "o.name = $2 AND o.id <> $1::uuid) RETURNING 1",
        5, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    int changed = PQntuples(r);
    PQclear(r);
    if (changed == 0) {
        field_bad(&f, "name", "the site has another calendar of that name");
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    rv = site_cal_read(db, &j->who, false, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "CALENDAR-CHANGED", "the calendar of site %s changed by %s %s: %s, %s",
        j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name, c.tz, c.hours);
    return calendar_answer(j, db, &c, err, errlen);
}

/* ---- the dated entries -------------------------------------------------------------------- */

#define DAY_COLS "to_char(day, 'YYYY-MM-DD'), kind, name, source"

static void day_json(struct buf *b, const PGresult *r, int row)
{
    buf_puts(b, "{\"date\":");
    buf_json_string(b, PQgetvalue(r, row, 0));
    buf_puts(b, ",\"kind\":");
    buf_json_string(b, PQgetvalue(r, row, 1));
    buf_puts(b, ",\"name\":");
    if (PQgetisnull(r, row, 2))
        buf_puts(b, "null");
    else
        buf_json_string(b, PQgetvalue(r, row, 2));
    buf_puts(b, ",\"source\":");
    buf_json_string(b, PQgetvalue(r, row, 3));
    buf_puts(b, "}");
}

/* ?year=YYYY (or nothing): the year into *year (0 for all); false when malformed. */
static bool year_query(const char *q, int *year)
{
    *year = 0;
    if (q[0] == '\0')
        return true;
    if (strncmp(q, "year=", 5) != 0 || strlen(q) != 9)
        return false;
    for (int i = 5; i < 9; i++)
        if (q[i] < '0' || q[i] > '9')
            return false;
    *year = (int)strtol(q + 5, NULL, 10);
    return *year >= 1970 && *year <= 9999;
}

sw_err calendar_days_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    int year;
    if (!year_query(j->query, &year)) {
        job_reply_error(j, 400, "the only query is ?year=YYYY (1970 to 9999)");
        return SW_OK;
    }
    struct site_cal c;
    sw_err rv = site_cal_read(db, &j->who, false, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    char ys[8];
    snprintf(ys, sizeof(ys), "%d", year);
    const char *v[] = {c.id[0] ? c.id : NULL, year ? ys : NULL};
    PGresult *r;
    rv =
        db_run(db, "read the calendar's days",
               "SELECT " DAY_COLS " FROM escalation.calendar_days WHERE calendar_id = $1::uuid AND "
               "($2::int IS NULL OR extract(year FROM day) = $2::int) ORDER BY day "
               "LIMIT " CALDAYS_LIST_MAX,
               2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    struct buf *b = &j->body;
    buf_reset(b);
    buf_puts(b, "{\"site\":");
    buf_json_string(b, j->who.site);
    buf_puts(b, ",\"days\":[");
    for (int i = 0; i < PQntuples(r); i++) {
        if (i)
            buf_puts(b, ",");
        day_json(b, r, i);
    }
    buf_puts(b, "]}");
    PQclear(r);
    j->status = 200;
    return SW_OK;
}

/* The {date} of a path, checked: false (answered 404) when it is not a date. */
static bool date_seg(struct job *j, const char *date)
{
    int32_t d;
    if (cal_parse_date(date, &d) == SW_OK)
        return true;
    job_reply_error(j, 404, "no such day: the date must be YYYY-MM-DD, a real date");
    return false;
}

sw_err calendar_day_put(struct job *j, PGconn *db, const char *date, char *err, size_t errlen)
{
    static const char *const known[] = {"kind", "name", NULL};
    struct field_errors f = {.n = 0};
    if (!date_seg(j, date))
        return SW_OK;
    if (j->json == NULL) {
        job_reply_error(j, 400,
                        "the body must be {\"kind\": \"holiday\" or \"workday\", \"name\"}");
        return SW_OK;
    }
    members_only(&f, j->json, known, "a calendar day");
    const char *kind = json_str_member(&f, j->json, "kind", 10, true);
    if (kind != NULL && strcmp(kind, "holiday") != 0 && strcmp(kind, "workday") != 0)
        field_bad(
            &f, "kind",
            "must be holiday (a day off whatever its weekday) or workday (a make-up working day, "
            "补班)");
    const char *name = json_str_member(&f, j->json, "name", CALDAYS_NAME_CHARS, false);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    struct site_cal c;
    sw_err rv = own_locked(db, &j->who, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    const char *v[] = {c.id, date, kind, name};
    PGresult *r;
    rv =
        db_run(db, "save the calendar day",
               "INSERT INTO escalation.calendar_days (calendar_id, day, kind, name, source) VALUES "
               "($1::uuid, $2::date, $3, $4, 'api') ON CONFLICT (calendar_id, day) DO UPDATE SET "
               "kind = EXCLUDED.kind, name = EXCLUDED.name, source = 'api' RETURNING " DAY_COLS,
               4, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    buf_reset(&j->body);
    day_json(&j->body, r, 0);
    PQclear(r);
    j->status = 200;
    LOG(LOG_INFO, "CALENDAR-DAY", "site %s: %s is a %s now, set by %s %s", j->who.site, date, kind,
        j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return SW_OK;
}

sw_err calendar_day_delete(struct job *j, PGconn *db, const char *date, char *err, size_t errlen)
{
    if (!date_seg(j, date))
        return SW_OK;
    struct site_cal c;
    sw_err rv = site_cal_read(db, &j->who, true, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    char msg[80];
    snprintf(msg, sizeof(msg), "no entry for %s in the site's calendar", date);
    if (c.id[0] == '\0') {
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    /* is there such an entry at all (before a shared calendar is copied for it)? */
    const char *v[] = {c.id, date};
    PGresult *r;
    rv = db_run(db, "find the calendar day",
                "SELECT 1 FROM escalation.calendar_days WHERE calendar_id = $1::uuid AND day = "
                "$2::date",
                2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    int found = PQntuples(r);
    PQclear(r);
    if (found == 0) {
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    rv = own_calendar(db, &j->who, &c, err, errlen);
    if (rv != SW_OK)
        return rv;
    const char *w[] = {c.id, date};
    rv = db_run(db, "remove the calendar day",
                "DELETE FROM escalation.calendar_days WHERE calendar_id = $1::uuid AND day = "
                "$2::date RETURNING " DAY_COLS,
                2, w, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    buf_reset(&j->body);
    if (PQntuples(r) == 1) {
        day_json(&j->body, r, 0);
        j->status = 200;
    } else {
        job_reply_error(j, 404, msg);
    }
    PQclear(r);
    LOG(LOG_INFO, "CALENDAR-DAY", "site %s: the entry for %s removed by %s %s", j->who.site, date,
        j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return SW_OK;
}

/* ---- iCalendar import --------------------------------------------------------------------- */

struct import_day {
    int32_t day;
    size_t seq; /* order in the file: the later entry for one day wins */
    enum cal_day_kind kind;
    char name[4 * CALDAYS_NAME_CHARS + 1];
};

struct import {
    struct import_day *v;
    size_t n;
    bool too_many;
};

/* The first `chars` characters of UTF-8 `s`, into out. */
static void utf8_prefix(const char *s, size_t chars, char *out, size_t outlen)
{
    size_t i = 0, c = 0;
    while (s[i] != '\0' && c < chars && i + 4 < outlen) {
        size_t len = 1;
        while (((unsigned char)s[i + len] & 0xc0) == 0x80)
            len++;
        i += len;
        c++;
    }
    snprintf(out, outlen, "%.*s", (int)i, s);
}

static sw_err import_one(int32_t day, enum cal_day_kind kind, const char *name, void *arg)
{
    struct import *im = arg;
    if (im->n == CALDAYS_IMPORT_MAX) {
        im->too_many = true;
        return SW_ERANGE;
    }
    struct import_day *d = &im->v[im->n];
    d->day = day;
    d->seq = im->n++;
    d->kind = kind;
    utf8_prefix(name != NULL ? name : "", CALDAYS_NAME_CHARS, d->name, sizeof(d->name));
    return SW_OK;
}

static int cmp_import(const void *a, const void *b)
{
    const struct import_day *x = a, *y = b;
    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ?source=<name> (percent-decoding is not needed for the names people use: letters, digits, .-_) */
static bool source_query(const char *q, char *out, size_t outlen)
{
    snprintf(out, outlen, "ics");
    if (q[0] == '\0')
        return true;
    if (strncmp(q, "source=", 7) != 0)
        return false;
    const char *s = q + 7;
    size_t n = strlen(s);
    if (n == 0 || n > 100)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
        if (!ok)
            return false;
    }
    snprintf(out, outlen, "ics:%s", s);
    return true;
}

sw_err calendar_import(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    char source[CALDAYS_SOURCE_MAX], why[200];
    json_t *ics = j->json != NULL ? json_object_get(j->json, "ics") : NULL;
    if (!source_query(j->query, source, sizeof(source))) {
        job_reply_error(j, 400,
                        "the only query is ?source=<name>: 1 to 100 letters, digits, '.', '-' or "
                        "'_' (the file's name)");
        return SW_OK;
    }
    if (!json_is_string(ics)) {
        job_reply_error(j, 400,
                        "send the iCalendar file as the body with Content-Type: text/calendar, "
                        "or as {\"ics\": \"BEGIN:VCALENDAR...\"}");
        return SW_OK;
    }
    if (json_object_size(j->json) != 1) {
        field_bad(&f, "ics", "the body holds only \"ics\"");
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    struct import im = {.n = 0};
    im.v = calloc(CALDAYS_IMPORT_MAX, sizeof(*im.v));
    if (im.v == NULL) {
        job_reply_error(j, 503, "out of memory");
        return SW_OK;
    }
    sw_err rv = SW_OK;
    struct buf days, kinds, names;
    buf_init(&days, 64u << 10);
    buf_init(&kinds, 64u << 10);
    buf_init(&names, 1u << 20);
    buf_puts(&days, "{");
    buf_puts(&kinds, "{");
    buf_puts(&names, "{");
    sw_err prv = cal_ics_parse(json_string_value(ics), json_string_length(ics), import_one, &im,
                               why, sizeof(why));
    if (im.too_many)
        field_bad(&f, "ics", "more than %d days in one file", CALDAYS_IMPORT_MAX);
    else if (prv != SW_OK)
        field_bad(&f, "ics", "%s", why); /* "line N: reason" */
    else if (im.n == 0)
        field_bad(&f, "ics", "the file holds no events: nothing to import");
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        goto out;
    }
    qsort(im.v, im.n, sizeof(*im.v), cmp_import);
    size_t nh = 0, nw = 0, kept = 0;
    int32_t first = 0, last = 0;
    for (size_t i = 0; i < im.n; i++) {
        if (i + 1 < im.n && im.v[i + 1].day == im.v[i].day)
            continue; /* a later event of the file names this day again */
        int y, m, d;
        cal_civil_from_days(im.v[i].day, &y, &m, &d);
        char date[16];
        snprintf(date, sizeof(date), "%04d-%02d-%02d", y, m, d);
        const char *k = im.v[i].kind == CAL_WORKDAY ? "workday" : "holiday";
        buf_pg_elem(&days, kept == 0, date);
        buf_pg_elem(&kinds, kept == 0, k);
        rv = buf_pg_elem(&names, kept == 0, im.v[i].name);
        if (rv != SW_OK)
            break;
        if (kept == 0)
            first = im.v[i].day;
        last = im.v[i].day;
        kept++;
        if (im.v[i].kind == CAL_WORKDAY)
            nw++;
        else
            nh++;
    }
    if (rv != SW_OK || buf_puts(&days, "}") != SW_OK || buf_puts(&kinds, "}") != SW_OK ||
        buf_puts(&names, "}") != SW_OK) {
        job_reply_error(j, 413, "the file's entries are too large to import at once");
        rv = SW_OK;
        goto out;
    }
    struct site_cal c;
    rv = own_locked(db, &j->who, &c, err, errlen);
    if (rv != SW_OK)
        goto out;
    const char *v[] = {c.id, buf_cstr(&days), buf_cstr(&kinds), buf_cstr(&names), source};
    rv =
        db_run(db, "import the calendar days",
               "INSERT INTO escalation.calendar_days (calendar_id, day, kind, name, source) SELECT "
               "$1::uuid, x.d, x.k, nullif(x.n, ''), $5 FROM unnest($2::date[], $3::text[], "
               "$4::text[]) AS x(d, k, n) ON CONFLICT (calendar_id, day) DO UPDATE SET kind = "
               "EXCLUDED.kind, name = EXCLUDED.name, source = EXCLUDED.source",
               5, v, NULL, err, errlen);
    if (rv != SW_OK)
        goto out;
    int y1, m1, d1, y2, m2, d2;
    cal_civil_from_days(first, &y1, &m1, &d1);
    cal_civil_from_days(last, &y2, &m2, &d2);
    struct buf *b = &j->body;
    buf_reset(b);
    buf_puts(b, "{\"site\":");
    buf_json_string(b, j->who.site);
    buf_printf(b,
               ",\"imported\":%zu,\"holidays\":%zu,\"workdays\":%zu,\"from\":\"%04d-%02d-%02d\","
               "\"to\":\"%04d-%02d-%02d\",\"source\":",
               kept, nh, nw, y1, m1, d1, y2, m2, d2);
    buf_json_string(b, source);
    rv = flag_members(db, &c, b, err, errlen);
    if (rv != SW_OK)
        goto out;
    buf_puts(b, "}");
    j->status = 200;
    LOG(LOG_INFO, "CALENDAR-IMPORT",
        "site %s: %zu holidays and %zu workdays from %04d-%02d-%02d to %04d-%02d-%02d imported "
        "(%s) by %s %s",
        j->who.site, nh, nw, y1, m1, d1, y2, m2, d2, source,
        j->who.kind == 'k' ? "api key" : "staff", j->who.name);
out:
    buf_free(&days);
    buf_free(&kinds);
    buf_free(&names);
    free(im.v);
    return rv;
}
