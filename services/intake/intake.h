/*
 * intake.h - what the files of the intake service share.
 *
 * The public API is served by httpd.c, one epoll thread.  Its handlers
 * run on that thread and do only CPU work: route, check the body (size,
 * type, JSON, fields) and the form of the credential, then queue a job.  A few
 * worker threads, each with its own database session, take the jobs:
 * every registration waiting in the queue goes into ONE transaction
 * (group commit: the fsync is shared, which is what lets one database
 * take thousands of cases a second), other jobs one per transaction.  The
 * worker answers each job's request when its transaction has committed,
 * and publishes the events on the bus after that.
 */
#ifndef SHOUWEN_INTAKE_H
#define SHOUWEN_INTAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <nng/nng.h>

#include "buf.h"
#include "bus.h"
#include "db.h"
#include "err.h"
#include "httpd.h"
#include "metrics.h"

#define INTAKE_ERR_MAX    512
#define INTAKE_JSON_DEPTH 8 /* deepest nesting a request body may have */
#define INTAKE_REPLY_MAX  (1u << 20)
#define INTAKE_MAX_FIELDS 16 /* invalid fields named in one 422 */

/* SQL: the timestamptz expression c as RFC 3339 text in UTC, as every answer gives times. */
#define SQL_UTC(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Who is calling: an API key or a staff member's bearer token. */
struct principal {
    char kind;   /* 'k' API key, 't' staff token */
    char id[37]; /* the key's id or the staff member's id */
    char site_id[37];
    char site[17]; /* site code */
    char time_zone[65];
    char role[24];  /* key: system|device|reader|admin; staff: their role */
    char name[101]; /* key name (the submission source) or staff code */
    char department_id[37];
};

/*
 * JOB_REGISTER jobs are committed together (group commit); every other
 * job runs alone in its own transaction through its `run` function.
 */
enum job_kind { JOB_REGISTER, JOB_OTHER };

struct job;
struct intake;
/*
 * What a JOB_OTHER does in the worker's open transaction, after its
 * credential was checked (j->who).  It answers with job_reply_* and
 * returns SW_OK (the transaction commits, the staged events are published
 * after the commit), or returns an error when the database failed (the
 * transaction is rolled back and the request answered 503).  An answer
 * of 4xx also rolls back whatever the job wrote.
 */
typedef sw_err (*job_run_fn)(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob,
                             char *err, size_t errlen);

/* One invalid field of a 422 answer. */
struct field_error {
    char field[64];
    char message[160];
};

/* A validated registration (POST /v1/cases or SubmitCase). */
struct reg;

struct job {
    struct job *next;
    enum job_kind kind;
    job_run_fn run;    /* JOB_OTHER */
    struct hreq *hreq; /* the HTTP request to answer, or NULL (see finish) */
    /* Not HTTP (the nng REP socket): called instead of answering `hreq`;
     * it must free the job with job_free. */
    void (*finish)(struct job *j);
    void *finish_arg;
    char cred_prefix[33]; /* API key: its prefix; staff token: "" */
    char cred_hash[65];   /* hex SHA-256 of the whole credential */
    struct principal who; /* filled by the worker */
    bool authed;     /* set before the worker for a request that needs no credential (signing in) */
    bool stream;     /* GET /v1/stream accepted: job_finish hands the connection to stream.c */
    struct reg *reg; /* JOB_REGISTER */
    /* the request, for JOB_OTHER */
    char method[8];
    char path[512];    /* the path, from "/v1/", without the query (may be %-encoded) */
    char query[2048];  /* the query string without the '?', or "" */
    char if_match[40]; /* the If-Match header, or "" */
    json_t *json;      /* the body, parsed (a JSON object), or NULL when there is none */
    char case_id[37];  /* /v1/cases/{id}/...: the id (checked as a UUID) */
    char command[40];  /* /v1/cases/{id}/actions/{command} */
    /* the answer */
    uint16_t status;
    struct buf body;
    char etag[24];
    const char *ctype; /* Content-Type of the answer; NULL: application/json */
};

struct intake {
    const char *db_url;
    nng_socket *pub;   /* the service's PUB socket (svc.c) */
    struct httpd *srv; /* the public API (httpd.h) */
    size_t max_body;
    long long session_ttl_s; /* console sessions (POST /v1/session) */
    const char *console_dir; /* the web console's files; "" for none */
    int batch_max;
    int nworkers;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Two queues: registrations (committed in batches by up to
     * reg_sessions workers at a time, see worker.c) and every other job. */
    struct job *rhead, *rtail;
    struct job *ohead, *otail;
    int reg_busy;     /* workers committing a batch of registrations */
    int reg_sessions; /* the most that may */
    size_t queued;
    size_t queue_max;
    bool stopping;
    int inflight; /* API requests being routed, or waiting for their body (http.c) */
    pthread_cond_t idle;
    struct metric *m_requests;
    struct histogram *m_latency; /* request read to reply handed to nng */
    struct metric *m_bad;
    struct metric *m_registered;
    struct metric *m_duplicates;
    struct metric *m_batches;
    struct metric *m_unavailable;
};

/* http.c */
/* Serve the API on hostport: connections idle idle_ms are closed, at most max_conns open. */
sw_err intake_http_open(struct intake *in, const char *hostport, long long idle_ms, int max_conns,
                        char *err, size_t errlen);
void intake_http_close(struct intake *in);
void job_reply_json(struct job *j, uint16_t status, const char *json);
void job_reply_error(struct job *j, uint16_t status, const char *message);
/* 200 {"removed": what}, the answer of a DELETE. */
void job_reply_removed(struct job *j, const char *what);
void job_reply_fields(struct job *j, const struct field_error *fe, int n);
void job_free(struct job *j);
/*
 * body_parse parses a request body as a JSON object of bounded depth.
 * Returns 0 and sets *out (json_decref it), or 400 with `msg` saying
 * what is wrong.
 */
int body_parse(const char *data, size_t len, json_t **out, char *msg, size_t msglen);
/*
 * cred_take checks the form of a credential (the secret of "Bearer
 * <secret>": "swk_<prefix>_<secret>" or "swt_<secret>") and keeps only
 * its prefix and SHA-256 in the job.  Returns NULL, or why it is refused.
 */
const char *cred_take(const char *secret, struct job *j);
bool is_uuid(const char *s, size_t n);

/* worker.c */
sw_err intake_workers_start(struct intake *in, char *err, size_t errlen);
void intake_workers_stop(struct intake *in);
void intake_enqueue(struct intake *in, struct job *j);
/* http.c: answer an HTTP request with a JSON body (4xx counted as bad input). */
void http_reply(struct hreq *r, uint16_t status, const char *body, size_t len, const char *etag);
/* The same with a Content-Type other than application/json (NULL: JSON). */
void http_reply_typed(struct hreq *r, uint16_t status, const char *body, size_t len,
                      const char *etag, const char *ctype);
/* Answer the job (HTTP or j->finish) and free it. */
void job_finish(struct job *j);

/* handle_register.c */
/*
 * reg_parse checks a registration body.  On success sets *out (free with
 * reg_free) and returns 0; otherwise fills up to INTAKE_MAX_FIELDS field
 * errors and returns their number.  `idem_key` is the Idempotency-Key
 * header or NULL.
 */
int reg_parse(json_t *body, const char *idem_key, struct reg **out, struct field_error *fe);
void reg_free(struct reg *r);
/*
 * A credential, as a LATERAL subquery `a` on a row `c` with c.prefix (an
 * API key's prefix, or '' for a staff token) and c.hash (the hex SHA-256
 * of the whole credential): an API key found by its prefix, a staff token
 * by its hash; columns kind ('k' or 't'), id, site_id, role, name (the
 * key's name or the staff code), hash (stored, compared by
 * principal_take in constant time) and dept.  Used by worker.c and
 * handle_register.c.
 */
#define INTAKE_CREDENTIAL_SQL                                                                      \
    "(SELECT 'k' AS kind, k.id::text AS id, k.site_id, k.role, k.name, k.key_hash AS hash, "       \
    " NULL::text AS dept FROM core.api_keys k WHERE c.prefix <> '' AND k.prefix = c.prefix "       \
    " AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) "                \
    " UNION ALL "                                                                                  \
    " SELECT 't', st.id::text, st.site_id, st.role, st.code, t.token_hash, "                       \
    " st.department_id::text FROM core.staff_tokens t JOIN core.staff st ON st.id = t.staff_id "   \
    " WHERE c.prefix = '' AND t.token_hash = decode(c.hash, 'hex') AND t.revoked_at IS NULL "      \
    " AND t.expires_at > now() AND st.active) a"
/*
 * Columns 1 to 9 of row `row` of `r` (kind, id, site_id, site code, time
 * zone, role, name, stored hash in hex, dept): job `j`'s principal, when
 * the stored hash equals the job's (compared in constant time).
 */
bool principal_take(const PGresult *r, int row, struct job *j);
/*
 * Run the registrations `jobs` (n of them, credentials not checked yet; no
 * transaction open): answers each (401 for a credential not found) and
 * commits them itself, in transactions of its own.
 */
sw_err reg_run_batch(struct intake *in, PGconn *db, struct job **jobs, int n, struct bus_outbox *ob,
                     char *err, size_t errlen);

/* handle_case.c: GET /v1/cases/{id} */
sw_err case_get(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                size_t errlen);
/* handle_action.c: POST /v1/cases/{id}/actions/{command} */
sw_err case_action(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen);
/* handle_list.c: GET /v1/cases (filters, keyset pagination), GET /v1/cases/{id}/history */
sw_err case_list(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen);
sw_err case_history(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                    size_t errlen);
/* handle_console.c: POST /v1/session (no credential), GET and DELETE /v1/session */
void console_metrics_init(void); /* the sign-in counters; once, any thread */
sw_err session_create(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob,
                      char *err, size_t errlen);
sw_err session_run(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen);
/* ... and through admin_run: a staff member's password, the checklists of the request types */
sw_err password_put(struct job *j, PGconn *db, const char *staff, char *err, size_t errlen);
sw_err checklists_get(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err checklist_put(struct job *j, PGconn *db, const char *type, char *err, size_t errlen);
sw_err checklist_delete(struct job *j, PGconn *db, const char *type, char *err, size_t errlen);

/* console.c: the web console's files from `dir` ("" or NULL: none), served at "/";
 * console_close frees them once the server has stopped. */
sw_err console_open(const char *dir, char *err, size_t errlen);
void console_close(void);
/* A request outside /v1: answered from the console's files when there are any (true). */
bool console_handle(struct hreq *r);

/* stream.c: GET /v1/stream, the site's case events as server-sent events */
sw_err stream_start(struct intake *in, long long poll_ms, int max, char *err, size_t errlen);
/* Closes every stream and stops the thread (before the HTTP server goes). */
void stream_stop(void);
/* The job run: checks the caller and room, then marks the job (j->stream). */
sw_err stream_open(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen);
/* job_finish of a marked job: takes the connection over and frees the job. */
void stream_adopt(struct job *j);

/* handle_admin.c: everything under /v1/sites (the directory); routes by j->method, j->path */
sw_err admin_run(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen);

/* A site's routing rules (handle_rules.c) and absences (handle_absences.c), through admin_run. */
sw_err rules_get(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err rules_put(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err absences_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err absence_create(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err absence_end(struct job *j, PGconn *db, const char *id, char *err, size_t errlen);

/* A site's calendar (handle_calendar.c) and time limits (handle_limits.c), through admin_run. */
sw_err calendar_get(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err calendar_patch(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err calendar_days_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err calendar_day_put(struct job *j, PGconn *db, const char *date, char *err, size_t errlen);
sw_err calendar_day_delete(struct job *j, PGconn *db, const char *date, char *err, size_t errlen);
sw_err calendar_import(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err limits_get(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err limits_put(struct job *j, PGconn *db, char *err, size_t errlen);

/* Who hears what (handle_notify.c), through admin_run. */
sw_err ntf_channels_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_channel_create(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_channel_get(struct job *j, PGconn *db, const char *name, char *err, size_t errlen);
sw_err ntf_channel_patch(struct job *j, PGconn *db, const char *name, char *err, size_t errlen);
sw_err ntf_channel_delete(struct job *j, PGconn *db, const char *name, char *err, size_t errlen);
sw_err ntf_subs_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_sub_create(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_sub_delete(struct job *j, PGconn *db, const char *id, char *err, size_t errlen);
sw_err ntf_templates_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_template_put(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_template_delete(struct job *j, PGconn *db, const char *id, char *err, size_t errlen);
sw_err ntf_settings_get(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_settings_patch(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_deliveries_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err ntf_delivery_get(struct job *j, PGconn *db, const char *id, char *err, size_t errlen);

/* The audit chain and the QA reports (handle_reports.c), through admin_run. */
sw_err audit_verify_run(struct job *j, PGconn *db, struct bus_outbox *ob, char *err, size_t errlen);
sw_err audit_checkpoints_list(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err report_qa(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err report_reception(struct job *j, PGconn *db, char *err, size_t errlen);
sw_err report_weekly(struct job *j, PGconn *db, char *err, size_t errlen);
/*
 * parse_time (handle_action.c) reads "YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM]":
 * the wall time as "YYYY-MM-DD HH:MM:SS.ffffff" into `local` and, when an
 * offset was given, the instant into *us (*zoned set).  False when malformed.
 */
bool parse_time(const char *s, char *local, size_t llen, int64_t *us, bool *zoned);

/* helpers shared by the handlers (http.c) */
/*
 * db_run runs a statement in the job's transaction: *out gets the result
 * when wanted (else it is cleared).  On failure the error says "could not
 * <what>" and the result is never SW_OK.
 */
sw_err db_run(PGconn *db, const char *what, const char *sql, int n, const char *const *v,
              PGresult **out, char *err, size_t errlen);
/*
 * job_delete_one runs `sql` (a DELETE ... RETURNING with $1 the caller's
 * site id, $2 `key`): one row gone answers {"removed": key}, none a 404
 * saying `notfound`.  `what` names the work in an error ("remove the ...").
 */
sw_err job_delete_one(struct job *j, PGconn *db, const char *what, const char *sql, const char *key,
                      const char *notfound, char *err, size_t errlen);
/* The invalid fields of a 422 answer, gathered while a body is checked. */
struct field_errors {
    struct field_error fe[INTAKE_MAX_FIELDS];
    int n;
};
/* Adds one (those past INTAKE_MAX_FIELDS are dropped). */
void field_bad(struct field_errors *f, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Members of the JSON object o outside `known` (NULL-terminated) are refused, naming `what`. */
void members_only(struct field_errors *f, json_t *o, const char *const *known, const char *what);
/* A string member of at most `max` characters; NULL when absent (or wrong: recorded). */
const char *json_str_member(struct field_errors *f, json_t *o, const char *key, size_t max,
                            bool required);
/* A query's value of `name` ("name=value&...") into out, not %-decoded (the callers' values
 * need none); false when absent. */
bool query_get(const char *q, const char *name, char *out, size_t outlen);
/* Every parameter of the query q is one of `known` (NULL-terminated); else records a 422
 * for "query" naming the first unknown one and `list`, and returns false. */
bool query_only(struct field_errors *f, const char *q, const char *const *known, const char *list);
/* Characters (not bytes) of a string already checked as UTF-8. */
size_t utf8_chars(const char *s);
/* Only spaces, tabs and line ends (or nothing). */
bool blank(const char *s);
/* s has min..max bytes, the first one of `first`, the others of `rest`. */
bool matches(const char *s, const char *first, const char *rest, size_t min, size_t max);
/* A phone number as people write it: 5-20 digits, a leading +, spaces, - ( ). */
bool phone_ok(const char *s);

bool phone_visible_to(const struct principal *p);
void mask_phone(const char *in, char *out, size_t outlen);

/* rep.c: SubmitCase over an nng REP socket */
struct Shouwen__V1__SubmitCase;
/*
 * intake_rep_open listens on `url` (NULL or "": no REP socket, SW_OK) with
 * `nctx` contexts; the workers must be running.  On failure fills `err`.
 * intake_rep_close (main thread, before the workers stop) stops receiving,
 * waits until every request in hand is answered, and closes; safe when
 * the socket was never opened.
 */
sw_err intake_rep_open(struct intake *in, const char *url, int nctx, char *err, size_t errlen);
void intake_rep_close(struct intake *in);
/*
 * rep_submit_to_reg checks a SubmitCase as POST /v1/cases checks its body
 * (the same reg_parse, on the equivalent JSON object).  Returns 0 and sets
 * *out (free with reg_free), or the number of field errors written to fe
 * (room for INTAKE_MAX_FIELDS).  `m` stays the caller's.  Thread-safe.
 */
int rep_submit_to_reg(const struct Shouwen__V1__SubmitCase *m, struct reg **out,
                      struct field_error *fe);

#endif
