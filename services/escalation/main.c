/*
 * shouwen-escalation: keeps the clocks: deadlines, breaches and the escalation ladder.
 *
 * This file wires the service together: its settings table, the bus
 * consumer (group "escalation": replicas split the partitions) whose
 * handler is on_case.c, the timer thread (timer.c) that keeps the same
 * partitions' deadlines, and the common start, loop and stop of svc.c.
 */
#include <stdlib.h>
#include <string.h>

#include "escalation.h"
#include "log.h"
#include "svc.h"
#include "tls.h"

#define ESCALATION_SUBS_MAX 16

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    TLS_SETTINGS,
    SVC_ADMIN_SETTING("ESCALATION", "127.0.0.1:7403"),
    SVC_PUB_SETTING("ESCALATION", "ipc://{run}/escalation.pub"),
    {"SHOUWEN_ESCALATION_SUB_URLS", CFG_STRING, 1, 2048,
     "ipc://{run}/intake.pub,ipc://{run}/routing.pub,ipc://{run}/escalation.pub", NULL,
     "nng addresses (comma-separated) of the PUB sockets whose doorbells escalation dials: "
     "every service that changes cases; events are read from the database either way"},
    {"SHOUWEN_ESCALATION_BATCH_MAX", CFG_INT, 1, 10000, "500", NULL,
     "Most case events handled in one transaction"},
    BUS_BATCH_WAIT_SETTING("ESCALATION", "40ms"),
    {"SHOUWEN_ESCALATION_FIRE_BATCH_MAX", CFG_INT, 1, 100000, "10000", NULL,
     "Most deadlines fired in one transaction (a burst: per session)"},
    {"SHOUWEN_ESCALATION_FIRE_SESSIONS", CFG_INT, 1, 16, "2", NULL,
     "Database sessions that fire a burst of deadlines due at once in parallel (each case's "
     "on one of them); 1: the timer's own only"},
    {"SHOUWEN_ESCALATION_HORIZON", CFG_DURATION, 1000, 3600000, "60s", NULL,
     "How far ahead the timer holds deadlines in memory; the database holds the rest"},
    {"SHOUWEN_ESCALATION_REVIEW_HOUR", CFG_INT, 0, 23, "9", NULL,
     "Local hour at which each site's supervisor is asked for the daily review (and the "
     "manager, on the weekly day, for the weekly one)"},
    {"SHOUWEN_ESCALATION_REVIEW_WEEKDAY", CFG_INT, 1, 7, "1", NULL,
     "ISO weekday of the manager's weekly review (1 = Monday ... 7 = Sunday)"},
};

static struct escalation the;
static char *subs_copy;
static const char *subs[ESCALATION_SUBS_MAX + 1];

/* A new transaction: what an earlier, rolled-back attempt staged is dropped. */
static void begun(void *arg)
{
    struct escalation *e = arg;
    if (e->ob != NULL)
        bus_outbox_clear(e->ob);
    e->pending = false;
    e->nstaged = 0;
}

/* Committed: the events written are announced, the deadlines written go to the timer. */
static void committed(void *arg, size_t n)
{
    struct escalation *e = arg;
    (void)n;
    if (e->pending)
        bus_outbox_publish(e->ob, *e->pub);
    esc_timer_push(e->timer, e->staged, e->nstaged);
    begun(e);
}

/* Every event that can move a clock; not escalation's own breaches and violations. */
static const char *const types[] = {
    "case.registered",        "case.resolved_on_spot",
    "case.assigned",          "case.transferred",
    "case.accepted",          "case.returned",
    "case.forwarded",         "case.first_contact",
    "case.progress",          "case.resolved",
    "case.callback",          "case.reopened",
    "case.escalated",         "case.lead_designated",
    "case.referred_out",      "case.closed_unresolvable",
    "case.waiting",           "case.resumed",
    "emergency.acknowledged", NULL,
};

static bool escalation_ready(struct svc *s, char *why, size_t whylen)
{
    (void)s;
    if (!esc_timer_ready(the.timer)) {
        snprintf(why, whylen, "the timer has not loaded its deadlines yet");
        return false;
    }
    return true;
}

static sw_err escalation_start(struct svc *s)
{
    const struct cfg *c = svc_cfg(s);
    char err[512] = "";
    if (svc_pub_socket(s) == NULL) {
        LOG(LOG_ERROR, "ESCALATION-START", "no publish socket");
        return SW_ENNG;
    }
    subs_copy = strdup(cfg_str(c, "SHOUWEN_ESCALATION_SUB_URLS"));
    if (subs_copy == NULL)
        return SW_ENOMEM;
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(subs_copy, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
        if (n == ESCALATION_SUBS_MAX) {
            LOG(LOG_ERROR, "ESCALATION-START",
                "refusing to start: SHOUWEN_ESCALATION_SUB_URLS names more than %d addresses",
                ESCALATION_SUBS_MAX);
            return SW_EINVAL;
        }
        subs[n++] = t;
    }
    subs[n] = NULL;
    struct escalation *e = &the;
    e->db_url = cfg_str(c, "SHOUWEN_DATABASE_URL");
    e->pub = svc_pub_socket(s);
    esc_cache_init(&e->cache);
    e->m_recomputed = metrics_get(METRIC_COUNTER, "shouwen_escalation_recomputed_total",
                                  "Cases whose clocks were recomputed after an event", NULL);
    e->m_stale = metrics_get(METRIC_COUNTER, "shouwen_escalation_stale_total",
                             "Events only recorded: their case had moved on (a later event "
                             "recomputes)",
                             NULL);
    e->m_conflicts = metrics_get(METRIC_COUNTER, "shouwen_escalation_conflicts_total",
                                 "Conflict escalations (矛盾升级) recorded", NULL);
    struct bus_consumer_config bc = {
        .name = "escalation",
        .types = types,
        .batch = esc_batch,
        .committed = committed,
        .begun = begun,
        .arg = e,
        .db_url = e->db_url,
        .sub_urls = subs,
        .batch_max = (int)cfg_int(c, "SHOUWEN_ESCALATION_BATCH_MAX"),
        .batch_wait_ms = cfg_ms(c, "SHOUWEN_ESCALATION_BATCH_WAIT"),
    };
    if (bus_consumer_start(&e->consumer, &bc, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "ESCALATION-START", "refusing to start: %s", err);
        return SW_ENNG;
    }
    struct esc_timer_config tc = {
        .db_url = e->db_url,
        .pub = e->pub,
        .consumer = e->consumer,
        .horizon_us = cfg_ms(c, "SHOUWEN_ESCALATION_HORIZON") * 1000,
        .batch_max = (int)cfg_int(c, "SHOUWEN_ESCALATION_FIRE_BATCH_MAX"),
        .sessions = (int)cfg_int(c, "SHOUWEN_ESCALATION_FIRE_SESSIONS"),
        .review_hour = (int)cfg_int(c, "SHOUWEN_ESCALATION_REVIEW_HOUR"),
        .review_weekday = (int)cfg_int(c, "SHOUWEN_ESCALATION_REVIEW_WEEKDAY"),
    };
    if (esc_timer_start(&e->timer, &tc, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "ESCALATION-START", "refusing to start: %s", err);
        return SW_ENOMEM;
    }
    LOG(LOG_INFO, "ESCALATION-START", "keeping the clocks; doorbells from %s",
        cfg_str(c, "SHOUWEN_ESCALATION_SUB_URLS"));
    return SW_OK;
}

static void escalation_stop(struct svc *s)
{
    (void)s;
    struct escalation *e = &the;
    esc_timer_halt(e->timer);       /* it reads the consumer's partitions: it stops first */
    bus_consumer_stop(e->consumer); /* finishes the batch in hand and commits */
    e->consumer = NULL;
    esc_timer_stop(e->timer);
    e->timer = NULL;
    bus_outbox_free(e->ob);
    e->ob = NULL;
    esc_cache_clear(&e->cache);
    free(e->staged);
    e->staged = NULL;
    e->nstaged = e->capstaged = 0;
    free(subs_copy);
    subs_copy = NULL;
}

static const struct svc_desc desc = {
    .name = "escalation",
    .summary = "keeps the clocks: deadlines, breaches and the escalation ladder.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_ESCALATION_ADMIN_ADDR",
    .pub_env = "SHOUWEN_ESCALATION_PUB_URL",
    .start = escalation_start,
    .stop = escalation_stop,
    .ready = escalation_ready,
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
