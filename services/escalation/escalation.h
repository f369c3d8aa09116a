/*
 * escalation.h - the escalation service's state, shared by its files.
 *
 * Two threads do the work, each with its own database session:
 *
 * - the consumer (common/bus.c, group "escalation") hands on_case.c the
 *   case events of a transaction at once; it records the times the clocks
 *   need (escalation.marks), recomputes each case's deadlines with
 *   common/clocks.c and stores them (escalation.deadlines), and counts
 *   conflict escalations;
 * - the timer (timer.c) keeps the deadlines of the partitions the consumer
 *   owns that fall due within the horizon in a binary heap, rebuilt from
 *   the database whenever ownership changes, and fires them (fire.c):
 *   breached_at is set by a conditional UPDATE in the same transaction as
 *   the violation, the events and the escalation, so that a deadline fires
 *   once whatever is killed when.  It also asks for the daily and weekly
 *   reviews (reviews.c) and flags calendars without holidays.
 *
 * Each thread keeps its own cache of sites (sites.c): calendar, limits,
 * who is supervisor and manager; a change to any calendar or limit bumps
 * escalation.settings_stamp and every cache reloads.
 */
#ifndef SHOUWEN_ESCALATION_H
#define SHOUWEN_ESCALATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <nng/nng.h>

#include "bus.h"
#include "calendar.h"
#include "clocks.h"
#include "db.h"
#include "err.h"
#include "metrics.h"
#include "sitecache.h"
#include "workflow.h"

#define ESC_PEOPLE 8 /* supervisors, managers or leaders remembered per site */

/* One limit row: a clock's limit for a type and/or urgency (0: any). */
struct esc_limit {
    Shouwen__V1__CaseType type;
    Shouwen__V1__Urgency urgency;
    enum clk_kind kind;
    struct clk_limit limit;
};

struct esc_site {
    char id[37], code[WF_SITE_SIZE], tz[65];
    struct calendar cal; /* none set (or unusable): Monday to Friday, 09:00-18:00, no holidays */
    struct esc_limit *limits;
    size_t nlimits;
    char supervisors[ESC_PEOPLE][WF_CODE_SIZE]; /* the front desk's first */
    size_t nsupervisors;
    char managers[ESC_PEOPLE][WF_CODE_SIZE];
    size_t nmanagers;
    char leaders[ESC_PEOPLE][WF_CODE_SIZE];
    size_t nleaders;
};

struct esc_cache {
    struct sitecache sc; /* of struct esc_site */
};

/* Ready to use (empty, never checked). */
void esc_cache_init(struct esc_cache *c);
/* Checks the settings stamp: a change empties the cache. */
sw_err esc_cache_check(struct esc_cache *c, PGconn *db, char *err, size_t errlen);
/* The site with code `code`, loaded on first use.  SW_ENOTFOUND: no such site. */
sw_err esc_site_get(struct esc_cache *c, PGconn *db, const char *code, struct esc_site **out,
                    char *err, size_t errlen);
void esc_cache_clear(struct esc_cache *c);
/* The limits for a case of `type` and `urgency`: DOMAIN.md's, then the site's, the most
 * specific last. */
void esc_policy(const struct esc_site *s, Shouwen__V1__CaseType type, Shouwen__V1__Urgency urgency,
                struct clk_policy *out);

/* A deadline for the timer: when, which case, which clock. */
struct esc_due {
    int64_t due;
    char case_id[37];
    uint8_t kind;
};

struct esc_timer;

struct escalation {
    const char *db_url;
    nng_socket *pub;
    struct bus_consumer *consumer;
    uint32_t partitions;
    struct bus_outbox *ob; /* the events of the consumer's open transaction */
    bool pending;
    struct esc_cache cache; /* the consumer's */
    struct esc_due *staged; /* deadlines written in the open transaction, for the timer */
    size_t nstaged, capstaged;
    struct esc_timer *timer;
    struct metric *m_recomputed; /* cases whose clocks were recomputed */
    struct metric *m_stale;      /* events skipped: their case had moved on */
    struct metric *m_conflicts;  /* conflict escalations recorded */
};

/* The bus's batch handler: every case event that can move a clock. */
sw_err esc_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen);

struct esc_timer_config {
    const char *db_url;
    nng_socket *pub;
    struct bus_consumer *consumer; /* whose partitions the timer keeps */
    int64_t horizon_us;            /* how far ahead the heap holds deadlines */
    int batch_max;                 /* deadlines fired in one transaction */
    int sessions;                  /* transactions firing a burst at once, each its own session */
    int review_hour;               /* local hour of the daily and weekly reviews */
    int review_weekday;            /* ISO weekday of the weekly review (1 = Monday) */
};

sw_err esc_timer_start(struct esc_timer **out, const struct esc_timer_config *cfg, char *err,
                       size_t errlen);
/* Stops the thread (the consumer may still push); then esc_timer_stop frees. */
void esc_timer_halt(struct esc_timer *t);
void esc_timer_stop(struct esc_timer *t);
/* Deadlines just committed by the consumer; those within the horizon join the heap. */
void esc_timer_push(struct esc_timer *t, const struct esc_due *d, size_t n);
/* Loaded once since the last change of ownership.  Any thread. */
bool esc_timer_ready(const struct esc_timer *t);

/*
 * esc_fire breaches the deadlines `d` (n of them) that are still pending
 * with exactly that due time, in the caller's open transaction: violations,
 * case.deadline_breached, and the ladder's escalations through the
 * workflow, staged in `ob`.  *fired counts the deadlines it breached.
 */
struct esc_fire_metrics {
    struct metric *breaches[CLK_KINDS];
    struct metric *escalations;
    struct metric *refused;
};
sw_err esc_fire(PGconn *tx, struct esc_cache *cache, struct bus_outbox *ob, const struct esc_due *d,
                size_t n, const struct esc_fire_metrics *m, size_t *fired, char *err,
                size_t errlen);

/* Reviews due now at each site, made once (escalation.reviews); events staged in `ob`. */
sw_err esc_reviews(PGconn *tx, struct bus_outbox *ob, int hour, int weekday, size_t *made,
                   char *err, size_t errlen);

/* Microseconds since the epoch, now. */
int64_t esc_now_us(void);

#endif
