/*
 * http.c - the public HTTP/JSON API of intake: routing, the checks that
 * need no database (size, content type, JSON, fields, the form of the
 * credential) and the answers.  Everything that needs the database goes
 * to the workers (worker.c) as a job.
 *
 *   POST /v1/cases                          register a case (handle_register.c)
 *   GET  /v1/cases                          list cases (handle_list.c)
 *   GET  /v1/cases/{id}                     one case (handle_case.c)
 *   GET  /v1/cases/{id}/history             its handoffs and events (handle_list.c)
 *   POST /v1/cases/{id}/actions/{command}   a workflow command (handle_action.c)
 *   *    /v1/sites/...                      the directory (handle_admin.c)
 *
 * Errors are JSON: {"error":"..."} and, for 422, "fields":[{field,message}].
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "httpd.h"
#include "intake.h"
#include "log.h"

/* The service's state, for the answers (there is one intake per process). */
static struct intake *api;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void reply_full(struct hreq *r, uint16_t status, const char *body, size_t len,
                       const char *etag, bool close, const char *ctype)
{
    if (status >= 400 && status < 500)
        metric_add(api->m_bad, 1);
    uint64_t t0 = hreq_t0(r);
    if (t0 != 0)
        histogram_observe_us(api->m_latency, (int64_t)(mono_us() - t0));
    char head[400];
    bool tagged = etag != NULL && etag[0] != '\0';
    snprintf(head, sizeof(head), "Content-Type: %.100s\r\nCache-Control: no-store\r\n%s%.40s%s%s%s",
             ctype != NULL ? ctype : "application/json", tagged ? "ETag: " : "", tagged ? etag : "",
             tagged ? "\r\n" : "", status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
             status == 503 ? "Retry-After: 1\r\n" : "");
    hreq_reply(r, status, head, body, len, close ? HREQ_CLOSE : 0);
}

void http_reply(struct hreq *r, uint16_t status, const char *body, size_t len, const char *etag)
{
    reply_full(r, status, body, len, etag, false, NULL);
}

void http_reply_typed(struct hreq *r, uint16_t status, const char *body, size_t len,
                      const char *etag, const char *ctype)
{
    reply_full(r, status, body, len, etag, false, ctype);
}

/* Answer {"error": message}; `close` ends the connection after it (a body left unread). */
static void reply_error_close(struct hreq *r, uint16_t status, const char *message, bool close)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_puts(&b, "{\"error\":");
    buf_json_string(&b, message);
    buf_puts(&b, "}\n");
    reply_full(r, status, buf_cstr(&b), b.len, NULL, close, NULL);
    buf_free(&b);
}

static void reply_error(struct hreq *r, uint16_t status, const char *message)
{
    reply_error_close(r, status, message, false);
}

void job_reply_json(struct job *j, uint16_t status, const char *json)
{
    j->status = status;
    j->ctype = NULL;
    buf_reset(&j->body);
    if (buf_puts(&j->body, json) != SW_OK) {
        j->status = 500;
        buf_reset(&j->body);
        buf_puts(&j->body, "{\"error\":\"answer too large\"}");
    }
}

void job_reply_removed(struct job *j, const char *what)
{
    j->status = 200;
    j->ctype = NULL;
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"removed\":");
    buf_json_string(&j->body, what);
    buf_puts(&j->body, "}");
}

void job_reply_error(struct job *j, uint16_t status, const char *message)
{
    j->status = status;
    j->ctype = NULL;
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"error\":");
    buf_json_string(&j->body, message);
    buf_puts(&j->body, "}");
}

static void fields_json(struct buf *b, const struct field_error *fe, int n)
{
    buf_puts(b, "{\"error\":\"invalid fields\",\"fields\":[");
    for (int i = 0; i < n; i++) {
        buf_puts(b, i ? ",{\"field\":" : "{\"field\":");
        buf_json_string(b, fe[i].field);
        buf_puts(b, ",\"message\":");
        buf_json_string(b, fe[i].message);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
}

void job_reply_fields(struct job *j, const struct field_error *fe, int n)
{
    j->status = 422;
    buf_reset(&j->body);
    fields_json(&j->body, fe, n);
}

void job_free(struct job *j)
{
    if (j == NULL)
        return;
    reg_free(j->reg);
    json_decref(j->json);
    buf_free(&j->body);
    free(j);
}

/* The deepest nesting of `s` (outside strings); stops counting past `limit`. */
static int json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, max = 0;
    bool str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
            if (max > limit)
                return max;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

const char *cred_take(const char *t, struct job *j)
{
    size_t tl = strlen(t);
    uint8_t hash[32];
    if (tl > 200 || tl < 8)
        return "invalid credentials";
    j->cred_prefix[0] = '\0';
    if (strncmp(t, "swk_", 4) == 0) {
        const char *end = strchr(t + 4, '_');
        size_t pl = end ? (size_t)(end - (t + 4)) : 0;
        if (pl < 4 || pl >= sizeof(j->cred_prefix))
            return "invalid credentials";
        for (size_t i = 0; i < pl; i++) /* the prefix goes into an SQL array literal */
            if (!isalnum((unsigned char)t[4 + i]))
                return "invalid credentials";
        memcpy(j->cred_prefix, t + 4, pl);
        j->cred_prefix[pl] = '\0';
    } else if (strncmp(t, "swt_", 4) != 0) {
        return "invalid credentials";
    }
    crypto_sha256(t, tl, hash);
    crypto_hex(hash, 32, j->cred_hash);
    return NULL;
}

/*
 * The credential: "Authorization: Bearer <secret>".  API keys are
 * "swk_<prefix>_<secret>", staff tokens "swt_<secret>"; only their SHA-256
 * goes further.  Returns false (and answers 401) when absent or malformed.
 */
static bool take_credential(struct hreq *r, struct job *j)
{
    const char *h = hreq_header(r, "Authorization");
    if (h == NULL) {
        reply_error(r, 401, "missing credentials: send Authorization: Bearer <api key or token>");
        return false;
    }
    if (strncmp(h, "Bearer ", 7) != 0) {
        reply_error(r, 401, "malformed Authorization header: expected Bearer <api key or token>");
        return false;
    }
    const char *why = cred_take(h + 7, j);
    if (why != NULL) {
        reply_error(r, 401, why);
        return false;
    }
    return true;
}

size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

sw_err db_run(PGconn *db, const char *what, const char *sql, int n, const char *const *v,
              PGresult **out, char *err, size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    PGresult *r = PQexecParams(db, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        return db_fail_clear(db, r, what, err, errlen);
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return SW_OK;
}

sw_err job_delete_one(struct job *j, PGconn *db, const char *what, const char *sql, const char *key,
                      const char *notfound, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id, key};
    PGresult *r;
    sw_err rv = db_run(db, what, sql, 2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    bool gone = PQntuples(r) == 1;
    PQclear(r);
    if (gone)
        job_reply_removed(j, key);
    else
        job_reply_error(j, 404, notfound);
    return SW_OK;
}

void field_bad(struct field_errors *f, const char *field, const char *fmt, ...)
{
    va_list ap;
    if (f->n >= INTAKE_MAX_FIELDS)
        return;
    snprintf(f->fe[f->n].field, sizeof(f->fe[f->n].field), "%.63s", field);
    va_start(ap, fmt);
    vsnprintf(f->fe[f->n].message, sizeof(f->fe[f->n].message), fmt, ap);
    va_end(ap);
    f->n++;
}

bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

bool matches(const char *s, const char *first, const char *rest, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max || strchr(first, s[0]) == NULL)
        return false;
    for (size_t i = 1; i < n; i++)
        if (strchr(rest, s[i]) == NULL)
            return false;
    return true;
}

bool phone_ok(const char *s)
{
    int digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (!(*p == '+' && p == s) && *p != ' ' && *p != '-' && *p != '(' && *p != ')')
            return false;
    }
    return digits >= 5 && digits <= 20;
}

bool is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        bool hy = i == 8 || i == 13 || i == 18 || i == 23;
        if (hy ? c != '-'
               : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

int body_parse(const char *data, size_t len, json_t **out, char *msg, size_t msglen)
{
    *out = NULL;
    if (json_depth(data, len, INTAKE_JSON_DEPTH) > INTAKE_JSON_DEPTH) {
        snprintf(msg, msglen, "malformed JSON: nested deeper than %d levels", INTAKE_JSON_DEPTH);
        return 400;
    }
    json_error_t jerr;
    json_t *body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        snprintf(msg, msglen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return 400;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        snprintf(msg, msglen, "malformed JSON: expected an object");
        return 400;
    }
    *out = body;
    return 0;
}

static struct job *job_new(struct hreq *r)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        reply_error(r, 503, "out of memory");
        return NULL;
    }
    buf_init(&j->body, INTAKE_REPLY_MAX);
    j->hreq = r;
    return j;
}

static void route_register(struct intake *in, struct hreq *r, json_t *body)
{
    struct job *j = job_new(r);
    if (j == NULL)
        return;
    if (!take_credential(r, j)) {
        job_free(j);
        return;
    }
    struct field_error fe[INTAKE_MAX_FIELDS];
    int nfe = reg_parse(body, hreq_header(r, "Idempotency-Key"), &j->reg, fe);
    if (nfe > 0) {
        struct buf b;
        buf_init(&b, 1u << 16);
        fields_json(&b, fe, nfe);
        http_reply(r, 422, buf_cstr(&b), b.len, NULL);
        buf_free(&b);
        job_free(j);
        return;
    }
    j->kind = JOB_REGISTER;
    intake_enqueue(in, j);
}

/* Queue a job that runs `fn` alone; `body` (may be NULL) is taken over.  `anon`: no
 * credential is asked for (signing in). */
static void route_job(struct intake *in, struct hreq *r, job_run_fn fn, json_t *body,
                      const char *id, const char *command, bool anon)
{
    const char *uri = hreq_uri(r);
    size_t plen = strcspn(uri, "?#");
    const char *im = hreq_header(r, "If-Match");
    if (plen >= sizeof(((struct job *)0)->path) ||
        (uri[plen] == '?' && strcspn(uri + plen + 1, "#") >= sizeof(((struct job *)0)->query))) {
        json_decref(body);
        reply_error(r, 414, "request URI too long");
        return;
    }
    if (fn != case_action)
        im = NULL; /* only a command is conditional */
    if (im != NULL && strlen(im) >= sizeof(((struct job *)0)->if_match)) {
        json_decref(body);
        reply_error(r, 400, "malformed If-Match header: expected the case's version");
        return;
    }
    struct job *j = job_new(r);
    if (j == NULL) {
        json_decref(body);
        return;
    }
    j->json = body;
    if (anon) {
        j->authed = true;
    } else if (!take_credential(r, j)) {
        job_free(j);
        return;
    }
    j->kind = JOB_OTHER;
    j->run = fn;
    snprintf(j->method, sizeof(j->method), "%s", hreq_method(r));
    memcpy(j->path, uri, plen);
    j->path[plen] = '\0';
    if (uri[plen] == '?')
        snprintf(j->query, sizeof(j->query), "%.*s", (int)strcspn(uri + plen + 1, "#"),
                 uri + plen + 1);
    if (im != NULL)
        snprintf(j->if_match, sizeof(j->if_match), "%s", im);
    if (id != NULL)
        snprintf(j->case_id, sizeof(j->case_id), "%s", id);
    if (command != NULL)
        snprintf(j->command, sizeof(j->command), "%s", command);
    intake_enqueue(in, j);
}

static void route_other(struct intake *in, struct hreq *r, job_run_fn fn, json_t *body,
                        const char *id, const char *command)
{
    route_job(in, r, fn, body, id, command, false);
}

static bool enter(struct intake *in)
{
    pthread_mutex_lock(&in->mu);
    bool ok = !in->stopping;
    if (ok)
        in->inflight++;
    pthread_mutex_unlock(&in->mu);
    return ok;
}

static void leave(struct intake *in)
{
    pthread_mutex_lock(&in->mu);
    if (--in->inflight == 0 && in->stopping) {
        pthread_cond_broadcast(&in->idle);
        pthread_cond_broadcast(&in->cv); /* stopping workers wait for this too */
    }
    pthread_mutex_unlock(&in->mu);
}

/* Does path segment `seg` (length n) equal `s`? */
static bool seg_is(const char *seg, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(seg, s, n) == 0;
}

/*
 * Route a request whose body (if any) has been read.  The path is split
 * into segments after "/v1/"; each resource answers 405 with what it
 * allows for another method.
 */
static void dispatch(struct intake *in, struct hreq *r, const char *data, size_t len, bool ics)
{
    const char *method = hreq_method(r);
    const char *uri = hreq_uri(r);
    size_t plen = strcspn(uri, "?#");
    const char *seg[6];
    size_t sl[6];
    int ns = 0;
    char msg[200];
    const char *p = uri + 4, *end = uri + plen; /* after "/v1/" */
    if (plen < 4 || memcmp(uri, "/v1/", 4) != 0) {
        reply_error(r, 404, "no such resource");
        return;
    }
    while (p < end && ns < 6) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
        if (n == 0 && slash == NULL)
            break; /* a trailing slash */
        seg[ns] = p;
        sl[ns++] = n;
        p += n + (slash != NULL);
    }
    if (p < end || ns == 0) {
        reply_error(r, 404, "no such resource");
        return;
    }
    json_t *body = NULL;
    if (ics) {
        /* an iCalendar file is taken by one route only, as {"ics": its text} */
        if (ns != 4 || !seg_is(seg[0], sl[0], "sites") || !seg_is(seg[2], sl[2], "calendar") ||
            !seg_is(seg[3], sl[3], "import")) {
            reply_error(r, 415,
                        "unsupported content type: text/calendar is taken only by POST "
                        "/v1/sites/{code}/calendar/import; send application/json");
            return;
        }
        json_t *text = json_stringn(data, len);
        if (text == NULL) {
            reply_error(r, 400, "the iCalendar file is not valid UTF-8");
            return;
        }
        body = json_object();
        if (body == NULL || json_object_set_new(body, "ics", text) != 0) {
            json_decref(body);
            reply_error(r, 503, "out of memory");
            return;
        }
    } else if (data != NULL) {
        if (body_parse(data, len, &body, msg, sizeof(msg)) != 0) {
            reply_error(r, 400, msg);
            return;
        }
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    char id[37] = "", cmd[40] = "";
    if (ns >= 2 && seg_is(seg[0], sl[0], "cases")) {
        if (!is_uuid(seg[1], sl[1])) {
            json_decref(body);
            reply_error(r, 404, "no such case: the id is not a UUID");
            return;
        }
        memcpy(id, seg[1], 36);
    }
    if (ns == 1 && seg_is(seg[0], sl[0], "cases")) {
        if (post && body == NULL)
            reply_error(r, 415, "unsupported content type: send application/json");
        else if (post)
            route_register(in, r, body);
        else if (get)
            route_other(in, r, case_list, NULL, NULL, NULL);
        else
            reply_error(r, 405,
                        "method not allowed: POST /v1/cases registers a case, GET lists them");
        json_decref(body);
        return;
    }
    if (ns == 2 && id[0] != '\0') {
        if (get)
            route_other(in, r, case_get, NULL, id, NULL);
        else
            reply_error(r, 405, "method not allowed: GET /v1/cases/{id} reads a case");
        json_decref(body);
        return;
    }
    if (ns == 3 && id[0] != '\0' && seg_is(seg[2], sl[2], "history")) {
        if (get)
            route_other(in, r, case_history, NULL, id, NULL);
        else
            reply_error(r, 405, "method not allowed: GET /v1/cases/{id}/history reads the history");
        json_decref(body);
        return;
    }
    if (ns == 4 && id[0] != '\0' && seg_is(seg[2], sl[2], "actions")) {
        if (!post) {
            json_decref(body);
            reply_error(r, 405, "method not allowed: POST /v1/cases/{id}/actions/{command} acts");
            return;
        }
        if (sl[3] == 0 || sl[3] >= sizeof(cmd)) {
            json_decref(body);
            reply_error(r, 404, "no such command");
            return;
        }
        memcpy(cmd, seg[3], sl[3]);
        if (body == NULL)
            body = json_object();
        route_other(in, r, case_action, body, id, cmd);
        return;
    }
    if (ns == 1 && seg_is(seg[0], sl[0], "session")) {
        bool del = strcmp(method, "DELETE") == 0;
        if (post && body == NULL)
            reply_error(r, 415, "unsupported content type: send application/json");
        else if (post)
            route_job(in, r, session_create, body, NULL, NULL, true);
        else if (get || del)
            route_other(in, r, session_run, NULL, NULL, NULL);
        else
            reply_error(r, 405,
                        "method not allowed: POST /v1/session signs in, GET reads the "
                        "session, DELETE signs out");
        if (!post)
            json_decref(body);
        return;
    }
    if (ns == 1 && seg_is(seg[0], sl[0], "stream")) {
        if (get)
            route_other(in, r, stream_open, NULL, NULL, NULL);
        else
            reply_error(r, 405, "method not allowed: GET /v1/stream streams case events");
        json_decref(body);
        return;
    }
    if (seg_is(seg[0], sl[0], "sites")) {
        route_other(in, r, admin_run, body, NULL, NULL);
        return;
    }
    json_decref(body);
    reply_error(r, 404, "no such resource");
}

/* Content-Type text/calendar (an iCalendar import)? */
static bool is_ics(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "text/calendar", 13) == 0 &&
           (ct[13] == '\0' || ct[13] == ';' || ct[13] == ' ');
}

static void body_done(struct hreq *r, void *arg)
{
    struct intake *in = arg;
    size_t len = 0;
    const char *data = hreq_body(r, &len);
    if (data == NULL) /* the client went away, or stopped sending: the answer goes nowhere */
        reply_error_close(r, 400, "the request body did not arrive", true);
    else
        dispatch(in, r, data, len, is_ics(hreq_header(r, "Content-Type")));
    leave(in);
}

/*
 * Check the content type and length, then read the body (dispatch when it
 * is in).  A body over the limit is never read: 413, and the connection
 * closes after it.
 */
static void read_body(struct intake *in, struct hreq *r)
{
    const char *ct = hreq_header(r, "Content-Type");
    const char *cl = hreq_header(r, "Content-Length");
    char msg[200];
    /* the length: digits only (strtoull alone would take " 5" or "-1") */
    bool digits = cl != NULL && cl[0] != '\0' && cl[strspn(cl, "0123456789")] == '\0';
    unsigned long long n = digits ? strtoull(cl, NULL, 10) : 0;
    if (ct == NULL && (cl == NULL || (digits && n == 0)) &&
        hreq_header(r, "Transfer-Encoding") == NULL) {
        dispatch(in, r, NULL, 0, false); /* no body at all (an action that needs none) */
        leave(in);
        return;
    }
    bool ics = is_ics(ct);
    if (!ics && (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
                 (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))) {
        reply_error_close(r, 415, "unsupported content type: send application/json",
                          true); /* a body, if any, is left unread */
        leave(in);
        return;
    }
    if (!digits || hreq_header(r, "Transfer-Encoding") != NULL) {
        reply_error_close(r, 411, "a Content-Length header is required", true);
        leave(in);
        return;
    }
    if (n > in->max_body) {
        snprintf(msg, sizeof(msg), "request body too large: %llu bytes, the limit is %zu", n,
                 in->max_body);
        reply_error_close(r, 413, msg, true); /* the body is never read */
        leave(in);
        return;
    }
    hreq_read_body(r, (size_t)n, body_done, in); /* leave() when the body is in */
}

static void api_handle(struct intake *in, struct hreq *r)
{
    if (!enter(in)) {
        reply_error_close(r, 503, "stopping", true);
        return;
    }
    metric_add(in->m_requests, 1);
    hreq_set_t0(r, mono_us());
    const char *method = hreq_method(r);
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        read_body(in, r);
        return; /* leave() when the body is in */
    }
    /* Other methods carry no body; one sent anyway is never read, so the
     * connection is closed rather than its bytes taken for the next request. */
    const char *cl = hreq_header(r, "Content-Length");
    if (hreq_header(r, "Transfer-Encoding") != NULL ||
        (cl != NULL && cl[strspn(cl, "0")] != '\0')) {
        reply_error_close(r, 400, "a request body is accepted only with POST, PUT or PATCH", true);
        leave(in);
        return;
    }
    dispatch(in, r, NULL, 0, false);
    leave(in);
}

/* Every request: the API under /v1, the console's files elsewhere (when it is served). */
static void route(struct hreq *r, void *arg)
{
    struct intake *in = arg;
    const char *uri = hreq_uri(r);
    if (strncmp(uri, "/v1", 3) == 0 && (uri[3] == '\0' || uri[3] == '/' || uri[3] == '?')) {
        api_handle(in, r);
        return;
    }
    if (console_handle(r))
        return;
    reply_error_close(r, 404, "no such resource: the API is under /v1/", false);
}

sw_err intake_http_open(struct intake *in, const char *hostport, long long idle_ms, int max_conns,
                        char *err, size_t errlen)
{
    api = in;
    if (console_open(in->console_dir, err, errlen) != SW_OK)
        return SW_EINVAL;
    struct httpd_opts o = {
        .hostport = hostport,
        .handle = route,
        .arg = in,
        .max_conns = max_conns,
        .idle_ms = idle_ms,
        .m_bad = in->m_bad,
        .m_conns = metrics_get(METRIC_GAUGE, "shouwen_intake_http_connections",
                               "Open connections to the public API", NULL),
    };
    if (httpd_start(&in->srv, &o, err, errlen) != SW_OK) {
        console_close();
        return SW_EIO;
    }
    return SW_OK;
}

void intake_http_close(struct intake *in)
{
    if (in->srv == NULL)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = true; /* leave() wakes us only when stopping */
    while (in->inflight > 0)
        pthread_cond_wait(&in->idle, &in->mu);
    pthread_mutex_unlock(&in->mu);
    httpd_stop(in->srv);
    in->srv = NULL;
    console_close();
}

/* Only members of `known` (NULL-terminated). */
void members_only(struct field_errors *f, json_t *o, const char *const *known, const char *what)
{
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            field_bad(f, key, "%s has no member \"%.60s\"", what, key);
    }
}

/* A string member of at most `max` characters; NULL when absent (or wrong: recorded). */
const char *json_str_member(struct field_errors *f, json_t *o, const char *key, size_t max,
                            bool required)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (required)
            field_bad(f, key, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        field_bad(f, key, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (blank(s) || utf8_chars(s) > max || strlen(s) != json_string_length(v)) {
        field_bad(f, key, "must be 1 to %zu characters, not blank", max);
        return NULL;
    }
    return s;
}

bool query_get(const char *q, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = q;;) {
        size_t len = strcspn(p, "&");
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            snprintf(out, outlen, "%.*s", (int)(len - n - 1), p + n + 1);
            return true;
        }
        if (p[len] == '\0')
            return false;
        p += len + 1;
    }
}

/* Every name in the query is one of `known` (NULL-terminated); else a 422 naming them. */
bool query_only(struct field_errors *f, const char *q, const char *const *known, const char *list)
{
    for (const char *p = q; *p != '\0';) {
        size_t len = strcspn(p, "=&");
        bool found = false;
        for (const char *const *k = known; *k != NULL && !found; k++)
            found = strlen(*k) == len && strncmp(p, *k, len) == 0;
        if (!found) {
            field_bad(f, "query", "unknown parameter \"%.*s\": the parameters are %s",
                      (int)(len > 40 ? 40 : len), p, list);
            return false;
        }
        p += strcspn(p, "&");
        if (*p == '&')
            p++;
    }
    return true;
}
