/*
 * rep.c - SubmitCase over nng REQ/REP, for sites and devices that do not
 * speak HTTP (proto/shouwen/v1/intake.proto).
 *
 * One SubmitCase in, one SubmitCaseReply out, with exactly the checks and
 * the idempotency of POST /v1/cases: the message is turned into the JSON
 * object the HTTP API would have received (same field names, enums by
 * their API names) and goes through the same reg_parse, then the same
 * worker queue and group commit as an HTTP registration.  Only the answer
 * differs: the worker's JSON answer is turned into a SubmitCaseReply.
 *
 * The socket is a REP socket with SHOUWEN_INTAKE_REP_CONTEXTS nng contexts, each one a
 * small state machine on its own aio (RECV -> WORK -> SEND -> RECV), so as
 * many submissions as there are contexts are in flight at once and can
 * share a group commit.  A context in WORK has a job with the workers;
 * the worker's job_finish calls rep_finish, which sends the answer on that
 * context.  Stopping (intake_rep_close) stops the receives, waits for every
 * context to come back to IDLE (its job answered and sent) and only then
 * closes the socket, which is why it runs before the workers stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "intake.h"
#include "log.h"
#include "tls.h"
#include "workflow.h"
#include "shouwen/v1/intake.pb-c.h"

#define REP_SEND_TIMEOUT_MS 10000 /* a peer that reads no reply holds a context this long */

enum rep_state {
    REP_IDLE, /* nothing under way (stopped) */
    REP_RECV, /* waiting for a request */
    REP_WORK, /* a job with the workers; rep_finish comes next */
    REP_SEND, /* sending the answer */
};

struct rep_ctx {
    struct rep *rep;
    nng_ctx ctx;
    nng_aio *aio;
    enum rep_state state; /* guarded by rep->mu */
};

struct rep {
    struct intake *in;
    nng_socket sock;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* busy reached 0 */
    bool closing;
    int busy; /* contexts not IDLE */
    int nctx;
    struct rep_ctx *ctxs;
};

/* One REP socket per process, as there is one HTTP server (the_rep == NULL: none). */
static struct rep *the_rep;

/* ---- SubmitCase -> the registration ---------------------------------------------------- */

static void fe_set(struct field_error *fe, const char *field, const char *message)
{
    snprintf(fe->field, sizeof(fe->field), "%s", field);
    snprintf(fe->message, sizeof(fe->message), "%s", message);
}

/*
 * Set obj[key] to the string `s` unless it is NULL or empty (proto3 has no
 * "present but empty": an empty string is an absent field).  Returns 0, or
 * adds a field error and returns -1 when `s` is not UTF-8 (protobuf-c does
 * not check it, and PostgreSQL would refuse the whole batch) or memory ran
 * out.
 */
static int put_str(json_t *obj, const char *key, const char *field, const char *s,
                   struct field_error *fe, int *nfe)
{
    if (s == NULL || s[0] == '\0')
        return 0;
    json_t *v = json_string(s);
    if (v == NULL) {
        /* jansson refuses invalid UTF-8; only memory can fail the unchecked copy */
        json_t *raw = json_string_nocheck(s);
        if (*nfe < INTAKE_MAX_FIELDS)
            fe_set(&fe[(*nfe)++], field,
                   raw != NULL ? "must be valid UTF-8" : "could not be stored: out of memory");
        json_decref(raw);
        return -1;
    }
    return json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

/*
 * An enum field: its API name; nothing for UNSPECIFIED (reg_parse then
 * reports the field as required, or applies its default); an unknown
 * number (proto3 enums are open) as its decimal text, which reg_parse
 * refuses with "must be one of ..." in its own order of fields.
 */
static int put_enum(json_t *obj, const char *key, int value, const char *name)
{
    char num[16];
    if (value == 0)
        return 0;
    if (name == NULL) {
        snprintf(num, sizeof(num), "%d", value);
        name = num;
    }
    return json_object_set_new(obj, key, json_string(name));
}

int rep_submit_to_reg(const Shouwen__V1__SubmitCase *m, struct reg **out, struct field_error *fe)
{
    int nfe = 0, bad = 0;
    json_t *body = json_object();
    if (body == NULL) {
        fe_set(&fe[0], "body", "could not be stored: out of memory");
        return 1;
    }
    /*
     * Not carried over: api_key (the credential, checked by the worker);
     * source (the idempotency source is the API key's name, as for HTTP:
     * trusting a caller-chosen source would let one key write into another
     * source's idempotency space or dodge it by varying the source; a
     * device that needs its own source gets its own key.  It is not folded
     * into category either, which has a meaning of its own); received_at
     * (the SLA clocks run from when intake received the case, never from a
     * caller's clock: an early claimed time would breach deadlines at once).
     */
    bad |= put_str(body, "site", "site", m->site, fe, &nfe);
    bad |= put_enum(body, "channel", (int)m->channel, wf_channel_name(m->channel));
    bad |= put_enum(body, "type", (int)m->case_type, wf_case_type_name(m->case_type));
    bad |= put_enum(body, "urgency", (int)m->urgency, wf_urgency_name(m->urgency));
    bad |= put_str(body, "subject", "subject", m->subject, fe, &nfe);
    bad |= put_str(body, "description", "description", m->description, fe, &nfe);
    bad |= put_str(body, "category", "category", m->category, fe, &nfe);
    const Shouwen__V1__Customer *cu = m->customer;
    /* a customer with every field empty is no customer, so that it cannot change the body hash */
    if (cu != NULL && ((cu->name && cu->name[0]) || (cu->phone && cu->phone[0]) ||
                       (cu->unit && cu->unit[0]) || (cu->address && cu->address[0]) ||
                       (cu->room && cu->room[0]) || (cu->email && cu->email[0]) || cu->consent)) {
        json_t *c = json_object();
        if (c == NULL || json_object_set_new(body, "customer", c) != 0) {
            bad = -1;
        } else {
            bad |= put_str(c, "name", "customer.name", cu->name, fe, &nfe);
            bad |= put_str(c, "phone", "customer.phone", cu->phone, fe, &nfe);
            bad |= put_str(c, "unit", "customer.unit", cu->unit, fe, &nfe);
            bad |= put_str(c, "address", "customer.address", cu->address, fe, &nfe);
            bad |= put_str(c, "room", "customer.room", cu->room, fe, &nfe);
            bad |= put_str(c, "email", "customer.email", cu->email, fe, &nfe);
            if (cu->consent && json_object_set_new(c, "consent", json_true()) != 0)
                bad = -1;
        }
    }
    if (m->n_required_documents > 0) {
        /* every item, empty ones too: an empty document is an invalid item, not a missing one */
        json_t *a = json_array();
        if (a == NULL || json_object_set_new(body, "required_documents", a) != 0)
            bad = -1;
        for (size_t i = 0; a != NULL && i < m->n_required_documents; i++) {
            const char *s = m->required_documents[i] ? m->required_documents[i] : "";
            json_t *v = json_string(s);
            if (v == NULL) {
                if (nfe < INTAKE_MAX_FIELDS)
                    fe_set(&fe[nfe++], "required_documents", "items must be valid UTF-8");
                bad = -1;
                break;
            }
            if (json_array_append_new(a, v) != 0)
                bad = -1;
        }
    }
    bad |= put_str(body, "first_responder", "first_responder", m->first_responder, fe, &nfe);
    bad |= put_str(body, "external_ref", "external_ref", m->external_ref, fe, &nfe);
    if (bad != 0) {
        if (nfe == 0)
            fe_set(&fe[nfe++], "body", "could not be stored: out of memory");
        json_decref(body);
        return nfe;
    }
    nfe = reg_parse(body, NULL, out, fe);
    json_decref(body);
    return nfe;
}

/* ---- answers ---------------------------------------------------------------------------- */

/* The code of a field error, from reg_parse's wording (see its messages). */
static Shouwen__V1__ErrorCode field_code(const char *message)
{
    if (strncmp(message, "is required", 11) == 0)
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_MISSING_FIELD;
    if (strncmp(message, "is too long", 11) == 0 || strncmp(message, "has too many", 12) == 0 ||
        strncmp(message, "must be one of", 14) == 0)
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_OUT_OF_RANGE;
    return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT;
}

static Shouwen__V1__ErrorCode status_code(unsigned status)
{
    switch (status) {
    case 401:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_UNAUTHENTICATED;
    case 403:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED;
    case 409:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_CONFLICT;
    case 413:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_TOO_LARGE;
    case 422:
    case 400:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT;
    case 503:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE;
    default:
        return SHOUWEN__V1__ERROR_CODE__ERROR_CODE_INTERNAL;
    }
}

/* Start the next receive, or stop when closing.  Called with rep->mu held. */
static void rep__next(struct rep_ctx *c)
{
    struct rep *r = c->rep;
    if (r->closing) {
        c->state = REP_IDLE;
        if (--r->busy == 0)
            pthread_cond_broadcast(&r->idle);
        return;
    }
    c->state = REP_RECV;
    nng_aio_set_timeout(c->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(c->ctx, c->aio);
}

/*
 * Pack `reply` and send it on the context (which must hold a request);
 * when it cannot be sent the request is dropped (the REQ peer resends) and
 * the context receives again.  Any thread.
 *
 * The nng calls are made with rep->mu held, so that intake_rep_close, which
 * cancels the contexts that are receiving under the same lock, never
 * misses one.  nng completes operations on its own threads and never calls
 * the callback from inside nng_ctx_send, nng_ctx_recv or nng_aio_cancel,
 * so this cannot deadlock.
 */
static void rep__send(struct rep_ctx *c, const Shouwen__V1__SubmitCaseReply *reply)
{
    struct rep *r = c->rep;
    nng_msg *msg = NULL;
    size_t len = shouwen__v1__submit_case_reply__get_packed_size(reply);
    int rv = nng_msg_alloc(&msg, len);
    if (rv == 0)
        shouwen__v1__submit_case_reply__pack(reply, nng_msg_body(msg));
    else
        LOG(LOG_WARN, "INTAKE-REP-SEND", "could not allocate a reply of %zu bytes: %s", len,
            nng_strerror(rv));
    pthread_mutex_lock(&r->mu);
    if (rv == 0) {
        c->state = REP_SEND;
        nng_aio_set_msg(c->aio, msg);
        nng_aio_set_timeout(c->aio, REP_SEND_TIMEOUT_MS);
        nng_ctx_send(c->ctx, c->aio);
    } else {
        rep__next(c);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Answer with an error at once (not through the workers). */
static void rep__error(struct rep_ctx *c, Shouwen__V1__ErrorCode code, const char *message,
                       const char *field)
{
    Shouwen__V1__SubmitCaseReply reply = SHOUWEN__V1__SUBMIT_CASE_REPLY__INIT;
    Shouwen__V1__Error e = SHOUWEN__V1__ERROR__INIT;
    e.code = code;
    e.message = (char *)message;
    e.field = (char *)(field != NULL ? field : "");
    reply.error = &e;
    rep__send(c, &reply);
}

/* Answer with the first field error of reg_parse's list, as HTTP's 422 names it first. */
static void rep__field_error(struct rep_ctx *c, const struct field_error *fe)
{
    char msg[sizeof(fe->field) + sizeof(fe->message) + 4];
    snprintf(msg, sizeof(msg), "%s: %s", fe[0].field, fe[0].message);
    rep__error(c, field_code(fe[0].message), msg, fe[0].field);
}

/*
 * The worker's answer (j->status, j->body: the JSON of the HTTP API) as a
 * SubmitCaseReply.  Called by job_finish on a worker thread, or at once by
 * intake_enqueue when the queue is full; frees the job.
 */
static void rep_finish(struct job *j)
{
    struct rep_ctx *c = j->finish_arg;
    Shouwen__V1__SubmitCaseReply reply = SHOUWEN__V1__SUBMIT_CASE_REPLY__INIT;
    Shouwen__V1__Error e = SHOUWEN__V1__ERROR__INIT;
    char id[40] = "", number[40] = "", message[INTAKE_ERR_MAX] = "", field[64] = "";
    json_t *body = json_loadb(j->body.data ? j->body.data : "", j->body.len, 0, NULL);
    const char *s;
    if ((j->status == 200 || j->status == 201) && json_is_object(body)) {
        Shouwen__V1__CaseStatus st = SHOUWEN__V1__CASE_STATUS__CASE_STATUS_UNSPECIFIED;
        snprintf(id, sizeof(id), "%s",
                 (s = json_string_value(json_object_get(body, "id"))) ? s : "");
        snprintf(number, sizeof(number), "%s",
                 (s = json_string_value(json_object_get(body, "number"))) ? s : "");
        if ((s = json_string_value(json_object_get(body, "status"))) != NULL)
            wf_status_parse(s, &st);
        reply.case_id = id;
        reply.number = number;
        reply.status = st;
        reply.version = json_integer_value(json_object_get(body, "version"));
        reply.duplicate = json_is_true(json_object_get(body, "duplicate"));
    } else {
        json_t *first = json_array_get(json_object_get(body, "fields"), 0);
        e.code = status_code(j->status);
        if (j->status == 422 && first != NULL) {
            const char *f = json_string_value(json_object_get(first, "field"));
            const char *fm = json_string_value(json_object_get(first, "message"));
            snprintf(field, sizeof(field), "%s", f ? f : "");
            snprintf(message, sizeof(message), "%s: %s", field, fm ? fm : "is invalid");
            e.code = field_code(fm ? fm : "");
        } else if ((s = json_string_value(json_object_get(body, "error"))) != NULL) {
            snprintf(message, sizeof(message), "%s", s);
        } else {
            snprintf(message, sizeof(message), "could not register the case (status %u)",
                     (unsigned)j->status);
        }
        e.message = message;
        e.field = field;
        reply.error = &e;
    }
    json_decref(body);
    job_free(j);
    rep__send(c, &reply);
}

/* A request has arrived on `c`: check it, then queue it or answer at once.  Consumes msg. */
static void rep__handle(struct rep_ctx *c, nng_msg *msg)
{
    struct rep *r = c->rep;
    struct intake *in = r->in;
    size_t len = nng_msg_len(msg);
    char text[160];
    Shouwen__V1__SubmitCase *m = NULL;
    struct field_error fe[INTAKE_MAX_FIELDS];
    struct job *j = NULL;
    const char *why;
    int nfe;

    metric_add(in->m_requests, 1);
    if (len > in->max_body) {
        nng_msg_free(msg);
        metric_add(in->m_bad, 1);
        LOG(LOG_INFO, "INTAKE-REP-TOO-LARGE", "SubmitCase of %zu bytes refused", len);
        snprintf(text, sizeof(text), "request too large: %zu bytes, the limit is %zu", len,
                 in->max_body);
        rep__error(c, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_TOO_LARGE, text, NULL);
        return;
    }
    m = shouwen__v1__submit_case__unpack(NULL, len, nng_msg_body(msg));
    nng_msg_free(msg);
    if (m == NULL) {
        metric_add(in->m_bad, 1);
        LOG(LOG_INFO, "INTAKE-REP-MALFORMED", "SubmitCase of %zu bytes could not be unpacked", len);
        rep__error(c, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
                   "malformed SubmitCase: not a protobuf shouwen.v1.SubmitCase message", NULL);
        return;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        shouwen__v1__submit_case__free_unpacked(m, NULL);
        rep__error(c, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE, "out of memory", NULL);
        return;
    }
    buf_init(&j->body, INTAKE_REPLY_MAX);
    /* the order of POST /v1/cases: the credential's form (401), then the fields (422) */
    if (m->api_key == NULL || m->api_key[0] == '\0')
        why = "missing credentials: set api_key";
    else
        why = cred_take(m->api_key, j);
    if (why != NULL) {
        shouwen__v1__submit_case__free_unpacked(m, NULL);
        job_free(j);
        metric_add(in->m_bad, 1);
        rep__error(c, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_UNAUTHENTICATED, why, "api_key");
        return;
    }
    nfe = rep_submit_to_reg(m, &j->reg, fe);
    shouwen__v1__submit_case__free_unpacked(m, NULL);
    if (nfe > 0) {
        job_free(j);
        metric_add(in->m_bad, 1);
        rep__field_error(c, fe);
        return;
    }
    j->kind = JOB_REGISTER;
    j->hreq = NULL;
    j->finish = rep_finish;
    j->finish_arg = c;
    pthread_mutex_lock(&r->mu);
    c->state = REP_WORK;
    pthread_mutex_unlock(&r->mu);
    intake_enqueue(in, j); /* rep_finish may already have run when this returns */
}

static void rep__cb(void *arg)
{
    struct rep_ctx *c = arg;
    struct rep *r = c->rep;
    int rv = nng_aio_result(c->aio);
    pthread_mutex_lock(&r->mu);
    enum rep_state state = c->state;
    if (state == REP_SEND || rv != 0) {
        if (rv != 0 && state == REP_SEND) {
            nng_msg_free(nng_aio_get_msg(c->aio)); /* not sent: still ours */
            nng_aio_set_msg(c->aio, NULL);
        }
        if (rv != 0 && rv != NNG_ECLOSED && rv != NNG_ECANCELED)
            LOG(LOG_WARN, "INTAKE-REP-IO", "SubmitCase %s failed: %s",
                state == REP_SEND ? "reply" : "receive", nng_strerror(rv));
        if (rv == NNG_ECLOSED)
            r->closing = true;
        rep__next(c);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    bool closing = r->closing;
    pthread_mutex_unlock(&r->mu);
    /* state == REP_RECV, a request */
    nng_msg *msg = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    if (closing) {
        nng_msg_free(msg);
        rep__error(c, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE, "stopping: retry later",
                   NULL);
        return;
    }
    rep__handle(c, msg);
}

/* Is `url` one nng can listen on, with a port others can dial (not tcp port 0)? */
static bool url_ok(const char *url)
{
    nng_url *u = NULL;
    if (nng_url_parse(&u, url) != 0)
        return false;
    bool ok = strcmp(u->u_scheme, "ipc") == 0 || strcmp(u->u_scheme, "inproc") == 0 ||
              (u->u_port != NULL && u->u_port[0] != '\0' && strcmp(u->u_port, "0") != 0);
    nng_url_free(u);
    return ok;
}

static void rep__free(struct rep *r)
{
    if (r == NULL)
        return;
    for (int i = 0; r->ctxs != NULL && i < r->nctx; i++)
        nng_aio_free(r->ctxs[i].aio); /* waits for a callback still running */
    free(r->ctxs);
    pthread_cond_destroy(&r->idle);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

sw_err intake_rep_open(struct intake *in, const char *url, int nctx, char *err, size_t errlen)
{
    struct rep *r = NULL;
    int rv;
    sw_err ret = SW_ENNG;
    bool sock_open = false;
    if (url == NULL || url[0] == '\0')
        return SW_OK; /* disabled */
    if (!url_ok(url)) {
        snprintf(err, errlen,
                 "SHOUWEN_INTAKE_REP_ADDR: invalid value \"%s\": expected an nng address such "
                 "as tcp://host:port or ipc:///path (empty: no REP socket)",
                 url);
        return SW_EINVAL;
    }
    if (nctx < 1 || (r = calloc(1, sizeof(*r))) == NULL ||
        (r->ctxs = calloc((size_t)nctx, sizeof(*r->ctxs))) == NULL) {
        free(r);
        snprintf(err, errlen, "out of memory opening the REP socket");
        return SW_ENOMEM;
    }
    r->in = in;
    r->nctx = nctx;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->idle, NULL);
    if ((rv = nng_rep0_open(&r->sock)) != 0) {
        snprintf(err, errlen, "could not open the REP socket: %s", nng_strerror(rv));
        goto fail;
    }
    sock_open = true;
    /*
     * Over the body limit but under twice it is answered TOO_LARGE, as
     * HTTP answers 413; anything larger is never read (nng drops the
     * connection), so one peer cannot make intake hold huge messages.
     */
    if ((rv = nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, in->max_body * 2)) != 0) {
        snprintf(err, errlen, "could not bound the REP socket's messages: %s", nng_strerror(rv));
        goto fail;
    }
    for (int i = 0; i < nctx; i++) {
        struct rep_ctx *c = &r->ctxs[i];
        c->rep = r;
        c->state = REP_IDLE;
        if ((rv = nng_aio_alloc(&c->aio, rep__cb, c)) != 0 ||
            (rv = nng_ctx_open(&c->ctx, r->sock)) != 0) {
            snprintf(err, errlen, "could not open REP context %d: %s", i, nng_strerror(rv));
            goto fail;
        }
    }
    if ((rv = tls_listen(r->sock, url)) != 0) {
        snprintf(err, errlen, "could not listen for SubmitCase on %s: %s", url, nng_strerror(rv));
        ret = rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? SW_EINVAL : SW_ENNG;
        goto fail;
    }
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < nctx; i++) {
        r->busy++;
        rep__next(&r->ctxs[i]);
    }
    pthread_mutex_unlock(&r->mu);
    the_rep = r;
    return SW_OK;
fail:
    if (sock_open)
        nng_close(r->sock); /* no context has an operation under way yet */
    rep__free(r);
    return ret;
}

void intake_rep_close(struct intake *in)
{
    struct rep *r = the_rep;
    (void)in;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    /* a context in WORK or SEND finishes its answer first (the workers are still running) */
    for (int i = 0; i < r->nctx; i++)
        if (r->ctxs[i].state == REP_RECV)
            nng_aio_cancel(r->ctxs[i].aio);
    while (r->busy > 0)
        pthread_cond_wait(&r->idle, &r->mu);
    pthread_mutex_unlock(&r->mu);
    nng_close(r->sock);
    rep__free(r);
    the_rep = NULL;
}
