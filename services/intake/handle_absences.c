/*
 * handle_absences.c - who is off duty, and who stands in (routing.absences):
 *
 *   GET    /v1/sites/{code}/routing/absences        the ones not yet over, soonest first
 *   POST   /v1/sites/{code}/routing/absences        {"staff": "zhou.eng", "deputy": "wu.tech",
 *                                                    "from": "...", "until": "...", "reason":
 * "..."} DELETE /v1/sites/{code}/routing/absences/{id}   end it now (one not yet begun is dropped)
 *
 * Routing gives what it would give an absent person to their deputy, else
 * to their direct supervisor.  "from" defaults to now, "until" to open
 * (until ended); both are RFC 3339 instants or local times of the site.
 * Who may: as the directory (an admin API key or a manager).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "intake.h"
#include "log.h"

#define ABSENCE_COLS                                                                               \
    "a.id::text, s.code, d.code, "                                                                 \
    "to_char(a.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "               \
    "to_char(a.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), a.reason"
/* The columns of absences `rel` (as a), with the codes of the people. */
#define ABSENCE_SELECT(rel)                                                                        \
    "SELECT " ABSENCE_COLS " FROM " rel " a JOIN core.staff s ON s.id = a.staff_id LEFT JOIN "     \
    "core.staff d ON d.id = a.deputy_id "

#define ABSENCE_FIELDS 8 /* field errors answered at most */

/* Adds a field error (the rest are dropped once there are ABSENCE_FIELDS). */
__attribute__((format(printf, 4, 5))) static void bad(struct field_error *fe, int *nfe,
                                                      const char *field, const char *fmt, ...)
{
    va_list ap;
    if (*nfe >= ABSENCE_FIELDS)
        return;
    snprintf(fe[*nfe].field, sizeof(fe[*nfe].field), "%.60s", field);
    va_start(ap, fmt);
    vsnprintf(fe[*nfe].message, sizeof(fe[*nfe].message), fmt, ap);
    va_end(ap);
    (*nfe)++;
}

/* db_fail, and the result cleared. */
static sw_err fail(PGconn *db, PGresult *r, const char *what, char *err, size_t errlen)
{
    sw_err rv = db_fail(db, r, what, err, errlen);
    PQclear(r);
    return rv;
}

static void member(struct buf *b, const char *key, const PGresult *r, int row, int col, bool first)
{
    buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
    if (PQgetisnull(r, row, col))
        buf_puts(b, "null");
    else
        buf_json_string(b, PQgetvalue(r, row, col));
}

static void absence_json(struct buf *b, const PGresult *r, int row)
{
    buf_puts(b, "{");
    member(b, "id", r, row, 0, true);
    member(b, "staff", r, row, 1, false);
    member(b, "deputy", r, row, 2, false);
    member(b, "from", r, row, 3, false);
    member(b, "until", r, row, 4, false);
    member(b, "reason", r, row, 5, false);
    buf_puts(b, "}");
}

/* clang-format off */
static const char absences_now[] = ABSENCE_SELECT("routing.absences")
    "WHERE a.site_id = $1::uuid AND (a.ends_at IS NULL OR a.ends_at > now()) "
    "ORDER BY a.starts_at, a.id LIMIT 1000";
/* clang-format on */

sw_err absences_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    PGresult *r = PQexecParams(db, absences_now, 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(db, r, "could not read the absences", err, errlen);
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"site\":");
    buf_json_string(&j->body, j->who.site);
    buf_puts(&j->body, ",\"absences\":[");
    for (int i = 0; i < PQntuples(r); i++) {
        if (i)
            buf_puts(&j->body, ",");
        absence_json(&j->body, r, i);
    }
    buf_puts(&j->body, "]}");
    j->status = 200;
    PQclear(r);
    return SW_OK;
}

/* One time member: "" when absent; else its SQL text (an instant) or an error. */
static bool time_member(json_t *o, const char *key, struct field_error *fe, int *nfe, char *out,
                        size_t outlen, char *local, size_t llen, bool *zoned)
{
    json_t *v = json_object_get(o, key);
    int64_t us = 0;
    out[0] = '\0';
    *zoned = false;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || !parse_time(json_string_value(v), local, llen, &us, zoned)) {
        bad(fe, nfe, key,
            "must be a time: RFC 3339 (2026-11-30T18:00:00+08:00) or the site's local time "
            "(2026-11-30T18:00)");
        return false;
    }
    snprintf(out, outlen, "%lld", (long long)us);
    return true;
}

sw_err absence_create(struct job *j, PGconn *db, char *err, size_t errlen)
{
    static const char *const known[] = {"staff", "deputy", "from", "until", "reason", NULL};
    struct field_error fe[ABSENCE_FIELDS];
    int nfe = 0;
    json_t *o = j->json;
    const char *k;
    json_t *val;

    if (o == NULL) {
        job_reply_error(j, 400, "the body must be a JSON object");
        return SW_OK;
    }
    json_object_foreach(o, k, val)
    {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (!ok)
            bad(fe, &nfe, k, "unknown field (an absence has staff, deputy, from, until, reason)");
    }
    json_t *staff = json_object_get(o, "staff"), *deputy = json_object_get(o, "deputy"),
           *reason = json_object_get(o, "reason");
    if (!json_is_string(staff))
        bad(fe, &nfe, "staff", "is required: the code of the staff member who is off duty");
    if (deputy != NULL && !json_is_null(deputy) && !json_is_string(deputy))
        bad(fe, &nfe, "deputy", "must be a staff code or null");
    if (reason != NULL && (!json_is_string(reason) || json_string_length(reason) > 500))
        bad(fe, &nfe, "reason", "must be a text of at most 500 bytes");
    char from_us[24], until_us[24], from_l[40] = "", until_l[40] = "";
    bool from_z = false, until_z = false;
    time_member(o, "from", fe, &nfe, from_us, sizeof(from_us), from_l, sizeof(from_l), &from_z);
    time_member(o, "until", fe, &nfe, until_us, sizeof(until_us), until_l, sizeof(until_l),
                &until_z);
    if (nfe > 0) {
        job_reply_fields(j, fe, nfe);
        return SW_OK;
    }
    const char *sc = json_string_value(staff);
    const char *dc = json_is_string(deputy) ? json_string_value(deputy) : NULL;
    /* who: both active staff of this site, not the same person */
    const char *lv[] = {j->who.site_id, sc, dc};
    PGresult *r = PQexecParams(db,
                               "SELECT (SELECT id::text FROM core.staff WHERE site_id = $1::uuid "
                               "AND code = $2 AND active), (SELECT id::text FROM core.staff WHERE "
                               "site_id = $1::uuid AND code = $3 AND active)",
                               3, NULL, lv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(db, r, "could not look up the staff", err, errlen);
    if (PQgetisnull(r, 0, 0))
        bad(fe, &nfe, "staff", "no active staff member \"%.40s\" at this site", sc);
    if (dc != NULL && PQgetisnull(r, 0, 1))
        bad(fe, &nfe, "deputy", "no active staff member \"%.40s\" at this site", dc);
    if (dc != NULL && strcmp(dc, sc) == 0)
        bad(fe, &nfe, "deputy", "cannot be the absent person");
    char sid[37], did[37] = "";
    snprintf(sid, sizeof(sid), "%s", PQgetvalue(r, 0, 0));
    if (dc != NULL)
        snprintf(did, sizeof(did), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    if (nfe > 0) {
        job_reply_fields(j, fe, nfe);
        return SW_OK;
    }
    /* the instants: RFC 3339 as given, local times in the site's zone */
    const char *v[] = {j->who.site_id,
                       sid,
                       did[0] ? did : NULL,
                       from_l[0] && from_z ? from_us : NULL,
                       from_l[0] && !from_z ? from_l : NULL,
                       until_l[0] && until_z ? until_us : NULL,
                       until_l[0] && !until_z ? until_l : NULL,
                       j->who.time_zone,
                       json_is_string(reason) ? json_string_value(reason) : ""};
    r = PQexecParams(
        db,
        "WITH t AS (SELECT CASE WHEN $4::bigint IS NOT NULL THEN to_timestamp($4::bigint / 1e6) "
        "WHEN $5::timestamp IS NOT NULL THEN $5::timestamp AT TIME ZONE $8 ELSE now() END AS f, "
        "CASE WHEN $6::bigint IS NOT NULL THEN to_timestamp($6::bigint / 1e6) WHEN $7::timestamp "
        "IS NOT NULL THEN $7::timestamp AT TIME ZONE $8 END AS u), "
        "a AS (INSERT INTO routing.absences (site_id, staff_id, deputy_id, starts_at, ends_at, "
        "reason) SELECT $1::uuid, $2::uuid, $3::uuid, t.f, t.u, $9 FROM t WHERE t.u IS NULL OR "
        "t.u > t.f RETURNING *) " ABSENCE_SELECT("a"),
        9, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(db, r, "could not record the absence", err, errlen);
    if (PQntuples(r) != 1) {
        PQclear(r);
        nfe = 0;
        bad(fe, &nfe, "until", "must be after from");
        job_reply_fields(j, fe, nfe);
        return SW_OK;
    }
    buf_reset(&j->body);
    absence_json(&j->body, r, 0);
    j->status = 201;
    LOG(LOG_INFO, "ROUTING-ABSENCE", "absence %s of %s at site %s recorded by %s",
        PQgetvalue(r, 0, 0), sc, j->who.site, j->who.name);
    PQclear(r);
    return SW_OK;
}

sw_err absence_end(struct job *j, PGconn *db, const char *id, char *err, size_t errlen)
{
    char msg[120];
    bool num = id[0] != '\0' && strlen(id) <= 18 && strspn(id, "0123456789") == strlen(id);
    if (!num) {
        job_reply_error(j, 404, "no such absence");
        return SW_OK;
    }
    const char *v[] = {id, j->who.site_id};
    PGresult *r = PQexecParams(
        db,
        "WITH gone AS (DELETE FROM routing.absences WHERE id = $1::bigint AND site_id = $2::uuid "
        "AND starts_at > now() RETURNING *), ended AS (UPDATE routing.absences SET ends_at = now() "
        "WHERE id = $1::bigint AND site_id = $2::uuid AND starts_at <= now() AND (ends_at IS NULL "
        "OR ends_at > now()) RETURNING *), a AS (SELECT * FROM gone UNION ALL SELECT * FROM "
        "ended) " ABSENCE_SELECT("a"),
        2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(db, r, "could not end the absence", err, errlen);
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(msg, sizeof(msg), "no such absence (or it is over already): %s", id);
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    buf_reset(&j->body);
    absence_json(&j->body, r, 0);
    j->status = 200;
    PQclear(r);
    return SW_OK;
}
