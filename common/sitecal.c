/*
 * sitecal.c - a site's working calendar read from the database (see sitecal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "sitecal.h"

static void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* The calendar's dated days, into cal. */
static sw_err load_days(struct calendar *cal, PGconn *db, const char *calendar_id, char *err,
                        size_t errlen)
{
    const char *v[] = {calendar_id};
    PGresult *r = db_exec_fixed(db,
                                "SELECT (day - date '1970-01-01')::int, kind FROM "
                                "escalation.calendar_days WHERE calendar_id = $1 ORDER BY day",
                                1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "read a calendar's days", err, errlen);
        PQclear(r);
        return rv;
    }
    sw_err rv = SW_OK;
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++)
        rv = cal_add_exception(cal, (int32_t)atoi(PQgetvalue(r, i, 0)),
                               strcmp(PQgetvalue(r, i, 1), "workday") == 0 ? CAL_WORKDAY
                                                                           : CAL_HOLIDAY);
    PQclear(r);
    if (rv != SW_OK)
        snprintf(err, errlen, "out of memory for a calendar's days");
    return rv;
}

sw_err sitecal_load(PGconn *db, const char *code, const char *tag, char *id, char *site_tz,
                    struct calendar *cal, char *err, size_t errlen)
{
    const char *v[] = {code};
    PGresult *r = db_exec_fixed(db,
                                "SELECT s.id::text, s.time_zone, c.id::text, c.time_zone, "
                                "c.hours, c.weekend_days::text FROM core.sites s LEFT JOIN "
                                "escalation.calendars c ON c.id = s.calendar_id WHERE s.code = $1",
                                1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "read a site", err, errlen);
        PQclear(r);
        return rv;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(err, errlen, "no site %s", code);
        return SW_ENOTFOUND;
    }
    cpy(id, 37, r, 0, 0);
    cpy(site_tz, 65, r, 0, 1);
    char cal_id[37], tz[65], hours[201], rest[64];
    cpy(cal_id, sizeof(cal_id), r, 0, 2);
    cpy(tz, sizeof(tz), r, 0, 3);
    cpy(hours, sizeof(hours), r, 0, 4);
    cpy(rest, sizeof(rest), r, 0, 5);
    PQclear(r);
    memset(cal, 0, sizeof(*cal));
    char why[200] = "";
    sw_err rv = SW_EINVAL; /* no calendar of its own: the default below */
    if (cal_id[0] != '\0') {
        uint8_t bits = 0;
        for (const char *p = rest; *p; p++)
            if (*p >= '1' && *p <= '7')
                bits |= (uint8_t)(1u << (*p - '0'));
        rv = cal_init(cal, tz, hours, bits, why, sizeof(why));
        if (rv == SW_OK)
            rv = load_days(cal, db, cal_id, err, errlen);
        else if (rv != SW_ENOMEM)
            /* the API refuses such a calendar; one changed behind its back must not stop
             * the site's work: the default runs until it is put right */
            LOG(LOG_ERROR, tag,
                "site %s: its calendar cannot be used (%s): Monday to Friday, 09:00-18:00 "
                "in the site's time zone apply until it is corrected",
                code, why);
    }
    if (rv == SW_EINVAL || rv == SW_ENOTFOUND || rv == SW_EIO) {
        cal_free(cal);
        rv = cal_init(cal, site_tz, "09:00-18:00", 1 << 6 | 1 << 7, why, sizeof(why));
        if (rv != SW_OK && rv != SW_ENOMEM) {
            LOG(LOG_ERROR, tag, "site %s: %s: UTC applies until it is corrected", code, why);
            rv = cal_init(cal, "UTC", "09:00-18:00", 1 << 6 | 1 << 7, why, sizeof(why));
        }
        if (rv != SW_OK)
            snprintf(err, errlen, "site %s: no calendar can be built: %s", code, why);
    }
    if (rv != SW_OK)
        cal_free(cal);
    return rv;
}
