/*
 * clocks.h - the clocks of first-contact responsibility, as one pure
 * function: from a case as it is now, the site's limits, its calendar and
 * the times taken from the case's events, what each deadline should be.
 * The escalation service stores the result (escalation.deadlines) and
 * fires what runs out; nothing here does I/O or reads the clock.
 *
 * The clocks (DOMAIN.md; every limit a site setting, escalation.limits):
 *
 * clock          runs while                           from                 default
 * handoff        registered (not resolved on the      the registration, or 1 h, calendar
 *                spot): hand it on or resolve it      the return to no one
 * appoint        transferred: the receiving           the transfer         1 h, calendar
 *                department appoints a handler
 * first_contact  assigned or accepted, the customer   the handoff to the   1 working day
 *                not yet contacted                    owner
 * resolve        open (not resolved or closed)        the registration, or 7 days, calendar
 *                                                     the last reopening
 * supervisor     open and below the supervisor rung   as resolve           2 days, calendar
 * manager        open and below the manager rung      as resolve           7 days, calendar
 * callback       resolved, not yet called back        the resolution       2 days, calendar
 * emergency_ack  an emergency not acknowledged,       reaching the current 5 min, calendar
 *                below the top rung                   rung
 *
 * A waiting case (for the customer or a third party) pauses every clock
 * that runs for the status it waits in; resuming runs them on with the
 * time already used.  Each clock runs in episodes: a new holder (a
 * transfer, an appointment), a new rung, a reopening start a new episode
 * and so a new deadline, as does a clock that stopped and later starts
 * again from a later time; the same episode keeps its deadline, met or
 * breached, so that nothing fires twice.
 *
 * Thread-safety: reentrant.
 */
#ifndef SHOUWEN_CLOCKS_H
#define SHOUWEN_CLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calendar.h"
#include "workflow.h"

enum clk_kind {
    CLK_HANDOFF,
    CLK_APPOINT,
    CLK_FIRST_CONTACT,
    CLK_RESOLVE,
    CLK_SUPERVISOR,
    CLK_MANAGER,
    CLK_CALLBACK,
    CLK_EMERGENCY_ACK,
    CLK_KINDS
};

#define CLK_EPISODE_SIZE 80

/* "handoff", ... as in escalation.deadlines.kind and escalation.limits.clock. */
const char *clk_kind_name(enum clk_kind k);
bool clk_kind_parse(const char *name, enum clk_kind *out);
Shouwen__V1__DeadlineKind clk_deadline_kind(enum clk_kind k);
/* The violation a breach records; UNSPECIFIED for the ladder's steps and emergencies. */
Shouwen__V1__ViolationKind clk_violation(enum clk_kind k);
/* The rung a breach climbs to from `level`; UNSPECIFIED when it climbs nowhere. */
Shouwen__V1__EscalationLevel clk_rung(enum clk_kind k, Shouwen__V1__EscalationLevel level);

/* A time limit: days (working days when working) plus a time part. */
struct clk_limit {
    int64_t days;
    int64_t us;
    bool working;
};

struct clk_policy {
    struct clk_limit limit[CLK_KINDS];
};

/* DOMAIN.md's limits (see the table above). */
void clk_defaults(struct clk_policy *p);
/* The limit in microseconds of working (or calendar) time. */
int64_t clk_limit_us(const struct clk_limit *l, const struct calendar *cal);

struct clk_pause {
    int64_t from, to; /* to 0: still waiting */
};

/* The times taken from the case's events (escalation.marks). */
struct clk_marks {
    int64_t holder;                 /* the latest handoff to a new holder; 0: none */
    int64_t level;                  /* the latest escalation; 0: none */
    int64_t reopened;               /* the latest reopening; 0: none */
    const struct clk_pause *pauses; /* sorted by from */
    size_t npauses;
};

/* One deadline, as stored. */
struct clk_row {
    bool exists;
    char episode[CLK_EPISODE_SIZE];
    int64_t started_at;
    int64_t due_at; /* 0: paused */
    int64_t met_at, breached_at;
    int64_t limit_us;
    bool working;
};

/* What clk_plan decided for one clock. */
enum clk_change {
    CLK_SAME,   /* nothing to write */
    CLK_NEW,    /* a new episode: a new deadline (a new id) */
    CLK_UPDATE, /* the same episode, a new due time (a pause, a changed limit) */
    CLK_MET     /* the clock stopped: met_at set */
};

/*
 * clk_plan computes next[] from the case `c` now, the limits, the calendar
 * (working time) and the marks, given the stored rows cur[] (exists false
 * when none), and says per clock what changed.  `now` is the time of the
 * event being handled: when a clock stopped.  A due time that the calendar
 * cannot reach (every day a holiday) is set to INT64_MAX: never.
 */
void clk_plan(const struct wf_case *c, const struct clk_policy *p, const struct calendar *cal,
              const struct clk_marks *m, int64_t now, const struct clk_row cur[CLK_KINDS],
              struct clk_row next[CLK_KINDS], enum clk_change change[CLK_KINDS]);

/*
 * The due time of a clock that started at `start` with `limit_us` of
 * working or calendar time, past every pause: 0 when a pause still open
 * holds it.
 */
int64_t clk_due(const struct calendar *cal, int64_t start, int64_t limit_us, bool working,
                const struct clk_marks *m);

#endif
