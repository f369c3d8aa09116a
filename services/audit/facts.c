/*
 * facts.c - the roll-ups the QA reports read, kept as events arrive.
 *
 * audit.case_facts holds one row per case: what it is (type, channel,
 * urgency, first responder, registration day), where it is (department)
 * and what became of it (answered, handed off, late, resolved, called
 * back, escalated, bounced).  The batch's cases are read in one query,
 * their events applied here in order, and the rows written back in one;
 * audit.violations gets one row per violation.  A report then reads a
 * period's rows of one department or person, never the event log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "log.h"
#include "workflow.h"

#define EV(x) SHOUWEN__V1__ENVELOPE__EVENT_##x

struct fact {
    char case_id[37];
    const char *site_id;
    bool exists;
    bool stored; /* its row was read: it is updated, not inserted */
    bool changed;
    int64_t registered_us;
    char type[32], channel[32], urgency[32];
    char first_responder[65], department[65];
    bool on_spot;
    const char *outcome;
    int64_t resolve_s; /* -1: none */
    bool handed_off, responded;
    int transfers, returns;
    bool late_handoff, late_answer, late_resolve, late_callback, called_back;
    char satisfaction[32];
    int reopened, esc_supervisor, esc_manager, esc_leader;
};

static const char *outcomes[] = {"open", "resolved", "unresolvable", "referred_out"};

static bool t(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

static void load_row(struct fact *f, const PGresult *r, int row)
{
    f->exists = true;
    f->stored = true;
    f->registered_us = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    snprintf(f->type, sizeof(f->type), "%s", PQgetvalue(r, row, 2));
    snprintf(f->channel, sizeof(f->channel), "%s", PQgetvalue(r, row, 3));
    snprintf(f->urgency, sizeof(f->urgency), "%s", PQgetvalue(r, row, 4));
    snprintf(f->first_responder, sizeof(f->first_responder), "%s", PQgetvalue(r, row, 5));
    snprintf(f->department, sizeof(f->department), "%s", PQgetvalue(r, row, 6));
    f->on_spot = t(r, row, 7);
    f->outcome = outcomes[0];
    for (size_t k = 0; k < sizeof(outcomes) / sizeof(outcomes[0]); k++)
        if (strcmp(PQgetvalue(r, row, 8), outcomes[k]) == 0)
            f->outcome = outcomes[k];
    f->resolve_s = strtoll(PQgetvalue(r, row, 9), NULL, 10);
    f->handed_off = t(r, row, 10);
    f->responded = t(r, row, 11);
    f->transfers = atoi(PQgetvalue(r, row, 12));
    f->returns = atoi(PQgetvalue(r, row, 13));
    f->late_handoff = t(r, row, 14);
    f->late_answer = t(r, row, 15);
    f->late_resolve = t(r, row, 16);
    f->late_callback = t(r, row, 17);
    f->called_back = t(r, row, 18);
    snprintf(f->satisfaction, sizeof(f->satisfaction), "%s", PQgetvalue(r, row, 19));
    f->reopened = atoi(PQgetvalue(r, row, 20));
    f->esc_supervisor = atoi(PQgetvalue(r, row, 21));
    f->esc_manager = atoi(PQgetvalue(r, row, 22));
    f->esc_leader = atoi(PQgetvalue(r, row, 23));
}

static const char *or_unspecified(const char *s)
{
    return s != NULL ? s : "unspecified";
}

static void set_dept(struct fact *f, const char *d)
{
    if (d != NULL && d[0] != '\0')
        snprintf(f->department, sizeof(f->department), "%s", d);
}

static void handoff(struct fact *f, const Shouwen__V1__Handoff *h)
{
    f->handed_off = true;
    if (h != NULL)
        set_dept(f, h->to_department);
}

static void resolved(struct fact *f, int64_t at_us)
{
    f->outcome = outcomes[1];
    f->responded = true;
    int64_t s = (at_us - f->registered_us) / 1000000;
    f->resolve_s = s < 0 ? 0 : s;
}

/* The short name of a protobuf enum value: VIOLATION_KIND_LATE_HANDOFF -> late_handoff. */
static void enum_short(const ProtobufCEnumDescriptor *d, int value, const char *prefix, char *out,
                       size_t outlen)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    const char *name = v != NULL ? v->name : "UNSPECIFIED";
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) == 0)
        name += pl;
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < outlen; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    out[i] = '\0';
}

/* Applies one event to its case's fact (f->exists false: a case.registered creates it). */
static void apply(struct fact *f, const Shouwen__V1__Envelope *e)
{
    if (e->event_case == EV(REGISTERED) && e->registered != NULL) {
        if (f->exists)
            return;
        const Shouwen__V1__CaseRegistered *r = e->registered;
        f->exists = true;
        f->registered_us = r->received_at != 0 ? r->received_at : e->time;
        snprintf(f->type, sizeof(f->type), "%s", or_unspecified(wf_case_type_name(r->case_type)));
        snprintf(f->channel, sizeof(f->channel), "%s", or_unspecified(wf_channel_name(r->channel)));
        snprintf(f->urgency, sizeof(f->urgency), "%s", or_unspecified(wf_urgency_name(r->urgency)));
        snprintf(f->first_responder, sizeof(f->first_responder), "%s",
                 r->first_responder != NULL ? r->first_responder : "");
        snprintf(f->department, sizeof(f->department), "%s",
                 r->department != NULL ? r->department : "");
        f->outcome = outcomes[0];
        f->resolve_s = -1;
        f->changed = true;
        return;
    }
    if (!f->exists)
        return;
    bool touched = true;
    switch (e->event_case) {
    case EV(RESOLVED_ON_SPOT):
        f->on_spot = true;
        resolved(f, e->time);
        break;
    case EV(ASSIGNED):
        handoff(f, e->assigned != NULL ? e->assigned->handoff : NULL);
        break;
    case EV(TRANSFERRED):
        handoff(f, e->transferred != NULL ? e->transferred->handoff : NULL);
        f->transfers = e->transferred != NULL && e->transferred->transfer_count > f->transfers
                           ? e->transferred->transfer_count
                           : f->transfers + 1;
        break;
    case EV(FORWARDED):
        handoff(f, e->forwarded != NULL ? e->forwarded->handoff : NULL);
        f->transfers = e->forwarded != NULL && e->forwarded->transfer_count > f->transfers
                           ? e->forwarded->transfer_count
                           : f->transfers + 1;
        break;
    case EV(RETURNED):
        f->returns++;
        if (e->returned != NULL && e->returned->handoff != NULL)
            set_dept(f, e->returned->handoff->to_department);
        break;
    case EV(ACCEPTED):
        if (e->accepted != NULL)
            set_dept(f, e->accepted->department);
        break;
    case EV(LEAD_DESIGNATED):
        if (e->lead_designated != NULL)
            set_dept(f, e->lead_designated->lead_department);
        break;
    case EV(FIRST_CONTACT):
        f->responded = true;
        break;
    case EV(RESOLVED):
        resolved(f, e->time);
        break;
    case EV(CALLBACK):
        f->called_back = true;
        if (e->callback != NULL)
            snprintf(f->satisfaction, sizeof(f->satisfaction), "%s",
                     wf_satisfaction_name(e->callback->satisfaction) != NULL
                         ? wf_satisfaction_name(e->callback->satisfaction)
                         : "");
        break;
    case EV(REOPENED):
        f->reopened++;
        f->outcome = outcomes[0];
        break;
    case EV(ESCALATED):
        if (e->escalated == NULL)
            break;
        if (e->escalated->level == SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_SUPERVISOR)
            f->esc_supervisor++;
        else if (e->escalated->level == SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_MANAGER)
            f->esc_manager++;
        else if (e->escalated->level == SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_LEADER)
            f->esc_leader++;
        break;
    case EV(CLOSED_UNRESOLVABLE):
        f->outcome = outcomes[2];
        break;
    case EV(REFERRED_OUT):
        f->outcome = outcomes[3];
        f->responded = true;
        break;
    case EV(DEADLINE_BREACHED):
        if (e->deadline_breached == NULL)
            break;
        switch (e->deadline_breached->kind) {
        case SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_HANDOFF:
            f->late_handoff = true;
            break;
        case SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_FIRST_CONTACT: /* the handler's answer */
        case SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_ANSWER:
            f->late_answer = true;
            break;
        case SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_RESOLVE:
            f->late_resolve = true;
            break;
        case SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_CALLBACK:
            f->late_callback = true;
            break;
        default:
            break;
        }
        break;
    default:
        touched = false; /* nothing here for the roll-up (and an earlier change stands) */
        break;
    }
    if (touched)
        f->changed = true;
}

/* The batch's cases by id: open addressing over indexes into facts (+1; 0 is empty). */
struct index {
    uint32_t *slot;
    size_t mask;
};

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)h;
}

static struct fact *find(const struct index *ix, struct fact *facts, const char *case_id)
{
    for (size_t i = hash_id(case_id) & ix->mask;; i = (i + 1) & ix->mask) {
        if (ix->slot[i] == 0)
            return NULL;
        if (strcmp(facts[ix->slot[i] - 1].case_id, case_id) == 0)
            return &facts[ix->slot[i] - 1];
    }
}

static void put(struct index *ix, const struct fact *facts, uint32_t k)
{
    size_t i = hash_id(facts[k].case_id) & ix->mask;
    while (ix->slot[i] != 0)
        i = (i + 1) & ix->mask;
    ix->slot[i] = k + 1;
}

static sw_err json_field(struct buf *b, const char *key, const char *val)
{
    sw_err rv = buf_printf(b, ",\"%s\":", key);
    return rv == SW_OK ? buf_json_string(b, val) : rv;
}

static sw_err fact_json(struct buf *b, const struct fact *f, bool first)
{
    sw_err rv = buf_printf(b, "%s{\"case_id\":\"%s\",\"site_id\":\"%s\",\"registered_at\":\"",
                           first ? "" : ",", f->case_id, f->site_id);
    if (rv == SW_OK)
        rv = aud_put_time(b, f->registered_us);
    if (rv == SW_OK)
        rv = buf_puts(b, "\"");
    if (rv == SW_OK)
        rv = json_field(b, "case_type", f->type);
    if (rv == SW_OK)
        rv = json_field(b, "channel", f->channel);
    if (rv == SW_OK)
        rv = json_field(b, "urgency", f->urgency);
    if (rv == SW_OK)
        rv = json_field(b, "first_responder", f->first_responder);
    if (rv == SW_OK)
        rv = json_field(b, "department", f->department);
    if (rv == SW_OK && f->resolve_s >= 0)
        rv = buf_printf(b, ",\"resolve_s\":%" PRId64, f->resolve_s);
    if (rv == SW_OK && f->satisfaction[0] != '\0')
        rv = json_field(b, "satisfaction", f->satisfaction);
    if (rv == SW_OK)
        rv = buf_printf(
            b,
            ",\"on_spot\":%s,\"outcome\":\"%s\",\"handed_off\":%s,\"responded\":%s,"
            "\"transfers\":%d,\"returns\":%d,\"late_handoff\":%s,\"late_answer\":%s,"
            "\"late_resolve\":%s,\"late_callback\":%s,\"called_back\":%s,\"reopened\":%d,"
            "\"esc_supervisor\":%d,\"esc_manager\":%d,\"esc_leader\":%d}",
            f->on_spot ? "true" : "false", f->outcome, f->handed_off ? "true" : "false",
            f->responded ? "true" : "false", f->transfers, f->returns,
            f->late_handoff ? "true" : "false", f->late_answer ? "true" : "false",
            f->late_resolve ? "true" : "false", f->late_callback ? "true" : "false",
            f->called_back ? "true" : "false", f->reopened, f->esc_supervisor, f->esc_manager,
            f->esc_leader);
    return rv;
}

/* A violation row for a breach that recorded one, or a violation.recorded. */
static sw_err violation_json(struct buf *b, const struct aud_event *x, bool first)
{
    const Shouwen__V1__Envelope *e = x->env;
    char kind[48];
    const char *staff, *dept;
    int64_t at;
    int points;
    if (e->event_case == EV(VIOLATION_RECORDED)) {
        const Shouwen__V1__ViolationRecorded *v = e->violation_recorded;
        enum_short(&shouwen__v1__violation_kind__descriptor, (int)v->kind, "VIOLATION_KIND_", kind,
                   sizeof(kind));
        staff = v->staff, dept = v->department, at = v->occurred_at ? v->occurred_at : e->time;
        points = v->penalty_points;
    } else {
        const Shouwen__V1__CaseDeadlineBreached *v = e->deadline_breached;
        enum_short(&shouwen__v1__violation_kind__descriptor, (int)v->violation_kind,
                   "VIOLATION_KIND_", kind, sizeof(kind));
        staff = v->responsible_staff, dept = v->responsible_department;
        at = v->breached_at ? v->breached_at : e->time;
        points = v->penalty_points;
    }
    sw_err rv = buf_printf(b, "%s{\"event_id\":\"%s\",\"site_id\":\"%s\",\"occurred_at\":\"",
                           first ? "" : ",", e->event_id, x->site_id);
    if (rv == SW_OK)
        rv = aud_put_time(b, at);
    if (rv == SW_OK)
        rv = buf_puts(b, "\"");
    if (rv == SW_OK && e->case_id != NULL && e->case_id[0] != '\0')
        rv = buf_printf(b, ",\"case_id\":\"%s\"", e->case_id);
    if (rv == SW_OK)
        rv = json_field(b, "kind", kind);
    if (rv == SW_OK)
        rv = json_field(b, "staff", staff != NULL ? staff : "");
    if (rv == SW_OK)
        rv = json_field(b, "department", dept != NULL ? dept : "");
    if (rv == SW_OK)
        rv = buf_printf(b, ",\"points\":%d}", points);
    return rv;
}

static bool is_violation(const Shouwen__V1__Envelope *e)
{
    if (e->event_case == EV(VIOLATION_RECORDED))
        return e->violation_recorded != NULL;
    return e->event_case == EV(DEADLINE_BREACHED) && e->deadline_breached != NULL &&
           e->deadline_breached->violation_kind !=
               SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_UNSPECIFIED;
}

static sw_err violations(PGconn *tx, const struct aud_event *ev, size_t n, char *err, size_t errlen)
{
    struct buf b;
    buf_init(&b, 64u << 20);
    sw_err rv = buf_puts(&b, "[");
    size_t m = 0;
    for (size_t i = 0; rv == SW_OK && i < n; i++)
        if (ev[i].site_id != NULL && is_violation(ev[i].env))
            rv = violation_json(&b, &ev[i], m++ == 0);
    if (rv == SW_OK)
        rv = buf_puts(&b, "]");
    if (rv != SW_OK || m == 0) {
        buf_free(&b);
        if (rv != SW_OK)
            snprintf(err, errlen, "the batch's violations do not fit in memory");
        return rv;
    }
    const char *v[] = {buf_cstr(&b)};
    PGresult *r = db_exec_fixed(
        tx,
        "INSERT INTO audit.violations (event_id, site_id, day, occurred_at, case_id, kind, staff, "
        "department, points) SELECT r.event_id, r.site_id, (r.occurred_at AT TIME ZONE "
        "s.time_zone)::date, r.occurred_at, r.case_id, r.kind, r.staff, r.department, r.points "
        "FROM json_populate_recordset(NULL::audit.violations, $1::json) r JOIN core.sites s ON "
        "s.id = r.site_id ON CONFLICT (event_id) DO NOTHING",
        1, v);
    buf_free(&b);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return db_fail_clear(tx, r, "record the violations", err, errlen);
    PQclear(r);
    return SW_OK;
}

sw_err aud_facts(struct audit *a, PGconn *tx, const struct aud_event *ev, size_t n, char *err,
                 size_t errlen)
{
    struct fact *facts = calloc(n > 0 ? n : 1, sizeof(*facts));
    struct index ix = {.mask = 1};
    while (ix.mask < 2 * n)
        ix.mask <<= 1;
    ix.slot = calloc(ix.mask, sizeof(*ix.slot));
    ix.mask--;
    if (facts == NULL || ix.slot == NULL) {
        free(facts);
        free(ix.slot);
        snprintf(err, errlen, "out of memory");
        return SW_ENOMEM;
    }
    size_t nf = 0;
    struct buf ids;
    buf_init(&ids, 64u << 20);
    sw_err rv = buf_puts(&ids, "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const Shouwen__V1__Envelope *e = ev[i].env;
        if (ev[i].site_id == NULL || e->case_id == NULL || strlen(e->case_id) != 36 ||
            find(&ix, facts, e->case_id) != NULL)
            continue;
        snprintf(facts[nf].case_id, sizeof(facts[nf].case_id), "%s", e->case_id);
        facts[nf].site_id = ev[i].site_id;
        put(&ix, facts, (uint32_t)nf);
        rv = buf_printf(&ids, "%s%s", nf++ ? "," : "", e->case_id);
    }
    if (rv == SW_OK)
        rv = buf_puts(&ids, "}");
    if (rv == SW_OK && nf > 0) {
        const char *v[] = {buf_cstr(&ids)};
        PGresult *r = db_exec_fixed(
            tx,
            "SELECT case_id::text, (extract(epoch FROM registered_at) * 1000000)::bigint, "
            "case_type, channel, urgency, first_responder, department, on_spot, outcome, "
            "coalesce(resolve_s, -1), handed_off, responded, transfers, returns, late_handoff, "
            "late_answer, late_resolve, late_callback, called_back, coalesce(satisfaction, ''), "
            "reopened, esc_supervisor, esc_manager, esc_leader FROM audit.case_facts WHERE "
            "case_id = ANY($1::uuid[])",
            1, v);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rv = db_fail_clear(tx, r, "read the case roll-ups", err, errlen);
        } else {
            for (int row = 0; row < PQntuples(r); row++) {
                struct fact *f = find(&ix, facts, PQgetvalue(r, row, 0));
                if (f != NULL)
                    load_row(f, r, row);
            }
            PQclear(r);
        }
    }
    buf_free(&ids);
    size_t missing = 0;
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const Shouwen__V1__Envelope *e = ev[i].env;
        if (ev[i].site_id == NULL || e->case_id == NULL)
            continue;
        struct fact *f = find(&ix, facts, e->case_id);
        if (f == NULL)
            continue;
        bool had = f->exists;
        apply(f, e);
        if (!had && !f->exists && e->event_case != EV(VIOLATION_RECORDED))
            missing++;
    }
    /* the new rows ($1) and those read ($2), each a JSON array */
    struct buf rows[2];
    size_t m[2] = {0, 0};
    for (int j = 0; j < 2; j++) {
        buf_init(&rows[j], 64u << 20);
        if (rv == SW_OK)
            rv = buf_puts(&rows[j], "[");
    }
    for (size_t k = 0; rv == SW_OK && k < nf; k++)
        if (facts[k].exists && facts[k].changed) {
            int j = facts[k].stored ? 1 : 0;
            rv = fact_json(&rows[j], &facts[k], m[j]++ == 0);
        }
    for (int j = 0; j < 2 && rv == SW_OK; j++)
        rv = buf_puts(&rows[j], "]");
    if (rv == SW_OK && m[0] + m[1] > 0) {
        /*
         * A new case's row is inserted, a known one updated: no ON CONFLICT,
         * whose every row is a speculative insertion (a probe, a token, a
         * confirmation in the WAL) or, on a conflict, a probe and a row lock
         * before the update.  Only the consumer that owns the case's
         * partition writes its row, so what the read found is what is there;
         * if not, the counts differ (or the key refuses the insert) and the
         * batch is tried again, reading afresh.
         */
        const char *v[] = {buf_cstr(&rows[0]), buf_cstr(&rows[1])};
        PGresult *r = db_exec_fixed(
            tx,
            "WITH i AS (INSERT INTO audit.case_facts SELECT r.case_id, r.site_id, "
            "(r.registered_at AT TIME ZONE s.time_zone)::date, r.registered_at, r.case_type, "
            "r.channel, r.urgency, r.first_responder, r.department, r.on_spot, r.outcome, "
            "r.resolve_s, r.handed_off, r.responded, r.transfers, r.returns, r.late_handoff, "
            "r.late_answer, r.late_resolve, r.late_callback, r.called_back, r.satisfaction, "
            "r.reopened, r.esc_supervisor, r.esc_manager, r.esc_leader FROM "
            "json_populate_recordset(NULL::audit.case_facts, $1::json) r JOIN core.sites s ON "
            "s.id = r.site_id RETURNING 1), u AS (UPDATE audit.case_facts f SET department = "
            "r.department, on_spot = r.on_spot, outcome = r.outcome, resolve_s = r.resolve_s, "
            "handed_off = r.handed_off, responded = r.responded, transfers = r.transfers, "
            "returns = r.returns, late_handoff = r.late_handoff, late_answer = r.late_answer, "
            "late_resolve = r.late_resolve, late_callback = r.late_callback, called_back = "
            "r.called_back, satisfaction = r.satisfaction, reopened = r.reopened, "
            "esc_supervisor = r.esc_supervisor, esc_manager = r.esc_manager, esc_leader = "
            "r.esc_leader FROM json_populate_recordset(NULL::audit.case_facts, $2::json) r "
            "WHERE f.case_id = r.case_id RETURNING 1) SELECT (SELECT count(*) FROM i), "
            "(SELECT count(*) FROM u)",
            2, v);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            rv = db_fail_clear(tx, r, "write the case roll-ups", err, errlen);
        } else if (strtoull(PQgetvalue(r, 0, 0), NULL, 10) != m[0] ||
                   strtoull(PQgetvalue(r, 0, 1), NULL, 10) != m[1]) {
            snprintf(err, errlen,
                     "write the case roll-ups: %s of %zu new rows inserted, %s of %zu read rows "
                     "updated",
                     PQgetvalue(r, 0, 0), m[0], PQgetvalue(r, 0, 1), m[1]);
            PQclear(r);
            rv = SW_ECONFLICT;
        } else {
            PQclear(r);
        }
    } else if (rv != SW_OK && err[0] == '\0') {
        snprintf(err, errlen, "the batch's roll-ups do not fit in memory");
    }
    buf_free(&rows[0]);
    buf_free(&rows[1]);
    free(facts);
    free(ix.slot);
    if (rv == SW_OK)
        rv = violations(tx, ev, n, err, errlen);
    if (rv == SW_OK)
        a->pending_no_facts += missing;
    return rv;
}
