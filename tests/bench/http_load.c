/*
 * http_load - the HTTP client of `make bench-intake`: N keep-alive
 * connections posting case registrations to intake, one request in flight
 * per connection (HTTP/1.1, no pipelining), every request a new case (a
 * unique external_ref).  One thread, epoll, plain sockets.
 *
 *   http_load -u URL -k KEY [-c CONNS] [-d SECONDS] [-r RATE] [-p REF_PREFIX] [-s SITE]
 *
 *   closed loop (no -r): each connection sends its next request as soon as
 *       the answer to the last one is in, for -d seconds; the figure is
 *       throughput.
 *   open loop (-r RATE): requests fall due at a fixed rate whatever the
 *       server does; a due request goes out on the first idle connection.
 *       Its latency is measured from when it fell DUE, not from when it
 *       went out, so a server that falls behind shows its queueing in the
 *       figures instead of slowing the client down (coordinated omission).
 *
 * Every answer other than 201 counts as an error, and so does a connection
 * lost with a request in flight or a request still unanswered 30 s after
 * the run.  Prints one line of key=value figures; ok= is the number of
 * 201s, the cases that must be in the database afterwards.  Exit status 0
 * when there was no error, 1 when there were some, 2 when the run could
 * not start.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX     4096
#define RESP_MAX    65536
#define DRAIN_NS    (30 * 1000000000LL) /* how long unanswered requests are waited for */
#define LAT_MAX     (64u << 20)         /* the most latencies kept (256 MB) */
#define SAMPLES_MAX 3                   /* bodies of unexpected answers printed */
#define TIMER_TAG   UINT64_MAX

struct conn {
    int fd;
    bool busy;         /* a request is in flight */
    int64_t due;       /* when the request in flight fell due (latency starts), ns */
    char out[REQ_MAX]; /* the request being written */
    size_t outlen, outoff;
    char in[RESP_MAX + 1]; /* the answer being read, NUL-terminated */
    size_t inlen;
};

struct load {
    /* settings */
    struct addrinfo *addr;
    char host[256];
    char path[512];
    const char *key;
    const char *site;
    char prefix[128];
    int nconns;
    double seconds;
    double rate; /* 0: closed loop */
    /* state */
    int ep, tfd;
    struct conn *conns;
    int64_t t0, t_end, last_done;
    uint64_t seq;       /* requests sent (also the external_ref counter) */
    uint64_t scheduled; /* open loop: requests that have fallen due */
    uint64_t total;     /* open loop: requests due in the run */
    int inflight;
    /* figures */
    uint64_t statuses[600];
    uint64_t ok, err_conn, err_proto, err_timeout;
    uint32_t *lat; /* microseconds, one per answer */
    size_t nlat, lat_cap;
    int samples;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: http_load -u http://HOST:PORT/PATH -k KEY [-c CONNS] [-d SECONDS] "
                    "[-r RATE] [-p REF_PREFIX] [-s SITE]\n");
}

/* Split "http://host[:port]/path" and resolve the host. */
static bool parse_url(struct load *L, const char *url)
{
    char port[16] = "80";
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "http_load: could not parse url \"%s\": expected http://\n", url);
        return false;
    }
    p += 7;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof(L->host)) {
        fprintf(stderr, "http_load: could not parse url \"%s\": bad host\n", url);
        return false;
    }
    memcpy(L->host, p, hl);
    L->host[hl] = '\0';
    p += hl;
    if (*p == ':') {
        size_t pl = strcspn(++p, "/");
        if (pl == 0 || pl >= sizeof(port)) {
            fprintf(stderr, "http_load: could not parse url \"%s\": bad port\n", url);
            return false;
        }
        memcpy(port, p, pl);
        port[pl] = '\0';
        p += pl;
    }
    snprintf(L->path, sizeof(L->path), "%s", *p ? p : "/");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = getaddrinfo(L->host, port, &hints, &L->addr);
    if (rv != 0) {
        fprintf(stderr, "http_load: could not resolve %s:%s: %s\n", L->host, port,
                gai_strerror(rv));
        return false;
    }
    return true;
}

static void conn_close(struct load *L, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->inlen = 0;
    c->outlen = c->outoff = 0;
}

/* Connect (blocking: a loopback connect is quick), then go non-blocking. */
static bool conn_open(struct load *L, struct conn *c)
{
    int one = 1;
    int fd = socket(L->addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, L->addr->ai_addr, L->addr->ai_addrlen) != 0) {
        fprintf(stderr, "http_load: could not connect to %s: %s\n", L->host, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(c - L->conns)};
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        epoll_ctl(L->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fprintf(stderr, "http_load: could not set up a connection: %s\n", strerror(errno));
        close(fd);
        return false;
    }
    c->fd = fd;
    c->inlen = 0;
    c->outlen = c->outoff = 0;
    return true;
}

static void watch_out(struct load *L, struct conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u64 = (uint64_t)(c - L->conns)};
    epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is left of the request; returns false when the connection failed. */
static bool conn_flush(struct load *L, struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch_out(L, c, true);
            return true;
        }
        if (w <= 0)
            return false;
        c->outoff += (size_t)w;
    }
    if (c->outlen > 0)
        watch_out(L, c, false);
    c->outlen = c->outoff = 0;
    return true;
}

static void lose(struct load *L, struct conn *c);

/* Send a new registration on an idle connection; its latency counts from `due`. */
static void conn_send(struct load *L, struct conn *c, int64_t due)
{
    char body[1024];
    int bl = snprintf(body, sizeof(body),
                      "{\"site\":\"%s\",\"channel\":\"hotline\",\"type\":\"repair\","
                      "\"urgency\":\"normal\",\"subject\":\"楼上漏水 water from upstairs\","
                      "\"description\":\"ceiling wet since morning, bench request %llu\","
                      "\"customer\":{\"name\":\"张先生\",\"phone\":\"13800001234\","
                      "\"unit\":\"3栋\",\"address\":\"3-2-501\"},\"first_responder\":\"li.desk\","
                      "\"external_ref\":\"%s%llu\"}",
                      L->site, (unsigned long long)L->seq, L->prefix, (unsigned long long)L->seq);
    int hl = snprintf(c->out, sizeof(c->out),
                      "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                      L->path, L->host, L->key, bl);
    if (bl < 0 || (size_t)bl >= sizeof(body) || hl < 0 ||
        (size_t)hl + (size_t)bl > sizeof(c->out)) {
        fprintf(stderr, "http_load: request too large for its buffer\n");
        exit(2); /* a bug of this program: the settings are checked at start */
    }
    memcpy(c->out + hl, body, (size_t)bl);
    c->outlen = (size_t)hl + (size_t)bl;
    c->outoff = 0;
    c->busy = true;
    c->due = due;
    L->seq++;
    L->inflight++;
    if (!conn_flush(L, c))
        lose(L, c);
}

/* The connection broke: its request (if any) is an error; open a new one. */
static void lose(struct load *L, struct conn *c)
{
    if (c->busy) {
        L->err_conn++;
        L->inflight--;
        c->busy = false;
    }
    conn_close(L, c);
    if (!conn_open(L, c))
        exit(1); /* the server is gone: nothing more to measure */
}

static void record(struct load *L, int status, int64_t due, const char *body, size_t blen)
{
    int64_t t = now_ns();
    uint64_t us = (uint64_t)((t - due) / 1000);
    if (L->nlat == L->lat_cap && L->lat_cap < LAT_MAX) {
        size_t cap = L->lat_cap ? L->lat_cap * 2 : 65536;
        uint32_t *p = realloc(L->lat, cap * sizeof(*p));
        if (p != NULL) {
            L->lat = p;
            L->lat_cap = cap;
        }
    }
    if (L->nlat < L->lat_cap)
        L->lat[L->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    L->last_done = t;
    L->statuses[status]++;
    if (status == 201) {
        L->ok++;
    } else if (L->samples < SAMPLES_MAX) {
        L->samples++;
        fprintf(stderr, "http_load: answer %d: %.*s\n", status, (int)(blen > 300 ? 300 : blen),
                body);
    }
}

/*
 * Parse what has been read.  Returns 1 when a whole answer was taken
 * (*close says whether the server ends the connection), 0 when more is
 * needed, -1 on a malformed or unsupported answer.
 */
static int parse(struct load *L, struct conn *c, bool *close_after)
{
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (end == NULL)
        return c->inlen == RESP_MAX ? -1 : 0;
    size_t hlen = (size_t)(end - c->in) + 4;
    int status = 0;
    long long clen = -1;
    *close_after = false;
    if (sscanf(c->in, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
        return -1;
    for (char *line = memchr(c->in, '\n', hlen); line != NULL && line < end;
         line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        size_t ll = strcspn(line, "\r\n");
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoll(line + 15, NULL, 10);
        else if (strncasecmp(line, "Connection:", 11) == 0 && memmem(line, ll, "close", 5))
            *close_after = true;
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0)
            return -1; /* intake sends a Content-Length */
    }
    if (clen < 0 || (size_t)clen > RESP_MAX - hlen)
        return -1;
    if (c->inlen < hlen + (size_t)clen)
        return 0;
    if (c->inlen > hlen + (size_t)clen)
        return -1; /* bytes after the answer to the only request in flight */
    if (!c->busy)
        return -1; /* an answer to nothing */
    record(L, status, c->due, c->in + hlen, (size_t)clen);
    c->busy = false;
    c->inlen = 0;
    L->inflight--;
    return 1;
}

/* Open loop: requests due by now go out on idle connections, oldest first. */
static void send_due(struct load *L, int64_t now)
{
    while (L->scheduled < L->total) {
        int64_t due = L->t0 + (int64_t)((double)L->scheduled * 1e9 / L->rate);
        if (due > now)
            break;
        L->scheduled++;
    }
    for (int i = 0; i < L->nconns && L->seq < L->scheduled; i++) {
        struct conn *c = &L->conns[i];
        if (!c->busy)
            conn_send(L, c, L->t0 + (int64_t)((double)L->seq * 1e9 / L->rate));
    }
}

static void arm_timer(struct load *L)
{
    if (L->scheduled >= L->total)
        return;
    int64_t due = L->t0 + (int64_t)((double)L->scheduled * 1e9 / L->rate);
    struct itimerspec its = {
        .it_value = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL}};
    timerfd_settime(L->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_readable(struct load *L, struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->inlen, RESP_MAX - c->inlen, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            lose(L, c);
            return;
        }
        c->inlen += (size_t)r;
        c->in[c->inlen] = '\0';
        bool close_after = false;
        int p = parse(L, c, &close_after);
        if (p < 0) {
            L->err_proto++;
            if (L->samples < SAMPLES_MAX) {
                L->samples++;
                fprintf(stderr, "http_load: malformed answer: %.*s\n",
                        (int)(c->inlen > 300 ? 300 : c->inlen), c->in);
            }
            lose(L, c);
            return;
        }
        if (p == 0)
            continue;
        if (close_after) {
            conn_close(L, c);
            if (!conn_open(L, c))
                exit(1);
        }
        int64_t now = now_ns();
        if (L->rate == 0 && now < L->t_end)
            conn_send(L, c, now);
        else if (L->rate > 0)
            send_due(L, now);
        return;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank, in milliseconds. */
static double pct(const struct load *L, double p)
{
    if (L->nlat == 0)
        return 0;
    size_t k = (size_t)(p * (double)L->nlat);
    if (k >= L->nlat)
        k = L->nlat - 1;
    return L->lat[k] / 1000.0;
}

static void report(struct load *L)
{
    qsort(L->lat, L->nlat, sizeof(*L->lat), cmp_u32);
    double elapsed = (double)(L->last_done > L->t0 ? L->last_done - L->t0 : 1) / 1e9;
    uint64_t errors = L->err_conn + L->err_proto + L->err_timeout;
    for (int s = 0; s < 600; s++)
        if (s != 201)
            errors += L->statuses[s];
    printf("mode=%s conns=%d rate=%.0f duration_s=%.1f elapsed_s=%.3f sent=%llu ok=%llu "
           "errors=%llu per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f",
           L->rate > 0 ? "open" : "closed", L->nconns, L->rate, L->seconds, elapsed,
           (unsigned long long)L->seq, (unsigned long long)L->ok, (unsigned long long)errors,
           (double)L->ok / elapsed, pct(L, 0.50), pct(L, 0.90), pct(L, 0.99),
           L->nlat ? L->lat[L->nlat - 1] / 1000.0 : 0.0);
    if (errors > 0) {
        printf(" statuses=");
        const char *sep = "";
        for (int s = 0; s < 600; s++)
            if (L->statuses[s] > 0 && s != 201) {
                printf("%s%d:%llu", sep, s, (unsigned long long)L->statuses[s]);
                sep = ",";
            }
        printf(" conn_errors=%llu proto_errors=%llu timeouts=%llu", (unsigned long long)L->err_conn,
               (unsigned long long)L->err_proto, (unsigned long long)L->err_timeout);
    }
    printf("\n");
}

/*
 * Give work to idle connections: closed loop, each one its next request
 * while the run lasts; open loop, the requests that have fallen due.
 * (Answers start the next request at once; this catches connections that
 * were lost and opened again.)
 */
static void refill(struct load *L, int64_t now)
{
    if (L->rate > 0) {
        send_due(L, now);
        return;
    }
    for (int i = 0; i < L->nconns && now < L->t_end; i++)
        if (!L->conns[i].busy && L->conns[i].fd >= 0)
            conn_send(L, &L->conns[i], now);
}

static int run(struct load *L)
{
    struct epoll_event evs[256];
    L->t0 = now_ns();
    L->t_end = L->t0 + (int64_t)(L->seconds * 1e9);
    L->last_done = L->t0;
    if (L->rate > 0) {
        L->total = (uint64_t)(L->seconds * L->rate);
        send_due(L, L->t0);
        arm_timer(L);
    } else {
        for (int i = 0; i < L->nconns; i++)
            conn_send(L, &L->conns[i], L->t0);
    }
    for (;;) {
        int64_t now = now_ns();
        bool sending = L->rate > 0 ? L->seq < L->total : now < L->t_end;
        if (!sending && L->inflight == 0)
            break;
        if (now > L->t_end + DRAIN_NS) {
            /* unanswered, and (open loop) never sent for want of an idle connection */
            L->err_timeout += (uint64_t)L->inflight + (L->rate > 0 ? L->total - L->seq : 0);
            break;
        }
        int timeout = 1000;
        if (L->rate == 0 && sending)
            timeout = (int)((L->t_end - now) / 1000000) + 1;
        int n = epoll_wait(L->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "http_load: epoll_wait: %s\n", strerror(errno));
            return 2;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == TIMER_TAG) {
                uint64_t ticks;
                if (read(L->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
                    return 2;
                send_due(L, now_ns());
                arm_timer(L);
                continue;
            }
            struct conn *c = &L->conns[evs[i].data.u64];
            if (c->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && !conn_flush(L, c)) {
                lose(L, c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(L, c);
        }
        refill(L, now_ns());
    }
    report(L);
    return L->ok == L->seq && L->err_timeout == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct load L = {.nconns = 32, .seconds = 10, .site = "SH01", .ep = -1, .tfd = -1};
    const char *url = NULL;
    int opt, rv = 2;
    snprintf(L.prefix, sizeof(L.prefix), "load-%ld-%ld-", (long)getpid(), (long)time(NULL));
    while ((opt = getopt(argc, argv, "u:k:c:d:r:p:s:")) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'k':
            L.key = optarg;
            break;
        case 'c':
            L.nconns = atoi(optarg);
            break;
        case 'd':
            L.seconds = atof(optarg);
            break;
        case 'r':
            L.rate = atof(optarg);
            break;
        case 'p':
            snprintf(L.prefix, sizeof(L.prefix), "%s", optarg);
            break;
        case 's':
            L.site = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (url == NULL || L.key == NULL || L.nconns < 1 || L.nconns > 10000 || L.seconds <= 0 ||
        L.rate < 0 || strlen(L.key) > 200 || strlen(L.site) > 16) {
        usage();
        return 2;
    }
    if (!parse_url(&L, url))
        return 2;
    L.conns = calloc((size_t)L.nconns, sizeof(*L.conns));
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    L.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (L.conns == NULL || L.ep < 0 || L.tfd < 0) {
        fprintf(stderr, "http_load: could not set up: %s\n", strerror(errno));
        goto out;
    }
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    if (epoll_ctl(L.ep, EPOLL_CTL_ADD, L.tfd, &tev) != 0) {
        fprintf(stderr, "http_load: could not watch the timer: %s\n", strerror(errno));
        goto out;
    }
    for (int i = 0; i < L.nconns; i++)
        L.conns[i].fd = -1;
    for (int i = 0; i < L.nconns; i++)
        if (!conn_open(&L, &L.conns[i]))
            goto out;
    rv = run(&L);
out:
    for (int i = 0; L.conns != NULL && i < L.nconns; i++)
        conn_close(&L, &L.conns[i]);
    if (L.tfd >= 0)
        close(L.tfd);
    if (L.ep >= 0)
        close(L.ep);
    free(L.conns);
    free(L.lat);
    if (L.addr != NULL)
        freeaddrinfo(L.addr);
    return rv;
}
