/*
 * httpd.c - the HTTP/1.1 server of intake's public API (httpd.h).
 *
 * Why not nng's HTTP server: it runs every step of a request (the read of
 * the head, the read of the body, the handler, the write of the answer,
 * the next read) as a callback handed from thread to thread.  At 9,000
 * registrations a second that was five thread switches a request, a third
 * of intake's CPU, on a machine whose two cores PostgreSQL needs.  Here a
 * request is read, parsed and routed where it arrives, on one thread, and
 * the only hand-offs are the queue to the workers and one wake-up of this
 * thread for every answer the workers queued meanwhile.
 *
 * A connection is in one state at a time:
 *
 *   C_READ    waiting for a request head (part of one may be buffered)
 *   C_BODY    the handler asked for the body: reading it
 *   C_BUSY    the request is with the handler or a worker; input waits
 *   C_WRITE   writing the answer (EPOLLOUT when the socket is full)
 *   C_LINGER  answered with "Connection: close": our side is shut, what
 *             the client still sends is read and dropped until it closes
 *             (closing at once could reset the connection before the
 *             client has read the answer)
 *
 * Only the loop's thread touches a connection, except that the thread
 * answering a C_BUSY request writes its answer into c->out and queues the
 * connection on h->ready (under h->mu); the loop takes the queue when
 * woken (an eventfd) and after each round of events.  Sockets are
 * edge-triggered: an edge that arrives while the connection is C_BUSY or
 * C_WRITE is remembered (c->readable) and the socket read once the answer
 * is out.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"

#define IN_FIRST  4096                /* a connection's first input buffer */
#define IN_KEEP   ((size_t)64 * 1024) /* larger buffers are given back when idle */
#define LINGER_MS 2000
/* Connections over the limit answered and closed with a linger, at most this many at once. */
#define HTTPD_EXTRA_MAX 64
#define OVER_HEADERS    "Content-Type: application/json\r\nRetry-After: 1\r\n"
#define OVER_BODY       "{\"error\":\"too many connections: retry later\"}\n"
#define EVENTS          128
/* EPOLLOUT only while an answer waits for room (see conn_write) */
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

enum cstate { C_READ, C_BODY, C_BUSY, C_WRITE, C_LINGER };

struct hreq {
    struct conn *c;
    struct http_head head;
    bool head_only; /* HEAD: the answer goes without its body */
    bool keep;      /* the client keeps the connection (version, Connection) */
    bool expect100; /* "Expect: 100-continue" */
    const char *body;
    size_t bodylen;
    size_t want; /* C_BODY: the body's length */
    hreq_fn done;
    void *done_arg;
    uint64_t t0;
};

struct conn {
    struct httpd *h;
    int fd;
    enum cstate st;
    struct conn *prev, *next; /* every connection */
    struct conn *ready_next;  /* answered (under h->mu) */
    char *in;
    size_t inlen, incap;
    size_t used;        /* bytes of `in` taken by the request in hand */
    bool readable;      /* an edge not read yet */
    bool eof;           /* the client shut its side */
    bool body_left;     /* a body was declared and not read: close after the answer */
    long long since_ms; /* state entered, or last progress */
    /* the answer, written by the answering thread before it queues the connection */
    char *out;
    size_t outlen, outoff, outcap;
    bool close_after;
    bool extra;    /* over the connection limit: answered 503, counted in nextra */
    bool want_out; /* EPOLLOUT is asked for */
    void (*take)(int fd, void *arg);
    void *take_arg;
    struct hreq req;
};

struct httpd {
    struct httpd_opts o;
    int lfd, efd, ep;
    pthread_t thread;
    bool paused; /* accept failed for want of descriptors: the listener rests */
    struct conn *conns;
    int nconns;
    int nextra; /* connections over the limit, being answered 503 and closed */
    long long last_scan;
    pthread_mutex_t mu;
    struct conn *ready; /* answered, for the loop */
    bool signalled;     /* the loop will look at `ready` without another wake-up */
    atomic_bool stopping;
};

/* epoll tags of the two descriptors that are not connections */
static char tag_listen, tag_wake;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the parser ---------------------------------------------------------------- */

static bool tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The end of line `p` (before CR LF or LF) and the start of the next one. */
static char *line_end(char *p, char **next)
{
    char *nl = strchr(p, '\n');
    *next = nl + 1;
    if (nl > p && nl[-1] == '\r')
        nl--;
    return nl;
}

long http_head_parse(char *buf, size_t len, struct http_head *h)
{
    size_t skip = 0, end = 0;
    while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
        skip++; /* empty lines before a request are allowed (RFC 9112 2.2) */
    size_t lim = len < HTTPD_HEAD_MAX ? len : HTTPD_HEAD_MAX;
    for (size_t i = skip; i < lim && end == 0; i++) {
        if (buf[i] == '\0')
            return -400;
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            end = i + 2;
        else if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            end = i + 3;
    }
    if (end == 0)
        return len >= HTTPD_HEAD_MAX ? -431 : 0;
    memset(h, 0, sizeof(*h));
    char *next, *p = buf + skip;
    char *eol = line_end(p, &next);
    *eol = '\0';
    /* request line: method SP request-target SP HTTP-version */
    char *sp1 = strchr(p, ' ');
    char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1 || sp1 - p > 16)
        return -400;
    *sp1 = '\0';
    *sp2 = '\0';
    for (char *m = p; *m; m++)
        if (!tchar((unsigned char)*m))
            return -400;
    for (char *u = sp1 + 1; *u; u++)
        if ((unsigned char)*u <= 0x20 || (unsigned char)*u == 0x7f)
            return -400;
    const char *v = sp2 + 1;
    if (strncmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' ||
        v[7] > '9' || v[8] != '\0')
        return -400;
    if (v[5] != '1')
        return -505;
    h->method = p;
    h->uri = sp1 + 1;
    h->minor = v[7] - '0';
    /* header fields: name ":" OWS value OWS */
    for (p = next; p < buf + end;) { /* every line has its LF before `end` */
        eol = line_end(p, &next);
        if (eol == p)
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return -400; /* obsolete line folding */
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (colon == NULL || colon == p)
            return -400;
        for (char *n = p; n < colon; n++)
            if (!tchar((unsigned char)*n))
                return -400; /* no space before the colon either */
        *colon = '\0';
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        char *ve = val + strlen(val);
        while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';
        for (char *c = val; *c; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || (unsigned char)*c == 0x7f)
                return -400;
        if (h->n == HTTPD_HEADERS_MAX)
            return -431;
        h->name[h->n] = p;
        h->value[h->n++] = val;
        p = next;
    }
    return (long)end;
}

/* ---- requests ------------------------------------------------------------------- */

const char *hreq_method(const struct hreq *r)
{
    return r->head.method;
}

const char *hreq_uri(const struct hreq *r)
{
    return r->head.uri;
}

const char *hreq_header(const struct hreq *r, const char *name)
{
    for (int i = 0; i < r->head.n; i++)
        if (strcasecmp(r->head.name[i], name) == 0)
            return r->head.value[i];
    return NULL;
}

const char *hreq_body(const struct hreq *r, size_t *len)
{
    *len = r->body != NULL ? r->bodylen : 0;
    return r->body;
}

void hreq_set_t0(struct hreq *r, uint64_t t0)
{
    r->t0 = t0;
}

uint64_t hreq_t0(const struct hreq *r)
{
    return r->t0;
}

static const char *reason(uint16_t status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Queue an answered connection for the loop (any thread). */
static void post(struct conn *c)
{
    struct httpd *h = c->h;
    pthread_mutex_lock(&h->mu);
    c->ready_next = h->ready;
    h->ready = c;
    bool wake = !h->signalled;
    h->signalled = true;
    pthread_mutex_unlock(&h->mu);
    if (wake && !pthread_equal(pthread_self(), h->thread)) {
        uint64_t one = 1;
        while (write(h->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

void hreq_reply(struct hreq *r, uint16_t status, const char *headers, const char *body, size_t len,
                int flags)
{
    struct conn *c = r->c;
    bool close = (flags & HREQ_CLOSE) || !r->keep || c->body_left;
    const char *why = reason(status);
    size_t hl = headers != NULL ? strlen(headers) : 0;
    size_t blen = r->head_only ? 0 : len;
    size_t need = 80 + strlen(why) + hl + blen;
    if (need > c->outcap) {
        char *o = realloc(c->out, need);
        if (o == NULL) {
            c->outlen = c->outoff = 0; /* no memory for the answer: the connection goes */
            c->close_after = true;
            c->eof = true;
            post(c);
            return;
        }
        c->out = o;
        c->outcap = need;
    }
    int n = snprintf(c->out, c->outcap, "HTTP/1.1 %u %s\r\n", (unsigned)status, why);
    size_t at = (size_t)n;
    memcpy(c->out + at, headers != NULL ? headers : "", hl);
    at += hl;
    n = snprintf(c->out + at, c->outcap - at, "Content-Length: %zu\r\n%s\r\n", len,
                 close ? "Connection: close\r\n" : "");
    at += (size_t)n;
    if (blen > 0)
        memcpy(c->out + at, body, blen);
    c->outlen = at + blen;
    c->outoff = 0;
    c->close_after = close;
    post(c);
}

void hreq_detach(struct hreq *r, void (*take)(int fd, void *arg), void *arg)
{
    struct conn *c = r->c;
    c->take = take;
    c->take_arg = arg;
    post(c);
}

/* ---- connections --------------------------------------------------------------------- */

static void conn_free(struct conn *c, bool close_fd)
{
    struct httpd *h = c->h;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (close_fd)
        close(c->fd);
    if (c->extra) {
        h->nextra--;
    } else {
        h->nconns--;
        if (h->o.m_conns != NULL)
            metric_set(h->o.m_conns, h->nconns);
    }
    free(c->in);
    free(c->out);
    free(c);
}

/* Room for `need` bytes of input; pointers into the head follow the buffer. */
static bool in_reserve(struct conn *c, size_t need)
{
    if (need <= c->incap)
        return true;
    size_t cap = c->incap ? c->incap : IN_FIRST;
    while (cap < need)
        cap *= 2;
    char *old = c->in;
    char *p = malloc(cap); /* not realloc: the head's pointers are moved from the old buffer */
    if (p == NULL)
        return false;
    if (c->inlen > 0)
        memcpy(p, old, c->inlen);
    if (c->st != C_READ) {
        struct http_head *hd = &c->req.head;
        hd->method = p + (hd->method - old);
        hd->uri = p + (hd->uri - old);
        for (int i = 0; i < hd->n; i++) {
            hd->name[i] = p + (hd->name[i] - old);
            hd->value[i] = p + (hd->value[i] - old);
        }
    }
    free(old);
    c->in = p;
    c->incap = cap;
    return true;
}

/*
 * Read what the socket has, into the buffer (or dropped, lingering).
 * Returns true when bytes came or the client closed (c->eof), false when
 * there is nothing more for now or the socket failed (c->eof set too).
 */
static bool read_some(struct conn *c, size_t want)
{
    char sink[4096];
    for (;;) {
        char *at = sink;
        size_t room = sizeof(sink);
        if (c->st != C_LINGER) {
            if (!in_reserve(c, c->inlen + want)) {
                c->eof = true;
                return false;
            }
            at = c->in + c->inlen;
            room = c->incap - c->inlen;
        }
        ssize_t n = recv(c->fd, at, room, 0);
        if (n > 0) {
            if (c->st != C_LINGER) { /* lingering is bounded from its start */
                c->inlen += (size_t)n;
                c->since_ms = mono_ms();
            }
            return true;
        }
        if (n == 0) {
            c->eof = true;
            return true;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->readable = false;
            return false;
        }
        c->eof = true; /* reset: nothing more will come */
        return false;
    }
}

/* Refuse the request at the head (`why` NULL: said by the status), closing the connection. */
static void bad_head(struct conn *c, long status, const char *why)
{
    struct httpd *h = c->h;
    char m[200];
    if (why == NULL)
        why = status == 431   ? "request header fields too large"
              : status == 505 ? "HTTP version not supported: use HTTP/1.1"
                              : "malformed request: expected an HTTP/1.1 request line and header "
                                "fields";
    int n = snprintf(m, sizeof(m), "{\"error\":\"%s\"}\n", why);
    if (h->o.m_bad != NULL)
        metric_add(h->o.m_bad, 1);
    memset(&c->req, 0, sizeof(c->req));
    c->req.c = c;
    c->st = C_BUSY;
    hreq_reply(&c->req, (uint16_t)status, "Content-Type: application/json\r\n", m, (size_t)n,
               HREQ_CLOSE);
}

/*
 * A field that must appear once but appears twice, or NULL.  Two
 * Content-Lengths could frame the body two ways (RFC 9112 6.3), and for
 * the others it is not said which one counts.
 */
static const char *twice(const struct http_head *hd)
{
    static const char *const single[] = {
        "Content-Length",  "Transfer-Encoding", "Content-Type", "Authorization",
        "Idempotency-Key", "If-Match",          "Host"};
    for (size_t s = 0; s < sizeof(single) / sizeof(single[0]); s++) {
        int seen = 0;
        for (int i = 0; i < hd->n; i++)
            if (strcasecmp(hd->name[i], single[s]) == 0 && ++seen == 2)
                return single[s];
    }
    return NULL;
}

/* A complete head is at the start of the buffer?  Then it goes to the handler. */
static bool head_take(struct conn *c)
{
    struct hreq *r = &c->req;
    long n = http_head_parse(c->in, c->inlen, &r->head);
    if (n == 0)
        return false;
    if (n < 0) {
        bad_head(c, -n, NULL);
        return true;
    }
    const char *dup = twice(&r->head);
    if (dup != NULL) {
        char why[100];
        snprintf(why, sizeof(why), "malformed request: more than one %s header", dup);
        bad_head(c, 400, why);
        return true;
    }
    r->c = c;
    r->body = NULL;
    r->bodylen = 0;
    r->want = 0;
    r->done = NULL;
    r->t0 = 0;
    r->head_only = strcmp(r->head.method, "HEAD") == 0;
    const char *conn = hreq_header(r, "Connection");
    r->keep = r->head.minor >= 1 ? conn == NULL || strcasecmp(conn, "close") != 0
                                 : conn != NULL && strcasecmp(conn, "keep-alive") == 0;
    const char *ex = hreq_header(r, "Expect");
    r->expect100 = ex != NULL && strcasecmp(ex, "100-continue") == 0;
    const char *cl = hreq_header(r, "Content-Length");
    c->body_left =
        hreq_header(r, "Transfer-Encoding") != NULL || (cl != NULL && cl[strspn(cl, "0")] != '\0');
    c->used = (size_t)n;
    c->st = C_BUSY;
    c->h->o.handle(r, c->h->o.arg);
    return true;
}

void hreq_read_body(struct hreq *r, size_t len, hreq_fn done, void *arg)
{
    struct conn *c = r->c;
    r->want = len;
    r->done = done;
    r->done_arg = arg;
    c->body_left = false; /* it is being read */
    c->st = C_BODY;
    c->since_ms = mono_ms();
    if (r->expect100 && c->inlen < c->used + len) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

static void body_end(struct conn *c, bool ok)
{
    struct hreq *r = &c->req;
    if (ok) {
        r->body = c->in + c->used;
        r->bodylen = r->want;
        c->used += r->want;
    } else {
        r->body = NULL;
        c->body_left = true;
        c->eof = true; /* the answer goes nowhere; the connection closes after it */
    }
    c->st = C_BUSY;
    r->done(r, r->done_arg);
}

/* Parse what is buffered and read more, while the connection wants input. */
static void conn_input(struct conn *c)
{
    for (;;) {
        size_t want = IN_FIRST;
        if (c->st == C_READ) {
            if (c->inlen > 0 && head_take(c))
                continue;
            if (c->inlen >= HTTPD_HEAD_MAX) {
                bad_head(c, 431, NULL);
                continue;
            }
        } else if (c->st == C_BODY) {
            size_t need = c->used + c->req.want;
            if (c->inlen >= need) {
                body_end(c, true);
                continue;
            }
            want = need - c->inlen;
        } else if (c->st != C_LINGER) {
            return; /* C_BUSY or C_WRITE: the input waits for the answer */
        }
        if (c->eof) {
            if (c->st == C_BODY)
                body_end(c, false);
            else
                conn_free(c, true); /* C_READ or C_LINGER: nothing in hand */
            return;
        }
        if (!c->readable)
            return;
        if (!read_some(c, want) && !c->eof)
            return;
    }
}

/* The answer is out: the next request, or the end of the connection. */
static void answer_done(struct conn *c)
{
    c->outlen = c->outoff = 0;
    if (c->outcap > IN_KEEP) { /* a large answer's buffer is not kept for the next one */
        free(c->out);
        c->out = NULL;
        c->outcap = 0;
    }
    /* a client that shut its side after pipelining requests gets them all answered */
    if (c->close_after || (c->eof && c->inlen == c->used)) {
        shutdown(c->fd, SHUT_WR);
        c->st = C_LINGER;
        c->inlen = c->used = 0;
        c->since_ms = mono_ms();
        c->readable = true; /* drop what is there; an edge may have come and gone */
        conn_input(c);
        return;
    }
    memmove(c->in, c->in + c->used, c->inlen - c->used);
    c->inlen -= c->used;
    c->used = 0;
    if (c->incap > IN_KEEP && c->inlen < IN_FIRST) {
        char *p = realloc(c->in, IN_FIRST);
        if (p != NULL) {
            c->in = p;
            c->incap = IN_FIRST;
        }
    }
    c->st = C_READ;
    c->since_ms = mono_ms();
    conn_input(c);
}

static void conn_write(struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n > 0) {
            c->outoff += (size_t)n;
            c->since_ms = mono_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                struct epoll_event ev = {.events = CONN_EVENTS | EPOLLOUT, .data.ptr = c};
                epoll_ctl(c->h->ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = true;
            }
            return; /* EPOLLOUT brings us back */
        }
        conn_free(c, true); /* the client is gone */
        return;
    }
    if (c->want_out) {
        struct epoll_event ev = {.events = CONN_EVENTS, .data.ptr = c};
        epoll_ctl(c->h->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = false;
    }
    answer_done(c);
}

/* Take the answered connections and write their answers (the loop). */
static void ready_run(struct httpd *h)
{
    for (;;) {
        pthread_mutex_lock(&h->mu);
        struct conn *list = h->ready;
        h->ready = NULL;
        h->signalled = false;
        pthread_mutex_unlock(&h->mu);
        if (list == NULL)
            return;
        struct conn *fifo = NULL; /* answered first, written first */
        while (list != NULL) {
            struct conn *n = list->ready_next;
            list->ready_next = fifo;
            fifo = list;
            list = n;
        }
        while (fifo != NULL) {
            struct conn *c = fifo;
            fifo = c->ready_next;
            if (c->take != NULL) {
                int fd = c->fd;
                void (*take)(int, void *) = c->take;
                void *arg = c->take_arg;
                conn_free(c, false);
                take(fd, arg);
                continue;
            }
            c->st = C_WRITE;
            c->since_ms = mono_ms();
            conn_write(c);
        }
    }
}

static void accept_all(struct httpd *h)
{
    for (;;) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                LOG(LOG_WARN, "INTAKE-HTTP", "cannot accept a connection: %s (%d open)",
                    strerror(errno), h->nconns);
                epoll_ctl(h->ep, EPOLL_CTL_DEL, h->lfd, NULL);
                h->paused = true; /* until the next scan, instead of spinning */
            }
            return;
        }
        bool over = h->nconns >= h->o.max_conns;
        if (over && h->o.m_bad != NULL)
            metric_add(h->o.m_bad, 1);
        if (over && h->nextra >= HTTPD_EXTRA_MAX) {
            /* too many of those already: the answer, and a plain close */
            char full[256];
            int n = snprintf(full, sizeof(full),
                             "HTTP/1.1 503 Service Unavailable\r\n%sContent-Length: %zu\r\n"
                             "Connection: close\r\n\r\n%s",
                             OVER_HEADERS, sizeof(OVER_BODY) - 1, OVER_BODY);
            (void)!send(fd, full, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->h = h;
        c->fd = fd;
        c->st = C_READ;
        c->since_ms = mono_ms();
        c->req.c = c;
        c->extra = over;
        struct epoll_event ev = {.events = CONN_EVENTS, .data.ptr = c};
        if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = c;
        h->conns = c;
        if (over) {
            /*
             * Answered, then closed as any "Connection: close" answer is
             * (lingering): closed at once, a request already in the socket
             * turned the close into a reset, which can reach the client
             * before the answer does.
             */
            h->nextra++;
            c->st = C_BUSY;
            hreq_reply(&c->req, 503, OVER_HEADERS, OVER_BODY, sizeof(OVER_BODY) - 1, HREQ_CLOSE);
            continue;
        }
        h->nconns++;
        if (h->o.m_conns != NULL)
            metric_set(h->o.m_conns, h->nconns);
    }
}

/* Once a second: close what has idled too long; wake a resting listener. */
static void scan(struct httpd *h, long long now)
{
    h->last_scan = now;
    if (h->paused) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listen};
        if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->lfd, &ev) == 0)
            h->paused = false;
    }
    for (struct conn *c = h->conns, *n; c != NULL; c = n) {
        n = c->next;
        long long idle = now - c->since_ms;
        bool quiet = c->st == C_READ || c->st == C_WRITE;
        if ((quiet && idle > h->o.idle_ms) || (c->st == C_LINGER && idle > LINGER_MS))
            conn_free(c, true);
        else if (c->st == C_BODY && idle > h->o.idle_ms)
            body_end(c, false);
    }
}

static void *loop(void *arg)
{
    struct httpd *h = arg;
    struct epoll_event ev[EVENTS];
    while (!atomic_load(&h->stopping)) {
        int n = epoll_wait(h->ep, ev, EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &tag_listen) {
                accept_all(h);
            } else if (p == &tag_wake) {
                uint64_t v;
                (void)!read(h->efd, &v, sizeof(v));
            } else {
                struct conn *c = p;
                if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->readable = true;
                if (c->st == C_WRITE) {
                    conn_write(c); /* may free c */
                    continue;
                }
                if (c->readable)
                    conn_input(c); /* may free c */
            }
        }
        long long now = mono_ms();
        if (now - h->last_scan >= 1000)
            scan(h, now); /* before ready_run: a stalled body it ends is answered now */
        ready_run(h);
    }
    return NULL;
}

/* "host:port", "[v6]:port" or ":port" (every address). */
static int listen_on(const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon[1] == '\0' || (size_t)(colon - hostport) >= sizeof(host)) {
        snprintf(err, errlen, "API address \"%s\" is not host:port", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *hp = host;
    if (hp[0] == '[' && hp[strlen(hp) - 1] == ']') {
        hp[strlen(hp) - 1] = '\0';
        hp++;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai =
        getaddrinfo(hp[0] != '\0' && strcmp(hp, "*") != 0 ? hp : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "could not resolve API address \"%s\": %s", hostport,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "could not listen for API HTTP on %s: %s", hostport, strerror(e));
    return fd;
}

/*
 * Each connection is a descriptor: raise the soft limit toward the hard
 * one so that max_conns can be reached (the usual soft limit is 1024).
 * Short of it, say so: accept then fails, and the listener rests a second
 * each time, which a client sees as a slow connect.
 */
static void fd_room(int max_conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_conns + 256; /* the database sessions, sockets and files */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t cur = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = cur;
    if (rl.rlim_cur < want)
        LOG(LOG_WARN, "INTAKE-HTTP",
            "open files are limited to %llu: fewer than the %d API connections allowed can be "
            "open (raise LimitNOFILE or ulimit -n)",
            (unsigned long long)rl.rlim_cur, max_conns);
}

sw_err httpd_start(struct httpd **out, const struct httpd_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    fd_room(o->max_conns);
    struct httpd *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory starting the API server");
        return SW_ENOMEM;
    }
    h->o = *o;
    h->efd = h->ep = -1;
    pthread_mutex_init(&h->mu, NULL);
    h->lfd = listen_on(o->hostport, err, errlen);
    if (h->lfd < 0) {
        pthread_mutex_destroy(&h->mu);
        free(h);
        return SW_EIO;
    }
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &tag_listen};
    struct epoll_event ew = {.events = EPOLLIN, .data.ptr = &tag_wake};
    if (h->efd < 0 || h->ep < 0 || epoll_ctl(h->ep, EPOLL_CTL_ADD, h->lfd, &el) != 0 ||
        epoll_ctl(h->ep, EPOLL_CTL_ADD, h->efd, &ew) != 0 ||
        pthread_create(&h->thread, NULL, loop, h) != 0) {
        snprintf(err, errlen, "could not start the API server: %s", strerror(errno));
        if (h->efd >= 0)
            close(h->efd);
        if (h->ep >= 0)
            close(h->ep);
        close(h->lfd);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return SW_EIO;
    }
    pthread_setname_np(h->thread, "intake:http");
    *out = h;
    return SW_OK;
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stopping, true);
    uint64_t one = 1;
    (void)!write(h->efd, &one, sizeof(one));
    pthread_join(h->thread, NULL);
    /* Every request has been answered by now (the workers stopped first):
     * the answers not yet written are tried once, then everything closes. */
    pthread_mutex_lock(&h->mu);
    struct conn *list = h->ready;
    h->ready = NULL;
    pthread_mutex_unlock(&h->mu);
    for (; list != NULL; list = list->ready_next) {
        if (list->take != NULL) {
            list->take(list->fd, list->take_arg);
            list->fd = -1;
        } else if (list->outoff < list->outlen) {
            (void)!send(list->fd, list->out + list->outoff, list->outlen - list->outoff,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    for (struct conn *c = h->conns, *n; c != NULL; c = n) {
        n = c->next;
        conn_free(c, c->fd >= 0);
    }
    close(h->lfd);
    close(h->efd);
    close(h->ep);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
