/*
 * db.c - a PostgreSQL connection with reconnect and backoff.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-events.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

#define DB_BACKOFF_MIN_MS  100
#define DB_CONNECT_TIMEOUT 5000
#define DB_POLL_SLICE_MS   50
#define DB_CHECK_TIMEOUT   2000 /* ms a liveness check may take */

struct db {
    char *url;
    char *app;
    PGconn *conn;
    long long backoff_ms;
    long long backoff_max_ms;
    long long next_try_ms;
    unsigned attempts; /* failures in a row */
    _Atomic bool ready;
    pthread_mutex_t err_lock;
    char last_error[512];
    struct metric *m_up;
    struct metric *m_reconnects;
    struct metric *m_failures;
};

long long db_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void db__set_error(struct db *db, const char *msg)
{
    pthread_mutex_lock(&db->err_lock);
    snprintf(db->last_error, sizeof(db->last_error), "%s", msg ? msg : "");
    /* libpq messages end with a newline; a log line must not. */
    size_t n = strlen(db->last_error);
    while (n > 0 && (db->last_error[n - 1] == '\n' || db->last_error[n - 1] == ' '))
        db->last_error[--n] = '\0';
    for (char *p = db->last_error; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    pthread_mutex_unlock(&db->err_lock);
}

sw_err db_open(struct db **out, const char *url, const char *app, long long retry_max_ms)
{
    struct db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return SW_ENOMEM;
    db->url = strdup(url);
    db->app = strdup(app);
    if (db->url == NULL || db->app == NULL) {
        free(db->url);
        free(db->app);
        free(db);
        return SW_ENOMEM;
    }
    pthread_mutex_init(&db->err_lock, NULL);
    db->backoff_ms = DB_BACKOFF_MIN_MS;
    db->backoff_max_ms = retry_max_ms < DB_BACKOFF_MIN_MS ? DB_BACKOFF_MIN_MS : retry_max_ms;
    db->m_up = metrics_get(METRIC_GAUGE, "shouwen_db_up",
                           "1 when the database connection is up, else 0", NULL);
    db->m_reconnects = metrics_get(METRIC_COUNTER, "shouwen_db_connects_total",
                                   "Successful database connections", NULL);
    db->m_failures = metrics_get(METRIC_COUNTER, "shouwen_db_connect_failures_total",
                                 "Failed database connection attempts", NULL);
    *out = db;
    return SW_OK;
}

void db_reset(struct db *db)
{
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    atomic_store(&db->ready, false);
    metric_set(db->m_up, 0);
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    db_reset(db);
    pthread_mutex_destroy(&db->err_lock);
    free(db->url);
    free(db->app);
    free(db);
}

static void db__fail(struct db *db, const char *why)
{
    db__set_error(db, why);
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    atomic_store(&db->ready, false);
    metric_set(db->m_up, 0);
    metric_add(db->m_failures, 1);
    /* Full jitter over the upper half keeps a fleet from retrying in step. */
    long long wait = db->backoff_ms / 2 + rand() % (db->backoff_ms / 2 + 1);
    db->next_try_ms = db_now_ms() + wait;
    db->attempts++;
    char err[512];
    db_last_error(db, err, sizeof(err));
    /* Warn on attempts 1, 2, 4, 8...: visible, but not a flood. */
    LOG((db->attempts & (db->attempts - 1)) == 0 ? LOG_WARN : LOG_DEBUG, "DB-UNREACHABLE",
        "database unreachable (attempt %u), retrying in %lld ms: %s", db->attempts, wait, err);
    db->backoff_ms *= 2;
    if (db->backoff_ms > db->backoff_max_ms)
        db->backoff_ms = db->backoff_max_ms;
}

static sw_err db__connect(struct db *db, db_stop_fn stop)
{
    /*
     * Keywords before "dbname" are defaults the URL may override (libpq
     * processes them in order and the last one wins).  Keepalives bound
     * how long a dead TCP peer can hold a query; unix sockets ignore them.
     */
    const char *keys[] = {
        "application_name", "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *vals[] = {db->app, "1", "5", "2", "3", "10000", db->url, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (c == NULL) {
        db__fail(db, "out of memory starting a connection");
        return SW_ENOMEM;
    }
    db->conn = c;
    if (PQstatus(c) == CONNECTION_BAD) {
        db__fail(db, PQerrorMessage(c));
        return SW_EDBDOWN;
    }
    long long deadline = db_now_ms() + DB_CONNECT_TIMEOUT;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            db__fail(db, PQerrorMessage(c));
            return SW_EDBDOWN;
        }
        if (stop != NULL && stop()) {
            db__fail(db, "connection attempt cancelled");
            return SW_ECLOSED;
        }
        if (db_now_ms() > deadline) {
            db__fail(db, "timed out connecting to the database");
            return SW_ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = PQsocket(c),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int n = poll(&pfd, 1, DB_POLL_SLICE_MS);
        if (n > 0)
            st = PQconnectPoll(c);
    }
    if (db->attempts > 0)
        LOG(LOG_INFO, "DB-CONNECTED", "database connection up after %u failed attempts",
            db->attempts);
    db->attempts = 0;
    db->backoff_ms = DB_BACKOFF_MIN_MS;
    db__set_error(db, "");
    atomic_store(&db->ready, true);
    metric_set(db->m_up, 1);
    metric_add(db->m_reconnects, 1);
    return SW_OK;
}

sw_err db_tick(struct db *db, bool check, db_stop_fn stop)
{
    if (db->conn == NULL) {
        if (db_now_ms() < db->next_try_ms)
            return SW_EDBDOWN;
        return db__connect(db, stop);
    }
    if (!check)
        return SW_OK;
    /*
     * The liveness check must not hang the caller's loop when the server
     * hangs (a unix socket has no keepalives): send, then poll in slices,
     * watching the stop function and a deadline.
     */
    const char *why = NULL;
    bool ok = false;
    if (PQsendQuery(db->conn, "SELECT 1") != 1) {
        why = PQerrorMessage(db->conn);
    } else {
        long long deadline = db_now_ms() + DB_CHECK_TIMEOUT;
        for (;;) {
            if (PQconsumeInput(db->conn) != 1) {
                why = PQerrorMessage(db->conn);
                break;
            }
            if (!PQisBusy(db->conn)) {
                PGresult *r;
                ok = true;
                while ((r = PQgetResult(db->conn)) != NULL) {
                    ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
                    PQclear(r);
                }
                if (!ok)
                    why = PQerrorMessage(db->conn);
                break;
            }
            if ((stop != NULL && stop()) || db_now_ms() > deadline) {
                why = stop != NULL && stop() ? "check cancelled: stopping"
                                             : "the database did not answer a check in time";
                break;
            }
            struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
            poll(&pfd, 1, DB_POLL_SLICE_MS);
        }
    }
    if (ok)
        return SW_OK;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
    LOG(LOG_WARN, "DB-LOST", "database connection lost: %s", msg);
    db->attempts = 0;
    db__fail(db, msg);   /* closes the connection, whatever state it was in */
    db->next_try_ms = 0; /* try again at once, then back off */
    return SW_EDBDOWN;
}

PGconn *db_conn(struct db *db)
{
    return db->conn;
}

bool db_ready(const struct db *db)
{
    return atomic_load(&((struct db *)db)->ready);
}

void db_last_error(struct db *db, char *out, size_t outlen)
{
    pthread_mutex_lock(&db->err_lock);
    snprintf(out, outlen, "%s", db->last_error);
    pthread_mutex_unlock(&db->err_lock);
}

/* ---- prepared statements, per session ------------------------------------------------- */

#define DB_PREPARED_MAX 256 /* names per session; beyond, statements run unprepared */

struct db_prepared {
    int n;
    char *names[DB_PREPARED_MAX];
};

static void db__prepared_clear(struct db_prepared *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->names[i]);
    p->n = 0;
}

static int db__prepared_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET || id == PGEVT_CONNDESTROY) {
        PGconn *c = id == PGEVT_CONNRESET ? ((PGEventConnReset *)info)->conn
                                          : ((PGEventConnDestroy *)info)->conn;
        struct db_prepared *p = PQinstanceData(c, db__prepared_event);
        if (p != NULL) {
            db__prepared_clear(p);
            if (id == PGEVT_CONNDESTROY) {
                free(p);
                PQsetInstanceData(c, db__prepared_event, NULL);
            }
        }
    }
    return 1;
}

/*
 * Make sure `name` is prepared on `c`.  1: it is; 0: it cannot be kept
 * (out of memory, or the session's registry is full): run it unprepared;
 * -1: PQprepare failed, its result in *fail.
 */
static int db__ensure(PGconn *c, const char *name, const char *sql, int n, PGresult **fail)
{
    struct db_prepared *p = PQinstanceData(c, db__prepared_event);
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || !PQregisterEventProc(c, db__prepared_event, "shouwen-prepared", NULL) ||
            !PQsetInstanceData(c, db__prepared_event, p)) {
            free(p);
            return 0;
        }
    }
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return 1;
    if (p->n == DB_PREPARED_MAX)
        return 0;
    char *copy = strdup(name);
    if (copy == NULL)
        return 0;
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        free(copy);
        *fail = r;
        return -1;
    }
    PQclear(r);
    p->names[p->n++] = copy;
    return 1;
}

PGresult *db_exec_prepared(PGconn *c, const char *name, const char *sql, int n,
                           const char *const *vals, const int *lens, const int *fmts)
{
    PGresult *fail = NULL;
    int k = db__ensure(c, name, sql, n, &fail);
    if (k < 0)
        return fail;
    if (k == 0)
        return PQexecParams(c, sql, n, NULL, vals, lens, fmts, 0);
    return PQexecPrepared(c, name, n, vals, lens, fmts, 0);
}

/* The name db_exec_fixed gives `sql`: "f" and a 64-bit FNV-1a hash of its text. */
static void db__fixed_name(const char *sql, char name[24])
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    snprintf(name, 24, "f%016llx", (unsigned long long)h);
}

PGresult *db_exec_fixed(PGconn *c, const char *sql, int n, const char *const *vals)
{
    char name[24];
    db__fixed_name(sql, name);
    return db_exec_prepared(c, name, sql, n, vals, NULL, NULL);
}

sw_err db_pipeline(PGconn *c, const struct db_query *qs, int nq, PGresult **out, char *err,
                   size_t errlen)
{
    char names[DB_PIPELINE_MAX][24];
    sw_err rv = SW_OK;

    for (int i = 0; i < nq; i++)
        out[i] = NULL;
    if (nq < 1 || nq > DB_PIPELINE_MAX) {
        snprintf(err, errlen, "a pipeline of %d statements (1 to %d)", nq, DB_PIPELINE_MAX);
        return SW_EINVAL;
    }
    /* the kept statements prepared first, each once per session */
    for (int i = 0; i < nq; i++) {
        names[i][0] = '\0';
        if (!qs[i].fixed)
            continue;
        PGresult *fail = NULL;
        db__fixed_name(qs[i].sql, names[i]);
        int k = db__ensure(c, names[i], qs[i].sql, qs[i].n, &fail);
        if (k < 0)
            return db_fail_clear(c, fail, "prepare a statement", err, errlen);
        if (k == 0)
            names[i][0] = '\0';
    }
    if (!PQenterPipelineMode(c)) {
        snprintf(err, errlen, "could not start a pipeline: %s", PQerrorMessage(c));
        return PQstatus(c) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
    }
    int sent = 0;
    for (; sent < nq; sent++) {
        const struct db_query *q = &qs[sent];
        int ok =
            names[sent][0] != '\0'
                ? PQsendQueryPrepared(c, names[sent], q->n, q->vals, q->lens, q->fmts, q->binary)
                : PQsendQueryParams(c, q->sql, q->n, NULL, q->vals, q->lens, q->fmts, q->binary);
        if (!ok)
            break;
    }
    if (sent < nq || !PQpipelineSync(c)) {
        /* what was sent cannot be read back in step: the session must go */
        snprintf(err, errlen, "could not send statements: %s", PQerrorMessage(c));
        return SW_EDBDOWN;
    }
    /* each statement's result and the NULL after it, then the sync's */
    for (int i = 0; i < nq; i++) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            snprintf(err, errlen, "lost the database's answers: %s", PQerrorMessage(c));
            return SW_EDBDOWN;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_ABORTED) {
            PQclear(r); /* skipped after an earlier failure: out[i] stays NULL */
        } else {
            out[i] = r;
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rv == SW_OK) {
                char what[48];
                snprintf(what, sizeof(what), "statement %d of %d", i + 1, nq);
                rv = db_fail(c, r, what, err, errlen);
            }
        }
        while ((r = PQgetResult(c)) != NULL)
            PQclear(r);
    }
    PGresult *r = PQgetResult(c);
    bool synced = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (!synced || !PQexitPipelineMode(c)) {
        for (int i = 0; i < nq; i++) {
            PQclear(out[i]);
            out[i] = NULL;
        }
        snprintf(err, errlen, "the pipeline did not end: %s", PQerrorMessage(c));
        return SW_EDBDOWN;
    }
    return rv;
}

PGresult *db_exec_guarded(PGconn *c, const char *sql, int n, const char *const *vals)
{
    struct db_query qs[3] = {{.sql = DB_KEYED_GUARDS_SAVE, .fixed = true},
                             {.sql = sql, .n = n, .vals = vals, .fixed = true},
                             {.sql = DB_KEYED_GUARDS_RESTORE, .fixed = true}};
    PGresult *out[3];
    char err[256];
    (void)db_pipeline(c, qs, 3, out, err, sizeof(err));
    PQclear(out[2]);
    if (out[1] != NULL) {
        PQclear(out[0]);
        return out[1];
    }
    /* skipped: the guards' failure is the statement's (NULL: the session broke) */
    return out[0] != NULL ? out[0] : PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR);
}

sw_err db_fail(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen)
{
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(err, errlen, "%s: %s", what, primary != NULL ? primary : PQerrorMessage(c));
    return PQstatus(c) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
}

sw_err db_fail_clear(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen)
{
    char w[120];
    snprintf(w, sizeof(w), "could not %s", what);
    sw_err rv = db_fail(c, r, w, err, errlen);
    PQclear(r);
    return rv;
}
