/*
 * clocks.c - what each deadline of a case should be now.  See clocks.h.
 */
#include "clocks.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define ST(x)    SHOUWEN__V1__CASE_STATUS__CASE_STATUS_##x
#define LEVEL(x) SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_##x
#define DK(x)    SHOUWEN__V1__DEADLINE_KIND__DEADLINE_KIND_##x
#define VK(x)    SHOUWEN__V1__VIOLATION_KIND__VIOLATION_KIND_##x

#define MINUTE_US (60LL * 1000000)
#define HOUR_US   (60 * MINUTE_US)

static const char *const names[CLK_KINDS] = {
    "handoff",    "appoint", "first_contact", "resolve",
    "supervisor", "manager", "callback",      "emergency_ack",
};

const char *clk_kind_name(enum clk_kind k)
{
    return (unsigned)k < CLK_KINDS ? names[k] : NULL;
}

bool clk_kind_parse(const char *name, enum clk_kind *out)
{
    for (int k = 0; name != NULL && k < CLK_KINDS; k++)
        if (strcmp(name, names[k]) == 0) {
            *out = (enum clk_kind)k;
            return true;
        }
    return false;
}

Shouwen__V1__DeadlineKind clk_deadline_kind(enum clk_kind k)
{
    static const Shouwen__V1__DeadlineKind map[CLK_KINDS] = {
        DK(HANDOFF),    DK(APPOINT), DK(FIRST_CONTACT), DK(RESOLVE),
        DK(SUPERVISOR), DK(MANAGER), DK(CALLBACK),      DK(EMERGENCY_ACK),
    };
    return (unsigned)k < CLK_KINDS ? map[k] : DK(UNSPECIFIED);
}

Shouwen__V1__ViolationKind clk_violation(enum clk_kind k)
{
    switch (k) {
    case CLK_HANDOFF:
        return VK(LATE_HANDOFF);
    case CLK_APPOINT:
        return VK(LATE_APPOINTMENT);
    case CLK_FIRST_CONTACT:
        return VK(LATE_FIRST_CONTACT);
    case CLK_RESOLVE:
        return VK(LATE_RESOLUTION);
    case CLK_CALLBACK:
        return VK(NO_CALLBACK);
    default:
        return VK(UNSPECIFIED);
    }
}

static Shouwen__V1__EscalationLevel level_of(Shouwen__V1__EscalationLevel l)
{
    return l == LEVEL(UNSPECIFIED) ? LEVEL(NONE) : l;
}

Shouwen__V1__EscalationLevel clk_rung(enum clk_kind k, Shouwen__V1__EscalationLevel level)
{
    level = level_of(level);
    switch (k) {
    case CLK_SUPERVISOR:
        return level < LEVEL(SUPERVISOR) ? LEVEL(SUPERVISOR) : LEVEL(UNSPECIFIED);
    case CLK_MANAGER:
        return level < LEVEL(MANAGER) ? LEVEL(MANAGER) : LEVEL(UNSPECIFIED);
    case CLK_EMERGENCY_ACK:
        return level < LEVEL(LEADER) ? (Shouwen__V1__EscalationLevel)(level + 1)
                                     : LEVEL(UNSPECIFIED);
    default:
        return LEVEL(UNSPECIFIED);
    }
}

void clk_defaults(struct clk_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->limit[CLK_HANDOFF] = (struct clk_limit){0, HOUR_US, false};
    p->limit[CLK_APPOINT] = (struct clk_limit){0, HOUR_US, false};
    p->limit[CLK_FIRST_CONTACT] = (struct clk_limit){1, 0, true};
    p->limit[CLK_RESOLVE] = (struct clk_limit){7, 0, false};
    p->limit[CLK_SUPERVISOR] = (struct clk_limit){2, 0, false};
    p->limit[CLK_MANAGER] = (struct clk_limit){7, 0, false};
    p->limit[CLK_CALLBACK] = (struct clk_limit){2, 0, false};
    p->limit[CLK_EMERGENCY_ACK] = (struct clk_limit){0, 5 * MINUTE_US, false};
}

int64_t clk_limit_us(const struct clk_limit *l, const struct calendar *cal)
{
    int64_t day = l->working ? cal->day_work_us : CAL_DAY_US;
    return l->days * day + l->us;
}

static int64_t add(const struct calendar *cal, int64_t t, int64_t amount, bool working)
{
    if (!working)
        return amount > INT64_MAX - t ? INT64_MAX : t + amount;
    int64_t out;
    return cal_add_working(cal, t, amount, &out) == SW_OK ? out : INT64_MAX;
}

/* The due time past the pauses `p` (n of them, sorted) and, when set, one more: `tail`. */
static int64_t due_past(const struct calendar *cal, int64_t start, int64_t limit_us, bool working,
                        const struct clk_pause *ps, size_t n, const struct clk_pause *tail)
{
    int64_t t = start, left = limit_us;
    for (size_t i = 0; i < n + (tail != NULL); i++) {
        const struct clk_pause *p = i < n ? &ps[i] : tail;
        if (p->to != 0 && p->to <= t)
            continue; /* over before this clock ran */
        if (p->from > t) {
            int64_t avail = working ? cal_working_between(cal, t, p->from) : p->from - t;
            if (left <= avail)
                return add(cal, t, left, working);
            left -= avail;
        }
        if (p->to == 0)
            return 0; /* paused now */
        t = p->to;
    }
    return add(cal, t, left, working);
}

int64_t clk_due(const struct calendar *cal, int64_t start, int64_t limit_us, bool working,
                const struct clk_marks *m)
{
    return due_past(cal, start, limit_us, working, m->pauses, m->npauses, NULL);
}

static bool is_open(Shouwen__V1__CaseStatus s)
{
    return s == ST(REGISTERED) || s == ST(ASSIGNED) || s == ST(TRANSFERRED) || s == ST(ACCEPTED) ||
           s == ST(IN_PROGRESS) || s == ST(WAITING);
}

static int64_t later(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

void clk_plan(const struct wf_case *c, const struct clk_policy *p, const struct calendar *cal,
              const struct clk_marks *m, int64_t now, const struct clk_row cur[CLK_KINDS],
              struct clk_row next[CLK_KINDS], enum clk_change change[CLK_KINDS])
{
    Shouwen__V1__CaseStatus eff = c->status == ST(WAITING) ? c->status_before_waiting : c->status;
    Shouwen__V1__EscalationLevel level = level_of(c->escalation_level);
    bool open = is_open(c->status);
    bool emergency = c->urgency == SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY ||
                     c->type == SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY;
    int64_t registered = c->received_at != 0 ? c->received_at : c->created_at;
    int64_t holder = later(registered, m->holder);
    int64_t opened = later(registered, m->reopened);

    /* The wait going on now counts even before its mark is in. */
    struct clk_pause now_waiting = {c->waiting_since, 0};
    bool have_open = m->npauses > 0 && m->pauses[m->npauses - 1].to == 0;
    const struct clk_pause *tail =
        c->status == ST(WAITING) && !have_open && c->waiting_since != 0 ? &now_waiting : NULL;

    for (int k = 0; k < CLK_KINDS; k++) {
        bool applies = false;
        char episode[CLK_EPISODE_SIZE] = "";
        int64_t start = 0;
        switch ((enum clk_kind)k) {
        case CLK_HANDOFF:
            applies = eff == ST(REGISTERED) && !c->resolved_on_spot && open;
            snprintf(episode, sizeof(episode), "R:%s", c->owner);
            start = holder;
            break;
        case CLK_APPOINT:
            applies = eff == ST(TRANSFERRED) && open;
            snprintf(episode, sizeof(episode), "T:%s:%s", c->department, c->owner);
            start = holder;
            break;
        case CLK_FIRST_CONTACT:
            applies =
                (eff == ST(ASSIGNED) || eff == ST(ACCEPTED)) && c->first_contact_at == 0 && open;
            snprintf(episode, sizeof(episode), "O:%s", c->owner);
            start = holder;
            break;
        case CLK_RESOLVE:
            applies = open;
            snprintf(episode, sizeof(episode), "open:%" PRId64, opened);
            start = opened;
            break;
        case CLK_SUPERVISOR:
        case CLK_MANAGER:
            applies = open && clk_rung((enum clk_kind)k, level) != LEVEL(UNSPECIFIED);
            snprintf(episode, sizeof(episode), "open:%" PRId64, opened);
            start = opened;
            break;
        case CLK_CALLBACK:
            applies = c->status == ST(RESOLVED) && c->resolved_at != 0;
            snprintf(episode, sizeof(episode), "V:%" PRId64, c->resolved_at);
            start = c->resolved_at;
            break;
        case CLK_EMERGENCY_ACK:
            applies =
                open && emergency && c->emergency_acknowledged_at == 0 && level < LEVEL(LEADER);
            snprintf(episode, sizeof(episode), "E:%s", wf_escalation_name(level));
            start = level > LEVEL(NONE) ? later(registered, m->level) : registered;
            break;
        default:
            break;
        }
        const struct clk_row *r = &cur[k];
        struct clk_row *n = &next[k];
        *n = *r;
        change[k] = CLK_SAME;
        bool pending = r->exists && r->met_at == 0 && r->breached_at == 0;
        if (!applies) {
            if (pending) {
                n->met_at = now;
                change[k] = CLK_MET;
            }
            continue;
        }
        const struct clk_limit *l = &p->limit[k];
        int64_t limit = clk_limit_us(l, cal);
        /* a new episode: another holder, rung or opening; or the clock stopped and
         * started again for the same holder (a return to no one, twice) */
        if (!r->exists || strcmp(r->episode, episode) != 0 || (!pending && start > r->started_at)) {
            memset(n, 0, sizeof(*n));
            n->exists = true;
            memcpy(n->episode, episode, sizeof(episode));
            n->started_at = start;
            n->limit_us = limit;
            n->working = l->working;
            n->due_at = due_past(cal, start, limit, l->working, m->pauses, m->npauses, tail);
            change[k] = CLK_NEW;
            continue;
        }
        if (!pending)
            continue; /* met or breached in this episode: it stays so */
        n->limit_us = limit;
        n->working = l->working;
        n->due_at = due_past(cal, r->started_at, limit, l->working, m->pauses, m->npauses, tail);
        if (n->due_at != r->due_at || n->limit_us != r->limit_us || n->working != r->working)
            change[k] = CLK_UPDATE;
    }
}
