/*
 * on_case.c - case.registered and case.returned: who owns the case now.
 *
 * In the consumer's transaction: the case is read and locked (casedb), the
 * facts routing needs are read in one query (the text, the customer's
 * address, the local time of registration, the first responder's role,
 * supervisor and whether their department's scope covers the type, the
 * site's customer-relations supervisor, the departments the case has been
 * sent to, and the stamp of the site's rules), common/route.c decides, and
 * the decision goes through the workflow like anyone's command: signed by
 * the service (core.handoffs.by_system = 'routing') on behalf of the first
 * responder, with the decision's explanation as its reason, so the case's
 * history says which rule matched or why the fallback applied.
 *
 * An event about a case that has moved on since (someone acted first, or
 * this event was handled before) changes nothing.  An event about an
 * unknown site or case is an error: retried, then parked with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "casedb.h"
#include "db.h"
#include "log.h"
#include "routing.h"

#define WHY_PREFIX "routing: "

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* db_fail, and the result cleared. */
static sw_err fail(PGconn *tx, PGresult *r, const char *what, char *err, size_t errlen)
{
    sw_err rv = db_fail(tx, r, what, err, errlen);
    PQclear(r);
    return rv;
}

/* What routing reads of a case beside struct wf_case. */
struct facts {
    char site_id[37], time_zone[65];
    char subject[1024], description[4096], address[512], room[64], unit[256];
    int minute;
    char first_role[24], first_supervisor[WF_CODE_SIZE];
    bool covers;
    char supervisor[WF_CODE_SIZE]; /* the site's customer-relations supervisor */
    char visited[WF_MAX_RETURNED * 2][WF_CODE_SIZE];
    size_t nvisited;
    char stamp[80];
    char absent[2048]; /* ",a,b," : staff of the site off duty now */
};

static void cpy(char *dst, size_t cap, const PGresult *r, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col));
}

static sw_err read_site(struct routing *rt, PGconn *tx, const char *code, struct facts *f,
                        bool *found, char *err, size_t errlen)
{
    struct site_cache *sites = rt->site_cache;
    time_t now = time(NULL);
    for (size_t i = 0; i < rt->nsite_cache; i++)
        if (strcmp(sites[i].code, code) == 0 && now - sites[i].at < ROUTING_SITE_TTL) {
            snprintf(f->site_id, sizeof(f->site_id), "%s", sites[i].id);
            snprintf(f->time_zone, sizeof(f->time_zone), "%s", sites[i].tz);
            *found = true;
            return SW_OK;
        }
    const char *v[] = {code};
    PGresult *r =
        db_exec_fixed(tx, "SELECT id::text, time_zone FROM core.sites WHERE code = $1", 1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(tx, r, "could not read the site", err, errlen);
    *found = PQntuples(r) == 1;
    if (*found) {
        cpy(f->site_id, sizeof(f->site_id), r, 0);
        cpy(f->time_zone, sizeof(f->time_zone), r, 1);
        size_t k = rt->nsite_cache;
        for (size_t i = 0; i < rt->nsite_cache; i++)
            if (strcmp(sites[i].code, code) == 0)
                k = i;
        if (k == rt->nsite_cache)
            k = rt->nsite_cache < ROUTING_SITE_CACHE ? rt->nsite_cache++
                                                     : rt->site_next++ % ROUTING_SITE_CACHE;
        snprintf(sites[k].code, sizeof(sites[k].code), "%s", code);
        snprintf(sites[k].id, sizeof(sites[k].id), "%s", f->site_id);
        snprintf(sites[k].tz, sizeof(sites[k].tz), "%s", f->time_zone);
        sites[k].at = now;
    }
    PQclear(r);
    return SW_OK;
}

static sw_err read_facts(PGconn *tx, const char *case_id, struct facts *f, char *err, size_t errlen)
{
    const char *v[] = {case_id};
    PGresult *r = db_exec_fixed(
        tx,
        "SELECT c.subject, c.description, c.customer_address, c.customer_room, c.customer_unit, "
        "(extract(hour FROM c.created_at AT TIME ZONE s.time_zone) * 60 + extract(minute FROM "
        "c.created_at AT TIME ZONE s.time_zone))::int, fr.role, frs.code, "
        "EXISTS (SELECT 1 FROM core.department_scopes ds WHERE ds.department_id = "
        "fr.department_id AND (ds.case_type IS NULL OR ds.case_type = c.type) AND (ds.category IS "
        "NULL OR ds.category = c.category)), "
        "(SELECT sv.code FROM core.staff sv WHERE sv.site_id = c.site_id AND sv.role = "
        "'supervisor' AND sv.active ORDER BY sv.on_duty DESC, sv.code LIMIT 1), "
        "(SELECT coalesce(string_agg(d.code, ',' ORDER BY h.at, h.id), '') FROM core.handoffs h "
        "JOIN core.departments d ON d.id = h.to_department_id WHERE h.case_id = c.id AND h.kind "
        "IN ('transfer', 'forward')), "
        "(SELECT count(*) || '|' || coalesce(max(ru.updated_at)::text, '') FROM routing.rules ru "
        "WHERE ru.site_id = c.site_id AND ru.active), "
        "(SELECT ',' || coalesce(string_agg(st.code, ','), '') || ',' FROM core.staff st WHERE "
        "st.site_id = c.site_id AND st.active AND (NOT st.on_duty OR EXISTS (SELECT 1 FROM "
        "routing.absences ab WHERE ab.staff_id = st.id AND ab.starts_at <= now() AND (ab.ends_at "
        "IS NULL OR ab.ends_at > now())))) "
        "FROM core.cases c JOIN core.sites s ON s.id = c.site_id "
        "LEFT JOIN core.staff fr ON fr.id = c.first_responder_id "
        "LEFT JOIN core.staff frs ON frs.id = fr.supervisor_id AND frs.active "
        "WHERE c.id = $1::uuid",
        1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return fail(tx, r, "could not read the case's facts", err, errlen);
    cpy(f->subject, sizeof(f->subject), r, 0);
    cpy(f->description, sizeof(f->description), r, 1);
    cpy(f->address, sizeof(f->address), r, 2);
    cpy(f->room, sizeof(f->room), r, 3);
    cpy(f->unit, sizeof(f->unit), r, 4);
    f->minute = PQgetisnull(r, 0, 5) ? -1 : atoi(PQgetvalue(r, 0, 5));
    cpy(f->first_role, sizeof(f->first_role), r, 6);
    cpy(f->first_supervisor, sizeof(f->first_supervisor), r, 7);
    f->covers = PQgetvalue(r, 0, 8)[0] == 't';
    cpy(f->supervisor, sizeof(f->supervisor), r, 9);
    const char *p = PQgetvalue(r, 0, 10);
    f->nvisited = 0;
    while (*p && f->nvisited < sizeof(f->visited) / sizeof(f->visited[0])) {
        size_t n = strcspn(p, ",");
        snprintf(f->visited[f->nvisited++], WF_CODE_SIZE, "%.*s", (int)n, p);
        p += n + (p[n] == ',');
    }
    cpy(f->stamp, sizeof(f->stamp), r, 11);
    cpy(f->absent, sizeof(f->absent), r, 12);
    PQclear(r);
    return SW_OK;
}

/* ---- applying a decision ----------------------------------------------------------------- */

/* Staged events of one command go in their own outbox, published after the commit. */
static sw_err stage(struct routing *rt, PGconn *tx, struct wf_result *res, char (*ids)[37],
                    char *err, size_t errlen)
{
    struct bus_outbox *ob = NULL;
    sw_err rv = SW_OK;
    if (rt->partitions == 0 && (rv = bus_partitions(tx, &rt->partitions, err, errlen)) != SW_OK)
        return rv;
    if (rt->nstaged == rt->capstaged) {
        size_t cap = rt->capstaged ? rt->capstaged * 2 : 16;
        struct staged *p = realloc(rt->staged, cap * sizeof(*p));
        if (p == NULL) {
            snprintf(err, errlen, "out of memory staging events");
            return SW_ENOMEM;
        }
        rt->staged = p;
        rt->capstaged = cap;
    }
    if ((rv = bus_outbox_alloc(&ob, rt->partitions)) != SW_OK) {
        snprintf(err, errlen, "out of memory staging events");
        return rv;
    }
    for (size_t i = 0; rv == SW_OK && i < res->n_events; i++) {
        if ((rv = bus_uuid_v4(ids[i])) == SW_OK) {
            res->events[i].event_id = ids[i];
            rv = bus_outbox_add(ob, &res->events[i]);
        }
    }
    if (rv != SW_OK)
        snprintf(err, errlen, "could not stage the events: %s", sw_strerror(rv));
    if (rv == SW_OK)
        rv = bus_outbox_write(ob, tx, err, errlen);
    if (rv != SW_OK) {
        bus_outbox_free(ob);
        return rv;
    }
    rt->staged[rt->nstaged++].ob = ob;
    return SW_OK;
}

/*
 * Who stands in for `code` when they are off duty (routing.absences, or
 * core.staff.on_duty false): their deputy, else their direct supervisor,
 * followed up to three times (a deputy may be away too).  `out` is `code`
 * itself when they are on duty or nobody can stand in; `why` gets a clause
 * saying who stood in, if anyone did.
 */
static sw_err stand_in(PGconn *tx, const struct facts *f, const char *code, char *out,
                       size_t outlen, char *why, size_t whylen, char *err, size_t errlen)
{
    char cur[WF_CODE_SIZE];
    snprintf(cur, sizeof(cur), "%s", code);
    snprintf(out, outlen, "%s", code);
    for (int hop = 0; hop < 3 && cur[0] != '\0'; hop++) {
        char needle[WF_CODE_SIZE + 2];
        snprintf(needle, sizeof(needle), ",%s,", cur);
        /* nobody of the site is away (or the list was too long to read): ask */
        if (strlen(f->absent) < sizeof(f->absent) - 1 && strstr(f->absent, needle) == NULL)
            break;
        const char *v[] = {f->site_id, cur};
        PGresult *r = db_exec_fixed(
            tx,
            "SELECT a.id IS NOT NULL OR NOT s.on_duty, coalesce(dep.code, sup.code) FROM "
            "core.staff s LEFT JOIN LATERAL (SELECT x.id, x.deputy_id FROM routing.absences x "
            "WHERE x.staff_id = s.id AND x.starts_at <= now() AND (x.ends_at IS NULL OR x.ends_at "
            "> now()) ORDER BY x.starts_at DESC LIMIT 1) a ON true LEFT JOIN core.staff dep ON "
            "dep.id = a.deputy_id AND dep.active LEFT JOIN core.staff sup ON sup.id = "
            "s.supervisor_id AND sup.active WHERE s.site_id = $1::uuid AND s.code = $2",
            2, v);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return fail(tx, r, "could not read the absences", err, errlen);
        bool away = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        char next[WF_CODE_SIZE] = "";
        if (away && !PQgetisnull(r, 0, 1))
            snprintf(next, sizeof(next), "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
        if (!away)
            break;
        if (next[0] == '\0' || strcmp(next, code) == 0) {
            LOG(LOG_WARN, "ROUTING-NO-STAND-IN", "%s is off duty and nobody stands in", cur);
            break;
        }
        size_t n = strlen(why);
        snprintf(why + n, whylen - n, "; %s is off duty: %s stands in", cur, next);
        snprintf(out, outlen, "%s", next);
        snprintf(cur, sizeof(cur), "%s", next);
    }
    return SW_OK;
}

/*
 * One command by the service on `cur` (updated to the case after it).
 * Returns SW_OK with *refused set when the workflow said no: the caller
 * falls back or leaves the case as it is.
 */
static sw_err apply(struct routing *rt, PGconn *tx, const struct facts *f, struct wf_case *cur,
                    const Shouwen__V1__Command *given, const char *to_staff,
                    const char *const *depts, size_t nd, const char *head_of, char *why,
                    size_t whylen, bool *refused, char *err, size_t errlen)
{
    Shouwen__V1__Command c = *given; /* with the fields below, which live here */
    Shouwen__V1__Command *cmd = &c;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    char command_id[37], ids[WF_MAX_EVENTS][37];
    struct casedb_lookups lu;
    const char *fr = cur->first_responder;
    sw_err rv;

    *refused = false;
    if ((rv = bus_uuid_v4(command_id)) != SW_OK) {
        snprintf(err, errlen, "no randomness for a command id");
        return rv;
    }
    actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
    actor.external_system = (char *)"routing";
    actor.on_behalf_of = (char *)fr;
    cmd->command_id = command_id;
    cmd->site = cur->site;
    cmd->case_id = cur->id;
    cmd->expected_version = cur->version;
    cmd->actor = &actor;
    cmd->time = now_us();
    if ((rv = casedb_look_up(tx, f->site_id, fr, to_staff, depts, nd, head_of, &lu, err, errlen)) !=
        SW_OK)
        return rv;
    char head[WF_CODE_SIZE] = "";
    if (lu.has_head && (rv = stand_in(tx, f, lu.department_head, head, sizeof(head), why, whylen,
                                      err, errlen)) != SW_OK)
        return rv;
    struct wf_context ctx = {
        .now = cmd->time,
        .actor_department = lu.actor_department,
        .actor_supervisor = lu.actor_supervisor,
        .staff_found = lu.staff_found,
        .staff_department = lu.staff_department,
        .department_found = nd == 0 || lu.department_found,
        .department_head = lu.has_head ? head : NULL,
    };
    struct wf_result *res = malloc(sizeof(*res));
    struct wf_error we = {0};
    if (res == NULL) {
        snprintf(err, errlen, "out of memory");
        return SW_ENOMEM;
    }
    if (wf_apply(cur, cmd, &ctx, res, &we) != WF_OK) {
        LOG(LOG_WARN, "ROUTING-REFUSED", "case %s: the workflow refused %s: %s", cur->number,
            wf_command_name(cmd->command_case), we.message);
        metric_add(rt->m_refused, 1);
        *refused = true;
        free(res);
        return SW_OK;
    }
    bool lost = false;
    struct casedb_ctx cx = {.site_id = f->site_id,
                            .case_id = cur->id,
                            .system = "routing",
                            .time_zone = f->time_zone,
                            .on_behalf_of = fr[0] ? fr : NULL,
                            .at = cmd->time};
    rv = stage(rt, tx, res, ids, err, errlen);
    cx.event_id = res->n_events > 0 ? ids[0] : NULL;
    if (rv == SW_OK)
        rv = casedb_save(tx, &cx, cmd, cur, res, &lost, err, errlen);
    if (rv == SW_OK && lost) {
        snprintf(err, errlen, "case %s changed under its lock", cur->number);
        rv = SW_EDB; /* cannot happen: the row is locked; retry rather than guess */
    }
    if (rv == SW_OK)
        *cur = res->next;
    free(res);
    return rv;
}

static sw_err assign_to(struct routing *rt, PGconn *tx, const struct facts *f, struct wf_case *cur,
                        const char *staff, char *why, size_t whylen, bool *refused, char *err,
                        size_t errlen)
{
    Shouwen__V1__Command cmd = SHOUWEN__V1__COMMAND__INIT;
    Shouwen__V1__AssignCase m = SHOUWEN__V1__ASSIGN_CASE__INIT;
    char who[WF_CODE_SIZE];
    sw_err rv = stand_in(tx, f, staff, who, sizeof(who), why, whylen, err, errlen);
    if (rv != SW_OK)
        return rv;
    m.to_staff = who;
    m.reason = why;
    cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_ASSIGN;
    cmd.assign = &m;
    return apply(rt, tx, f, cur, &cmd, who, NULL, 0, NULL, why, whylen, refused, err, errlen);
}

static sw_err transfer_to(struct routing *rt, PGconn *tx, const struct facts *f,
                          struct wf_case *cur, const struct route_rule *r, char *why, size_t whylen,
                          bool *refused, char *err, size_t errlen)
{
    Shouwen__V1__Command cmd = SHOUWEN__V1__COMMAND__INIT;
    Shouwen__V1__TransferCase m = SHOUWEN__V1__TRANSFER_CASE__INIT;
    const char *depts[1] = {r->target};
    m.to_department = (char *)r->target;
    m.reason = why;
    cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_TRANSFER;
    cmd.transfer = &m;
    sw_err rv =
        apply(rt, tx, f, cur, &cmd, "", depts, 1, r->target, why, whylen, refused, err, errlen);
    if (rv != SW_OK || *refused || r->nassisting == 0)
        return rv;
    /* a multi-department case: the target leads, the others assist; all are told */
    Shouwen__V1__Command lead = SHOUWEN__V1__COMMAND__INIT;
    Shouwen__V1__DesignateLeadDepartment d = SHOUWEN__V1__DESIGNATE_LEAD_DEPARTMENT__INIT;
    char *assist[WF_MAX_ASSIST];
    const char *all[1 + WF_MAX_ASSIST] = {r->target};
    for (size_t i = 0; i < r->nassisting; i++) {
        assist[i] = (char *)r->assisting[i];
        all[i + 1] = r->assisting[i];
    }
    d.lead_department = (char *)r->target;
    d.n_assisting_departments = r->nassisting;
    d.assisting_departments = assist;
    char lwhy[ROUTE_WHY_MAX + 256];
    snprintf(lwhy, sizeof(lwhy), "%s", why);
    d.reason = lwhy;
    lead.command_case = SHOUWEN__V1__COMMAND__COMMAND_DESIGNATE_LEAD;
    lead.designate_lead = &d;
    bool ignored = false;
    return apply(rt, tx, f, cur, &lead, "", all, 1 + r->nassisting, r->target, lwhy, sizeof(lwhy),
                 &ignored, err, errlen);
}

/* A note in the case's history, by the service (no state changes). */
static sw_err note(PGconn *tx, const struct facts *f, const struct wf_case *cur, const char *text,
                   char *err, size_t errlen)
{
    const char *v[] = {f->site_id, cur->id, text};
    PGresult *r = PQexecParams(tx,
                               "INSERT INTO core.case_notes (site_id, case_id, kind, text) VALUES "
                               "($1::uuid, $2::uuid, 'comment', $3)",
                               3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return fail(tx, r, "could not record the routing note", err, errlen);
    PQclear(r);
    return SW_OK;
}

/* Carry out decision `d` on `cur`. */
static sw_err carry_out(struct routing *rt, PGconn *tx, const struct facts *f, struct wf_case *cur,
                        const struct route_decision *d, char *err, size_t errlen)
{
    char why[ROUTE_WHY_MAX + 256];
    bool refused = false;
    sw_err rv = SW_OK;
    snprintf(why, sizeof(why), WHY_PREFIX "%s", d->why);
    metric_add(rt->m_decisions[d->action], 1);
    switch (d->action) {
    case ROUTE_NOTHING:
    case ROUTE_OWN_DEPARTMENT:
        /* it stays with its first responder: the history still says why */
        return note(tx, f, cur, why, err, errlen);
    case ROUTE_DIRECT_SUPERVISOR:
        rv = assign_to(rt, tx, f, cur, d->staff, why, sizeof(why), &refused, err, errlen);
        break;
    case ROUTE_RULE:
        rv = transfer_to(rt, tx, f, cur, d->rule, why, sizeof(why), &refused, err, errlen);
        break;
    case ROUTE_LOOP:
        metric_add(rt->m_loops, 1);
        if ((rv = note(tx, f, cur, "routing: flagged for QA: a transfer loop", err, errlen)) !=
            SW_OK)
            return rv;
        refused = true; /* to the supervisor, below */
        break;
    case ROUTE_FALLBACK:
        refused = true;
        break;
    }
    if (rv != SW_OK || !refused)
        return rv;
    /* the fallback: the customer-relations supervisor, never nowhere */
    if (f->supervisor[0] == '\0' || strcmp(f->supervisor, cur->owner) == 0) {
        LOG(LOG_WARN, "ROUTING-NO-SUPERVISOR", "case %s: %s", cur->number,
            f->supervisor[0] ? "already with the supervisor"
                             : "the site has no active supervisor; it stays where it is");
        return note(tx, f, cur, why, err, errlen);
    }
    if (d->action != ROUTE_FALLBACK && d->action != ROUTE_LOOP)
        snprintf(why, sizeof(why),
                 WHY_PREFIX "%s; the workflow refused it: to the "
                            "customer-relations supervisor",
                 d->why);
    rv = assign_to(rt, tx, f, cur, f->supervisor, why, sizeof(why), &refused, err, errlen);
    if (rv == SW_OK && refused)
        rv = note(tx, f, cur, why, err, errlen);
    return rv;
}

/* ---- the handler ------------------------------------------------------------------------- */

sw_err routing_handle(PGconn *tx, const Shouwen__V1__Envelope *env, void *arg, char *err,
                      size_t errlen)
{
    struct routing *rt = arg;
    bool registered = env->event_case == SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED;
    bool returned = env->event_case == SHOUWEN__V1__ENVELOPE__EVENT_RETURNED;
    struct facts *f = NULL;
    struct wf_case cur;
    bool found = false;
    sw_err rv;

    if (!registered && !returned)
        return SW_OK;
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return SW_ENOMEM;
    }
    if ((rv = read_site(rt, tx, env->site, f, &found, err, errlen)) != SW_OK)
        goto out;
    if (!found) {
        snprintf(err, errlen, "%s about case %s of an unknown site \"%.20s\"", env->type,
                 env->case_id, env->site);
        rv = SW_EINVAL;
        goto out;
    }
    if ((rv = casedb_load(tx, env->case_id, f->site_id, &cur, &found, err, errlen)) != SW_OK)
        goto out;
    if (!found) {
        snprintf(err, errlen, "%s about an unknown case %s of site %s", env->type, env->case_id,
                 env->site);
        rv = SW_EINVAL;
        goto out;
    }
    /* moved on since: someone acted first, or this event was handled before */
    if (cur.version != env->case_version ||
        (registered && cur.status != SHOUWEN__V1__CASE_STATUS__CASE_STATUS_REGISTERED)) {
        metric_add(rt->m_skipped, 1);
        LOG(LOG_DEBUG, "ROUTING-SKIP", "case %s is at version %lld, past %s (version %lld)",
            cur.number, (long long)cur.version, env->type, (long long)env->case_version);
        goto out;
    }
    if ((rv = read_facts(tx, cur.id, f, err, errlen)) != SW_OK)
        goto out;
    const struct site_rules *sr = NULL;
    if ((rv = routing_rules(rt, tx, f->site_id, f->stamp, &sr, err, errlen)) != SW_OK)
        goto out;
    const char *returned_by[WF_MAX_RETURNED], *visited[WF_MAX_RETURNED * 2];
    for (size_t i = 0; i < cur.n_returned; i++)
        returned_by[i] = cur.returned_by[i];
    for (size_t i = 0; i < f->nvisited; i++)
        visited[i] = f->visited[i];
    struct route_case rc = {
        .facts = {.type = cur.type,
                  .channel = cur.channel,
                  .urgency = cur.urgency,
                  .subject = f->subject,
                  .description = f->description,
                  .location = {f->address, f->room, f->unit},
                  .minute = f->minute},
        .resolved_on_spot = cur.resolved_on_spot,
        .first_department = cur.first_department,
        .first_department_covers = f->covers,
        .first_is_operator =
            strcmp(f->first_role, "staff") == 0 || strcmp(f->first_role, "handler") == 0,
        .first_supervisor = f->first_supervisor,
        .department = cur.department,
        .returned_by = returned_by,
        .nreturned = cur.n_returned,
        .visited = visited,
        .nvisited = f->nvisited,
    };
    struct route_decision d;
    if (registered)
        route_new_case(sr->table, &rc, &d);
    else
        route_returned(sr->table, &rc, &d);
    LOG(LOG_DEBUG, "ROUTING-DECISION", "case %s (%s): %s: %s", cur.number, env->type,
        route_action_name(d.action), d.why);
    rv = carry_out(rt, tx, f, &cur, &d, err, errlen);
out:
    free(f);
    return rv;
}
