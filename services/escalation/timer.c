/*
 * timer.c - the near future of the deadlines, in a binary heap, fired on time.
 *
 * The heap holds the pending deadlines of the partitions the consumer
 * owns that fall due before `loaded_until` (now + the horizon, 60 s by
 * default); the database holds the rest.  Whenever ownership changes the
 * heap is rebuilt from the database (every pending deadline due before
 * the horizon, including those that ran out while no one was watching);
 * every half horizon the next slice is read; deadlines the consumer writes
 * meanwhile are pushed in directly.  An entry whose deadline has since
 * been met or moved simply finds nothing to fire: firing is a conditional
 * UPDATE (fire.c), which also makes a duplicate entry harmless.
 *
 * The thread sleeps until the earliest deadline, a push, or the next
 * slice, whichever is first; a batch of up to batch_max due deadlines is
 * fired in one transaction, and a failed transaction puts them back to be
 * tried again after a pause.  When more than a batch is due at once (a
 * burst), it is split among `sessions` transactions fired at the same
 * time, the timer's own and those of firer threads with a session each:
 * a case's deadlines always go to the same one (by a hash of its id), so
 * two sessions never lock the same case's rows, and the timer waits for
 * all of them before it takes the next.  Every 10 s it also asks for the
 * reviews due and checks every site's calendar for the holidays it should
 * hold.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "escalation.h"
#include "log.h"

#define HOUSEKEEPING_MS 10000
#define RETRY_MS        500
#define SITES_FLAGGED   256

struct flag {
    char code[WF_SITE_SIZE];
    int year; /* the year missing, 0 when none */
    struct metric *m;
};

/*
 * A session firing beside the timer's own in a burst: its own connection,
 * site cache and outbox; the batch handed to it and the outcome, under the
 * timer's mu.
 */
struct firer {
    struct esc_timer *t;
    pthread_t thread;
    pthread_cond_t cv; /* work given, or stop */
    struct db *db;
    struct esc_cache cache;
    struct bus_outbox *ob;
    struct esc_due *batch;
    size_t n;
    sw_err rv;
    int index;
    bool started;
    bool busy; /* given a batch, not yet done with it */
    char err[512];
};

struct esc_timer {
    struct esc_timer_config cfg;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct esc_due *in; /* pushed by the consumer, under mu */
    size_t nin, capin;
    _Atomic bool ready;
    _Atomic bool lost; /* a push found no memory: rebuild the heap */
    /* the timer thread's own */
    struct esc_due *heap;
    size_t n, cap;
    uint64_t gen;
    bool loaded;
    int64_t loaded_until;
    struct db *db;
    struct esc_cache cache;
    struct bus_outbox *ob;
    uint32_t partitions;
    int nfirers;
    long long next_housekeeping;
    struct flag flags[SITES_FLAGGED];
    size_t nflags;
    struct esc_fire_metrics fm;
    struct firer *firers; /* cfg.sessions - 1 of them (nfirers) */
    pthread_cond_t done;  /* a firer finished its share */
    struct metric *m_heap, *m_fired_batches, *m_failures, *m_reviews, *m_lateness;
};

int64_t esc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the heap ----------------------------------------------------------------------------- */

static bool before(const struct esc_due *a, const struct esc_due *b)
{
    return a->due < b->due;
}

static sw_err heap_push(struct esc_timer *t, const struct esc_due *d)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        struct esc_due *h = realloc(t->heap, cap * sizeof(*h));
        if (h == NULL)
            return SW_ENOMEM;
        t->heap = h;
        t->cap = cap;
    }
    size_t i = t->n++;
    t->heap[i] = *d;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&t->heap[i], &t->heap[p]))
            break;
        struct esc_due x = t->heap[i];
        t->heap[i] = t->heap[p];
        t->heap[p] = x;
        i = p;
    }
    return SW_OK;
}

static struct esc_due heap_pop(struct esc_timer *t)
{
    struct esc_due top = t->heap[0];
    t->heap[0] = t->heap[--t->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && before(&t->heap[l], &t->heap[m]))
            m = l;
        if (r < t->n && before(&t->heap[r], &t->heap[m]))
            m = r;
        if (m == i)
            break;
        struct esc_due x = t->heap[i];
        t->heap[i] = t->heap[m];
        t->heap[m] = x;
        i = m;
    }
    return top;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Pending deadlines of the owned partitions due in [from, until) (from 0: all before until). */
static sw_err load(struct esc_timer *t, PGconn *db, int64_t from, int64_t until, size_t *got,
                   char *err, size_t errlen)
{
    uint32_t parts[BUS_PARTITIONS_MAX];
    size_t np = bus_consumer_partitions(t->cfg.consumer, parts, BUS_PARTITIONS_MAX);
    *got = 0;
    if (np == 0)
        return SW_OK;
    struct buf a;
    buf_init(&a, 1u << 16);
    sw_err rv = buf_puts(&a, "{");
    for (size_t i = 0; rv == SW_OK && i < np; i++)
        rv = buf_printf(&a, "%s%u", i ? "," : "", parts[i]);
    if (rv == SW_OK)
        rv = buf_puts(&a, "}");
    char f[24], u[24];
    snprintf(f, sizeof(f), "%" PRId64, from);
    snprintf(u, sizeof(u), "%" PRId64, until);
    const char *v[] = {buf_cstr(&a), f, u};
    /* a cursor-free single read: the slice is small (the horizon's worth) */
    PGresult *r = PQexecParams(
        db,
        "SELECT case_id::text, kind, (extract(epoch FROM due_at) * 1000000)::bigint FROM "
        "escalation.deadlines WHERE part = ANY($1::int[]) AND met_at IS NULL AND breached_at IS "
        "NULL AND due_at IS NOT NULL AND due_at < timestamptz 'epoch' + $3::bigint * interval "
        "'1 microsecond' AND ($2::bigint = 0 OR due_at >= timestamptz 'epoch' + $2::bigint * "
        "interval '1 microsecond')",
        3, NULL, v, NULL, NULL, 0);
    buf_free(&a);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "read the deadlines due soon", err, errlen);
        PQclear(r);
        return rv;
    }
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        struct esc_due d;
        enum clk_kind k;
        if (!clk_kind_parse(PQgetvalue(r, i, 1), &k))
            continue;
        d.kind = (uint8_t)k;
        d.due = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        snprintf(d.case_id, sizeof(d.case_id), "%s", PQgetvalue(r, i, 0));
        rv = heap_push(t, &d);
    }
    *got = (size_t)PQntuples(r);
    PQclear(r);
    if (rv != SW_OK)
        snprintf(err, errlen, "out of memory for the deadlines due soon");
    return rv;
}

void esc_timer_push(struct esc_timer *t, const struct esc_due *d, size_t n)
{
    if (t == NULL || n == 0)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->nin + n > t->capin) {
        size_t cap = t->capin ? t->capin : 1024;
        while (cap < t->nin + n)
            cap *= 2;
        struct esc_due *x = realloc(t->in, cap * sizeof(*x));
        if (x != NULL) {
            t->in = x;
            t->capin = cap;
        }
    }
    if (t->nin + n <= t->capin) {
        memcpy(t->in + t->nin, d, n * sizeof(*d));
        t->nin += n;
    } else {
        /* no memory: the heap is rebuilt from the database instead */
        atomic_store(&t->lost, true);
    }
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

bool esc_timer_ready(const struct esc_timer *t)
{
    return t != NULL && atomic_load(&((struct esc_timer *)t)->ready);
}

/* Takes in what the consumer pushed: what falls within the loaded range joins the heap. */
static void take_pushed(struct esc_timer *t)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nin; i++)
        if (t->in[i].due < t->loaded_until && heap_push(t, &t->in[i]) != SW_OK)
            t->loaded = false; /* no memory: rebuilt from the database */
    t->nin = 0;
    pthread_mutex_unlock(&t->mu);
}

static _Thread_local struct esc_timer *timer_self;
static int timer_stopping(void);

/* ---- firing ------------------------------------------------------------------------------- */

static sw_err exec(PGconn *db, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(db, sql);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rv = db_fail(db, r, sql, err, errlen);
    PQclear(r);
    return rv;
}

/* One transaction firing `d` on a session: its connection, site cache and outbox. */
static sw_err fire_batch(struct esc_timer *t, PGconn *db, struct esc_cache *cache,
                         struct bus_outbox *ob, struct esc_due *d, size_t n, char *err,
                         size_t errlen)
{
    size_t fired = 0; /* counted in the breach metrics by esc_fire */
    bus_outbox_clear(ob);
    /*
     * Every row a batch touches is found by its key: thousands of index
     * probes.  Left to itself the planner prices a batch of thousands as
     * cheaper by hashing whole tables (the open cases, every deadline), a
     * scan that grows with the tables; so no hash or merge joins here.
     */
    sw_err rv =
        exec(db, "BEGIN; SET LOCAL enable_hashjoin TO off; SET LOCAL enable_mergejoin TO off", err,
             errlen);
    if (rv == SW_OK)
        rv = esc_cache_check(cache, db, err, errlen);
    if (rv == SW_OK)
        rv = esc_fire(db, cache, ob, d, n, &t->fm, &fired, err, errlen);
    if (rv == SW_OK && bus_outbox_len(ob) > 0)
        rv = bus_outbox_write(ob, db, err, errlen);
    if (rv == SW_OK)
        rv = exec(db, "COMMIT", err, errlen);
    if (rv != SW_OK) {
        PGresult *r = PQexec(db, "ROLLBACK");
        PQclear(r);
        bus_outbox_clear(ob);
        return rv;
    }
    bus_outbox_publish(ob, *t->cfg.pub);
    return SW_OK;
}

/* A firer's batch, on its own session (connected, and its outbox made, on first use). */
static sw_err firer_fire(struct firer *f)
{
    struct esc_timer *t = f->t;
    f->err[0] = '\0';
    if (db_tick(f->db, false, timer_stopping) != SW_OK || db_conn(f->db) == NULL) {
        db_last_error(f->db, f->err, sizeof(f->err));
        return SW_EDBDOWN;
    }
    if (f->ob == NULL && bus_outbox_alloc(&f->ob, t->partitions) != SW_OK) {
        snprintf(f->err, sizeof(f->err), "out of memory for firer %d's outbox", f->index);
        return SW_ENOMEM;
    }
    sw_err rv =
        fire_batch(t, db_conn(f->db), &f->cache, f->ob, f->batch, f->n, f->err, sizeof(f->err));
    if (rv == SW_EDBDOWN || PQstatus(db_conn(f->db)) == CONNECTION_BAD)
        db_reset(f->db);
    return rv;
}

static void *firer_run(void *arg)
{
    struct firer *f = arg;
    struct esc_timer *t = f->t;
    timer_self = t;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!f->busy && !t->stop)
            pthread_cond_wait(&f->cv, &t->mu);
        if (!f->busy)
            break; /* stopping, nothing in hand */
        pthread_mutex_unlock(&t->mu);
        sw_err rv = firer_fire(f);
        pthread_mutex_lock(&t->mu);
        f->rv = rv;
        f->busy = false;
        pthread_cond_broadcast(&t->done);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Which session fires a case's deadlines: a hash of its id (FNV-1a). */
static int session_of(const struct esc_due *d, int sessions)
{
    uint32_t h = 2166136261u;
    for (const char *c = d->case_id; *c; c++) {
        h ^= (uint8_t)*c;
        h *= 16777619u;
    }
    return (int)(h % (uint32_t)sessions);
}

/*
 * Fires everything due now, a round at a time: up to batch_max due
 * deadlines in one transaction; in a burst (more due than that) up to
 * batch_max per session, split among the sessions by case, fired at once.
 */
static sw_err fire_due(struct esc_timer *t, PGconn *db, char *err, size_t errlen)
{
    size_t max = (size_t)(t->cfg.batch_max > 0 ? t->cfg.batch_max : 1000);
    int sessions = t->nfirers + 1;
    size_t cap = max * (size_t)sessions;
    struct esc_due *staged = malloc(cap * sizeof(*staged));
    struct esc_due *own = malloc(cap * sizeof(*own));
    if (staged == NULL || own == NULL) {
        free(staged);
        free(own);
        return SW_ENOMEM;
    }
    sw_err rv = SW_OK;
    for (;;) {
        int64_t now = esc_now_us();
        size_t n = 0, nown = 0;
        while (n < cap && t->n > 0 && t->heap[0].due <= now)
            staged[n++] = heap_pop(t);
        if (n == 0)
            break;
        if (n <= max) {
            memcpy(own, staged, n * sizeof(*own)); /* no burst: one transaction */
            nown = n;
        } else {
            /* each case to its session; the firers' batches are theirs until done */
            pthread_mutex_lock(&t->mu);
            for (size_t i = 0; i < n; i++) {
                int k = session_of(&staged[i], sessions);
                if (k == 0)
                    own[nown++] = staged[i];
                else
                    t->firers[k - 1].batch[t->firers[k - 1].n++] = staged[i];
            }
            for (int k = 0; k < t->nfirers; k++) {
                if (t->firers[k].n > 0) {
                    t->firers[k].busy = true;
                    pthread_cond_signal(&t->firers[k].cv);
                }
            }
            pthread_mutex_unlock(&t->mu);
        }
        sw_err mine =
            nown > 0 ? fire_batch(t, db, &t->cache, t->ob, own, nown, err, errlen) : SW_OK;
        if (mine != SW_OK) {
            metric_add(t->m_failures, 1);
            LOG(LOG_WARN, "ESCALATION-FIRE", "could not fire %zu deadlines (trying again): %s",
                nown, err);
            for (size_t i = 0; i < nown; i++)
                (void)heap_push(t, &own[i]); /* tried again after the pause */
            rv = mine;
        } else if (nown > 0) {
            metric_add(t->m_fired_batches, 1);
        }
        /* the firers' outcomes: what failed goes back to be tried again */
        pthread_mutex_lock(&t->mu);
        for (int k = 0; k < t->nfirers; k++) {
            struct firer *f = &t->firers[k];
            while (f->busy)
                pthread_cond_wait(&t->done, &t->mu);
            if (f->n == 0)
                continue;
            if (f->rv != SW_OK) {
                metric_add(t->m_failures, 1);
                LOG(LOG_WARN, "ESCALATION-FIRE",
                    "could not fire %zu deadlines on session %d (trying again): %s", f->n, k + 1,
                    f->err);
                for (size_t i = 0; i < f->n; i++)
                    (void)heap_push(t, &f->batch[i]);
                if (rv == SW_OK) {
                    rv = f->rv == SW_EDBDOWN ? SW_EDB : f->rv; /* its session, not the timer's */
                    snprintf(err, errlen, "%s", f->err);
                }
            } else {
                metric_add(t->m_fired_batches, 1);
            }
            f->n = 0;
        }
        pthread_mutex_unlock(&t->mu);
        if (rv != SW_OK)
            break;
        int64_t late = esc_now_us() - staged[0].due;
        metric_set(t->m_lateness, late / 1000);
        if (timer_stopping())
            break;
    }
    free(staged);
    free(own);
    return rv;
}

/* ---- housekeeping ------------------------------------------------------------------------- */

static struct flag *flag_of(struct esc_timer *t, const char *code)
{
    for (size_t i = 0; i < t->nflags; i++)
        if (strcmp(t->flags[i].code, code) == 0)
            return &t->flags[i];
    if (t->nflags == SITES_FLAGGED)
        return NULL;
    struct flag *f = &t->flags[t->nflags++];
    snprintf(f->code, sizeof(f->code), "%s", code);
    char labels[64];
    snprintf(labels, sizeof(labels), "site=\"%s\"", code);
    f->m = metrics_get(METRIC_GAUGE, "shouwen_escalation_holidays_missing",
                       "The year whose public holidays a site's calendar lacks (0: none lacking; "
                       "meanwhile only weekends are rest days)",
                       labels);
    return f;
}

static sw_err check_holidays(struct esc_timer *t, PGconn *db, char *err, size_t errlen)
{
    PGresult *r = PQexec(db, "SELECT code FROM core.sites WHERE active ORDER BY code");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "list the sites", err, errlen);
        PQclear(r);
        return rv;
    }
    sw_err rv = esc_cache_check(&t->cache, db, err, errlen);
    int64_t now = esc_now_us();
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        struct esc_site *s;
        rv = esc_site_get(&t->cache, db, PQgetvalue(r, i, 0), &s, err, errlen);
        if (rv == SW_ENOTFOUND) {
            rv = SW_OK;
            continue;
        }
        if (rv != SW_OK) {
            /* a calendar that cannot be used is the site's problem, not the timer's */
            LOG(LOG_WARN, "ESCALATION-CALENDAR", "%s", err);
            rv = SW_OK;
            continue;
        }
        int year = 0;
        if (!cal_holidays_missing(&s->cal, now, &year))
            year = 0;
        struct flag *f = flag_of(t, s->code);
        if (f == NULL)
            continue;
        if (year != 0 && f->year != year)
            LOG(LOG_WARN, "ESCALATION-HOLIDAYS",
                "site %s: its calendar holds no public holidays for %d; until they are added "
                "(PUT /v1/sites/%s/calendar/days, or an .ics import) only weekends are rest days",
                s->code, year, s->code);
        f->year = year;
        metric_set(f->m, year);
    }
    PQclear(r);
    return rv;
}

static void housekeeping(struct esc_timer *t, PGconn *db)
{
    char err[512] = "";
    size_t made = 0;
    bus_outbox_clear(t->ob);
    sw_err rv = exec(db, "BEGIN", err, sizeof(err));
    if (rv == SW_OK)
        rv = esc_reviews(db, t->ob, t->cfg.review_hour, t->cfg.review_weekday, &made, err,
                         sizeof(err));
    if (rv == SW_OK && made > 0)
        rv = bus_outbox_write(t->ob, db, err, sizeof(err));
    if (rv == SW_OK)
        rv = exec(db, "COMMIT", err, sizeof(err));
    if (rv != SW_OK) {
        PGresult *r = PQexec(db, "ROLLBACK");
        PQclear(r);
        bus_outbox_clear(t->ob);
        LOG(LOG_WARN, "ESCALATION-REVIEW", "could not ask for the reviews due: %s", err);
    } else if (made > 0) {
        metric_add(t->m_reviews, (int64_t)made);
        bus_outbox_publish(t->ob, *t->cfg.pub);
    }
    if (check_holidays(t, db, err, sizeof(err)) != SW_OK)
        LOG(LOG_WARN, "ESCALATION-HOLIDAYS", "could not check the calendars: %s", err);
}

/* ---- the thread --------------------------------------------------------------------------- */

static int timer_stopping(void)
{
    if (timer_self == NULL)
        return 0;
    pthread_mutex_lock(&timer_self->mu);
    bool s = timer_self->stop;
    pthread_mutex_unlock(&timer_self->mu);
    return s;
}

static void wait_until(struct esc_timer *t, int64_t until_us)
{
    pthread_mutex_lock(&t->mu);
    if (!t->stop && t->nin == 0) {
        struct timespec ts = {.tv_sec = (time_t)(until_us / 1000000),
                              .tv_nsec = (long)(until_us % 1000000) * 1000};
        (void)pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
}

static void *run(void *arg)
{
    struct esc_timer *t = arg;
    timer_self = t;
    char err[512];
    while (!timer_stopping()) {
        if (db_tick(t->db, false, timer_stopping) != SW_OK) {
            atomic_store(&t->ready, false);
            t->loaded = false;
            wait_until(t, esc_now_us() + 200000);
            continue;
        }
        PGconn *db = db_conn(t->db);
        if (t->ob == NULL) {
            if (bus_partitions(db, &t->partitions, err, sizeof(err)) != SW_OK ||
                bus_outbox_alloc(&t->ob, t->partitions) != SW_OK) {
                db_reset(t->db);
                continue;
            }
        }
        int64_t now = esc_now_us();
        uint64_t gen = bus_consumer_generation(t->cfg.consumer);
        size_t got = 0;
        if (atomic_exchange(&t->lost, false))
            t->loaded = false;
        sw_err rv = SW_OK;
        if (!t->loaded || gen != t->gen) {
            /* ownership changed (or first time): rebuild from the database */
            t->n = 0;
            t->gen = gen;
            t->loaded_until = now + t->cfg.horizon_us;
            pthread_mutex_lock(&t->mu);
            t->nin = 0; /* all of it is in the database too */
            pthread_mutex_unlock(&t->mu);
            long long t0 = db_now_ms();
            rv = load(t, db, 0, t->loaded_until, &got, err, sizeof(err));
            if (rv == SW_OK) {
                t->loaded = true;
                if (bus_consumer_owned(t->cfg.consumer) > 0 || gen > 0)
                    atomic_store(&t->ready, true);
                LOG(LOG_INFO, "ESCALATION-TIMER",
                    "holding %zu deadlines due within %" PRId64 " s of %d partitions (read in "
                    "%lld ms)",
                    got, t->cfg.horizon_us / 1000000, bus_consumer_owned(t->cfg.consumer),
                    db_now_ms() - t0);
            }
        } else if (now + t->cfg.horizon_us / 2 >= t->loaded_until) {
            int64_t until = now + t->cfg.horizon_us;
            rv = load(t, db, t->loaded_until, until, &got, err, sizeof(err));
            if (rv == SW_OK)
                t->loaded_until = until;
        }
        if (rv != SW_OK) {
            LOG(LOG_WARN, "ESCALATION-TIMER", "%s", err);
            if (rv == SW_EDBDOWN)
                db_reset(t->db);
            t->loaded = false;
            wait_until(t, esc_now_us() + (int64_t)RETRY_MS * 1000);
            continue;
        }
        take_pushed(t);
        rv = fire_due(t, db, err, sizeof(err));
        metric_set(t->m_heap, (int64_t)t->n);
        if (rv == SW_EDBDOWN)
            db_reset(t->db);
        if (db_now_ms() >= t->next_housekeeping) {
            housekeeping(t, db);
            t->next_housekeeping = db_now_ms() + HOUSEKEEPING_MS;
        }
        int64_t wake = esc_now_us() + 1000000;
        if (rv != SW_OK)
            wake = esc_now_us() + (int64_t)RETRY_MS * 1000;
        else if (t->n > 0 && t->heap[0].due < wake)
            wake = t->heap[0].due;
        if (t->loaded_until - t->cfg.horizon_us / 2 < wake)
            wake = t->loaded_until - t->cfg.horizon_us / 2;
        if (wake > esc_now_us())
            wait_until(t, wake);
    }
    return NULL;
}

sw_err esc_timer_start(struct esc_timer **out, const struct esc_timer_config *cfg, char *err,
                       size_t errlen)
{
    struct esc_timer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SW_ENOMEM;
    t->cfg = *cfg;
    esc_cache_init(&t->cache);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&t->cv, &ca); /* CLOCK_REALTIME: deadlines are wall-clock instants */
    pthread_cond_init(&t->done, NULL);
    pthread_condattr_destroy(&ca);
    for (int k = 0; k < CLK_KINDS; k++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "clock=\"%s\"", clk_kind_name((enum clk_kind)k));
        t->fm.breaches[k] = metrics_get(METRIC_COUNTER, "shouwen_escalation_breaches_total",
                                        "Deadlines breached, by clock", labels);
    }
    t->fm.escalations = metrics_get(METRIC_COUNTER, "shouwen_escalation_escalations_total",
                                    "Cases moved up the ladder on time", NULL);
    t->fm.refused = metrics_get(METRIC_COUNTER, "shouwen_escalation_refused_total",
                                "Escalations the workflow refused (the case had moved on)", NULL);
    t->m_heap = metrics_get(METRIC_GAUGE, "shouwen_escalation_timer_deadlines",
                            "Deadlines held in memory (due within the horizon)", NULL);
    t->m_fired_batches = metrics_get(METRIC_COUNTER, "shouwen_escalation_fire_batches_total",
                                     "Transactions that fired deadlines", NULL);
    t->m_failures = metrics_get(METRIC_COUNTER, "shouwen_escalation_fire_failures_total",
                                "Firing transactions that failed (tried again)", NULL);
    t->m_reviews = metrics_get(METRIC_COUNTER, "shouwen_escalation_reviews_total",
                               "Daily and weekly reviews asked for", NULL);
    t->m_lateness = metrics_get(METRIC_GAUGE, "shouwen_escalation_fire_lateness_ms",
                                "How late the last batch fired its first deadline", NULL);
    sw_err rv = db_open(&t->db, cfg->db_url, "shouwen-escalation-timer", 5000);
    if (rv != SW_OK) {
        snprintf(err, errlen, "could not set up the timer's database connection");
        esc_timer_stop(t);
        return rv;
    }
    int nf = cfg->sessions > 1 ? cfg->sessions - 1 : 0;
    size_t cap = (size_t)(cfg->batch_max > 0 ? cfg->batch_max : 1000) * (size_t)(nf + 1);
    t->firers = nf > 0 ? calloc((size_t)nf, sizeof(*t->firers)) : NULL;
    if (nf > 0 && t->firers == NULL)
        rv = SW_ENOMEM;
    for (int k = 0; k < nf && rv == SW_OK; k++) {
        struct firer *f = &t->firers[k];
        char app[64];
        f->t = t;
        f->index = k + 1;
        esc_cache_init(&f->cache);
        pthread_cond_init(&f->cv, NULL);
        t->nfirers = k + 1;
        snprintf(app, sizeof(app), "shouwen-escalation-fire-%d", k + 1);
        f->batch = malloc(cap * sizeof(*f->batch));
        if (f->batch == NULL || db_open(&f->db, cfg->db_url, app, 5000) != SW_OK ||
            pthread_create(&f->thread, NULL, firer_run, f) != 0)
            rv = SW_ENOMEM;
        else
            f->started = true;
    }
    if (rv != SW_OK) {
        snprintf(err, errlen, "could not start the firing sessions");
        esc_timer_stop(t);
        return SW_ENOMEM;
    }
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        snprintf(err, errlen, "could not start the timer thread");
        esc_timer_stop(t);
        return SW_ENOMEM;
    }
    t->started = true;
    *out = t;
    return SW_OK;
}

void esc_timer_halt(struct esc_timer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    for (int k = 0; k < t->nfirers; k++)
        pthread_cond_signal(&t->firers[k].cv);
    pthread_mutex_unlock(&t->mu);
    if (t->started)
        pthread_join(t->thread, NULL);
    t->started = false;
    for (int k = 0; k < t->nfirers; k++) {
        if (t->firers[k].started)
            pthread_join(t->firers[k].thread, NULL);
        t->firers[k].started = false;
    }
}

void esc_timer_stop(struct esc_timer *t)
{
    if (t == NULL)
        return;
    esc_timer_halt(t);
    for (int k = 0; k < t->nfirers; k++) {
        struct firer *f = &t->firers[k];
        db_close(f->db);
        esc_cache_clear(&f->cache);
        bus_outbox_free(f->ob);
        free(f->batch);
        pthread_cond_destroy(&f->cv);
    }
    free(t->firers);
    pthread_cond_destroy(&t->done);
    db_close(t->db);
    esc_cache_clear(&t->cache);
    bus_outbox_free(t->ob);
    free(t->heap);
    free(t->in);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
