/*
 * notification.h - the notification service's state, shared by its files.
 *
 * Two threads do the work, each with its own database session:
 *
 * - the consumer (common/bus.c, group "notification") hands on_event.c
 *   the wanted events of a transaction at once; for each it finds the
 *   site's subscriptions, resolves their audiences to people (or to the
 *   channel itself), renders the message (words.c) and writes one
 *   delivery per (event, recipient, channel) in the same transaction as
 *   its cursor: an event replayed after a crash makes nothing new;
 * - the sender (sender.c) keeps the pending deliveries of the partitions
 *   the consumer owns in a heap by due time, sends them through libcurl's
 *   multi interface (webhooks, SMTP, SMS gateways, chat robots), and
 *   records each attempt and the outcome in one transaction per batch of
 *   results; a conditional UPDATE (status still pending) makes a delivery
 *   recorded as delivered once, whatever is killed when.
 *
 * Each thread keeps its own cache of sites (sites.c): staff, departments,
 * channels, subscriptions, templates and settings; a change to any of them
 * bumps notification.settings_stamp and the caches reload.
 */
#ifndef SHOUWEN_NOTIFICATION_H
#define SHOUWEN_NOTIFICATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <nng/nng.h>

#include "buf.h"
#include "bus.h"
#include "calendar.h"
#include "err.h"
#include "metrics.h"
#include "notify.h"
#include "sitecache.h"

enum ntf_kind {
    NTF_WEBHOOK,
    NTF_EMAIL,
    NTF_SMS,
    NTF_WECOM,
    NTF_DINGTALK,
    NTF_FEISHU,
    NTF_SLACK,
    NTF_KINDS
};
extern const char *const ntf_kind_names[NTF_KINDS];
bool ntf_kind_parse(const char *s, enum ntf_kind *out);
/* Channels that reach one person each (an address per recipient), not a group. */
#define NTF_PERSONAL(k) ((k) == NTF_EMAIL || (k) == NTF_SMS)

struct ntf_channel {
    char id[37], name[65];
    enum ntf_kind kind;
    char *url, *secret; /* secret may be NULL */
    /* from settings */
    char *from, *username, *ca_file, *method, *content_type, *body_tmpl, *auth_header;
    bool starttls;
    char locale[8];
    int rate_per_s, burst, timeout_ms, max_attempts;
    int64_t max_age_us;
    bool active;
    struct ntf_bucket bucket; /* kept across reloads by the sender (by id) */
};

struct ntf_staff {
    char code[33], name[101], role[20], dept[33];
    char email[255], phone[33];
    bool active;
};

struct ntf_dept {
    char id[37], code[33], name[101];
    bool is_qa;
};

struct ntf_sub {
    char event_type[101];
    struct ntf_channel *channel;
    char audience[20];
    char dept[33]; /* "" = any */
    int min_urgency;
};

struct ntf_template {
    char event_type[101];
    char kind[16]; /* a kind name or "any" */
    char locale[8];
    bool customer; /* the wording for customers, not staff */
    char *subject, *body;
};

struct ntf_site {
    char id[37], code[17];
    struct cal_tz *tz;
    struct calendar cal; /* working time, for quiet hours */
    bool quiet_hours, customer_notices;
    int sms_daily_cap;
    struct ntf_staff *staff;
    size_t nstaff;
    struct ntf_dept *depts;
    size_t ndepts;
    struct ntf_channel *channels;
    size_t nchannels;
    struct ntf_sub *subs;
    size_t nsubs;
    struct ntf_template *templates;
    size_t ntemplates;
};

struct ntf_cache {
    struct sitecache sc; /* of struct ntf_site */
};

void ntf_cache_init(struct ntf_cache *c);
sw_err ntf_cache_check(struct ntf_cache *c, PGconn *db, bool *changed, char *err, size_t errlen);
sw_err ntf_site_get(struct ntf_cache *c, PGconn *db, const char *code, struct ntf_site **out,
                    char *err, size_t errlen);
void ntf_cache_clear(struct ntf_cache *c);
const struct ntf_staff *ntf_staff_find(const struct ntf_site *s, const char *code);
const struct ntf_dept *ntf_dept_find(const struct ntf_site *s, const char *code);
struct ntf_channel *ntf_channel_find(const struct ntf_site *s, const char *id);

/* ---- words.c: the built-in wording and the variables of an event ------------------------- */

/* What a case looks like to a message: read from core.cases in the consumer's transaction. */
struct ntf_case {
    char id[37], number[40], subject[1001], type[16], urgency[12], status[24];
    char dept[33], owner[33], first_responder[33];
    char customer_name[201], customer_phone[33], room[501], customer_email[255];
    bool consent; /* the customer agreed to receipts and updates */
};

/*
 * The subject and body for `event_type` over `kind` in `locale`: the
 * site's template (for the kind, then for any kind), else the built-in one.
 */
void ntf_words(const struct ntf_site *s, const char *event_type, enum ntf_kind kind,
               const char *locale, const char **subject, const char **body);

/*
 * What a customer is told of an event (a receipt, progress, the result and a
 * survey): the site's template for customers (for the kind, then any kind),
 * else the built-in one; false when customers are not told of that event.
 */
bool ntf_customer_words(const struct ntf_site *s, const char *event_type, enum ntf_kind kind,
                        const char *locale, const char **subject, const char **body);

/* Variables of one event for one recipient (NULL: a group channel), with values in Chinese
 * when zh.  `scratch` (6 strings) keeps what is made here. */
sw_err ntf_vars(const struct ntf_site *s, const Shouwen__V1__Envelope *env,
                const struct ntf_case *c, const struct ntf_staff *recipient, bool zh,
                char scratch[][160], const char *vals[NTF_VARS]);

/* "2026-11-23 14:05" in the site's time zone. */
void ntf_local_time(const struct ntf_site *s, int64_t t_us, char *out, size_t outlen);

/* ---- on_event.c -------------------------------------------------------------------------- */

/* A delivery, as the sender holds it. */
struct ntf_delivery {
    int64_t id;
    int64_t due_us, created_us;
    char site[17], case_id[37], event_id[37], event_type[101];
    char channel_id[37];
    char recipient[65];
    char *address, *subject, *body; /* owned */
    char message_id[48];
    int attempts;
    bool emergency;
};
void ntf_delivery_free(struct ntf_delivery *d);

struct ntf_sender;

struct notification {
    const char *db_url;
    nng_socket *pub;
    struct bus_consumer *consumer;
    struct ntf_cache cache;      /* the consumer's */
    struct ntf_delivery *staged; /* written in the open transaction, for the sender */
    size_t nstaged, capstaged;
    struct ntf_sender *sender;
    struct metric *m_made;       /* deliveries made */
    struct metric *m_no_address; /* recipients without an address for a personal channel */
    struct metric *m_held;       /* held by quiet hours */
};

sw_err ntf_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen);

/* ---- sender.c ---------------------------------------------------------------------------- */

struct ntf_sender_config {
    const char *db_url;
    nng_socket *pub;
    struct bus_consumer *consumer; /* whose partitions the sender keeps */
    int concurrency;               /* attempts in flight at once */
    int64_t retry_base_ms, retry_cap_ms;
    size_t queue_max;        /* deliveries held in memory */
    const char *allow_hosts; /* comma-separated; "" = any host */
};

sw_err ntf_sender_start(struct ntf_sender **out, const struct ntf_sender_config *cfg, char *err,
                        size_t errlen);
void ntf_sender_halt(struct ntf_sender *s);
void ntf_sender_stop(struct ntf_sender *s);
/* Deliveries just committed by the consumer: the sender takes them over (and frees them). */
void ntf_sender_push(struct ntf_sender *s, struct ntf_delivery *d, size_t n);
bool ntf_sender_ready(const struct ntf_sender *s);
/* The consumer saw the settings change: the sender reads them again before its next send. */
void ntf_sender_recheck(struct ntf_sender *s);

int64_t ntf_now_us(void);

#endif
