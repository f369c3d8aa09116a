/*
 * handle_register.c - POST /v1/cases: a new case (登记), from staff or an
 * external system.
 *
 * reg_parse checks the body on the HTTP thread and names every invalid
 * field.  reg_run_batch, on a worker, registers a batch of them in two
 * round trips whatever the batch size: credentials, earlier submissions
 * with the same idempotency key, first responders and case numbers (per
 * site and local day) in one kept statement, committed on its own
 * (check_sql); then the cases inserted and their case.registered events
 * written to the outbox, and committed, in one pipeline.
 *
 * Idempotency: (site, source, external_ref) is unique; the source is the
 * API key's name, or "staff:<code>" for staff.  The same key with the
 * same body answers 200 with the first case; with another body 409.  Two
 * identical submissions racing in different batches: the second batch's
 * INSERT waits for the first to commit, then fails on the key; the batch
 * looks its cases up again and answers 200 with the first case (the case
 * number it had taken is left unused) and writes the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "intake.h"
#include "log.h"
#include "shouwen/v1/envelope.pb-c.h"

#define REG_MAX_DOCS 100

static const char *const channels[] = {"visit", "phone",  "letter",  "web",      "email", "hotline",
                                       "chat",  "social", "meeting", "callback", "api",   "device"};
static const char *const types[] = {"consultation", "complaint", "help",   "suggestion",
                                    "repair",       "business",  "report", "emergency"};
static const char *const urgencies[] = {"normal", "urgent", "emergency"};

struct reg {
    char site[17];
    int channel, type, urgency; /* protobuf enum values */
    char *subject, *description, *category;
    char *name, *phone, *unit, *address, *room, *email;
    bool consent; /* customer.consent: receipts and updates may be sent */
    char *docs[REG_MAX_DOCS];
    int ndocs;
    char first_responder[33];
    char *external_ref;
    char sha[65]; /* hex SHA-256 of the body in canonical form */
    /* filled by the batch */
    char source[110];
    char fr_id[37], fr_dept[37];
    char case_id[37];
    char number[40];
    long seq;    /* the number's sequence, taken by check_sql; 0: none */
    char day[9]; /* its local day, YYYYMMDD */
};

void reg_free(struct reg *r)
{
    if (r == NULL)
        return;
    free(r->subject);
    free(r->description);
    free(r->category);
    free(r->name);
    free(r->phone);
    free(r->unit);
    free(r->address);
    free(r->room);
    free(r->email);
    free(r->external_ref);
    for (int i = 0; i < r->ndocs; i++)
        free(r->docs[i]);
    free(r);
}

struct checker {
    struct field_error *fe;
    int n;
};

static void bad(struct checker *c, const char *field, const char *fmt, const char *arg)
{
    if (c->n >= INTAKE_MAX_FIELDS)
        return;
    snprintf(c->fe[c->n].field, sizeof(c->fe[c->n].field), "%s", field);
    snprintf(c->fe[c->n].message, sizeof(c->fe[c->n].message), fmt, arg);
    c->n++;
}

/*
 * A string member: absent or null gives NULL (or "missing" when
 * required); otherwise it must be a string of min..max characters.
 */
static char *str(struct checker *c, json_t *obj, const char *key, const char *field, size_t min,
                 size_t max, bool required)
{
    json_t *v = json_object_get(obj, key);
    char lim[64];
    if (v == NULL || json_is_null(v)) {
        if (required)
            bad(c, field, "is required%s", "");
        return NULL;
    }
    if (!json_is_string(v)) {
        bad(c, field, "must be a string%s", "");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = utf8_chars(s);
    if (n < min || (min > 0 && blank(s))) {
        bad(c, field, "%s", required ? "is required and must not be blank" : "must not be blank");
        return NULL;
    }
    if (n > max) {
        snprintf(lim, sizeof(lim), "%zu", max);
        bad(c, field, "is too long: at most %s characters", lim);
        return NULL;
    }
    char *dup = strdup(s);
    if (dup == NULL)
        bad(c, field, "could not be stored: out of memory%s", "");
    return dup;
}

static int choice(struct checker *c, json_t *obj, const char *key, const char *const *names, int n,
                  const char *list, int def)
{
    char *s = str(c, obj, key, key, 1, 32, def == 0);
    if (s == NULL)
        return def;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            free(s);
            return i + 1;
        }
    free(s);
    bad(c, key, "must be one of %s", list);
    return def;
}

#define UPPER  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define ALNUM  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define DIGITS "0123456789"

/* A phone number: digits with optional +, spaces, hyphens and parentheses; 5 to 20 digits. */
int reg_parse(json_t *body, const char *idem_key, struct reg **out, struct field_error *fe)
{
    static const char *const known[] = {"site",
                                        "channel",
                                        "type",
                                        "urgency",
                                        "subject",
                                        "description",
                                        "category",
                                        "customer",
                                        "required_documents",
                                        "first_responder",
                                        "external_ref"};
    struct checker c = {fe, 0};
    struct reg *r = calloc(1, sizeof(*r));
    const char *key;
    json_t *v;
    if (r == NULL) {
        bad(&c, "body", "could not be stored: out of memory%s", "");
        return c.n;
    }
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok)
            bad(&c, key, "is not a field of a case%s", "");
    }
    char *site = str(&c, body, "site", "site", 1, 16, true);
    if (site != NULL && !matches(site, UPPER, UPPER DIGITS, 2, 16))
        bad(&c, "site",
            "must be a site code: an upper-case letter then 1-15 upper-case letters "
            "or digits%s",
            "");
    else if (site != NULL)
        snprintf(r->site, sizeof(r->site), "%s", site);
    free(site);
    r->channel = choice(&c, body, "channel", channels, 12,
                        "visit, phone, letter, web, email, hotline, chat, social, meeting, "
                        "callback, api, device",
                        0);
    r->type = choice(&c, body, "type", types, 8,
                     "consultation, complaint, help, suggestion, repair, business, report, "
                     "emergency",
                     0);
    r->urgency = choice(&c, body, "urgency", urgencies, 3, "normal, urgent, emergency", 1);
    r->subject = str(&c, body, "subject", "subject", 1, 1000, true);
    r->description = str(&c, body, "description", "description", 0, 100000, false);
    r->category = str(&c, body, "category", "category", 1, 100, false);
    json_t *cust = json_object_get(body, "customer");
    if (cust != NULL && !json_is_null(cust) && !json_is_object(cust)) {
        bad(&c, "customer", "must be an object%s", "");
    } else if (cust != NULL && json_is_object(cust)) {
        static const char *const ckeys[] = {"name", "phone", "unit",   "address",
                                            "room", "email", "consent"};
        json_object_foreach(cust, key, v)
        {
            bool ok = false;
            for (size_t i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++)
                ok = ok || strcmp(key, ckeys[i]) == 0;
            if (!ok) {
                char f[64];
                snprintf(f, sizeof(f), "customer.%.50s", key);
                bad(&c, f, "is not a field of a customer%s", "");
            }
        }
        r->name = str(&c, cust, "name", "customer.name", 1, 200, false);
        r->phone = str(&c, cust, "phone", "customer.phone", 1, 32, false);
        if (r->phone != NULL && !phone_ok(r->phone))
            bad(&c, "customer.phone",
                "must be a phone number: 5-20 digits, optionally with a "
                "leading +, spaces, hyphens or parentheses%s",
                "");
        r->unit = str(&c, cust, "unit", "customer.unit", 1, 200, false);
        r->address = str(&c, cust, "address", "customer.address", 1, 400, false);
        r->room = str(&c, cust, "room", "customer.room", 1, 50, false);
        r->email = str(&c, cust, "email", "customer.email", 3, 254, false);
        if (r->email != NULL && strchr(r->email, '@') == NULL)
            bad(&c, "customer.email", "must be an e-mail address%s", "");
        json_t *consent = json_object_get(cust, "consent");
        if (consent != NULL && !json_is_null(consent) && !json_is_boolean(consent))
            bad(&c, "customer.consent", "must be true or false%s", "");
        r->consent = json_is_true(consent);
        if (r->consent && r->phone == NULL && r->email == NULL)
            bad(&c, "customer.consent",
                "needs a phone number or an e-mail address to send the notices to%s", "");
    }
    json_t *docs = json_object_get(body, "required_documents");
    if (docs != NULL && !json_is_null(docs)) {
        if (!json_is_array(docs)) {
            bad(&c, "required_documents", "must be an array of strings%s", "");
        } else if (json_array_size(docs) > REG_MAX_DOCS) {
            bad(&c, "required_documents", "has too many items: at most %s", "100");
        } else {
            size_t i;
            json_array_foreach(docs, i, v)
            {
                if (!json_is_string(v) || utf8_chars(json_string_value(v)) < 1 ||
                    utf8_chars(json_string_value(v)) > 500 || blank(json_string_value(v))) {
                    bad(&c, "required_documents", "items must be strings of 1-500 characters%s",
                        "");
                    break;
                }
                r->docs[r->ndocs] = strdup(json_string_value(v));
                if (r->docs[r->ndocs] != NULL)
                    r->ndocs++;
            }
        }
    }
    char *fr = str(&c, body, "first_responder", "first_responder", 1, 32, false);
    if (fr != NULL && !matches(fr, ALNUM, ALNUM "_.-", 1, 32))
        bad(&c, "first_responder", "must be a staff code: letters, digits, _ . -%s", "");
    else if (fr != NULL)
        snprintf(r->first_responder, sizeof(r->first_responder), "%s", fr);
    free(fr);
    r->external_ref = str(&c, body, "external_ref", "external_ref", 1, 200, false);
    if (idem_key != NULL) {
        size_t n = strlen(idem_key);
        if (n < 1 || n > 200 || blank(idem_key))
            bad(&c, "Idempotency-Key", "must be 1-200 characters%s", "");
        else if (r->external_ref != NULL && strcmp(r->external_ref, idem_key) != 0)
            bad(&c, "Idempotency-Key",
                "differs from external_ref: send one of them, or the "
                "same value%s",
                "");
        else if (r->external_ref == NULL)
            r->external_ref = strdup(idem_key);
    }
    if (c.n > 0) {
        reg_free(r);
        return c.n;
    }
    /* the canonical body, for "same key, other body" */
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    uint8_t h[32];
    if (canon == NULL) {
        bad(&c, "body", "could not be stored: out of memory%s", "");
        reg_free(r);
        return c.n;
    }
    crypto_sha256(canon, strlen(canon), h);
    free(canon);
    crypto_hex(h, 32, r->sha);
    *out = r;
    return 0;
}

/* ---- the batch -------------------------------------------------------------------------- */

/* Append `s` as an element of a PostgreSQL array literal ("" quoted, NULL for NULL). */
static void arr_add(struct buf *b, const char *s, bool first)
{
    buf_puts(b, first ? "" : ",");
    if (s == NULL) {
        buf_puts(b, "NULL");
        return;
    }
    buf_puts(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_append(b, "\\", 1);
        buf_append(b, p, 1);
    }
    buf_puts(b, "\"");
}

static void reply_case(struct job *j, uint16_t status, const char *id, const char *number,
                       const char *st, const char *version, bool duplicate)
{
    struct buf *b = &j->body;
    j->status = status;
    buf_reset(b);
    buf_puts(b, "{\"id\":");
    buf_json_string(b, id);
    buf_puts(b, ",\"number\":");
    buf_json_string(b, number);
    buf_puts(b, ",\"site\":");
    buf_json_string(b, j->who.site);
    buf_puts(b, ",\"status\":");
    buf_json_string(b, st);
    buf_printf(b, ",\"version\":%s,\"duplicate\":%s}", version, duplicate ? "true" : "false");
    snprintf(j->etag, sizeof(j->etag), "\"%s\"", version);
}

/* The arrays of a batch's look-ups, as PostgreSQL array literals. */
struct arrays {
    struct buf a[3];
};

static void arrays_init(struct arrays *x, int k)
{
    for (int f = 0; f < k; f++) {
        buf_init(&x->a[f], 4u << 20);
        buf_puts(&x->a[f], "{");
    }
}

static void arrays_free(struct arrays *x, int k)
{
    for (int f = 0; f < k; f++)
        buf_free(&x->a[f]);
}

/*
 * Earlier submissions with the same key: the look-up of the jobs marked
 * in `pending` (0 when none is), its arrays in `x` (kept until the answer
 * is in, then arrays_free(x, 3)).
 */
static const char earlier_sql[] =
    "SELECT u.s::text, u.src, u.ref, c.id::text, c.number, c.status, c.version, "
    "encode(c.request_sha256, 'hex') FROM unnest($1::uuid[], $2::text[], $3::text[]) "
    "AS u(s, src, ref) JOIN core.cases c ON c.site_id = u.s AND c.source = u.src "
    "AND c.external_ref = u.ref";

static int earlier_query(struct job **jobs, int n, const bool *pending, struct arrays *x,
                         const char *v[3])
{
    int k = 0;
    arrays_init(x, 3);
    for (int i = 0; i < n; i++) {
        if (!pending[i])
            continue;
        struct reg *r = jobs[i]->reg;
        arr_add(&x->a[0], jobs[i]->who.site_id, k == 0);
        arr_add(&x->a[1], r->source, k == 0);
        arr_add(&x->a[2], r->external_ref, k == 0);
        k++;
    }
    for (int f = 0; f < 3; f++) {
        buf_puts(&x->a[f], "}");
        v[f] = buf_cstr(&x->a[f]);
    }
    return k;
}

/* Answer job `j`, whose key was used before for case `id`: 200 (same body) or 409. */
static void earlier_answer(struct job *j, const char *id, const char *number, const char *status,
                           const char *version, const char *sha)
{
    struct reg *g = j->reg;
    if (strcmp(g->sha, sha) == 0) {
        reply_case(j, 200, id, number, status, version, true);
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "external_ref \"%.200s\" was already used for case %s with a different body",
                 g->external_ref, number);
        job_reply_error(j, 409, msg);
    }
}

/* Answer the jobs whose key was used before (earlier_sql's rows); they are unmarked. */
static void earlier_apply(const PGresult *r, struct job **jobs, int n, bool *pending)
{
    for (int row = 0; row < PQntuples(r); row++) {
        for (int i = 0; i < n; i++) {
            struct reg *g = jobs[i]->reg;
            if (!pending[i] || strcmp(jobs[i]->who.site_id, PQgetvalue(r, row, 0)) != 0 ||
                strcmp(g->source, PQgetvalue(r, row, 1)) != 0 ||
                strcmp(g->external_ref, PQgetvalue(r, row, 2)) != 0)
                continue;
            pending[i] = false;
            earlier_answer(jobs[i], PQgetvalue(r, row, 3), PQgetvalue(r, row, 4),
                           PQgetvalue(r, row, 5), PQgetvalue(r, row, 6), PQgetvalue(r, row, 7));
        }
    }
}

/* Earlier submissions of the jobs marked in `pending`, on their own. */
static sw_err find_earlier(PGconn *db, struct job **jobs, int n, bool *pending, char *err,
                           size_t errlen)
{
    struct arrays x;
    const char *v[3];
    sw_err rv = SW_OK;
    if (earlier_query(jobs, n, pending, &x, v) > 0) {
        PGresult *r = PQexecParams(db, earlier_sql, 3, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            earlier_apply(r, jobs, n, pending);
        else
            rv = db_fail(db, r, "could not look up earlier submissions", err, errlen);
        PQclear(r);
    }
    arrays_free(&x, 3);
    return rv;
}

/*
 * The first round trip of a batch (reg_check): for every job, in ONE kept
 * statement, its credential (INTAKE_CREDENTIAL_SQL), the case an earlier
 * submission with the same key registered, the first responder (the staff
 * code given, or the staff member signed in) and, for each job that will
 * be written, its case number.  Whether a job will be written is decided
 * here as reg_run_batch decides it in C: the credential's hash matches,
 * it is for the site asked for, it may register, its key was not used
 * before, its first responder exists, and it is the first in the batch
 * with its key.  The numbers are taken per site and local day with one
 * upsert of the counter (sites in a fixed order, so that two batches
 * never wait on each other in a circle); reg_run_batch checks that they
 * went to exactly the jobs it writes, and takes them anew if not.
 *
 * The plan is kept (made once per session, in a keyed transaction that
 * forbids sequential scans): each look-up is a LATERAL probe by the one
 * index that has its leading column (cases by source, staff by code:
 * migration 0020), the site compared with IS NOT DISTINCT FROM, which no
 * index serves, so no statistics can make the plan scan a site instead.
 *
 * Columns: 0 the job's position (from 1), 1-9 the credential (as
 * principal_take reads them), 10-14 the earlier case (id, number,
 * status, version, request hash), 15-16 the first responder (id,
 * department), 17 the number's sequence, 18 its day (YYYYMMDD).  No row
 * for a job whose credential was not found.
 */
static const char check_sql[] =
    "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
    " WITH ORDINALITY AS c(prefix, hash, site, ref, fr, i)), "
    "l AS (SELECT c.i, c.site AS asked, c.ref, a.*, s.code, s.time_zone, "
    "  CASE a.kind WHEN 'k' THEN a.name ELSE 'staff:' || a.name END AS source, "
    "  coalesce(nullif(c.fr, ''), CASE a.kind WHEN 't' THEN a.name END) AS responder, "
    "  a.hash = decode(c.hash, 'hex') AS known "
    " FROM c CROSS JOIN LATERAL " INTAKE_CREDENTIAL_SQL
    " JOIN core.sites s ON s.id = a.site_id AND s.active), "
    "f AS (SELECT l.*, e.id AS e_id, e.number AS e_number, e.status AS e_status, "
    "  e.version AS e_version, e.sha AS e_sha, r.id AS r_id, r.department_id AS r_dept FROM l "
    " LEFT JOIN LATERAL (SELECT k.id, k.number, k.status, k.version, "
    "  encode(k.request_sha256, 'hex') AS sha FROM core.cases k WHERE l.ref IS NOT NULL "
    "  AND k.source = l.source AND k.external_ref = l.ref "
    "  AND k.site_id IS NOT DISTINCT FROM l.site_id LIMIT 1) e ON true "
    " LEFT JOIN LATERAL (SELECT st.id, st.department_id FROM core.staff st "
    "  WHERE st.code = l.responder AND st.site_id IS NOT DISTINCT FROM l.site_id AND st.active "
    "  LIMIT 1) r ON true), "
    "w AS (SELECT v.i, v.site_id, v.time_zone, "
    "  row_number() OVER (PARTITION BY v.site_id ORDER BY v.i) AS nth, "
    "  count(*) OVER (PARTITION BY v.site_id) AS k "
    " FROM (SELECT f.*, row_number() OVER (PARTITION BY f.site_id, f.source, f.ref ORDER BY f.i) "
    "   AS dup FROM f WHERE f.known AND f.code = f.asked "
    "   AND NOT (f.kind = 'k' AND f.role = 'reader') AND f.e_id IS NULL "
    "   AND (f.responder IS NULL OR f.r_id IS NOT NULL)) v "
    " WHERE v.ref IS NULL OR v.dup = 1), "
    "n AS (INSERT INTO core.case_numbers AS n (site_id, local_day, last_number) "
    " SELECT DISTINCT site_id, (now() AT TIME ZONE time_zone)::date, k FROM w ORDER BY 1 "
    " ON CONFLICT (site_id, local_day) DO UPDATE "
    " SET last_number = n.last_number + EXCLUDED.last_number "
    " RETURNING site_id, to_char(local_day, 'YYYYMMDD') AS day, last_number) "
    "SELECT f.i::int, f.kind, f.id, f.site_id::text, f.code, f.time_zone, f.role, f.name, "
    " encode(f.hash, 'hex'), f.dept, f.e_id::text, f.e_number, f.e_status, f.e_version, f.e_sha, "
    " f.r_id::text, f.r_dept::text, n.last_number - w.k + w.nth, n.day "
    "FROM f LEFT JOIN w ON w.i = f.i LEFT JOIN n ON n.site_id = w.site_id";

/*
 * Run check_sql for the jobs, committed in the same round trip: BEGIN,
 * synchronous_commit off (see take_numbers for why that is safe), the
 * guards of a keyed transaction, the statement, COMMIT.  *out: its result
 * (the caller clears it), row_of[i]: job i's row or -1.
 */
static sw_err reg_check(PGconn *db, struct job **jobs, int n, PGresult **out, int *row_of,
                        char *err, size_t errlen)
{
    struct buf a[5]; /* prefixes, hashes, sites asked for, external refs, first responders */
    const char *v[5];
    for (int f = 0; f < 5; f++) {
        buf_init(&a[f], 4u << 20);
        buf_puts(&a[f], "{");
    }
    for (int i = 0; i < n; i++) {
        struct reg *g = jobs[i]->reg;
        arr_add(&a[0], jobs[i]->cred_prefix, i == 0);
        arr_add(&a[1], jobs[i]->cred_hash, i == 0);
        arr_add(&a[2], g->site, i == 0);
        arr_add(&a[3], g->external_ref, i == 0);
        arr_add(&a[4], g->first_responder, i == 0);
    }
    for (int f = 0; f < 5; f++) {
        buf_puts(&a[f], "}");
        v[f] = buf_cstr(&a[f]);
    }
    struct db_query qs[] = {{.sql = "BEGIN"},
                            {.sql = "SET LOCAL synchronous_commit TO off"},
                            {.sql = DB_KEYED_GUARDS},
                            {.sql = check_sql, .n = 5, .vals = v, .fixed = true},
                            {.sql = "COMMIT"}};
    PGresult *res[5];
    sw_err rv = db_pipeline(db, qs, 5, res, err, errlen);
    for (int f = 0; f < 5; f++)
        buf_free(&a[f]);
    *out = res[3];
    for (int k = 0; k < 5; k++)
        if (k != 3)
            PQclear(res[k]);
    for (int i = 0; i < n; i++)
        row_of[i] = -1;
    if (rv != SW_OK) {
        char why[INTAKE_ERR_MAX];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen,
                 "could not check credentials, earlier submissions and first "
                 "responders: %s",
                 why);
        return rv;
    }
    for (int row = 0; row < PQntuples(*out); row++) {
        int i = atoi(PQgetvalue(*out, row, 0)) - 1;
        if (i >= 0 && i < n && principal_take(*out, row, jobs[i]))
            row_of[i] = row;
    }
    return SW_OK;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static sw_err stage_event(struct job *j, struct bus_outbox *ob, int64_t t)
{
    struct reg *r = j->reg;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    Shouwen__V1__CaseRegistered ev = SHOUWEN__V1__CASE_REGISTERED__INIT;
    Shouwen__V1__Customer cu = SHOUWEN__V1__CUSTOMER__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    char empty[] = "";
#define S(x) ((x) != NULL ? (x) : empty)
    cu.name = S(r->name);
    cu.phone = S(r->phone);
    cu.unit = S(r->unit);
    cu.address = S(r->address);
    cu.room = S(r->room);
    cu.email = S(r->email);
    cu.consent = r->consent;
    ev.number = r->number;
    ev.channel = (Shouwen__V1__Channel)r->channel;
    ev.case_type = (Shouwen__V1__CaseType)r->type;
    ev.urgency = (Shouwen__V1__Urgency)r->urgency;
    ev.customer = &cu;
    ev.subject = S(r->subject);
    ev.description = S(r->description);
    ev.category = S(r->category);
    ev.n_required_documents = (size_t)r->ndocs;
    ev.required_documents = r->docs;
    ev.external_ref = S(r->external_ref);
    ev.source = r->source;
    ev.first_responder = r->first_responder;
    ev.department = r->fr_dept;
    ev.received_at = t;
    if (j->who.kind == 'k') {
        actor.role = SHOUWEN__V1__ROLE__ROLE_EXTERNAL_SYSTEM;
        actor.api_key_id = j->who.id;
        actor.external_system = j->who.name;
    } else {
        actor.role = SHOUWEN__V1__ROLE__ROLE_STAFF;
        actor.staff_code = j->who.name;
    }
    env.type = "case.registered";
    env.site = j->who.site;
    env.case_id = r->case_id;
    env.case_version = 1;
    env.time = t;
    env.actor = &actor;
    env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED;
    env.registered = &ev;
#undef S
    return bus_outbox_add(ob, &env);
}

/*
 * A request repeated within its batch (`twin[i]`: the job with the same
 * key that went ahead) gets that job's answer: the same case as a
 * duplicate (200), or 409 when its body differs.
 */
static sw_err answer_twins(struct intake *in, struct job **jobs, int n, struct job **twin)
{
    for (int i = 0; i < n; i++) {
        struct job *o = twin[i];
        if (o == NULL)
            continue;
        metric_add(in->m_duplicates, 1);
        bool same = strcmp(o->reg->sha, jobs[i]->reg->sha) == 0;
        if ((o->status == 201 || o->status == 200) && same) {
            /* the twin's answer, as a duplicate (the twin may itself have lost a race) */
            const char *text = buf_cstr(&o->body);
            const char *flag = strstr(text, "\"duplicate\":false");
            jobs[i]->status = 200;
            buf_reset(&jobs[i]->body);
            if (flag != NULL) {
                buf_append(&jobs[i]->body, text, (size_t)(flag - text));
                buf_puts(&jobs[i]->body, "\"duplicate\":true");
                buf_puts(&jobs[i]->body, flag + strlen("\"duplicate\":false"));
            } else {
                buf_puts(&jobs[i]->body, text);
            }
            memcpy(jobs[i]->etag, o->etag, sizeof(jobs[i]->etag));
        } else if (o->status == 201 || o->status == 200) {
            job_reply_error(jobs[i], 409, "external_ref was already used with a different body");
        } else {
            jobs[i]->status = o->status;
            buf_reset(&jobs[i]->body);
            buf_puts(&jobs[i]->body, buf_cstr(&o->body));
        }
    }
    return SW_OK;
}

/*
 * Case numbers: one counter row per site and local day.  check_sql takes
 * them with the batch's look-ups; this takes them for the jobs `live` on
 * their own, should those not have gone to exactly these jobs.  Either
 * way, in a short transaction of its own, committed without waiting for
 * the disk (synchronous_commit off).  The row stays locked
 * only while that transaction runs, so batches on other sessions are not
 * held up for one another's whole write and fsync.  That is safe: the
 * cases that use the numbers commit later with a wait for the disk, and
 * WAL is flushed in order, so a committed case always has its counter
 * durable with it; after a crash before that, the counter may go back,
 * but no committed case holds the numbers it hands out again.  Numbers
 * taken by a batch that then fails are left unused, as with any race.
 */
static sw_err take_numbers(PGconn *db, struct job **live, int nl, char *err, size_t errlen)
{
    struct arrays x; /* site ids, their time zones, how many numbers each */
    const char *v[3];
    arrays_init(&x, 3);
    int nsites = 0;
    for (int i = 0; i < nl; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++)
            seen = strcmp(live[k]->who.site_id, live[i]->who.site_id) == 0;
        if (seen)
            continue;
        int count = 0;
        for (int k = i; k < nl; k++)
            count += strcmp(live[k]->who.site_id, live[i]->who.site_id) == 0;
        arr_add(&x.a[0], live[i]->who.site_id, nsites == 0);
        arr_add(&x.a[1], live[i]->who.time_zone, nsites == 0);
        buf_printf(&x.a[2], "%s%d", nsites ? "," : "", count);
        nsites++;
    }
    for (int f = 0; f < 3; f++) {
        buf_puts(&x.a[f], "}");
        v[f] = buf_cstr(&x.a[f]);
    }
    /* sites in a fixed order, so that two batches never wait on each other in a circle */
    struct db_query qs[] = {
        {.sql = "BEGIN"},
        {.sql = "SET LOCAL synchronous_commit TO off"},
        {.sql = "INSERT INTO core.case_numbers AS n (site_id, local_day, last_number) "
                "SELECT s, (now() AT TIME ZONE tz)::date, k FROM unnest($1::uuid[], $2::text[], "
                "$3::int[]) AS u(s, tz, k) ORDER BY s ON CONFLICT (site_id, local_day) DO UPDATE "
                "SET last_number = n.last_number + EXCLUDED.last_number "
                "RETURNING site_id::text, to_char(local_day, 'YYYYMMDD'), last_number",
         .n = 3,
         .vals = v,
         .fixed = true},
        {.sql = "COMMIT"}};
    PGresult *out[4];
    sw_err rv = db_pipeline(db, qs, 4, out, err, errlen);
    arrays_free(&x, 3);
    PGresult *r = out[2];
    for (int row = 0; rv == SW_OK && row < PQntuples(r); row++) {
        const char *sid = PQgetvalue(r, row, 0);
        long last = atol(PQgetvalue(r, row, 2));
        int count = 0;
        for (int i = 0; i < nl; i++)
            count += strcmp(live[i]->who.site_id, sid) == 0;
        long next = last - count + 1;
        for (int i = 0; i < nl; i++)
            if (strcmp(live[i]->who.site_id, sid) == 0)
                snprintf(live[i]->reg->number, sizeof(live[i]->reg->number), "%s-%s-%04ld",
                         live[i]->who.site, PQgetvalue(r, row, 1), next++);
    }
    for (int i = 0; i < 4; i++)
        PQclear(out[i]);
    if (rv != SW_OK) {
        char why[INTAKE_ERR_MAX];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "could not take case numbers: %s", why);
    }
    return rv;
}

/*
 * Write the cases `live` (their numbers taken) and their case.registered
 * events and commit, in one round trip: BEGIN, the INSERT of the cases,
 * the INSERTs of the events (bus_outbox_queries; a batch too large for
 * one pipeline writes its events with bus_outbox_write and commits after),
 * COMMIT.  Each case is answered 201 once committed.  *raced: the INSERT
 * failed because a submission with the same key committed first (nothing
 * was written; the transaction is rolled back here).
 */
static sw_err write_cases(struct intake *in, PGconn *db, struct job **live, int nl,
                          struct bus_outbox *ob, bool *raced, char *err, size_t errlen)
{
    enum { COLS = 22 };
    sw_err rv = SW_OK;
    struct buf sql;
    const char **v = calloc((size_t)nl * COLS, sizeof(*v));
    struct buf *docarr = calloc((size_t)nl, sizeof(*docarr));
    *raced = false;
    if (v == NULL || docarr == NULL) {
        free(v);
        free(docarr);
        snprintf(err, errlen, "out of memory");
        return SW_ENOMEM;
    }
    bus_outbox_clear(ob);
    buf_init(&sql, 4u << 20);
    buf_puts(&sql,
             "INSERT INTO core.cases (id, site_id, number, first_responder_id, "
             "owner_id, department_id, type, channel, urgency, category, subject, description, "
             "customer_name, customer_phone, customer_unit, customer_address, "
             "required_documents, source, external_ref, request_sha256, customer_room, "
             "customer_email, customer_consent) VALUES ");
    int64_t t = now_us();
    for (int i = 0; i < nl && rv == SW_OK; i++) {
        struct job *j = live[i];
        struct reg *g = j->reg;
        const char **p = v + (size_t)i * COLS;
        if (bus_uuid_v7(g->case_id) != SW_OK) {
            snprintf(err, errlen, "no randomness for a case id");
            rv = SW_EIO;
            break;
        }
        buf_init(&docarr[i], 1u << 20);
        buf_puts(&docarr[i], "{");
        for (int d = 0; d < g->ndocs; d++)
            arr_add(&docarr[i], g->docs[d], d == 0);
        buf_puts(&docarr[i], "}");
        int b = i * COLS;
        buf_printf(&sql,
                   "%s($%d::uuid,$%d::uuid,$%d,$%d::uuid,$%d::uuid,$%d::uuid,$%d,$%d,$%d,$%d,"
                   "$%d,coalesce($%d,''),$%d,$%d,$%d,$%d,$%d::text[],$%d,$%d,"
                   "decode($%d,'hex'),$%d,$%d,$%d::bool)",
                   i ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 4, b + 5, b + 6, b + 7, b + 8,
                   b + 9, b + 10, b + 11, b + 12, b + 13, b + 14, b + 15, b + 16, b + 17, b + 18,
                   b + 19, b + 20, b + 21, b + 22);
        p[0] = g->case_id;
        p[1] = j->who.site_id;
        p[2] = g->number;
        p[3] = g->fr_id[0] ? g->fr_id : NULL;
        p[4] = g->fr_dept[0] ? g->fr_dept : NULL;
        p[5] = types[g->type - 1];
        p[6] = channels[g->channel - 1];
        p[7] = urgencies[g->urgency - 1];
        p[8] = g->category;
        p[9] = g->subject;
        p[10] = g->description;
        p[11] = g->name;
        p[12] = g->phone;
        p[13] = g->unit;
        p[14] = g->address;
        p[15] = buf_cstr(&docarr[i]);
        p[16] = g->source;
        p[17] = g->external_ref;
        p[18] = g->sha;
        p[19] = g->room;
        p[20] = g->email;
        p[21] = g->consent ? "true" : "false";
        if ((rv = stage_event(j, ob, t)) != SW_OK)
            snprintf(err, errlen, "could not stage case.registered: %s", sw_strerror(rv));
    }
    struct db_query qs[DB_PIPELINE_MAX];
    PGresult *out[DB_PIPELINE_MAX];
    int nq = 0, nev = 0;
    if (rv == SW_OK) {
        qs[nq++] = (struct db_query){.sql = "BEGIN"};
        qs[nq++] =
            (struct db_query){.sql = buf_cstr(&sql), .n = nl * COLS, .vals = v, .fixed = true};
        /* the events in the same round trip when they fit, and the COMMIT after them */
        nev = bus_outbox_queries(ob, qs + nq, DB_PIPELINE_MAX - nq - 1);
        if (nev >= 0) {
            nq += nev;
            qs[nq++] = (struct db_query){.sql = "COMMIT"};
        }
        rv = db_pipeline(db, qs, nq, out, err, errlen);
        const char *state = out[1] != NULL ? PQresultErrorField(out[1], PG_DIAG_SQLSTATE) : NULL;
        const char *cons =
            out[1] != NULL ? PQresultErrorField(out[1], PG_DIAG_CONSTRAINT_NAME) : NULL;
        *raced = rv != SW_OK && state != NULL && strcmp(state, "23505") == 0 && cons != NULL &&
                 strcmp(cons, "cases_idempotency") == 0;
        /* Committed by now: events whose seqs did not come back are only not
         * announced (the bus's consumers find them in the table all the same),
         * and the cases are answered 201, never 503 for a retry to double. */
        char why[INTAKE_ERR_MAX];
        if (rv == SW_OK && nev > 0 &&
            bus_outbox_written(ob, out + 2, nev, why, sizeof(why)) != SW_OK) {
            LOG(LOG_WARN, "INTAKE-DB", "%d cases committed, their events not announced: %s", nl,
                why);
            bus_outbox_clear(ob);
        }
        for (int i = 0; i < nq; i++)
            PQclear(out[i]);
        if (rv == SW_OK && nev < 0 && (rv = bus_outbox_write(ob, db, err, errlen)) == SW_OK) {
            PGresult *r = PQexec(db, "COMMIT");
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                rv = db_fail(db, r, "commit the cases", err, errlen);
            PQclear(r);
        }
    }
    for (int i = 0; i < nl; i++)
        buf_free(&docarr[i]);
    free(docarr);
    free(v);
    buf_free(&sql);
    if (*raced && PQpipelineStatus(db) == PQ_PIPELINE_OFF &&
        PQtransactionStatus(db) != PQTRANS_IDLE) {
        PGresult *r = PQexec(db, "ROLLBACK");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rv = db_fail(db, r, "roll back a batch that raced", err, errlen);
            *raced = false;
        }
        PQclear(r);
        bus_outbox_clear(ob);
    }
    if (rv != SW_OK)
        return rv;
    for (int i = 0; i < nl; i++) {
        reply_case(live[i], 201, live[i]->reg->case_id, live[i]->reg->number, "registered", "1",
                   false);
        metric_add(in->m_registered, 1);
    }
    return SW_OK;
}

sw_err reg_run_batch(struct intake *in, PGconn *db, struct job **jobs, int n, struct bus_outbox *ob,
                     char *err, size_t errlen)
{
    if (n < 1)
        return SW_OK;
    PGresult *r = NULL;
    int row_of[n];
    sw_err rv = reg_check(db, jobs, n, &r, row_of, err, errlen);
    if (rv != SW_OK) {
        PQclear(r);
        return rv;
    }
    /* who may register where; who used the same key before; the first responders */
    for (int i = 0; i < n; i++) {
        struct job *j = jobs[i];
        struct reg *g = j->reg;
        int row = row_of[i];
        if (!j->authed) {
            job_reply_error(j, 401, "invalid credentials");
            continue;
        }
        if (strcmp(j->who.site, g->site) != 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "this credential is for site %s, not %s", j->who.site,
                     g->site);
            job_reply_error(j, 403, msg);
            continue;
        }
        if (j->who.kind == 'k' && strcmp(j->who.role, "reader") == 0) {
            job_reply_error(j, 403, "this API key may only read cases, not register them");
            continue;
        }
        if (j->who.kind == 'k')
            snprintf(g->source, sizeof(g->source), "%s", j->who.name);
        else
            snprintf(g->source, sizeof(g->source), "staff:%s", j->who.name);
        if (j->who.kind == 't' && g->first_responder[0] == '\0')
            snprintf(g->first_responder, sizeof(g->first_responder), "%.32s", j->who.name);
        if (g->external_ref != NULL && !PQgetisnull(r, row, 10)) {
            earlier_answer(j, PQgetvalue(r, row, 10), PQgetvalue(r, row, 11),
                           PQgetvalue(r, row, 12), PQgetvalue(r, row, 13), PQgetvalue(r, row, 14));
            continue;
        }
        if (!PQgetisnull(r, row, 15)) {
            snprintf(g->fr_id, sizeof(g->fr_id), "%s", PQgetvalue(r, row, 15));
            snprintf(g->fr_dept, sizeof(g->fr_dept), "%s", PQgetvalue(r, row, 16));
        }
        if (!PQgetisnull(r, row, 17)) {
            g->seq = atol(PQgetvalue(r, row, 17));
            snprintf(g->day, sizeof(g->day), "%s", PQgetvalue(r, row, 18));
        }
    }
    /* who is left: not answered yet; the same key twice in this batch goes once */
    struct job *live[n];
    struct job *twin[n];
    int nl = 0;
    for (int i = 0; i < n; i++) {
        struct job *j = jobs[i];
        twin[i] = NULL;
        if (j->status != 0)
            continue;
        for (int k = 0; k < nl && j->reg->external_ref != NULL; k++) {
            struct reg *o = live[k]->reg;
            if (o->external_ref != NULL && strcmp(o->external_ref, j->reg->external_ref) == 0 &&
                strcmp(o->source, j->reg->source) == 0 && strcmp(o->site, j->reg->site) == 0)
                twin[i] = live[k];
        }
        if (twin[i] != NULL)
            continue;
        struct reg *g = j->reg;
        if (g->first_responder[0] != '\0' && g->fr_id[0] == '\0') {
            struct field_error fe;
            snprintf(fe.field, sizeof(fe.field), "first_responder");
            snprintf(fe.message, sizeof(fe.message), "no active staff member \"%s\" at site %s",
                     g->first_responder, g->site);
            job_reply_fields(j, &fe, 1);
            continue;
        }
        live[nl++] = j;
    }
    /*
     * The numbers reg_check took, when they went to exactly the jobs to be
     * written (the statement decides as the code above does); else they
     * are left unused and the live jobs take theirs anew.
     */
    int given = 0, matched = 0;
    for (int row = 0; row < PQntuples(r); row++)
        given += !PQgetisnull(r, row, 17);
    for (int k = 0; k < nl; k++)
        matched += live[k]->reg->seq > 0;
    PQclear(r);
    if (nl == 0)
        return answer_twins(in, jobs, n, twin);
    if (given == nl && matched == nl) {
        for (int k = 0; k < nl; k++) {
            struct reg *g = live[k]->reg;
            snprintf(g->number, sizeof(g->number), "%s-%s-%04ld", live[k]->who.site, g->day,
                     g->seq);
        }
    } else {
        LOG(LOG_WARN, "INTAKE-NUMBERS",
            "%d numbers taken for %d cases to write (%d of them): taking them anew", given, nl,
            matched);
        if ((rv = take_numbers(db, live, nl, err, errlen)) != SW_OK)
            return rv;
    }
    /*
     * The cases and their events, committed in one round trip.  A
     * submission with the same key that committed after our look-up fails
     * the INSERT (it waits for the other to commit first): then the batch
     * looks its cases up again, answers those found as repeats, and writes
     * the rest (the numbers the repeats had taken are left unused).
     */
    for (int attempt = 0;; attempt++) {
        bool raced = false;
        rv = write_cases(in, db, live, nl, ob, &raced, err, errlen);
        if (rv == SW_OK || !raced || attempt == 2)
            return rv == SW_OK ? answer_twins(in, jobs, n, twin) : rv;
        bool again[n];
        for (int i = 0; i < n; i++) {
            again[i] = false;
            for (int k = 0; k < nl; k++)
                again[i] = again[i] || (jobs[i] == live[k] && jobs[i]->reg->external_ref != NULL);
        }
        if ((rv = find_earlier(db, jobs, n, again, err, errlen)) != SW_OK)
            return rv;
        int keep = 0;
        for (int k = 0; k < nl; k++)
            if (live[k]->status == 0)
                live[keep++] = live[k];
        nl = keep;
        if (nl == 0)
            break;
    }
    return answer_twins(in, jobs, n, twin);
}
