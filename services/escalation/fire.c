/*
 * fire.c - deadlines run out: breached once, counted, and the ladder climbed.
 *
 * In the caller's transaction, for a batch of deadlines the timer found
 * due:
 *
 * 1. One statement marks breached those still pending with exactly the
 *    due time the timer holds (a deadline met, moved or already fired in
 *    the meantime is left alone), locking them in (case, clock) order as
 *    the consumer does, and returns who was responsible at that moment:
 *    the owner and their department; for the callback, the natural first
 *    responder.
 * 2. One statement records the violations, with the site's penalty points.
 * 3. case.deadline_breached for each, naming the violation.
 * 4. The supervisor's and manager's steps and the emergency ladder go
 *    through the workflow (escalate, signed by the service): the
 *    supervisor or the manager takes the case over; an emergency alert
 *    climbs one rung (emergency.alerted tells who is on it now).
 *
 * The breach, the violation, the events and the escalation commit
 * together: a deadline fires once whatever is killed when.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "casedb.h"
#include "escalation.h"
#include "log.h"

#define EV(x)     SHOUWEN__V1__ENVELOPE__EVENT_##x
#define LEVEL(x)  SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_##x
#define ARRAY_MAX (1u << 26)

enum {
    H_ID,
    H_CASE,
    H_KIND,
    H_DUE,
    H_BREACHED,
    H_SITE,
    H_SITE_ID,
    H_STAFF_ID,
    H_STAFF,
    H_DEPT_ID,
    H_DEPT,
    H_POINTS,
    H_VERSION,
    H_NUMBER,
    H_TZ,
};

static sw_err fail(PGconn *tx, PGresult *r, const char *what, char *err, size_t errlen)
{
    sw_err rv = db_fail(tx, r, what, err, errlen);
    PQclear(r);
    return rv;
}

/* A batch of deadlines as three array literals. */
static sw_err due_arrays(const struct esc_due *d, size_t n, struct buf a[3])
{
    sw_err rv = SW_OK;
    for (int k = 0; k < 3 && rv == SW_OK; k++)
        rv = buf_puts(&a[k], "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const char *sep = i ? "," : "";
        if ((rv = buf_printf(&a[0], "%s%s", sep, d[i].case_id)) == SW_OK &&
            (rv = buf_printf(&a[1], "%s%s", sep, clk_kind_name((enum clk_kind)d[i].kind))) == SW_OK)
            rv = buf_printf(&a[2], "%s%" PRId64, sep, d[i].due);
    }
    for (int k = 0; k < 3 && rv == SW_OK; k++)
        rv = buf_puts(&a[k], "}");
    return rv;
}

static PGresult *breach(PGconn *tx, const struct esc_due *d, size_t n, char *err, size_t errlen,
                        sw_err *rv)
{
    struct buf a[3];
    for (int k = 0; k < 3; k++)
        buf_init(&a[k], ARRAY_MAX);
    *rv = due_arrays(d, n, a);
    PGresult *r = NULL;
    if (*rv != SW_OK) {
        snprintf(err, errlen, "too many deadlines at once");
    } else {
        const char *v[] = {buf_cstr(&a[0]), buf_cstr(&a[1]), buf_cstr(&a[2])};
        r = PQexecParams(
            tx,
            "WITH due(case_id, kind, due_at) AS (SELECT u.c, u.k, CASE WHEN u.d = "
            "9223372036854775807 THEN 'infinity'::timestamptz ELSE timestamptz 'epoch' + u.d * "
            "interval '1 microsecond' END FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS "
            "u(c, k, d)), pick AS (SELECT d.case_id, d.kind FROM escalation.deadlines d JOIN due "
            "ON due.case_id = d.case_id AND due.kind = d.kind AND due.due_at = d.due_at WHERE "
            "d.met_at IS NULL AND d.breached_at IS NULL ORDER BY d.case_id, d.kind FOR UPDATE OF "
            "d), hit AS (UPDATE escalation.deadlines d SET breached_at = clock_timestamp(), "
            "updated_at = now() FROM pick WHERE d.case_id = pick.case_id AND d.kind = pick.kind "
            "RETURNING d.id, d.site_id, d.case_id, d.kind, d.due_at, d.breached_at) "
            "SELECT h.id::text, h.case_id::text, h.kind, (extract(epoch FROM h.due_at) * "
            "1000000)::bigint, (extract(epoch FROM h.breached_at) * 1000000)::bigint, s.code, "
            "h.site_id::text, rs.id::text, rs.code, rd.id::text, rd.code, coalesce(pp.points, 0), "
            "c.version, c.number, s.time_zone FROM hit h JOIN core.cases c ON c.id = h.case_id "
            "JOIN core.sites s ON s.id = h.site_id LEFT JOIN core.staff rs ON rs.id = CASE WHEN "
            "h.kind = 'callback' THEN c.first_responder_id ELSE c.owner_id END LEFT JOIN "
            "core.departments rd ON rd.id = CASE WHEN h.kind = 'callback' THEN rs.department_id "
            "ELSE c.department_id END LEFT JOIN core.site_penalty_points pp ON pp.site_id = "
            "h.site_id AND pp.kind = CASE h.kind WHEN 'handoff' THEN 'late_handoff' WHEN "
            "'appoint' THEN 'late_appointment' WHEN 'first_contact' THEN 'late_first_contact' "
            "WHEN 'resolve' THEN 'late_resolution' WHEN 'callback' THEN 'no_callback' END "
            "ORDER BY h.case_id, h.kind",
            3, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            *rv = fail(tx, r, "breach the deadlines due", err, errlen);
            r = NULL;
        }
    }
    for (int k = 0; k < 3; k++)
        buf_free(&a[k]);
    return r;
}

static const char *violation_name(Shouwen__V1__ViolationKind k)
{
    switch (k) {
    case SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_HANDOFF:
        return "late_handoff";
    case SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_APPOINTMENT:
        return "late_appointment";
    case SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_FIRST_CONTACT:
        return "late_first_contact";
    case SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_RESOLUTION:
        return "late_resolution";
    case SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_NO_CALLBACK:
        return "no_callback";
    default:
        return NULL;
    }
}

/* One hit's violation and breach ids; violation "" when none is recorded. */
struct hit {
    int row;
    enum clk_kind kind;
    char event_id[37];
    char violation_id[37];
};

/* Step 2: the violations of the hits that have one, in one statement. */
static sw_err record_violations(PGconn *tx, const PGresult *r, const struct hit *hits, size_t n,
                                char *err, size_t errlen)
{
    enum {
        V_ID,
        V_SITE,
        V_CASE,
        V_KIND,
        V_STAFF,
        V_DEPT,
        V_AT,
        V_POINTS,
        V_DETAIL,
        V_EVENT,
        V_DEADLINE,
        NV
    };
    struct buf a[NV];
    sw_err rv = SW_OK;
    size_t m = 0;
    for (int k = 0; k < NV; k++) {
        buf_init(&a[k], ARRAY_MAX);
        rv = rv == SW_OK ? buf_puts(&a[k], "{") : rv;
    }
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const struct hit *h = &hits[i];
        if (h->violation_id[0] == '\0')
            continue;
        int row = h->row;
        bool first = m++ == 0;
        char detail[160];
        snprintf(detail, sizeof(detail), "the %s deadline of case %s passed",
                 clk_kind_name(h->kind), PQgetvalue(r, row, H_NUMBER));
        const char *staff = PQgetisnull(r, row, H_STAFF_ID) ? NULL : PQgetvalue(r, row, H_STAFF_ID);
        const char *dept = PQgetisnull(r, row, H_DEPT_ID) ? NULL : PQgetvalue(r, row, H_DEPT_ID);
        const char *v[NV] = {h->violation_id,
                             PQgetvalue(r, row, H_SITE_ID),
                             PQgetvalue(r, row, H_CASE),
                             violation_name(clk_violation(h->kind)),
                             staff,
                             dept,
                             PQgetvalue(r, row, H_DUE),
                             PQgetvalue(r, row, H_POINTS),
                             detail,
                             h->event_id,
                             PQgetvalue(r, row, H_ID)};
        for (int k = 0; rv == SW_OK && k < NV; k++)
            rv = buf_pg_elem(&a[k], first, v[k]);
    }
    for (int k = 0; k < NV && rv == SW_OK; k++)
        rv = buf_puts(&a[k], "}");
    if (rv != SW_OK)
        snprintf(err, errlen, "too many violations at once");
    if (rv == SW_OK && m > 0) {
        const char *v[NV];
        for (int k = 0; k < NV; k++)
            v[k] = buf_cstr(&a[k]);
        PGresult *w = db_exec_fixed(
            tx,
            "INSERT INTO escalation.violations (id, site_id, case_id, kind, staff_id, "
            "department_id, occurred_at, points, detail, event_id, deadline_id) SELECT u.i, u.s, "
            "u.c, u.k, u.st, u.d, timestamptz 'epoch' + u.a * interval '1 microsecond', u.p, "
            "u.t, u.e, u.dl FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], "
            "$5::uuid[], $6::uuid[], $7::bigint[], $8::int[], $9::text[], $10::uuid[], "
            "$11::uuid[]) AS u(i, s, c, k, st, d, a, p, t, e, dl)",
            NV, v);
        if (PQresultStatus(w) != PGRES_COMMAND_OK)
            rv = fail(tx, w, "record the violations", err, errlen);
        else
            PQclear(w);
    }
    for (int k = 0; k < NV; k++)
        buf_free(&a[k]);
    return rv;
}

/* Step 3: case.deadline_breached. */
static sw_err stage_breach(struct bus_outbox *ob, const PGresult *r, struct hit *h)
{
    int row = h->row;
    Shouwen__V1__CaseDeadlineBreached b = SHOUWEN__V1__CASE_DEADLINE_BREACHED__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    b.kind = clk_deadline_kind(h->kind);
    b.due_at = strtoll(PQgetvalue(r, row, H_DUE), NULL, 10);
    b.breached_at = strtoll(PQgetvalue(r, row, H_BREACHED), NULL, 10);
    b.responsible_staff = PQgetvalue(r, row, H_STAFF);
    b.responsible_department = PQgetvalue(r, row, H_DEPT);
    b.deadline_id = PQgetvalue(r, row, H_ID);
    if (h->violation_id[0] != '\0') {
        b.violation_id = h->violation_id;
        b.violation_kind = clk_violation(h->kind);
        b.penalty_points = atoi(PQgetvalue(r, row, H_POINTS));
    }
    actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
    actor.external_system = (char *)"escalation";
    env.event_id = h->event_id;
    env.type = (char *)"case.deadline_breached";
    env.site = PQgetvalue(r, row, H_SITE);
    env.case_id = PQgetvalue(r, row, H_CASE);
    env.case_version = strtoll(PQgetvalue(r, row, H_VERSION), NULL, 10);
    env.time = b.breached_at;
    env.actor = &actor;
    env.event_case = EV(DEADLINE_BREACHED);
    env.deadline_breached = &b;
    return bus_outbox_add(ob, &env);
}

/* One escalation of the ladder, planned in memory. */
struct climb {
    int row;
    enum clk_kind kind;
    unsigned kinds; /* every ladder clock of the case that ran out in this batch */
    struct esc_site *site;
    struct wf_case old;
    Shouwen__V1__Command cmd;
    Shouwen__V1__EscalateCase esc;
    Shouwen__V1__Actor actor;
    struct wf_result res;
    char command_id[37], ids[WF_MAX_EVENTS][37], reason[200];
};

/* Step 4: the ladder's escalations, through the workflow, in one casedb_save_many. */
static sw_err climb_ladder(PGconn *tx, struct esc_cache *cache, struct bus_outbox *ob,
                           const PGresult *r, const struct hit *hits, size_t n,
                           const struct esc_fire_metrics *m, char *err, size_t errlen)
{
    size_t nc = 0;
    for (size_t i = 0; i < n; i++)
        if (hits[i].kind == CLK_SUPERVISOR || hits[i].kind == CLK_MANAGER ||
            hits[i].kind == CLK_EMERGENCY_ACK)
            nc++;
    if (nc == 0)
        return SW_OK;
    struct climb *c = calloc(nc, sizeof(*c));
    const char **ids = calloc(nc, sizeof(*ids)), **sites = calloc(nc, sizeof(*sites));
    struct wf_case *cases = calloc(nc, sizeof(*cases));
    bool *found = calloc(nc, sizeof(*found));
    struct casedb_write *w = calloc(nc, sizeof(*w));
    sw_err rv = SW_OK;
    if (c == NULL || ids == NULL || sites == NULL || cases == NULL || found == NULL || w == NULL) {
        rv = SW_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* one climb per case: to the highest rung any of its ladder clocks reaches */
    size_t k = 0;
    for (size_t i = 0; i < n && rv == SW_OK; i++) {
        const struct hit *h = &hits[i];
        if (h->kind != CLK_SUPERVISOR && h->kind != CLK_MANAGER && h->kind != CLK_EMERGENCY_ACK)
            continue;
        bool dup = false;
        for (size_t q = 0; q < k; q++)
            if (strcmp(ids[q], PQgetvalue(r, h->row, H_CASE)) == 0) {
                c[q].kinds |= 1u << h->kind;
                dup = true;
            }
        if (dup)
            continue;
        c[k].row = h->row;
        c[k].kind = h->kind;
        c[k].kinds = 1u << h->kind;
        rv = esc_site_get(cache, tx, PQgetvalue(r, h->row, H_SITE), &c[k].site, err, errlen);
        ids[k] = PQgetvalue(r, h->row, H_CASE);
        sites[k] = PQgetvalue(r, h->row, H_SITE_ID);
        k++;
    }
    nc = k;
    if (rv != SW_OK ||
        (rv = casedb_load_many(tx, ids, sites, nc, cases, found, err, errlen)) != SW_OK)
        goto out;
    size_t nw = 0;
    int64_t now = esc_now_us();
    for (size_t i = 0; i < nc && rv == SW_OK; i++) {
        struct climb *x = &c[i];
        if (!found[i])
            continue;
        x->old = cases[i];
        Shouwen__V1__EscalationLevel to = LEVEL(UNSPECIFIED);
        for (int q = 0; q < CLK_KINDS; q++) {
            Shouwen__V1__EscalationLevel l = clk_rung((enum clk_kind)q, x->old.escalation_level);
            if ((x->kinds & (1u << q)) && l > to) {
                to = l;
                x->kind = (enum clk_kind)q;
            }
        }
        if (to == LEVEL(UNSPECIFIED))
            continue; /* already there: someone escalated it by hand */
        const char *who = "";
        if (x->kind == CLK_SUPERVISOR && x->site->nsupervisors > 0)
            who = x->site->supervisors[0];
        else if (x->kind == CLK_MANAGER && x->site->nmanagers > 0)
            who = x->site->managers[0];
        struct casedb_lookups lu;
        memset(&lu, 0, sizeof(lu));
        if (who[0] != '\0' && (rv = casedb_look_up(tx, x->site->id, NULL, who, NULL, 0, NULL, &lu,
                                                   err, errlen)) != SW_OK)
            break;
        if ((rv = bus_uuid_v7(x->command_id)) != SW_OK)
            break;
        shouwen__v1__actor__init(&x->actor);
        x->actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
        x->actor.external_system = (char *)"escalation";
        shouwen__v1__escalate_case__init(&x->esc);
        x->esc.level = to;
        x->esc.to_staff = (char *)who;
        if (x->kind == CLK_EMERGENCY_ACK)
            snprintf(x->reason, sizeof(x->reason),
                     "emergency not acknowledged in time: the alert goes up to the %s",
                     wf_escalation_name(to));
        else
            snprintf(x->reason, sizeof(x->reason), "open past the %s step: the %s takes it over",
                     clk_kind_name(x->kind), wf_escalation_name(to));
        x->esc.reason = x->reason;
        shouwen__v1__command__init(&x->cmd);
        x->cmd.command_id = x->command_id;
        x->cmd.site = x->old.site;
        x->cmd.case_id = x->old.id;
        x->cmd.expected_version = x->old.version;
        x->cmd.actor = &x->actor;
        x->cmd.time = now;
        x->cmd.command_case = SHOUWEN__V1__COMMAND__COMMAND_ESCALATE;
        x->cmd.escalate = &x->esc;
        struct wf_context ctx = {
            .now = now,
            .staff_found = lu.staff_found,
            .staff_department = lu.staff_department,
            .department_found = true,
        };
        struct wf_error we = {0};
        if (wf_apply(&x->old, &x->cmd, &ctx, &x->res, &we) != WF_OK) {
            LOG(LOG_WARN, "ESCALATION-REFUSED", "case %s: the workflow refused to escalate: %s",
                x->old.number, we.message);
            metric_add(m->refused, 1);
            continue;
        }
        for (size_t e = 0; rv == SW_OK && e < x->res.n_events; e++) {
            if ((rv = bus_uuid_v7(x->ids[e])) != SW_OK)
                break;
            x->res.events[e].event_id = x->ids[e];
            if (x->res.events[e].escalated != NULL)
                x->res.events[e].escalated->deadline_kind = clk_deadline_kind(x->kind);
            rv = bus_outbox_add(ob, &x->res.events[e]);
        }
        if (rv != SW_OK) {
            snprintf(err, errlen, "could not stage an escalation");
            break;
        }
        w[nw] = (struct casedb_write){
            .x = {.site_id = x->site->id,
                  .case_id = x->old.id,
                  .system = "escalation",
                  .time_zone = PQgetvalue(r, x->row, H_TZ),
                  .at = now,
                  .event_id = x->ids[0]},
            .cmd = &x->cmd,
            .old = &x->old,
            .res = &x->res,
        };
        nw++;
        metric_add(m->escalations, 1);
        LOG(LOG_INFO, "ESCALATION-CLIMB", "case %s: %s%s%s", x->old.number, x->reason,
            who[0] ? ": " : "", who);
        if (x->kind == CLK_EMERGENCY_ACK) {
            /* who is on the rung now */
            Shouwen__V1__EmergencyAlerted al = SHOUWEN__V1__EMERGENCY_ALERTED__INIT;
            Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
            char *people[ESC_PEOPLE];
            size_t np = 0;
            const char(*src)[WF_CODE_SIZE] = to == LEVEL(SUPERVISOR) ? x->site->supervisors
                                             : to == LEVEL(MANAGER)  ? x->site->managers
                                                                     : x->site->leaders;
            size_t ns = to == LEVEL(SUPERVISOR) ? x->site->nsupervisors
                        : to == LEVEL(MANAGER)  ? x->site->nmanagers
                                                : x->site->nleaders;
            for (size_t q = 0; q < ns; q++)
                people[np++] = (char *)src[q];
            al.alert_id = x->old.id;
            al.level = to;
            al.n_notified_staff = np;
            al.notified_staff = people;
            al.message = x->reason;
            env.type = (char *)"emergency.alerted";
            env.site = x->old.site;
            env.case_id = x->old.id;
            env.case_version = x->res.next.version;
            env.time = now;
            env.actor = &x->actor;
            env.event_case = EV(EMERGENCY_ALERTED);
            env.emergency_alerted = &al;
            if ((rv = bus_outbox_add(ob, &env)) != SW_OK)
                snprintf(err, errlen, "could not stage emergency.alerted");
        }
    }
    if (rv == SW_OK && nw > 0 && (rv = casedb_save_many(tx, w, nw, err, errlen)) == SW_OK)
        for (size_t i = 0; i < nw; i++)
            if (w[i].lost) {
                snprintf(err, errlen, "case %s changed while it was escalated; trying again",
                         w[i].old->number);
                rv = SW_ECONFLICT;
                break;
            }
out:
    free(c);
    free(ids);
    free(sites);
    free(cases);
    free(found);
    free(w);
    return rv;
}

sw_err esc_fire(PGconn *tx, struct esc_cache *cache, struct bus_outbox *ob, const struct esc_due *d,
                size_t n, const struct esc_fire_metrics *m, size_t *fired, char *err, size_t errlen)
{
    sw_err rv;
    *fired = 0;
    if (n == 0)
        return SW_OK;
    PGresult *r = breach(tx, d, n, err, errlen, &rv);
    if (r == NULL)
        return rv;
    int rows = PQntuples(r);
    struct hit *hits = calloc((size_t)rows + 1, sizeof(*hits));
    if (hits == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; rv == SW_OK && i < rows; i++) {
        struct hit *h = &hits[i];
        h->row = i;
        if (!clk_kind_parse(PQgetvalue(r, i, H_KIND), &h->kind))
            continue;
        if ((rv = bus_uuid_v7(h->event_id)) != SW_OK)
            break;
        bool someone = !PQgetisnull(r, i, H_STAFF_ID) || !PQgetisnull(r, i, H_DEPT_ID);
        if (clk_violation(h->kind) != SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_UNSPECIFIED &&
            someone)
            rv = bus_uuid_v7(h->violation_id);
        metric_add(m->breaches[h->kind], 1);
    }
    if (rv == SW_OK)
        rv = record_violations(tx, r, hits, (size_t)rows, err, errlen);
    for (int i = 0; rv == SW_OK && i < rows; i++)
        if ((rv = stage_breach(ob, r, &hits[i])) != SW_OK)
            snprintf(err, errlen, "could not stage case.deadline_breached");
    if (rv == SW_OK)
        rv = climb_ladder(tx, cache, ob, r, hits, (size_t)rows, m, err, errlen);
    if (rv == SW_OK)
        *fired = (size_t)rows;
    free(hits);
    PQclear(r);
    return rv;
}
