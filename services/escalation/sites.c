/*
 * sites.c - what escalation keeps in memory per site: its calendar, its
 * limits and who stands on each rung of the ladder.  Read on first use,
 * dropped whenever escalation.settings_stamp moves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escalation.h"
#include "log.h"
#include "sitecal.h"

static void site_free(struct esc_site *s)
{
    if (s == NULL)
        return;
    cal_free(&s->cal);
    free(s->limits);
    free(s);
}

static sw_err load_limits(struct esc_site *s, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {s->id};
    PGresult *r = db_exec_fixed(
        db,
        "SELECT case_type, urgency, clock, extract(day FROM amount)::bigint, "
        "(extract(epoch FROM amount - make_interval(days => extract(day FROM amount)::int)) "
        "* 1000000)::bigint, basis FROM escalation.limits WHERE site_id = $1",
        1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "read a site's limits", err, errlen);
        PQclear(r);
        return rv;
    }
    int n = PQntuples(r);
    s->limits = calloc((size_t)n + 1, sizeof(*s->limits));
    if (s->limits == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct esc_limit *l = &s->limits[s->nlimits];
        memset(l, 0, sizeof(*l));
        if (!PQgetisnull(r, i, 0))
            (void)wf_case_type_parse(PQgetvalue(r, i, 0), &l->type);
        if (!PQgetisnull(r, i, 1))
            (void)wf_urgency_parse(PQgetvalue(r, i, 1), &l->urgency);
        if (!clk_kind_parse(PQgetvalue(r, i, 2), &l->kind))
            continue;
        l->limit.days = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        l->limit.us = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        l->limit.working = strcmp(PQgetvalue(r, i, 5), "working") == 0;
        s->nlimits++;
    }
    PQclear(r);
    return SW_OK;
}

/* Supervisors, managers and leaders of the site, the front desk's and on-duty ones first. */
static sw_err load_people(struct esc_site *s, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {s->id};
    PGresult *r = db_exec_fixed(
        db,
        "SELECT st.role, st.code FROM core.staff st LEFT JOIN core.departments d ON d.id = "
        "st.department_id WHERE st.site_id = $1 AND st.active AND st.role IN ('supervisor', "
        "'manager', 'leader') ORDER BY st.role, coalesce(d.is_front_desk, false) DESC, "
        "st.on_duty DESC, st.code",
        1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "read a site's ladder", err, errlen);
        PQclear(r);
        return rv;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *role = PQgetvalue(r, i, 0), *code = PQgetvalue(r, i, 1);
        char(*to)[WF_CODE_SIZE] = NULL;
        size_t *n = NULL;
        if (strcmp(role, "supervisor") == 0) {
            to = s->supervisors;
            n = &s->nsupervisors;
        } else if (strcmp(role, "manager") == 0) {
            to = s->managers;
            n = &s->nmanagers;
        } else {
            to = s->leaders;
            n = &s->nleaders;
        }
        if (*n < ESC_PEOPLE)
            snprintf(to[(*n)++], WF_CODE_SIZE, "%s", code);
    }
    PQclear(r);
    return SW_OK;
}

static sw_err load_site(PGconn *db, const char *code, void **out, char *err, size_t errlen)
{
    struct esc_site *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SW_ENOMEM;
    snprintf(s->code, sizeof(s->code), "%s", code);
    sw_err rv = sitecal_load(db, code, "ESCALATION-CALENDAR", s->id, s->tz, &s->cal, err, errlen);
    if (rv == SW_OK)
        rv = load_limits(s, db, err, errlen);
    if (rv == SW_OK)
        rv = load_people(s, db, err, errlen);
    if (rv != SW_OK) {
        site_free(s);
        return rv;
    }
    *out = s;
    return SW_OK;
}

static void free_site(void *s)
{
    site_free(s);
}

void esc_cache_init(struct esc_cache *c)
{
    sitecache_init(&c->sc, "SELECT stamp FROM escalation.settings_stamp", load_site, free_site);
}

sw_err esc_cache_check(struct esc_cache *c, PGconn *db, char *err, size_t errlen)
{
    return sitecache_check(&c->sc, db, NULL, err, errlen);
}

void esc_cache_clear(struct esc_cache *c)
{
    sitecache_clear(&c->sc);
}

sw_err esc_site_get(struct esc_cache *c, PGconn *db, const char *code, struct esc_site **out,
                    char *err, size_t errlen)
{
    void *s = NULL;
    sw_err rv = sitecache_get(&c->sc, db, code, &s, err, errlen);
    if (rv == SW_OK)
        *out = s;
    return rv;
}

void esc_policy(const struct esc_site *s, Shouwen__V1__CaseType type, Shouwen__V1__Urgency urgency,
                struct clk_policy *out)
{
    clk_defaults(out);
    /* least specific first, so that the most specific is applied last */
    for (int pass = 0; pass < 4; pass++)
        for (size_t i = 0; i < s->nlimits; i++) {
            const struct esc_limit *l = &s->limits[i];
            bool t = l->type != 0, u = l->urgency != 0;
            int rank = t && u ? 3 : t ? 2 : u ? 1 : 0;
            if (rank != pass || (t && l->type != type) || (u && l->urgency != urgency))
                continue;
            out->limit[l->kind] = l->limit;
        }
}
