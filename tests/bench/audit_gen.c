/*
 * audit_gen - a synthetic but lawful history of cases, written to the bus
 * outbox as the services would write it, for the audit test and bench.
 *
 *     audit_gen CASES SEED PLAN [DAYS]
 *
 * Each case of site SH01 is registered at 04:00-05:00 UTC (noon in
 * Shanghai, so its local day is its UTC day) on one of the last DAYS
 * (default 20) days, and then lives one of the paths of DOMAIN.md chosen
 * by a seeded generator: resolved on the spot; or transferred (sometimes
 * late, sometimes returned and sent on again), accepted, contacted (or
 * late to answer), resolved (or closed as unresolvable, or referred out,
 * or left open), called back with a satisfaction (or late), escalated;
 * complaints now and then counted as conflict escalations.  PLAN gets the
 * truth, one line per case and per violation (see the header it writes),
 * from which the test computes the report's figures on its own.
 * Settings: SHOUWEN_DATABASE_URL.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "workflow.h"

#define EV(x) SHOUWEN__V1__ENVELOPE__EVENT_##x
#define BATCH 1000

static uint64_t rng;
static unsigned pick(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}
static bool chance(unsigned pct)
{
    return pick(100) < pct;
}

/* The site's local day (Asia/Shanghai, UTC+8 all year) of an instant. */
static const char *local_day(int64_t us)
{
    static char out[16];
    time_t t = (time_t)(us / 1000000 + (int64_t)8 * 3600);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, sizeof(out), "%Y-%m-%d", &tm);
    return out;
}

static PGconn *db;
static struct bus_outbox *ob;
static long written;

static void flush(void)
{
    char err[512];
    if (bus_outbox_len(ob) == 0)
        return;
    PGresult *r = PQexec(db, "BEGIN");
    PQclear(r);
    if (bus_outbox_write(ob, db, err, sizeof(err)) != SW_OK) {
        fprintf(stderr, "audit_gen: %s\n", err);
        exit(1);
    }
    r = PQexec(db, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "audit_gen: %s", PQerrorMessage(db));
        exit(1);
    }
    PQclear(r);
    written += (long)bus_outbox_len(ob);
    bus_outbox_clear(ob);
}

struct life {
    char id[37];
    int64_t at; /* the time of the next event */
    int64_t version;
};

static void emit(struct life *c, Shouwen__V1__Envelope *env, const char *type, const char *actor)
{
    Shouwen__V1__Actor a = SHOUWEN__V1__ACTOR__INIT;
    a.staff_code = (char *)actor;
    env->type = (char *)type;
    env->site = (char *)"SH01";
    env->case_id = c->id;
    env->case_version = ++c->version;
    env->time = c->at;
    env->actor = &a;
    env->event_id = (char *)"";
    if (bus_outbox_add(ob, env) != SW_OK) {
        fprintf(stderr, "audit_gen: could not stage %s\n", type);
        exit(1);
    }
    if (bus_outbox_len(ob) >= BATCH)
        flush();
}

static void breach(struct life *c, Shouwen__V1__DeadlineKind kind, Shouwen__V1__ViolationKind vk,
                   const char *staff, const char *dept, int points)
{
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    Shouwen__V1__CaseDeadlineBreached b = SHOUWEN__V1__CASE_DEADLINE_BREACHED__INIT;
    b.kind = kind;
    b.due_at = c->at - 1000000;
    b.breached_at = c->at;
    b.responsible_staff = (char *)staff;
    b.responsible_department = (char *)dept;
    b.violation_kind = vk;
    b.penalty_points = points;
    env.event_case = EV(DEADLINE_BREACHED);
    env.deadline_breached = &b;
    emit(c, &env, "case.deadline_breached", "");
}

static void handoff(struct life *c, const char *type, const char *from, const char *fdept,
                    const char *to_dept, int count)
{
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    Shouwen__V1__Handoff h = SHOUWEN__V1__HANDOFF__INIT;
    Shouwen__V1__CaseTransferred t = SHOUWEN__V1__CASE_TRANSFERRED__INIT;
    Shouwen__V1__CaseReturned rt = SHOUWEN__V1__CASE_RETURNED__INIT;
    h.from_staff = (char *)from;
    h.from_department = (char *)fdept;
    h.to_department = (char *)to_dept;
    h.reason = (char *)"generated";
    h.signed_by = (char *)from;
    h.time = c->at;
    if (strcmp(type, "case.returned") == 0) {
        rt.handoff = &h;
        env.event_case = EV(RETURNED);
        env.returned = &rt;
    } else {
        t.handoff = &h;
        t.transfer_count = count;
        env.event_case = EV(TRANSFERRED);
        env.transferred = &t;
    }
    emit(c, &env, type, from);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: audit_gen CASES SEED PLAN [DAYS]\n");
        return 2;
    }
    long ncases = atol(argv[1]);
    rng = (uint64_t)atoll(argv[2]) * 2654435761u + 88172645463325252ull;
    int days = argc == 5 ? atoi(argv[4]) : 20;
    FILE *plan = fopen(argv[3], "w");
    db = PQconnectdb(getenv("SHOUWEN_DATABASE_URL") ? getenv("SHOUWEN_DATABASE_URL") : "");
    uint32_t parts = 0;
    char err[512];
    if (plan == NULL || PQstatus(db) != CONNECTION_OK ||
        bus_partitions(db, &parts, err, sizeof(err)) != SW_OK ||
        bus_outbox_alloc(&ob, parts) != SW_OK) {
        fprintf(stderr, "audit_gen: cannot start: %s\n", PQerrorMessage(db));
        return 1;
    }
    static const char *const types[] = {"consultation", "complaint", "repair", "help"};
    static const char *const channels[] = {"phone", "visit", "web", "hotline"};
    static const char *const fr[][2] = {
        {"li.desk", "front-desk"}, {"wang.guard", "security"}, {"chen.cleaner", "cleaning"}};
    static const char *const depts[][2] = {
        {"engineering", "zhou.eng"}, {"security", "zheng.sec"}, {"cleaning", "feng.clean"}};
    static const char *const sats[] = {"satisfied", "basically_satisfied", "unsatisfied",
                                       "unreachable"};
    fprintf(plan, "# C|case|day|first_responder|department|type|channel|on_spot|outcome|resolve_s|"
                  "handed_off|responded|transfers|returns|late_handoff|late_answer|late_resolve|"
                  "late_callback|called_back|satisfaction|esc_supervisor|esc_manager\n"
                  "# V|day|staff|department|kind|points\n");
    time_t now = time(NULL);
    int64_t midnight = (int64_t)(now - now % 86400);
    for (long i = 0; i < ncases; i++) {
        struct life c = {.version = 0};
        bus_uuid_v7(c.id);
        int d = 1 + (int)pick((unsigned)days); /* never today: the test registers today */
        int64_t reg = (midnight - (int64_t)d * 86400 + (int64_t)4 * 3600 + pick(3600)) * 1000000;
        c.at = reg;
        time_t day_t = (time_t)(reg / 1000000);
        struct tm tm;
        gmtime_r(&day_t, &tm);
        char day[16];
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        unsigned ti = pick(4), ci = pick(4), fi = pick(3);
        const char *who = fr[fi][0], *dept = fr[fi][1];
        Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
        Shouwen__V1__CaseRegistered r = SHOUWEN__V1__CASE_REGISTERED__INIT;
        char number[40];
        snprintf(number, sizeof(number), "SH01-%.4s%.2s%.2s-G%07ld", day, day + 5, day + 8, i);
        r.number = number;
        wf_case_type_parse(types[ti], &r.case_type);
        wf_channel_parse(channels[ci], &r.channel);
        r.urgency = SHOUWEN__V1__URGENCY__URGENCY_NORMAL;
        r.subject = (char *)"generated";
        r.first_responder = (char *)who;
        r.department = (char *)dept;
        r.received_at = reg;
        env.event_case = EV(REGISTERED);
        env.registered = &r;
        emit(&c, &env, "case.registered", who);
        bool on_spot = chance(25), handed = false, responded = false, late_h = false,
             late_a = false, late_r = false, late_cb = false, called = false;
        const char *outcome = "open", *sat = "", *cur = dept;
        int64_t resolve_s = -1;
        int transfers = 0, returns = 0, esc_sup = 0, esc_mgr = 0;
        if (on_spot) {
            c.at += 60000000;
            Shouwen__V1__Envelope e2 = SHOUWEN__V1__ENVELOPE__INIT;
            Shouwen__V1__CaseResolvedOnSpot os = SHOUWEN__V1__CASE_RESOLVED_ON_SPOT__INIT;
            os.result = (char *)"answered";
            os.resolved_by = (char *)who;
            e2.event_case = EV(RESOLVED_ON_SPOT);
            e2.resolved_on_spot = &os;
            emit(&c, &e2, "case.resolved_on_spot", who);
            outcome = "resolved", responded = true, resolve_s = 60;
        } else {
            unsigned di = pick(3);
            if (chance(15)) {
                c.at += 3600000000LL;
                late_h = true;
                breach(&c, SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_HANDOFF,
                       SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_HANDOFF, who, dept, 2);
                fprintf(plan, "V|%s|%s|%s|late_handoff|2\n", local_day(c.at), who, dept);
            }
            c.at += 600000000;
            handoff(&c, "case.transferred", who, dept, depts[di][0], ++transfers);
            handed = true, cur = depts[di][0];
            if (chance(10)) {
                c.at += 600000000;
                handoff(&c, "case.returned", depts[di][1], depts[di][0], dept, 0);
                returns++; /* back with the first responder's department, then on: */
                di = (di + 1) % 3;
                c.at += 600000000;
                handoff(&c, "case.transferred", who, dept, depts[di][0], ++transfers);
                cur = depts[di][0];
            }
            if (chance(70)) {
                c.at += 1800000000;
                Shouwen__V1__Envelope e3 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__CaseFirstContact fc = SHOUWEN__V1__CASE_FIRST_CONTACT__INIT;
                fc.handler = (char *)depts[di][1];
                fc.contacted_at = c.at;
                e3.event_case = EV(FIRST_CONTACT);
                e3.first_contact = &fc;
                emit(&c, &e3, "case.first_contact", depts[di][1]);
                responded = true;
            }
            if (chance(10)) {
                c.at += 86400000000LL;
                late_a = true;
                breach(&c, SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_FIRST_CONTACT,
                       SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_UNSPECIFIED, depts[di][1],
                       depts[di][0], 0);
            }
            if (chance(10)) {
                c.at += 1000000;
                esc_sup++;
                Shouwen__V1__Envelope e4 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__CaseEscalated es = SHOUWEN__V1__CASE_ESCALATED__INIT;
                es.from_level = SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_NONE;
                es.level = SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_SUPERVISOR;
                es.to_staff = (char *)"sun.sup";
                e4.event_case = EV(ESCALATED);
                e4.escalated = &es;
                emit(&c, &e4, "case.escalated", "");
                if (chance(30)) {
                    esc_mgr++;
                    es.from_level = es.level;
                    es.level = SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_MANAGER;
                    es.to_staff = (char *)"qian.mgr";
                    emit(&c, &e4, "case.escalated", "");
                }
            }
            if (ti == 1 && chance(20)) {
                Shouwen__V1__Envelope e5 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__ViolationRecorded vr = SHOUWEN__V1__VIOLATION_RECORDED__INIT;
                char vid[37];
                bus_uuid_v7(vid);
                vr.violation_id = vid;
                vr.kind = SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_CONFLICT_ESCALATION;
                vr.department = (char *)depts[di][0];
                vr.occurred_at = c.at;
                vr.penalty_points = 5;
                e5.event_case = EV(VIOLATION_RECORDED);
                e5.violation_recorded = &vr;
                emit(&c, &e5, "violation.recorded", "");
                fprintf(plan, "V|%s||%s|conflict_escalation|5\n", local_day(c.at), depts[di][0]);
            }
            unsigned o = pick(100);
            if (o < 60) {
                int64_t took = 600 + pick(400000);
                c.at = reg + took * 1000000;
                if (chance(20)) {
                    late_r = true;
                    breach(&c, SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_RESOLVE,
                           SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_RESOLUTION,
                           depts[di][1], depts[di][0], 3);
                    fprintf(plan, "V|%s|%s|%s|late_resolution|3\n", local_day(c.at), depts[di][1],
                            depts[di][0]);
                }
                Shouwen__V1__Envelope e6 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__CaseResolved rs = SHOUWEN__V1__CASE_RESOLVED__INIT;
                rs.result = (char *)"fixed";
                rs.resolved_by = (char *)depts[di][1];
                e6.event_case = EV(RESOLVED);
                e6.resolved = &rs;
                emit(&c, &e6, "case.resolved", depts[di][1]);
                outcome = "resolved", responded = true, resolve_s = took;
                if (chance(10)) {
                    c.at += 2 * 86400000000LL;
                    late_cb = true;
                    breach(&c, SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_CALLBACK,
                           SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_NO_CALLBACK, who, dept, 1);
                    fprintf(plan, "V|%s|%s|%s|no_callback|1\n", local_day(c.at), who, dept);
                }
                if (chance(80)) {
                    c.at += 3600000000LL;
                    Shouwen__V1__Envelope e7 = SHOUWEN__V1__ENVELOPE__INIT;
                    Shouwen__V1__CaseCallback cb = SHOUWEN__V1__CASE_CALLBACK__INIT;
                    sat = sats[pick(4)];
                    wf_satisfaction_parse(sat, &cb.satisfaction);
                    cb.called_at = c.at;
                    e7.event_case = EV(CALLBACK);
                    e7.callback = &cb;
                    emit(&c, &e7, "case.callback", who);
                    called = true;
                }
            } else if (o < 65) {
                c.at += 86400000000LL;
                Shouwen__V1__Envelope e8 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__CaseClosedUnresolvable cu =
                    SHOUWEN__V1__CASE_CLOSED_UNRESOLVABLE__INIT;
                cu.reason = (char *)"outside our remit";
                cu.closed_by = (char *)"qian.mgr";
                e8.event_case = EV(CLOSED_UNRESOLVABLE);
                e8.closed_unresolvable = &cu;
                emit(&c, &e8, "case.closed_unresolvable", "qian.mgr");
                outcome = "unresolvable";
            } else if (o < 70) {
                c.at += 3600000000LL;
                Shouwen__V1__Envelope e9 = SHOUWEN__V1__ENVELOPE__INIT;
                Shouwen__V1__CaseReferredOut ro = SHOUWEN__V1__CASE_REFERRED_OUT__INIT;
                ro.referred_to = (char *)"the water company";
                ro.guidance = (char *)"call 96116";
                e9.event_case = EV(REFERRED_OUT);
                e9.referred_out = &ro;
                emit(&c, &e9, "case.referred_out", "sun.sup");
                outcome = "referred_out", responded = true;
            }
        }
        fprintf(plan, "C|%s|%s|%s|%s|%s|%s|%d|%s|%" PRId64 "|%d|%d|%d|%d|%d|%d|%d|%d|%d|%s|%d|%d\n",
                c.id, day, who, cur, types[ti], channels[ci], on_spot, outcome, resolve_s, handed,
                responded, transfers, returns, late_h, late_a, late_r, late_cb, called, sat,
                esc_sup, esc_mgr);
    }
    flush();
    fclose(plan);
    bus_outbox_free(ob);
    PQfinish(db);
    printf("audit_gen: %ld cases, %ld events\n", ncases, written);
    return 0;
}
