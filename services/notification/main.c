/*
 * shouwen-notification: tells the right people, over webhooks, mail, SMS and chat.
 *
 * This file wires the service together: its settings table, the bus
 * consumer (group "notification": replicas split the partitions) whose
 * handler is on_event.c, the sender thread (sender.c) that sends the same
 * partitions' deliveries, and the common start, loop and stop of svc.c.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "notification.h"
#include "svc.h"
#include "tls.h"

#define NOTIFICATION_SUBS_MAX 16

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    TLS_SETTINGS,
    SVC_ADMIN_SETTING("NOTIFICATION", "127.0.0.1:7404"),
    SVC_PUB_SETTING("NOTIFICATION", "ipc://{run}/notification.pub"),
    {"SHOUWEN_NOTIFICATION_SUB_URLS", CFG_STRING, 1, 2048,
     "ipc://{run}/intake.pub,ipc://{run}/routing.pub,ipc://{run}/escalation.pub", NULL,
     "nng addresses (comma-separated) of the PUB sockets whose doorbells notification dials; "
     "events are read from the database either way"},
    {"SHOUWEN_NOTIFICATION_BATCH_MAX", CFG_INT, 1, 10000, "500", NULL,
     "Most events turned into deliveries in one transaction"},
    BUS_BATCH_WAIT_SETTING("NOTIFICATION", "15ms"),
    {"SHOUWEN_NOTIFICATION_CONCURRENCY", CFG_INT, 1, 10000, "256", NULL,
     "Most attempts in flight at once (libcurl multi)"},
    {"SHOUWEN_NOTIFICATION_RETRY_BASE", CFG_DURATION, 10, 3600000, "1s", NULL,
     "Wait before the second attempt; it doubles with each failure (with jitter)"},
    {"SHOUWEN_NOTIFICATION_RETRY_CAP", CFG_DURATION, 10, 86400000, "1h", NULL,
     "Longest wait between attempts (a server's Retry-After is honoured up to it)"},
    {"SHOUWEN_NOTIFICATION_QUEUE_MAX", CFG_INT, 100, 10000000, "100000", NULL,
     "Pending deliveries held in memory; the rest wait in the database"},
    {"SHOUWEN_NOTIFICATION_ALLOW_HOSTS", CFG_STRING, 0, 4096, "", NULL,
     "If set, the only hosts messages may go to (comma-separated; *.example.org for a "
     "domain): a channel whose host is not listed sends nothing"},
};

static struct notification the;
static char *subs_copy;
static const char *subs[NOTIFICATION_SUBS_MAX + 1];

static void drop_staged(struct notification *nt)
{
    for (size_t i = 0; i < nt->nstaged; i++)
        ntf_delivery_free(&nt->staged[i]);
    nt->nstaged = 0;
}

/* A new transaction: what an earlier, rolled-back attempt staged is dropped. */
static void begun(void *arg)
{
    drop_staged(arg);
}

/* Committed: the deliveries written go to the sender (which takes their strings). */
static void committed(void *arg, size_t n)
{
    struct notification *nt = arg;
    (void)n;
    struct ntf_sender *sender = __atomic_load_n(&nt->sender, __ATOMIC_ACQUIRE);
    if (sender == NULL) { /* not started yet: it loads them from the database */
        drop_staged(nt);
        return;
    }
    ntf_sender_push(sender, nt->staged, nt->nstaged);
    nt->nstaged = 0;
}

/* Every event someone may subscribe to. */
static const char *const types[] = {"case.", "emergency.", "review.", "violation.", NULL};

static bool notification_ready(struct svc *s, char *why, size_t whylen)
{
    (void)s;
    if (!ntf_sender_ready(the.sender)) {
        snprintf(why, whylen, "the sender has not loaded its pending deliveries yet");
        return false;
    }
    return true;
}

static sw_err notification_start(struct svc *s)
{
    const struct cfg *c = svc_cfg(s);
    char err[512] = "";
    if (svc_pub_socket(s) == NULL) {
        LOG(LOG_ERROR, "NOTIFICATION-START", "no publish socket");
        return SW_ENNG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        LOG(LOG_ERROR, "NOTIFICATION-START", "refusing to start: libcurl could not be set up");
        return SW_ENOMEM;
    }
    subs_copy = strdup(cfg_str(c, "SHOUWEN_NOTIFICATION_SUB_URLS"));
    if (subs_copy == NULL)
        return SW_ENOMEM;
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(subs_copy, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
        if (n == NOTIFICATION_SUBS_MAX) {
            LOG(LOG_ERROR, "NOTIFICATION-START",
                "refusing to start: SHOUWEN_NOTIFICATION_SUB_URLS names more than %d addresses",
                NOTIFICATION_SUBS_MAX);
            return SW_EINVAL;
        }
        subs[n++] = t;
    }
    subs[n] = NULL;
    struct notification *nt = &the;
    nt->db_url = cfg_str(c, "SHOUWEN_DATABASE_URL");
    nt->pub = svc_pub_socket(s);
    ntf_cache_init(&nt->cache);
    nt->m_made =
        metrics_get(METRIC_COUNTER, "shouwen_notification_deliveries_made_total",
                    "Deliveries made from events (one per event, recipient and channel)", NULL);
    nt->m_no_address = metrics_get(METRIC_COUNTER, "shouwen_notification_no_address_total",
                                   "Recipients without an email address or phone number for a "
                                   "personal channel (not sent)",
                                   NULL);
    nt->m_held = metrics_get(METRIC_COUNTER, "shouwen_notification_held_total",
                             "Messages held by quiet hours until the next working period", NULL);
    struct bus_consumer_config bc = {
        .name = "notification",
        .types = types,
        .filter_types = true,
        .batch = ntf_batch,
        .committed = committed,
        .begun = begun,
        .arg = nt,
        .db_url = nt->db_url,
        .sub_urls = subs,
        .batch_max = (int)cfg_int(c, "SHOUWEN_NOTIFICATION_BATCH_MAX"),
        .batch_wait_ms = cfg_ms(c, "SHOUWEN_NOTIFICATION_BATCH_WAIT"),
    };
    if (bus_consumer_start(&nt->consumer, &bc, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "NOTIFICATION-START", "refusing to start: %s", err);
        return SW_ENNG;
    }
    struct ntf_sender_config sc = {
        .db_url = nt->db_url,
        .pub = nt->pub,
        .consumer = nt->consumer,
        .concurrency = (int)cfg_int(c, "SHOUWEN_NOTIFICATION_CONCURRENCY"),
        .retry_base_ms = cfg_ms(c, "SHOUWEN_NOTIFICATION_RETRY_BASE"),
        .retry_cap_ms = cfg_ms(c, "SHOUWEN_NOTIFICATION_RETRY_CAP"),
        .queue_max = (size_t)cfg_int(c, "SHOUWEN_NOTIFICATION_QUEUE_MAX"),
        .allow_hosts = cfg_str(c, "SHOUWEN_NOTIFICATION_ALLOW_HOSTS"),
    };
    struct ntf_sender *sender = NULL;
    if (ntf_sender_start(&sender, &sc, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "NOTIFICATION-START", "refusing to start: %s", err);
        return SW_ENOMEM;
    }
    __atomic_store_n(&nt->sender, sender, __ATOMIC_RELEASE);
    LOG(LOG_INFO, "NOTIFICATION-START", "sending; doorbells from %s%s%s",
        cfg_str(c, "SHOUWEN_NOTIFICATION_SUB_URLS"), sc.allow_hosts[0] ? "; hosts allowed: " : "",
        sc.allow_hosts);
    return SW_OK;
}

static void notification_stop(struct svc *s)
{
    (void)s;
    struct notification *nt = &the;
    /* the consumer pushes to the sender: it stops first, then the sender */
    bus_consumer_stop(nt->consumer);
    nt->consumer = NULL;
    ntf_sender_halt(nt->sender);
    ntf_sender_stop(nt->sender);
    nt->sender = NULL;
    drop_staged(nt);
    free(nt->staged);
    nt->staged = NULL;
    nt->capstaged = 0;
    ntf_cache_clear(&nt->cache);
    free(subs_copy);
    subs_copy = NULL;
    curl_global_cleanup();
}

static const struct svc_desc desc = {
    .name = "notification",
    .summary = "tells the right people, over webhooks, mail, SMS and chat.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_NOTIFICATION_ADMIN_ADDR",
    .pub_env = "SHOUWEN_NOTIFICATION_PUB_URL",
    .start = notification_start,
    .stop = notification_stop,
    .ready = notification_ready,
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
