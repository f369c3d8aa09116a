/*
 * shouwen-routing: gives every case the right owner and signs every transfer.
 *
 * This file wires the service together: its settings table, the bus
 * consumer (group "routing": replicas split the partitions), and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in on_case.c; the rules in rules.c and common/route.c.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "routing.h"
#include "svc.h"
#include "tls.h"

#define ROUTING_SUBS_MAX 16

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    TLS_SETTINGS,
    SVC_ADMIN_SETTING("ROUTING", "127.0.0.1:7402"),
    SVC_PUB_SETTING("ROUTING", "ipc://{run}/routing.pub"),
    {"SHOUWEN_ROUTING_SUB_URLS", CFG_STRING, 1, 2048, "ipc://{run}/intake.pub", NULL,
     "nng addresses (comma-separated) of the PUB sockets whose doorbells routing dials: "
     "intake's; events are read from the database either way"},
    {"SHOUWEN_ROUTING_BATCH_MAX", CFG_INT, 1, 10000, "1000", NULL,
     "Most events handled in one transaction (the events routing passes over count too)"},
    BUS_BATCH_WAIT_SETTING("ROUTING", "40ms"),
    {"SHOUWEN_ROUTING_CONSUMERS", CFG_INT, 1, 16, "1", NULL,
     "Consumer threads, each with its own database session and share of the partitions "
     "(on 2 cores one gives the highest rate, two the lowest latency: see the README)"},
};

#define ROUTING_CONSUMERS_MAX 16
static struct routing the[ROUTING_CONSUMERS_MAX];
static int nconsumers;
static char *subs_copy;
static const char *subs[ROUTING_SUBS_MAX + 1];

/* A new transaction: what an earlier, rolled-back attempt staged is dropped. */
static void begun(void *arg)
{
    struct routing *rt = arg;
    if (rt->ob != NULL)
        bus_outbox_clear(rt->ob);
    rt->pending = false;
}

/* Committed: the events written are announced (a lost announcement costs only latency). */
static void committed(void *arg, size_t n)
{
    struct routing *rt = arg;
    (void)n;
    if (rt->pending)
        bus_outbox_publish(rt->ob, *rt->pub);
    begun(rt);
}

static const char *const types[] = {"case.registered", "case.returned", NULL};

static sw_err routing_start(struct svc *s)
{
    const struct cfg *c = svc_cfg(s);
    char err[512] = "";
    static const char *const actions[] = {"nothing", "own_department", "direct_supervisor",
                                          "rule",    "fallback",       "loop"};
    struct metric *decisions[6];
    for (int i = 0; i < 6; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "action=\"%s\"", actions[i]);
        decisions[i] = metrics_get(METRIC_COUNTER, "shouwen_routing_decisions_total",
                                   "Routing decisions, by what was decided", labels);
    }
    struct metric *refused =
        metrics_get(METRIC_COUNTER, "shouwen_routing_refused_total",
                    "Routing decisions the workflow refused (the fallback applied)", NULL);
    struct metric *skipped =
        metrics_get(METRIC_COUNTER, "shouwen_routing_skipped_total",
                    "Events about cases that had moved on (nothing to do)", NULL);
    struct metric *loops =
        metrics_get(METRIC_COUNTER, "shouwen_routing_loops_total",
                    "Transfer loops caught (to the supervisor, flagged for QA)", NULL);
    if (svc_pub_socket(s) == NULL) {
        LOG(LOG_ERROR, "ROUTING-START", "no publish socket");
        return SW_ENNG;
    }
    /* the doorbells to dial */
    subs_copy = strdup(cfg_str(c, "SHOUWEN_ROUTING_SUB_URLS"));
    if (subs_copy == NULL)
        return SW_ENOMEM;
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(subs_copy, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
        if (n == ROUTING_SUBS_MAX) {
            LOG(LOG_ERROR, "ROUTING-START",
                "refusing to start: SHOUWEN_ROUTING_SUB_URLS names more than %d addresses",
                ROUTING_SUBS_MAX);
            return SW_EINVAL;
        }
        subs[n++] = t;
    }
    subs[n] = NULL;
    nconsumers = (int)cfg_int(c, "SHOUWEN_ROUTING_CONSUMERS");
    for (int i = 0; i < nconsumers; i++) {
        struct routing *rt = &the[i];
        rt->db_url = cfg_str(c, "SHOUWEN_DATABASE_URL");
        rt->pub = svc_pub_socket(s);
        memcpy(rt->m_decisions, decisions, sizeof(decisions));
        rt->m_refused = refused;
        rt->m_skipped = skipped;
        rt->m_loops = loops;
        struct bus_consumer_config bc = {
            .name = "routing",
            .types = types,
            .batch = routing_batch,
            .committed = committed,
            .begun = begun,
            .keyed = true,
            .filter_types = true,
            .arg = rt,
            .db_url = rt->db_url,
            .sub_urls = subs,
            .batch_max = (int)cfg_int(c, "SHOUWEN_ROUTING_BATCH_MAX"),
            .batch_wait_ms = cfg_ms(c, "SHOUWEN_ROUTING_BATCH_WAIT"),
        };
        if (bus_consumer_start(&rt->consumer, &bc, err, sizeof(err)) != SW_OK) {
            LOG(LOG_ERROR, "ROUTING-START", "refusing to start: %s", err);
            return SW_ENNG;
        }
    }
    LOG(LOG_INFO, "ROUTING-START",
        "routing new and returned cases with %d consumers; doorbells from %s", nconsumers,
        cfg_str(c, "SHOUWEN_ROUTING_SUB_URLS"));
    return SW_OK;
}

static void routing_stop(struct svc *s)
{
    (void)s;
    for (int i = 0; i < ROUTING_CONSUMERS_MAX; i++) {
        struct routing *rt = &the[i];
        bus_consumer_stop(rt->consumer); /* finishes the batch in hand and commits */
        rt->consumer = NULL;
        bus_outbox_free(rt->ob);
        rt->ob = NULL;
        rt->pending = false;
        routing_rules_free(rt);
    }
    free(subs_copy);
    subs_copy = NULL;
}

static const struct svc_desc desc = {
    .name = "routing",
    .summary = "gives every case the right owner and signs every transfer.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_ROUTING_ADMIN_ADDR",
    .pub_env = "SHOUWEN_ROUTING_PUB_URL",
    .start = routing_start,
    .stop = routing_stop,
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
