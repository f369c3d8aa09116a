/*
 * httpd.h - the HTTP/1.1 server of intake's public API.
 *
 * One thread runs an epoll loop over every connection: it accepts, reads,
 * parses the request head and calls the handler, which routes and queues
 * a job (http.c).  A worker answers the request later from its own thread
 * (hreq_reply): the answer is queued for the loop, which is woken once
 * for all the answers queued since it last looked, and writes them.  A
 * request therefore costs no thread hand-off but the one to the worker
 * and back, shared by a whole batch of registrations.
 *
 * Keep-alive, one request at a time per connection (a pipelined request
 * waits in the buffer until the answer before it is written), Content-Length
 * bodies only (a body the handler does not read closes the connection
 * after the answer), HEAD answered without a body, "Expect: 100-continue"
 * honoured.  A malformed head is answered 400, one over HTTPD_HEAD_MAX
 * bytes 431, another HTTP version 505, each closing the connection.  A
 * connection idle (no request in hand) longer than idle_ms is closed, and
 * so is one whose body stops arriving for that long.
 */
#ifndef SHOUWEN_HTTPD_H
#define SHOUWEN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"

#define HTTPD_HEAD_MAX    ((size_t)64 * 1024) /* request line and headers */
#define HTTPD_HEADERS_MAX 100

struct httpd;
struct hreq;

/* Called on the loop's thread; it must not block. */
typedef void (*hreq_fn)(struct hreq *r, void *arg);

struct httpd_opts {
    const char *hostport; /* "host:port" to listen on */
    hreq_fn handle;       /* a request's head is in */
    void *arg;
    int max_conns;          /* more are answered 503 and closed */
    long long idle_ms;      /* see above */
    struct metric *m_bad;   /* counts the heads refused by the server itself */
    struct metric *m_conns; /* gauge: open connections (may be NULL) */
};

sw_err httpd_start(struct httpd **out, const struct httpd_opts *o, char *err, size_t errlen);
/* Stop listening, close every connection, join the thread. */
void httpd_stop(struct httpd *h);

/* The request (valid until it is answered; the loop's thread only). */
const char *hreq_method(const struct hreq *r);
const char *hreq_uri(const struct hreq *r);
/* A header's value (the first of that name, any case), or NULL. */
const char *hreq_header(const struct hreq *r, const char *name);
/*
 * Read a body of `len` bytes (the handler has checked its Content-Length),
 * then call done(r, arg) on the loop's thread.  When the client goes away
 * or stops sending first, done is called with hreq_body returning NULL;
 * the request must still be answered (the answer goes nowhere).
 */
void hreq_read_body(struct hreq *r, size_t len, hreq_fn done, void *arg);
const char *hreq_body(const struct hreq *r, size_t *len);
/* A slot for the caller: set and read from any thread that holds the request. */
void hreq_set_t0(struct hreq *r, uint64_t t0);
uint64_t hreq_t0(const struct hreq *r);

#define HREQ_CLOSE 1 /* close the connection after the answer */
/*
 * Answer the request, from any thread, exactly once: `headers` is "Name:
 * value\r\n" lines (Content-Length and, when closing, Connection are
 * added).  The request is no longer the caller's.
 */
void hreq_reply(struct hreq *r, uint16_t status, const char *headers, const char *body, size_t len,
                int flags);
/*
 * Take the connection instead of answering (a stream that writes its own
 * answer): `take(fd, arg)` is called on the loop's thread once the server
 * has let go of the socket (non-blocking; the taker closes it).  From any
 * thread, exactly once, instead of hreq_reply.
 */
void hreq_detach(struct hreq *r, void (*take)(int fd, void *arg), void *arg);

/*
 * The parser, exposed for its fuzz driver: parse the head at the start of
 * buf (NUL-terminating its parts in place).  Returns the head's length
 * (through the blank line), 0 when more bytes are needed, or minus the
 * status to answer (400, 431, 505).
 */
struct http_head {
    char *method;
    char *uri;
    int minor; /* HTTP/1.minor */
    int n;
    char *name[HTTPD_HEADERS_MAX];
    char *value[HTTPD_HEADERS_MAX];
};
long http_head_parse(char *buf, size_t len, struct http_head *h);

#endif
