/*
 * shouwen-intake: the front door: registers cases from people and systems and applies their
 * commands.
 *
 * This file wires the service together: its settings table, the public
 * HTTP API (http.c), the REP socket for SubmitCase (rep.c), the database
 * workers (worker.c), and the common
 * start, loop and stop of svc.c.  What the service reacts to lives in one
 * file per thing beside this one (handle_register.c, handle_case.c).
 */
#include <stdio.h>
#include <string.h>

#include "intake.h"
#include "log.h"
#include "svc.h"
#include "tls.h"

#ifndef SHOUWEN_DEFAULT_CONSOLE_DIR
#define SHOUWEN_DEFAULT_CONSOLE_DIR "/usr/share/shouwen/console"
#endif

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    TLS_SETTINGS,
    SVC_ADMIN_SETTING("INTAKE", "127.0.0.1:7401"),
    SVC_PUB_SETTING("INTAKE", "ipc://{run}/intake.pub"),
    {"SHOUWEN_INTAKE_HTTP_ADDR", CFG_HOSTPORT, 0, 0, "127.0.0.1:7400", NULL,
     "Address of the public HTTP/JSON API (/v1/...)"},
    {"SHOUWEN_INTAKE_HTTP_IDLE", CFG_DURATION, 1000, 3600000, "60s", NULL,
     "API connections with no request in hand for this long are closed (so are stalled bodies)"},
    {"SHOUWEN_INTAKE_HTTP_MAX_CONNS", CFG_INT, 1, 1000000, "4096", NULL,
     "API connections open at once; more are answered 503 and closed"},
    {"SHOUWEN_INTAKE_MAX_BODY", CFG_INT, 1024, 16777216, "65536", NULL,
     "Largest request body accepted, in bytes; larger ones are answered 413"},
    {"SHOUWEN_INTAKE_WORKERS", CFG_INT, 1, 64, "4", NULL,
     "Database workers (each one session); registrations waiting are committed together"},
    {"SHOUWEN_INTAKE_BATCH_MAX", CFG_INT, 1, 1000, "256", NULL,
     "Most registrations committed in one transaction"},
    {"SHOUWEN_INTAKE_REG_SESSIONS", CFG_INT, 1, 64, "1", NULL,
     "Batches of registrations committed at once, each by its own worker (at most the workers); "
     "1 keeps the whole pipeline's latency low on a small machine, 2 takes about 7% more "
     "registrations a second when intake alone is the limit"},
    {"SHOUWEN_INTAKE_QUEUE_MAX", CFG_INT, 1, 1000000, "10000", NULL,
     "Requests waiting for a worker before new ones are answered 503"},
    /* A string, not CFG_NNG_URL, because empty must be allowed; rep.c checks the form at start. */
    {"SHOUWEN_INTAKE_REP_ADDR", CFG_STRING, 0, 1024, "tcp://127.0.0.1:7410", NULL,
     "nng address where the REP socket for SubmitCase (sites and devices) listens; empty: none"},
    {"SHOUWEN_INTAKE_REP_CONTEXTS", CFG_INT, 1, 4096, "64", NULL,
     "SubmitCase requests the REP socket handles at once (they share group commits)"},
    {"SHOUWEN_INTAKE_CONSOLE_DIR", CFG_STRING, 0, 1024, SHOUWEN_DEFAULT_CONSOLE_DIR, NULL,
     "Folder of the web console's files, served at / (read once at start); empty: no console"},
    {"SHOUWEN_INTAKE_SESSION_TTL", CFG_DURATION, 60000, 2592000000LL, "12h", NULL,
     "How long a console sign-in (POST /v1/session) lasts"},
    {"SHOUWEN_INTAKE_STREAM_POLL", CFG_DURATION, 50, 10000, "500ms", NULL,
     "How often the live stream (GET /v1/stream) reads new events while someone listens"},
    {"SHOUWEN_INTAKE_STREAM_MAX", CFG_INT, 0, 100000, "1000", NULL,
     "Live streams open at once; more are answered 503"},
};

static struct intake the;

static sw_err intake_start(struct svc *s)
{
    const struct cfg *c = svc_cfg(s);
    char err[512] = "";
    the.db_url = cfg_str(c, "SHOUWEN_DATABASE_URL");
    the.pub = svc_pub_socket(s);
    the.max_body = (size_t)cfg_int(c, "SHOUWEN_INTAKE_MAX_BODY");
    the.nworkers = (int)cfg_int(c, "SHOUWEN_INTAKE_WORKERS");
    the.batch_max = (int)cfg_int(c, "SHOUWEN_INTAKE_BATCH_MAX");
    the.reg_sessions = (int)cfg_int(c, "SHOUWEN_INTAKE_REG_SESSIONS");
    the.queue_max = (size_t)cfg_int(c, "SHOUWEN_INTAKE_QUEUE_MAX");
    the.console_dir = cfg_str(c, "SHOUWEN_INTAKE_CONSOLE_DIR");
    the.session_ttl_s = cfg_ms(c, "SHOUWEN_INTAKE_SESSION_TTL") / 1000;
    pthread_mutex_init(&the.mu, NULL);
    pthread_cond_init(&the.cv, NULL);
    pthread_cond_init(&the.idle, NULL);
    the.m_requests = metrics_get(METRIC_COUNTER, "shouwen_intake_requests_total",
                                 "Requests to the public API", NULL);
    static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,   0.5,   1,    2.5};
    the.m_latency = metrics_histogram(
        "shouwen_intake_request_duration_seconds",
        "Public API requests, from the request read to the answer handed to the HTTP server",
        latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    the.m_bad = metrics_get(METRIC_COUNTER, "shouwen_intake_bad_requests_total",
                            "Requests refused for bad input or credentials (4xx)", NULL);
    the.m_registered = metrics_get(METRIC_COUNTER, "shouwen_intake_cases_registered_total",
                                   "Cases registered (committed)", NULL);
    the.m_duplicates = metrics_get(METRIC_COUNTER, "shouwen_intake_duplicates_total",
                                   "Submissions answered with an earlier case", NULL);
    the.m_batches = metrics_get(METRIC_COUNTER, "shouwen_intake_batches_total",
                                "Transactions that carried more than one request", NULL);
    console_metrics_init(); /* the sign-in counters show from the start, at 0 */
    the.m_unavailable = metrics_get(METRIC_COUNTER, "shouwen_intake_unavailable_total",
                                    "Requests answered 503 (database down, queue full)", NULL);
    if (the.pub == NULL) {
        LOG(LOG_ERROR, "INTAKE-START", "no publish socket");
        return SW_ENNG;
    }
    if (stream_start(&the, cfg_ms(c, "SHOUWEN_INTAKE_STREAM_POLL"),
                     (int)cfg_int(c, "SHOUWEN_INTAKE_STREAM_MAX"), err, sizeof(err)) != SW_OK ||
        intake_workers_start(&the, err, sizeof(err)) != SW_OK ||
        intake_http_open(
            &the, cfg_str(c, "SHOUWEN_INTAKE_HTTP_ADDR"), cfg_ms(c, "SHOUWEN_INTAKE_HTTP_IDLE"),
            (int)cfg_int(c, "SHOUWEN_INTAKE_HTTP_MAX_CONNS"), err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "INTAKE-START", "refusing to start: %s", err);
        return SW_ENNG;
    }
    LOG(LOG_INFO, "INTAKE-API", "public API on http://%s/v1/",
        cfg_str(c, "SHOUWEN_INTAKE_HTTP_ADDR"));
    /* after the workers: a SubmitCase may arrive at once, and its job needs them */
    const char *rep = cfg_str(c, "SHOUWEN_INTAKE_REP_ADDR");
    if (intake_rep_open(&the, rep, (int)cfg_int(c, "SHOUWEN_INTAKE_REP_CONTEXTS"), err,
                        sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "INTAKE-START", "refusing to start: %s", err);
        return SW_ENNG;
    }
    if (rep[0] != '\0')
        LOG(LOG_INFO, "INTAKE-REP", "SubmitCase on %s", rep);
    return SW_OK;
}

static void intake_stop(struct svc *s)
{
    (void)s;
    /*
     * The REP socket first, while the workers still run: it stops
     * receiving and waits until every SubmitCase in hand has been answered
     * by a worker and its reply sent, so no worker ever sends on a closed
     * context.
     */
    intake_rep_close(&the);
    stream_stop(); /* the live streams end; their connections are not the server's */
    if (the.workers != NULL)
        intake_workers_stop(&the); /* refuse new requests, answer those in hand */
    intake_http_close(&the);
}

static const struct svc_desc desc = {
    .name = "intake",
    .summary =
        "the front door: registers cases from people and systems and applies their commands.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_INTAKE_ADMIN_ADDR",
    .pub_env = "SHOUWEN_INTAKE_PUB_URL",
    .start = intake_start,
    .stop = intake_stop,
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
