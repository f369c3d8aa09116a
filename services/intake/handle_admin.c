/*
 * handle_admin.c - the directory under /v1/sites: sites, departments,
 * staff, staff tokens and API keys, administered over the public API.
 *
 *   GET    /v1/sites                                  the caller's site (a list of one)
 *   POST   /v1/sites                                  a new site, with a first admin key
 *   GET    /v1/sites/{code}                           a site
 *   PATCH  /v1/sites/{code}                           name, time_zone, active
 *   GET    /v1/sites/{code}/departments               ?after=<code>&limit=<1..500>
 *   POST   /v1/sites/{code}/departments               a new department
 *   GET    /v1/sites/{code}/departments/{dept}        one department
 *   PATCH  /v1/sites/{code}/departments/{dept}        change it (scopes are replaced whole)
 *   GET    /v1/sites/{code}/staff                     ?after=<code>&limit=<1..500>
 *   POST   /v1/sites/{code}/staff                     a new staff member
 *   GET    /v1/sites/{code}/staff/{staff}             one staff member
 *   PATCH  /v1/sites/{code}/staff/{staff}             change them
 *   GET    /v1/sites/{code}/staff/{staff}/tokens      their bearer tokens, without secrets
 *   POST   /v1/sites/{code}/staff/{staff}/tokens      issue one: the secret is answered once
 *   DELETE /v1/sites/{code}/staff/{staff}/tokens/{id} revoke it
 *   GET    /v1/sites/{code}/api-keys                  the site's API keys, without secrets
 *   POST   /v1/sites/{code}/api-keys                  a new key: the secret is answered once
 *   DELETE /v1/sites/{code}/api-keys/{id}             revoke it
 *   GET    /v1/sites/{code}/routing/rules             the routing rules, in order
 *   PUT    /v1/sites/{code}/routing/rules             replace them (handle_rules.c)
 *   GET    /v1/sites/{code}/routing/absences          who is off duty (handle_absences.c)
 *   POST   /v1/sites/{code}/routing/absences          record an absence, with a deputy
 *   DELETE /v1/sites/{code}/routing/absences/{id}     end it
 *   GET    /v1/sites/{code}/calendar                  the working-day calendar (handle_calendar.c)
 *   PATCH  /v1/sites/{code}/calendar                  its zone, hours, rest days
 *   GET    /v1/sites/{code}/calendar/days             holidays and make-up workdays, ?year=
 *   PUT    /v1/sites/{code}/calendar/days/{date}      set one
 *   DELETE /v1/sites/{code}/calendar/days/{date}      remove one
 *   POST   /v1/sites/{code}/calendar/import           an iCalendar (.ics) file
 *   GET    /v1/sites/{code}/limits                    the time limits (handle_limits.c)
 *   PUT    /v1/sites/{code}/limits                    replace them
 *   ...    /v1/sites/{code}/notification/...         channels, subscriptions, templates,
 *                                                    settings, deliveries (handle_notify.c)
 *
 * Who may: an API key of role admin administers everything of its own
 * site and may create sites; a manager's staff token administers its own
 * site's departments, staff and staff tokens, and may read the site, but
 * not change it nor touch API keys.  Everyone else is answered 403 saying
 * who may.  The role is checked first (403), then the site: any site code
 * other than the caller's own is answered 404 "no such site", to every
 * caller alike, so that the codes of other tenants cannot be probed (the
 * one exception: POST /v1/sites answers 409 for a code taken, which only
 * admins can ask).  A new site is reachable only with the admin key that
 * POST /v1/sites makes for it and answers once.
 *
 * Secrets: staff tokens ("swt_" + 48 hex) and API keys ("swk_<8 hex>_<40
 * hex>") come from getrandom, are answered once and never logged; the
 * database keeps only their SHA-256 (and a key's non-secret prefix).
 *
 * Privacy: the phone, email and WeChat of a staff member whose
 * contact_private is true (a leader, by default) are never selected from
 * the database, so no endpoint can return them; other staff's contact
 * details are shown only to admins, managers and supervisors.
 *
 * PATCH {"active":false} of a site stops every credential of the site,
 * the caller's included: only SQL brings it back.
 *
 * Lists of departments and staff are pages in code order (?after= the
 * "next" of the previous page, ?limit= 1..500, default 100); a malformed
 * query is answered 400.  Tokens and API keys are listed whole (at most
 * 1000, newest tokens first).
 *
 * Every change and its read-back run in the worker's one transaction;
 * writes first lock the site row (FOR NO KEY UPDATE, which does not hold
 * up registrations) so that concurrent changes cannot make a cycle of
 * parents or supervisors.  A 4xx answer rolls everything back (worker.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "intake.h"
#include "log.h"

#define ADMIN_SEGS        6  /* sites/{code}/staff/{staff}/tokens/{id} */
#define ADMIN_SEG_MAX     41 /* a decoded path segment: a UUID or a code, and the NUL */
#define ADMIN_PAGE_DEF    100
#define ADMIN_PAGE_MAX    500
#define ADMIN_LIST_MAX    "1000" /* tokens and API keys listed at most */
#define ADMIN_SCOPES_MAX  64
#define ADMIN_TOKEN_DAYS  30
#define ADMIN_TOKEN_BYTES 24 /* 48 hex digits */
#define ADMIN_KEY_PREFIX  4  /* 8 hex digits */
#define ADMIN_KEY_SECRET  20 /* 40 hex digits */

#define UPPER  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGITS "0123456789"
#define ALNUM  UPPER "abcdefghijklmnopqrstuvwxyz" DIGITS

static const char *const staff_roles[] = {"staff",   "receptionist", "department_head",
                                          "handler", "supervisor",   "manager",
                                          "qa",      "leader",       NULL};
static const char *const key_roles[] = {"system", "device", "reader", "admin", NULL};
static const char *const case_types[] = {"consultation", "complaint", "help",
                                         "suggestion",   "repair",    "business",
                                         "report",       "emergency", NULL};

/* One request being served. */
struct ctx {
    struct job *j;
    PGconn *db;
    char *err;
    size_t errlen;
    const struct principal *who;
    struct bus_outbox *ob;
    int nseg;
    char seg[ADMIN_SEGS][ADMIN_SEG_MAX]; /* decoded path segments after "/v1/" */
};

/* Has the request been answered (an error, or a 422 found on the way)? */
static bool answered(const struct ctx *x)
{
    return x->j->status != 0;
}

/* ------------------------------------------------------------ JSON out */

/*
 * A JSON writer with a sticky error: the answer is built in full and then
 * handed to the job, or replaced by a 500 when it passed the ceiling.
 */
struct jw {
    struct buf b;
    int depth;
    bool first[8];
    bool secret; /* holds a credential: wiped before it is freed */
    sw_err rv;
};

static void jw_init(struct jw *w)
{
    buf_init(&w->b, INTAKE_REPLY_MAX - 16);
    w->depth = 0;
    w->first[0] = true;
    w->secret = false;
    w->rv = SW_OK;
}

static void jw_raw(struct jw *w, const char *s)
{
    if (w->rv == SW_OK)
        w->rv = buf_puts(&w->b, s);
}

/* Start a member (`key`) of an object, or an element (key NULL) of an array. */
static void jw_item(struct jw *w, const char *key)
{
    if (!w->first[w->depth])
        jw_raw(w, ",");
    w->first[w->depth] = false;
    if (key != NULL && w->rv == SW_OK) {
        w->rv = buf_json_string(&w->b, key);
        jw_raw(w, ":");
    }
}

static void jw_open(struct jw *w, const char *key, const char *brace)
{
    jw_item(w, key);
    jw_raw(w, brace);
    if (w->depth + 1 < (int)(sizeof(w->first) / sizeof(w->first[0])))
        w->first[++w->depth] = true;
}

static void jw_close(struct jw *w, const char *brace)
{
    jw_raw(w, brace);
    if (w->depth > 0)
        w->depth--;
}

/* A string member, or null when `v` is NULL. */
static void jw_str(struct jw *w, const char *key, const char *v)
{
    jw_item(w, key);
    if (v == NULL)
        jw_raw(w, "null");
    else if (w->rv == SW_OK)
        w->rv = buf_json_string(&w->b, v);
}

/* A member whose value is JSON made by us or by the database. */
static void jw_json(struct jw *w, const char *key, const char *json)
{
    jw_item(w, key);
    jw_raw(w, json);
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
    jw_json(w, key, v ? "true" : "false");
}

/* Answer the job with what was written (or 500 when too large) and free the writer. */
static void jw_reply(struct jw *w, struct job *j, uint16_t status)
{
    if (w->rv == SW_OK)
        job_reply_json(j, status, buf_cstr(&w->b));
    else
        job_reply_error(j, 500, "answer too large: ask for fewer rows (?limit=)");
    if (w->secret && w->b.data != NULL)
        explicit_bzero(w->b.data, w->b.cap);
    buf_free(&w->b);
}

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static bool colb(const PGresult *r, int row, int c)
{
    return !PQgetisnull(r, row, c) && PQgetvalue(r, row, c)[0] == 't';
}

/* ------------------------------------------------------------ input */

struct checker {
    struct field_error fe[INTAKE_MAX_FIELDS];
    int n;
};

/* Cut a trailing, incomplete UTF-8 sequence (left by a truncating snprintf). */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || ((unsigned char)s[i - 1] & 0x80) == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

static void bad(struct checker *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bad(struct checker *c, const char *field, const char *fmt, ...)
{
    if (c->n >= INTAKE_MAX_FIELDS)
        return;
    struct field_error *f = &c->fe[c->n++];
    snprintf(f->field, sizeof(f->field), "%s", field);
    utf8_trim(f->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    utf8_trim(f->message);
}

/* Answer 422 with the fields found wrong; true when there were any. */
static bool refuse_fields(struct ctx *x, const struct checker *c)
{
    if (c->n == 0)
        return false;
    job_reply_fields(x->j, c->fe, c->n);
    return true;
}

/* core.sites.code: an upper-case letter, then 1-15 upper-case letters or digits. */
static bool site_code_ok(const char *s)
{
    return matches(s, UPPER, UPPER DIGITS, 2, 16);
}

/* core.departments.code and core.staff.code. */
static bool code_ok(const char *s)
{
    return matches(s, ALNUM, ALNUM "_.-", 1, 32);
}

static bool one_of(const char *s, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(s, *names) == 0)
            return true;
    return false;
}

/* A phone number: digits with optional +, spaces, hyphens and parentheses; 5 to 20 digits. */
/* An email address, checked loosely: one @ with something on each side, no spaces. */
static bool email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7F)
            return false;
    return true;
}

/* Every member of `o` must be one of `known` (NULL-terminated); fields are named `prefix`key. */
static void known_only(struct checker *c, json_t *o, const char *const *known, const char *what,
                       const char *prefix)
{
    const char *key;
    json_t *v;
    char f[64];
    json_object_foreach(o, key, v)
    {
        (void)v;
        snprintf(f, sizeof(f), "%s%s", prefix, key);
        if (!one_of(key, known))
            bad(c, f, "is not a field of %s", what);
    }
}

enum { HAS_NONE = 0, HAS_NULL, HAS_VALUE };
#define REQUIRED 1
#define NULLABLE 2

struct sval {
    int have;
    const char *s; /* owned by the request's JSON */
};

/* A string member of at most `max` characters, not blank; errors name `field`. */
static struct sval get_str_as(struct checker *c, json_t *o, const char *key, const char *field,
                              size_t max, int flags)
{
    struct sval r = {HAS_NONE, NULL};
    json_t *v = json_object_get(o, key);
    if (v == NULL || (json_is_null(v) && !(flags & NULLABLE))) {
        if (flags & REQUIRED)
            bad(c, field, "is required");
        else if (v != NULL)
            bad(c, field, "must not be null");
        return r;
    }
    if (json_is_null(v)) {
        r.have = HAS_NULL;
        return r;
    }
    if (!json_is_string(v)) {
        bad(c, field, "must be a string");
        return r;
    }
    const char *s = json_string_value(v);
    if (blank(s)) {
        bad(c, field, "%s",
            (flags & NULLABLE) ? "must not be blank: send null to clear it" : "must not be blank");
        return r;
    }
    if (utf8_chars(s) > max) {
        bad(c, field, "is too long: at most %zu characters", max);
        return r;
    }
    r.have = HAS_VALUE;
    r.s = s;
    return r;
}

static struct sval get_str(struct checker *c, json_t *o, const char *key, size_t max, int flags)
{
    return get_str_as(c, o, key, key, max, flags);
}

/* A code member: a string of the form of core.staff.code / core.departments.code. */
static struct sval get_code(struct checker *c, json_t *o, const char *key, int flags)
{
    struct sval r = get_str(c, o, key, 32, flags);
    if (r.have == HAS_VALUE && !code_ok(r.s)) {
        bad(c, key,
            "must be a code: a letter or digit, then up to 31 letters, digits, '_', '.' or '-'");
        r.have = HAS_NONE;
    }
    return r;
}

struct bval {
    bool set, v;
};

static struct bval get_bool(struct checker *c, json_t *o, const char *key)
{
    struct bval r = {false, false};
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return r;
    if (!json_is_boolean(v)) {
        bad(c, key, "must be true or false");
        return r;
    }
    r.set = true;
    r.v = json_is_true(v);
    return r;
}

/* As a query parameter: "true", "false" or NULL (not given). */
static const char *tf(struct bval b)
{
    return b.set ? (b.v ? "true" : "false") : NULL;
}

struct ival {
    bool set;
    int v;
};

static struct ival get_int(struct checker *c, json_t *o, const char *key, int min, int max)
{
    struct ival r = {false, 0};
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return r;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        bad(c, key, "must be a whole number from %d to %d", min, max);
        return r;
    }
    r.set = true;
    r.v = (int)json_integer_value(v);
    return r;
}

/* A member that must not change: absent, or equal to `current`. */
static void same_code(struct checker *c, json_t *o, const char *current)
{
    json_t *v = json_object_get(o, "code");
    if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), current) != 0))
        bad(c, "code", "cannot be changed");
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %-decode `n` bytes of `s` into out (cap bytes with the NUL); '+' is a space in queries. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return false;
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (plus && ch == '+') {
            ch = ' ';
        }
        if (ch == '\0' || o + 1 >= cap)
            return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

/* Split j->path ("/v1/sites/...") into decoded segments; false when it cannot be ours. */
static bool path_split(struct ctx *x)
{
    const char *p = x->j->path;
    if (strncmp(p, "/v1/", 4) != 0)
        return false;
    p += 4;
    x->nseg = 0;
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        if (n == 0 || x->nseg == ADMIN_SEGS ||
            !pct_decode(p, n, x->seg[x->nseg], sizeof(x->seg[0]), false))
            return false;
        x->nseg++;
        p += n;
        if (*p == '/')
            p++; /* a trailing slash is allowed, as the router allows it */
    }
    return x->nseg >= 1 && strcmp(x->seg[0], "sites") == 0;
}

/* Answer 404 "no such <what>", naming `code` only when it is a well-formed code. */
static sw_err not_found(struct ctx *x, const char *what, const char *code)
{
    char msg[120];
    if (code != NULL && code_ok(code))
        snprintf(msg, sizeof(msg), "no such %s: %s", what, code);
    else
        snprintf(msg, sizeof(msg), "no such %s", what);
    job_reply_error(x->j, 404, msg);
    return SW_OK;
}

/*
 * ?after=<code>&limit=<n> of a list.  Answers 400 and returns false when
 * the query is malformed or names another parameter.
 */
static bool page_params(struct ctx *x, char *after, size_t alen, char *limit, size_t llen)
{
    const char *p = x->j->query;
    char v[ADMIN_SEG_MAX];
    after[0] = '\0';
    snprintf(limit, llen, "%d", ADMIN_PAGE_DEF);
    while (*p != '\0') {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kl = eq != NULL ? (size_t)(eq - p) : n;
        const char *val = eq != NULL ? eq + 1 : p + n;
        size_t vl = eq != NULL ? n - kl - 1 : 0;
        if (n == 0) {
            p++;
            continue;
        }
        if (!pct_decode(val, vl, v, sizeof(v), true)) {
            job_reply_error(x->j, 400, "malformed query: a value is badly %-encoded or too long");
            return false;
        }
        if (kl == 5 && memcmp(p, "after", 5) == 0) {
            snprintf(after, alen, "%s", v);
        } else if (kl == 5 && memcmp(p, "limit", 5) == 0) {
            char *end = NULL;
            long l = strtol(v, &end, 10);
            if (v[0] == '\0' || *end != '\0' || l < 1 || l > ADMIN_PAGE_MAX) {
                job_reply_error(x->j, 400,
                                "invalid query parameter limit: expected a whole number from 1 "
                                "to 500");
                return false;
            }
            snprintf(limit, llen, "%ld", l);
        } else {
            job_reply_error(x->j, 400, "unknown query parameter: a list takes after and limit");
            return false;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return true;
}

/* ------------------------------------------------------------ database */

static sw_err db_error(struct ctx *x, PGresult *r, const char *what)
{
    /* the primary message only: the DETAIL of a failed row would carry its values */
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(x->err, x->errlen, "could not %s: %s", what,
             primary != NULL ? primary : PQerrorMessage(x->db));
    PQclear(r);
    return PQstatus(x->db) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
}

/*
 * Run one statement.  Returns SW_OK with *out set (PQclear it) when it
 * ran; SW_OK with *out NULL when the data broke a constraint, which is
 * answered here (409 `dup` for a duplicate, else 422 naming the column or
 * constraint: our checks should have caught it first); otherwise the
 * database failed and its error is returned.
 */
static sw_err exec(struct ctx *x, const char *sql, int n, const char *const *v, const char *what,
                   const char *dup, PGresult **out)
{
    *out = NULL;
    PGresult *r = PQexecParams(x->db, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = r;
        return SW_OK;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state == NULL || PQstatus(x->db) == CONNECTION_BAD ||
        (strncmp(state, "23", 2) != 0 && strncmp(state, "22", 2) != 0))
        return db_error(x, r, what);
    if (strcmp(state, "23505") == 0 && dup != NULL) {
        job_reply_error(x->j, 409, dup);
    } else {
        struct checker c = {.n = 0};
        const char *field = PQresultErrorField(r, PG_DIAG_COLUMN_NAME);
        if (field == NULL)
            field = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        bad(&c, field != NULL ? field : "body", "refused by the database: %s",
            primary != NULL ? primary : state);
        refuse_fields(x, &c);
    }
    PQclear(r);
    return SW_OK;
}

/* Lock the caller's site row for this transaction: directory writers go one at a time. */
static sw_err site_lock(struct ctx *x)
{
    const char *v[] = {x->who->site_id};
    PGresult *r;
    sw_err rv = exec(x, "SELECT 1 FROM core.sites WHERE id = $1::uuid FOR NO KEY UPDATE", 1, v,
                     "lock the site", NULL, &r);
    PQclear(r);
    return rv;
}

/*
 * Find the id of a row of the caller's site by code: `sql` takes
 * ($1 site id, $2 code) and selects (id, active).  id is "" when there is
 * no such row.
 */
static sw_err find_id(struct ctx *x, const char *sql, const char *code, char id[37], bool *active,
                      const char *what)
{
    const char *v[] = {x->who->site_id, code};
    PGresult *r;
    id[0] = '\0';
    sw_err rv = exec(x, sql, 2, v, what, NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    if (PQntuples(r) == 1) {
        snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
        if (active != NULL)
            *active = colb(r, 0, 1);
    }
    PQclear(r);
    return SW_OK;
}

#define DEPT_FIND                                                                                  \
    "SELECT id::text, active FROM core.departments WHERE site_id = $1::uuid AND code = $2"
#define STAFF_FIND "SELECT id::text, active FROM core.staff WHERE site_id = $1::uuid AND code = $2"

/*
 * Would making `up` the parent (supervisor) of `self` close a cycle?
 * `sql` walks up from $1 and tells whether $2 is met.
 */
static sw_err makes_cycle(struct ctx *x, const char *sql, const char *up, const char *self,
                          bool *cycle)
{
    const char *v[] = {up, self};
    PGresult *r;
    sw_err rv = exec(x, sql, 2, v, "check for a cycle", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    *cycle = colb(r, 0, 0);
    PQclear(r);
    return SW_OK;
}

/*
 * Answer a single row selected by `sql` ($1 the caller's site id, $2
 * `key`) with `members`, or 404.
 */
typedef void (*members_fn)(const struct ctx *x, struct jw *w, const PGresult *r, int row);

static sw_err one_answer(struct ctx *x, const char *sql, const char *key, members_fn members,
                         uint16_t status, const char *what, const char *code)
{
    const char *v[] = {x->who->site_id, key};
    PGresult *r;
    sw_err rv = exec(x, sql, 2, v, "read the directory", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return not_found(x, what, code);
    }
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    members(x, &w, r, 0);
    jw_close(&w, "}");
    jw_reply(&w, x->j, status);
    PQclear(r);
    return SW_OK;
}

/*
 * Answer a page of a list: `sql` takes ($1 site id, $2 after, $3 limit)
 * and selects rows ordered by their code (column 1).  The answer is
 * {"<name>":[...],"next":<code to pass as after>|null}.
 */
static sw_err page_answer(struct ctx *x, const char *sql, const char *name, members_fn members)
{
    char after[ADMIN_SEG_MAX], limit[16], more[16];
    if (!page_params(x, after, sizeof(after), limit, sizeof(limit)))
        return SW_OK;
    int lim = atoi(limit);
    snprintf(more, sizeof(more), "%d", lim + 1);
    const char *v[] = {x->who->site_id, after, more};
    PGresult *r;
    sw_err rv = exec(x, sql, 3, v, "list the directory", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    int n = PQntuples(r);
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    jw_open(&w, name, "[");
    for (int i = 0; i < n && i < lim; i++) {
        jw_open(&w, NULL, "{");
        members(x, &w, r, i);
        jw_close(&w, "}");
    }
    jw_close(&w, "]");
    jw_str(&w, "next", n > lim ? PQgetvalue(r, lim - 1, 1) : NULL);
    jw_close(&w, "}");
    jw_reply(&w, x->j, 200);
    PQclear(r);
    return SW_OK;
}

/* Answer every row of `sql` (parameters v[0..n-1]) as {"<name>":[...]}, with `head` first. */
static sw_err all_answer(struct ctx *x, const char *sql, int n, const char *const *v,
                         const char *name, members_fn members, const char *head_key,
                         const char *head)
{
    PGresult *r;
    sw_err rv = exec(x, sql, n, v, "list credentials", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    if (head_key != NULL)
        jw_str(&w, head_key, head);
    jw_open(&w, name, "[");
    for (int i = 0; i < PQntuples(r); i++) {
        jw_open(&w, NULL, "{");
        members(x, &w, r, i);
        jw_close(&w, "}");
    }
    jw_close(&w, "]");
    jw_close(&w, "}");
    jw_reply(&w, x->j, 200);
    PQclear(r);
    return SW_OK;
}

/* Who did it, for the log: never a secret. */
static void who_text(const struct ctx *x, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %s", x->who->kind == 'k' ? "api key" : "staff", x->who->name);
}

/* ------------------------------------------------------------ sites */

/* clang-format off */
#define SITE_SELECT                                                                                \
    "SELECT s.id::text, s.code, s.name, s.time_zone, s.active, "                                   \
    SQL_UTC("s.created_at") ", " SQL_UTC("s.updated_at")                                                     \
    " FROM core.sites s "
/* clang-format on */

static void site_members(const struct ctx *x, struct jw *w, const PGresult *r, int row)
{
    (void)x;
    jw_str(w, "id", col(r, row, 0));
    jw_str(w, "code", col(r, row, 1));
    jw_str(w, "name", col(r, row, 2));
    jw_str(w, "time_zone", col(r, row, 3));
    jw_bool(w, "active", colb(r, row, 4));
    jw_str(w, "created_at", col(r, row, 5));
    jw_str(w, "updated_at", col(r, row, 6));
}

/* Is `tz` an IANA time zone the database knows? */
static sw_err tz_known(struct ctx *x, const char *tz, bool *ok)
{
    const char *v[] = {tz};
    PGresult *r;
    sw_err rv = exec(x, "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", 1, v,
                     "check the time zone", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    *ok = colb(r, 0, 0);
    PQclear(r);
    return SW_OK;
}

static sw_err sites_list(struct ctx *x)
{
    const char *v[] = {x->who->site_id};
    return all_answer(x, SITE_SELECT "WHERE s.id = $1::uuid", 1, v, "sites", site_members, NULL,
                      NULL);
}

static sw_err site_get(struct ctx *x)
{
    return one_answer(x, SITE_SELECT "WHERE s.id = $1::uuid AND s.code = $2", x->seg[1],
                      site_members, 200, "site", x->seg[1]);
}

static void key_members(const struct ctx *x, struct jw *w, const PGresult *r, int row);
static sw_err key_make(struct ctx *x, const char *site_id, const char *name, const char *role,
                       struct ival days, char *key, size_t keylen, PGresult **out);

static sw_err site_create(struct ctx *x)
{
    static const char *const known[] = {"code", "name", "time_zone", NULL};
    struct checker c = {.n = 0};
    json_t *o = x->j->json;
    char key[80] = "", msg[80], by[140];
    PGresult *r = NULL, *k = NULL;
    sw_err rv = SW_OK;
    bool tz_ok = true;

    known_only(&c, o, known, "a site", "");
    struct sval code = get_str(&c, o, "code", 16, REQUIRED);
    if (code.have == HAS_VALUE && !site_code_ok(code.s))
        bad(&c, "code", "must be an upper-case letter then 1-15 upper-case letters or digits");
    struct sval name = get_str(&c, o, "name", 200, REQUIRED);
    struct sval tz = get_str(&c, o, "time_zone", 64, 0);
    if (tz.have == HAS_VALUE && ((rv = tz_known(x, tz.s, &tz_ok)) != SW_OK || answered(x)))
        goto out;
    if (!tz_ok)
        bad(&c, "time_zone", "must be an IANA time zone name such as Asia/Shanghai");
    if (refuse_fields(x, &c))
        goto out;
    snprintf(msg, sizeof(msg), "site %s already exists", code.s);
    const char *v[] = {code.s, name.s, tz.s};
    rv = exec(x,
              "INSERT INTO core.sites (code, name, time_zone) VALUES ($1, $2, "
              "coalesce($3, 'Asia/Shanghai')) RETURNING id::text",
              3, v, "create the site", msg, &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    /* the new site's first admin key: without it nobody could administer the site */
    struct ival never = {false, 0};
    rv = key_make(x, PQgetvalue(r, 0, 0), "admin", "admin", never, key, sizeof(key), &k);
    if (rv != SW_OK || answered(x))
        goto out;
    PQclear(r);
    const char *w1[] = {PQgetvalue(k, 0, 8)};
    rv = exec(x, SITE_SELECT "WHERE s.id = $1::uuid", 1, w1, "read the site back", NULL, &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    site_members(x, &w, r, 0);
    jw_open(&w, "admin_key", "{");
    key_members(x, &w, k, 0);
    jw_str(&w, "key", key);
    jw_close(&w, "}");
    jw_close(&w, "}");
    w.secret = true;
    jw_reply(&w, x->j, 201);
    who_text(x, by, sizeof(by));
    LOG(LOG_INFO, "ADMIN-SITE-CREATED", "site %s created with an admin key (prefix %s) by %s",
        code.s, PQgetvalue(k, 0, 2), by);
out:
    explicit_bzero(key, sizeof(key));
    PQclear(r);
    PQclear(k);
    return rv;
}

static sw_err site_patch(struct ctx *x)
{
    static const char *const known[] = {"code", "name", "time_zone", "active", NULL};
    struct checker c = {.n = 0};
    json_t *o = x->j->json;
    bool tz_ok = true;
    sw_err rv;

    known_only(&c, o, known, "a site", "");
    same_code(&c, o, x->seg[1]);
    struct sval name = get_str(&c, o, "name", 200, 0);
    struct sval tz = get_str(&c, o, "time_zone", 64, 0);
    struct bval active = get_bool(&c, o, "active");
    if (tz.have == HAS_VALUE && ((rv = tz_known(x, tz.s, &tz_ok)) != SW_OK || answered(x)))
        return rv;
    if (!tz_ok)
        bad(&c, "time_zone", "must be an IANA time zone name such as Asia/Shanghai");
    if (refuse_fields(x, &c))
        return SW_OK;
    const char *v[] = {x->who->site_id, name.s, tz.s, tf(active)};
    PGresult *r;
    rv = exec(x,
              "UPDATE core.sites SET name = coalesce($2, name), time_zone = coalesce($3, "
              "time_zone), active = coalesce($4::bool, active), updated_at = now() "
              "WHERE id = $1::uuid",
              4, v, "change the site", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    PQclear(r);
    return one_answer(x, SITE_SELECT "WHERE s.id = $1::uuid AND s.code = $2", x->seg[1],
                      site_members, 200, "site", x->seg[1]);
}

/* ------------------------------------------------------------ departments */

/* clang-format off */
#define DEPT_SELECT                                                                                \
    "SELECT d.id::text, d.code, d.name, p.code, d.is_qa, d.is_front_desk, d.active, "              \
    "(SELECT coalesce(json_agg(CASE WHEN sc.category IS NULL AND sc.case_type IS NOT NULL "        \
    "THEN to_json(sc.case_type) ELSE json_build_object('type', sc.case_type, "                     \
    "'category', sc.category) END ORDER BY sc.case_type NULLS FIRST, "                             \
    "sc.category NULLS FIRST), '[]'::json) "                                                       \
    "FROM core.department_scopes sc WHERE sc.department_id = d.id)::text, "                        \
    SQL_UTC("d.created_at") ", " SQL_UTC("d.updated_at")                                                     \
    " FROM core.departments d LEFT JOIN core.departments p ON p.id = d.parent_id "                 \
    "WHERE d.site_id = $1::uuid "
/* clang-format on */

#define DEPT_CYCLE                                                                                 \
    "WITH RECURSIVE up(id, parent) AS (SELECT id, parent_id FROM core.departments WHERE id = "     \
    "$1::uuid UNION SELECT d.id, d.parent_id FROM core.departments d JOIN up ON d.id = "           \
    "up.parent) SELECT EXISTS (SELECT 1 FROM up WHERE id = $2::uuid)"

static void dept_members(const struct ctx *x, struct jw *w, const PGresult *r, int row)
{
    (void)x;
    jw_str(w, "id", col(r, row, 0));
    jw_str(w, "code", col(r, row, 1));
    jw_str(w, "name", col(r, row, 2));
    jw_str(w, "parent", col(r, row, 3));
    jw_bool(w, "is_qa", colb(r, row, 4));
    jw_bool(w, "is_front_desk", colb(r, row, 5));
    jw_bool(w, "active", colb(r, row, 6));
    /* JSON from the database, made compact like the rest of the answer */
    json_t *scopes = json_loads(PQgetvalue(r, row, 7), 0, NULL);
    char *compact = scopes != NULL ? json_dumps(scopes, JSON_COMPACT) : NULL;
    jw_json(w, "scopes", compact != NULL ? compact : PQgetvalue(r, row, 7));
    free(compact);
    json_decref(scopes);
    jw_str(w, "created_at", col(r, row, 8));
    jw_str(w, "updated_at", col(r, row, 9));
}

/*
 * "scopes": an array of case types ("repair") or of {"type", "category"}
 * objects (either may be null: any).  Returns them as a JSON array of
 * {"type","category"} for json_to_recordset (free it), or NULL when
 * "scopes" is absent or wrong; *given tells whether it was present.
 */
static char *get_scopes(struct checker *c, json_t *o, bool *given)
{
    static const char *const known[] = {"type", "category", NULL};
    json_t *v = json_object_get(o, "scopes"), *e, *rows = NULL;
    size_t i;
    char f[64];
    char *out = NULL;
    int before = c->n;
    *given = v != NULL;
    if (v == NULL)
        return NULL;
    if (!json_is_array(v) || json_array_size(v) > ADMIN_SCOPES_MAX) {
        bad(c, "scopes", "must be an array of at most %d case types", ADMIN_SCOPES_MAX);
        return NULL;
    }
    if ((rows = json_array()) == NULL)
        goto oom;
    json_array_foreach(v, i, e)
    {
        const char *type = NULL, *cat = NULL;
        snprintf(f, sizeof(f), "scopes[%zu]", i);
        if (json_is_string(e)) {
            type = json_string_value(e);
            if (!one_of(type, case_types))
                bad(c, f,
                    "must be a case type: consultation, complaint, help, suggestion, repair, "
                    "business, report, emergency");
        } else if (json_is_object(e)) {
            char pre[72], tf_[80], cf[84];
            snprintf(pre, sizeof(pre), "%s.", f);
            snprintf(tf_, sizeof(tf_), "%stype", pre);
            snprintf(cf, sizeof(cf), "%scategory", pre);
            known_only(c, e, known, "a scope", pre);
            struct sval t = get_str_as(c, e, "type", tf_, 32, NULLABLE);
            struct sval k = get_str_as(c, e, "category", cf, 100, NULLABLE);
            if (t.have == HAS_VALUE && !one_of(t.s, case_types))
                bad(c, tf_, "must be a case type or null (any)");
            type = t.s;
            cat = k.s;
        } else {
            bad(c, f, "must be a case type or an object with type and category");
        }
        json_t *row = json_object();
        if (row == NULL || json_array_append_new(rows, row) != 0 ||
            json_object_set_new(row, "type", type ? json_string(type) : json_null()) != 0 ||
            json_object_set_new(row, "category", cat ? json_string(cat) : json_null()) != 0)
            goto oom;
    }
    if (c->n == before && (out = json_dumps(rows, JSON_COMPACT)) == NULL)
        goto oom;
    json_decref(rows);
    return out;
oom:
    json_decref(rows);
    bad(c, "scopes", "could not be stored: out of memory");
    return NULL;
}

/* Replace the scopes of department `id` by `scopes` (from get_scopes). */
static sw_err scopes_set(struct ctx *x, const char *id, const char *scopes, bool replace)
{
    const char *v[] = {x->who->site_id, id, scopes};
    PGresult *r;
    sw_err rv = SW_OK;
    if (replace) {
        rv = exec(x, "DELETE FROM core.department_scopes WHERE department_id = $1::uuid", 1, v + 1,
                  "replace the scopes", NULL, &r);
        if (rv != SW_OK || r == NULL)
            return rv;
        PQclear(r);
    }
    rv = exec(x,
              "INSERT INTO core.department_scopes (site_id, department_id, case_type, category) "
              "SELECT $1::uuid, $2::uuid, s.type, s.category FROM json_to_recordset($3::json) "
              "AS s(type text, category text) "
              "ON CONFLICT ON CONSTRAINT department_scopes_unique DO NOTHING",
              3, v, "set the scopes", NULL, &r);
    PQclear(r);
    return rv;
}

static sw_err depts_list(struct ctx *x)
{
    return page_answer(x, DEPT_SELECT "AND d.code > $2 ORDER BY d.code LIMIT $3::int",
                       "departments", dept_members);
}

static sw_err dept_get(struct ctx *x)
{
    return one_answer(x, DEPT_SELECT "AND d.code = $2", x->seg[3], dept_members, 200, "department",
                      x->seg[3]);
}

static const char *const dept_fields[] = {"code",          "name",   "parent", "is_qa",
                                          "is_front_desk", "active", "scopes", NULL};

/* Resolve "parent" to an id of the caller's site (422 when unknown). */
static sw_err parent_resolve(struct ctx *x, struct checker *c, struct sval parent, char id[37])
{
    id[0] = '\0';
    if (parent.have != HAS_VALUE)
        return SW_OK;
    sw_err rv = find_id(x, DEPT_FIND, parent.s, id, NULL, "find the parent department");
    if (rv == SW_OK && !answered(x) && id[0] == '\0')
        bad(c, "parent", "no department \"%s\" at this site", parent.s);
    return rv;
}

static sw_err dept_create(struct ctx *x)
{
    struct checker c = {.n = 0};
    json_t *o = x->j->json;
    char parent_id[37] = "", msg[80];
    bool given;
    PGresult *r = NULL;
    sw_err rv;

    known_only(&c, o, dept_fields, "a department", "");
    struct sval code = get_code(&c, o, "code", REQUIRED);
    struct sval name = get_str(&c, o, "name", 200, REQUIRED);
    struct sval parent = get_code(&c, o, "parent", NULLABLE);
    struct bval qa = get_bool(&c, o, "is_qa");
    struct bval front = get_bool(&c, o, "is_front_desk");
    struct bval active = get_bool(&c, o, "active");
    char *scopes = get_scopes(&c, o, &given);
    if ((rv = site_lock(x)) != SW_OK || answered(x))
        goto out;
    if ((rv = parent_resolve(x, &c, parent, parent_id)) != SW_OK || answered(x))
        goto out;
    if (refuse_fields(x, &c))
        goto out;
    snprintf(msg, sizeof(msg), "department %s already exists", code.s);
    const char *v[] = {x->who->site_id, code.s,    name.s,    parent_id[0] ? parent_id : NULL,
                       tf(qa),          tf(front), tf(active)};
    rv = exec(x,
              "INSERT INTO core.departments (site_id, code, name, parent_id, is_qa, "
              "is_front_desk, active) VALUES ($1::uuid, $2, $3, $4::uuid, coalesce($5::bool, "
              "false), coalesce($6::bool, false), coalesce($7::bool, true)) RETURNING id::text",
              7, v, "add the department", msg, &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    if (scopes != NULL &&
        ((rv = scopes_set(x, PQgetvalue(r, 0, 0), scopes, false)) != SW_OK || answered(x)))
        goto out;
    rv = one_answer(x, DEPT_SELECT "AND d.id = $2::uuid", PQgetvalue(r, 0, 0), dept_members, 201,
                    "department", code.s);
out:
    free(scopes);
    PQclear(r);
    return rv;
}

static sw_err dept_patch(struct ctx *x)
{
    struct checker c = {.n = 0};
    json_t *o = x->j->json;
    char id[37], parent_id[37] = "";
    bool given, cycle = false;
    sw_err rv;
    PGresult *r = NULL;
    char *scopes = NULL;

    if ((rv = site_lock(x)) != SW_OK || answered(x))
        return rv;
    rv = find_id(x, DEPT_FIND " FOR UPDATE", x->seg[3], id, NULL, "find the department");
    if (rv != SW_OK || answered(x))
        return rv;
    if (id[0] == '\0')
        return not_found(x, "department", x->seg[3]);
    known_only(&c, o, dept_fields, "a department", "");
    same_code(&c, o, x->seg[3]);
    struct sval name = get_str(&c, o, "name", 200, 0);
    struct sval parent = get_code(&c, o, "parent", NULLABLE);
    struct bval qa = get_bool(&c, o, "is_qa");
    struct bval front = get_bool(&c, o, "is_front_desk");
    struct bval active = get_bool(&c, o, "active");
    scopes = get_scopes(&c, o, &given);
    if ((rv = parent_resolve(x, &c, parent, parent_id)) != SW_OK || answered(x))
        goto out;
    if (parent_id[0] != '\0' && strcmp(parent_id, id) == 0)
        bad(&c, "parent", "a department cannot be its own parent");
    else if (parent_id[0] != '\0' &&
             ((rv = makes_cycle(x, DEPT_CYCLE, parent_id, id, &cycle)) != SW_OK || answered(x)))
        goto out;
    if (cycle)
        bad(&c, "parent", "would make a cycle: %s is under this department", parent.s);
    if (refuse_fields(x, &c))
        goto out;
    const char *v[] = {id,
                       name.s,
                       parent.have != HAS_NONE ? "true" : "false",
                       parent_id[0] ? parent_id : NULL,
                       tf(qa),
                       tf(front),
                       tf(active)};
    rv = exec(x,
              "UPDATE core.departments SET name = coalesce($2, name), parent_id = CASE WHEN "
              "$3::bool THEN $4::uuid ELSE parent_id END, is_qa = coalesce($5::bool, is_qa), "
              "is_front_desk = coalesce($6::bool, is_front_desk), active = coalesce($7::bool, "
              "active), updated_at = now() WHERE id = $1::uuid",
              7, v, "change the department", NULL, &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    if (given && ((rv = scopes_set(x, id, scopes, true)) != SW_OK || answered(x)))
        goto out;
    rv = one_answer(x, DEPT_SELECT "AND d.id = $2::uuid", id, dept_members, 200, "department",
                    x->seg[3]);
out:
    free(scopes);
    PQclear(r);
    return rv;
}

/* ------------------------------------------------------------ staff */

/* Private contact details never leave the database. */
/* clang-format off */
#define STAFF_SELECT                                                                               \
    "SELECT st.id::text, st.code, st.name, st.role, d.code, sup.code, st.contact_private, "        \
    "CASE WHEN st.contact_private THEN NULL ELSE st.phone END, "                                   \
    "CASE WHEN st.contact_private THEN NULL ELSE st.email END, "                                   \
    "CASE WHEN st.contact_private THEN NULL ELSE st.wechat END, st.on_duty, st.active, "           \
    SQL_UTC("st.created_at") ", " SQL_UTC("st.updated_at")                                                   \
    " FROM core.staff st LEFT JOIN core.departments d ON d.id = st.department_id "                 \
    "LEFT JOIN core.staff sup ON sup.id = st.supervisor_id WHERE st.site_id = $1::uuid "
/* clang-format on */

#define STAFF_CYCLE                                                                                \
    "WITH RECURSIVE up(id, sup) AS (SELECT id, supervisor_id FROM core.staff WHERE id = "          \
    "$1::uuid UNION SELECT s.id, s.supervisor_id FROM core.staff s JOIN up ON s.id = up.sup) "     \
    "SELECT EXISTS (SELECT 1 FROM up WHERE id = $2::uuid)"

/* Who may see the contact details of staff who have not made them private. */
static bool sees_contact(const struct principal *p)
{
    if (p->kind == 'k')
        return strcmp(p->role, "admin") == 0;
    return strcmp(p->role, "manager") == 0 || strcmp(p->role, "supervisor") == 0;
}

static void staff_members(const struct ctx *x, struct jw *w, const PGresult *r, int row)
{
    bool private = colb(r, row, 6);
    jw_str(w, "id", col(r, row, 0));
    jw_str(w, "code", col(r, row, 1));
    jw_str(w, "name", col(r, row, 2));
    jw_str(w, "role", col(r, row, 3));
    jw_str(w, "department", col(r, row, 4));
    jw_str(w, "supervisor", col(r, row, 5));
    jw_bool(w, "contact_private", private);
    if (!private && sees_contact(x->who)) {
        jw_str(w, "phone", col(r, row, 7));
        jw_str(w, "email", col(r, row, 8));
        jw_str(w, "wechat", col(r, row, 9));
    }
    jw_bool(w, "on_duty", colb(r, row, 10));
    jw_bool(w, "active", colb(r, row, 11));
    jw_str(w, "created_at", col(r, row, 12));
    jw_str(w, "updated_at", col(r, row, 13));
}

static sw_err staff_list(struct ctx *x)
{
    return page_answer(x, STAFF_SELECT "AND st.code > $2 ORDER BY st.code LIMIT $3::int", "staff",
                       staff_members);
}

static sw_err staff_get(struct ctx *x)
{
    return one_answer(x, STAFF_SELECT "AND st.code = $2", x->seg[3], staff_members, 200,
                      "staff member", x->seg[3]);
}

static const char *const staff_fields[] = {
    "code",  "name",   "role",    "department",      "supervisor", "phone",
    "email", "wechat", "on_duty", "contact_private", "active",     NULL};

/* What a staff body says, checked; ids resolved by staff_resolve. */
struct staff_in {
    struct sval code, name, role, dept, sup, phone, email, wechat;
    struct bval priv, on_duty, active;
    char dept_id[37], sup_id[37];
};

static void staff_check(struct checker *c, json_t *o, struct staff_in *s, bool create)
{
    int req = create ? REQUIRED : 0;
    known_only(c, o, staff_fields, "a staff member", "");
    if (create)
        s->code = get_code(c, o, "code", REQUIRED);
    s->name = get_str(c, o, "name", 100, req);
    s->role = get_str(c, o, "role", 32, req);
    if (s->role.have == HAS_VALUE && !one_of(s->role.s, staff_roles)) {
        bad(c, "role",
            "must be one of staff, receptionist, department_head, handler, supervisor, "
            "manager, qa, leader");
        s->role.have = HAS_NONE;
    }
    s->dept = get_code(c, o, "department", NULLABLE);
    s->sup = get_code(c, o, "supervisor", NULLABLE);
    s->phone = get_str(c, o, "phone", 32, NULLABLE);
    if (s->phone.have == HAS_VALUE && !phone_ok(s->phone.s))
        bad(c, "phone",
            "must be a phone number: 5-20 digits, optionally with a leading +, spaces, hyphens "
            "or parentheses");
    s->email = get_str(c, o, "email", 254, NULLABLE);
    if (s->email.have == HAS_VALUE && !email_ok(s->email.s))
        bad(c, "email", "must be an email address");
    s->wechat = get_str(c, o, "wechat", 64, NULLABLE);
    s->priv = get_bool(c, o, "contact_private");
    if (s->priv.set && !s->priv.v && s->role.have == HAS_VALUE && strcmp(s->role.s, "leader") == 0)
        bad(c, "contact_private", "a leader's contact details are always private");
    s->on_duty = get_bool(c, o, "on_duty");
    s->active = get_bool(c, o, "active");
}

/*
 * Resolve the department and supervisor codes to ids of the caller's
 * site: each must exist and be active (422 naming the field otherwise).
 * `self` is the staff member's id when changing one, else "".
 */
static sw_err staff_resolve(struct ctx *x, struct checker *c, struct staff_in *s, const char *self)
{
    bool active = false, cycle = false;
    sw_err rv = SW_OK;
    if (s->dept.have == HAS_VALUE) {
        rv = find_id(x, DEPT_FIND, s->dept.s, s->dept_id, &active, "find the department");
        if (rv != SW_OK || answered(x))
            return rv;
        if (s->dept_id[0] == '\0' || !active)
            bad(c, "department", "no active department \"%s\" at this site", s->dept.s);
    }
    if (s->sup.have == HAS_VALUE) {
        rv = find_id(x, STAFF_FIND, s->sup.s, s->sup_id, &active, "find the supervisor");
        if (rv != SW_OK || answered(x))
            return rv;
        if (s->sup_id[0] == '\0' || !active)
            bad(c, "supervisor", "no active staff member \"%s\" at this site", s->sup.s);
        else if (self[0] != '\0' && strcmp(s->sup_id, self) == 0)
            bad(c, "supervisor", "a staff member cannot be their own supervisor");
        else if (self[0] != '\0' &&
                 ((rv = makes_cycle(x, STAFF_CYCLE, s->sup_id, self, &cycle)) != SW_OK ||
                  answered(x)))
            return rv;
        if (cycle)
            bad(c, "supervisor", "would make a cycle: %s reports to this staff member", s->sup.s);
    }
    return SW_OK;
}

static sw_err staff_create(struct ctx *x)
{
    struct checker c = {.n = 0};
    struct staff_in s;
    char msg[80];
    PGresult *r = NULL;
    sw_err rv;

    memset(&s, 0, sizeof(s));
    staff_check(&c, x->j->json, &s, true);
    if ((rv = site_lock(x)) != SW_OK || answered(x))
        return rv;
    if ((rv = staff_resolve(x, &c, &s, "")) != SW_OK || answered(x))
        return rv;
    if (refuse_fields(x, &c))
        return SW_OK;
    snprintf(msg, sizeof(msg), "staff member %s already exists", s.code.s);
    const char *v[] = {x->who->site_id,
                       s.code.s,
                       s.name.s,
                       s.role.s,
                       s.dept_id[0] ? s.dept_id : NULL,
                       s.sup_id[0] ? s.sup_id : NULL,
                       s.phone.s,
                       s.email.s,
                       s.wechat.s,
                       tf(s.priv),
                       tf(s.on_duty),
                       tf(s.active)};
    /* a leader's contact details are always private (DOMAIN.md; a CHECK in 0009 too) */
    rv = exec(x,
              "INSERT INTO core.staff (site_id, code, name, role, department_id, supervisor_id, "
              "phone, email, wechat, contact_private, on_duty, active) VALUES ($1::uuid, $2, $3, "
              "$4, $5::uuid, $6::uuid, $7, $8, $9, CASE WHEN $4 = 'leader' THEN true ELSE "
              "coalesce($10::bool, false) END, "
              "coalesce($11::bool, true), coalesce($12::bool, true)) RETURNING id::text",
              12, v, "add the staff member", msg, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    rv = one_answer(x, STAFF_SELECT "AND st.id = $2::uuid", PQgetvalue(r, 0, 0), staff_members, 201,
                    "staff member", s.code.s);
    PQclear(r);
    return rv;
}

static sw_err staff_patch(struct ctx *x)
{
    struct checker c = {.n = 0};
    struct staff_in s;
    char id[37];
    PGresult *r = NULL;
    sw_err rv;

    memset(&s, 0, sizeof(s));
    if ((rv = site_lock(x)) != SW_OK || answered(x))
        return rv;
    rv = find_id(x, STAFF_FIND " FOR UPDATE", x->seg[3], id, NULL, "find the staff member");
    if (rv != SW_OK || answered(x))
        return rv;
    if (id[0] == '\0')
        return not_found(x, "staff member", x->seg[3]);
    same_code(&c, x->j->json, x->seg[3]);
    staff_check(&c, x->j->json, &s, false);
    if ((rv = staff_resolve(x, &c, &s, id)) != SW_OK || answered(x))
        return rv;
    if (refuse_fields(x, &c))
        return SW_OK;
#define STAFF_SET(f) ((f).have != HAS_NONE ? "true" : "false")
    const char *v[] = {id,
                       s.name.s,
                       s.role.s,
                       STAFF_SET(s.dept),
                       s.dept_id[0] ? s.dept_id : NULL,
                       STAFF_SET(s.sup),
                       s.sup_id[0] ? s.sup_id : NULL,
                       STAFF_SET(s.phone),
                       s.phone.s,
                       STAFF_SET(s.email),
                       s.email.s,
                       STAFF_SET(s.wechat),
                       s.wechat.s,
                       tf(s.priv),
                       tf(s.on_duty),
                       tf(s.active)};
#undef STAFF_SET
    /* a leader's contact details are always private, whatever the body says */
    rv = exec(x,
              "UPDATE core.staff SET name = coalesce($2, name), role = coalesce($3, role), "
              "department_id = CASE WHEN $4::bool THEN $5::uuid ELSE department_id END, "
              "supervisor_id = CASE WHEN $6::bool THEN $7::uuid ELSE supervisor_id END, "
              "phone = CASE WHEN $8::bool THEN $9 ELSE phone END, "
              "email = CASE WHEN $10::bool THEN $11 ELSE email END, "
              "wechat = CASE WHEN $12::bool THEN $13 ELSE wechat END, "
              "contact_private = CASE WHEN coalesce($3, role) = 'leader' THEN true ELSE "
              "coalesce($14::bool, contact_private) END, on_duty = coalesce($15::bool, on_duty), "
              "active = coalesce($16::bool, active), updated_at = now() WHERE id = $1::uuid",
              16, v, "change the staff member", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    PQclear(r);
    return one_answer(x, STAFF_SELECT "AND st.id = $2::uuid", id, staff_members, 200,
                      "staff member", x->seg[3]);
}

/* ------------------------------------------------------------ staff tokens */

/* clang-format off */
#define TOKEN_COLS                                                                                 \
    "t.id::text, " SQL_UTC("t.created_at") ", " SQL_UTC("t.expires_at") ", "                                 \
    SQL_UTC("t.revoked_at") ", " SQL_UTC("t.last_used_at")
/* clang-format on */

static void token_members(const struct ctx *x, struct jw *w, const PGresult *r, int row)
{
    (void)x;
    jw_str(w, "id", col(r, row, 0));
    jw_str(w, "created_at", col(r, row, 1));
    jw_str(w, "expires_at", col(r, row, 2));
    jw_str(w, "revoked_at", col(r, row, 3));
    jw_str(w, "last_used_at", col(r, row, 4));
}

/* The staff member of the path (seg[3]): its id, or answered 404. */
static sw_err token_staff(struct ctx *x, char id[37], bool *active)
{
    sw_err rv = find_id(x, STAFF_FIND, x->seg[3], id, active, "find the staff member");
    if (rv == SW_OK && !answered(x) && id[0] == '\0')
        return not_found(x, "staff member", x->seg[3]);
    return rv;
}

static sw_err tokens_list(struct ctx *x)
{
    char id[37];
    bool active;
    sw_err rv = token_staff(x, id, &active);
    if (rv != SW_OK || answered(x))
        return rv;
    const char *v[] = {id};
    return all_answer(x,
                      "SELECT " TOKEN_COLS " FROM core.staff_tokens t WHERE t.staff_id = $1::uuid "
                      "ORDER BY t.created_at DESC, t.id LIMIT " ADMIN_LIST_MAX,
                      1, v, "tokens", token_members, "staff", x->seg[3]);
}

static sw_err token_issue(struct ctx *x)
{
    static const char *const known[] = {"expires_in_days", NULL};
    struct checker c = {.n = 0};
    char id[37], hex[2 * ADMIN_TOKEN_BYTES + 1], token[2 * ADMIN_TOKEN_BYTES + 8], hash[65];
    char days[8], msg[120], by[140];
    uint8_t sum[32];
    bool active = false;
    PGresult *r = NULL;
    sw_err rv;

    known_only(&c, x->j->json, known, "a token request", "");
    struct ival d = get_int(&c, x->j->json, "expires_in_days", 1, 365);
    if ((rv = token_staff(x, id, &active)) != SW_OK || answered(x))
        return rv;
    if (refuse_fields(x, &c))
        return SW_OK;
    if (!active) {
        snprintf(msg, sizeof(msg), "staff member %s is not active: make them active first",
                 x->seg[3]);
        job_reply_error(x->j, 409, msg);
        return SW_OK;
    }
    if (x->who->kind != 'k') {
        /* a manager's token may not mint another manager's or a leader's: every
         * handoff would then be signed in their name */
        const char *rv_[] = {id};
        rv = exec(x, "SELECT role FROM core.staff WHERE id = $1::uuid", 1, rv_,
                  "find the staff member's role", NULL, &r);
        if (rv != SW_OK || r == NULL)
            goto out;
        bool senior = PQntuples(r) == 1 && (strcmp(PQgetvalue(r, 0, 0), "manager") == 0 ||
                                            strcmp(PQgetvalue(r, 0, 0), "leader") == 0);
        PQclear(r);
        r = NULL;
        if (senior) {
            job_reply_error(x->j, 403,
                            "forbidden: only an API key of role admin issues tokens to managers "
                            "and leaders");
            return SW_OK;
        }
    }
    if (crypto_random_hex(hex, ADMIN_TOKEN_BYTES) != SW_OK) {
        snprintf(x->err, x->errlen, "could not issue a token: no randomness from the system");
        return SW_EIO;
    }
    snprintf(token, sizeof(token), "swt_%s", hex);
    crypto_sha256(token, strlen(token), sum);
    crypto_hex(sum, 32, hash);
    snprintf(days, sizeof(days), "%d", d.set ? d.v : ADMIN_TOKEN_DAYS);
    const char *v[] = {id, hash, days};
    rv = exec(x,
              "INSERT INTO core.staff_tokens AS t (staff_id, token_hash, expires_at) VALUES "
              "($1::uuid, decode($2, 'hex'), now() + make_interval(days => $3::int)) "
              "RETURNING " TOKEN_COLS,
              3, v, "issue the token", NULL, &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    token_members(x, &w, r, 0);
    jw_str(&w, "staff", x->seg[3]);
    jw_str(&w, "token", token);
    jw_close(&w, "}");
    w.secret = true;
    jw_reply(&w, x->j, 201);
    who_text(x, by, sizeof(by));
    LOG(LOG_INFO, "ADMIN-TOKEN-ISSUED", "token %s for staff %s of site %s issued by %s",
        PQgetvalue(r, 0, 0), x->seg[3], x->who->site, by);
out:
    explicit_bzero(hex, sizeof(hex));
    explicit_bzero(token, sizeof(token));
    PQclear(r);
    return rv;
}

static sw_err token_revoke(struct ctx *x)
{
    char id[37], by[140];
    bool active;
    sw_err rv = token_staff(x, id, &active);
    if (rv != SW_OK || answered(x))
        return rv;
    if (!is_uuid(x->seg[5], strlen(x->seg[5])))
        return not_found(x, "token", NULL);
    const char *v[] = {x->seg[5], id};
    PGresult *r;
    rv = exec(x,
              "UPDATE core.staff_tokens t SET revoked_at = coalesce(revoked_at, now()) "
              "WHERE id = $1::uuid AND staff_id = $2::uuid RETURNING " TOKEN_COLS,
              2, v, "revoke the token", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return not_found(x, "token", NULL);
    }
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    token_members(x, &w, r, 0);
    jw_str(&w, "staff", x->seg[3]);
    jw_close(&w, "}");
    jw_reply(&w, x->j, 200);
    who_text(x, by, sizeof(by));
    LOG(LOG_INFO, "ADMIN-TOKEN-REVOKED", "token %s of staff %s of site %s revoked by %s", x->seg[5],
        x->seg[3], x->who->site, by);
    PQclear(r);
    return SW_OK;
}

/* ------------------------------------------------------------ API keys */

/* clang-format off */
#define KEY_COLS                                                                                   \
    "k.id::text, k.name, k.prefix, k.role, " SQL_UTC("k.created_at") ", " SQL_UTC("k.expires_at") ", "       \
    SQL_UTC("k.revoked_at") ", " SQL_UTC("k.last_used_at") ", k.site_id::text"
/* clang-format on */

static void key_members(const struct ctx *x, struct jw *w, const PGresult *r, int row)
{
    (void)x;
    jw_str(w, "id", col(r, row, 0));
    jw_str(w, "name", col(r, row, 1));
    jw_str(w, "prefix", col(r, row, 2));
    jw_str(w, "role", col(r, row, 3));
    jw_str(w, "created_at", col(r, row, 4));
    jw_str(w, "expires_at", col(r, row, 5));
    jw_str(w, "revoked_at", col(r, row, 6));
    jw_str(w, "last_used_at", col(r, row, 7));
}

/*
 * Make an API key of `site_id`: "swk_<prefix>_<secret>" written to `key`
 * (the caller shows it once and wipes it), its row (KEY_COLS) in *out
 * (PQclear it).  A name taken is answered 409 (*out NULL).
 */
static sw_err key_make(struct ctx *x, const char *site_id, const char *name, const char *role,
                       struct ival days, char *key, size_t keylen, PGresult **out)
{
    char prefix[2 * ADMIN_KEY_PREFIX + 1], secret[2 * ADMIN_KEY_SECRET + 1], hash[65], d[8];
    char msg[200];
    uint8_t sum[32];
    sw_err rv = SW_OK;
    *out = NULL;
    snprintf(d, sizeof(d), "%d", days.v);
    snprintf(msg, sizeof(msg),
             "an API key named \"%.100s\" already exists at this site (revoked keys keep their "
             "names)",
             name);
    utf8_trim(msg);
    /* a prefix already taken (1 in 4 billion per key) is drawn again */
    for (int tries = 0; tries < 4 && rv == SW_OK && *out == NULL && !answered(x); tries++) {
        if (crypto_random_hex(prefix, ADMIN_KEY_PREFIX) != SW_OK ||
            crypto_random_hex(secret, ADMIN_KEY_SECRET) != SW_OK) {
            snprintf(x->err, x->errlen, "could not make an API key: no randomness from the system");
            rv = SW_EIO;
            break;
        }
        snprintf(key, keylen, "swk_%s_%s", prefix, secret);
        crypto_sha256(key, strlen(key), sum);
        crypto_hex(sum, 32, hash);
        const char *v[] = {site_id, name, prefix, hash, role, days.set ? d : NULL};
        PGresult *r;
        rv = exec(
            x,
            "INSERT INTO core.api_keys AS k (site_id, name, prefix, key_hash, role, "
            "expires_at) VALUES ($1::uuid, $2, $3, decode($4, 'hex'), $5, now() + "
            "make_interval(days => $6::int)) ON CONFLICT (prefix) DO NOTHING RETURNING " KEY_COLS,
            6, v, "make the API key", msg, &r);
        if (rv == SW_OK && r != NULL && PQntuples(r) == 1)
            *out = r;
        else
            PQclear(r);
    }
    explicit_bzero(secret, sizeof(secret));
    if (rv == SW_OK && *out == NULL && !answered(x)) {
        snprintf(x->err, x->errlen, "could not make an API key: no free prefix in 4 draws");
        rv = SW_EDB;
    }
    if (*out == NULL)
        explicit_bzero(key, keylen);
    return rv;
}

static sw_err keys_list(struct ctx *x)
{
    const char *v[] = {x->who->site_id};
    return all_answer(x,
                      "SELECT " KEY_COLS " FROM core.api_keys k WHERE k.site_id = $1::uuid "
                      "ORDER BY k.created_at, k.id LIMIT " ADMIN_LIST_MAX,
                      1, v, "api_keys", key_members, NULL, NULL);
}

static sw_err key_create(struct ctx *x)
{
    static const char *const known[] = {"name", "role", "expires_in_days", NULL};
    struct checker c = {.n = 0};
    json_t *o = x->j->json;
    char key[80] = "", by[140];
    PGresult *r = NULL;
    sw_err rv;

    known_only(&c, o, known, "an API key", "");
    struct sval name = get_str(&c, o, "name", 100, REQUIRED);
    struct sval role = get_str(&c, o, "role", 16, REQUIRED);
    /* The key's name is its submissions' source; "staff:<code>" is the
     * source of staff's own registrations, so a key named so would read
     * that person's cases and collide with their idempotency keys. */
    if (name.have == HAS_VALUE && strchr(name.s, ':') != NULL)
        bad(&c, "name", "must not contain ':' (\"staff:...\" names staff registrations)");
    if (role.have == HAS_VALUE && !one_of(role.s, key_roles))
        bad(&c, "role", "must be one of system, device, reader, admin");
    struct ival days = get_int(&c, o, "expires_in_days", 1, 365);
    if (refuse_fields(x, &c))
        return SW_OK;
    rv = key_make(x, x->who->site_id, name.s, role.s, days, key, sizeof(key), &r);
    if (rv != SW_OK || r == NULL)
        goto out;
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    key_members(x, &w, r, 0);
    jw_str(&w, "key", key);
    jw_close(&w, "}");
    w.secret = true;
    jw_reply(&w, x->j, 201);
    who_text(x, by, sizeof(by));
    LOG(LOG_INFO, "ADMIN-KEY-CREATED", "api key %s (prefix %s, role %s) of site %s made by %s",
        PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2), role.s, x->who->site, by);
out:
    explicit_bzero(key, sizeof(key));
    PQclear(r);
    return rv;
}

static sw_err key_revoke(struct ctx *x)
{
    char by[140];
    if (!is_uuid(x->seg[3], strlen(x->seg[3])))
        return not_found(x, "API key", NULL);
    const char *v[] = {x->seg[3], x->who->site_id};
    PGresult *r;
    sw_err rv = exec(x,
                     "UPDATE core.api_keys k SET revoked_at = coalesce(revoked_at, now()) "
                     "WHERE id = $1::uuid AND site_id = $2::uuid RETURNING " KEY_COLS,
                     2, v, "revoke the API key", NULL, &r);
    if (rv != SW_OK || r == NULL)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return not_found(x, "API key", NULL);
    }
    struct jw w;
    jw_init(&w);
    jw_open(&w, NULL, "{");
    key_members(x, &w, r, 0);
    jw_close(&w, "}");
    jw_reply(&w, x->j, 200);
    who_text(x, by, sizeof(by));
    LOG(LOG_INFO, "ADMIN-KEY-REVOKED", "api key %s (prefix %s) of site %s revoked by %s", x->seg[3],
        PQgetvalue(r, 0, 2), x->who->site, by);
    PQclear(r);
    return SW_OK;
}

/* ------------------------------------------------------------ routing */

enum need {
    NEED_READ,      /* read the site: admin key or manager */
    NEED_DIRECTORY, /* departments, staff, tokens: admin key or manager */
    NEED_ADMIN,     /* site settings, API keys: admin key */
    NEED_CREATE,    /* a new site: admin key */
    NEED_QA,        /* audit and reports: admin or reader key; manager, supervisor or QA */
    NEED_STAFF,     /* read departments, staff, checklists: any staff token, admin or reader key */
    NEED_ANY,       /* any credential of the site: the handler decides (a password) */
};

static bool allowed(const struct principal *p, enum need need)
{
    bool admin = p->kind == 'k' && strcmp(p->role, "admin") == 0;
    bool manager = p->kind == 't' && strcmp(p->role, "manager") == 0;
    if (need == NEED_ANY)
        return true;
    if (need == NEED_STAFF)
        return p->kind == 't' || admin || strcmp(p->role, "reader") == 0;
    if (need == NEED_QA)
        return admin || manager || (p->kind == 'k' && strcmp(p->role, "reader") == 0) ||
               (p->kind == 't' &&
                (strcmp(p->role, "supervisor") == 0 || strcmp(p->role, "qa") == 0));
    return admin || (manager && (need == NEED_READ || need == NEED_DIRECTORY));
}

static const char *forbidden(enum need need)
{
    switch (need) {
    case NEED_CREATE:
        return "forbidden: sites are created only with an API key of role admin";
    case NEED_QA:
        return "forbidden: the audit log and the reports are for a manager, a supervisor or QA "
               "(staff token), or an API key of role admin or reader";
    case NEED_ADMIN:
        return "forbidden: site settings and API keys are administered only with an API key of "
               "role admin of the site";
    case NEED_STAFF:
        return "forbidden: the directory is read by staff, and API keys of role admin or reader";
    default:
        return "forbidden: the directory of a site is administered with an API key of role admin "
               "or a manager's staff token";
    }
}

typedef sw_err (*admin_fn)(struct ctx *x);

static sw_err routing_rules_get(struct ctx *x)
{
    return rules_get(x->j, x->db, x->err, x->errlen);
}

static sw_err routing_rules_put(struct ctx *x)
{
    return rules_put(x->j, x->db, x->err, x->errlen);
}

static sw_err routing_absences_list(struct ctx *x)
{
    return absences_list(x->j, x->db, x->err, x->errlen);
}

static sw_err routing_absence_create(struct ctx *x)
{
    return absence_create(x->j, x->db, x->err, x->errlen);
}

static sw_err routing_absence_end(struct ctx *x)
{
    return absence_end(x->j, x->db, x->seg[4], x->err, x->errlen);
}

static sw_err cal_get(struct ctx *x)
{
    return calendar_get(x->j, x->db, x->err, x->errlen);
}

static sw_err cal_patch(struct ctx *x)
{
    return calendar_patch(x->j, x->db, x->err, x->errlen);
}

static sw_err cal_days(struct ctx *x)
{
    return calendar_days_list(x->j, x->db, x->err, x->errlen);
}

static sw_err cal_day_put(struct ctx *x)
{
    return calendar_day_put(x->j, x->db, x->seg[4], x->err, x->errlen);
}

static sw_err cal_day_delete(struct ctx *x)
{
    return calendar_day_delete(x->j, x->db, x->seg[4], x->err, x->errlen);
}

static sw_err cal_import(struct ctx *x)
{
    return calendar_import(x->j, x->db, x->err, x->errlen);
}

/* /v1/sites/{code}/notification/{what}[/{item}] (handle_notify.c) */
static sw_err notify_route(struct ctx *x)
{
    const char *what = x->seg[3], *m = x->j->method, *item = x->nseg == 5 ? x->seg[4] : NULL;
    bool get = strcmp(m, "GET") == 0, del = strcmp(m, "DELETE") == 0;
    struct job *j = x->j;
    if (strcmp(what, "channels") == 0)
        return item == NULL ? (get ? ntf_channels_list(j, x->db, x->err, x->errlen)
                                   : ntf_channel_create(j, x->db, x->err, x->errlen))
               : get        ? ntf_channel_get(j, x->db, item, x->err, x->errlen)
               : del        ? ntf_channel_delete(j, x->db, item, x->err, x->errlen)
                            : ntf_channel_patch(j, x->db, item, x->err, x->errlen);
    if (strcmp(what, "subscriptions") == 0)
        return item != NULL ? ntf_sub_delete(j, x->db, item, x->err, x->errlen)
               : get        ? ntf_subs_list(j, x->db, x->err, x->errlen)
                            : ntf_sub_create(j, x->db, x->err, x->errlen);
    if (strcmp(what, "templates") == 0)
        return item != NULL ? ntf_template_delete(j, x->db, item, x->err, x->errlen)
               : get        ? ntf_templates_list(j, x->db, x->err, x->errlen)
                            : ntf_template_put(j, x->db, x->err, x->errlen);
    if (strcmp(what, "settings") == 0)
        return get ? ntf_settings_get(j, x->db, x->err, x->errlen)
                   : ntf_settings_patch(j, x->db, x->err, x->errlen);
    return item != NULL ? ntf_delivery_get(j, x->db, item, x->err, x->errlen)
                        : ntf_deliveries_list(j, x->db, x->err, x->errlen);
}

static sw_err audit_route(struct ctx *x)
{
    if (strcmp(x->seg[2], "audit") == 0)
        return strcmp(x->seg[3], "verify") == 0
                   ? audit_verify_run(x->j, x->db, x->ob, x->err, x->errlen)
                   : audit_checkpoints_list(x->j, x->db, x->err, x->errlen);
    if (strcmp(x->seg[3], "qa") == 0)
        return report_qa(x->j, x->db, x->err, x->errlen);
    if (strcmp(x->seg[3], "reception-log") == 0)
        return report_reception(x->j, x->db, x->err, x->errlen);
    return report_weekly(x->j, x->db, x->err, x->errlen);
}

static sw_err staff_password(struct ctx *x)
{
    return password_put(x->j, x->db, x->seg[3], x->err, x->errlen);
}

static sw_err site_checklists(struct ctx *x)
{
    if (x->nseg == 3)
        return checklists_get(x->j, x->db, x->err, x->errlen);
    return strcmp(x->j->method, "PUT") == 0
               ? checklist_put(x->j, x->db, x->seg[3], x->err, x->errlen)
               : checklist_delete(x->j, x->db, x->seg[3], x->err, x->errlen);
}

static sw_err site_limits_get(struct ctx *x)
{
    return limits_get(x->j, x->db, x->err, x->errlen);
}

static sw_err site_limits_put(struct ctx *x)
{
    return limits_put(x->j, x->db, x->err, x->errlen);
}

sw_err admin_run(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen)
{
    (void)in;
    /* only an audit verification publishes an event */
    struct ctx x = {.j = j, .db = db, .err = err, .errlen = errlen, .who = &j->who, .ob = ob};
    const char *m = j->method;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0,
         patch = strcmp(m, "PATCH") == 0, del = strcmp(m, "DELETE") == 0,
         put = strcmp(m, "PUT") == 0;
    admin_fn fn = NULL;
    enum need need = NEED_DIRECTORY;
    const char *allow;
    char msg[200];

    if (!path_split(&x)) {
        job_reply_error(j, 404, "no such resource");
        return SW_OK;
    }
    int n = x.nseg;
    const char *coll = n >= 3 ? x.seg[2] : "";
    bool depts = strcmp(coll, "departments") == 0, staff = strcmp(coll, "staff") == 0,
         keys = strcmp(coll, "api-keys") == 0;
    if (n == 1) {
        allow = "GET /v1/sites reads your site, POST creates one";
        fn = get ? sites_list : post ? site_create : NULL;
        need = get ? NEED_READ : NEED_CREATE;
    } else if (n == 2) {
        allow = "GET /v1/sites/{code} reads a site, PATCH changes it";
        fn = get ? site_get : patch ? site_patch : NULL;
        need = get ? NEED_READ : NEED_ADMIN;
    } else if (depts && n == 3) {
        allow = "GET /v1/sites/{code}/departments lists them, POST adds one";
        fn = get ? depts_list : post ? dept_create : NULL;
        need = get ? NEED_STAFF : NEED_DIRECTORY;
    } else if (depts && n == 4) {
        allow = "GET /v1/sites/{code}/departments/{dept} reads one, PATCH changes it";
        fn = get ? dept_get : patch ? dept_patch : NULL;
        need = get ? NEED_STAFF : NEED_DIRECTORY;
    } else if (staff && n == 3) {
        allow = "GET /v1/sites/{code}/staff lists them, POST adds one";
        fn = get ? staff_list : post ? staff_create : NULL;
        need = get ? NEED_STAFF : NEED_DIRECTORY;
    } else if (staff && n == 4) {
        allow = "GET /v1/sites/{code}/staff/{staff} reads one, PATCH changes them";
        fn = get ? staff_get : patch ? staff_patch : NULL;
        need = get ? NEED_STAFF : NEED_DIRECTORY;
    } else if (staff && n == 5 && strcmp(x.seg[4], "password") == 0) {
        allow = "PUT /v1/sites/{code}/staff/{staff}/password sets the console password";
        fn = put ? staff_password : NULL;
        need = NEED_ANY;
    } else if (strcmp(coll, "checklists") == 0 && (n == 3 || n == 4)) {
        allow = n == 3 ? "GET /v1/sites/{code}/checklists reads them"
                       : "PUT /v1/sites/{code}/checklists/{type} sets one, DELETE removes it";
        fn = (n == 3 ? get : put || del) ? site_checklists : NULL;
        need = n == 3 ? NEED_STAFF : NEED_DIRECTORY;
    } else if (staff && n == 5 && strcmp(x.seg[4], "tokens") == 0) {
        allow = "GET /v1/sites/{code}/staff/{staff}/tokens lists them, POST issues one";
        fn = get ? tokens_list : post ? token_issue : NULL;
    } else if (staff && n == 6 && strcmp(x.seg[4], "tokens") == 0) {
        allow = "DELETE /v1/sites/{code}/staff/{staff}/tokens/{id} revokes a token";
        fn = del ? token_revoke : NULL;
    } else if (strcmp(coll, "routing") == 0 && n == 4 && strcmp(x.seg[3], "rules") == 0) {
        allow = "GET /v1/sites/{code}/routing/rules reads them, PUT replaces them all";
        fn = get ? routing_rules_get : put ? routing_rules_put : NULL;
        need = get ? NEED_READ : NEED_DIRECTORY;
    } else if (strcmp(coll, "routing") == 0 && n == 4 && strcmp(x.seg[3], "absences") == 0) {
        allow = "GET /v1/sites/{code}/routing/absences lists them, POST records one";
        fn = get ? routing_absences_list : post ? routing_absence_create : NULL;
        need = get ? NEED_READ : NEED_DIRECTORY;
    } else if (strcmp(coll, "routing") == 0 && n == 5 && strcmp(x.seg[3], "absences") == 0) {
        allow = "DELETE /v1/sites/{code}/routing/absences/{id} ends one";
        fn = del ? routing_absence_end : NULL;
    } else if (strcmp(coll, "calendar") == 0 && n == 3) {
        allow = "GET /v1/sites/{code}/calendar reads it, PATCH changes it";
        fn = get ? cal_get : patch ? cal_patch : NULL;
        need = get ? NEED_READ : NEED_DIRECTORY;
    } else if (strcmp(coll, "calendar") == 0 && n == 4 && strcmp(x.seg[3], "days") == 0) {
        allow = "GET /v1/sites/{code}/calendar/days lists the dated entries";
        fn = get ? cal_days : NULL;
        need = NEED_READ;
    } else if (strcmp(coll, "calendar") == 0 && n == 5 && strcmp(x.seg[3], "days") == 0) {
        allow = "PUT /v1/sites/{code}/calendar/days/{date} sets a day, DELETE removes it";
        fn = put ? cal_day_put : del ? cal_day_delete : NULL;
    } else if (strcmp(coll, "calendar") == 0 && n == 4 && strcmp(x.seg[3], "import") == 0) {
        allow = "POST /v1/sites/{code}/calendar/import imports an iCalendar file";
        fn = post ? cal_import : NULL;
    } else if (strcmp(coll, "limits") == 0 && n == 3) {
        allow = "GET /v1/sites/{code}/limits reads the time limits, PUT replaces them all";
        fn = get ? site_limits_get : put ? site_limits_put : NULL;
        need = get ? NEED_READ : NEED_DIRECTORY;
    } else if (strcmp(coll, "notification") == 0 && (n == 4 || n == 5)) {
        const char *w = x.seg[3];
        bool one = n == 5;
        if (strcmp(w, "channels") == 0) {
            allow = one ? "GET, PATCH or DELETE /v1/sites/{code}/notification/channels/{name}"
                        : "GET /v1/sites/{code}/notification/channels lists them, POST adds one";
            fn = (one ? get || patch || del : get || post) ? notify_route : NULL;
        } else if (strcmp(w, "subscriptions") == 0) {
            allow = one ? "DELETE /v1/sites/{code}/notification/subscriptions/{id} removes one"
                        : "GET /v1/sites/{code}/notification/subscriptions lists them, POST adds "
                          "one";
            fn = (one ? del : get || post) ? notify_route : NULL;
        } else if (strcmp(w, "templates") == 0) {
            allow = one ? "DELETE /v1/sites/{code}/notification/templates/{id} removes one"
                        : "GET /v1/sites/{code}/notification/templates lists them, PUT sets one";
            fn = (one ? del : get || put) ? notify_route : NULL;
            need = get ? NEED_READ : NEED_DIRECTORY;
        } else if (strcmp(w, "settings") == 0 && !one) {
            allow = "GET /v1/sites/{code}/notification/settings reads them, PATCH changes them";
            fn = get || patch ? notify_route : NULL;
            need = get ? NEED_READ : NEED_DIRECTORY;
        } else if (strcmp(w, "deliveries") == 0) {
            allow = one ? "GET /v1/sites/{code}/notification/deliveries/{id} reads one"
                        : "GET /v1/sites/{code}/notification/deliveries lists them";
            fn = get ? notify_route : NULL;
        } else {
            job_reply_error(j, 404, "no such resource");
            return SW_OK;
        }
    } else if (strcmp(coll, "audit") == 0 && n == 4 &&
               (strcmp(x.seg[3], "verify") == 0 || strcmp(x.seg[3], "checkpoints") == 0)) {
        bool verify = strcmp(x.seg[3], "verify") == 0;
        allow = verify ? "POST /v1/sites/{code}/audit/verify recomputes the chain"
                       : "GET /v1/sites/{code}/audit/checkpoints lists the signed chain heads";
        fn = (verify ? post : get) ? audit_route : NULL;
        need = NEED_QA;
    } else if (strcmp(coll, "reports") == 0 && n == 4 &&
               (strcmp(x.seg[3], "qa") == 0 || strcmp(x.seg[3], "reception-log") == 0 ||
                strcmp(x.seg[3], "weekly-review") == 0)) {
        allow = "GET /v1/sites/{code}/reports/{qa|reception-log|weekly-review}";
        fn = get ? audit_route : NULL;
        need = NEED_QA;
    } else if (keys && n == 3) {
        allow = "GET /v1/sites/{code}/api-keys lists them, POST makes one";
        fn = get ? keys_list : post ? key_create : NULL;
        need = NEED_ADMIN;
    } else if (keys && n == 4) {
        allow = "DELETE /v1/sites/{code}/api-keys/{id} revokes a key";
        fn = del ? key_revoke : NULL;
        need = NEED_ADMIN;
    } else {
        job_reply_error(j, 404, "no such resource");
        return SW_OK;
    }
    if (fn == NULL) {
        snprintf(msg, sizeof(msg), "method not allowed: %s", allow);
        job_reply_error(j, 405, msg);
        return SW_OK;
    }
    if (!allowed(x.who, need)) {
        job_reply_error(j, 403, forbidden(need));
        return SW_OK;
    }
    if (n >= 2 && strcmp(x.seg[1], x.who->site) != 0) /* see the file's comment */
        return not_found(&x, "site", site_code_ok(x.seg[1]) ? x.seg[1] : NULL);
    return fn(&x);
}
