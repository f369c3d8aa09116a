/*
 * handle_limits.c - a site's time limits (SLA policies) over the public API:
 *
 *   GET /v1/sites/{code}/limits   the site's limits, and the defaults that apply without one
 *   PUT /v1/sites/{code}/limits   replace them all: {"limits": [limit, ...]}
 *
 * A limit:
 *   {"clock": "first_contact", "amount": "1d", "basis": "working",
 *    "case_type": "complaint", "urgency": null}
 * clock: handoff, appoint, first_contact, resolve, supervisor, manager,
 * callback or emergency_ack.  amount: whole days, hours, minutes and
 * seconds in that order ("1d", "2h30m", "45s"), more than zero and at
 * most 366 days; with basis "working" a day is one working day of the
 * site's calendar and hours are working hours, with "calendar" it is
 * elapsed time.  basis defaults to the clock's default basis.
 * case_type and urgency (absent or null: any) make it an override; the
 * most specific limit wins (type and urgency, then type, then urgency,
 * then the site's own), and a clock with none runs on DOMAIN.md's default
 * (common/clocks.c), which GET shows under "defaults".
 *
 * The limits belong to the escalation service (escalation.limits); it
 * picks a change up through the settings stamp.  Who may: reading as the
 * site, changing as the directory (an admin API key or a manager).  A
 * refused set names every wrong field ("limits[2].amount") and saves
 * nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clocks.h"
#include "db.h"
#include "intake.h"
#include "log.h"
#include "workflow.h"

#define LIMITS_MAX     200 /* limits per site: 8 clocks x 9 type/urgency choices x ... */
#define LIMIT_DAYS_MAX 366
#define DAY_S          86400LL

struct lim {
    enum clk_kind clock;
    const char *type;    /* NULL: any */
    const char *urgency; /* NULL: any */
    int64_t days, secs;
    bool working;
};

/*
 * "1d2h30m15s" (any of the parts, in that order, at least one) into days
 * and seconds.  Returns NULL, or why it is refused.
 */
static const char *amount_parse(const char *s, int64_t *days, int64_t *secs)
{
    static const char units[] = "dhms";
    static const int64_t mult[] = {0, 3600, 60, 1};
    int next = 0;
    bool any = false, nonzero = false;
    *days = *secs = 0;
    if (s[0] == '-')
        return "a limit cannot be negative: give a positive duration such as 1h, 30m, 2d or 45s";
    while (*s != '\0') {
        if (*s < '0' || *s > '9')
            return "must be whole days, hours, minutes and seconds in that order, such as 1d, "
                   "2h30m or 45s";
        int64_t v = 0;
        while (*s >= '0' && *s <= '9') {
            if (v > 100000000)
                return "is too long: at most 366 days";
            v = v * 10 + (*s++ - '0');
        }
        const char *u = *s != '\0' ? strchr(units + next, *s) : NULL;
        if (u == NULL)
            return "must be whole days, hours, minutes and seconds in that order, such as 1d, "
                   "2h30m or 45s";
        int at = (int)(u - units);
        if (at == 0)
            *days = v;
        else
            *secs += v * mult[at];
        next = at + 1;
        s++;
        any = true;
        nonzero = nonzero || v > 0;
    }
    if (!any)
        return "must be whole days, hours, minutes and seconds in that order, such as 1d, 2h30m "
               "or 45s";
    if (!nonzero)
        return "must be more than zero: a limit of nothing would be breached at once";
    if (*days * DAY_S + *secs > LIMIT_DAYS_MAX * DAY_S)
        return "is too long: at most 366 days";
    return NULL;
}

/* The amount as the API writes it: "1d2h30m15s" without the zero parts. */
static void amount_text(int64_t days, int64_t secs, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    if (days > 0)
        n += (size_t)snprintf(out + n, outlen - n, "%lldd", (long long)days);
    if (secs / 3600 > 0 && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "%lldh", (long long)(secs / 3600));
    if (secs / 60 % 60 > 0 && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "%lldm", (long long)(secs / 60 % 60));
    if ((secs % 60 > 0 || (days == 0 && secs == 0)) && n < outlen)
        snprintf(out + n, outlen - n, "%llds", (long long)(secs % 60));
}

/* One limit; `scoped`: with its case_type and urgency (a site's, not a default). */
static void limit_json(struct buf *b, const char *clock, bool scoped, const char *type,
                       const char *urgency, int64_t days, int64_t secs, bool working)
{
    char amount[48];
    amount_text(days, secs, amount, sizeof(amount));
    buf_puts(b, "{\"clock\":");
    buf_json_string(b, clock);
    if (scoped) {
        buf_puts(b, ",\"case_type\":");
        if (type != NULL)
            buf_json_string(b, type);
        else
            buf_puts(b, "null");
        buf_puts(b, ",\"urgency\":");
        if (urgency != NULL)
            buf_json_string(b, urgency);
        else
            buf_puts(b, "null");
    }
    buf_printf(b, ",\"amount\":\"%s\",\"basis\":\"%s\"}", amount, working ? "working" : "calendar");
}

static sw_err answer(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    PGresult *r = PQexecParams(
        db,
        "SELECT clock, case_type, urgency, extract(day FROM amount)::bigint, extract(epoch FROM "
        "amount - make_interval(days => extract(day FROM amount)::int))::bigint, basis FROM "
        "escalation.limits WHERE site_id = $1::uuid ORDER BY array_position(ARRAY['handoff', "
        "'appoint', 'first_contact', 'resolve', 'supervisor', 'manager', 'callback', "
        "'emergency_ack'], clock), case_type NULLS FIRST, urgency NULLS FIRST",
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "could not read the limits", err, errlen);
        PQclear(r);
        return rv;
    }
    struct buf *b = &j->body;
    buf_reset(b);
    buf_puts(b, "{\"site\":");
    buf_json_string(b, j->who.site);
    buf_puts(b, ",\"limits\":[");
    for (int i = 0; i < PQntuples(r); i++) {
        if (i)
            buf_puts(b, ",");
        limit_json(b, PQgetvalue(r, i, 0), true, PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
                   PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                   strtoll(PQgetvalue(r, i, 3), NULL, 10), strtoll(PQgetvalue(r, i, 4), NULL, 10),
                   strcmp(PQgetvalue(r, i, 5), "working") == 0);
    }
    PQclear(r);
    buf_puts(b, "],\"defaults\":[");
    struct clk_policy def;
    clk_defaults(&def);
    for (int k = 0; k < CLK_KINDS; k++) {
        const struct clk_limit *l = &def.limit[k];
        if (k)
            buf_puts(b, ",");
        limit_json(b, clk_kind_name((enum clk_kind)k), false, NULL, NULL, l->days, l->us / 1000000,
                   l->working);
    }
    buf_puts(b, "]}");
    j->status = 200;
    return SW_OK;
}

sw_err limits_get(struct job *j, PGconn *db, char *err, size_t errlen)
{
    return answer(j, db, err, errlen);
}

static const char *const clocks_list =
    "handoff, appoint, first_contact, resolve, supervisor, manager, callback, emergency_ack";

static void get_limit(struct field_errors *f, json_t *o, size_t i, const struct clk_policy *def,
                      struct lim *l)
{
    static const char *const known[] = {"clock", "amount", "basis", "case_type", "urgency", NULL};
    char fld[64];
    memset(l, 0, sizeof(*l));
    if (!json_is_object(o)) {
        snprintf(fld, sizeof(fld), "limits[%zu]", i);
        field_bad(f, fld,
                  "must be an object: {\"clock\", \"amount\", \"basis\", \"case_type\", "
                  "\"urgency\"}");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t k = 0; known[k] != NULL && !ok; k++)
            ok = strcmp(key, known[k]) == 0;
        if (!ok) {
            snprintf(fld, sizeof(fld), "limits[%zu].%.30s", i, key);
            field_bad(f, fld,
                      "unknown member: a limit has clock, amount, basis, case_type, urgency");
        }
    }
    json_t *clock = json_object_get(o, "clock");
    snprintf(fld, sizeof(fld), "limits[%zu].clock", i);
    if (!json_is_string(clock) || !clk_kind_parse(json_string_value(clock), &l->clock))
        field_bad(f, fld, "must be one of %s", clocks_list);
    json_t *amount = json_object_get(o, "amount");
    snprintf(fld, sizeof(fld), "limits[%zu].amount", i);
    if (json_is_number(amount)) {
        field_bad(f, fld,
                  "must be a string such as \"1h\", \"30m\", \"2d\" or \"45s\", not a number");
    } else if (!json_is_string(amount)) {
        field_bad(f, fld, "is required: a duration such as \"1h\", \"30m\", \"2d\" or \"45s\"");
    } else {
        const char *why = amount_parse(json_string_value(amount), &l->days, &l->secs);
        if (why != NULL)
            field_bad(f, fld, "%s", why);
    }
    json_t *basis = json_object_get(o, "basis");
    snprintf(fld, sizeof(fld), "limits[%zu].basis", i);
    if (basis == NULL || json_is_null(basis)) {
        l->working = def->limit[l->clock].working;
    } else if (json_is_string(basis) && strcmp(json_string_value(basis), "working") == 0) {
        l->working = true;
    } else if (!json_is_string(basis) || strcmp(json_string_value(basis), "calendar") != 0) {
        field_bad(
            f, fld,
            "must be working (working time of the site's calendar) or calendar (elapsed time)");
    }
    json_t *type = json_object_get(o, "case_type");
    snprintf(fld, sizeof(fld), "limits[%zu].case_type", i);
    Shouwen__V1__CaseType t;
    if (type != NULL && !json_is_null(type)) {
        if (!json_is_string(type) || !wf_case_type_parse(json_string_value(type), &t) || t == 0)
            field_bad(f, fld,
                      "must be a request type (consultation, complaint, help, suggestion, repair, "
                      "business, report, emergency) or null for any");
        else
            l->type = json_string_value(type);
    }
    json_t *urg = json_object_get(o, "urgency");
    snprintf(fld, sizeof(fld), "limits[%zu].urgency", i);
    Shouwen__V1__Urgency u;
    if (urg != NULL && !json_is_null(urg)) {
        if (!json_is_string(urg) || !wf_urgency_parse(json_string_value(urg), &u) || u == 0)
            field_bad(f, fld, "must be normal, urgent, emergency or null for any");
        else
            l->urgency = json_string_value(urg);
    }
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

sw_err limits_put(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    json_t *list = j->json != NULL ? json_object_get(j->json, "limits") : NULL;
    if (j->json == NULL || !json_is_array(list)) {
        job_reply_error(j, 400, "the body must be {\"limits\": [ ... ]}: the site's whole set");
        return SW_OK;
    }
    if (json_object_size(j->json) != 1)
        field_bad(&f, "limits", "the body holds only \"limits\"");
    size_t n = json_array_size(list);
    if (n > LIMITS_MAX) {
        field_bad(&f, "limits", "at most %d limits per site", LIMITS_MAX);
        n = 0;
    }
    struct lim *ls = calloc(n ? n : 1, sizeof(*ls));
    if (ls == NULL) {
        job_reply_error(j, 503, "out of memory");
        return SW_OK;
    }
    struct clk_policy def;
    clk_defaults(&def);
    for (size_t i = 0; i < n; i++)
        get_limit(&f, json_array_get(list, i), i, &def, &ls[i]);
    for (size_t i = 0; f.n == 0 && i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (ls[k].clock == ls[i].clock && same_str(ls[k].type, ls[i].type) &&
                same_str(ls[k].urgency, ls[i].urgency)) {
                char fld[40];
                snprintf(fld, sizeof(fld), "limits[%zu]", i);
                field_bad(&f, fld, "the same clock, case_type and urgency as limits[%zu]", k);
                break;
            }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        free(ls);
        return SW_OK;
    }
    struct buf clocks, types, urgs, days, secs, basis;
    struct buf *all[] = {&clocks, &types, &urgs, &days, &secs, &basis};
    for (size_t i = 0; i < 6; i++) {
        buf_init(all[i], 64u << 10);
        buf_puts(all[i], "{");
    }
    for (size_t i = 0; i < n; i++) {
        char d[24], s[24];
        snprintf(d, sizeof(d), "%lld", (long long)ls[i].days);
        snprintf(s, sizeof(s), "%lld", (long long)ls[i].secs);
        buf_pg_elem(&clocks, i == 0, clk_kind_name(ls[i].clock));
        buf_pg_elem(&types, i == 0, ls[i].type);
        buf_pg_elem(&urgs, i == 0, ls[i].urgency);
        buf_pg_elem(&days, i == 0, d);
        buf_pg_elem(&secs, i == 0, s);
        buf_pg_elem(&basis, i == 0, ls[i].working ? "working" : "calendar");
    }
    for (size_t i = 0; i < 6; i++)
        buf_puts(all[i], "}");
    const char *v[] = {j->who.site_id,  buf_cstr(&clocks), buf_cstr(&types), buf_cstr(&urgs),
                       buf_cstr(&days), buf_cstr(&secs),   buf_cstr(&basis)};
    PGresult *r = PQexecParams(db, "DELETE FROM escalation.limits WHERE site_id = $1::uuid", 1,
                               NULL, v, NULL, NULL, 0);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rv = db_fail(db, r, "could not replace the limits", err, errlen);
    PQclear(r);
    if (rv == SW_OK) {
        r = PQexecParams(
            db,
            "INSERT INTO escalation.limits (site_id, clock, case_type, urgency, amount, basis) "
            "SELECT $1::uuid, x.c, x.t, x.u, make_interval(days => x.d::int, secs => x.s), x.b "
            "FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], "
            "$7::text[]) AS x(c, t, u, d, s, b)",
            7, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rv = db_fail(db, r, "could not save the limits", err, errlen);
        PQclear(r);
    }
    for (size_t i = 0; i < 6; i++)
        buf_free(all[i]);
    free(ls);
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "LIMITS-SAVED", "%zu time limits of site %s saved by %s %s", n, j->who.site,
        j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return answer(j, db, err, errlen);
}
