/*
 * stream.c - GET /v1/stream: the case events of the caller's site as
 * server-sent events (text/event-stream), for the console's live updates.
 *
 * The request is authenticated by a worker like any other (stream_open);
 * then job_finish hands the connection over (stream_adopt): the API's
 * server lets go of its socket (hreq_detach) and this file writes the
 * answer itself, with no length, for as long as the client stays.
 *
 * Where the events come from: bus.events, the truth (DESIGN.md section 1).
 * One thread, with its own database session, reads the rows past the last
 * seq it saw every SHOUWEN_INTAKE_STREAM_POLL (by the primary key, so it
 * costs an index range scan), and only while someone listens.  Each event
 * goes to the clients of its site as
 *
 *     event: case
 *     data: {"type":"case.transferred","case":"<uuid>","at":"<RFC 3339>"}
 *
 * which names the case and what happened, nothing more: the console then
 * reads what it needs through the API, with the caller's own rights.
 * Every client first gets "event: hello" and then a ": ping" comment every
 * 15 s (so a dead connection is found and proxies keep it open).
 *
 * An event whose transaction commits after a later seq was read is not
 * pushed (the reading order of bus.h applies to consumers that must see
 * everything; this is a doorbell): the console also refreshes what it
 * shows every minute and after every reconnection.
 *
 * All writes happen on this thread, each waiting at most 2 s: a client
 * that does not read is dropped, never waited for.  Every connection is
 * read (and what comes dropped) each time the thread looks, at least every
 * SHOUWEN_INTAKE_STREAM_POLL, so a client that hangs up is let go of by
 * then.  At most SHOUWEN_INTAKE_STREAM_MAX clients; more are answered 503.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "intake.h"
#include "log.h"

#define STREAM_PING_MS     15000
#define STREAM_WRITE_MS    2000
#define STREAM_BATCH       "1000"
#define STREAM_DB_RETRY_MS 5000

struct client {
    struct client *next;
    int fd; /* non-blocking; -1 until the server has let go of it */
    char site[17];
    char who[101];
    bool greeted;
    long long last_ms; /* last write */
};

struct streamer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    struct client *fresh; /* adopted, not yet seen by the thread */
    int nclients;         /* fresh and live */
    struct db *db;
    long long poll_ms;
    int max;
    struct metric *m_clients;
    struct metric *m_events;
};

static struct streamer S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write all of `data`, waiting at most STREAM_WRITE_MS; false when the client is gone. */
static bool client_write(struct client *c, const char *data, size_t len)
{
    long long until = now_ms() + STREAM_WRITE_MS;
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        long long left = until - now_ms();
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || left <= 0)
            return false;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return false;
    }
    c->last_ms = now_ms();
    return true;
}

/* Whatever the client sent is read and dropped; false when it has hung up. */
static bool client_alive(struct client *c)
{
    char sink[256];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

static void client_drop(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* The thread's clients: greet the new ones, ping the quiet ones, drop the dead. */
static struct client *clients_tend(struct client *live)
{
    pthread_mutex_lock(&S.mu);
    struct client *fresh = S.fresh;
    S.fresh = NULL;
    pthread_mutex_unlock(&S.mu);
    while (fresh != NULL) {
        struct client *c = fresh;
        fresh = c->next;
        c->next = live;
        live = c;
    }
    struct client **pp = &live;
    int dropped = 0;
    while (*pp != NULL) {
        struct client *c = *pp;
        bool ok = client_alive(c);
        if (!ok) {
            /* hung up: dropped below */
        } else if (!c->greeted) {
            static const char head[] = "HTTP/1.1 200 OK\r\n"
                                       "Content-Type: text/event-stream; charset=utf-8\r\n"
                                       "Cache-Control: no-store\r\n"
                                       "X-Accel-Buffering: no\r\n"
                                       "Connection: close\r\n\r\n"
                                       "retry: 2000\n"
                                       "event: hello\ndata: {}\n\n";
            ok = client_write(c, head, sizeof(head) - 1);
            c->greeted = true;
        } else if (now_ms() - c->last_ms >= STREAM_PING_MS) {
            ok = client_write(c, ": ping\n\n", 8);
        }
        if (ok) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        LOG(LOG_DEBUG, "INTAKE-STREAM", "stream of %s (site %s) ended", c->who, c->site);
        client_drop(c);
        dropped++;
    }
    if (dropped > 0) {
        pthread_mutex_lock(&S.mu);
        S.nclients -= dropped;
        metric_set(S.m_clients, S.nclients);
        pthread_mutex_unlock(&S.mu);
    }
    return live;
}

/* Push the events past *last to their sites' clients. */
static void events_push(PGconn *db, long long *last, struct client **live)
{
    char from[24];
    snprintf(from, sizeof(from), "%lld", *last);
    const char *v[] = {from};
    PGresult *r = PQexecParams(
        db,
        *last == 0
            ? "SELECT coalesce(max(seq), 0)::text FROM bus.events WHERE $1::bigint = 0"
            : "SELECT seq::text, type, coalesce(site, ''), coalesce(case_id::text, ''), " SQL_UTC(
                  "created_at") " "
                                "FROM bus.events WHERE seq > $1::bigint ORDER BY seq "
                                "LIMIT " STREAM_BATCH,
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char err[300];
        db_fail_clear(db, r, "read the bus for the live stream", err, sizeof(err));
        LOG(LOG_WARN, "INTAKE-STREAM", "%s", err);
        if (PQstatus(db) == CONNECTION_BAD)
            db_reset(S.db);
        return;
    }
    if (*last == 0) {
        *last = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
        if (*last == 0)
            *last = -1; /* an empty bus: every event is new (seq starts at 1) */
        PQclear(r);
        return;
    }
    struct buf b;
    buf_init(&b, 4096);
    for (int i = 0; i < PQntuples(r); i++) {
        *last = atoll(PQgetvalue(r, i, 0));
        const char *type = PQgetvalue(r, i, 1), *site = PQgetvalue(r, i, 2);
        if (strncmp(type, "case.", 5) != 0 && strncmp(type, "emergency.", 10) != 0)
            continue;
        buf_reset(&b);
        buf_puts(&b, "event: case\ndata: {\"type\":");
        buf_json_string(&b, type);
        buf_puts(&b, ",\"case\":");
        buf_json_string(&b, PQgetvalue(r, i, 3));
        buf_puts(&b, ",\"at\":");
        buf_json_string(&b, PQgetvalue(r, i, 4));
        buf_puts(&b, "}\n\n");
        metric_add(S.m_events, 1);
        struct client **pp = live;
        while (*pp != NULL) {
            struct client *c = *pp;
            if (strcmp(c->site, site) != 0 || client_write(c, b.data, b.len)) {
                pp = &c->next;
                continue;
            }
            *pp = c->next;
            client_drop(c);
            pthread_mutex_lock(&S.mu);
            metric_set(S.m_clients, --S.nclients);
            pthread_mutex_unlock(&S.mu);
        }
    }
    buf_free(&b);
    PQclear(r);
}

static int never_stop(void)
{
    return 0;
}

static void *stream_main(void *arg)
{
    (void)arg;
    struct client *live = NULL;
    long long last = 0; /* 0: not known yet */
    pthread_mutex_lock(&S.mu);
    while (!S.stopping) {
        if (S.nclients == 0) {
            last = 0; /* nobody listens: start again from the end next time */
            pthread_cond_wait(&S.cv, &S.mu);
            continue;
        }
        pthread_mutex_unlock(&S.mu);
        live = clients_tend(live);
        if (db_conn(S.db) == NULL)
            db_tick(S.db, false, never_stop);
        if (db_conn(S.db) != NULL)
            events_push(db_conn(S.db), &last, &live);
        pthread_mutex_lock(&S.mu);
        if (!S.stopping && S.fresh == NULL) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += S.poll_ms / 1000;
            until.tv_nsec += (S.poll_ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&S.cv, &S.mu, &until);
        }
    }
    /* stopping: every client goes, the fresh ones too */
    struct client *fresh = S.fresh;
    S.fresh = NULL;
    S.nclients = 0;
    pthread_mutex_unlock(&S.mu);
    for (struct client *c = live, *n; c != NULL; c = n) {
        n = c->next;
        client_drop(c);
    }
    for (struct client *c = fresh, *n; c != NULL; c = n) {
        n = c->next;
        client_drop(c);
    }
    return NULL;
}

sw_err stream_start(struct intake *in, long long poll_ms, int max, char *err, size_t errlen)
{
    S.poll_ms = poll_ms;
    S.max = max;
    S.m_clients = metrics_get(METRIC_GAUGE, "shouwen_intake_stream_clients",
                              "Console connections receiving live events", NULL);
    S.m_events = metrics_get(METRIC_COUNTER, "shouwen_intake_stream_events_total",
                             "Case events read for the live streams", NULL);
    if (db_open(&S.db, in->db_url, "intake-stream", STREAM_DB_RETRY_MS) != SW_OK) {
        snprintf(err, errlen, "out of memory starting the live stream");
        return SW_ENOMEM;
    }
    if (pthread_create(&S.thread, NULL, stream_main, NULL) != 0) {
        snprintf(err, errlen, "could not start the live stream's thread");
        db_close(S.db);
        S.db = NULL;
        return SW_ENOMEM;
    }
    S.started = true;
    return SW_OK;
}

void stream_stop(void)
{
    if (!S.started)
        return;
    pthread_mutex_lock(&S.mu);
    S.stopping = true;
    pthread_cond_broadcast(&S.cv);
    pthread_mutex_unlock(&S.mu);
    pthread_join(S.thread, NULL);
    db_close(S.db);
    S.db = NULL;
    S.started = false;
}

sw_err stream_open(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen)
{
    (void)in;
    (void)db;
    (void)ob;
    (void)err;
    (void)errlen;
    const struct principal *p = &j->who;
    if (p->kind == 'k' && strcmp(p->role, "admin") != 0 && strcmp(p->role, "reader") != 0) {
        job_reply_error(j, 403,
                        "forbidden: the live stream is for staff, and API keys of role admin or "
                        "reader");
        return SW_OK;
    }
    pthread_mutex_lock(&S.mu);
    bool full = !S.started || S.stopping || S.nclients >= S.max;
    pthread_mutex_unlock(&S.mu);
    if (full) {
        job_reply_error(j, 503, "too many live streams open: retry later");
        return SW_OK;
    }
    j->stream = true;
    j->status = 200;
    return SW_OK;
}

/* The server has let go of the socket (its loop's thread): the stream thread takes it. */
static void stream_take(int fd, void *arg)
{
    struct client *c = arg;
    c->fd = fd;
    pthread_mutex_lock(&S.mu);
    if (S.stopping) {
        S.nclients--;
        metric_set(S.m_clients, S.nclients);
        pthread_mutex_unlock(&S.mu);
        client_drop(c);
        return;
    }
    c->next = S.fresh;
    S.fresh = c;
    pthread_cond_broadcast(&S.cv);
    pthread_mutex_unlock(&S.mu);
    LOG(LOG_DEBUG, "INTAKE-STREAM", "stream of %s (site %s) opened", c->who, c->site);
}

void stream_adopt(struct job *j)
{
    struct client *c = calloc(1, sizeof(*c));
    pthread_mutex_lock(&S.mu);
    bool room = c != NULL && !S.stopping && S.nclients < S.max;
    if (room) {
        S.nclients++;
        metric_set(S.m_clients, S.nclients);
    }
    pthread_mutex_unlock(&S.mu);
    if (!room) {
        free(c);
        job_reply_error(j, 503, "too many live streams open: retry later");
        j->stream = false;
        job_finish(j);
        return;
    }
    c->fd = -1;
    snprintf(c->site, sizeof(c->site), "%s", j->who.site);
    snprintf(c->who, sizeof(c->who), "%s", j->who.name);
    hreq_detach(j->hreq, stream_take, c);
    job_free(j);
}
