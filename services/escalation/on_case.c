/*
 * on_case.c - the clocks follow every case event.
 *
 * For a transaction's events at once:
 *
 * 1. The times the clocks need are recorded from the events themselves
 *    (escalation.marks): a new holder, a new rung, a wait, a resumption, a
 *    reopening.  Whatever is handled when, these are exact.
 * 2. A complaint transferred to QA, or escalated to the leaders, is a
 *    conflict escalation (矛盾升级) against the department it came from.
 * 3. Each case whose latest event is in the batch (its version is the
 *    case's version now) has its clocks recomputed from the case as it is,
 *    the site's limits and calendar and its marks (common/clocks.c), and
 *    the changed deadlines are written in one statement.  An event whose
 *    case has already moved on is only recorded: the case's later event
 *    comes and recomputes.
 *
 * The deadline rows are read FOR UPDATE in (case, clock) order, the order
 * in which the timer locks them too, so a recomputation and a firing of
 * the same deadline wait for each other and never deadlock.
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

struct job {
    const char *case_id;
    const Shouwen__V1__Envelope *env; /* the latest of the batch */
    size_t idx;                       /* its index in the batch */
    struct esc_site *site;
    struct wf_case c;
    bool current;
    struct clk_row rows[CLK_KINDS];
    char ids[CLK_KINDS][37];
    int64_t holder, level, reopened;
    size_t pause0, npauses; /* into the batch's pauses */
};

static int by_case(const void *a, const void *b)
{
    const struct job *x = a, *y = b;
    return strcmp(x->case_id, y->case_id);
}

/* By case, then version, then place in the batch. */
static int by_case_version(const void *a, const void *b)
{
    const struct job *x = a, *y = b;
    int c = strcmp(x->case_id, y->case_id);
    if (c != 0)
        return c;
    if (x->env->case_version != y->env->case_version)
        return x->env->case_version < y->env->case_version ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static struct job *find(struct job *jobs, size_t n, const char *case_id)
{
    struct job key = {.case_id = case_id};
    return bsearch(&key, jobs, n, sizeof(*jobs), by_case);
}

static sw_err fail(PGconn *tx, PGresult *r, const char *what, char *err, size_t errlen)
{
    sw_err rv = db_fail(tx, r, what, err, errlen);
    PQclear(r);
    return rv;
}

/* ---- 1. marks ---------------------------------------------------------------------------- */

static const char *mark_of(const Shouwen__V1__Envelope *e, const char **second)
{
    *second = NULL;
    switch (e->event_case) {
    case EV(ASSIGNED):
    case EV(TRANSFERRED):
    case EV(ACCEPTED):
    case EV(RETURNED):
    case EV(FORWARDED):
    case EV(LEAD_DESIGNATED):
    case EV(REFERRED_OUT):
        return "holder";
    case EV(ESCALATED):
        if (e->escalated != NULL && e->escalated->to_staff != NULL &&
            e->escalated->to_staff[0] != '\0')
            *second = "holder";
        return "level";
    case EV(WAITING):
        return "waiting";
    case EV(RESUMED):
        return "resumed";
    case EV(REOPENED):
        return "reopened";
    default:
        return NULL;
    }
}

static sw_err write_marks(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, char *err,
                          size_t errlen)
{
    struct buf a[3];
    sw_err rv = SW_OK;
    size_t m = 0;
    for (int k = 0; k < 3; k++) {
        buf_init(&a[k], ARRAY_MAX);
        rv = rv == SW_OK ? buf_puts(&a[k], "{") : rv;
    }
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const char *second, *kind = mark_of(envs[i], &second);
        for (int t = 0; t < 2 && kind != NULL && rv == SW_OK; t++, kind = second) {
            const char *sep = m ? "," : "";
            if ((rv = buf_printf(&a[0], "%s%s", sep, envs[i]->case_id)) == SW_OK &&
                (rv = buf_printf(&a[1], "%s%s", sep, kind)) == SW_OK)
                rv = buf_printf(&a[2], "%s%" PRId64, sep, envs[i]->time);
            m++;
        }
    }
    for (int k = 0; k < 3 && rv == SW_OK; k++)
        rv = buf_puts(&a[k], "}");
    if (rv != SW_OK)
        snprintf(err, errlen, "too many marks at once");
    if (rv == SW_OK && m > 0) {
        const char *v[] = {buf_cstr(&a[0]), buf_cstr(&a[1]), buf_cstr(&a[2])};
        PGresult *r = db_exec_fixed(
            tx,
            "INSERT INTO escalation.marks (case_id, kind, at) SELECT u.c, u.k, timestamptz "
            "'epoch' + u.t * interval '1 microsecond' FROM unnest($1::uuid[], $2::text[], "
            "$3::bigint[]) AS u(c, k, t) ON CONFLICT DO NOTHING",
            3, v);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rv = fail(tx, r, "record the clocks' marks", err, errlen);
        else
            PQclear(r);
    }
    for (int k = 0; k < 3; k++)
        buf_free(&a[k]);
    return rv;
}

/* ---- 2. conflict escalations ------------------------------------------------------------- */

/*
 * A complaint transferred or forwarded to a QA department, or escalated to
 * the leaders, counts against the department it came from: one violation
 * per such event (its id is the violation's event_id), announced by
 * violation.recorded.
 */
static sw_err conflicts(struct escalation *e, PGconn *tx, const Shouwen__V1__Envelope *const *envs,
                        size_t n, char *err, size_t errlen)
{
    struct buf ids;
    buf_init(&ids, ARRAY_MAX);
    sw_err rv = buf_puts(&ids, "{");
    size_t m = 0;
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const Shouwen__V1__Envelope *x = envs[i];
        bool maybe =
            x->event_case == EV(TRANSFERRED) || x->event_case == EV(FORWARDED) ||
            (x->event_case == EV(ESCALATED) && x->escalated != NULL &&
             x->escalated->level == LEVEL(LEADER) && x->escalated->from_level < LEVEL(LEADER));
        if (maybe)
            rv = buf_printf(&ids, "%s%s", m++ ? "," : "", x->event_id);
    }
    if (rv == SW_OK)
        rv = buf_puts(&ids, "}");
    if (rv != SW_OK || m == 0) {
        buf_free(&ids);
        if (rv != SW_OK)
            snprintf(err, errlen, "too many events at once");
        return rv;
    }
    const char *v[] = {buf_cstr(&ids)};
    PGresult *r = db_exec_guarded(
        tx,
        "WITH v AS (INSERT INTO escalation.violations (site_id, case_id, kind, department_id, "
        "occurred_at, points, detail, event_id) SELECT h.site_id, h.case_id, "
        "'conflict_escalation', h.from_department_id, h.at, coalesce(pp.points, 0), "
        "CASE WHEN h.kind = 'escalate' THEN 'a complaint escalated to the leaders' ELSE "
        "'a complaint transferred to QA (' || td.code || ')' END, h.event_id FROM core.handoffs h "
        "JOIN core.cases c ON c.id = h.case_id LEFT JOIN core.departments td ON td.id = "
        "h.to_department_id LEFT JOIN core.site_penalty_points pp ON pp.site_id = h.site_id AND "
        "pp.kind = 'conflict_escalation' WHERE h.event_id = ANY($1::uuid[]) AND c.type = "
        "'complaint' AND h.from_department_id IS NOT NULL AND (h.kind = 'escalate' OR (h.kind IN "
        "('transfer', 'forward') AND td.is_qa AND h.from_department_id <> h.to_department_id)) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING id, site_id, case_id, department_id, "
        "occurred_at, points, detail, event_id) SELECT v.id::text, s.code, v.case_id::text, "
        "d.code, (extract(epoch FROM v.occurred_at) * 1000000)::bigint, v.points, v.detail, "
        "v.event_id::text, c.version FROM v JOIN core.sites s ON s.id = v.site_id JOIN "
        "core.departments d ON d.id = v.department_id JOIN core.cases c ON c.id = v.case_id",
        1, v);
    buf_free(&ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(tx, r, "record conflict escalations", err, errlen);
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        Shouwen__V1__ViolationRecorded vr = SHOUWEN__V1__VIOLATION_RECORDED__INIT;
        Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
        Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
        vr.violation_id = PQgetvalue(r, i, 0);
        vr.kind = SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_CONFLICT_ESCALATION;
        vr.department = PQgetvalue(r, i, 3);
        vr.occurred_at = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        vr.penalty_points = atoi(PQgetvalue(r, i, 5));
        vr.detail = PQgetvalue(r, i, 6);
        vr.caused_by_event_id = PQgetvalue(r, i, 7);
        actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
        actor.external_system = (char *)"escalation";
        env.type = (char *)"violation.recorded";
        env.site = PQgetvalue(r, i, 1);
        env.case_id = PQgetvalue(r, i, 2);
        env.case_version = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        env.actor = &actor;
        env.event_case = EV(VIOLATION_RECORDED);
        env.violation_recorded = &vr;
        if ((rv = bus_outbox_add(e->ob, &env)) != SW_OK)
            snprintf(err, errlen, "could not stage violation.recorded");
        else
            e->pending = true;
        metric_add(e->m_conflicts, 1);
        LOG(LOG_INFO, "ESCALATION-CONFLICT",
            "case %s: conflict escalation (矛盾升级) counted against department %s: %s",
            env.case_id, vr.department, vr.detail);
    }
    PQclear(r);
    return rv;
}

/* ---- 3. the clocks ------------------------------------------------------------------------ */

static int64_t num(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static sw_err id_array(struct buf *b, struct job *jobs, size_t n)
{
    sw_err rv = buf_puts(b, "{");
    for (size_t i = 0, m = 0; rv == SW_OK && i < n; i++)
        if (jobs[i].current)
            rv = buf_printf(b, "%s%s", m++ ? "," : "", jobs[i].case_id);
    return rv == SW_OK ? buf_puts(b, "}") : rv;
}

/* The marks of the cases to recompute: holder, level and reopened times, and the pauses. */
static sw_err read_marks(PGconn *tx, const char *ids, struct job *jobs, size_t n,
                         struct clk_pause **pauses, size_t *npauses, char *err, size_t errlen)
{
    const char *v[] = {ids};
    PGresult *r = db_exec_guarded(tx,
                                  "SELECT case_id::text, kind, (extract(epoch FROM at) * "
                                  "1000000)::bigint FROM escalation.marks WHERE case_id = "
                                  "ANY($1::uuid[]) ORDER BY case_id, at, kind",
                                  1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(tx, r, "read the clocks' marks", err, errlen);
    int rows = PQntuples(r);
    *pauses = calloc((size_t)rows + 1, sizeof(**pauses));
    if (*pauses == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    size_t np = 0;
    struct job *j = NULL;
    for (int i = 0; i < rows; i++) {
        const char *id = PQgetvalue(r, i, 0), *kind = PQgetvalue(r, i, 1);
        int64_t at = num(r, i, 2);
        if (j == NULL || strcmp(j->case_id, id) != 0) {
            j = find(jobs, n, id);
            if (j == NULL)
                continue;
            j->pause0 = np;
            j->npauses = 0;
        }
        if (strcmp(kind, "holder") == 0) {
            j->holder = at;
        } else if (strcmp(kind, "level") == 0) {
            j->level = at;
        } else if (strcmp(kind, "reopened") == 0) {
            j->reopened = at;
        } else if (strcmp(kind, "waiting") == 0) {
            if (j->npauses == 0 || (*pauses)[np - 1].to != 0) {
                (*pauses)[np++] = (struct clk_pause){at, 0};
                j->npauses++;
            }
        } else if (strcmp(kind, "resumed") == 0) {
            if (j->npauses > 0 && (*pauses)[np - 1].to == 0)
                (*pauses)[np - 1].to = at;
        }
    }
    *npauses = np;
    PQclear(r);
    return SW_OK;
}

static sw_err read_rows(PGconn *tx, const char *ids, struct job *jobs, size_t n, char *err,
                        size_t errlen)
{
    const char *v[] = {ids};
    PGresult *r = db_exec_guarded(
        tx,
        "SELECT case_id::text, kind, id::text, episode, (extract(epoch FROM started_at) * "
        "1000000)::bigint, CASE WHEN due_at = 'infinity' THEN 9223372036854775807 ELSE "
        "(extract(epoch FROM due_at) * 1000000)::bigint END, (extract(epoch FROM met_at) * "
        "1000000)::bigint, (extract(epoch FROM breached_at) * 1000000)::bigint, limit_us, basis "
        "FROM escalation.deadlines WHERE case_id = ANY($1::uuid[]) ORDER BY case_id, kind FOR "
        "UPDATE",
        1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(tx, r, "read the deadlines", err, errlen);
    for (int i = 0; i < PQntuples(r); i++) {
        struct job *j = find(jobs, n, PQgetvalue(r, i, 0));
        enum clk_kind k;
        if (j == NULL || !clk_kind_parse(PQgetvalue(r, i, 1), &k))
            continue;
        struct clk_row *w = &j->rows[k];
        w->exists = true;
        snprintf(j->ids[k], sizeof(j->ids[k]), "%s", PQgetvalue(r, i, 2));
        snprintf(w->episode, sizeof(w->episode), "%s", PQgetvalue(r, i, 3));
        w->started_at = num(r, i, 4);
        w->due_at = num(r, i, 5);
        w->met_at = num(r, i, 6);
        w->breached_at = num(r, i, 7);
        w->limit_us = num(r, i, 8);
        w->working = strcmp(PQgetvalue(r, i, 9), "working") == 0;
    }
    PQclear(r);
    return SW_OK;
}

static sw_err stage_due(struct escalation *e, int64_t due, const char *case_id, int kind)
{
    if (e->nstaged == e->capstaged) {
        size_t cap = e->capstaged ? e->capstaged * 2 : 256;
        struct esc_due *d = realloc(e->staged, cap * sizeof(*d));
        if (d == NULL)
            return SW_ENOMEM;
        e->staged = d;
        e->capstaged = cap;
    }
    struct esc_due *d = &e->staged[e->nstaged++];
    d->due = due;
    snprintf(d->case_id, sizeof(d->case_id), "%s", case_id);
    d->kind = (uint8_t)kind;
    return SW_OK;
}

/*
 * An emergency seen for the first time (its acknowledgement clock is new,
 * not a later rung's): everyone responsible for it now is alerted at once,
 * the case's holder and its natural first responder, or, while nobody
 * holds it (a device's alarm before routing), the site's supervisors.  If nobody
 * acknowledges by `ack_due`, the clock's breach takes the alert up a rung
 * (fire.c).  Staged in the transaction that writes the clock, so it is
 * sent once.
 */
static sw_err alert_first(struct escalation *e, const struct job *j, int64_t ack_due, char *err,
                          size_t errlen)
{
    Shouwen__V1__EmergencyAlerted al = SHOUWEN__V1__EMERGENCY_ALERTED__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    char *people[ESC_PEOPLE];
    size_t np = 0;
    char msg[200];
    if (j->c.owner[0] != '\0')
        people[np++] = (char *)j->c.owner;
    if (j->c.first_responder[0] != '\0' && strcmp(j->c.first_responder, j->c.owner) != 0)
        people[np++] = (char *)j->c.first_responder;
    for (size_t i = 0; np == 0 && i < j->site->nsupervisors; i++)
        people[i] = (char *)j->site->supervisors[i];
    if (np == 0)
        np = j->site->nsupervisors;
    snprintf(msg, sizeof(msg), "emergency %s: act at once; unacknowledged, it goes up to the %s",
             j->c.number, wf_escalation_name(LEVEL(SUPERVISOR)));
    al.alert_id = (char *)j->case_id;
    al.level = LEVEL(NONE);
    al.n_notified_staff = np;
    al.notified_staff = people;
    al.message = msg;
    al.ack_due_at = ack_due;
    actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
    actor.external_system = (char *)"escalation";
    env.type = (char *)"emergency.alerted";
    env.site = j->site->code;
    env.case_id = (char *)j->case_id;
    env.case_version = j->c.version;
    env.time = j->env->time;
    env.actor = &actor;
    env.event_case = EV(EMERGENCY_ALERTED);
    env.emergency_alerted = &al;
    sw_err rv = bus_outbox_add(e->ob, &env);
    if (rv != SW_OK) {
        snprintf(err, errlen, "could not stage emergency.alerted");
        return rv;
    }
    e->pending = true;
    char who[200] = "";
    for (size_t i = 0, used = 0; i < np && used < sizeof(who); i++)
        used += (size_t)snprintf(who + used, sizeof(who) - used, "%s%s", i ? ", " : "", people[i]);
    LOG(LOG_INFO, "ESCALATION-EMERGENCY", "case %s: emergency alert to %s", j->c.number,
        np ? who : "nobody: the site has no supervisor");
    return SW_OK;
}

/*
 * The deadlines planned for a batch, written in one statement: the rows
 * the batch read (read_rows, locked there) updated, the others inserted.
 * Those are new: the consumer that owns the case's partition is the only
 * writer of its deadlines, so no row can appear between the read and the
 * write; if one did, its INSERT would fail and the batch would be retried.
 * (They were one INSERT ... ON CONFLICT DO UPDATE: a speculative insertion
 * for every row, with its extra probe, lock and WAL record, though all but
 * about one in ten are new.)  The counts come back and are checked.
 */
static const char deadlines_sql[] =
    "WITH u AS MATERIALIZED (SELECT u.s, u.c, u.k, u.i, u.p, u.e, "
    "timestamptz 'epoch' + u.st * interval '1 microsecond' AS st, "
    "CASE WHEN u.du = 0 THEN NULL WHEN u.du = 9223372036854775807 THEN 'infinity' "
    "ELSE timestamptz 'epoch' + u.du * interval '1 microsecond' END AS du, "
    "CASE WHEN u.me = 0 THEN NULL ELSE timestamptz 'epoch' + u.me * interval '1 microsecond' "
    "END AS me, "
    "CASE WHEN u.br = 0 THEN NULL ELSE timestamptz 'epoch' + u.br * interval '1 microsecond' "
    "END AS br, u.l, u.b, u.x "
    "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::int[], $6::text[], "
    "$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], "
    "$13::bool[]) AS u(s, c, k, i, p, e, st, du, me, br, l, b, x)), "
    "up AS (UPDATE escalation.deadlines d SET id = u.i, part = u.p, episode = u.e, "
    "started_at = u.st, due_at = u.du, met_at = u.me, breached_at = u.br, limit_us = u.l, "
    "basis = u.b, updated_at = now() FROM u WHERE u.x AND d.case_id = u.c AND d.kind = u.k "
    "RETURNING 1), "
    "ins AS (INSERT INTO escalation.deadlines (site_id, case_id, kind, id, part, episode, "
    "started_at, due_at, met_at, breached_at, limit_us, basis, updated_at) "
    "SELECT u.s, u.c, u.k, u.i, u.p, u.e, u.st, u.du, u.me, u.br, u.l, u.b, now() FROM u "
    "WHERE NOT u.x RETURNING 1) "
    "SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM ins)";

/* Plans every current job and writes what changed (deadlines_sql). */
static sw_err plan_and_write(struct escalation *e, PGconn *tx, struct job *jobs, size_t n,
                             const struct clk_pause *pauses, char *err, size_t errlen)
{
    enum {
        C_SITE,
        C_CASE,
        C_KIND,
        C_ID,
        C_PART,
        C_EPISODE,
        C_START,
        C_DUE,
        C_MET,
        C_BREACHED,
        C_LIMIT,
        C_BASIS,
        C_EXISTS,
        NCOLS
    };
    struct buf a[NCOLS];
    sw_err rv = SW_OK;
    size_t m = 0, mx = 0; /* rows written, of them rows read (updated) */
    for (int k = 0; k < NCOLS; k++) {
        buf_init(&a[k], ARRAY_MAX);
        rv = rv == SW_OK ? buf_puts(&a[k], "{") : rv;
    }
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        struct job *j = &jobs[i];
        if (!j->current)
            continue;
        struct clk_policy pol;
        esc_policy(j->site, j->c.type, j->c.urgency, &pol);
        struct clk_marks mk = {.holder = j->holder,
                               .level = j->level,
                               .reopened = j->reopened,
                               .pauses = pauses + j->pause0,
                               .npauses = j->npauses};
        struct clk_row next[CLK_KINDS];
        enum clk_change ch[CLK_KINDS];
        clk_plan(&j->c, &pol, &j->site->cal, &mk, j->env->time, j->rows, next, ch);
        metric_add(e->m_recomputed, 1);
        uint32_t part = bus_partition_of(j->case_id, NULL, e->partitions);
        for (int k = 0; rv == SW_OK && k < CLK_KINDS; k++) {
            if (ch[k] == CLK_SAME)
                continue;
            if (ch[k] == CLK_NEW && (rv = bus_uuid_v7(j->ids[k])) != SW_OK)
                break;
            const struct clk_row *w = &next[k];
            const char *sep = m ? "," : "";
            rv = buf_pg_elem(&a[C_EPISODE], m == 0, w->episode);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_SITE], "%s%s", sep, j->site->id);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_CASE], "%s%s", sep, j->case_id);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_KIND], "%s%s", sep, clk_kind_name((enum clk_kind)k));
            if (rv == SW_OK)
                rv = buf_printf(&a[C_ID], "%s%s", sep, j->ids[k]);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_PART], "%s%u", sep, part);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_START], "%s%" PRId64, sep, w->started_at);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_DUE], "%s%" PRId64, sep, w->due_at);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_MET], "%s%" PRId64, sep, w->met_at);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_BREACHED], "%s%" PRId64, sep, w->breached_at);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_LIMIT], "%s%" PRId64, sep, w->limit_us);
            if (rv == SW_OK)
                rv = buf_printf(&a[C_BASIS], "%s%s", sep, w->working ? "working" : "calendar");
            if (rv == SW_OK)
                rv = buf_printf(&a[C_EXISTS], "%s%s", sep, j->rows[k].exists ? "t" : "f");
            if (rv == SW_OK && (ch[k] == CLK_NEW || ch[k] == CLK_UPDATE) && w->due_at != 0 &&
                w->met_at == 0 && w->breached_at == 0)
                rv = stage_due(e, w->due_at, j->case_id, k);
            if (rv == SW_OK && k == CLK_EMERGENCY_ACK && ch[k] == CLK_NEW && !j->rows[k].exists &&
                w->met_at == 0 && w->breached_at == 0)
                rv = alert_first(e, j, w->due_at, err, errlen);
            mx += j->rows[k].exists;
            m++;
        }
    }
    if (rv != SW_OK)
        snprintf(err, errlen, "too many deadlines at once, or out of memory");
    if (rv == SW_OK && m > 0) {
        const char *v[NCOLS];
        for (int k = 0; k < NCOLS; k++) {
            if (rv == SW_OK)
                rv = buf_puts(&a[k], "}");
            v[k] = buf_cstr(&a[k]);
        }
        /* guarded: the UPDATE probes the key for each row read, whatever the plan's statistics */
        PGresult *r = rv != SW_OK ? NULL : db_exec_guarded(tx, deadlines_sql, NCOLS, v);
        if (rv != SW_OK) {
            snprintf(err, errlen, "too many deadlines at once");
        } else if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            rv = fail(tx, r, "write the deadlines", err, errlen);
        } else if (strtoull(PQgetvalue(r, 0, 0), NULL, 10) != mx ||
                   strtoull(PQgetvalue(r, 0, 1), NULL, 10) != m - mx) {
            snprintf(err, errlen,
                     "write the deadlines: %s of %zu read rows updated, %s of %zu new rows "
                     "inserted",
                     PQgetvalue(r, 0, 0), mx, PQgetvalue(r, 0, 1), m - mx);
            PQclear(r);
            rv = SW_ECONFLICT;
        } else {
            PQclear(r);
        }
    }
    for (int k = 0; k < NCOLS; k++)
        buf_free(&a[k]);
    return rv;
}

/* ---- the batch handler ------------------------------------------------------------------- */

sw_err esc_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen)
{
    struct escalation *e = arg;
    sw_err rv;
    *failed = 0;
    if (e->partitions == 0 && (rv = bus_partitions(tx, &e->partitions, err, errlen)) != SW_OK)
        return rv;
    if (e->ob == NULL && (rv = bus_outbox_alloc(&e->ob, e->partitions)) != SW_OK)
        return rv;
    if ((rv = esc_cache_check(&e->cache, tx, err, errlen)) != SW_OK)
        return rv;
    if ((rv = write_marks(tx, envs, n, err, errlen)) != SW_OK)
        return rv;
    if ((rv = conflicts(e, tx, envs, n, err, errlen)) != SW_OK)
        return rv;

    /* the latest event of each case */
    struct job *jobs = calloc(n ? n : 1, sizeof(*jobs));
    const char **ids = calloc(n ? n : 1, sizeof(*ids)), **sites = calloc(n ? n : 1, sizeof(*sites));
    struct wf_case *cases = calloc(n ? n : 1, sizeof(*cases));
    bool *found = calloc(n ? n : 1, sizeof(*found));
    struct clk_pause *pauses = NULL;
    struct buf idarr;
    buf_init(&idarr, ARRAY_MAX);
    size_t nj = 0, npauses = 0;
    if (jobs == NULL || ids == NULL || sites == NULL || cases == NULL || found == NULL) {
        rv = SW_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (envs[i]->case_id != NULL && envs[i]->case_id[0] != '\0')
            jobs[nj++] = (struct job){.case_id = envs[i]->case_id, .env = envs[i], .idx = i};
    /* by case, each case's events in version order: its latest is the last of its run */
    qsort(jobs, nj, sizeof(*jobs), by_case_version);
    size_t kept = 0;
    for (size_t i = 0; i < nj; i++) {
        if (kept > 0 && strcmp(jobs[kept - 1].case_id, jobs[i].case_id) == 0)
            kept--;
        jobs[kept++] = jobs[i];
    }
    nj = kept;
    for (size_t k = 0; k < nj; k++) {
        struct job *j = &jobs[k];
        rv = esc_site_get(&e->cache, tx, j->env->site, &j->site, err, errlen);
        if (rv == SW_ENOTFOUND) {
            snprintf(err, errlen, "%s about case %s of an unknown site \"%.20s\"", j->env->type,
                     j->case_id, j->env->site);
            *failed = j->idx;
            rv = SW_EINVAL;
        }
        if (rv != SW_OK)
            goto out;
        ids[k] = j->case_id;
        sites[k] = j->site->id;
    }
    if ((rv = casedb_load_many(tx, ids, sites, nj, cases, found, err, errlen)) != SW_OK)
        goto out;
    size_t ncur = 0;
    for (size_t k = 0; k < nj; k++) {
        struct job *j = &jobs[k];
        if (!found[k]) {
            snprintf(err, errlen, "%s about an unknown case %s of site %s", j->env->type,
                     j->case_id, j->env->site);
            *failed = j->idx;
            rv = SW_ENOTFOUND;
            goto out;
        }
        j->c = cases[k];
        j->current = j->env->case_version >= j->c.version;
        if (j->current)
            ncur++;
        else
            metric_add(e->m_stale, 1);
    }
    if (ncur > 0) {
        if ((rv = id_array(&idarr, jobs, nj)) != SW_OK) {
            snprintf(err, errlen, "too many cases at once");
            goto out;
        }
        if ((rv = read_marks(tx, buf_cstr(&idarr), jobs, nj, &pauses, &npauses, err, errlen)) !=
                SW_OK ||
            (rv = read_rows(tx, buf_cstr(&idarr), jobs, nj, err, errlen)) != SW_OK ||
            (rv = plan_and_write(e, tx, jobs, nj, pauses, err, errlen)) != SW_OK)
            goto out;
    }
    if (e->pending && (rv = bus_outbox_write(e->ob, tx, err, errlen)) != SW_OK)
        goto out;
out:
    buf_free(&idarr);
    free(pauses);
    free(jobs);
    free(ids);
    free(sites);
    free(cases);
    free(found);
    return rv;
}
