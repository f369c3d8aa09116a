/*
 * bus_driver - the real producer and consumer processes of the bus tests
 * and of `make bench-bus`.
 *
 *   bus_driver produce   writes events through the outbox and publishes them.
 *       BUSTEST_COUNT (1000)  BUSTEST_BATCH (events per transaction, 100)
 *       BUSTEST_RATE (events/s, 0 = as fast as possible)  BUSTEST_CASES (100; 0 = no case id)
 *       BUSTEST_SITE (SH01; empty = none)  BUSTEST_CASE (one case id for every
 *       event, so that runs write to the same partition; empty = random ids)
 *       BUSTEST_PUB_URL (listen; empty = no fast path)  BUSTEST_TYPE (case.registered)
 *       BUSTEST_XID_FIRST_MS / BUSTEST_HOLD_MS: take a transaction id, wait,
 *       insert, wait again, commit (to commit out of sequence order)
 *   bus_driver consume   a consumer running as a service (admin port, SIGTERM):
 *       BUSTEST_NAME, BUSTEST_SUB_URLS (comma-separated), BUSTEST_RECV_BUF,
 *       BUSTEST_FAIL_TYPE (the handler fails on events of this type),
 *       BUSTEST_EFFECTS (1: insert one row per event into bustest.effects,
 *       with the case id and site the envelope carried;
 *       0: no effect, only latency figures), SHOUWEN_BUSTEST_ADMIN_ADDR,
 *       BUSTEST_BATCH_HANDLER (1: a batch handler that blames the failing
 *       event; 2: one that always blames the first of the batch, as a
 *       handler that cannot tell would), BUSTEST_KEYED (1: keyed
 *       transactions, DB_BEGIN_KEYED in db.h, as routing's),
 *       BUSTEST_BATCH_MAX, BUSTEST_BATCH_WAIT_MS (bus_consumer_config),
 *       BUSTEST_TYPES (comma-separated type prefixes; unset = every type),
 *       BUSTEST_FILTER_TYPES (1: the reads return only those, filter_types),
 *       BUSTEST_BATCH_WORK_MS (the batch handler sleeps this long on each
 *       call, so that how long a batch takes does not depend on how fast
 *       the machine is).
 *
 *   bus_driver pipeline  checks db_pipeline (common/db.c) against the real
 *       server: statements answered in order, a failure in the middle
 *       named and the rest skipped, kept statements prepared once, the
 *       session usable after.  Prints "ok ..." or "FAIL ..." per check.
 *
 * All read SHOUWEN_DATABASE_URL.  The producer retries a transaction whose
 * connection broke (the database restarted): the outbox keeps its event
 * ids, so a retried batch that did commit fails on the unique event id and
 * counts as done.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "svc.h"
#include "shouwen/v1/events.pb-c.h"

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static const char *env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v ? v : def;
}

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static PGconn *connect_retry(const char *url)
{
    for (int i = 0; i < 600; i++) {
        PGconn *c = PQconnectdb(url);
        if (PQstatus(c) == CONNECTION_OK)
            return c;
        PQfinish(c);
        usleep(100000);
    }
    return NULL;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

static int produce(void)
{
    const char *url = getenv("SHOUWEN_DATABASE_URL");
    long count = env_long("BUSTEST_COUNT", 1000), batch = env_long("BUSTEST_BATCH", 100);
    long rate = env_long("BUSTEST_RATE", 0), ncases = env_long("BUSTEST_CASES", 100);
    long xid_first = env_long("BUSTEST_XID_FIRST_MS", -1), hold = env_long("BUSTEST_HOLD_MS", 0);
    const char *pub_url = env_str("BUSTEST_PUB_URL", "");
    const char *type = env_str("BUSTEST_TYPE", "case.registered");
    const char *site = env_str("BUSTEST_SITE", "SH01");
    nng_socket pub = NNG_SOCKET_INITIALIZER;
    struct bus_outbox *ob = NULL;
    char err[1024];
    uint32_t parts = 0;
    long done = 0, retries = 0;
    int rc = 1;
    char(*cases)[37] = calloc(ncases > 0 ? (size_t)ncases : 1, 37);
    PGconn *c = url ? connect_retry(url) : NULL;
    if (c == NULL || cases == NULL) {
        fprintf(stderr, "produce: could not connect\n");
        free(cases);
        PQfinish(c);
        return 1;
    }
    if (bus_partitions(c, &parts, err, sizeof(err)) != SW_OK ||
        bus_outbox_alloc(&ob, parts) != SW_OK) {
        fprintf(stderr, "produce: %s\n", err);
        goto out;
    }
    if (pub_url[0] != '\0') {
        if (nng_pub0_open(&pub) != 0 || nng_listen(pub, pub_url, NULL, 0) != 0) {
            fprintf(stderr, "produce: could not listen on %s\n", pub_url);
            goto out;
        }
        usleep(700000); /* let subscribers (re)dial: the fast path is best effort anyway */
    }
    const char *fixed_case = env_str("BUSTEST_CASE", "");
    for (long i = 0; i < ncases; i++) {
        if (fixed_case[0] != '\0')
            snprintf(cases[i], 37, "%s", fixed_case);
        else
            bus_uuid_v7(cases[i]);
    }
    char pad[200];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    long long t0 = mono_us();
    while (done < count) {
        long k = count - done < batch ? count - done : batch;
        for (long i = 0; i < k && bus_outbox_len(ob) < (size_t)k; i++) {
            Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
            Shouwen__V1__CaseRegistered reg = SHOUWEN__V1__CASE_REGISTERED__INIT;
            char number[40];
            snprintf(number, sizeof(number), "SH01-20261122-%04ld", (done + i) % 10000);
            reg.number = number;
            reg.subject = "water leaking from the ceiling of the bathroom";
            reg.description = pad;
            env.type = (char *)type;
            env.site = (char *)site;
            env.case_id = ncases > 0 ? cases[(done + i) % ncases] : "";
            env.case_version = 1;
            env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED;
            env.registered = &reg;
            if (bus_outbox_add(ob, &env) != SW_OK) {
                fprintf(stderr, "produce: could not stage an event\n");
                goto out;
            }
        }
        int ok = exec_ok(c, "BEGIN");
        if (ok && xid_first >= 0) {
            ok = exec_ok(c, "SELECT pg_current_xact_id()");
            usleep((useconds_t)xid_first * 1000);
        }
        if (ok)
            ok = bus_outbox_write(ob, c, err, sizeof(err)) == SW_OK;
        if (ok && hold > 0)
            usleep((useconds_t)hold * 1000);
        if (ok)
            ok = exec_ok(c, "COMMIT");
        if (!ok) {
            const char *state = NULL;
            if (PQstatus(c) == CONNECTION_BAD) {
                PQfinish(c);
                c = connect_retry(url);
                if (c == NULL)
                    goto out;
                retries++;
                continue; /* same outbox, same event ids */
            }
            state = strstr(err, "duplicate key") ? "dup" : NULL;
            exec_ok(c, "ROLLBACK");
            if (state != NULL) { /* the first attempt did commit */
                bus_outbox_clear(ob);
                done += k;
                continue;
            }
            fprintf(stderr, "produce: %s %s\n", err, PQerrorMessage(c));
            goto out;
        }
        if (pub_url[0] != '\0')
            bus_outbox_publish(ob, pub);
        else
            bus_outbox_clear(ob);
        done += k;
        if (rate > 0) {
            long long due = t0 + done * 1000000LL / rate;
            long long now = mono_us();
            if (due > now)
                usleep((useconds_t)(due - now));
        }
    }
    long long us = mono_us() - t0;
    printf("produced %ld events in %.3f s (%.0f/s), %ld reconnects\n", done, us / 1e6,
           done * 1e6 / (double)(us ? us : 1), retries);
    if (pub_url[0] != '\0')
        usleep(200000); /* let the last doorbells leave */
    rc = 0;
out:
    if (pub_url[0] != '\0')
        nng_close(pub);
    bus_outbox_free(ob);
    free(cases);
    PQfinish(c);
    return rc;
}

/* ---- the consumer, as a service ---------------------------------------------------------- */

struct consumer_state {
    struct bus_consumer *bus;
    char name[101];
    char fail_type[101];
    int effects;
    long batch_work_ms; /* BUSTEST_BATCH_WORK_MS */
    bool blame_first;   /* BUSTEST_BATCH_HANDLER=2 */
    /* latency samples (microseconds, event time to commit), for the benchmark */
    int64_t pending[16384]; /* a transaction handles at most 16 x 500 */
    size_t npending;
    struct metric *m_lat_sum;
    struct metric *m_lat_n;
    struct metric *m_lat_buckets[8];
    int64_t *samples; /* every latency, for BUSTEST_LATENCY_FILE */
    size_t nsamples;
    size_t capsamples;
};

static const int64_t lat_edges[8] = {1000, 2000, 5000, 10000, 20000, 50000, 100000, INT64_MAX};

static sw_err handle(PGconn *tx, const Shouwen__V1__Envelope *env, void *arg, char *err,
                     size_t errlen)
{
    struct consumer_state *st = arg;
    if (st->fail_type[0] != '\0' && strcmp(env->type, st->fail_type) == 0) {
        snprintf(err, errlen, "refusing %s events (BUSTEST_FAIL_TYPE)", env->type);
        return SW_EINVAL;
    }
    if (st->effects) {
        const char *v[] = {env->event_id, st->name, env->case_id, env->site};
        PGresult *r =
            PQexecParams(tx,
                         "INSERT INTO bustest.effects (event_id, consumer, case_id, site) "
                         "VALUES ($1::uuid, $2, nullif($3, '')::uuid, nullif($4, ''))",
                         4, NULL, v, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "effect: %s", PQerrorMessage(tx));
        PQclear(r);
        if (!ok)
            return SW_EDB;
    }
    if (st->npending < sizeof(st->pending) / sizeof(st->pending[0]))
        st->pending[st->npending++] = env->time;
    return SW_OK;
}

/* The same work as a batch handler (BUSTEST_BATCH_HANDLER). */
static sw_err handle_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n,
                           void *arg, size_t *failed, char *err, size_t errlen)
{
    struct consumer_state *st = arg;
    if (st->batch_work_ms > 0)
        usleep((useconds_t)st->batch_work_ms * 1000);
    for (size_t i = 0; i < n; i++) {
        sw_err rv = handle(tx, envs[i], arg, err, errlen);
        if (rv != SW_OK) {
            *failed = st->blame_first ? 0 : i;
            return rv;
        }
    }
    return SW_OK;
}

static void committed(void *arg, size_t n)
{
    struct consumer_state *st = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (size_t i = 0; i < st->npending; i++) {
        int64_t lat = now - st->pending[i];
        metric_add(st->m_lat_sum, lat);
        for (int b = 0; b < 8; b++)
            if (lat <= lat_edges[b])
                metric_add(st->m_lat_buckets[b], 1);
        if (st->nsamples < st->capsamples)
            st->samples[st->nsamples++] = lat;
    }
    st->npending = 0;
    metric_add(st->m_lat_n, (int64_t)n); /* every event handled, sampled or not */
}

static struct consumer_state cstate;

/* Cut `s` (NULL: nothing) at its commas into `out`, at most max - 1 items, NULL after them. */
static void split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = s ? strtok(s, ",") : NULL; tok && n < max - 1; tok = strtok(NULL, ","))
        out[n++] = tok;
    out[n] = NULL;
}

static sw_err consumer_start(struct svc *s)
{
    char err[1024] = "";
    const char *urls_env = env_str("BUSTEST_SUB_URLS", "");
    char *urls_copy = strdup(urls_env);
    const char *urls[16] = {0};
    split_list(urls_copy, urls, 16);
    const char *types_env = getenv("BUSTEST_TYPES");
    char *types_copy = strdup(types_env != NULL ? types_env : "");
    const char *types[16] = {0};
    split_list(types_copy, types, 16);
    snprintf(cstate.name, sizeof(cstate.name), "%s", env_str("BUSTEST_NAME", "bustest"));
    snprintf(cstate.fail_type, sizeof(cstate.fail_type), "%s", env_str("BUSTEST_FAIL_TYPE", ""));
    cstate.effects = (int)env_long("BUSTEST_EFFECTS", 1);
    cstate.batch_work_ms = env_long("BUSTEST_BATCH_WORK_MS", 0);
    long batch_handler = env_long("BUSTEST_BATCH_HANDLER", 0);
    cstate.blame_first = batch_handler == 2;
    if (getenv("BUSTEST_LATENCY_FILE") != NULL) {
        cstate.capsamples = 2000000;
        cstate.samples = calloc(cstate.capsamples, sizeof(*cstate.samples));
        if (cstate.samples == NULL)
            cstate.capsamples = 0;
    }
    cstate.m_lat_sum = metrics_get(METRIC_COUNTER, "bustest_latency_us_sum", "latency sum", NULL);
    cstate.m_lat_n = metrics_get(METRIC_COUNTER, "bustest_latency_us_count", "latency n", NULL);
    for (int b = 0; b < 8; b++) {
        char lab[40];
        if (lat_edges[b] == INT64_MAX)
            snprintf(lab, sizeof(lab), "le=\"+Inf\"");
        else
            snprintf(lab, sizeof(lab), "le=\"%lld\"", (long long)lat_edges[b]);
        cstate.m_lat_buckets[b] =
            metrics_get(METRIC_COUNTER, "bustest_latency_us_bucket", "latency histogram", lab);
    }
    struct bus_consumer_config cfg = {
        .name = cstate.name,
        .types = types_env != NULL ? types : NULL,
        .handler = batch_handler ? NULL : handle,
        .batch = batch_handler ? handle_batch : NULL,
        .committed = committed,
        .arg = &cstate,
        .db_url = cfg_str(svc_cfg(s), "SHOUWEN_DATABASE_URL"),
        .sub_urls = urls,
        .batch_max = (int)env_long("BUSTEST_BATCH_MAX", 500),
        .batch_wait_ms = env_long("BUSTEST_BATCH_WAIT_MS", 0),
        .max_attempts = (int)env_long("BUSTEST_MAX_ATTEMPTS", 3),
        .keyed = env_long("BUSTEST_KEYED", 0) != 0,
        .filter_types = env_long("BUSTEST_FILTER_TYPES", 0) != 0,
        .recv_buf = (int)env_long("BUSTEST_RECV_BUF", 0),
    };
    sw_err rv = urls_copy != NULL && types_copy != NULL
                    ? bus_consumer_start(&cstate.bus, &cfg, err, sizeof(err))
                    : SW_ENOMEM;
    if (rv == SW_ENOMEM && err[0] == '\0')
        snprintf(err, sizeof(err), "out of memory");
    free(urls_copy);
    free(types_copy);
    if (rv != SW_OK)
        LOG(LOG_ERROR, "BUSTEST-START", "could not start the consumer: %s", err);
    return rv;
}

static void consumer_stop(struct svc *s)
{
    (void)s;
    bus_consumer_stop(cstate.bus);
    cstate.bus = NULL;
    const char *path = getenv("BUSTEST_LATENCY_FILE");
    if (path != NULL && *path != '\0') {
        FILE *f = fopen(path, "w");
        for (size_t i = 0; f != NULL && i < cstate.nsamples; i++)
            fprintf(f, "%lld\n", (long long)cstate.samples[i]);
        if (f != NULL)
            fclose(f);
    }
    free(cstate.samples);
}

static const struct cfg_def consumer_settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("BUSTEST", "127.0.0.1:7499"),
};

static int pl_failed;

static void pl_check(bool ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        pl_failed++;
}

static const char *pl_value(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
}

static void pl_clear(PGresult **out, int n)
{
    for (int i = 0; i < n; i++)
        PQclear(out[i]);
}

/* db_pipeline against the real server; see the top of the file. */
static int pipeline(void)
{
    const char *url = getenv("SHOUWEN_DATABASE_URL");
    PGconn *c = PQconnectdb(url != NULL ? url : "");
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pipeline: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    char err[512];
    PGresult *out[DB_PIPELINE_MAX];
    const char *one[] = {"41"};
    const char *bad[] = {"not a number"};
    const char *kept_sql = "SELECT $1::int + 1 AS kept";

    /* 1. three statements, in order, the middle one kept */
    struct db_query ok3[] = {{.sql = "BEGIN"},
                             {.sql = kept_sql, .n = 1, .vals = one, .fixed = true},
                             {.sql = "SELECT 'third'"}};
    sw_err rv = db_pipeline(c, ok3, 3, out, err, sizeof(err));
    pl_check(rv == SW_OK, "three statements: SW_OK");
    pl_check(PQresultStatus(out[0]) == PGRES_COMMAND_OK, "the first answered first (BEGIN)");
    pl_check(strcmp(pl_value(out[1]), "42") == 0, "the kept statement's answer (42)");
    pl_check(strcmp(pl_value(out[2]), "third") == 0, "the third's answer");
    pl_clear(out, 3);
    pl_check(PQtransactionStatus(c) == PQTRANS_INTRANS, "the transaction it opened is open");

    /* 2. a failure in the middle: named, the rest skipped, the transaction aborted */
    struct db_query fail3[] = {{.sql = "SELECT 1"},
                               {.sql = kept_sql, .n = 1, .vals = bad, .fixed = true},
                               {.sql = "SELECT 'never'"}};
    err[0] = '\0';
    rv = db_pipeline(c, fail3, 3, out, err, sizeof(err));
    pl_check(rv == SW_EDB, "a failing statement: SW_EDB");
    pl_check(strncmp(err, "statement 2 of 3: ", 18) == 0 && strstr(err, "not a number") != NULL,
             "the error names the statement and the cause");
    pl_check(out[0] != NULL && PQresultStatus(out[0]) == PGRES_TUPLES_OK,
             "the statement before it answered");
    pl_check(out[1] != NULL && PQresultStatus(out[1]) == PGRES_FATAL_ERROR,
             "the failed one's result is kept");
    pl_check(out[2] == NULL, "the one after it was skipped (NULL)");
    pl_clear(out, 3);
    pl_check(PQpipelineStatus(c) == PQ_PIPELINE_OFF, "the session left pipeline mode");
    pl_check(PQtransactionStatus(c) == PQTRANS_INERROR, "the transaction is the caller's to undo");
    PGresult *r = PQexec(c, "ROLLBACK");
    pl_check(PQresultStatus(r) == PGRES_COMMAND_OK, "ROLLBACK works after it");
    PQclear(r);

    /* 3. the kept statement was prepared once, and still answers */
    for (int i = 0; i < 3; i++) {
        rv = db_pipeline(c, ok3 + 1, 1, out, err, sizeof(err));
        pl_check(rv == SW_OK && strcmp(pl_value(out[0]), "42") == 0,
                 "a pipeline of one kept statement");
        pl_clear(out, 1);
    }
    r = PQexec(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE "
                  "'SELECT $1::int + 1 AS kept%'");
    pl_check(strcmp(pl_value(r), "1") == 0, "prepared once in the session");
    PQclear(r);

    /* 4. bad calls are refused without touching the session */
    rv = db_pipeline(c, ok3, 0, out, err, sizeof(err));
    pl_check(rv == SW_EINVAL && strstr(err, "0 statements") != NULL, "no statements: refused");
    rv = db_pipeline(c, ok3, DB_PIPELINE_MAX + 1, out, err, sizeof(err));
    pl_check(rv == SW_EINVAL, "too many statements: refused");
    r = PQexec(c, "SELECT 'still fine'");
    pl_check(strcmp(pl_value(r), "still fine") == 0, "the session still answers");
    PQclear(r);
    PQfinish(c);
    printf("%d failed\n", pl_failed);
    return pl_failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "pipeline") == 0)
        return pipeline();
    if (argc >= 2 && strcmp(argv[1], "produce") == 0)
        return produce();
    if (argc >= 2 && strcmp(argv[1], "consume") == 0) {
        static const struct svc_desc desc = {
            .name = "bustest",
            .summary = "a bus consumer for tests and benchmarks",
            .settings = consumer_settings,
            .nsettings = sizeof(consumer_settings) / sizeof(consumer_settings[0]),
            .admin_env = "SHOUWEN_BUSTEST_ADMIN_ADDR",
            .start = consumer_start,
            .stop = consumer_stop,
        };
        return svc_main(&desc, argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: bus_driver produce|consume|pipeline (settings in the environment)\n");
    return 2;
}
