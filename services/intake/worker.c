/*
 * worker.c - the threads that take intake's jobs to the database.
 *
 * Each worker owns one session (struct db, reconnecting by itself).  It
 * takes every registration waiting in the queue, up to batch_max, and
 * registers them together (reg_run_batch): credentials, earlier
 * submissions, first responders and case numbers in one round trip, then
 * the cases and their case.registered events written and committed in
 * another.  Only after the commit are the requests answered and the
 * events published; a failed transaction answers every request in it
 * with 503 and nothing is half-written.  Other jobs (reads, workflow
 * commands) go one at a time, each in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "intake.h"
#include "log.h"

struct worker {
    struct intake *in;
    struct db *db;
    struct bus_outbox *ob;
    uint32_t partitions;
    int index;
};

static struct metric *m_bad; /* 4xx answers: bad input or credentials, counted */

void job_finish(struct job *j)
{
    if (j->stream && j->status == 200 && j->hreq != NULL) {
        stream_adopt(j);
        return;
    }
    if (j->finish != NULL) {
        if (j->status >= 400 && j->status < 500)
            metric_add(m_bad, 1);
        j->finish(j);
        return;
    }
    if (j->ctype == NULL)
        buf_puts(&j->body, "\n");
    http_reply_typed(j->hreq, j->status ? j->status : 500, j->body.data ? j->body.data : "",
                     j->body.len, j->etag, j->ctype);
    job_free(j);
}

void intake_enqueue(struct intake *in, struct job *j)
{
    pthread_mutex_lock(&in->mu);
    if (in->queued >= in->queue_max) {
        pthread_mutex_unlock(&in->mu);
        metric_add(in->m_unavailable, 1);
        job_reply_error(j, 503, "too many requests waiting: retry later");
        job_finish(j);
        return;
    }
    bool reg = j->kind == JOB_REGISTER;
    struct job **head = reg ? &in->rhead : &in->ohead;
    struct job **tail = reg ? &in->rtail : &in->otail;
    /*
     * Wake one worker when it can do something: for a registration, when
     * it is the first one waiting and a batch may start.  The ones queued
     * behind it go with it, in the same batch, without waking anyone
     * (waking every worker for every request cost more CPU than the
     * requests); when every session is busy, reg_done wakes a worker.
     */
    bool wake = !reg || (*head == NULL && in->reg_busy < in->reg_sessions);
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
    in->queued++;
    if (wake)
        pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

/*
 * Take work: every registration waiting (up to max) when fewer than
 * reg_sessions workers are committing registrations, else one other job.
 * Returns 0 when stopping and nothing is left.
 *
 * Registrations go in batches, as many as are waiting: a batch costs
 * about the same few round trips whatever its size.  More than one batch
 * may be in hand at once (SHOUWEN_INTAKE_REG_SESSIONS, default 1): while
 * one waits for its commit to reach the disk, the next looks up and
 * writes.  They do not wait on each other's locks: each takes its case
 * numbers in a short transaction of its own (handle_register.c).  Two
 * take about 7% more registrations a second when intake alone is the
 * limit; on a machine that also runs the other services and PostgreSQL,
 * they only split the waiting requests into smaller batches, each paying
 * the same round trips, and intake outruns routing (BENCHMARKS.md,
 * session 36).  Reads and workflow commands go on the other workers
 * meanwhile.
 */
static int take(struct intake *in, struct job **jobs, int max)
{
    int n = 0;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        if ((in->rhead != NULL && in->reg_busy < in->reg_sessions) || in->ohead != NULL)
            break;
        if (in->stopping && in->inflight == 0 && in->rhead == NULL)
            break;
        pthread_cond_wait(&in->cv, &in->mu);
    }
    if (in->rhead != NULL && in->reg_busy < in->reg_sessions) {
        in->reg_busy++;
        while (in->rhead != NULL && n < max) {
            struct job *j = in->rhead;
            in->rhead = j->next;
            if (in->rhead == NULL)
                in->rtail = NULL;
            in->queued--;
            jobs[n++] = j;
        }
    } else if (in->ohead != NULL) {
        struct job *j = in->ohead;
        in->ohead = j->next;
        if (in->ohead == NULL)
            in->otail = NULL;
        in->queued--;
        jobs[n++] = j;
    }
    if (in->ohead != NULL || (in->rhead != NULL && in->reg_busy < in->reg_sessions))
        pthread_cond_signal(&in->cv); /* another worker can take the rest */
    pthread_mutex_unlock(&in->mu);
    return n;
}

/* The batch of registrations in hand is done: another worker may take the next. */
static void reg_done(struct intake *in)
{
    pthread_mutex_lock(&in->mu);
    in->reg_busy--;
    if (in->stopping)
        pthread_cond_broadcast(&in->cv);
    else if (in->rhead != NULL)
        pthread_cond_signal(&in->cv); /* the registrations that waited for a session */
    pthread_mutex_unlock(&in->mu);
}

static sw_err exec0(PGconn *db, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(db, sql);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(db));
        rv = PQstatus(db) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
    }
    PQclear(r);
    return rv;
}

static void copy_field(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/*
 * Check the credentials of the jobs in one query (INTAKE_CREDENTIAL_SQL).
 * Jobs left unauthed are answered 401.
 */
static const char auth_sql[] =
    "SELECT c.i::int, a.kind, a.id, a.site_id::text, s.code, s.time_zone, a.role, a.name, "
    "encode(a.hash, 'hex'), a.dept "
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(prefix, hash, i) "
    "CROSS JOIN LATERAL " INTAKE_CREDENTIAL_SQL " "
    "JOIN core.sites s ON s.id = a.site_id AND s.active";

/* intake.h; the columns are those of auth_sql, and of check_sql in handle_register.c. */
bool principal_take(const PGresult *r, int row, struct job *j)
{
    const char *stored = PQgetvalue(r, row, 8);
    if (strlen(stored) != 64 || !crypto_equal(stored, j->cred_hash, 64))
        return false;
    struct principal *p = &j->who;
    p->kind = PQgetvalue(r, row, 1)[0];
    copy_field(p->id, sizeof(p->id), r, row, 2);
    copy_field(p->site_id, sizeof(p->site_id), r, row, 3);
    copy_field(p->site, sizeof(p->site), r, row, 4);
    copy_field(p->time_zone, sizeof(p->time_zone), r, row, 5);
    copy_field(p->role, sizeof(p->role), r, row, 6);
    copy_field(p->name, sizeof(p->name), r, row, 7);
    copy_field(p->department_id, sizeof(p->department_id), r, row, 9);
    j->authed = true;
    return true;
}

/*
 * Check the credential of a job run alone, in one round trip
 * (db_pipeline): BEGIN, the guards of a keyed transaction (db.h), the
 * look-up as a kept statement (its plan is not made anew each time, and
 * probes by key), then the guards lifted again for the rest of the
 * transaction, which the job runs in.  (A batch of registrations checks
 * its credentials with the rest of its look-ups: reg_run_batch.)
 */
static sw_err authenticate(PGconn *db, struct job **jobs, int n, char *err, size_t errlen)
{
    struct buf pre, hash;
    buf_init(&pre, 1u << 20);
    buf_init(&hash, 1u << 20);
    buf_puts(&pre, "{");
    buf_puts(&hash, "{");
    for (int i = 0; i < n; i++) {
        buf_printf(&pre, "%s\"%s\"", i ? "," : "", jobs[i]->cred_prefix);
        buf_printf(&hash, "%s%s", i ? "," : "", jobs[i]->cred_hash);
    }
    buf_puts(&pre, "}");
    buf_puts(&hash, "}");
    const char *v[] = {buf_cstr(&pre), buf_cstr(&hash)};
    struct db_query qs[] = {{.sql = "BEGIN"},
                            {.sql = DB_KEYED_GUARDS},
                            {.sql = auth_sql, .n = 2, .vals = v, .fixed = true},
                            {.sql = DB_KEYED_GUARDS_LIFTED}};
    PGresult *out[4];
    sw_err rv = db_pipeline(db, qs, 4, out, err, errlen);
    PGresult *r = out[2];
    PQclear(out[0]);
    PQclear(out[1]);
    PQclear(out[3]);
    buf_free(&pre);
    buf_free(&hash);
    if (rv != SW_OK) {
        char why[INTAKE_ERR_MAX];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "could not check credentials: %.400s", why);
        PQclear(r);
        return rv;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        int i = atoi(PQgetvalue(r, row, 0)) - 1;
        if (i >= 0 && i < n)
            principal_take(r, row, jobs[i]);
    }
    PQclear(r);
    return SW_OK;
}

static void run(struct worker *w, struct job **jobs, int n)
{
    struct intake *in = w->in;
    char err[INTAKE_ERR_MAX] = "";
    PGconn *db = db_conn(w->db);
    sw_err rv = db != NULL ? SW_OK : SW_EDBDOWN;
    struct job *ok[n > 0 ? n : 1];
    int nok = 0;

    bool reg = jobs[0]->kind == JOB_REGISTER;
    if (rv == SW_OK && reg) {
        rv = reg_run_batch(in, db, jobs, n, w->ob, err, sizeof(err));
    } else if (rv == SW_OK) {
        rv = authenticate(db, jobs, n, err, sizeof(err));
        for (int i = 0; rv == SW_OK && i < n; i++) {
            if (!jobs[i]->authed)
                job_reply_error(jobs[i], 401, "invalid credentials");
            else
                ok[nok++] = jobs[i];
        }
        if (rv == SW_OK && nok > 0)
            rv = ok[0]->run(in, db, ok[0], w->ob, err, sizeof(err));
    }
    /* A job run alone that was refused leaves nothing behind. */
    bool refused = n == 1 && jobs[0]->kind == JOB_OTHER && jobs[0]->status >= 400;
    if (rv == SW_OK && !reg && refused) {
        bus_outbox_clear(w->ob);
        rv = exec0(db, "ROLLBACK", err, sizeof(err));
    } else if (rv == SW_OK && !reg) {
        rv = exec0(db, "COMMIT", err, sizeof(err));
    }
    if (rv != SW_OK) {
        /* a session out of step (a broken pipeline) cannot roll back: it goes */
        bool broken = db != NULL && PQpipelineStatus(db) != PQ_PIPELINE_OFF;
        if (db != NULL && !broken && PQstatus(db) != CONNECTION_BAD &&
            PQtransactionStatus(db) != PQTRANS_IDLE)
            exec0(db, "ROLLBACK", err + strlen(err), sizeof(err) - strlen(err));
        if (db != NULL && (broken || PQstatus(db) == CONNECTION_BAD))
            db_reset(w->db);
        bus_outbox_clear(w->ob);
        metric_add(in->m_unavailable, n);
        LOG(LOG_WARN, "INTAKE-DB", "worker %d: %d requests not done: %s", w->index, n,
            err[0] ? err : "database unavailable");
        for (int i = 0; i < n; i++)
            job_reply_error(jobs[i], 503,
                            "database unavailable: retry later (the same "
                            "external_ref or Idempotency-Key is safe)");
    } else if (!refused) {
        bus_outbox_publish(w->ob, *in->pub);
        if (n > 1)
            metric_add(in->m_batches, 1);
    }
    for (int i = 0; i < n; i++)
        job_finish(jobs[i]);
}

static int worker_stopping(void)
{
    return 0; /* a worker finishes the batch in hand; the queue drains */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct intake *in = w->in;
    struct job **jobs = calloc((size_t)in->batch_max, sizeof(struct job *));
    char err[INTAKE_ERR_MAX] = "";
    while (jobs != NULL) {
        int n = take(in, jobs, in->batch_max);
        if (n == 0)
            break; /* stopping, and nothing left */
        bool reg = jobs[0]->kind == JOB_REGISTER;
        if (db_conn(w->db) == NULL)
            for (int tries = 0; tries < 3 && db_conn(w->db) == NULL; tries++)
                db_tick(w->db, false, worker_stopping);
        /* The outbox needs the bus's partition count: learnt once, whenever
         * the database first answers (it may have been unmigrated before). */
        if (w->ob == NULL && db_conn(w->db) != NULL) {
            uint32_t parts = 0;
            if (bus_partitions(db_conn(w->db), &parts, err, sizeof(err)) != SW_OK ||
                bus_outbox_alloc(&w->ob, parts) != SW_OK) {
                w->ob = NULL;
                LOG(LOG_WARN, "INTAKE-DB", "worker %d: no outbox yet: %s", w->index,
                    err[0] ? err : "out of memory");
            } else {
                w->partitions = parts;
            }
        }
        if (w->ob == NULL) {
            for (int i = 0; i < n; i++) {
                job_reply_error(jobs[i], 503, "database unavailable: retry later");
                job_finish(jobs[i]);
            }
        } else {
            run(w, jobs, n);
        }
        if (reg)
            reg_done(in);
    }
    free(jobs);
    return NULL;
}

static struct worker *workers;

sw_err intake_workers_start(struct intake *in, char *err, size_t errlen)
{
    m_bad = in->m_bad;
    workers = calloc((size_t)in->nworkers, sizeof(*workers));
    in->workers = calloc((size_t)in->nworkers, sizeof(*in->workers));
    if (workers == NULL || in->workers == NULL) {
        snprintf(err, errlen, "out of memory starting the workers");
        return SW_ENOMEM;
    }
    for (int i = 0; i < in->nworkers; i++) {
        struct worker *w = &workers[i];
        w->in = in;
        w->index = i;
        if (db_open(&w->db, in->db_url, "intake", 2000) != SW_OK) {
            snprintf(err, errlen, "out of memory starting the workers");
            return SW_ENOMEM;
        }
        if (pthread_create(&in->workers[i], NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "could not start worker %d", i);
            in->nworkers = i;
            return SW_ENOMEM;
        }
    }
    return SW_OK;
}

void intake_workers_stop(struct intake *in)
{
    pthread_mutex_lock(&in->mu);
    in->stopping = true;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    for (int i = 0; i < in->nworkers; i++)
        pthread_join(in->workers[i], NULL);
    for (int i = 0; workers != NULL && i < in->nworkers; i++) {
        bus_outbox_free(workers[i].ob);
        db_close(workers[i].db);
    }
    free(workers);
    workers = NULL;
    free(in->workers);
    in->workers = NULL;
}
