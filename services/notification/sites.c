/*
 * sites.c - what notification keeps in memory per site: staff and
 * departments (to resolve audiences), channels, subscriptions, templates,
 * settings and the working calendar (quiet hours).  Read on first use,
 * dropped whenever notification.settings_stamp moves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "notification.h"
#include "sitecal.h"

const char *const ntf_kind_names[NTF_KINDS] = {
    [NTF_WEBHOOK] = "webhook", [NTF_EMAIL] = "email",       [NTF_SMS] = "sms",
    [NTF_WECOM] = "wecom",     [NTF_DINGTALK] = "dingtalk", [NTF_FEISHU] = "feishu",
    [NTF_SLACK] = "slack",
};

bool ntf_kind_parse(const char *s, enum ntf_kind *out)
{
    for (int k = 0; k < NTF_KINDS; k++)
        if (strcmp(s, ntf_kind_names[k]) == 0) {
            *out = (enum ntf_kind)k;
            return true;
        }
    return false;
}

static void channel_free(struct ntf_channel *c)
{
    free(c->url);
    free(c->secret);
    free(c->from);
    free(c->username);
    free(c->ca_file);
    free(c->method);
    free(c->content_type);
    free(c->body_tmpl);
    free(c->auth_header);
}

static void site_free(struct ntf_site *s)
{
    if (s == NULL)
        return;
    cal_free(&s->cal);
    for (size_t i = 0; i < s->nchannels; i++)
        channel_free(&s->channels[i]);
    for (size_t i = 0; i < s->ntemplates; i++) {
        free(s->templates[i].subject);
        free(s->templates[i].body);
    }
    free(s->staff);
    free(s->depts);
    free(s->channels);
    free(s->subs);
    free(s->templates);
    free(s);
}

static void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* A copy of the column, or NULL when it is NULL or empty. */
static char *dup_col(const PGresult *r, int row, int col, bool *oom)
{
    if (PQgetisnull(r, row, col) || PQgetvalue(r, row, col)[0] == '\0')
        return NULL;
    char *s = strdup(PQgetvalue(r, row, col));
    if (s == NULL)
        *oom = true;
    return s;
}

/* Runs a query with the site id as $1; the caller clears. */
static PGresult *query(PGconn *db, const char *sql, const char *site_id, const char *what,
                       sw_err *rv, char *err, size_t errlen)
{
    const char *v[] = {site_id};
    PGresult *r = db_exec_fixed(db, sql, 1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *rv = db_fail(db, r, what, err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

static sw_err load_people(struct ntf_site *s, PGconn *db, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    PGresult *r = query(db,
                        "SELECT d.id::text, d.code, d.name, d.is_qa FROM core.departments d "
                        "WHERE d.site_id = $1 ORDER BY d.code",
                        s->id, "read the site's departments", &rv, err, errlen);
    if (r == NULL)
        return rv;
    int n = PQntuples(r);
    s->depts = calloc((size_t)n + 1, sizeof(*s->depts));
    if (s->depts == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct ntf_dept *d = &s->depts[i];
        cpy(d->id, sizeof(d->id), r, i, 0);
        cpy(d->code, sizeof(d->code), r, i, 1);
        cpy(d->name, sizeof(d->name), r, i, 2);
        d->is_qa = PQgetvalue(r, i, 3)[0] == 't';
    }
    s->ndepts = (size_t)n;
    PQclear(r);
    r = query(db,
              "SELECT st.code, st.name, st.role, coalesce(d.code, ''), coalesce(st.email, ''), "
              "coalesce(st.phone, ''), st.active FROM core.staff st LEFT JOIN core.departments d "
              "ON d.id = st.department_id WHERE st.site_id = $1 ORDER BY st.code",
              s->id, "read the site's staff", &rv, err, errlen);
    if (r == NULL)
        return rv;
    n = PQntuples(r);
    s->staff = calloc((size_t)n + 1, sizeof(*s->staff));
    if (s->staff == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct ntf_staff *p = &s->staff[i];
        cpy(p->code, sizeof(p->code), r, i, 0);
        cpy(p->name, sizeof(p->name), r, i, 1);
        cpy(p->role, sizeof(p->role), r, i, 2);
        cpy(p->dept, sizeof(p->dept), r, i, 3);
        cpy(p->email, sizeof(p->email), r, i, 4);
        cpy(p->phone, sizeof(p->phone), r, i, 5);
        p->active = PQgetvalue(r, i, 6)[0] == 't';
    }
    s->nstaff = (size_t)n;
    PQclear(r);
    return SW_OK;
}

static sw_err load_channels(struct ntf_site *s, PGconn *db, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    PGresult *r = query(
        db,
        "SELECT id::text, name, kind, url, secret, settings->>'from', settings->>'username', "
        "settings->>'ca_file', coalesce(settings->>'starttls', 'false'), settings->>'method', "
        "settings->>'content_type', settings->>'body', settings->>'auth_header', locale, "
        "rate_per_s, burst, timeout_ms, max_attempts, (extract(epoch FROM max_age) * "
        "1000000)::bigint, active FROM notification.channels WHERE site_id = $1 ORDER BY id",
        s->id, "read the site's channels", &rv, err, errlen);
    if (r == NULL)
        return rv;
    int n = PQntuples(r);
    s->channels = calloc((size_t)n + 1, sizeof(*s->channels));
    if (s->channels == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    bool oom = false;
    for (int i = 0; i < n; i++) {
        struct ntf_channel *c = &s->channels[i];
        enum ntf_kind kind = NTF_WEBHOOK;
        cpy(c->id, sizeof(c->id), r, i, 0);
        cpy(c->name, sizeof(c->name), r, i, 1);
        (void)ntf_kind_parse(PQgetvalue(r, i, 2), &kind);
        c->kind = kind;
        c->url = dup_col(r, i, 3, &oom);
        c->secret = dup_col(r, i, 4, &oom);
        c->from = dup_col(r, i, 5, &oom);
        c->username = dup_col(r, i, 6, &oom);
        c->ca_file = dup_col(r, i, 7, &oom);
        c->starttls = strcmp(PQgetvalue(r, i, 8), "true") == 0;
        c->method = dup_col(r, i, 9, &oom);
        c->content_type = dup_col(r, i, 10, &oom);
        c->body_tmpl = dup_col(r, i, 11, &oom);
        c->auth_header = dup_col(r, i, 12, &oom);
        cpy(c->locale, sizeof(c->locale), r, i, 13);
        c->rate_per_s = atoi(PQgetvalue(r, i, 14));
        c->burst = atoi(PQgetvalue(r, i, 15));
        c->timeout_ms = atoi(PQgetvalue(r, i, 16));
        c->max_attempts = atoi(PQgetvalue(r, i, 17));
        c->max_age_us = strtoll(PQgetvalue(r, i, 18), NULL, 10);
        c->active = PQgetvalue(r, i, 19)[0] == 't';
        s->nchannels = (size_t)i + 1;
    }
    PQclear(r);
    return oom ? SW_ENOMEM : SW_OK;
}

static sw_err load_subs(struct ntf_site *s, PGconn *db, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    PGresult *r =
        query(db,
              "SELECT b.event_type, b.channel_id::text, b.audience, coalesce(d.code, ''), "
              "CASE b.min_urgency WHEN 'normal' THEN 1 WHEN 'urgent' THEN 2 ELSE 3 END FROM "
              "notification.subscriptions b LEFT JOIN core.departments d ON d.id = "
              "b.department_id WHERE b.site_id = $1 AND b.active ORDER BY b.event_type, b.id",
              s->id, "read the site's subscriptions", &rv, err, errlen);
    if (r == NULL)
        return rv;
    int n = PQntuples(r);
    s->subs = calloc((size_t)n + 1, sizeof(*s->subs));
    if (s->subs == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct ntf_sub *b = &s->subs[s->nsubs];
        b->channel = ntf_channel_find(s, PQgetvalue(r, i, 1));
        if (b->channel == NULL)
            continue;
        cpy(b->event_type, sizeof(b->event_type), r, i, 0);
        cpy(b->audience, sizeof(b->audience), r, i, 2);
        cpy(b->dept, sizeof(b->dept), r, i, 3);
        b->min_urgency = atoi(PQgetvalue(r, i, 4));
        s->nsubs++;
    }
    PQclear(r);
    r = query(db,
              "SELECT event_type, channel_kind, locale, subject, body, audience = 'customer' FROM "
              "notification.templates "
              "WHERE site_id = $1",
              s->id, "read the site's templates", &rv, err, errlen);
    if (r == NULL)
        return rv;
    n = PQntuples(r);
    s->templates = calloc((size_t)n + 1, sizeof(*s->templates));
    if (s->templates == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    bool oom = false;
    for (int i = 0; i < n; i++) {
        struct ntf_template *t = &s->templates[i];
        cpy(t->event_type, sizeof(t->event_type), r, i, 0);
        cpy(t->kind, sizeof(t->kind), r, i, 1);
        cpy(t->locale, sizeof(t->locale), r, i, 2);
        t->subject = dup_col(r, i, 3, &oom);
        t->body = dup_col(r, i, 4, &oom);
        t->customer = PQgetvalue(r, i, 5)[0] == 't';
        s->ntemplates = (size_t)i + 1;
    }
    PQclear(r);
    return oom ? SW_ENOMEM : SW_OK;
}

static sw_err load_settings(struct ntf_site *s, PGconn *db, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    s->quiet_hours = true;
    s->sms_daily_cap = 500;
    PGresult *r = query(db,
                        "SELECT quiet_hours, sms_daily_cap, customer_notices FROM "
                        "notification.site_settings WHERE site_id = $1",
                        s->id, "read the site's notification settings", &rv, err, errlen);
    if (r == NULL)
        return rv;
    if (PQntuples(r) == 1) {
        s->quiet_hours = PQgetvalue(r, 0, 0)[0] == 't';
        s->sms_daily_cap = atoi(PQgetvalue(r, 0, 1));
        s->customer_notices = PQgetvalue(r, 0, 2)[0] == 't';
    }
    PQclear(r);
    return SW_OK;
}

static sw_err load_site(PGconn *db, const char *code, void **out, char *err, size_t errlen)
{
    struct ntf_site *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SW_ENOMEM;
    char tz[65];
    snprintf(s->code, sizeof(s->code), "%s", code);
    sw_err rv = sitecal_load(db, code, "NOTIFICATION-CALENDAR", s->id, tz, &s->cal, err, errlen);
    if (rv == SW_OK)
        rv = load_people(s, db, err, errlen);
    if (rv == SW_OK)
        rv = load_channels(s, db, err, errlen);
    if (rv == SW_OK)
        rv = load_subs(s, db, err, errlen);
    if (rv == SW_OK)
        rv = load_settings(s, db, err, errlen);
    if (rv != SW_OK) {
        if (rv == SW_ENOMEM)
            snprintf(err, errlen, "out of memory reading site %s", code);
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

void ntf_cache_init(struct ntf_cache *c)
{
    sitecache_init(&c->sc, "SELECT stamp FROM notification.settings_stamp", load_site, free_site);
}

sw_err ntf_cache_check(struct ntf_cache *c, PGconn *db, bool *changed, char *err, size_t errlen)
{
    return sitecache_check(&c->sc, db, changed, err, errlen);
}

void ntf_cache_clear(struct ntf_cache *c)
{
    sitecache_clear(&c->sc);
}

sw_err ntf_site_get(struct ntf_cache *c, PGconn *db, const char *code, struct ntf_site **out,
                    char *err, size_t errlen)
{
    void *s = NULL;
    sw_err rv = sitecache_get(&c->sc, db, code, &s, err, errlen);
    if (rv == SW_OK)
        *out = s;
    return rv;
}

const struct ntf_staff *ntf_staff_find(const struct ntf_site *s, const char *code)
{
    for (size_t i = 0; i < s->nstaff; i++)
        if (strcmp(s->staff[i].code, code) == 0)
            return &s->staff[i];
    return NULL;
}

const struct ntf_dept *ntf_dept_find(const struct ntf_site *s, const char *code)
{
    for (size_t i = 0; i < s->ndepts; i++)
        if (strcmp(s->depts[i].code, code) == 0)
            return &s->depts[i];
    return NULL;
}

struct ntf_channel *ntf_channel_find(const struct ntf_site *s, const char *id)
{
    for (size_t i = 0; i < s->nchannels; i++)
        if (strcmp(s->channels[i].id, id) == 0)
            return &s->channels[i];
    return NULL;
}
