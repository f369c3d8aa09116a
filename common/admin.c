/*
 * admin.c - /healthz, /readyz and /metrics over nng's HTTP server.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "admin.h"
#include "buf.h"
#include "metrics.h"

#define ADMIN_METRICS_MAX (4u << 20)

struct admin {
    nng_http_server *srv;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int inflight; /* handlers running now */
    bool closing; /* admin_close has begun: handlers answer 503 */
    admin_ready_fn ready;
    void *arg;
    char service[32];
    struct metric *m_requests;
};

static void admin__reply(nng_aio *aio, uint16_t status, const char *ctype, const char *body,
                         size_t len)
{
    nng_http_res *res = NULL;
    int rv = nng_http_res_alloc(&res);
    if (rv == 0)
        rv = nng_http_res_set_status(res, status);
    if (rv == 0)
        rv = nng_http_res_set_header(res, "Content-Type", ctype);
    if (rv == 0)
        rv = nng_http_res_set_header(res, "Cache-Control", "no-store");
    if (rv == 0)
        rv = nng_http_res_copy_data(res, body, len);
    if (rv != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static struct admin *admin__from(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    return nng_http_handler_get_data(h);
}

/*
 * Handlers run on nng's threads; admin_close waits for those in flight,
 * because nng_http_server_stop does not (its clean-up finishes later).
 */
static bool admin__enter(struct admin *a, nng_aio *aio)
{
    pthread_mutex_lock(&a->lock);
    bool ok = !a->closing;
    if (ok)
        a->inflight++;
    pthread_mutex_unlock(&a->lock);
    if (!ok)
        admin__reply(aio, 503, "text/plain", "stopping\n", 9);
    return ok;
}

static void admin__leave(struct admin *a)
{
    pthread_mutex_lock(&a->lock);
    if (--a->inflight == 0)
        pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
}

static void admin__healthz(nng_aio *aio)
{
    struct admin *a = admin__from(aio);
    if (!admin__enter(a, aio))
        return;
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"service\":\"%s\"}\n", a->service);
    metric_add(a->m_requests, 1);
    admin__reply(aio, 200, "application/json", body, (size_t)n);
    admin__leave(a);
}

static void admin__readyz(nng_aio *aio)
{
    struct admin *a = admin__from(aio);
    if (!admin__enter(a, aio))
        return;
    char why[512] = "";
    bool ok = a->ready(a->arg, why, sizeof(why));
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "{\"ready\":%s,\"service\":\"%s\",\"reason\":", ok ? "true" : "false",
               a->service);
    buf_json_string(&b, why);
    buf_puts(&b, "}\n");
    metric_add(a->m_requests, 1);
    admin__reply(aio, ok ? 200 : 503, "application/json", buf_cstr(&b), b.len);
    buf_free(&b);
    admin__leave(a);
}

static void admin__metrics(nng_aio *aio)
{
    struct admin *a = admin__from(aio);
    struct buf b;
    if (!admin__enter(a, aio))
        return;
    metric_add(a->m_requests, 1);
    buf_init(&b, ADMIN_METRICS_MAX);
    if (metrics_render(&b) != SW_OK) {
        const char *msg = "could not render metrics: output too large\n";
        admin__reply(aio, 500, "text/plain", msg, strlen(msg));
    } else {
        admin__reply(aio, 200, "text/plain; version=0.0.4", buf_cstr(&b), b.len);
    }
    buf_free(&b);
    admin__leave(a);
}

sw_err admin_open(struct admin **out, const char *service, const char *hostport,
                  admin_ready_fn ready, void *arg, char *err, size_t errlen)
{
    static const struct {
        const char *path;
        void (*cb)(nng_aio *);
    } routes[] = {
        {"/healthz", admin__healthz}, {"/readyz", admin__readyz}, {"/metrics", admin__metrics}};
    char urltext[300];
    nng_url *url = NULL;
    int rv;
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory starting the admin server");
        return SW_ENOMEM;
    }
    a->ready = ready;
    a->arg = arg;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->idle, NULL);
    snprintf(a->service, sizeof(a->service), "%s", service);
    a->m_requests = metrics_get(METRIC_COUNTER, "shouwen_admin_requests_total",
                                "Requests served by the admin HTTP server", NULL);

    snprintf(urltext, sizeof(urltext), "http://%s", hostport);
    if ((rv = nng_url_parse(&url, urltext)) != 0) {
        snprintf(err, errlen, "could not parse admin address \"%s\": %s", hostport,
                 nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_http_server_hold(&a->srv, url)) != 0) {
        snprintf(err, errlen, "could not create admin server on %s: %s", hostport,
                 nng_strerror(rv));
        goto fail;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        nng_http_handler *h = NULL;
        if ((rv = nng_http_handler_alloc(&h, routes[i].path, routes[i].cb)) != 0 ||
            (rv = nng_http_handler_set_method(h, "GET")) != 0 ||
            (rv = nng_http_handler_set_data(h, a, NULL)) != 0 ||
            (rv = nng_http_server_add_handler(a->srv, h)) != 0) {
            if (h != NULL)
                nng_http_handler_free(h);
            snprintf(err, errlen, "could not add admin route %s: %s", routes[i].path,
                     nng_strerror(rv));
            goto fail;
        }
    }
    if ((rv = nng_http_server_start(a->srv)) != 0) {
        snprintf(err, errlen, "could not listen for admin HTTP on %s: %s", hostport,
                 nng_strerror(rv));
        goto fail;
    }
    if (url != NULL)
        nng_url_free(url);
    *out = a;
    return SW_OK;
fail:
    if (url != NULL)
        nng_url_free(url);
    if (a->srv != NULL)
        nng_http_server_release(a->srv);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return SW_ENNG;
}

void admin_close(struct admin *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->closing = true;
    pthread_mutex_unlock(&a->lock);
    nng_http_server_stop(a->srv);
    pthread_mutex_lock(&a->lock);
    while (a->inflight > 0)
        pthread_cond_wait(&a->idle, &a->lock);
    pthread_mutex_unlock(&a->lock);
    nng_http_server_release(a->srv);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
