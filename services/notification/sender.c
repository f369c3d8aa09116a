/*
 * sender.c - deliveries go out, through libcurl's multi interface.
 *
 * One thread, one database session, one multi handle (its connection
 * cache keeps connections to each endpoint alive between messages).  The
 * thread holds the pending deliveries of the partitions its consumer owns
 * in a heap by due time, loaded from the database whenever ownership
 * changes and fed by the consumer as it commits new ones; a set of the
 * ids it holds keeps a delivery from being held, and sent, twice.
 *
 * Each due delivery is checked (channel still there and enabled, age,
 * host allow-list, the channel's token bucket, the site's daily cap of
 * paid channels) and started; at most `concurrency` run at once, each with
 * its channel's timeout.  Finished attempts are recorded together, one
 * transaction for a batch of results: the attempt rows, and the delivery's
 * new state by a conditional UPDATE (still pending), so a delivery is
 * recorded as delivered once even if it was sent twice (a crash between
 * the send and the record sends it again, with the same webhook-id).
 * Delivered and dead deliveries are announced on the bus
 * (notification.delivered, notification.failed).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "db.h"
#include "log.h"
#include "notification.h"
#include "workflow.h"

#define RESPONSE_MAX   65536
#define RESULTS_MAX    20000 /* results waiting to be recorded before new sends pause */
#define RECORD_MAX     2000  /* results recorded in one transaction */
#define LOAD_RETRY_MS  500
#define STAMP_CHECK_MS 200 /* how often the settings stamp is read */

int64_t ntf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- a set of int64 ids (open addressing, backward-shift deletion) ------------------------ */

struct idset {
    int64_t *v; /* 0: empty */
    size_t cap, n;
};

static size_t slot(const struct idset *s, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (s->cap - 1);
}

static bool idset_has(const struct idset *s, int64_t id)
{
    if (s->cap == 0)
        return false;
    for (size_t i = slot(s, id);; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i] == 0)
            return false;
        if (s->v[i] == id)
            return true;
    }
}

static bool idset_add(struct idset *s, int64_t id);

static bool idset_grow(struct idset *s)
{
    struct idset t = {.cap = s->cap ? s->cap * 2 : 1024};
    t.v = calloc(t.cap, sizeof(*t.v));
    if (t.v == NULL)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i] != 0)
            (void)idset_add(&t, s->v[i]);
    free(s->v);
    *s = t;
    return true;
}

static bool idset_add(struct idset *s, int64_t id)
{
    if ((s->n + 1) * 2 > s->cap && !idset_grow(s))
        return false;
    size_t i = slot(s, id);
    while (s->v[i] != 0) {
        if (s->v[i] == id)
            return true;
        i = (i + 1) & (s->cap - 1);
    }
    s->v[i] = id;
    s->n++;
    return true;
}

static void idset_del(struct idset *s, int64_t id)
{
    if (s->cap == 0)
        return;
    size_t i = slot(s, id);
    while (s->v[i] != id) {
        if (s->v[i] == 0)
            return;
        i = (i + 1) & (s->cap - 1);
    }
    s->v[i] = 0;
    s->n--;
    /* shift back the entries that probed past the hole */
    for (size_t j = (i + 1) & (s->cap - 1); s->v[j] != 0; j = (j + 1) & (s->cap - 1)) {
        size_t home = slot(s, s->v[j]);
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            s->v[i] = s->v[j];
            s->v[j] = 0;
            i = j;
        }
    }
}

/* ---- the sender ----------------------------------------------------------------------------- */

enum outcome { OUT_DELIVERED, OUT_RETRY, OUT_DEAD };

struct result {
    struct ntf_delivery *d;
    int64_t started_us, next_us;
    int latency_ms;
    long code;
    enum outcome out;
    bool attempted; /* false: given up without an attempt (age, channel gone, cap) */
    char kind[12], channel[65];
    char error[512];
};

struct xfer {
    CURL *h;
    struct ntf_delivery *d;
    struct curl_slist *headers, *rcpt;
    struct buf resp;
    char *payload;
    size_t len, off; /* payload bytes and bytes read (SMTP upload) */
    int64_t started_us;
    enum ntf_kind kind;
    char channel[65];
    int64_t max_age_us;
    int max_attempts;
    char errbuf[CURL_ERROR_SIZE];
    struct xfer *next; /* free list */
    int slot;          /* in active[] while in flight */
};

struct bucket {
    char channel[37];
    struct ntf_bucket b;
};

struct ntf_sender {
    struct ntf_sender_config cfg;
    struct db *db;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    bool stop;
    struct ntf_delivery *in; /* pushed by the consumer */
    size_t nin, capin;
    CURLM *multi;
    struct ntf_delivery **heap;
    size_t n, cap;
    struct idset held; /* ids in the heap, in flight or waiting to be recorded */
    struct xfer *free_xfers;
    struct xfer **active; /* in flight: `inflight` of them */
    int inflight;
    struct result *results;
    size_t nresults, capresults;
    uint64_t gen;
    int64_t next_stamp_check;
    atomic_bool recheck; /* the consumer saw the settings change */
    bool loaded, overflow;
    atomic_bool ready;
    struct ntf_cache cache;
    struct bucket *buckets;
    size_t nbuckets;
    struct bus_outbox *ob;
    uint32_t partitions;
    char **allow;
    size_t nallow;
    char *allow_copy;
    struct metric *m_delivered, *m_retries, *m_dead, *m_limited, *m_capped, *m_queue, *m_inflight,
        *m_refused_host;
};

/* ---- heap by due time ---------------------------------------------------------------------- */

static bool before(const struct ntf_delivery *a, const struct ntf_delivery *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->id < b->id);
}

static bool heap_push(struct ntf_sender *s, struct ntf_delivery *d)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        struct ntf_delivery **p = realloc(s->heap, cap * sizeof(*p));
        if (p == NULL)
            return false;
        s->heap = p;
        s->cap = cap;
    }
    size_t i = s->n++;
    while (i > 0 && before(d, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = d;
    return true;
}

static struct ntf_delivery *heap_pop(struct ntf_sender *s)
{
    struct ntf_delivery *top = s->heap[0], *last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n > 0)
        s->heap[i] = last;
    return top;
}

static void forget(struct ntf_sender *s, struct ntf_delivery *d)
{
    idset_del(&s->held, d->id);
    ntf_delivery_free(d);
    free(d);
}

/* Takes `d` (a heap copy is made); false when it is already held or there is no room. */
static bool hold(struct ntf_sender *s, const struct ntf_delivery *d)
{
    if (idset_has(&s->held, d->id))
        return false;
    if (s->n >= s->cfg.queue_max) {
        s->overflow = true; /* it is in the database: a later load finds it */
        return false;
    }
    struct ntf_delivery *c = malloc(sizeof(*c));
    if (c == NULL || !idset_add(&s->held, d->id)) {
        free(c);
        s->overflow = true;
        return false;
    }
    *c = *d;
    if (!heap_push(s, c)) {
        idset_del(&s->held, d->id);
        free(c);
        s->overflow = true;
        return false;
    }
    return true;
}

/* ---- loading ------------------------------------------------------------------------------ */

static void drop_heap(struct ntf_sender *s)
{
    while (s->n > 0)
        forget(s, heap_pop(s));
}

static sw_err load(struct ntf_sender *s, PGconn *db, char *err, size_t errlen)
{
    uint32_t parts[BUS_PARTITIONS_MAX];
    size_t np = bus_consumer_partitions(s->cfg.consumer, parts, BUS_PARTITIONS_MAX);
    drop_heap(s);
    s->overflow = false;
    if (np == 0)
        return SW_OK;
    struct buf pa, busy;
    buf_init(&pa, (size_t)16 * BUS_PARTITIONS_MAX);
    buf_init(&busy, 1 << 24);
    sw_err rv = buf_puts(&pa, "{");
    for (size_t i = 0; rv == SW_OK && i < np; i++)
        rv = buf_printf(&pa, "%s%u", i ? "," : "", parts[i]);
    rv = rv ? rv : buf_puts(&pa, "}");
    /* what is in flight or waiting to be recorded is not loaded again */
    rv = rv ? rv : buf_puts(&busy, "{");
    size_t m = 0;
    for (size_t i = 0; rv == SW_OK && i < s->held.cap; i++)
        if (s->held.v[i] != 0)
            rv = buf_printf(&busy, "%s%" PRId64, m++ ? "," : "", s->held.v[i]);
    rv = rv ? rv : buf_puts(&busy, "}");
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", s->cfg.queue_max);
    const char *v[] = {buf_cstr(&pa), buf_cstr(&busy), lim};
    PGresult *r = NULL;
    if (rv == SW_OK)
        r = db_exec_fixed(
            db,
            "SELECT d.id, (extract(epoch FROM d.next_attempt_at) * 1000000)::bigint, (extract("
            "epoch FROM d.created_at) * 1000000)::bigint, s.code, coalesce(d.case_id::text, ''), "
            "d.event_id::text, d.event_type, d.channel_id::text, d.recipient, d.address, "
            "d.message_id, coalesce(d.subject, ''), d.body, d.attempts, d.emergency FROM "
            "notification.deliveries d JOIN core.sites s ON s.id = d.site_id WHERE d.status = "
            "'pending' AND d.partition = ANY($1::int[]) AND d.id <> ALL($2::bigint[]) ORDER BY "
            "d.next_attempt_at LIMIT $3",
            3, v);
    buf_free(&pa);
    buf_free(&busy);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory listing the partitions");
        return SW_ENOMEM;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "read the pending deliveries", err, errlen);
        PQclear(r);
        return rv;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        struct ntf_delivery d = {0};
        d.id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        d.due_us = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        d.created_us = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        snprintf(d.site, sizeof(d.site), "%s", PQgetvalue(r, i, 3));
        snprintf(d.case_id, sizeof(d.case_id), "%s", PQgetvalue(r, i, 4));
        snprintf(d.event_id, sizeof(d.event_id), "%s", PQgetvalue(r, i, 5));
        snprintf(d.event_type, sizeof(d.event_type), "%s", PQgetvalue(r, i, 6));
        snprintf(d.channel_id, sizeof(d.channel_id), "%s", PQgetvalue(r, i, 7));
        snprintf(d.recipient, sizeof(d.recipient), "%s", PQgetvalue(r, i, 8));
        d.address = PQgetisnull(r, i, 9) ? NULL : strdup(PQgetvalue(r, i, 9));
        snprintf(d.message_id, sizeof(d.message_id), "%s", PQgetvalue(r, i, 10));
        d.subject = strdup(PQgetvalue(r, i, 11));
        d.body = strdup(PQgetvalue(r, i, 12));
        d.attempts = atoi(PQgetvalue(r, i, 13));
        d.emergency = PQgetvalue(r, i, 14)[0] == 't';
        if (d.subject == NULL || d.body == NULL || (!PQgetisnull(r, i, 9) && !d.address) ||
            !hold(s, &d))
            ntf_delivery_free(&d);
    }
    if ((size_t)n >= s->cfg.queue_max)
        s->overflow = true;
    PQclear(r);
    LOG(LOG_INFO, "NOTIFICATION-SENDER", "holding %d pending deliveries of %zu partitions%s", n, np,
        s->overflow ? " (more wait in the database)" : "");
    return SW_OK;
}

static void take_pushed(struct ntf_sender *s)
{
    pthread_mutex_lock(&s->mu);
    struct ntf_delivery *in = s->in;
    size_t n = s->nin;
    s->in = NULL;
    s->nin = s->capin = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        if (!hold(s, &in[i]))
            ntf_delivery_free(&in[i]);
    free(in);
}

/* ---- starting an attempt ------------------------------------------------------------------ */

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (x->resp.len + n <= RESPONSE_MAX)
        (void)buf_append(&x->resp, p, n);
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (n > x->len - x->off)
        n = x->len - x->off;
    memcpy(p, x->payload + x->off, n);
    x->off += n;
    return n;
}

static struct bucket *bucket_of(struct ntf_sender *s, const char *channel_id)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        if (strcmp(s->buckets[i].channel, channel_id) == 0)
            return &s->buckets[i];
    struct bucket *p = realloc(s->buckets, (s->nbuckets + 1) * sizeof(*p));
    if (p == NULL)
        return NULL;
    s->buckets = p;
    struct bucket *b = &s->buckets[s->nbuckets++];
    memset(b, 0, sizeof(*b));
    snprintf(b->channel, sizeof(b->channel), "%s", channel_id);
    return b;
}

static bool host_allowed(const struct ntf_sender *s, const char *url)
{
    if (s->nallow == 0)
        return true;
    CURLU *u = curl_url();
    char *host = NULL;
    bool ok = false;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        size_t hl = strlen(host);
        for (size_t i = 0; i < s->nallow && !ok; i++) {
            const char *a = s->allow[i];
            if (strncmp(a, "*.", 2) == 0) { /* any host under the domain */
                size_t al = strlen(a + 1);
                ok = hl > al && strcasecmp(host + hl - al, a + 1) == 0;
            } else {
                ok = strcasecmp(host, a) == 0;
            }
        }
    }
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static void give_up(struct ntf_sender *s, struct ntf_delivery *d, const struct ntf_channel *ch,
                    const char *why, long code);
static sw_err add_result(struct ntf_sender *s, const struct result *r);

/* Appends `v` escaped for a JSON string (without quotes) or for a form, into b. */
static sw_err put_escaped(struct buf *b, const char *v, bool json)
{
    if (json) {
        struct buf t;
        buf_init(&t, 1 << 20);
        sw_err rv = buf_json_string(&t, v);
        if (rv == SW_OK)
            rv = buf_append(b, t.data + 1, t.len - 2);
        buf_free(&t);
        return rv;
    }
    sw_err rv = SW_OK;
    for (const unsigned char *p = (const unsigned char *)v; rv == SW_OK && *p; p++)
        rv =
            (isalnum(*p) || strchr("-._~", *p)) ? buf_append(b, p, 1) : buf_printf(b, "%%%02X", *p);
    return rv;
}

/* The SMS gateway's body: its template with {{phone}} and {{text}} filled in. */
static sw_err sms_body(struct buf *b, const struct ntf_channel *ch, const struct ntf_delivery *d)
{
    const char *t =
        ch->body_tmpl ? ch->body_tmpl : "{\"phone\":\"{{phone}}\",\"text\":\"{{text}}\"}";
    bool json = ch->content_type == NULL || strstr(ch->content_type, "json") != NULL;
    sw_err rv = SW_OK;
    while (rv == SW_OK && *t) {
        if (strncmp(t, "{{phone}}", 9) == 0) {
            rv = put_escaped(b, d->address ? d->address : "", json);
            t += 9;
        } else if (strncmp(t, "{{text}}", 8) == 0) {
            rv = put_escaped(b, d->body, json);
            t += 8;
        } else {
            rv = buf_append(b, t++, 1);
        }
    }
    return rv;
}

/* The request body of a chat robot or a webhook, into b; the URL (DingTalk signs it) into url. */
static sw_err http_body(struct buf *b, struct buf *url, const struct ntf_channel *ch,
                        const struct ntf_delivery *d, int64_t now_us)
{
    sw_err rv = buf_puts(url, ch->url);
    switch (ch->kind) {
    case NTF_WEBHOOK:
        return rv ? rv : buf_puts(b, d->body);
    case NTF_WECOM:
    case NTF_DINGTALK:
        if (rv == SW_OK && ch->kind == NTF_DINGTALK && ch->secret != NULL) {
            char q[256];
            rv = ntf_dingtalk_query(ch->secret, now_us / 1000, q, sizeof(q));
            /* the robot's URL carries its access_token, so the signature joins with '&' */
            if (rv == SW_OK && strchr(ch->url, '?') == NULL)
                rv = buf_printf(url, "?%s", q + 1);
            else if (rv == SW_OK)
                rv = buf_puts(url, q);
        }
        rv = rv ? rv : buf_puts(b, "{\"msgtype\":\"text\",\"text\":{\"content\":");
        rv = rv ? rv : buf_json_string(b, d->body);
        return rv ? rv : buf_puts(b, "}}");
    case NTF_FEISHU:
        rv = rv ? rv : buf_puts(b, "{");
        if (rv == SW_OK && ch->secret != NULL) {
            char sign[64];
            rv = ntf_feishu_sign(ch->secret, now_us / 1000000, sign, sizeof(sign));
            rv = rv ? rv
                    : buf_printf(b, "\"timestamp\":\"%" PRId64 "\",\"sign\":\"%s\",",
                                 now_us / 1000000, sign);
        }
        rv = rv ? rv : buf_puts(b, "\"msg_type\":\"text\",\"content\":{\"text\":");
        rv = rv ? rv : buf_json_string(b, d->body);
        return rv ? rv : buf_puts(b, "}}");
    case NTF_SLACK:
        rv = rv ? rv : buf_puts(b, "{\"text\":");
        rv = rv ? rv : buf_json_string(b, d->body);
        return rv ? rv : buf_puts(b, "}");
    default:
        return SW_EINVAL;
    }
}

/* The site's count of `kind` messages today, raised by one unless at the cap: false when capped. */
static sw_err under_cap(PGconn *db, const struct ntf_site *site, const char *kind, bool *ok,
                        char *err, size_t errlen)
{
    char day[16], cap[16];
    char local[32];
    ntf_local_time(site, ntf_now_us(), local, sizeof(local));
    snprintf(day, sizeof(day), "%.10s", local);
    snprintf(cap, sizeof(cap), "%d", site->sms_daily_cap);
    const char *v[] = {site->id, day, kind, cap};
    PGresult *r = db_exec_fixed(
        db,
        "INSERT INTO notification.daily_counts AS k (site_id, day, kind, sent) SELECT $1, $2, $3, "
        "1 WHERE $4::int > 0 ON CONFLICT (site_id, day, kind) DO UPDATE SET sent = k.sent + 1 "
        "WHERE k.sent < $4::int RETURNING sent",
        4, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "count the day's messages", err, errlen);
        PQclear(r);
        return rv;
    }
    *ok = PQntuples(r) == 1;
    PQclear(r);
    return SW_OK;
}

static struct xfer *xfer_get(struct ntf_sender *s)
{
    struct xfer *x = s->free_xfers;
    if (x != NULL) {
        s->free_xfers = x->next;
        curl_easy_reset(x->h);
    } else {
        x = calloc(1, sizeof(*x));
        if (x == NULL)
            return NULL;
        x->h = curl_easy_init();
        if (x->h == NULL) {
            free(x);
            return NULL;
        }
    }
    buf_init(&x->resp, RESPONSE_MAX);
    x->next = NULL;
    x->errbuf[0] = '\0';
    return x;
}

static void xfer_put(struct ntf_sender *s, struct xfer *x)
{
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->rcpt);
    x->headers = x->rcpt = NULL;
    buf_free(&x->resp);
    free(x->payload);
    x->payload = NULL;
    x->d = NULL;
    x->next = s->free_xfers;
    s->free_xfers = x;
}

static struct curl_slist *header(struct curl_slist *l, bool *oom, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct curl_slist *header(struct curl_slist *l, bool *oom, const char *fmt, ...)
{
    char h[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h, sizeof(h), fmt, ap);
    va_end(ap);
    struct curl_slist *n = curl_slist_append(l, h);
    if (n == NULL)
        *oom = true;
    return n != NULL ? n : l;
}

/* Starts one attempt of d over ch; on a setup failure gives up on it. */
static sw_err start(struct ntf_sender *s, struct ntf_delivery *d, const struct ntf_channel *ch)
{
    struct xfer *x = xfer_get(s);
    if (x == NULL)
        return SW_ENOMEM;
    int64_t now = ntf_now_us();
    x->d = d;
    x->kind = ch->kind;
    x->started_us = now;
    x->max_age_us = ch->max_age_us;
    x->max_attempts = ch->max_attempts;
    snprintf(x->channel, sizeof(x->channel), "%s", ch->name);
    CURL *h = x->h;
    bool oom = false;
    struct buf body, url;
    buf_init(&body, 1 << 21);
    buf_init(&url, 4096);
    sw_err rv = SW_OK;
    if (ch->kind == NTF_EMAIL) {
        const char *from = ch->from ? ch->from : "shouwen@localhost";
        rv = ntf_mime(&body, from, d->address ? d->address : "", d->subject, d->body, d->message_id,
                      now / 1000000);
        rv = rv ? rv : buf_puts(&url, ch->url);
        char angle[300];
        snprintf(angle, sizeof(angle), "<%s>", from);
        curl_easy_setopt(h, CURLOPT_MAIL_FROM, angle);
        snprintf(angle, sizeof(angle), "<%s>", d->address ? d->address : "");
        x->rcpt = curl_slist_append(NULL, angle);
        oom = x->rcpt == NULL;
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, x->rcpt);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        if (ch->starttls)
            curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        if (ch->username != NULL) {
            curl_easy_setopt(h, CURLOPT_USERNAME, ch->username);
            if (ch->secret != NULL)
                curl_easy_setopt(h, CURLOPT_PASSWORD, ch->secret);
        }
    } else {
        if (ch->kind == NTF_SMS) {
            rv = sms_body(&body, ch, d);
            rv = rv ? rv : buf_puts(&url, ch->url);
            x->headers = header(x->headers, &oom, "Content-Type: %s",
                                ch->content_type ? ch->content_type : "application/json");
            if (ch->auth_header != NULL && ch->secret != NULL)
                x->headers = header(x->headers, &oom, "%s: %s", ch->auth_header, ch->secret);
            if (ch->method != NULL)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, ch->method);
        } else {
            rv = http_body(&body, &url, ch, d, now);
            x->headers = header(x->headers, &oom, "Content-Type: application/json");
        }
        if (rv == SW_OK && ch->kind == NTF_WEBHOOK) {
            char sig[128] = "";
            x->headers = header(x->headers, &oom, "webhook-id: %s", d->message_id);
            x->headers = header(x->headers, &oom, "webhook-timestamp: %" PRId64, now / 1000000);
            if (ch->secret != NULL) {
                rv = ntf_webhook_signature(ch->secret, d->message_id, now / 1000000, body.data,
                                           body.len, sig, sizeof(sig));
                x->headers = header(x->headers, &oom, "webhook-signature: %s", sig);
            }
        }
        x->headers = header(x->headers, &oom, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an answer, not a hop */
    }
    if (rv == SW_OK && !oom) {
        x->len = body.len;
        x->off = 0;
        x->payload = body.data; /* the transfer owns it now */
        body.data = NULL;
        body.len = body.cap = 0;
        if (ch->kind != NTF_EMAIL) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->payload);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->len);
        } else {
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len);
        }
        curl_easy_setopt(h, CURLOPT_URL, buf_cstr(&url));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ch->timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ch->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "shouwen-notification/1");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(h, CURLOPT_PRIVATE, x);
        if (ch->ca_file != NULL)
            curl_easy_setopt(h, CURLOPT_CAINFO, ch->ca_file);
        if (curl_multi_add_handle(s->multi, h) != CURLM_OK)
            rv = SW_ENOMEM;
    }
    buf_free(&body);
    buf_free(&url);
    if (rv != SW_OK || oom) {
        xfer_put(s, x);
        give_up(s, d, ch,
                rv == SW_EINVAL ? "the message cannot be built (a header value holds a line "
                                  "break, or the secret is not valid base64)"
                                : "out of memory building the message",
                0);
        return SW_OK;
    }
    x->slot = s->inflight;
    s->active[s->inflight++] = x;
    return SW_OK;
}

/* ---- outcomes ----------------------------------------------------------------------------- */

static sw_err add_result(struct ntf_sender *s, const struct result *r)
{
    if (s->nresults == s->capresults) {
        size_t cap = s->capresults ? s->capresults * 2 : 256;
        struct result *p = realloc(s->results, cap * sizeof(*p));
        if (p == NULL)
            return SW_ENOMEM;
        s->results = p;
        s->capresults = cap;
    }
    s->results[s->nresults++] = *r;
    return SW_OK;
}

/* Dead without an attempt (or with an attempt that could not start). */
static void give_up(struct ntf_sender *s, struct ntf_delivery *d, const struct ntf_channel *ch,
                    const char *why, long code)
{
    struct result r = {.d = d, .started_us = ntf_now_us(), .out = OUT_DEAD, .code = code};
    snprintf(r.error, sizeof(r.error), "%s", why);
    snprintf(r.kind, sizeof(r.kind), "%s", ch ? ntf_kind_names[ch->kind] : "");
    snprintf(r.channel, sizeof(r.channel), "%s", ch ? ch->name : "");
    if (add_result(s, &r) != SW_OK) /* recorded on a later load */
        forget(s, d);
}

/* A chat robot answers 200 with its own error code in the body. */
static bool robot_error(const struct xfer *x, char *why, size_t whylen, bool *retry)
{
    *retry = false;
    if (x->kind == NTF_WEBHOOK || x->kind == NTF_SMS || x->kind == NTF_SLACK ||
        x->kind == NTF_EMAIL || x->resp.len == 0)
        return false;
    json_error_t je;
    json_t *j = json_loadb(x->resp.data, x->resp.len, 0, &je);
    if (j == NULL)
        return false;
    json_t *code = json_object_get(j, "errcode");
    if (code == NULL)
        code = json_object_get(j, "code");
    if (code == NULL)
        code = json_object_get(j, "StatusCode");
    json_int_t c = json_is_integer(code) ? json_integer_value(code) : 0;
    if (c != 0) {
        const char *msg = json_string_value(json_object_get(j, "errmsg"));
        if (msg == NULL)
            msg = json_string_value(json_object_get(j, "msg"));
        snprintf(why, whylen, "the robot answered error %lld: %s", (long long)c,
                 msg ? msg : "(no message)");
        /* rate limits of WeCom (45009), DingTalk (130101) and Feishu (11232) pass */
        *retry = c == 45009 || c == 130101 || c == 11232;
    }
    json_decref(j);
    return c != 0;
}

static uint32_t rnd(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = (uint32_t)ntf_now_us();
    return v;
}

static void finished(struct ntf_sender *s, CURL *h, CURLcode cc)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(s->multi, h);
    s->active[x->slot] = s->active[--s->inflight];
    s->active[x->slot]->slot = x->slot;
    struct ntf_delivery *d = x->d;
    int64_t now = ntf_now_us();
    struct result r = {.d = d, .started_us = x->started_us, .attempted = true};
    r.latency_ms = (int)((now - x->started_us) / 1000);
    snprintf(r.kind, sizeof(r.kind), "%s", ntf_kind_names[x->kind]);
    snprintf(r.channel, sizeof(r.channel), "%s", x->channel);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    r.code = code;
    bool smtp = x->kind == NTF_EMAIL;
    bool ok = cc == CURLE_OK && (smtp || (code >= 200 && code < 300));
    bool retry = false;
    if (ok && robot_error(x, r.error, sizeof(r.error), &retry)) {
        ok = false;
    } else if (!ok) {
        bool transport = cc != CURLE_OK && (code == 0 || cc == CURLE_OPERATION_TIMEDOUT);
        retry = ntf_retryable(smtp, code, transport);
        if (cc != CURLE_OK)
            snprintf(r.error, sizeof(r.error), "%s",
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
        else
            snprintf(r.error, sizeof(r.error), "answered %ld: %.300s", code,
                     x->resp.len ? buf_cstr(&x->resp) : "");
    }
    int attempt = d->attempts + 1;
    if (ok) {
        r.out = OUT_DELIVERED;
    } else {
        curl_off_t after = 0;
        curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &after);
        int64_t wait = ntf_backoff_ms(attempt, s->cfg.retry_base_ms, s->cfg.retry_cap_ms, rnd(),
                                      (int64_t)after * 1000);
        r.next_us = now + wait * 1000;
        if (!retry) {
            r.out = OUT_DEAD;
        } else if (attempt >= x->max_attempts) {
            r.out = OUT_DEAD;
            size_t l = strlen(r.error);
            snprintf(r.error + l, sizeof(r.error) - l, " (attempt %d of %d: giving up)", attempt,
                     x->max_attempts);
        } else if (r.next_us > d->created_us + x->max_age_us) {
            r.out = OUT_DEAD;
            size_t l = strlen(r.error);
            snprintf(r.error + l, sizeof(r.error) - l,
                     " (the next attempt would be past the "
                     "channel's max_age: giving up)");
        } else {
            r.out = OUT_RETRY;
        }
    }
    xfer_put(s, x);
    if (add_result(s, &r) != SW_OK)
        forget(s, d); /* still pending in the database: a later load sends it again */
}

/* Announces an outcome on the bus (staged in the sender's outbox). */
static sw_err announce(struct ntf_sender *s, const struct result *r)
{
    const struct ntf_delivery *d = r->d;
    Shouwen__V1__Envelope e = SHOUWEN__V1__ENVELOPE__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
    actor.external_system = "notification";
    e.actor = &actor;
    e.site = (char *)d->site;
    e.case_id = (char *)d->case_id;
    char nid[37];
    const char *m = d->message_id + 4; /* 32 hex digits: the delivery's id as a UUID */
    snprintf(nid, sizeof(nid), "%.8s-%.4s-%.4s-%.4s-%.12s", m, m + 8, m + 12, m + 16, m + 20);
    Shouwen__V1__NotificationDelivered ok = SHOUWEN__V1__NOTIFICATION_DELIVERED__INIT;
    Shouwen__V1__NotificationFailed bad = SHOUWEN__V1__NOTIFICATION_FAILED__INIT;
    char *kind = (char *)r->kind, *target = (char *)r->channel, *tmpl = (char *)d->event_type;
    if (r->out == OUT_DELIVERED) {
        e.type = "notification.delivered";
        e.event_case = SHOUWEN__V1__ENVELOPE__EVENT_NOTIFICATION_DELIVERED;
        ok.notification_id = nid;
        ok.source_event_id = (char *)d->event_id;
        ok.channel = kind;
        ok.target = target;
        ok.template_ = tmpl;
        ok.attempt = d->attempts + 1;
        ok.status_code = (int32_t)r->code;
        e.notification_delivered = &ok;
    } else {
        e.type = "notification.failed";
        e.event_case = SHOUWEN__V1__ENVELOPE__EVENT_NOTIFICATION_FAILED;
        bad.notification_id = nid;
        bad.source_event_id = (char *)d->event_id;
        bad.channel = kind;
        bad.target = target;
        bad.template_ = tmpl;
        bad.attempt = d->attempts + (r->attempted ? 1 : 0);
        bad.status_code = (int32_t)r->code;
        bad.error = (char *)r->error;
        e.notification_failed = &bad;
    }
    return bus_outbox_add(s->ob, &e);
}

/*
 * Records a batch of results in one transaction; then retries go back to
 * the heap.  The update finds each delivery by its key: guarded
 * (db_exec_guarded), or the plan made on a near-empty table joined the
 * batch to every pending delivery, read through deliveries_pending_idx,
 * a backlog read again for each batch of results.  "Neither delivered nor
 * dead" is pending (the table's CHECK), said so that the planner cannot
 * match it to that index's predicate, status = 'pending', and read the
 * index whole, as it did even under the guards.  The attempts are the
 * updated rows' own (RETURNING), joined to nothing: under the guards a
 * join of the two would be a nested loop, quadratic in the batch.
 */
static sw_err record(struct ntf_sender *s, PGconn *db, char *err, size_t errlen)
{
    size_t n = s->nresults < RECORD_MAX ? s->nresults : RECORD_MAX;
    if (n == 0)
        return SW_OK;
    struct buf a[10];
    sw_err rv = SW_OK;
    for (int k = 0; k < 10; k++) {
        buf_init(&a[k], 1 << 26);
        rv = rv ? rv : buf_puts(&a[k], "{");
    }
    static const char *const outs[] = {"delivered", "retry", "dead"};
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        const struct result *r = &s->results[i];
        char id[24], att[16], st[24], lat[16], code[24], next[24];
        snprintf(id, sizeof(id), "%" PRId64, r->d->id);
        snprintf(att, sizeof(att), "%d", r->d->attempts + (r->attempted ? 1 : 0));
        snprintf(st, sizeof(st), "%" PRId64, r->started_us);
        snprintf(lat, sizeof(lat), "%d", r->latency_ms);
        snprintf(code, sizeof(code), "%ld", r->code);
        snprintf(next, sizeof(next), "%" PRId64, r->next_us ? r->next_us : r->started_us);
        const char *v[10] = {id,
                             att,
                             outs[r->out],
                             st,
                             lat,
                             r->code ? code : NULL,
                             r->error[0] ? r->error : NULL,
                             next,
                             r->attempted ? "t" : "f",
                             NULL};
        for (int k = 0; rv == SW_OK && k < 9; k++)
            rv = buf_pg_elem(&a[k], i == 0, v[k]);
    }
    for (int k = 0; rv == SW_OK && k < 9; k++)
        rv = buf_puts(&a[k], "}");
    if (rv != SW_OK) {
        for (int k = 0; k < 10; k++)
            buf_free(&a[k]);
        snprintf(err, errlen, "out of memory recording results");
        return rv;
    }
    const char *v[9];
    for (int k = 0; k < 9; k++)
        v[k] = buf_cstr(&a[k]);
    bus_outbox_clear(s->ob);
    PGresult *r = PQexec(db, "BEGIN");
    rv = PQresultStatus(r) == PGRES_COMMAND_OK ? SW_OK : db_fail(db, r, "begin", err, errlen);
    PQclear(r);
    bool *counted = calloc(n, sizeof(bool));
    if (counted == NULL)
        rv = rv ? rv : SW_ENOMEM;
    if (rv == SW_OK) {
        r = db_exec_guarded(
            db,
            "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], "
            "$5::int[], $6::int[], $7::text[], $8::bigint[], $9::bool[]) AS u(id, att, out, st, "
            "lat, code, err, nxt, tried)), "
            "d AS (UPDATE notification.deliveries d SET status = "
            "CASE u.out WHEN 'retry' THEN 'pending' ELSE u.out END, attempts = u.att, "
            "next_attempt_at = timestamptz 'epoch' + u.nxt * interval '1 microsecond', "
            "delivered_at = CASE WHEN u.out = 'delivered' THEN timestamptz 'epoch' + (u.st + "
            "u.lat::bigint * 1000) * interval '1 microsecond' END, last_code = u.code, "
            "last_error = u.err, held = false "
            "FROM u WHERE d.id = u.id AND d.status NOT IN ('delivered', 'dead') "
            "RETURNING d.id, u.att, u.out, u.st, u.lat, u.code, u.err, u.tried), "
            "a AS (INSERT INTO notification.attempts (delivery_id, attempt, started_at, "
            "latency_ms, outcome, response_code, error) SELECT d.id, d.att, timestamptz 'epoch' + "
            "d.st * interval '1 microsecond', d.lat, d.out, d.code, left(d.err, 2000) FROM d "
            "WHERE d.tried ON CONFLICT DO NOTHING) "
            "SELECT id FROM d",
            9, v);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rv = db_fail(db, r, "record the attempts", err, errlen);
        } else {
            /* only what this transaction changed is announced (and counted) */
            int m = PQntuples(r);
            for (int k = 0; k < m; k++) {
                int64_t id = strtoll(PQgetvalue(r, k, 0), NULL, 10);
                for (size_t i = 0; i < n; i++)
                    if (s->results[i].d->id == id && !counted[i]) {
                        counted[i] = true;
                        break;
                    }
            }
            for (size_t i = 0; rv == SW_OK && i < n; i++)
                if (counted[i] && s->results[i].out != OUT_RETRY)
                    rv = announce(s, &s->results[i]);
            if (rv == SW_OK && bus_outbox_len(s->ob) > 0)
                rv = bus_outbox_write(s->ob, db, err, errlen);
        }
        PQclear(r);
    }
    for (int k = 0; k < 10; k++)
        buf_free(&a[k]);
    if (rv == SW_OK) {
        r = PQexec(db, "COMMIT");
        rv = PQresultStatus(r) == PGRES_COMMAND_OK ? SW_OK : db_fail(db, r, "commit", err, errlen);
        PQclear(r);
    }
    if (rv != SW_OK) {
        PQclear(PQexec(db, "ROLLBACK"));
        bus_outbox_clear(s->ob);
        free(counted);
        return rv;
    }
    bus_outbox_publish(s->ob, *s->cfg.pub);
    for (size_t i = 0; i < n; i++) {
        struct result *x = &s->results[i];
        if (counted[i]) {
            if (x->out == OUT_DELIVERED)
                metric_add(s->m_delivered, 1);
            else if (x->out == OUT_RETRY)
                metric_add(s->m_retries, 1);
            else
                metric_add(s->m_dead, 1);
            if (x->out == OUT_DEAD)
                LOG(LOG_WARN, "NOTIFICATION-DEAD", "delivery %" PRId64 " (%s over %s to %s): %s",
                    x->d->id, x->d->event_type, x->channel,
                    x->d->recipient[0] ? x->d->recipient : "the channel", x->error);
        }
        if (counted[i] && x->out == OUT_RETRY) {
            x->d->attempts++;
            x->d->due_us = x->next_us;
            if (heap_push(s, x->d))
                continue;
        }
        forget(s, x->d); /* done, or recorded by someone else: not ours any more */
    }
    free(counted);
    memmove(s->results, s->results + n, (s->nresults - n) * sizeof(*s->results));
    s->nresults -= n;
    return SW_OK;
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Starts what is due, as far as concurrency allows; returns when the next is due. */
static int64_t start_due(struct ntf_sender *s, PGconn *db)
{
    int64_t now = ntf_now_us();
    char err[512];
    while (s->n > 0 && s->inflight < s->cfg.concurrency && s->nresults < RESULTS_MAX) {
        if (s->heap[0]->due_us > now)
            return s->heap[0]->due_us;
        struct ntf_delivery *d = heap_pop(s);
        struct ntf_site *site = NULL;
        sw_err rv = ntf_site_get(&s->cache, db, d->site, &site, err, sizeof(err));
        if (rv != SW_OK) {
            d->due_us = now + 1000000; /* the database will answer again */
            (void)heap_push(s, d);
            return now + 100000;
        }
        struct ntf_channel *ch = ntf_channel_find(site, d->channel_id);
        if (ch == NULL) {
            give_up(s, d, NULL, "the channel was deleted", 0);
            continue;
        }
        if (!ch->active) {
            give_up(s, d, ch, "the channel is disabled", 0);
            continue;
        }
        if (now > d->created_us + ch->max_age_us) {
            give_up(s, d, ch, "older than the channel's max_age: not sent", 0);
            continue;
        }
        if (!host_allowed(s, ch->url)) {
            metric_add(s->m_refused_host, 1);
            give_up(s, d, ch,
                    "the channel's host is not in SHOUWEN_NOTIFICATION_ALLOW_HOSTS: not sent", 0);
            continue;
        }
        struct bucket *b = bucket_of(s, ch->id);
        int64_t wait = b != NULL ? ntf_bucket_take(&b->b, now, ch->rate_per_s, ch->burst) : 0;
        if (wait > 0) {
            metric_add(s->m_limited, 1);
            d->due_us = now + wait;
            if (!heap_push(s, d))
                forget(s, d);
            continue;
        }
        if (ch->kind == NTF_SMS) {
            bool ok = true;
            if (under_cap(db, site, "sms", &ok, err, sizeof(err)) != SW_OK) {
                d->due_us = now + 1000000;
                (void)heap_push(s, d);
                return now + 100000;
            }
            if (!ok) {
                metric_add(s->m_capped, 1);
                char why[160];
                snprintf(why, sizeof(why), "the site's daily SMS cap (%d) is reached: not sent",
                         site->sms_daily_cap);
                give_up(s, d, ch, why, 0);
                continue;
            }
        }
        if (start(s, d, ch) != SW_OK) {
            d->due_us = now + 1000000;
            if (!heap_push(s, d))
                forget(s, d);
            return now + 100000;
        }
    }
    return s->n > 0 ? s->heap[0]->due_us : now + 1000000;
}

static void run_transfers(struct ntf_sender *s, int64_t until_us)
{
    int64_t now = ntf_now_us();
    int ms = until_us > now ? (int)((until_us - now + 999) / 1000) : 0;
    if (ms > 100)
        ms = 100;
    int numfds = 0;
    curl_multi_poll(s->multi, NULL, 0, ms, &numfds);
    int running = 0;
    curl_multi_perform(s->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE)
            finished(s, m->easy_handle, m->data.result);
}

static bool stopping(struct ntf_sender *s)
{
    pthread_mutex_lock(&s->mu);
    bool v = s->stop;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static _Thread_local struct ntf_sender *sender_self;

static int sender_stopping(void)
{
    return sender_self != NULL && stopping(sender_self);
}

static void *run(void *arg)
{
    struct ntf_sender *s = arg;
    char err[512];
    int64_t retry_at = 0;
    sender_self = s;
    while (!stopping(s)) {
        if (db_tick(s->db, false, sender_stopping) != SW_OK) {
            atomic_store(&s->ready, false);
            s->loaded = false;
            run_transfers(s, ntf_now_us() + 200000);
            continue;
        }
        PGconn *db = db_conn(s->db);
        if (s->ob == NULL && (bus_partitions(db, &s->partitions, err, sizeof(err)) != SW_OK ||
                              bus_outbox_alloc(&s->ob, s->partitions) != SW_OK)) {
            LOG(LOG_WARN, "NOTIFICATION-SENDER", "%s", err);
            db_reset(s->db);
            continue;
        }
        int64_t now = ntf_now_us();
        if (now < retry_at) {
            run_transfers(s, retry_at);
            continue;
        }
        bool changed = false;
        sw_err rv = SW_OK;
        /* what the consumer pushed is taken first: a settings change it saw before making
         * those deliveries is then seen here too, before any of them is sent */
        take_pushed(s);
        if (now >= s->next_stamp_check || atomic_exchange(&s->recheck, false)) {
            rv = ntf_cache_check(&s->cache, db, &changed, err, sizeof(err));
            s->next_stamp_check = now + (int64_t)STAMP_CHECK_MS * 1000;
        }
        uint64_t gen = bus_consumer_generation(s->cfg.consumer);
        if (rv == SW_OK &&
            (!s->loaded || gen != s->gen || (s->overflow && s->n < s->cfg.queue_max / 2))) {
            s->gen = gen;
            pthread_mutex_lock(&s->mu);
            for (size_t i = 0; i < s->nin; i++) /* all of it is in the database too */
                ntf_delivery_free(&s->in[i]);
            s->nin = 0;
            pthread_mutex_unlock(&s->mu);
            rv = load(s, db, err, sizeof(err));
            s->loaded = rv == SW_OK;
            if (rv == SW_OK && (bus_consumer_owned(s->cfg.consumer) > 0 || gen > 0))
                atomic_store(&s->ready, true);
        }
        if (rv == SW_OK) {
            int64_t next = start_due(s, db);
            if (s->nresults > 0)
                next = ntf_now_us(); /* record soon, but let transfers run first */
            run_transfers(s, next);
            rv = record(s, db, err, sizeof(err));
        }
        metric_set(s->m_queue, (int64_t)s->n);
        metric_set(s->m_inflight, s->inflight);
        if (rv != SW_OK) {
            LOG(LOG_WARN, "NOTIFICATION-SENDER", "%s", err);
            if (rv == SW_EDBDOWN)
                db_reset(s->db);
            retry_at = ntf_now_us() + (int64_t)LOAD_RETRY_MS * 1000;
        }
    }
    return NULL;
}

/* ---- life ----------------------------------------------------------------------------------- */

sw_err ntf_sender_start(struct ntf_sender **out, const struct ntf_sender_config *cfg, char *err,
                        size_t errlen)
{
    struct ntf_sender *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SW_ENOMEM;
    s->cfg = *cfg;
    ntf_cache_init(&s->cache);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    s->active = calloc((size_t)cfg->concurrency + 1, sizeof(*s->active));
    if (s->active == NULL) {
        free(s);
        return SW_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->allow_copy = strdup(cfg->allow_hosts ? cfg->allow_hosts : "");
    if (s->allow_copy == NULL) {
        ntf_sender_stop(s);
        return SW_ENOMEM;
    }
    for (char *save = NULL, *t = strtok_r(s->allow_copy, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
        char **p = realloc(s->allow, (s->nallow + 1) * sizeof(*p));
        if (p == NULL) {
            ntf_sender_stop(s);
            return SW_ENOMEM;
        }
        s->allow = p;
        s->allow[s->nallow++] = t;
    }
    s->m_delivered = metrics_get(METRIC_COUNTER, "shouwen_notification_delivered_total",
                                 "Deliveries recorded as delivered", NULL);
    s->m_retries = metrics_get(METRIC_COUNTER, "shouwen_notification_retries_total",
                               "Failed attempts that will be tried again", NULL);
    s->m_dead = metrics_get(METRIC_COUNTER, "shouwen_notification_dead_total",
                            "Deliveries given up (dead letters)", NULL);
    s->m_limited = metrics_get(METRIC_COUNTER, "shouwen_notification_rate_limited_total",
                               "Sends put off by a channel's rate limit", NULL);
    s->m_capped = metrics_get(METRIC_COUNTER, "shouwen_notification_capped_total",
                              "Messages not sent: the site's daily cap of a paid channel", NULL);
    s->m_refused_host = metrics_get(METRIC_COUNTER, "shouwen_notification_refused_host_total",
                                    "Messages not sent: the host is not on the allow-list", NULL);
    s->m_queue = metrics_get(METRIC_GAUGE, "shouwen_notification_pending",
                             "Pending deliveries held in memory", NULL);
    s->m_inflight =
        metrics_get(METRIC_GAUGE, "shouwen_notification_in_flight", "Attempts in flight", NULL);
    s->multi = curl_multi_init();
    if (s->multi == NULL) {
        snprintf(err, errlen, "could not set up libcurl");
        ntf_sender_stop(s);
        return SW_ENOMEM;
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)cfg->concurrency);
    sw_err rv = db_open(&s->db, cfg->db_url, "shouwen-notification-sender", 5000);
    if (rv != SW_OK) {
        snprintf(err, errlen, "could not set up the sender's database connection");
        ntf_sender_stop(s);
        return rv;
    }
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err, errlen, "could not start the sender thread");
        ntf_sender_stop(s);
        return SW_ENOMEM;
    }
    s->started = true;
    *out = s;
    return SW_OK;
}

void ntf_sender_push(struct ntf_sender *s, struct ntf_delivery *d, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->nin + n > s->capin) {
        size_t cap = s->capin ? s->capin : 256;
        while (cap < s->nin + n)
            cap *= 2;
        struct ntf_delivery *p = realloc(s->in, cap * sizeof(*p));
        if (p == NULL) { /* they are in the database: a later load finds them */
            pthread_mutex_unlock(&s->mu);
            for (size_t i = 0; i < n; i++)
                ntf_delivery_free(&d[i]);
            return;
        }
        s->in = p;
        s->capin = cap;
    }
    memcpy(s->in + s->nin, d, n * sizeof(*d));
    s->nin += n;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

void ntf_sender_recheck(struct ntf_sender *s)
{
    if (s != NULL)
        atomic_store(&s->recheck, true);
}

bool ntf_sender_ready(const struct ntf_sender *s)
{
    return s != NULL && atomic_load(&s->ready);
}

void ntf_sender_halt(struct ntf_sender *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    if (s->multi != NULL)
        curl_multi_wakeup(s->multi);
    if (s->started)
        pthread_join(s->thread, NULL);
    s->started = false;
}

void ntf_sender_stop(struct ntf_sender *s)
{
    if (s == NULL)
        return;
    ntf_sender_halt(s);
    /* transfers still running are dropped: their deliveries stay pending in the database */
    for (size_t i = 0; i < s->nresults; i++)
        forget(s, s->results[i].d);
    free(s->results);
    for (int i = 0; i < s->inflight; i++) {
        struct xfer *x = s->active[i];
        curl_multi_remove_handle(s->multi, x->h);
        forget(s, x->d);
        xfer_put(s, x);
    }
    s->inflight = 0;
    free(s->active);
    while (s->free_xfers != NULL) {
        struct xfer *x = s->free_xfers;
        s->free_xfers = x->next;
        curl_easy_cleanup(x->h);
        free(x);
    }
    if (s->multi != NULL)
        curl_multi_cleanup(s->multi);
    drop_heap(s);
    free(s->heap);
    free(s->held.v);
    for (size_t i = 0; i < s->nin; i++)
        ntf_delivery_free(&s->in[i]);
    free(s->in);
    db_close(s->db);
    ntf_cache_clear(&s->cache);
    bus_outbox_free(s->ob);
    free(s->buckets);
    free(s->allow);
    free(s->allow_copy);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
