/*
 * on_case.c - case.registered and case.returned: who owns the case now.
 *
 * The bus hands routing all the events of a transaction at once
 * (routing_batch), and routing works on them set-wise, in rounds in which
 * each case appears once (a case with two events in the batch gets the
 * second in the next round, after the first is written):
 *
 *  1. the cases are read in one query (casedb_load_many, which does not
 *     lock: the transaction takes no id until it writes, so it holds no
 *     other consumer back while it decides), and, in the same round trip
 *     (db_pipeline), the facts routing needs in another: the text, the customer's
 *     address, the local time of registration, the first responder's role,
 *     supervisor and whether their department's scope covers the type, the
 *     site's customer-relations supervisor, the departments the case has
 *     been sent to, the stamp of the site's rules and who is off duty;
 *  2. common/route.c decides each case, and the decision is carried out
 *     through the workflow in memory like anyone's command: signed by the
 *     service (core.handoffs.by_system = 'routing') on behalf of the first
 *     responder, with the decision's explanation as its reason, so the
 *     case's history says which rule matched or why the fallback applied;
 *  3. the round is written with one statement for the case rows and their
 *     handoffs (casedb_save_many) and one for the notes; the events of
 *     the whole batch go in one write at the end.  A case that changed in
 *     between (someone acted on it) fails the batch, blamed on its event:
 *     retried, the event finds the case moved on and changes nothing.
 *
 * The bus opens routing's transactions keyed (DB_BEGIN_KEYED, db.h), the
 * BEGIN sent with the batch's first read: no
 * sequential scans, hash or merge joins, so the look-ups and writes above
 * are prepared and their generic plans kept.  Planning them anew, every
 * batch, was half of routing's database time per batch at 1,000 cases/s
 * and most of the wait between a case's registration and its routing.
 *
 * An event about a case that has moved on since (someone acted first, or
 * this event was handled before) changes nothing.  An event about an
 * unknown site or case is an error, blamed on that event: the bus retries
 * it alone, then parks it with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
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

#define WHY_MAX   (ROUTE_WHY_MAX + 256)
#define STEPS_MAX 2 /* a transfer and its lead designation, or one assignment */
#define NOTES_MAX 2

/* One command planned on a case: everything it points into lives here. */
struct step {
    Shouwen__V1__Command cmd;
    Shouwen__V1__Actor actor;
    Shouwen__V1__AssignCase assign;
    Shouwen__V1__TransferCase transfer;
    Shouwen__V1__DesignateLeadDepartment lead;
    char *assist[WF_MAX_ASSIST];
    char command_id[37], ids[WF_MAX_EVENTS][37];
    char to[WF_CODE_SIZE];                       /* the person assigned */
    char depts[1 + WF_MAX_ASSIST][WF_CODE_SIZE]; /* the department, or the lead first */
    char why[WHY_MAX];
    struct wf_case old;
    struct wf_result res;
};

/* One event of the batch, and what routing makes of it. */
struct job {
    const Shouwen__V1__Envelope *env;
    size_t at;    /* its index in the batch */
    size_t round; /* how many earlier events of the batch are about its case */
    bool has_facts;
    struct facts f;
    struct wf_case cur; /* as read, then after each planned step */
    struct step *steps[STEPS_MAX + 1];
    size_t nsteps; /* planned and accepted by the workflow */
    char notes[NOTES_MAX][WHY_MAX];
    size_t nnotes;
};

static void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
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
        cpy(f->site_id, sizeof(f->site_id), r, 0, 0);
        cpy(f->time_zone, sizeof(f->time_zone), r, 0, 1);
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

/*
 * The facts of many cases in one query, the site's own facts once per
 * site.  Run in routing's keyed transactions (db.h): each case is one
 * probe of the key, its ordinal carried along (`array_position` searched
 * the whole array for each case, a cost that grew with the square of the
 * batch).
 */
static const char facts_sql[] =
    "WITH u AS MATERIALIZED (SELECT c.*, k.i FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, i) "
    "JOIN core.cases c ON c.id = k.id), "
    "st AS MATERIALIZED (SELECT x.site_id, "
    "(SELECT sv.code FROM core.staff sv WHERE sv.site_id = x.site_id AND sv.role = "
    "'supervisor' AND sv.active ORDER BY sv.on_duty DESC, sv.code LIMIT 1) AS supervisor, "
    "(SELECT count(*) || '|' || coalesce(max(ru.updated_at)::text, '') FROM routing.rules ru "
    "WHERE ru.site_id = x.site_id AND ru.active) AS stamp, "
    "(SELECT ',' || coalesce(string_agg(st.code, ','), '') || ',' FROM core.staff st WHERE "
    "st.site_id = x.site_id AND st.active AND (NOT st.on_duty OR EXISTS (SELECT 1 FROM "
    "routing.absences ab WHERE ab.staff_id = st.id AND ab.starts_at <= now() AND (ab.ends_at "
    "IS NULL OR ab.ends_at > now())))) AS absent "
    "FROM (SELECT DISTINCT site_id FROM u) x) "
    "SELECT c.i, c.subject, c.description, c.customer_address, c.customer_room, c.customer_unit, "
    "(extract(hour FROM c.created_at AT TIME ZONE s.time_zone) * 60 + extract(minute FROM "
    "c.created_at AT TIME ZONE s.time_zone))::int, fr.role, frs.code, "
    "EXISTS (SELECT 1 FROM core.department_scopes ds WHERE ds.department_id = "
    "fr.department_id AND (ds.case_type IS NULL OR ds.case_type = c.type) AND (ds.category IS "
    "NULL OR ds.category = c.category)), "
    "st.supervisor, "
    "(SELECT coalesce(string_agg(d.code, ',' ORDER BY h.at, h.id), '') FROM core.handoffs h "
    "JOIN core.departments d ON d.id = h.to_department_id WHERE h.case_id = c.id AND h.kind "
    "IN ('transfer', 'forward')), "
    "st.stamp, st.absent "
    "FROM u c JOIN core.sites s ON s.id = c.site_id JOIN st ON st.site_id = c.site_id "
    "LEFT JOIN core.staff fr ON fr.id = c.first_responder_id "
    "LEFT JOIN core.staff frs ON frs.id = fr.supervisor_id AND frs.active";

/* The facts of jobs[i] for every i with want[i], from facts_sql's result `r`. */
static sw_err read_facts(PGconn *tx, PGresult *r, struct job *const *jobs, size_t n,
                         const bool *want, char *err, size_t errlen)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail(tx, r, "could not read the cases' facts", err, errlen);
    for (int t = 0; t < PQntuples(r); t++) {
        long i = strtol(PQgetvalue(r, t, 0), NULL, 10) - 1;
        if (i < 0 || (size_t)i >= n || !want[i])
            continue;
        struct facts *f = &jobs[i]->f;
        cpy(f->subject, sizeof(f->subject), r, t, 1);
        cpy(f->description, sizeof(f->description), r, t, 2);
        cpy(f->address, sizeof(f->address), r, t, 3);
        cpy(f->room, sizeof(f->room), r, t, 4);
        cpy(f->unit, sizeof(f->unit), r, t, 5);
        f->minute = PQgetisnull(r, t, 6) ? -1 : atoi(PQgetvalue(r, t, 6));
        cpy(f->first_role, sizeof(f->first_role), r, t, 7);
        cpy(f->first_supervisor, sizeof(f->first_supervisor), r, t, 8);
        f->covers = PQgetvalue(r, t, 9)[0] == 't';
        cpy(f->supervisor, sizeof(f->supervisor), r, t, 10);
        const char *p = PQgetvalue(r, t, 11);
        f->nvisited = 0;
        while (*p && f->nvisited < sizeof(f->visited) / sizeof(f->visited[0])) {
            size_t len = strcspn(p, ",");
            snprintf(f->visited[f->nvisited++], WF_CODE_SIZE, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
        }
        cpy(f->stamp, sizeof(f->stamp), r, t, 12);
        cpy(f->absent, sizeof(f->absent), r, t, 13);
        jobs[i]->has_facts = true;
    }
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

/* ---- planning a decision ------------------------------------------------------------------ */

/*
 * casedb_look_up, remembered for the rest of the batch: the cases of one
 * batch name the same few people and departments over and over.
 */
static sw_err look_up(struct routing *rt, PGconn *tx, const char *site_id, const char *person,
                      const char *staff, const char *const *depts, size_t nd, const char *head_of,
                      struct casedb_lookups *lu, char *err, size_t errlen)
{
    char key[sizeof(rt->memo[0].key)];
    int n =
        snprintf(key, sizeof(key), "%s|%s|%s|%s|", site_id, person, staff, head_of ? head_of : "");
    for (size_t i = 0; i < nd && n > 0 && (size_t)n < sizeof(key); i++)
        n += snprintf(key + n, sizeof(key) - (size_t)n, "%s,", depts[i]);
    bool keep = n > 0 && (size_t)n < sizeof(key);
    for (size_t i = 0; keep && i < rt->nmemo; i++)
        if (strcmp(rt->memo[i].key, key) == 0) {
            *lu = rt->memo[i].lu;
            return SW_OK;
        }
    sw_err rv = casedb_look_up(tx, site_id, person, staff, depts, nd, head_of, lu, err, errlen);
    if (rv == SW_OK && keep && rt->nmemo < ROUTING_MEMO) {
        snprintf(rt->memo[rt->nmemo].key, sizeof(rt->memo[0].key), "%s", key);
        rt->memo[rt->nmemo++].lu = *lu;
    }
    return rv;
}

/* A fresh step for job `j` (its slot is reused when the workflow refuses the step). */
static struct step *new_step(struct job *j, char *err, size_t errlen)
{
    if (j->nsteps >= STEPS_MAX) {
        snprintf(err, errlen, "case %s: more than %d steps planned", j->cur.number, STEPS_MAX);
        return NULL;
    }
    struct step *s = j->steps[j->nsteps];
    if (s == NULL && (s = j->steps[j->nsteps] = malloc(sizeof(*s))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    return s;
}

static void add_note(struct job *j, const char *text)
{
    if (j->nnotes < NOTES_MAX)
        snprintf(j->notes[j->nnotes++], WHY_MAX, "%s", text);
}

/*
 * Plan step `s` (its command's own message set) by the service on the
 * job's case: the workflow decides in memory.  Returns SW_OK with *refused
 * set when the workflow said no: the caller falls back or leaves the case
 * as it is.  Accepted, the case moves on in memory and its events are
 * staged in the batch's outbox.
 */
static sw_err plan(struct routing *rt, PGconn *tx, struct job *j, struct step *s,
                   const char *to_staff, const char *const *depts, size_t nd, const char *head_of,
                   bool *refused, char *err, size_t errlen)
{
    struct casedb_lookups lu;
    sw_err rv;

    *refused = false;
    s->old = j->cur;
    const char *fr = s->old.first_responder;
    if ((rv = bus_uuid_v7(s->command_id)) != SW_OK) {
        snprintf(err, errlen, "no randomness for a command id");
        return rv;
    }
    shouwen__v1__actor__init(&s->actor);
    s->actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
    s->actor.external_system = (char *)"routing";
    s->actor.on_behalf_of = (char *)fr;
    s->cmd.command_id = s->command_id;
    s->cmd.site = s->old.site;
    s->cmd.case_id = s->old.id;
    s->cmd.expected_version = s->old.version;
    s->cmd.actor = &s->actor;
    s->cmd.time = now_us();
    if ((rv = look_up(rt, tx, j->f.site_id, fr, to_staff, depts, nd, head_of, &lu, err, errlen)) !=
        SW_OK)
        return rv;
    char head[WF_CODE_SIZE] = "";
    if (lu.has_head && (rv = stand_in(tx, &j->f, lu.department_head, head, sizeof(head), s->why,
                                      sizeof(s->why), err, errlen)) != SW_OK)
        return rv;
    struct wf_context ctx = {
        .now = s->cmd.time,
        .actor_department = lu.actor_department,
        .actor_supervisor = lu.actor_supervisor,
        .staff_found = lu.staff_found,
        .staff_department = lu.staff_department,
        .department_found = nd == 0 || lu.department_found,
        .department_head = lu.has_head ? head : NULL,
    };
    struct wf_error we = {0};
    if (wf_apply(&s->old, &s->cmd, &ctx, &s->res, &we) != WF_OK) {
        LOG(LOG_WARN, "ROUTING-REFUSED", "case %s: the workflow refused %s: %s", s->old.number,
            wf_command_name(s->cmd.command_case), we.message);
        metric_add(rt->m_refused, 1);
        *refused = true;
        return SW_OK;
    }
    for (size_t i = 0; rv == SW_OK && i < s->res.n_events; i++) {
        if ((rv = bus_uuid_v7(s->ids[i])) == SW_OK) {
            s->res.events[i].event_id = s->ids[i];
            rv = bus_outbox_add(rt->ob, &s->res.events[i]);
        }
    }
    if (rv != SW_OK) {
        snprintf(err, errlen, "could not stage the events: %s", sw_strerror(rv));
        return rv;
    }
    j->cur = s->res.next;
    j->nsteps++;
    return SW_OK;
}

static sw_err assign_to(struct routing *rt, PGconn *tx, struct job *j, const char *staff,
                        const char *why, bool *refused, char *err, size_t errlen)
{
    struct step *s = new_step(j, err, errlen);
    if (s == NULL)
        return SW_ENOMEM;
    snprintf(s->why, sizeof(s->why), "%s", why);
    sw_err rv =
        stand_in(tx, &j->f, staff, s->to, sizeof(s->to), s->why, sizeof(s->why), err, errlen);
    if (rv != SW_OK)
        return rv;
    shouwen__v1__command__init(&s->cmd);
    shouwen__v1__assign_case__init(&s->assign);
    s->assign.to_staff = s->to;
    s->assign.reason = s->why;
    s->cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_ASSIGN;
    s->cmd.assign = &s->assign;
    return plan(rt, tx, j, s, s->to, NULL, 0, NULL, refused, err, errlen);
}

static sw_err transfer_to(struct routing *rt, PGconn *tx, struct job *j, const struct route_rule *r,
                          const char *why, bool *refused, char *err, size_t errlen)
{
    struct step *s = new_step(j, err, errlen);
    if (s == NULL)
        return SW_ENOMEM;
    snprintf(s->why, sizeof(s->why), "%s", why);
    snprintf(s->depts[0], sizeof(s->depts[0]), "%s", r->target);
    const char *one[1] = {s->depts[0]};
    shouwen__v1__command__init(&s->cmd);
    shouwen__v1__transfer_case__init(&s->transfer);
    s->transfer.to_department = s->depts[0];
    s->transfer.reason = s->why;
    s->cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_TRANSFER;
    s->cmd.transfer = &s->transfer;
    sw_err rv = plan(rt, tx, j, s, "", one, 1, s->depts[0], refused, err, errlen);
    if (rv != SW_OK || *refused || r->nassisting == 0)
        return rv;
    /* a multi-department case: the target leads, the others assist; all are told */
    struct step *l = new_step(j, err, errlen);
    if (l == NULL)
        return SW_ENOMEM;
    const char *all[1 + WF_MAX_ASSIST];
    size_t na = r->nassisting < WF_MAX_ASSIST ? r->nassisting : WF_MAX_ASSIST;
    snprintf(l->why, sizeof(l->why), "%s", s->why);
    snprintf(l->depts[0], sizeof(l->depts[0]), "%s", r->target);
    all[0] = l->depts[0];
    for (size_t i = 0; i < na; i++) {
        snprintf(l->depts[i + 1], sizeof(l->depts[0]), "%s", r->assisting[i]);
        l->assist[i] = l->depts[i + 1];
        all[i + 1] = l->depts[i + 1];
    }
    shouwen__v1__command__init(&l->cmd);
    shouwen__v1__designate_lead_department__init(&l->lead);
    l->lead.lead_department = l->depts[0];
    l->lead.n_assisting_departments = na;
    l->lead.assisting_departments = l->assist;
    l->lead.reason = l->why;
    l->cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_DESIGNATE_LEAD;
    l->cmd.designate_lead = &l->lead;
    bool ignored = false;
    return plan(rt, tx, j, l, "", all, 1 + na, l->depts[0], &ignored, err, errlen);
}

/* Carry out decision `d` on the job's case, in memory. */
static sw_err carry_out(struct routing *rt, PGconn *tx, struct job *j,
                        const struct route_decision *d, char *err, size_t errlen)
{
    char why[WHY_MAX];
    bool refused = false;
    sw_err rv = SW_OK;
    snprintf(why, sizeof(why), WHY_PREFIX "%s", d->why);
    metric_add(rt->m_decisions[d->action], 1);
    switch (d->action) {
    case ROUTE_NOTHING:
    case ROUTE_OWN_DEPARTMENT:
        /* it stays with its first responder: the history still says why */
        add_note(j, why);
        return SW_OK;
    case ROUTE_DIRECT_SUPERVISOR:
        rv = assign_to(rt, tx, j, d->staff, why, &refused, err, errlen);
        break;
    case ROUTE_RULE:
        rv = transfer_to(rt, tx, j, d->rule, why, &refused, err, errlen);
        break;
    case ROUTE_LOOP:
        metric_add(rt->m_loops, 1);
        add_note(j, "routing: flagged for QA: a transfer loop");
        refused = true; /* to the supervisor, below */
        break;
    case ROUTE_FALLBACK:
        refused = true;
        break;
    }
    if (rv != SW_OK || !refused)
        return rv;
    /* the fallback: the customer-relations supervisor, never nowhere */
    const struct facts *f = &j->f;
    if (f->supervisor[0] == '\0' || strcmp(f->supervisor, j->cur.owner) == 0) {
        LOG(LOG_WARN, "ROUTING-NO-SUPERVISOR", "case %s: %s", j->cur.number,
            f->supervisor[0] ? "already with the supervisor"
                             : "the site has no active supervisor; it stays where it is");
        add_note(j, why);
        return SW_OK;
    }
    if (d->action != ROUTE_FALLBACK && d->action != ROUTE_LOOP)
        snprintf(why, sizeof(why),
                 WHY_PREFIX "%s; the workflow refused it: to the "
                            "customer-relations supervisor",
                 d->why);
    rv = assign_to(rt, tx, j, f->supervisor, why, &refused, err, errlen);
    if (rv == SW_OK && refused)
        add_note(j, why);
    return rv;
}

/* Decide and plan the job (its case read and current, its facts read). */
static sw_err decide(struct routing *rt, PGconn *tx, struct job *j, char *err, size_t errlen)
{
    const struct site_rules *sr = NULL;
    struct facts *f = &j->f;
    struct wf_case *cur = &j->cur;
    sw_err rv = routing_rules(rt, tx, f->site_id, f->stamp, &sr, err, errlen);
    if (rv != SW_OK)
        return rv;
    const char *returned_by[WF_MAX_RETURNED], *visited[WF_MAX_RETURNED * 2];
    for (size_t i = 0; i < cur->n_returned; i++)
        returned_by[i] = cur->returned_by[i];
    for (size_t i = 0; i < f->nvisited; i++)
        visited[i] = f->visited[i];
    struct route_case rc = {
        .facts = {.type = cur->type,
                  .channel = cur->channel,
                  .urgency = cur->urgency,
                  .subject = f->subject,
                  .description = f->description,
                  .location = {f->address, f->room, f->unit},
                  .minute = f->minute},
        .resolved_on_spot = cur->resolved_on_spot,
        .first_department = cur->first_department,
        .first_department_covers = f->covers,
        .first_is_operator =
            strcmp(f->first_role, "staff") == 0 || strcmp(f->first_role, "handler") == 0,
        .first_supervisor = f->first_supervisor,
        .department = cur->department,
        .returned_by = returned_by,
        .nreturned = cur->n_returned,
        .visited = visited,
        .nvisited = f->nvisited,
    };
    struct route_decision d;
    if (j->env->event_case == SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED)
        route_new_case(sr->table, &rc, &d);
    else
        route_returned(sr->table, &rc, &d);
    LOG(LOG_DEBUG, "ROUTING-DECISION", "case %s (%s): %s: %s", cur->number, j->env->type,
        route_action_name(d.action), d.why);
    return carry_out(rt, tx, j, &d, err, errlen);
}

/* ---- writing a round ---------------------------------------------------------------------- */

/* Step `k` of every job that has one, in one casedb_save_many. */
static sw_err write_steps(PGconn *tx, struct job *const *round, size_t n, size_t k,
                          struct casedb_write *w, struct job **by, struct job **blame, char *err,
                          size_t errlen)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct job *j = round[i];
        if (k >= j->nsteps)
            continue;
        by[m] = j;
        struct step *s = j->steps[k];
        w[m] = (struct casedb_write){
            .x = {.site_id = j->f.site_id,
                  .case_id = s->old.id,
                  .system = "routing",
                  .time_zone = j->f.time_zone,
                  .on_behalf_of = s->old.first_responder[0] ? s->old.first_responder : NULL,
                  .at = s->cmd.time,
                  .event_id = s->res.n_events > 0 ? s->ids[0] : NULL},
            .cmd = &s->cmd,
            .old = &s->old,
            .res = &s->res,
        };
        m++;
    }
    sw_err rv = casedb_save_many_keyed(tx, w, m, err, errlen);
    for (size_t i = 0; rv == SW_OK && i < m; i++)
        if (w[i].lost) {
            snprintf(err, errlen, "case %s changed while routing decided; trying again",
                     w[i].old->number);
            *blame = by[i];
            rv = SW_ECONFLICT;
        }
    return rv;
}

/* The notes of the round, in one statement. */
static sw_err write_notes(PGconn *tx, struct job *const *round, size_t n, char *err, size_t errlen)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += round[i]->nnotes;
    if (m == 0)
        return SW_OK;
    const char **sites = calloc(m, sizeof(*sites)), **cases = calloc(m, sizeof(*cases)),
               **texts = calloc(m, sizeof(*texts));
    struct buf a[3];
    sw_err rv = sites && cases && texts ? SW_OK : SW_ENOMEM;
    for (int k = 0; k < 3; k++)
        buf_init(&a[k], 1u << 26);
    m = 0;
    for (size_t i = 0; rv == SW_OK && i < n; i++)
        for (size_t k = 0; k < round[i]->nnotes; k++, m++) {
            sites[m] = round[i]->f.site_id;
            cases[m] = round[i]->cur.id;
            texts[m] = round[i]->notes[k];
        }
    if (rv == SW_OK && ((rv = buf_pg_array(&a[0], sites, m)) != SW_OK ||
                        (rv = buf_pg_array(&a[1], cases, m)) != SW_OK ||
                        (rv = buf_pg_array(&a[2], texts, m)) != SW_OK))
        snprintf(err, errlen, "too many notes at once (%zu)", m);
    else if (rv != SW_OK)
        snprintf(err, errlen, "out of memory");
    free(sites);
    free(cases);
    free(texts);
    if (rv == SW_OK) {
        const char *v[] = {buf_cstr(&a[0]), buf_cstr(&a[1]), buf_cstr(&a[2])};
        PGresult *r = db_exec_fixed(
            tx,
            "INSERT INTO core.case_notes (site_id, case_id, kind, text) SELECT u.s, u.c, "
            "'comment', u.t FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS "
            "u(s, c, t, i) ORDER BY u.i",
            3, v);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rv = fail(tx, r, "could not record the routing notes", err, errlen);
        else
            PQclear(r);
    }
    for (int k = 0; k < 3; k++)
        buf_free(&a[k]);
    return rv;
}

/* ---- the batch handler --------------------------------------------------------------------- */

/*
 * One round: jobs whose cases are all different.  On an error that is one
 * event's own (an unknown site or case), *blame is that job.
 */
static sw_err run_round(struct routing *rt, PGconn *tx, struct job **round, size_t n,
                        struct job **blame, char *err, size_t errlen)
{
    size_t cap = n ? n : 1;
    const char **ids = calloc(cap, sizeof(*ids)), **sites = calloc(cap, sizeof(*sites));
    struct wf_case *cases = calloc(cap, sizeof(*cases));
    bool *found = calloc(cap, sizeof(*found)), *want = calloc(cap, sizeof(*want));
    struct casedb_write *w = calloc(cap, sizeof(*w));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct job **by = calloc(cap, sizeof(*by));
    struct buf fids;
    PGresult *facts = NULL;
    sw_err rv = SW_OK;

    buf_init(&fids, 1u << 24);

    if (ids == NULL || sites == NULL || cases == NULL || found == NULL || want == NULL ||
        w == NULL || by == NULL) {
        snprintf(err, errlen, "out of memory");
        rv = SW_ENOMEM;
        goto out;
    }
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        struct job *j = round[i];
        bool known = false;
        if ((rv = read_site(rt, tx, j->env->site, &j->f, &known, err, errlen)) != SW_OK)
            break;
        if (!known) {
            snprintf(err, errlen, "%s about case %s of an unknown site \"%.20s\"", j->env->type,
                     j->env->case_id, j->env->site);
            *blame = j;
            rv = SW_EINVAL;
            break;
        }
        ids[i] = j->env->case_id;
        sites[i] = j->f.site_id;
    }
    if (rv != SW_OK)
        goto out;
    /*
     * The cases, and in the same round trip their facts (prepared: the
     * consumer's transactions are keyed, DB_BEGIN_KEYED).  A case that
     * turns out to have moved on has its facts read for nothing.
     */
    if ((rv = buf_pg_array(&fids, ids, n)) != SW_OK) {
        snprintf(err, errlen, "too many cases at once (%zu)", n);
        goto out;
    }
    const char *fv[] = {buf_cstr(&fids)};
    struct db_query fq = {.sql = facts_sql, .n = 1, .vals = fv, .fixed = true};
    if ((rv = casedb_load_many_keyed(tx, ids, sites, n, cases, found, &fq, &facts, err, errlen)) !=
        SW_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct job *j = round[i];
        if (!found[i]) {
            snprintf(err, errlen, "%s about an unknown case %s of site %s", j->env->type,
                     j->env->case_id, j->env->site);
            *blame = j;
            rv = SW_EINVAL;
            goto out;
        }
        j->cur = cases[i];
        /* moved on since: someone acted first, or this event was handled before */
        if (j->cur.version != j->env->case_version ||
            (j->env->event_case == SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED &&
             j->cur.status != SHOUWEN__V1__CASE_STATUS__CASE_STATUS_REGISTERED)) {
            metric_add(rt->m_skipped, 1);
            LOG(LOG_DEBUG, "ROUTING-SKIP", "case %s is at version %lld, past %s (version %lld)",
                j->cur.number, (long long)j->cur.version, j->env->type,
                (long long)j->env->case_version);
            continue;
        }
        want[i] = true;
    }
    if ((rv = read_facts(tx, facts, round, n, want, err, errlen)) != SW_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!want[i])
            continue;
        struct job *j = round[i];
        if (!j->has_facts) {
            snprintf(err, errlen, "could not read the facts of case %s", j->cur.number);
            rv = SW_EDB;
            goto out;
        }
        if ((rv = decide(rt, tx, j, err, errlen)) != SW_OK)
            goto out;
    }
    for (size_t k = 0; rv == SW_OK && k < STEPS_MAX; k++)
        rv = write_steps(tx, round, n, k, w, by, blame, err, errlen);
    if (rv == SW_OK)
        rv = write_notes(tx, round, n, err, errlen);
out:
    PQclear(facts);
    buf_free(&fids);
    free(ids);
    free(sites);
    free(cases);
    free(found);
    free(want);
    free(w);
    free(by);
    return rv;
}

static int by_case_then_order(const void *a, const void *b)
{
    const struct job *x = *(const struct job *const *)a, *y = *(const struct job *const *)b;
    int c = strcmp(x->env->case_id, y->env->case_id);
    return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

static sw_err number_rounds(struct job *jobs, size_t n, char *err, size_t errlen)
{
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct job **s = malloc((n ? n : 1) * sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return SW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = &jobs[i];
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    qsort(s, n, sizeof(*s), by_case_then_order);
    for (size_t i = 0; i < n; i++)
        s[i]->round = i > 0 && strcmp(s[i]->env->case_id, s[i - 1]->env->case_id) == 0
                          ? s[i - 1]->round + 1
                          : 0;
    free(s);
    return SW_OK;
}

sw_err routing_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                     size_t *failed, char *err, size_t errlen)
{
    struct routing *rt = arg;
    struct job *jobs = NULL, **round = NULL;
    size_t njobs = 0;
    sw_err rv = SW_OK;

    *failed = 0;
    rt->nmemo = 0;
    if (rt->partitions == 0 && (rv = bus_partitions(tx, &rt->partitions, err, errlen)) != SW_OK)
        return rv;
    jobs = calloc(n ? n : 1, sizeof(*jobs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    round = calloc(n ? n : 1, sizeof(*round));
    if (jobs == NULL || round == NULL ||
        (rt->ob == NULL && bus_outbox_alloc(&rt->ob, rt->partitions) != SW_OK)) {
        snprintf(err, errlen, "out of memory");
        rv = SW_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (envs[i]->event_case == SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED ||
            envs[i]->event_case == SHOUWEN__V1__ENVELOPE__EVENT_RETURNED)
            jobs[njobs++] = (struct job){.env = envs[i], .at = i};
    /*
     * Rounds: a job's round is how many earlier jobs of the batch are about
     * its case (found by sorting, so any batch size is cheap); each round
     * keeps the order read.
     */
    if ((rv = number_rounds(jobs, njobs, err, errlen)) != SW_OK)
        goto out;
    for (size_t r = 0, left = njobs; rv == SW_OK && left > 0; r++) {
        size_t m = 0;
        for (size_t i = 0; i < njobs; i++)
            if (jobs[i].round == r)
                round[m++] = &jobs[i];
        if (m == 0)
            break; /* cannot happen: rounds are numbered without gaps */
        left -= m;
        struct job *blame = NULL;
        rv = run_round(rt, tx, round, m, &blame, err, errlen);
        if (rv != SW_OK)
            *failed = blame != NULL ? blame->at : round[0]->at;
    }
    /* the events of the whole batch, written once; published after the commit */
    if (rv == SW_OK && bus_outbox_len(rt->ob) > 0) {
        if ((rv = bus_outbox_write(rt->ob, tx, err, errlen)) == SW_OK)
            rt->pending = true;
    }
out:
    for (size_t i = 0; jobs != NULL && i < njobs; i++)
        for (size_t k = 0; k <= STEPS_MAX; k++)
            free(jobs[i].steps[k]);
    free(jobs);
    free(round);
    return rv;
}
