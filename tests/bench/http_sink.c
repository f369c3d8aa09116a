/*
 * http_sink - the webhook receiver of `make bench-notify`: an HTTP/1.1
 * server on loopback (keep-alive, one thread, epoll) that answers every
 * request 201 with an empty body and notes when each arrived and its
 * webhook-id header.  Fast enough that the notifier, not the receiver, is
 * what gets measured; the same sink is the target of the baseline (plain
 * keep-alive requests from http_load).
 *
 *   http_sink PORT OUT
 *
 * On SIGTERM or SIGINT writes one line per request to OUT,
 * "<webhook-id or -> <unix microseconds>", and exits 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_BUF 65536

struct conn {
    int fd;
    size_t len;
    char buf[CONN_BUF];
};

struct rec {
    char id[48];
    int64_t at;
};

static volatile sig_atomic_t stop;
static struct conn *conns[65536]; /* by descriptor: the open connections */
static struct rec *recs;
static size_t nrecs, caprecs;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note(const char *hdr, size_t hlen)
{
    if (nrecs == caprecs) {
        size_t cap = caprecs ? caprecs * 2 : 65536;
        struct rec *p = realloc(recs, cap * sizeof(*p));
        if (p == NULL)
            return;
        recs = p;
        caprecs = cap;
    }
    struct rec *r = &recs[nrecs++];
    r->at = now_us();
    snprintf(r->id, sizeof(r->id), "-");
    for (const char *p = hdr; p < hdr + hlen; p++) {
        if ((p == hdr || p[-1] == '\n') && strncasecmp(p, "webhook-id:", 11) == 0) {
            const char *v = p + 11, *e;
            while (*v == ' ')
                v++;
            for (e = v; e < hdr + hlen && *e != '\r' && *e != '\n'; e++)
                ;
            snprintf(r->id, sizeof(r->id), "%.*s", (int)(e - v), v);
            break;
        }
    }
}

/* Answers every complete request in c's buffer; -1 when the connection must close. */
static int serve(struct conn *c)
{
    static const char answer[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL)
            return c->len == CONN_BUF ? -1 : 0;
        size_t hlen = (size_t)(end - c->buf) + 4;
        size_t body = 0;
        for (char *p = c->buf; p < end; p++)
            if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
                body = strtoul(p + 15, NULL, 10);
        if (hlen + body > CONN_BUF)
            return -1;
        if (c->len < hlen + body)
            return 0;
        note(c->buf, hlen);
        if (write(c->fd, answer, sizeof(answer) - 1) != (ssize_t)(sizeof(answer) - 1))
            return -1;
        memmove(c->buf, c->buf + hlen + body, c->len - hlen - body);
        c->len -= hlen + body;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: http_sink PORT OUT\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1024) != 0) {
        perror("http_sink: listen");
        return 2;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *nc = fd < 65536 ? malloc(sizeof(*nc)) : NULL;
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    conns[fd] = nc;
                    nc->fd = fd;
                    nc->len = 0;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce) != 0) {
                        conns[fd] = NULL;
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            ssize_t r;
            int done = 0;
            while ((r = read(c->fd, c->buf + c->len, CONN_BUF - c->len)) > 0) {
                c->len += (size_t)r;
                if (serve(c) < 0) {
                    done = 1;
                    break;
                }
            }
            if (done || r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                conns[c->fd] = NULL;
                close(c->fd); /* closing removes it from the epoll set */
                free(c);
            }
        }
    }
    FILE *f = fopen(argv[2], "w");
    if (f == NULL) {
        perror("http_sink: out");
        return 1;
    }
    for (size_t i = 0; i < nrecs; i++)
        fprintf(f, "%s %lld\n", recs[i].id, (long long)recs[i].at);
    fclose(f);
    free(recs);
    return 0;
}
