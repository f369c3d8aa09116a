/*
 * handle_rules.c - a site's routing rules over the public API:
 *
 *   GET /v1/sites/{code}/routing/rules   the active rules, in the order they are tried
 *   PUT /v1/sites/{code}/routing/rules   replace them all: {"rules": [rule, ...]}
 *
 * A rule:
 *   {"name": "water", "priority": 10,
 *    "types": ["repair", "help"], "channels": ["phone"], "urgencies": ["urgent"],
 *    "keywords": ["漏水", "水管"], "location": "3-",
 *    "hours": {"from": "22:00", "to": "06:00"},
 *    "department": "eng", "assisting_departments": ["cs"]}
 * Every condition but the department is optional (absent or empty: any);
 * a rule must set at least one.  The set is replaced whole because rules
 * are an ordered list: adding one in the middle changes what the others
 * mean, and a half-saved set would route by an order nobody wrote.
 *
 * The rules belong to the routing service (schema routing, its module
 * common/route.c says what a valid rule is); intake serves them so that
 * they live under the same base URL as the rest of the API.  Who may: as
 * the directory (handle_admin.c): an admin API key or a manager.  A
 * refused set names every wrong field ("rules[2].department") and saves
 * nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "intake.h"
#include "log.h"
#include "route.h"

#define RULES_MAX       1000 /* rules per site */
#define RULES_FIELDS    16   /* field errors answered at most */
#define RULES_DEPTS_MAX 2000

struct rules_ctx {
    struct job *j;
    struct field_error fe[RULES_FIELDS];
    int nfe;
};

static void bad(struct rules_ctx *c, const char *field, const char *msg)
{
    if (c->nfe < RULES_FIELDS) {
        snprintf(c->fe[c->nfe].field, sizeof(c->fe[c->nfe].field), "%.63s", field);
        snprintf(c->fe[c->nfe].message, sizeof(c->fe[c->nfe].message), "%.159s", msg);
    }
    c->nfe++;
}

/* The active rules as the API shows them, a JSON array in order. */
static sw_err rules_json(PGconn *db, const char *site_id, PGresult **out, char *err, size_t errlen)
{
    const char *v[] = {site_id};
    PGresult *r = PQexecParams(
        db,
        "SELECT coalesce(json_agg(json_build_object('id', r.id, 'name', r.name, 'priority', "
        "r.priority, 'types', r.case_types, 'channels', r.channels, 'urgencies', r.urgencies, "
        "'keywords', r.keywords, 'location', r.location_prefix, 'hours', CASE WHEN r.from_minute "
        "IS NULL THEN NULL ELSE json_build_object('from', to_char(make_interval(mins => "
        "r.from_minute), 'HH24:MI'), 'to', to_char(make_interval(mins => r.to_minute), "
        "'HH24:MI')) END, 'department', d.code, 'assisting_departments', (SELECT "
        "coalesce(json_agg(a.code ORDER BY x.i), '[]') FROM unnest(r.assisting_department_ids) "
        "WITH ORDINALITY AS x(id, i) JOIN core.departments a ON a.id = x.id), 'updated_at', "
        "to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) ORDER BY "
        "r.priority), '[]')::text FROM routing.rules r JOIN core.departments d ON d.id = "
        "r.target_department_id WHERE r.site_id = $1::uuid AND r.active",
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        sw_err rv = db_fail(db, r, "could not read the routing rules", err, errlen);
        PQclear(r);
        return rv;
    }
    *out = r;
    return SW_OK;
}

static void answer(struct job *j, const char *site, const char *rules)
{
    /* PostgreSQL's json has spaces; the API's answers are compact */
    json_t *parsed = json_loads(rules, 0, NULL);
    char *compact = parsed != NULL ? json_dumps(parsed, JSON_COMPACT) : NULL;
    json_decref(parsed);
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"site\":");
    buf_json_string(&j->body, site);
    buf_puts(&j->body, ",\"rules\":");
    buf_puts(&j->body, compact != NULL ? compact : rules);
    buf_puts(&j->body, "}");
    free(compact);
    j->status = 200;
}

sw_err rules_get(struct job *j, PGconn *db, char *err, size_t errlen)
{
    PGresult *r = NULL;
    sw_err rv = rules_json(db, j->who.site_id, &r, err, errlen);
    if (rv == SW_OK)
        answer(j, j->who.site, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rv;
}

/* ---- reading one rule ------------------------------------------------------------------- */

typedef bool (*parse_fn)(const char *name, int *out);

static bool type_parse(const char *s, int *out)
{
    Shouwen__V1__CaseType v;
    bool ok = wf_case_type_parse(s, &v) && v != 0;
    *out = (int)v;
    return ok;
}

static bool channel_parse(const char *s, int *out)
{
    Shouwen__V1__Channel v;
    bool ok = wf_channel_parse(s, &v) && v != 0;
    *out = (int)v;
    return ok;
}

static bool urgency_parse(const char *s, int *out)
{
    Shouwen__V1__Urgency v;
    bool ok = wf_urgency_parse(s, &v) && v != 0;
    *out = (int)v;
    return ok;
}

/* A set of names ("types": [...]) into bits; `choices` for the message. */
static uint32_t get_set(struct rules_ctx *c, json_t *o, const char *key, const char *pre,
                        parse_fn parse, const char *choices)
{
    json_t *a = json_object_get(o, key), *e;
    char f[96], msg[160];
    uint32_t bits = 0;
    size_t i;
    snprintf(f, sizeof(f), "%s%s", pre, key);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        snprintf(msg, sizeof(msg), "must be an array of: %s", choices);
        bad(c, f, msg);
        return 0;
    }
    json_array_foreach(a, i, e)
    {
        int v;
        if (!json_is_string(e) || !parse(json_string_value(e), &v) || v < 0 || v > 31) {
            snprintf(f, sizeof(f), "%s%s[%zu]", pre, key, i);
            snprintf(msg, sizeof(msg), "must be one of: %s", choices);
            bad(c, f, msg);
            continue;
        }
        bits |= 1u << v;
    }
    return bits;
}

/* "HH:MM" (00:00-24:00) into minutes, or -1. */
static int minutes(const char *s)
{
    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return -1;
    return h * 60 + m;
}

static bool known_keys(struct rules_ctx *c, json_t *o, const char *pre)
{
    static const char *const known[] = {
        "name",     "priority",   "types", "channels",   "urgencies",
        "keywords", "location",   "hours", "department", "assisting_departments",
        "id",       "updated_at", NULL};
    const char *k;
    json_t *v;
    bool ok = true;
    json_object_foreach(o, k, v)
    {
        bool found = false;
        for (int i = 0; known[i] && !found; i++)
            found = strcmp(k, known[i]) == 0;
        if (!found) {
            char f[160];
            snprintf(f, sizeof(f), "%s%.60s", pre, k);
            bad(c, f,
                "unknown field (a rule has name, priority, types, channels, urgencies, keywords, "
                "location, hours, department, assisting_departments)");
            ok = false;
        }
    }
    return ok;
}

static void get_rule(struct rules_ctx *c, json_t *o, size_t idx, struct route_rule *r)
{
    char pre[32], f[96];
    snprintf(pre, sizeof(pre), "rules[%zu].", idx);
    memset(r, 0, sizeof(*r));
    r->from_minute = r->to_minute = -1;
    if (!json_is_object(o)) {
        snprintf(f, sizeof(f), "rules[%zu]", idx);
        bad(c, f, "must be an object");
        return;
    }
    known_keys(c, o, pre);
    json_t *v = json_object_get(o, "name");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) > ROUTE_NAME_MAX)) {
        snprintf(f, sizeof(f), "%sname", pre);
        bad(c, f, "must be a text of at most 200 bytes");
    } else if (v != NULL) {
        snprintf(r->name, sizeof(r->name), "%s", json_string_value(v));
    }
    v = json_object_get(o, "priority");
    snprintf(f, sizeof(f), "%spriority", pre);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
        bad(c, f, "is required: an integer 0..1000000 (lower is tried first)");
    else
        r->priority = (int)json_integer_value(v);
    r->types = get_set(c, o, "types", pre, type_parse,
                       "consultation, complaint, help, suggestion, repair, business, report, "
                       "emergency");
    r->channels = get_set(c, o, "channels", pre, channel_parse,
                          "visit, phone, letter, web, email, hotline, chat, social, meeting, "
                          "callback, api, device");
    r->urgencies = get_set(c, o, "urgencies", pre, urgency_parse, "normal, urgent, emergency");
    v = json_object_get(o, "keywords");
    if (v != NULL && !json_is_null(v)) {
        json_t *e;
        size_t i;
        snprintf(f, sizeof(f), "%skeywords", pre);
        if (!json_is_array(v) || json_array_size(v) > ROUTE_MAX_KEYWORDS) {
            bad(c, f, "must be an array of at most 16 keywords");
        } else {
            json_array_foreach(v, i, e)
            {
                const char *s = json_is_string(e) ? json_string_value(e) : NULL;
                if (s == NULL || blank(s) || json_string_length(e) > ROUTE_KEYWORD_MAX) {
                    snprintf(f, sizeof(f), "%skeywords[%zu]", pre, i);
                    bad(c, f, "must be a non-blank text of at most 100 bytes");
                    continue;
                }
                snprintf(r->keywords[r->nkeywords++], ROUTE_KEYWORD_MAX + 1, "%s", s);
            }
        }
    }
    v = json_object_get(o, "location");
    if (v != NULL && !json_is_null(v)) {
        snprintf(f, sizeof(f), "%slocation", pre);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > ROUTE_LOCATION_MAX)
            bad(c, f, "must be a prefix of a building or room, e.g. \"3-\", at most 64 bytes");
        else
            snprintf(r->location, sizeof(r->location), "%s", json_string_value(v));
    }
    v = json_object_get(o, "hours");
    if (v != NULL && !json_is_null(v)) {
        snprintf(f, sizeof(f), "%shours", pre);
        int from = minutes(json_string_value(json_object_get(v, "from")));
        int to = minutes(json_string_value(json_object_get(v, "to")));
        if (!json_is_object(v) || json_object_size(v) != 2 || from < 0 || to < 0 || from >= 1440)
            bad(c, f,
                "must be {\"from\": \"HH:MM\", \"to\": \"HH:MM\"} in the site's time zone "
                "(from 00:00-23:59, to 00:00-24:00; to before from wraps past midnight)");
        else {
            r->from_minute = from;
            r->to_minute = to;
        }
    }
    v = json_object_get(o, "department");
    snprintf(f, sizeof(f), "%sdepartment", pre);
    if (!json_is_string(v) || json_string_length(v) >= WF_CODE_SIZE)
        bad(c, f, "is required: the code of the department the rule sends cases to");
    else
        snprintf(r->target, sizeof(r->target), "%s", json_string_value(v));
    v = json_object_get(o, "assisting_departments");
    if (v != NULL && !json_is_null(v)) {
        json_t *e;
        size_t i;
        snprintf(f, sizeof(f), "%sassisting_departments", pre);
        if (!json_is_array(v) || json_array_size(v) > WF_MAX_ASSIST) {
            bad(c, f, "must be an array of at most 8 department codes");
        } else {
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e) || json_string_length(e) >= WF_CODE_SIZE) {
                    snprintf(f, sizeof(f), "%sassisting_departments[%zu]", pre, i);
                    bad(c, f, "must be a department code");
                    continue;
                }
                snprintf(r->assisting[r->nassisting++], WF_CODE_SIZE, "%s", json_string_value(e));
            }
        }
    }
}

/* ---- saving ------------------------------------------------------------------------------ */

static void add_names(json_t *row, const char *key, uint32_t bits, const char *(*name)(int))
{
    json_t *a = json_array();
    for (int v = 0; v < 32; v++)
        if (bits & (1u << v) && name(v) != NULL)
            json_array_append_new(a, json_string(name(v)));
    json_object_set_new(row, key, a);
}

static const char *type_name(int v)
{
    return wf_case_type_name((Shouwen__V1__CaseType)v);
}
static const char *channel_name(int v)
{
    return wf_channel_name((Shouwen__V1__Channel)v);
}
static const char *urgency_name(int v)
{
    return wf_urgency_name((Shouwen__V1__Urgency)v);
}

/* The checked rules as the JSON rows that the INSERT reads. */
static char *rows_json(const struct route_rule *rules, size_t n)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows != NULL && i < n; i++) {
        const struct route_rule *r = &rules[i];
        json_t *row = json_object(), *kw = json_array(), *as = json_array();
        for (size_t k = 0; k < r->nkeywords; k++)
            json_array_append_new(kw, json_string(r->keywords[k]));
        for (size_t k = 0; k < r->nassisting; k++)
            json_array_append_new(as, json_string(r->assisting[k]));
        json_object_set_new(row, "name", json_string(r->name));
        json_object_set_new(row, "priority", json_integer(r->priority));
        add_names(row, "types", r->types, type_name);
        add_names(row, "channels", r->channels, channel_name);
        add_names(row, "urgencies", r->urgencies, urgency_name);
        json_object_set_new(row, "keywords", kw);
        json_object_set_new(row, "location",
                            r->location[0] ? json_string(r->location) : json_null());
        json_object_set_new(row, "from_minute",
                            r->from_minute >= 0 ? json_integer(r->from_minute) : json_null());
        json_object_set_new(row, "to_minute",
                            r->to_minute >= 0 ? json_integer(r->to_minute) : json_null());
        json_object_set_new(row, "department", json_string(r->target));
        json_object_set_new(row, "assisting", as);
        json_array_append_new(rows, row);
    }
    char *s = rows != NULL ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    return s;
}

sw_err rules_put(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct rules_ctx c = {.j = j};
    json_t *list = j->json != NULL ? json_object_get(j->json, "rules") : NULL;
    struct route_rule *rules = NULL;
    PGresult *r = NULL;
    sw_err rv = SW_OK;
    char msg[300];

    if (j->json == NULL || !json_is_array(list)) {
        job_reply_error(j, 400, "the body must be {\"rules\": [ ... ]}: the whole ordered set");
        return SW_OK;
    }
    if (json_object_size(j->json) != 1) {
        bad(&c, "rules", "the body holds only \"rules\"");
    }
    size_t n = json_array_size(list);
    if (n > RULES_MAX) {
        snprintf(msg, sizeof(msg), "at most %d rules per site", RULES_MAX);
        bad(&c, "rules", msg);
        n = 0;
    }
    rules = calloc(n ? n : 1, sizeof(*rules));
    if (rules == NULL) {
        job_reply_error(j, 503, "out of memory");
        return SW_OK;
    }
    for (size_t i = 0; i < n; i++)
        get_rule(&c, json_array_get(list, i), i, &rules[i]);

    /* the site's active departments, and the site locked against a concurrent PUT */
    const char *sv[] = {j->who.site_id};
    rv = db_run(db, "lock the site",
                "SELECT 1 FROM core.sites WHERE id = $1::uuid FOR NO KEY UPDATE", 1, sv, NULL, err,
                errlen);
    if (rv == SW_OK)
        rv = db_run(db, "read the departments",
                    "SELECT code FROM core.departments WHERE site_id = $1::uuid AND active "
                    "ORDER BY code LIMIT 2000",
                    1, sv, &r, err, errlen);
    if (rv != SW_OK)
        goto out;
    const char *depts[RULES_DEPTS_MAX];
    size_t nd = 0;
    for (int i = 0; i < PQntuples(r) && nd < RULES_DEPTS_MAX; i++)
        depts[nd++] = PQgetvalue(r, i, 0);
    for (size_t i = 0; c.nfe == 0 && i < n; i++) {
        char field[40], m[160], f[96];
        if (!route_rule_check(&rules[i], depts, nd, field, sizeof(field), m, sizeof(m))) {
            snprintf(f, sizeof(f), "rules[%zu].%s", i, field);
            bad(&c, f, m);
        }
    }
    if (c.nfe == 0 && !route_rules_check_order(rules, n, msg, sizeof(msg)))
        bad(&c, "rules", msg);
    PQclear(r);
    r = NULL;
    if (c.nfe > 0) {
        job_reply_fields(j, c.fe, c.nfe < RULES_FIELDS ? c.nfe : RULES_FIELDS);
        goto out;
    }

    char *rows = rows_json(rules, n);
    if (rows == NULL) {
        job_reply_error(j, 503, "out of memory");
        goto out;
    }
    const char *v[] = {j->who.site_id, rows};
    rv = db_run(db, "replace the routing rules",
                "DELETE FROM routing.rules WHERE site_id = $1::uuid", 1, v, NULL, err, errlen);
    if (rv == SW_OK)
        rv = db_run(
            db, "save the routing rules",
            "INSERT INTO routing.rules (site_id, name, priority, case_types, channels, urgencies, "
            "keywords, location_prefix, from_minute, to_minute, target_department_id, "
            "assisting_department_ids) SELECT $1::uuid, x.name, x.priority, "
            "ARRAY(SELECT json_array_elements_text(x.types)), "
            "ARRAY(SELECT json_array_elements_text(x.channels)), "
            "ARRAY(SELECT json_array_elements_text(x.urgencies)), "
            "ARRAY(SELECT json_array_elements_text(x.keywords)), x.location, x.from_minute, "
            "x.to_minute, d.id, ARRAY(SELECT a.id FROM json_array_elements_text(x.assisting) "
            "WITH ORDINALITY AS s(code, i) JOIN core.departments a ON a.site_id = $1::uuid AND "
            "a.code = s.code ORDER BY s.i) FROM json_to_recordset($2::json) AS x(name text, "
            "priority int, types json, channels json, urgencies json, keywords json, location "
            "text, from_minute int, to_minute int, department text, assisting json) JOIN "
            "core.departments d ON d.site_id = $1::uuid AND d.code = x.department",
            2, v, NULL, err, errlen);
    free(rows);
    if (rv == SW_OK)
        rv = rules_json(db, j->who.site_id, &r, err, errlen);
    if (rv == SW_OK) {
        answer(j, j->who.site, PQgetvalue(r, 0, 0));
        LOG(LOG_INFO, "ROUTING-RULES-SAVED", "%zu routing rules of site %s saved by %s %s", n,
            j->who.site, j->who.kind == 'k' ? "api key" : "staff", j->who.name);
    }
out:
    PQclear(r);
    free(rules);
    return rv;
}
