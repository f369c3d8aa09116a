/*
 * shouwen-audit: keeps the hash-chained audit log and the QA reports.
 *
 * This file wires the service together: its settings table, the bus
 * consumer (group "audit", every event: replicas split the partitions)
 * whose handler is append.c, the checkpoints signed on the main thread's
 * tick (checkpoint.c), and the common start, loop and stop of svc.c.
 *
 *     shouwen-audit                  runs the service
 *     shouwen-audit verify SITE      recomputes SITE's chain and says where it breaks
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "svc.h"
#include "tls.h"

#define AUDIT_SUBS_MAX 16

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    TLS_SETTINGS,
    SVC_ADMIN_SETTING("AUDIT", "127.0.0.1:7405"),
    SVC_PUB_SETTING("AUDIT", "ipc://{run}/audit.pub"),
    {"SHOUWEN_AUDIT_SUB_URLS", CFG_STRING, 1, 2048,
     "ipc://{run}/intake.pub,ipc://{run}/routing.pub,ipc://{run}/escalation.pub,"
     "ipc://{run}/notification.pub",
     NULL,
     "nng addresses (comma-separated) of the PUB sockets whose doorbells audit dials; events "
     "are read from the database either way"},
    {"SHOUWEN_AUDIT_BATCH_MAX", CFG_INT, 1, 10000, "5000", NULL,
     "Most events chained in one transaction"},
    BUS_BATCH_WAIT_SETTING("AUDIT", "40ms"),
    {"SHOUWEN_AUDIT_KEY", CFG_STRING, 0, AUDIT_KEY_MAX, "", NULL,
     "Secret (at least 32 characters) from which each site's checkpoint key is derived; empty: "
     "no checkpoints are signed (logged as a warning)"},
    {"SHOUWEN_AUDIT_CHECKPOINT_INTERVAL", CFG_DURATION, 100, 86400000, "60s", NULL,
     "How often the head of each site's chain that moved is signed"},
};

static struct audit the;
static char *subs_copy;
static const char *subs[AUDIT_SUBS_MAX + 1];

static void begun(void *arg)
{
    struct audit *a = arg;
    a->pending_appended = a->pending_skipped = a->pending_no_facts = 0;
}

static void committed(void *arg, size_t n)
{
    struct audit *a = arg;
    (void)n;
    metric_add(a->m_appended, (long long)a->pending_appended);
    metric_add(a->m_skipped, (long long)a->pending_skipped);
    metric_add(a->m_no_facts, (long long)a->pending_no_facts);
    begun(a);
}

/* What the table cannot say: a key, when set, is long enough (also for --check-config). */
static sw_err audit_check(const struct cfg *c, char *err, size_t errlen)
{
    const char *key = cfg_str(c, "SHOUWEN_AUDIT_KEY");
    if (key[0] != '\0' && strlen(key) < 32) {
        snprintf(err, errlen, "SHOUWEN_AUDIT_KEY must hold at least 32 characters (it has %zu)",
                 strlen(key));
        return SW_EINVAL;
    }
    return SW_OK;
}

static sw_err audit_start(struct svc *s)
{
    const struct cfg *c = svc_cfg(s);
    char err[512] = "";
    struct audit *a = &the;
    const char *key = cfg_str(c, "SHOUWEN_AUDIT_KEY");
    a->masterlen = strlen(key);
    memcpy(a->master, key, a->masterlen);
    if (a->masterlen == 0)
        LOG(LOG_WARN, "AUDIT-NO-KEY",
            "SHOUWEN_AUDIT_KEY is not set: the chains are kept and verifiable, but no checkpoint "
            "is signed");
    a->checkpoint_ms = cfg_ms(c, "SHOUWEN_AUDIT_CHECKPOINT_INTERVAL");
    a->next_checkpoint = db_now_ms() + a->checkpoint_ms;
    subs_copy = strdup(cfg_str(c, "SHOUWEN_AUDIT_SUB_URLS"));
    if (subs_copy == NULL)
        return SW_ENOMEM;
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(subs_copy, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
        if (n == AUDIT_SUBS_MAX) {
            LOG(LOG_ERROR, "AUDIT-START",
                "refusing to start: SHOUWEN_AUDIT_SUB_URLS names more than %d addresses",
                AUDIT_SUBS_MAX);
            return SW_EINVAL;
        }
        subs[n++] = t;
    }
    subs[n] = NULL;
    a->m_appended = metrics_get(METRIC_COUNTER, "shouwen_audit_appended_total",
                                "Events appended to their site's hash chain", NULL);
    a->m_skipped =
        metrics_get(METRIC_COUNTER, "shouwen_audit_duplicates_total",
                    "Events read again that were already in the log (not appended)", NULL);
    a->m_no_facts = metrics_get(METRIC_COUNTER, "shouwen_audit_without_registration_total",
                                "Case events chained whose case.registered audit never saw "
                                "(left out of the report roll-ups)",
                                NULL);
    a->m_checkpoints =
        metrics_get(METRIC_COUNTER, "shouwen_audit_checkpoints_total", "Chain heads signed", NULL);
    a->m_checkpoint_errors = metrics_get(METRIC_COUNTER, "shouwen_audit_checkpoint_errors_total",
                                         "Checkpoints that could not be stored", NULL);
    struct bus_consumer_config bc = {
        .name = "audit",
        .types = NULL, /* every event */
        .batch = aud_batch,
        .committed = committed,
        .begun = begun,
        .arg = a,
        .db_url = cfg_str(c, "SHOUWEN_DATABASE_URL"),
        .sub_urls = subs,
        .batch_max = (int)cfg_int(c, "SHOUWEN_AUDIT_BATCH_MAX"),
        .batch_wait_ms = cfg_ms(c, "SHOUWEN_AUDIT_BATCH_WAIT"),
        /* every statement of aud_batch probes a key: prepared, planned once (db.h) */
        .keyed = true,
    };
    if (bus_consumer_start(&a->consumer, &bc, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "AUDIT-START", "refusing to start: %s", err);
        return SW_ENNG;
    }
    LOG(LOG_INFO, "AUDIT-START", "chaining every event; doorbells from %s; checkpoints %s",
        cfg_str(c, "SHOUWEN_AUDIT_SUB_URLS"), a->masterlen ? "signed" : "off (no key)");
    return SW_OK;
}

static void audit_tick(struct svc *s)
{
    struct audit *a = &the;
    long long now = db_now_ms();
    if (now < a->next_checkpoint || a->masterlen == 0)
        return;
    a->next_checkpoint = now + a->checkpoint_ms;
    PGconn *c = db_conn(svc_db(s));
    if (c == NULL)
        return;
    char err[512];
    int made = 0;
    if (aud_checkpoint(a, c, &made, err, sizeof(err)) != SW_OK) {
        metric_add(a->m_checkpoint_errors, 1);
        LOG(LOG_WARN, "AUDIT-CHECKPOINT", "%s (tried again in %lld ms)", err, a->checkpoint_ms);
        db_reset(svc_db(s));
    }
    metric_add(a->m_checkpoints, made);
}

static void audit_stop(struct svc *s)
{
    (void)s;
    bus_consumer_stop(the.consumer);
    the.consumer = NULL;
    free(subs_copy);
    subs_copy = NULL;
    memset(the.master, 0, sizeof(the.master));
}

static const struct svc_desc desc = {
    .name = "audit",
    .summary = "keeps the hash-chained audit log and the QA reports.\n\n"
               "  shouwen-audit verify SITE   recompute SITE's chain and its signed checkpoints, "
               "say where it breaks (exit 0: intact, 1: broken)",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_AUDIT_ADMIN_ADDR",
    .check = audit_check,
    .pub_env = "SHOUWEN_AUDIT_PUB_URL",
    .start = audit_start,
    .tick = audit_tick,
    .stop = audit_stop,
};

/*
 * shouwen-audit verify SITE: exit 0 when the chain verifies, 1 when it is
 * broken (the first bad entry named), 2 for a bad command line, 3 when
 * the chain could not be read.  With SHOUWEN_AUDIT_KEY set, the
 * checkpoints' signatures are checked too.
 */
static int verify(const char *site)
{
    struct cfg c;
    char err[1024];
    log_init("audit", LOG_WARN);
    if (cfg_load(&c, settings, sizeof(settings) / sizeof(settings[0]), err, sizeof(err)) != SW_OK) {
        fprintf(stderr, "shouwen-audit verify: %s\n", err);
        return 2;
    }
    int code = 3;
    PGconn *db = PQconnectdb(cfg_str(&c, "SHOUWEN_DATABASE_URL"));
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "shouwen-audit verify: could not connect: %s", PQerrorMessage(db));
        goto out;
    }
    const char *v[] = {site};
    PGresult *r = PQexecParams(db, "SELECT id::text FROM core.sites WHERE code = $1", 1, NULL, v,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "shouwen-audit verify: %s\n",
                PQresultStatus(r) != PGRES_TUPLES_OK ? PQerrorMessage(db) : "no such site");
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            code = 2;
        PQclear(r);
        goto out;
    }
    char site_id[37];
    snprintf(site_id, sizeof(site_id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *master = cfg_str(&c, "SHOUWEN_AUDIT_KEY");
    uint8_t key[AUDIT_HASH_LEN];
    if (master[0] != '\0')
        audit_site_key(master, strlen(master), site_id, key);
    struct audit_verdict vd;
    if (audit_verify(db, site_id, master[0] != '\0' ? key : NULL, &vd, err, sizeof(err)) != SW_OK) {
        fprintf(stderr, "shouwen-audit verify: %s\n", err);
        goto out;
    }
    char hex[2 * AUDIT_HASH_LEN + 1];
    crypto_hex(vd.head_hash, AUDIT_HASH_LEN, hex);
    if (vd.ok) {
        printf("site %s: chain verified: %" PRId64 " entries, head %s; %s\n", site, vd.checked,
               vd.checked ? hex : "(empty)", vd.detail);
        code = 0;
    } else {
        printf("site %s: chain BROKEN at entry %" PRId64 ": %s\n", site, vd.first_bad_seq,
               vd.detail);
        code = 1;
    }
out:
    PQfinish(db);
    cfg_fini(&c);
    return code;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: shouwen-audit verify SITE (settings in the environment, as "
                            "for the service)\n");
            return 2;
        }
        return verify(argv[2]);
    }
    return svc_main(&desc, argc, argv);
}
