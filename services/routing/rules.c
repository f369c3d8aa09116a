/*
 * rules.c - each site's routing rules, kept in memory and loaded again
 * when their stamp (how many are active, and the newest updated_at)
 * changes: PUT /v1/sites/{code}/routing/rules replaces them in one
 * transaction, so the next case after its commit is routed by the new set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db.h"
#include "log.h"
#include "routing.h"

static uint32_t bits(json_t *a, bool (*parse)(const char *, int *))
{
    uint32_t b = 0;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        int v;
        if (json_is_string(e) && parse(json_string_value(e), &v) && v >= 0 && v < 32)
            b |= 1u << v;
    }
    return b;
}

static bool type_of(const char *s, int *v)
{
    Shouwen__V1__CaseType t;
    bool ok = wf_case_type_parse(s, &t);
    *v = (int)t;
    return ok;
}

static bool channel_of(const char *s, int *v)
{
    Shouwen__V1__Channel t;
    bool ok = wf_channel_parse(s, &t);
    *v = (int)t;
    return ok;
}

static bool urgency_of(const char *s, int *v)
{
    Shouwen__V1__Urgency t;
    bool ok = wf_urgency_parse(s, &t);
    *v = (int)t;
    return ok;
}

static void text(char *dst, size_t cap, json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* One rule from its row (json_build_object of routing.rules and its departments). */
static void from_json(json_t *o, struct route_rule *r)
{
    json_t *e;
    size_t i;
    memset(r, 0, sizeof(*r));
    text(r->id, sizeof(r->id), json_object_get(o, "id"));
    text(r->name, sizeof(r->name), json_object_get(o, "name"));
    r->priority = (int)json_integer_value(json_object_get(o, "priority"));
    r->types = bits(json_object_get(o, "types"), type_of);
    r->channels = bits(json_object_get(o, "channels"), channel_of);
    r->urgencies = bits(json_object_get(o, "urgencies"), urgency_of);
    json_array_foreach(json_object_get(o, "keywords"), i, e)
    {
        if (r->nkeywords < ROUTE_MAX_KEYWORDS && json_is_string(e))
            text(r->keywords[r->nkeywords++], ROUTE_KEYWORD_MAX + 1, e);
    }
    text(r->location, sizeof(r->location), json_object_get(o, "location"));
    json_t *f = json_object_get(o, "from"), *t = json_object_get(o, "to");
    r->from_minute = json_is_integer(f) ? (int)json_integer_value(f) : -1;
    r->to_minute = json_is_integer(t) ? (int)json_integer_value(t) : -1;
    text(r->target, sizeof(r->target), json_object_get(o, "department"));
    json_array_foreach(json_object_get(o, "assisting"), i, e)
    {
        if (r->nassisting < WF_MAX_ASSIST && json_is_string(e))
            text(r->assisting[r->nassisting++], WF_CODE_SIZE, e);
    }
}

static void site_clear(struct site_rules *s)
{
    route_table_free(s->table);
    free(s->rules);
    s->table = NULL;
    s->rules = NULL;
    s->n = 0;
}

sw_err routing_rules(struct routing *rt, PGconn *tx, const char *site_id, const char *stamp,
                     const struct site_rules **out, char *err, size_t errlen)
{
    struct site_rules *s = NULL;
    for (size_t i = 0; i < rt->nsites && s == NULL; i++)
        if (strcmp(rt->sites[i].site_id, site_id) == 0)
            s = &rt->sites[i];
    if (s != NULL && strcmp(s->stamp, stamp) == 0) {
        *out = s;
        return SW_OK;
    }
    if (s == NULL) {
        if (rt->nsites == ROUTING_SITES_MAX) { /* full: forget the oldest */
            site_clear(&rt->sites[0]);
            memmove(&rt->sites[0], &rt->sites[1], (ROUTING_SITES_MAX - 1) * sizeof(rt->sites[0]));
            rt->nsites--;
        }
        s = &rt->sites[rt->nsites++];
        memset(s, 0, sizeof(*s));
        snprintf(s->site_id, sizeof(s->site_id), "%s", site_id);
    }
    /* Rules whose department is no longer active are left out (and said). */
    const char *v[] = {site_id};
    PGresult *r = PQexecParams(
        tx,
        "SELECT json_build_object('id', r.id, 'name', r.name, 'priority', r.priority, 'types', "
        "r.case_types, 'channels', r.channels, 'urgencies', r.urgencies, 'keywords', r.keywords, "
        "'location', r.location_prefix, 'from', r.from_minute, 'to', r.to_minute, 'department', "
        "d.code, 'assisting', ARRAY(SELECT a.code FROM unnest(r.assisting_department_ids) WITH "
        "ORDINALITY AS x(id, i) JOIN core.departments a ON a.id = x.id AND a.active ORDER BY "
        "x.i))::text, d.active FROM routing.rules r JOIN core.departments d ON d.id = "
        "r.target_department_id WHERE r.site_id = $1::uuid AND r.active ORDER BY r.priority",
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(tx, r, "could not read the routing rules", err, errlen);
        PQclear(r);
        return rv;
    }
    site_clear(s);
    int n = PQntuples(r);
    s->rules = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->rules));
    if (s->rules == NULL) {
        PQclear(r);
        s->stamp[0] = '\0';
        snprintf(err, errlen, "out of memory loading the routing rules");
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        json_t *o = json_loads(PQgetvalue(r, i, 0), 0, NULL);
        if (o == NULL)
            continue;
        if (PQgetvalue(r, i, 1)[0] != 't') {
            LOG(LOG_WARN, "ROUTING-RULE-SKIPPED",
                "rule %s of site %s names an inactive department: not used",
                json_string_value(json_object_get(o, "id")), site_id);
        } else {
            from_json(o, &s->rules[s->n++]);
        }
        json_decref(o);
    }
    PQclear(r);
    if (route_table_build(s->rules, s->n, &s->table) != SW_OK) {
        site_clear(s);
        s->stamp[0] = '\0';
        snprintf(err, errlen, "out of memory building the routing table");
        return SW_ENOMEM;
    }
    snprintf(s->stamp, sizeof(s->stamp), "%s", stamp);
    LOG(LOG_INFO, "ROUTING-RULES", "site %s: %zu routing rules loaded", site_id, s->n);
    *out = s;
    return SW_OK;
}

void routing_rules_free(struct routing *rt)
{
    for (size_t i = 0; i < rt->nsites; i++)
        site_clear(&rt->sites[i]);
    rt->nsites = 0;
}
