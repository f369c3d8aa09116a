/*
 * handle_notify.c - who hears what, over the public API (the notification
 * service reads it; a change reaches it through notification.settings_stamp):
 *
 *   GET    /v1/sites/{code}/notification/channels           the channels (secrets never shown)
 *   POST   /v1/sites/{code}/notification/channels           add one (and, with
 *                                                            "subscribe_defaults": true,
 *                                                            DOMAIN.md's subscriptions)
 *   GET    /v1/sites/{code}/notification/channels/{name}    one
 *   PATCH  /v1/sites/{code}/notification/channels/{name}    change it
 *   DELETE /v1/sites/{code}/notification/channels/{name}    remove it (and its subscriptions)
 *   GET    /v1/sites/{code}/notification/subscriptions      who hears which event where
 *   POST   /v1/sites/{code}/notification/subscriptions      add one
 *   DELETE /v1/sites/{code}/notification/subscriptions/{id} remove one
 *   GET    /v1/sites/{code}/notification/templates          the site's own wording
 *   PUT    /v1/sites/{code}/notification/templates          set one (checked: syntax, variables)
 *   DELETE /v1/sites/{code}/notification/templates/{id}     back to the built-in wording
 *   GET    /v1/sites/{code}/notification/settings           quiet hours, SMS cap, receipts
 *   PATCH  /v1/sites/{code}/notification/settings           change them
 *   GET    /v1/sites/{code}/notification/deliveries        ?case=&status=&channel=&limit=
 *   GET    /v1/sites/{code}/notification/deliveries/{id}   one, with every attempt
 *
 * Destinations come only from here (administrators), never from a case or
 * an event: the notifier cannot be pointed anywhere by a request.  A
 * channel's URL is shown with its query values hidden (robot URLs carry
 * their access token there), and its secret only as "has_secret".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "db.h"
#include "intake.h"
#include "log.h"
#include "notify.h"
#include "workflow.h"

static const char *const kinds[] = {"webhook",  "email",  "sms",   "wecom",
                                    "dingtalk", "feishu", "slack", NULL};
static const char *const audiences[] = {
    "channel",    "receiving_head", "handler", "owner",     "first_responder", "qa", "ladder",
    "supervisor", "manager",        "leader",  "reviewers", "customer",        NULL};

/* An event type of shouwen; for customers, one they are told of. */
static void event_check(struct field_errors *f, const char *ev, bool customer)
{
    Shouwen__V1__Envelope__EventCase ec;
    if (ev == NULL)
        return;
    if (!wf_event_type_parse(ev, &ec))
        field_bad(f, "event_type",
                  "not an event type of shouwen (case.transferred, emergency.alerted, "
                  "review.requested, ...)");
    else if (customer && !ntf_customer_event(ev))
        field_bad(f, "event_type",
                  "customers hear of case.registered (a receipt), case.progress, case.resolved "
                  "and case.resolved_on_spot (the result and a survey) only");
}

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; s != NULL && list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/*
 * The answer is the first column of the first row of `r` (JSON made by
 * PostgreSQL), written compactly like every other answer, with `status`.
 */
static void reply_json_row(struct job *j, PGresult *r, uint16_t status)
{
    json_error_t je;
    json_t *v = PQntuples(r) > 0 ? json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je) : NULL;
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    buf_reset(&j->body);
    if (text == NULL) {
        json_decref(v);
        job_reply_error(j, 503, "out of memory");
        return;
    }
    buf_puts(&j->body, text);
    free(text);
    json_decref(v);
    j->status = status;
}

/*
 * Runs `sql`, whose first column of its first row is the answer's JSON, and
 * answers it with `status`; no row: 404 `missing`.
 */
static sw_err answer_query(struct job *j, PGconn *db, const char *what, const char *sql, int n,
                           const char *const *v, uint16_t status, const char *missing, char *err,
                           size_t errlen)
{
    PGresult *r;
    sw_err rv = db_run(db, what, sql, n, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (PQntuples(r) == 0)
        job_reply_error(j, 404, missing);
    else
        reply_json_row(j, r, status);
    PQclear(r);
    return SW_OK;
}

/* ---- channels ------------------------------------------------------------------------------ */

#define CHANNEL_JSON                                                                               \
    "json_build_object('name', c.name, 'kind', c.kind, 'url', regexp_replace(c.url, "              \
    "'=[^&]*', '=***', 'g'), 'has_secret', c.secret IS NOT NULL, 'settings', c.settings, "         \
    "'locale', c.locale, 'rate_per_s', c.rate_per_s, 'burst', c.burst, 'timeout_ms', "             \
    "c.timeout_ms, 'max_attempts', c.max_attempts, 'max_age_s', extract(epoch FROM "               \
    "c.max_age)::bigint, 'active', c.active, 'created_at', c.created_at, 'updated_at', "           \
    "c.updated_at)"

sw_err ntf_channels_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    return answer_query(j, db, "read the channels",
                        "SELECT json_build_object('channels', coalesce(json_agg(" CHANNEL_JSON
                        " ORDER BY c.name), '[]')) FROM notification.channels c WHERE c.site_id = "
                        "$1::uuid",
                        1, v, 200, "not found", err, errlen);
}

static sw_err channel_answer(struct job *j, PGconn *db, const char *name, uint16_t status,
                             char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id, name};
    char missing[120];
    snprintf(missing, sizeof(missing), "no such channel: %.64s", name);
    return answer_query(j, db, "read the channel",
                        "SELECT " CHANNEL_JSON " FROM notification.channels c WHERE c.site_id = "
                        "$1::uuid AND c.name = $2",
                        2, v, status, missing, err, errlen);
}

sw_err ntf_channel_get(struct job *j, PGconn *db, const char *name, char *err, size_t errlen)
{
    return channel_answer(j, db, name, 200, err, errlen);
}

/* An integer member within [lo, hi]; absent: *out unchanged, false. */
static bool int_member(struct field_errors *f, json_t *o, const char *key, long lo, long hi,
                       long *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return false;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        field_bad(f, key, "must be a whole number from %ld to %ld", lo, hi);
        return false;
    }
    *out = (long)json_integer_value(v);
    return true;
}

/* The URL's scheme fits the kind and it names a host; NULL, or why not. */
static const char *url_why(const char *kind, const char *url)
{
    bool mail = strcmp(kind, "email") == 0;
    if (strpbrk(url, " \t\r\n") != NULL)
        return "must not hold spaces or line breaks";
    if (mail ? strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0
             : strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return mail ? "an email channel's url is its relay: smtp://host:port (STARTTLS with "
                      "settings.starttls) or smtps://host:port"
                    : "must be an http:// or https:// URL";
    CURLU *u = curl_url();
    char *host = NULL;
    bool ok = u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0';
    curl_free(host);
    curl_url_cleanup(u);
    return ok ? NULL : "is not a URL with a host";
}

/* The settings a kind takes, checked; NULL when none was given. */
static void settings_check(struct field_errors *f, const char *kind, json_t *s)
{
    static const char *const email[] = {"from", "username", "starttls", "ca_file", NULL};
    static const char *const sms[] = {"method",      "content_type", "body",
                                      "auth_header", "ca_file",      NULL};
    static const char *const other[] = {"ca_file", NULL};
    if (!json_is_object(s)) {
        field_bad(f, "settings", "must be an object");
        return;
    }
    bool is_email = strcmp(kind, "email") == 0, is_sms = strcmp(kind, "sms") == 0;
    const char *const *known = is_email ? email : is_sms ? sms : other;
    const char *key;
    json_t *v;
    json_object_foreach(s, key, v)
    {
        char fld[64];
        snprintf(fld, sizeof(fld), "settings.%.40s", key);
        if (!one_of(key, known)) {
            field_bad(f, fld, "a %s channel takes no such setting", kind);
            continue;
        }
        if (strcmp(key, "starttls") == 0) {
            if (!json_is_boolean(v))
                field_bad(f, fld, "must be true or false");
            continue;
        }
        const char *t = json_string_value(v);
        if (t == NULL || t[0] == '\0' || strlen(t) > 1000 || strpbrk(t, "\r\n") != NULL) {
            if (strcmp(key, "body") != 0 || t == NULL || t[0] == '\0' || strlen(t) > 1000)
                field_bad(f, fld, "must be a string of 1 to 1000 characters without line breaks");
            continue;
        }
        if (strcmp(key, "method") == 0 && strcmp(t, "POST") != 0 && strcmp(t, "PUT") != 0)
            field_bad(f, fld, "must be POST or PUT");
        if (strcmp(key, "auth_header") == 0 &&
            !matches(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", 1, 64))
            field_bad(f, fld, "must be a header name such as Authorization or X-Api-Key");
        if (strcmp(key, "from") == 0 && (strchr(t, '@') == NULL || strpbrk(t, "<>") != NULL))
            field_bad(f, fld, "must be the sender's address, such as desk@example.org");
    }
    json_t *body = json_object_get(s, "body");
    if (is_sms && json_is_string(body) &&
        (strstr(json_string_value(body), "{{phone}}") == NULL ||
         strstr(json_string_value(body), "{{text}}") == NULL))
        field_bad(f, "settings.body",
                  "must hold {{phone}} and {{text}}, where the recipient's number and the message "
                  "go");
    if (is_email && !json_is_string(json_object_get(s, "from")))
        field_bad(f, "settings.from", "an email channel needs its sender's address");
}

/* A Standard Webhooks secret is whsec_ and base64 of 24 to 64 bytes. */
static bool whsec_ok(const char *s)
{
    if (strncmp(s, "whsec_", 6) != 0)
        return false;
    char sig[128];
    return ntf_webhook_signature(s, "x", 0, "", 0, sig, sizeof(sig)) == SW_OK &&
           strlen(s + 6) >= 32 && strlen(s + 6) <= 88;
}

struct chan {
    const char *name, *kind, *url, *secret, *locale, *settings;
    long rate, burst, timeout, attempts, age;
    int active; /* -1: not given */
    bool secret_null;
};

static void channel_fields(struct field_errors *f, json_t *o, struct chan *c, bool create,
                           const char *kind_now)
{
    static const char *const known[] = {"name",
                                        "kind",
                                        "url",
                                        "secret",
                                        "settings",
                                        "locale",
                                        "rate_per_s",
                                        "burst",
                                        "timeout_ms",
                                        "max_attempts",
                                        "max_age_s",
                                        "active",
                                        "subscribe_defaults",
                                        NULL};
    members_only(f, o, known, "a channel");
    c->active = -1;
    c->rate = c->burst = c->timeout = c->attempts = c->age = -1;
    if (create) {
        c->name = json_str_member(f, o, "name", 64, true);
        if (c->name != NULL && !matches(c->name, "abcdefghijklmnopqrstuvwxyz0123456789",
                                        "abcdefghijklmnopqrstuvwxyz0123456789_.-", 1, 64))
            field_bad(f, "name", "must be lower-case letters, digits, '_', '.' or '-' (1 to 64)");
        c->kind = json_str_member(f, o, "kind", 16, true);
        if (c->kind != NULL && !one_of(c->kind, kinds))
            field_bad(f, "kind", "must be webhook, email, sms, wecom, dingtalk, feishu or slack");
    } else {
        if (json_object_get(o, "name") || json_object_get(o, "kind"))
            field_bad(f, json_object_get(o, "name") ? "name" : "kind",
                      "cannot be changed: add a new channel instead");
        if (json_object_get(o, "subscribe_defaults"))
            field_bad(f, "subscribe_defaults", "only when a channel is added");
        c->kind = kind_now;
    }
    c->url = json_str_member(f, o, "url", 2000, create);
    const char *kind = c->kind != NULL && one_of(c->kind, kinds) ? c->kind : NULL;
    const char *why = c->url != NULL && kind != NULL ? url_why(kind, c->url) : NULL;
    if (why != NULL)
        field_bad(f, "url", "%s", why);
    json_t *sec = json_object_get(o, "secret");
    c->secret_null = sec != NULL && json_is_null(sec);
    c->secret = json_str_member(f, o, "secret", 1024, false);
    if (kind != NULL && strcmp(kind, "webhook") == 0) {
        if (c->secret != NULL && !whsec_ok(c->secret))
            field_bad(f, "secret",
                      "a webhook's secret is whsec_ and base64 of 24 to 64 random bytes, as "
                      "Standard Webhooks defines it");
        if ((create && c->secret == NULL) || c->secret_null)
            field_bad(f, "secret", "a webhook needs its signing secret (whsec_...)");
    }
    json_t *s = json_object_get(o, "settings");
    if (s != NULL && kind != NULL)
        settings_check(f, kind, s);
    else if (create && kind != NULL && strcmp(kind, "email") == 0)
        field_bad(f, "settings", "an email channel needs {\"from\": \"sender@example.org\"}");
    c->settings = NULL;
    c->locale = json_str_member(f, o, "locale", 8, false);
    if (c->locale != NULL && strcmp(c->locale, "zh-CN") != 0 && strcmp(c->locale, "en") != 0)
        field_bad(f, "locale", "must be zh-CN or en");
    int_member(f, o, "rate_per_s", 1, 100000, &c->rate);
    int_member(f, o, "burst", 1, 100000, &c->burst);
    int_member(f, o, "timeout_ms", 100, 120000, &c->timeout);
    int_member(f, o, "max_attempts", 1, 50, &c->attempts);
    int_member(f, o, "max_age_s", 1, 30L * 86400, &c->age);
    json_t *a = json_object_get(o, "active");
    if (a != NULL && !json_is_boolean(a))
        field_bad(f, "active", "must be true or false");
    else if (a != NULL)
        c->active = json_is_true(a);
}

/* DOMAIN.md's defaults: who hears what. */
static const char *const defaults[][2] = {
    {"case.transferred", "receiving_head"},
    {"case.forwarded", "receiving_head"},
    {"case.assigned", "receiving_head"},
    {"case.lead_designated", "receiving_head"},
    {"case.accepted", "handler"},
    {"case.transferred", "qa"},
    {"case.forwarded", "qa"},
    {"case.escalated", "owner"},
    {"case.deadline_breached", "owner"},
    {"emergency.alerted", "ladder"},
    {"case.resolved", "first_responder"},
    {"review.requested", "reviewers"},
    {"case.leader_callback_requested", "leader"},
};

static sw_err subscribe_defaults(struct job *j, PGconn *db, const char *name, char *err,
                                 size_t errlen)
{
    struct buf ev, au;
    buf_init(&ev, 4096);
    buf_init(&au, 4096);
    buf_puts(&ev, "{");
    buf_puts(&au, "{");
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        buf_pg_elem(&ev, i == 0, defaults[i][0]);
        buf_pg_elem(&au, i == 0, defaults[i][1]);
    }
    buf_puts(&ev, "}");
    buf_puts(&au, "}");
    const char *v[] = {j->who.site_id, name, buf_cstr(&ev), buf_cstr(&au)};
    sw_err rv = db_run(db, "subscribe the channel to the defaults",
                       "INSERT INTO notification.subscriptions (site_id, event_type, channel_id, "
                       "audience) SELECT $1::uuid, x.e, c.id, x.a FROM notification.channels c, "
                       "unnest($3::text[], $4::text[]) AS x(e, a) WHERE c.site_id = $1::uuid AND "
                       "c.name = $2 ON CONFLICT ON CONSTRAINT subscriptions_unique DO NOTHING",
                       4, v, NULL, err, errlen);
    buf_free(&ev);
    buf_free(&au);
    return rv;
}

static void long_text(long v, char *out, size_t n)
{
    if (v < 0)
        out[0] = '\0';
    else
        snprintf(out, n, "%ld", v);
}

sw_err ntf_channel_create(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    if (j->json == NULL) {
        job_reply_error(j, 400, "the body must be a channel: {\"name\", \"kind\", \"url\", ...}");
        return SW_OK;
    }
    struct chan c;
    channel_fields(&f, j->json, &c, true, NULL);
    json_t *sd = json_object_get(j->json, "subscribe_defaults");
    if (sd != NULL && !json_is_boolean(sd))
        field_bad(&f, "subscribe_defaults", "must be true or false");
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    json_t *given = json_object_get(j->json, "settings");
    char *settings = given != NULL ? json_dumps(given, JSON_COMPACT) : strdup("{}");
    if (settings == NULL) {
        job_reply_error(j, 503, "out of memory");
        return SW_OK;
    }
    char rate[24], burst[24], tmo[24], att[24], age[24];
    long_text(c.rate, rate, sizeof(rate));
    long_text(c.burst, burst, sizeof(burst));
    long_text(c.timeout, tmo, sizeof(tmo));
    long_text(c.attempts, att, sizeof(att));
    long_text(c.age, age, sizeof(age));
    const char *v[] = {j->who.site_id,
                       c.name,
                       c.kind,
                       c.url,
                       c.secret,
                       settings,
                       c.locale,
                       rate,
                       burst,
                       tmo,
                       att,
                       age,
                       c.active < 0 ? NULL
                       : c.active   ? "true"
                                    : "false"};
    PGresult *r;
    sw_err rv = db_run(
        db, "add the channel",
        "INSERT INTO notification.channels (site_id, name, kind, url, secret, settings, locale, "
        "rate_per_s, burst, timeout_ms, max_attempts, max_age, active) SELECT $1::uuid, $2, $3, "
        "$4, $5, $6::jsonb, coalesce($7, 'zh-CN'), coalesce(nullif($8, '')::int, 50), "
        "coalesce(nullif($9, '')::int, 100), coalesce(nullif($10, '')::int, 10000), "
        "coalesce(nullif($11, '')::int, 8), coalesce(make_interval(secs => nullif($12, "
        "'')::int), interval '24 hours'), coalesce($13::bool, true) WHERE NOT EXISTS (SELECT 1 "
        "FROM notification.channels WHERE site_id = $1::uuid AND name = $2) RETURNING id",
        13, v, &r, err, errlen);
    free(settings);
    if (rv != SW_OK)
        return rv;
    bool made = PQntuples(r) == 1;
    PQclear(r);
    if (!made) {
        char msg[120];
        snprintf(msg, sizeof(msg), "a channel named %s exists already", c.name);
        job_reply_error(j, 409, msg);
        return SW_OK;
    }
    if (json_is_true(sd) && (rv = subscribe_defaults(j, db, c.name, err, errlen)) != SW_OK)
        return rv;
    LOG(LOG_INFO, "NOTIFICATION-CHANNEL", "channel %s (%s) of site %s added by %s %s", c.name,
        c.kind, j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return channel_answer(j, db, c.name, 201, err, errlen);
}

sw_err ntf_channel_patch(struct job *j, PGconn *db, const char *name, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    if (j->json == NULL) {
        job_reply_error(j, 400, "the body must be a JSON object with the members to change");
        return SW_OK;
    }
    const char *v0[] = {j->who.site_id, name};
    PGresult *r;
    sw_err rv = db_run(db, "read the channel",
                       "SELECT kind FROM notification.channels WHERE site_id = $1::uuid AND name "
                       "= $2 FOR UPDATE",
                       2, v0, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return channel_answer(j, db, name, 404, err, errlen);
    }
    char kind[16];
    snprintf(kind, sizeof(kind), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    struct chan c;
    channel_fields(&f, j->json, &c, false, kind);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    json_t *s = json_object_get(j->json, "settings");
    char *settings = s != NULL ? json_dumps(s, JSON_COMPACT) : NULL;
    char rate[24], burst[24], tmo[24], att[24], age[24];
    long_text(c.rate, rate, sizeof(rate));
    long_text(c.burst, burst, sizeof(burst));
    long_text(c.timeout, tmo, sizeof(tmo));
    long_text(c.attempts, att, sizeof(att));
    long_text(c.age, age, sizeof(age));
    const char *v[] = {j->who.site_id,
                       name,
                       c.url,
                       c.secret,
                       c.secret_null ? "t" : "f",
                       settings,
                       c.locale,
                       rate,
                       burst,
                       tmo,
                       att,
                       age,
                       c.active < 0 ? NULL
                       : c.active   ? "true"
                                    : "false"};
    rv = db_run(db, "change the channel",
                "UPDATE notification.channels SET url = coalesce($3, url), secret = CASE WHEN $5 "
                "= 't' THEN NULL ELSE coalesce($4, secret) END, settings = coalesce($6::jsonb, "
                "settings), locale = coalesce($7, locale), rate_per_s = coalesce(nullif($8, "
                "'')::int, rate_per_s), burst = coalesce(nullif($9, '')::int, burst), timeout_ms "
                "= coalesce(nullif($10, '')::int, timeout_ms), max_attempts = "
                "coalesce(nullif($11, '')::int, max_attempts), max_age = "
                "coalesce(make_interval(secs => nullif($12, '')::int), max_age), active = "
                "coalesce($13::bool, active), updated_at = now() WHERE site_id = $1::uuid AND "
                "name = $2",
                13, v, NULL, err, errlen);
    free(settings);
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "NOTIFICATION-CHANNEL", "channel %s of site %s changed by %s %s", name,
        j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return channel_answer(j, db, name, 200, err, errlen);
}

sw_err ntf_channel_delete(struct job *j, PGconn *db, const char *name, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id, name};
    PGresult *r;
    sw_err rv = db_run(db, "remove the channel",
                       "DELETE FROM notification.channels WHERE site_id = $1::uuid AND name = $2 "
                       "RETURNING id",
                       2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    bool gone = PQntuples(r) == 1;
    PQclear(r);
    if (!gone)
        return channel_answer(j, db, name, 404, err, errlen);
    LOG(LOG_INFO, "NOTIFICATION-CHANNEL", "channel %s of site %s removed by %s %s", name,
        j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    job_reply_removed(j, name);
    return SW_OK;
}

/* ---- subscriptions ------------------------------------------------------------------------ */

#define SUB_JSON                                                                                   \
    "json_build_object('id', b.id, 'event_type', b.event_type, 'channel', c.name, 'audience', "    \
    "b.audience, 'department', d.code, 'min_urgency', b.min_urgency, 'active', b.active)"

sw_err ntf_subs_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    return answer_query(j, db, "read the subscriptions",
                        "SELECT json_build_object('subscriptions', coalesce(json_agg(" SUB_JSON
                        " ORDER BY b.event_type, c.name, b.audience), '[]')) FROM "
                        "notification.subscriptions b JOIN notification.channels c ON c.id = "
                        "b.channel_id LEFT JOIN core.departments d ON d.id = b.department_id WHERE "
                        "b.site_id = $1::uuid",
                        1, v, 200, "not found", err, errlen);
}

sw_err ntf_sub_create(struct job *j, PGconn *db, char *err, size_t errlen)
{
    static const char *const known[] = {"event_type", "channel",     "audience",
                                        "department", "min_urgency", NULL};
    struct field_errors f = {.n = 0};
    if (j->json == NULL) {
        job_reply_error(j, 400,
                        "the body must be a subscription: {\"event_type\", \"channel\", "
                        "\"audience\"}");
        return SW_OK;
    }
    members_only(&f, j->json, known, "a subscription");
    const char *ev = json_str_member(&f, j->json, "event_type", 100, true);
    const char *ch = json_str_member(&f, j->json, "channel", 64, true);
    const char *au = json_str_member(&f, j->json, "audience", 20, true);
    const char *dept = json_str_member(&f, j->json, "department", 32, false);
    const char *urg = json_str_member(&f, j->json, "min_urgency", 12, false);
    event_check(&f, ev, au != NULL && strcmp(au, "customer") == 0);
    if (au != NULL && !one_of(au, audiences))
        field_bad(&f, "audience",
                  "must be channel, receiving_head, handler, owner, first_responder, qa, ladder, "
                  "supervisor, manager, leader, reviewers or customer");
    if (urg != NULL && strcmp(urg, "normal") != 0 && strcmp(urg, "urgent") != 0 &&
        strcmp(urg, "emergency") != 0)
        field_bad(&f, "min_urgency", "must be normal, urgent or emergency");
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, ev, ch, au, dept, urg};
    PGresult *r;
    sw_err rv = db_run(
        db, "add the subscription",
        "WITH c AS (SELECT id FROM notification.channels WHERE site_id = $1::uuid AND name = $3), "
        "d AS (SELECT id FROM core.departments WHERE site_id = $1::uuid AND code = $5), i AS "
        "(INSERT INTO notification.subscriptions (site_id, event_type, channel_id, audience, "
        "department_id, min_urgency) SELECT $1::uuid, $2, c.id, $4, (SELECT id FROM d), "
        "coalesce($6, 'normal') FROM c WHERE $5::text IS NULL OR EXISTS (SELECT 1 FROM d) ON "
        "CONFLICT ON CONSTRAINT subscriptions_unique DO NOTHING RETURNING id) SELECT (SELECT "
        "count(*) FROM c), (SELECT count(*) FROM d), (SELECT id::text FROM i)",
        6, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    bool no_channel = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
    bool no_dept = dept != NULL && strcmp(PQgetvalue(r, 0, 1), "0") == 0;
    bool dup = PQgetisnull(r, 0, 2);
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    if (no_channel || no_dept) {
        if (no_channel)
            field_bad(&f, "channel", "no such channel: %.64s", ch);
        if (no_dept)
            field_bad(&f, "department", "no such department: %.32s", dept);
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    if (dup) {
        job_reply_error(j, 409, "the same subscription exists already");
        return SW_OK;
    }
    const char *w[] = {id};
    return answer_query(j, db, "read the subscription",
                        "SELECT " SUB_JSON " FROM notification.subscriptions b JOIN "
                        "notification.channels c ON c.id = b.channel_id LEFT JOIN "
                        "core.departments d ON d.id = b.department_id WHERE b.id = $1::uuid",
                        1, w, 201, "no such subscription", err, errlen);
}

/* DELETE of a row of `table` by id within the site: 204, or 404 naming `what`. */
static sw_err delete_by_id(struct job *j, PGconn *db, const char *sql, const char *id,
                           const char *what, char *err, size_t errlen)
{
    char w[80], msg[80];
    snprintf(msg, sizeof(msg), "no such %s", what);
    if (!is_uuid(id, strlen(id))) {
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    snprintf(w, sizeof(w), "remove the %s", what);
    return job_delete_one(j, db, w, sql, id, msg, err, errlen);
}

sw_err ntf_sub_delete(struct job *j, PGconn *db, const char *id, char *err, size_t errlen)
{
    return delete_by_id(j, db,
                        "DELETE FROM notification.subscriptions WHERE site_id = $1::uuid AND id = "
                        "$2::uuid RETURNING id",
                        id, "subscription", err, errlen);
}

/* ---- templates ---------------------------------------------------------------------------- */

#define TEMPLATE_JSON                                                                              \
    "json_build_object('id', t.id, 'event_type', t.event_type, 'channel_kind', t.channel_kind, "   \
    "'locale', t.locale, 'audience', t.audience, 'subject', t.subject, 'body', t.body, "           \
    "'updated_at', t.updated_at)"

sw_err ntf_templates_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    PGresult *r;
    /* the variables are listed from the code, the one place they are defined */
    struct buf vars;
    buf_init(&vars, 4096);
    buf_puts(&vars, "{");
    for (int i = 0; i < NTF_VARS; i++)
        buf_pg_elem(&vars, i == 0, ntf_var_names[i]);
    buf_puts(&vars, "}");
    const char *w[] = {j->who.site_id, buf_cstr(&vars)};
    sw_err rv =
        db_run(db, "read the templates",
               "SELECT json_build_object('templates', coalesce(json_agg(" TEMPLATE_JSON
               " ORDER BY t.event_type, t.channel_kind, t.locale), '[]'), 'variables', (SELECT "
               "json_agg(v) FROM unnest($2::text[]) AS v)) FROM notification.templates t WHERE "
               "t.site_id = $1::uuid",
               2, w, &r, err, errlen);
    buf_free(&vars);
    if (rv != SW_OK)
        return rv;
    reply_json_row(j, r, 200);
    PQclear(r);
    return SW_OK;
}

sw_err ntf_template_put(struct job *j, PGconn *db, char *err, size_t errlen)
{
    static const char *const known[] = {"event_type", "channel_kind", "locale", "audience",
                                        "subject",    "body",         NULL};
    struct field_errors f = {.n = 0};
    char why[1024];
    if (j->json == NULL) {
        job_reply_error(j, 400,
                        "the body must be a template: {\"event_type\", \"channel_kind\", "
                        "\"locale\", \"subject\", \"body\"}");
        return SW_OK;
    }
    members_only(&f, j->json, known, "a template");
    const char *ev = json_str_member(&f, j->json, "event_type", 100, true);
    const char *kind = json_str_member(&f, j->json, "channel_kind", 16, false);
    const char *loc = json_str_member(&f, j->json, "locale", 8, false);
    const char *subject = json_str_member(&f, j->json, "subject", 1000, false);
    const char *body = json_str_member(&f, j->json, "body", 20000, true);
    const char *aud = json_str_member(&f, j->json, "audience", 10, false);
    event_check(&f, ev, aud != NULL && strcmp(aud, "customer") == 0);
    if (aud != NULL && strcmp(aud, "staff") != 0 && strcmp(aud, "customer") != 0)
        field_bad(&f, "audience", "must be staff (the default) or customer");
    if (kind != NULL && strcmp(kind, "any") != 0 && !one_of(kind, kinds))
        field_bad(&f, "channel_kind",
                  "must be any, webhook, email, sms, wecom, dingtalk, feishu or slack");
    if (loc != NULL && strcmp(loc, "zh-CN") != 0 && strcmp(loc, "en") != 0)
        field_bad(&f, "locale", "must be zh-CN or en");
    if (subject != NULL && ntf_template_check(subject, why, sizeof(why)) != SW_OK)
        field_bad(&f, "subject", "%s", why);
    if (subject != NULL && strpbrk(subject, "\r\n") != NULL)
        field_bad(&f, "subject", "must be one line");
    if (body != NULL && ntf_template_check(body, why, sizeof(why)) != SW_OK)
        field_bad(&f, "body", "%s", why);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, ev,   kind ? kind : "any", loc ? loc : "zh-CN",
                       subject,        body, aud ? aud : "staff"};
    PGresult *r;
    sw_err rv = db_run(db, "save the template",
                       "WITH t AS (INSERT INTO notification.templates AS t (site_id, event_type, "
                       "channel_kind, locale, subject, body, audience) VALUES ($1::uuid, $2, $3, "
                       "$4, $5, $6, $7) ON CONFLICT ON CONSTRAINT templates_unique DO UPDATE SET "
                       "subject = EXCLUDED.subject, body = EXCLUDED.body, updated_at = now() "
                       "RETURNING *) SELECT " TEMPLATE_JSON " FROM t",
                       7, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    reply_json_row(j, r, 200);
    PQclear(r);
    LOG(LOG_INFO, "NOTIFICATION-TEMPLATE", "template %s/%s/%s for %s of site %s saved by %s %s", ev,
        v[2], v[3], v[6], j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    return SW_OK;
}

sw_err ntf_template_delete(struct job *j, PGconn *db, const char *id, char *err, size_t errlen)
{
    return delete_by_id(j, db,
                        "DELETE FROM notification.templates WHERE site_id = $1::uuid AND id = "
                        "$2::uuid RETURNING id",
                        id, "template", err, errlen);
}

/* ---- settings ----------------------------------------------------------------------------- */

static sw_err settings_answer(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    return answer_query(
        j, db, "read the notification settings",
        "SELECT json_build_object('quiet_hours', coalesce(s.quiet_hours, true), "
        "'sms_daily_cap', coalesce(s.sms_daily_cap, 500), 'customer_notices', "
        "coalesce(s.customer_notices, false), 'sms_sent_today', coalesce((SELECT "
        "k.sent FROM notification.daily_counts k JOIN core.sites x ON x.id = "
        "k.site_id WHERE k.site_id = $1::uuid AND k.kind = 'sms' AND k.day = (now() "
        "AT TIME ZONE x.time_zone)::date), 0)) FROM (SELECT 1) one LEFT JOIN "
        "notification.site_settings s ON s.site_id = $1::uuid",
        1, v, 200, "not found", err, errlen);
}

sw_err ntf_settings_get(struct job *j, PGconn *db, char *err, size_t errlen)
{
    return settings_answer(j, db, err, errlen);
}

sw_err ntf_settings_patch(struct job *j, PGconn *db, char *err, size_t errlen)
{
    static const char *const known[] = {"quiet_hours", "sms_daily_cap", "customer_notices", NULL};
    struct field_errors f = {.n = 0};
    if (j->json == NULL) {
        job_reply_error(j, 400,
                        "the body must be a JSON object with any of quiet_hours, sms_daily_cap, "
                        "customer_notices");
        return SW_OK;
    }
    members_only(&f, j->json, known, "the notification settings");
    json_t *qh = json_object_get(j->json, "quiet_hours");
    json_t *cn = json_object_get(j->json, "customer_notices");
    if (qh != NULL && !json_is_boolean(qh))
        field_bad(&f, "quiet_hours", "must be true or false");
    if (cn != NULL && !json_is_boolean(cn))
        field_bad(&f, "customer_notices", "must be true or false");
    long cap = -1;
    int_member(&f, j->json, "sms_daily_cap", 0, 1000000, &cap);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    char capt[24];
    long_text(cap, capt, sizeof(capt));
    const char *v[] = {j->who.site_id, qh ? (json_is_true(qh) ? "true" : "false") : NULL, capt,
                       cn ? (json_is_true(cn) ? "true" : "false") : NULL};
    sw_err rv = db_run(
        db, "change the notification settings",
        "INSERT INTO notification.site_settings AS s (site_id, quiet_hours, sms_daily_cap, "
        "customer_notices) VALUES ($1::uuid, coalesce($2::bool, true), coalesce(nullif($3, "
        "'')::int, 500), coalesce($4::bool, false)) ON CONFLICT (site_id) DO UPDATE SET "
        "quiet_hours = coalesce($2::bool, s.quiet_hours), sms_daily_cap = coalesce(nullif($3, "
        "'')::int, s.sms_daily_cap), customer_notices = coalesce($4::bool, s.customer_notices), "
        "updated_at = now()",
        4, v, NULL, err, errlen);
    if (rv != SW_OK)
        return rv;
    return settings_answer(j, db, err, errlen);
}

/* ---- deliveries --------------------------------------------------------------------------- */

#define DELIVERY_JSON                                                                              \
    "json_build_object('id', d.id, 'event_id', d.event_id, 'event_type', d.event_type, "           \
    "'case_id', d.case_id, 'channel', c.name, 'kind', c.kind, 'recipient', nullif(d.recipient, "   \
    "''), 'message_id', d.message_id, 'status', d.status, 'attempts', d.attempts, "                \
    "'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END, 'held', "       \
    "d.held, 'created_at', d.created_at, 'delivered_at', d.delivered_at, 'last_code', "            \
    "d.last_code, 'last_error', d.last_error, 'subject', d.subject"

sw_err ntf_deliveries_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    char cs[64] = "", st[16] = "", ch[80] = "", lim[16] = "100";
    bool has_case = query_get(j->query, "case", cs, sizeof(cs));
    bool has_status = query_get(j->query, "status", st, sizeof(st));
    bool has_channel = query_get(j->query, "channel", ch, sizeof(ch));
    query_get(j->query, "limit", lim, sizeof(lim));
    static const char *const names[] = {"case", "status", "channel", "limit", NULL};
    query_only(&f, j->query, names, "case, status, channel and limit");
    if (has_case && !is_uuid(cs, strlen(cs)))
        field_bad(&f, "case", "must be a case id (a UUID)");
    if (has_status && strcmp(st, "pending") != 0 && strcmp(st, "delivered") != 0 &&
        strcmp(st, "dead") != 0)
        field_bad(&f, "status", "must be pending, delivered or dead");
    int limit = atoi(lim);
    if (limit < 1 || limit > 1000 || strspn(lim, "0123456789") != strlen(lim))
        field_bad(&f, "limit", "must be 1 to 1000");
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, has_case ? cs : NULL, has_status ? st : NULL,
                       has_channel ? ch : NULL, lim};
    return answer_query(
        j, db, "read the deliveries",
        "SELECT json_build_object('deliveries', coalesce(json_agg(x.j ORDER BY "
        "x.id DESC), '[]')) FROM (SELECT d.id, " DELIVERY_JSON
        ") AS j FROM notification.deliveries d JOIN notification.channels c ON c.id "
        "= d.channel_id WHERE d.site_id = $1::uuid AND ($2::uuid IS NULL OR "
        "d.case_id = $2::uuid) AND ($3::text IS NULL OR d.status = $3) AND "
        "($4::text IS NULL OR c.name = $4) ORDER BY d.id DESC LIMIT $5::int) x",
        5, v, 200, "not found", err, errlen);
}

sw_err ntf_delivery_get(struct job *j, PGconn *db, const char *id, char *err, size_t errlen)
{
    if (strspn(id, "0123456789") != strlen(id) || strlen(id) > 18 || id[0] == '\0') {
        job_reply_error(j, 404, "no such delivery");
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, id};
    return answer_query(
        j, db, "read the delivery",
        "SELECT " DELIVERY_JSON ", 'body', d.body, 'attempt_list', (SELECT coalesce(json_agg("
        "json_build_object('attempt', a.attempt, 'started_at', a.started_at, 'latency_ms', "
        "a.latency_ms, 'outcome', a.outcome, 'response_code', a.response_code, 'error', a.error) "
        "ORDER BY a.attempt), '[]') FROM notification.attempts a WHERE a.delivery_id = d.id)) FROM "
        "notification.deliveries d JOIN notification.channels c ON c.id = d.channel_id WHERE "
        "d.site_id = $1::uuid AND d.id = $2::bigint",
        2, v, 200, "no such delivery", err, errlen);
}
