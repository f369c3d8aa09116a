/*
 * clocks_test.c - the deadlines of a case through its life: registered,
 * transferred, appointed, waiting and resumed (the time already used is
 * kept), forwarded, resolved, called back unsatisfied and reopened, an
 * emergency climbing rung by rung until acknowledged; breached deadlines
 * never start again within their episode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clocks.h"

#define MIN      (60LL * 1000000)
#define H        (60 * MIN)
#define DAY      (24 * H)
#define ST(x)    SHOUWEN__V1__CASE_STATUS__CASE_STATUS_##x
#define LEVEL(x) SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_##x

static struct calendar cal;
static struct clk_policy pol;

/* 2026-11-23 is a Monday; the calendar is UTC, 09:00-18:00, Monday to Friday. */
static int64_t at(int day, int h, int m)
{
    return ((int64_t)cal_days_from_civil(2026, 11, day) * 86400 + (int64_t)h * 3600 +
            (int64_t)m * 60) *
           1000000;
}

static int setup(void **state)
{
    (void)state;
    char err[200];
    if (cal_init(&cal, "UTC", "09:00-18:00", 1 << 6 | 1 << 7, err, sizeof(err)) != SW_OK)
        return -1;
    clk_defaults(&pol);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cal_free(&cal);
    return 0;
}

static struct wf_case fresh(void)
{
    struct wf_case c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "00000000-0000-4000-8000-000000000001");
    snprintf(c.site, sizeof(c.site), "SH01");
    c.version = 1;
    c.status = ST(REGISTERED);
    c.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPAIR;
    c.urgency = SHOUWEN__V1__URGENCY__URGENCY_NORMAL;
    snprintf(c.first_responder, sizeof(c.first_responder), "li.desk");
    snprintf(c.owner, sizeof(c.owner), "li.desk");
    snprintf(c.department, sizeof(c.department), "front-desk");
    c.escalation_level = LEVEL(NONE);
    c.received_at = c.created_at = at(23, 10, 0);
    return c;
}

struct world {
    struct wf_case c;
    struct clk_marks m;
    struct clk_pause pauses[8];
    struct clk_row rows[CLK_KINDS];
    enum clk_change ch[CLK_KINDS];
};

/* Plans at `now` and stores the result as the next run's current rows. */
static void step(struct world *w, int64_t now)
{
    struct clk_row next[CLK_KINDS];
    w->m.pauses = w->pauses;
    clk_plan(&w->c, &pol, &cal, &w->m, now, w->rows, next, w->ch);
    memcpy(w->rows, next, sizeof(next));
}

static void test_life_of_a_case(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    w.c = fresh();

    /* registered by the front desk at 10:00 */
    step(&w, at(23, 10, 0));
    assert_int_equal(w.ch[CLK_HANDOFF], CLK_NEW);
    assert_int_equal(w.rows[CLK_HANDOFF].due_at, at(23, 11, 0));
    assert_string_equal(w.rows[CLK_HANDOFF].episode, "R:li.desk");
    assert_int_equal(w.ch[CLK_RESOLVE], CLK_NEW);
    assert_int_equal(w.rows[CLK_RESOLVE].due_at, at(30, 10, 0));
    assert_int_equal(w.rows[CLK_SUPERVISOR].due_at, at(25, 10, 0));
    assert_int_equal(w.rows[CLK_MANAGER].due_at, at(30, 10, 0));
    assert_false(w.rows[CLK_APPOINT].exists);
    assert_false(w.rows[CLK_FIRST_CONTACT].exists);
    assert_false(w.rows[CLK_CALLBACK].exists);
    assert_false(w.rows[CLK_EMERGENCY_ACK].exists);
    assert_int_equal(w.rows[CLK_HANDOFF].limit_us, H);
    assert_false(w.rows[CLK_HANDOFF].working);

    /* the same state again: nothing to write */
    step(&w, at(23, 10, 1));
    for (int k = 0; k < CLK_KINDS; k++)
        assert_int_equal(w.ch[k], CLK_SAME);

    /* transferred to engineering at 10:20: the handoff is met, the appointment clock runs */
    w.c.status = ST(TRANSFERRED);
    snprintf(w.c.owner, sizeof(w.c.owner), "zhou.eng");
    snprintf(w.c.department, sizeof(w.c.department), "engineering");
    w.m.holder = at(23, 10, 20);
    step(&w, at(23, 10, 20));
    assert_int_equal(w.ch[CLK_HANDOFF], CLK_MET);
    assert_int_equal(w.rows[CLK_HANDOFF].met_at, at(23, 10, 20));
    assert_int_equal(w.ch[CLK_APPOINT], CLK_NEW);
    assert_int_equal(w.rows[CLK_APPOINT].due_at, at(23, 11, 20));
    assert_string_equal(w.rows[CLK_APPOINT].episode, "T:engineering:zhou.eng");
    assert_int_equal(w.ch[CLK_RESOLVE], CLK_SAME);

    /* forwarded to security at 10:40: a new episode of the appointment clock */
    snprintf(w.c.owner, sizeof(w.c.owner), "zheng.sec");
    snprintf(w.c.department, sizeof(w.c.department), "security");
    w.m.holder = at(23, 10, 40);
    step(&w, at(23, 10, 40));
    assert_int_equal(w.ch[CLK_APPOINT], CLK_NEW);
    assert_int_equal(w.rows[CLK_APPOINT].due_at, at(23, 11, 40));

    /* a handler appointed at 17:00: 1 working day to contact the customer, to 17:00 Tuesday */
    w.c.status = ST(ACCEPTED);
    snprintf(w.c.owner, sizeof(w.c.owner), "wang.guard");
    w.m.holder = at(23, 17, 0);
    step(&w, at(23, 17, 0));
    assert_int_equal(w.ch[CLK_APPOINT], CLK_MET);
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_NEW);
    assert_int_equal(w.rows[CLK_FIRST_CONTACT].due_at, at(24, 17, 0));
    assert_true(w.rows[CLK_FIRST_CONTACT].working);
    assert_int_equal(w.rows[CLK_FIRST_CONTACT].limit_us, 9 * H);

    /* waiting for the customer from 17:30 Monday: every clock pauses */
    w.c.status = ST(WAITING);
    w.c.status_before_waiting = ST(ACCEPTED);
    w.c.waiting_since = at(23, 17, 30);
    step(&w, at(23, 17, 30));
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_UPDATE);
    assert_int_equal(w.rows[CLK_FIRST_CONTACT].due_at, 0);
    assert_int_equal(w.rows[CLK_RESOLVE].due_at, 0);
    assert_int_equal(w.rows[CLK_SUPERVISOR].due_at, 0);
    assert_int_equal(w.rows[CLK_MANAGER].due_at, 0);
    /* its mark arriving changes nothing */
    w.pauses[0] = (struct clk_pause){at(23, 17, 30), 0};
    w.m.npauses = 1;
    step(&w, at(23, 17, 31));
    for (int k = 0; k < CLK_KINDS; k++)
        assert_int_equal(w.ch[k], CLK_SAME);

    /* resumed at 10:00 Wednesday: the time already used is kept */
    w.c.status = ST(ACCEPTED);
    w.c.waiting_since = 0;
    w.pauses[0].to = at(25, 10, 0);
    step(&w, at(25, 10, 0));
    /* 30 working minutes used of 9 h: 8 h 30 left from Wednesday 10:00 is Thursday 09:30 */
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_UPDATE);
    assert_int_equal(w.rows[CLK_FIRST_CONTACT].due_at, at(26, 9, 30));
    /* calendar clocks move by the whole pause: 40 h 30 */
    assert_int_equal(w.rows[CLK_RESOLVE].due_at, at(30, 10, 0) + 40 * H + 30 * MIN);
    assert_int_equal(w.rows[CLK_SUPERVISOR].due_at, at(25, 10, 0) + 40 * H + 30 * MIN);
    assert_int_equal(w.rows[CLK_FIRST_CONTACT].started_at, at(23, 17, 0));

    /* the customer contacted: that clock is met */
    w.c.status = ST(IN_PROGRESS);
    w.c.first_contact_at = at(25, 11, 0);
    step(&w, at(25, 11, 0));
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_MET);

    /* the supervisor's deadline was breached (escalation fired it) and the case climbed */
    w.rows[CLK_SUPERVISOR].breached_at = w.rows[CLK_SUPERVISOR].due_at;
    w.c.escalation_level = LEVEL(SUPERVISOR);
    w.m.level = at(26, 23, 0);
    step(&w, at(26, 23, 0));
    assert_int_equal(w.ch[CLK_SUPERVISOR], CLK_SAME); /* breached stays breached */
    assert_int_equal(w.rows[CLK_SUPERVISOR].met_at, 0);
    assert_int_equal(w.ch[CLK_MANAGER], CLK_SAME);

    /* resolved on Friday at 12:00: the callback clock runs, the open clocks are met */
    w.c.status = ST(RESOLVED);
    w.c.resolved_at = at(27, 12, 0);
    step(&w, at(27, 12, 0));
    assert_int_equal(w.ch[CLK_RESOLVE], CLK_MET);
    assert_int_equal(w.ch[CLK_MANAGER], CLK_MET);
    assert_int_equal(w.ch[CLK_SUPERVISOR], CLK_SAME);
    assert_int_equal(w.ch[CLK_CALLBACK], CLK_NEW);
    assert_int_equal(w.rows[CLK_CALLBACK].due_at, at(29, 12, 0));

    /* called back unsatisfied on Saturday: reopened, the open clocks start again */
    w.c.status = ST(IN_PROGRESS);
    w.m.reopened = at(28, 9, 0);
    step(&w, at(28, 9, 0));
    assert_int_equal(w.ch[CLK_CALLBACK], CLK_MET);
    assert_int_equal(w.ch[CLK_RESOLVE], CLK_NEW);
    assert_int_equal(w.rows[CLK_RESOLVE].due_at, at(28, 9, 0) + 7 * DAY);
    assert_int_equal(w.ch[CLK_MANAGER], CLK_NEW);
    /* at the supervisor's rung already: that clock does not run again */
    assert_int_equal(w.ch[CLK_SUPERVISOR], CLK_SAME);
    assert_int_equal(w.rows[CLK_SUPERVISOR].breached_at, at(25, 10, 0) + 40 * H + 30 * MIN);

    /* closed: everything stops; a breached clock stays breached */
    w.c.status = ST(CLOSED);
    step(&w, at(30, 9, 0));
    assert_int_equal(w.ch[CLK_RESOLVE], CLK_MET);
    assert_int_equal(w.ch[CLK_MANAGER], CLK_MET);
    assert_int_equal(w.ch[CLK_SUPERVISOR], CLK_SAME);
    step(&w, at(30, 9, 1));
    for (int k = 0; k < CLK_KINDS; k++)
        assert_int_equal(w.ch[k], CLK_SAME);
}

static void test_returned_and_on_the_spot(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    w.c.owner[0] = '\0'; /* from an external system: no one holds it yet */
    step(&w, at(23, 10, 0));
    assert_string_equal(w.rows[CLK_HANDOFF].episode, "R:");
    /* assigned to a technician, who returns it at 15:00: back to no one, a new handoff */
    w.c.status = ST(ASSIGNED);
    snprintf(w.c.owner, sizeof(w.c.owner), "wu.tech");
    w.m.holder = at(23, 10, 5);
    step(&w, at(23, 10, 5));
    assert_int_equal(w.ch[CLK_HANDOFF], CLK_MET);
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_NEW);
    w.c.status = ST(REGISTERED);
    w.c.owner[0] = '\0';
    w.m.holder = at(23, 15, 0);
    step(&w, at(23, 15, 0));
    assert_int_equal(w.ch[CLK_FIRST_CONTACT], CLK_MET);
    assert_int_equal(w.ch[CLK_HANDOFF], CLK_NEW);
    assert_int_equal(w.rows[CLK_HANDOFF].due_at, at(23, 16, 0));

    /* resolved on the spot: no handoff clock at all, no callback due */
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    w.c.status = ST(CLOSED);
    w.c.resolved_on_spot = true;
    step(&w, at(23, 10, 0));
    for (int k = 0; k < CLK_KINDS; k++) {
        assert_int_equal(w.ch[k], CLK_SAME);
        assert_false(w.rows[k].exists);
    }
}

static void test_emergency_ladder(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    w.c.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY;
    step(&w, at(23, 10, 0));
    assert_int_equal(w.ch[CLK_EMERGENCY_ACK], CLK_NEW);
    assert_string_equal(w.rows[CLK_EMERGENCY_ACK].episode, "E:none");
    assert_int_equal(w.rows[CLK_EMERGENCY_ACK].due_at, at(23, 10, 5));
    assert_int_equal(clk_rung(CLK_EMERGENCY_ACK, w.c.escalation_level), LEVEL(SUPERVISOR));
    const Shouwen__V1__EscalationLevel rungs[] = {LEVEL(SUPERVISOR), LEVEL(MANAGER)};
    for (int i = 0; i < 2; i++) {
        w.rows[CLK_EMERGENCY_ACK].breached_at = w.rows[CLK_EMERGENCY_ACK].due_at;
        int64_t t = w.rows[CLK_EMERGENCY_ACK].due_at + 200000; /* fired 0.2 s late */
        w.c.escalation_level = rungs[i];
        w.m.level = t;
        step(&w, t);
        assert_int_equal(w.ch[CLK_EMERGENCY_ACK], CLK_NEW);
        assert_int_equal(w.rows[CLK_EMERGENCY_ACK].due_at, t + 5 * MIN);
        assert_int_equal(w.rows[CLK_EMERGENCY_ACK].breached_at, 0);
    }
    assert_string_equal(w.rows[CLK_EMERGENCY_ACK].episode, "E:manager");
    assert_int_equal(clk_rung(CLK_EMERGENCY_ACK, w.c.escalation_level), LEVEL(LEADER));
    /* acknowledged: the alert stops climbing */
    w.c.emergency_acknowledged_at = at(23, 10, 13);
    step(&w, at(23, 10, 13));
    assert_int_equal(w.ch[CLK_EMERGENCY_ACK], CLK_MET);
    /* at the top, nothing is left to climb to */
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    w.c.urgency = SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY;
    w.c.escalation_level = LEVEL(LEADER);
    step(&w, at(23, 10, 0));
    assert_false(w.rows[CLK_EMERGENCY_ACK].exists);
    assert_false(w.rows[CLK_SUPERVISOR].exists);
    assert_false(w.rows[CLK_MANAGER].exists);
    assert_true(w.rows[CLK_RESOLVE].exists);
    assert_int_equal(clk_rung(CLK_EMERGENCY_ACK, LEVEL(LEADER)), LEVEL(UNSPECIFIED));
}

static void test_policy_changes_and_limits(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    step(&w, at(23, 10, 0));
    /* the site shortens its handoff limit to 30 working minutes: the pending deadline moves */
    struct clk_policy saved = pol;
    pol.limit[CLK_HANDOFF] = (struct clk_limit){0, 30 * MIN, true};
    step(&w, at(23, 10, 10));
    assert_int_equal(w.ch[CLK_HANDOFF], CLK_UPDATE);
    assert_int_equal(w.rows[CLK_HANDOFF].due_at, at(23, 10, 30));
    assert_true(w.rows[CLK_HANDOFF].working);
    /* registered on Friday evening, 30 working minutes are due on Monday 09:30 */
    memset(&w, 0, sizeof(w));
    w.c = fresh();
    w.c.received_at = w.c.created_at = at(27, 19, 0);
    step(&w, at(27, 19, 0));
    assert_int_equal(w.rows[CLK_HANDOFF].due_at, at(30, 9, 30));
    pol = saved;

    struct clk_limit l = {2, 3 * H, true};
    assert_int_equal(clk_limit_us(&l, &cal), (2 * 9 + 3) * H /* two days of 9 h, and 3 h */);
    l.working = false;
    assert_int_equal(clk_limit_us(&l, &cal), 2 * DAY + 3 * H);

    /* pauses: one before the clock ran is ignored; one inside it is skipped */
    struct clk_pause ps[] = {{at(23, 8, 0), at(23, 9, 30)}, {at(23, 11, 0), at(23, 13, 0)}};
    struct clk_marks m = {.pauses = ps, .npauses = 2};
    assert_int_equal(clk_due(&cal, at(23, 10, 0), 2 * H, false, &m), at(23, 14, 0));
    assert_int_equal(clk_due(&cal, at(23, 10, 0), 30 * MIN, false, &m), at(23, 10, 30));
    /* a calendar with no working time left: never */
    struct calendar none;
    char err[200];
    assert_int_equal(cal_init(&none, "UTC", "09:00-18:00", 0, err, sizeof(err)), SW_OK);
    for (int32_t d = 0; d < CAL_SCAN_DAYS + 2; d++)
        assert_int_equal(
            cal_add_exception(&none, cal_days_from_civil(2026, 11, 23) + d, CAL_HOLIDAY), SW_OK);
    struct clk_marks empty = {0};
    assert_int_equal(clk_due(&none, at(23, 10, 0), H, true, &empty), INT64_MAX);
    cal_free(&none);
}

static void test_names(void **state)
{
    (void)state;
    for (int k = 0; k < CLK_KINDS; k++) {
        enum clk_kind back;
        assert_non_null(clk_kind_name((enum clk_kind)k));
        assert_true(clk_kind_parse(clk_kind_name((enum clk_kind)k), &back));
        assert_int_equal(back, k);
        assert_int_not_equal(clk_deadline_kind((enum clk_kind)k),
                             SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_UNSPECIFIED);
    }
    enum clk_kind k;
    assert_false(clk_kind_parse("answer", &k));
    assert_false(clk_kind_parse(NULL, &k));
    assert_null(clk_kind_name(CLK_KINDS));
    assert_int_equal(clk_violation(CLK_HANDOFF),
                     SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_HANDOFF);
    assert_int_equal(clk_violation(CLK_APPOINT),
                     SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_LATE_APPOINTMENT);
    assert_int_equal(clk_violation(CLK_CALLBACK),
                     SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_NO_CALLBACK);
    assert_int_equal(clk_violation(CLK_SUPERVISOR),
                     SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_UNSPECIFIED);
    assert_int_equal(clk_rung(CLK_SUPERVISOR, LEVEL(UNSPECIFIED)), LEVEL(SUPERVISOR));
    assert_int_equal(clk_rung(CLK_SUPERVISOR, LEVEL(SUPERVISOR)), LEVEL(UNSPECIFIED));
    assert_int_equal(clk_rung(CLK_MANAGER, LEVEL(SUPERVISOR)), LEVEL(MANAGER));
    assert_int_equal(clk_rung(CLK_RESOLVE, LEVEL(NONE)), LEVEL(UNSPECIFIED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_life_of_a_case),
        cmocka_unit_test(test_returned_and_on_the_spot),
        cmocka_unit_test(test_emergency_ladder),
        cmocka_unit_test(test_policy_changes_and_limits),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
