/*
 * handle_list.c - GET /v1/cases (the reception log, 《接待业主情况记录》:
 * filters and keyset pagination) and GET /v1/cases/{id}/history (who
 * handed a case to whom and when, 签名签时, its notes and its events).
 *
 * Both see what case_get sees: the caller's site only, and for an external
 * system's key (role system or device) only the cases it submitted.  The
 * customer's phone is masked for roles that do not need it.
 *
 * The listing is ONE parameterised query.  Newest first by (created_at,
 * id), walked with an opaque cursor of the last row's created_at
 * (microseconds) and id, so that a page never repeats or skips a case
 * registered meanwhile, and each page costs an index range, not an
 * OFFSET.  The codes a filter names (department, owner, first responder)
 * are resolved in the same query, which also tells whether each one
 * exists: an unknown code is an invalid field, not an empty list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "intake.h"
#include "shouwen/v1/envelope.pb-c.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX     200
#define LIST_TEXT_MAX      200 /* characters of a text search */
#define LIST_CURSOR_LEN    48  /* hex: 16 for the microseconds, 32 for the id */
#define LIST_ITEM_MAX      ((size_t)64 * 1024)

static const char *const statuses[] = {
    "registered", "assigned", "transferred",         "accepted",    "in_progress", "waiting",
    "resolved",   "closed",   "closed_unresolvable", "referred_out"};
static const char *const types[] = {"consultation", "complaint", "help",   "suggestion",
                                    "repair",       "business",  "report", "emergency"};
static const char *const urgencies[] = {"normal", "urgent", "emergency"};
static const char *const levels[] = {"none", "supervisor", "manager", "leader"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The query parameters of GET /v1/cases. */
enum lp {
    LP_STATUS,
    LP_DEPARTMENT,
    LP_OWNER,
    LP_FIRST_RESPONDER,
    LP_TYPE,
    LP_URGENCY,
    LP_ESCALATION,
    LP_OVERDUE,
    LP_TEXT,
    LP_LIMIT,
    LP_AFTER,
    LP_N
};
static const char *const lp_names[LP_N] = {
    "status",           "department", "owner", "first_responder", "type", "urgency",
    "escalation_level", "overdue",    "text",  "limit",           "after"};

/* Does this credential see only the cases it submitted (an external system's key)? */
static bool own_cases_only(const struct principal *p)
{
    return p->kind == 'k' && strcmp(p->role, "admin") != 0 && strcmp(p->role, "reader") != 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode s[0..n) of a query string in place (%XX, and '+' for a space) and
 * NUL-terminate it.  False for a malformed escape or an encoded NUL, which
 * no parameter may hold.
 */
static bool pct_decode(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return false;
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            if (c == '\0')
                return false;
            i += 2;
        }
        s[o++] = c;
    }
    s[o] = '\0';
    return true;
}

/*
 * Is s valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF)?  Sets *chars (may be NULL) to its length in characters.
 */
static bool utf8_valid(const char *str, size_t *chars)
{
    const unsigned char *s = (const unsigned char *)(str != NULL ? str : "");
    size_t n = 0;
    while (*s) {
        unsigned c = *s;
        int more;
        unsigned cp, min;
        if (c < 0x80) {
            s++;
            n++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        s++;
        for (int k = 0; k < more; k++, s++) {
            if ((*s & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*s & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        n++;
    }
    if (chars != NULL)
        *chars = n;
    return true;
}

/*
 * How many bytes of s to quote in a message: at most `max`, never cutting
 * a UTF-8 sequence (the answer must stay valid JSON).
 */
static int utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return (int)len;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return (int)max;
}

/* Has s the form of a staff or department code (^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$)? */
static bool code_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

static void field_add(struct field_error *fe, int *n, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void field_add(struct field_error *fe, int *n, const char *field, const char *fmt, ...)
{
    if (*n >= INTAKE_MAX_FIELDS)
        return;
    va_list ap;
    va_start(ap, fmt);
    snprintf(fe[*n].field, sizeof(fe[*n].field), "%s", field);
    vsnprintf(fe[*n].message, sizeof(fe[*n].message), fmt, ap);
    va_end(ap);
    (*n)++;
}

/*
 * A comma-separated list of names out of `allowed`, as a PostgreSQL array
 * literal in `out` (the names are ours, so no quoting is needed).  Adds a
 * field error naming the first unknown one.
 */
static void name_list(const char *value, const char *const *allowed, size_t nallowed,
                      const char *field, char *out, size_t outlen, struct field_error *fe, int *nfe)
{
    size_t o = 0;
    const char *p = value;
    unsigned seen = 0; /* a name given twice goes in once: the literal fits `out` */
    out[o++] = '{';
    for (;;) {
        size_t len = strcspn(p, ",");
        size_t k = 0;
        while (k < nallowed && !(strlen(allowed[k]) == len && memcmp(allowed[k], p, len) == 0))
            k++;
        if (k == nallowed) {
            /* the whole list of names fits in a message (160 bytes) with a shortened value */
            char list[140] = "";
            for (size_t i = 0; i < nallowed; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "",
                         allowed[i]);
            int room = (int)sizeof(fe->message) - (int)strlen(list) - 24;
            field_add(fe, nfe, field, "unknown \"%.*s\", expected %s",
                      utf8_cut(p, len, room > 0 ? (size_t)room : 0), p, list);
            return;
        }
        if (!(seen & (1u << k)) && o + len + 2 < outlen) {
            if (o > 1)
                out[o++] = ',';
            memcpy(out + o, p, len);
            o += len;
            seen |= 1u << k;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    out[o++] = '}';
    out[o] = '\0';
}

#define US_MAX INT64_C(253402300799999999) /* 9999-12-31T23:59:59.999999Z */

/*
 * Unix microseconds from 1970 to 9999 as RFC 3339 UTC with microseconds
 * ("2026-11-22T08:00:00.000001Z").  False, writing nothing, out of range.
 */
static bool format_us(int64_t us, char *out, size_t outlen)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    if (us < 0 || us > US_MAX || gmtime_r(&t, &tm) == NULL)
        return false;
    int frac = (int)(us % 1000000);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return true;
}

/*
 * The cursor: the last row's created_at in unix microseconds (16 hex
 * digits) and its id (32 hex digits).  parse_cursor gives them back as the
 * query's parameters: a timestamptz and a UUID.
 */
static bool parse_cursor(const char *c, char *ts, size_t tslen, char *id, size_t idlen)
{
    uint64_t us = 0;
    if (strlen(c) != LIST_CURSOR_LEN || idlen < 37)
        return false;
    for (int i = 0; i < LIST_CURSOR_LEN; i++)
        if (hexval(c[i]) < 0)
            return false;
    for (int i = 0; i < 16; i++)
        us = us * 16 + (uint64_t)hexval(c[i]);
    if (us > (uint64_t)US_MAX || !format_us((int64_t)us, ts, tslen))
        return false;
    size_t o = 0;
    for (int i = 16; i < LIST_CURSOR_LEN; i++) {
        if (o == 8 || o == 13 || o == 18 || o == 23)
            id[o++] = '-';
        id[o++] = (char)(c[i] >= 'A' && c[i] <= 'F' ? c[i] - 'A' + 'a' : c[i]);
    }
    id[o] = '\0';
    return true;
}

static void make_cursor(const char *us, const char *id, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "%016" PRIx64, (uint64_t)strtoll(us, NULL, 10));
    for (const char *p = id; *p && o + 1 < outlen; p++)
        if (*p != '-')
            out[o++] = *p;
    out[o] = '\0';
}

/* A JSON string of column `col`, or null. */
static sw_err put_col(struct buf *b, const char *key, const PGresult *r, int row, int col)
{
    sw_err rv = buf_printf(b, ",\"%s\":", key);
    if (rv == SW_OK)
        rv = PQgetisnull(r, row, col) ? buf_puts(b, "null")
                                      : buf_json_string(b, PQgetvalue(r, row, col));
    return rv;
}

/* A JSON string, or null when empty (a proto3 string that was not set). */
static sw_err put_str(struct buf *b, const char *key, const char *s)
{
    sw_err rv = buf_printf(b, ",\"%s\":", key);
    if (rv == SW_OK)
        rv = s == NULL || s[0] == '\0' ? buf_puts(b, "null") : buf_json_string(b, s);
    return rv;
}

/* The query parameters, decoded: NULL when absent. */
struct list_args {
    char raw[sizeof(((struct job *)0)->query)];
    const char *v[LP_N];
};

/*
 * Split and decode the query string.  Returns NULL, or why it is refused
 * (400): a malformed %-escape, a value that is not UTF-8, an unknown or
 * repeated parameter.
 */
static const char *list_args_parse(struct list_args *a, const char *query, char *msg, size_t msglen)
{
    snprintf(a->raw, sizeof(a->raw), "%s", query);
    memset(a->v, 0, sizeof(a->v));
    char *p = a->raw;
    while (*p != '\0') {
        size_t n = strcspn(p, "&");
        char *next = p + n + (p[n] == '&');
        if (n == 0) {
            p = next;
            continue;
        }
        size_t kn = strcspn(p, "=");
        char *key = p, *val;
        bool ok;
        if (kn < n) { /* "key=value": both decoded in place, each NUL-terminated */
            val = p + kn + 1;
            ok = pct_decode(key, kn) && pct_decode(val, n - kn - 1);
        } else { /* "key" alone: an empty value */
            ok = pct_decode(key, n);
            val = key + strlen(key);
        }
        if (!ok)
            return "malformed query string: a %-escape must be % and two hex digits (not %00)";
        if (!utf8_valid(key, NULL) || !utf8_valid(val, NULL)) {
            snprintf(msg, msglen, "malformed query string: not UTF-8");
            return msg;
        }
        int k = 0;
        while (k < LP_N && strcmp(lp_names[k], key) != 0)
            k++;
        if (k == LP_N) {
            snprintf(msg, msglen,
                     "unknown query parameter \"%.*s\": expected status, department, owner, "
                     "first_responder, type, urgency, escalation_level, overdue, text, limit or "
                     "after",
                     utf8_cut(key, strlen(key), 60), key);
            return msg;
        }
        if (a->v[k] != NULL) {
            snprintf(msg, msglen,
                     "query parameter \"%s\" given twice: give it once (status, type, "
                     "urgency and escalation_level take a comma-separated list)",
                     key);
            return msg;
        }
        a->v[k] = val;
        p = next;
    }
    return NULL;
}

struct params {
    const char *v[16];
    int n;
};

/* Add a parameter; returns its number ($n). */
static int param(struct params *p, const char *v)
{
    p->v[p->n++] = v;
    return p->n;
}

/*
 * Deadlines that passed while the clock ran, from the escalation service's
 * clocks (escalation.deadlines, the truth): a clock not met whose time has
 * come (running) or that was breached (also before the case began to wait:
 * a waiting case's clocks are paused, their due time null); once resolved
 * only the callback is still due; closed, unresolvable and referred-out
 * cases never.
 */
#define OVERDUE_SQL                                                                                \
    "(c.status NOT IN ('closed', 'closed_unresolvable', 'referred_out') AND EXISTS (SELECT 1 "     \
    "FROM escalation.deadlines dl WHERE dl.case_id = c.id AND dl.met_at IS NULL AND "              \
    "(dl.breached_at IS NOT NULL OR dl.due_at < now()) AND (c.status <> 'resolved' OR dl.kind = "  \
    "'callback')))"

/* A case's clock of `kind` not yet met: its due time as RFC 3339 UTC (null when paused). */
#define DUE_SQL(kind)                                                                              \
    "(SELECT to_char(dl.due_at AT TIME ZONE 'UTC', " UTC_FORMAT ") FROM escalation.deadlines dl "  \
    "WHERE dl.case_id = c.id AND dl.kind = '" kind "' AND dl.met_at IS NULL)"

/* to_char's format for RFC 3339 UTC with microseconds, as case_get answers */
#define UTC_FORMAT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* The columns of a listed case, after the three "code exists" flags. */
enum {
    LC_ID = 3,
    LC_NUMBER,
    LC_STATUS,
    LC_TYPE,
    LC_CHANNEL,
    LC_URGENCY,
    LC_SUBJECT,
    LC_DEPARTMENT,
    LC_OWNER,
    LC_FIRST_RESPONDER,
    LC_ESCALATION,
    LC_VERSION,
    LC_CREATED,
    LC_US,
    LC_HANDOFF_DUE,
    LC_FIRST_CONTACT_DUE,
    LC_ANSWER_DUE,
    LC_RESOLVE_DUE,
    LC_CALLBACK_DUE,
    LC_NAME,
    LC_PHONE
};

/* One listed case as a JSON object. */
static sw_err list_item(struct buf *b, const PGresult *r, int row, bool phone_ok)
{
    static const struct {
        const char *key;
        int col;
    } cols[] = {{"number", LC_NUMBER},
                {"status", LC_STATUS},
                {"type", LC_TYPE},
                {"channel", LC_CHANNEL},
                {"urgency", LC_URGENCY},
                {"subject", LC_SUBJECT},
                {"department", LC_DEPARTMENT},
                {"owner", LC_OWNER},
                {"first_responder", LC_FIRST_RESPONDER},
                {"escalation_level", LC_ESCALATION}};
    sw_err rv = buf_puts(b, "{\"id\":");
    if (rv == SW_OK)
        rv = buf_json_string(b, PQgetvalue(r, row, LC_ID));
    for (size_t i = 0; rv == SW_OK && i < NELEM(cols); i++)
        rv = put_col(b, cols[i].key, r, row, cols[i].col);
    if (rv == SW_OK)
        rv = buf_printf(b, ",\"version\":%s", PQgetvalue(r, row, LC_VERSION));
    if (rv == SW_OK)
        rv = put_col(b, "created_at", r, row, LC_CREATED);
    if (rv == SW_OK)
        rv = put_col(b, "handoff_due", r, row, LC_HANDOFF_DUE);
    if (rv == SW_OK)
        rv = put_col(b, "first_contact_due", r, row, LC_FIRST_CONTACT_DUE);
    if (rv == SW_OK)
        rv = put_col(b, "answer_due", r, row, LC_ANSWER_DUE);
    if (rv == SW_OK)
        rv = put_col(b, "resolve_due", r, row, LC_RESOLVE_DUE);
    if (rv == SW_OK)
        rv = put_col(b, "callback_due", r, row, LC_CALLBACK_DUE);
    if (rv == SW_OK)
        rv = buf_puts(b, ",\"customer\":{\"name\":");
    if (rv == SW_OK)
        rv = PQgetisnull(r, row, LC_NAME) ? buf_puts(b, "null")
                                          : buf_json_string(b, PQgetvalue(r, row, LC_NAME));
    if (rv == SW_OK && !PQgetisnull(r, row, LC_PHONE) && !phone_ok) {
        char masked[40];
        mask_phone(PQgetvalue(r, row, LC_PHONE), masked, sizeof(masked));
        rv = put_str(b, "phone", masked);
    } else if (rv == SW_OK) {
        rv = put_col(b, "phone", r, row, LC_PHONE);
    }
    if (rv == SW_OK)
        rv = buf_puts(b, "}}");
    return rv;
}

/*
 * Check the arguments: 400 for the form of the query string and of the
 * cursor, 422 naming every invalid value.  Then build the one query.
 */
sw_err case_list(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen)
{
    (void)in, (void)ob;
    struct list_args a;
    struct field_error fe[INTAKE_MAX_FIELDS];
    int nfe = 0;
    char msg[300];
    char st[200], ty[120], ur[60], el[60], lim[16], after_ts[80], after_id[40],
        text[LIST_TEXT_MAX * 4 + 1];
    int limit = LIST_LIMIT_DEFAULT, overdue = -1;
    sw_err rv = SW_OK;
    PGresult *r = NULL;
    struct buf sql, out, item;
    buf_init(&sql, 1u << 14);
    buf_init(&out, INTAKE_REPLY_MAX - 64);
    buf_init(&item, LIST_ITEM_MAX);

    const char *why = list_args_parse(&a, j->query, msg, sizeof(msg));
    if (why != NULL) {
        job_reply_error(j, 400, why);
        goto out;
    }
    if (a.v[LP_AFTER] != NULL &&
        !parse_cursor(a.v[LP_AFTER], after_ts, sizeof(after_ts), after_id, sizeof(after_id))) {
        job_reply_error(j, 400, "malformed cursor in after: pass the \"next\" of the last page");
        goto out;
    }
    if (a.v[LP_STATUS] != NULL)
        name_list(a.v[LP_STATUS], statuses, NELEM(statuses), "status", st, sizeof(st), fe, &nfe);
    if (a.v[LP_TYPE] != NULL)
        name_list(a.v[LP_TYPE], types, NELEM(types), "type", ty, sizeof(ty), fe, &nfe);
    if (a.v[LP_URGENCY] != NULL)
        name_list(a.v[LP_URGENCY], urgencies, NELEM(urgencies), "urgency", ur, sizeof(ur), fe,
                  &nfe);
    if (a.v[LP_ESCALATION] != NULL)
        name_list(a.v[LP_ESCALATION], levels, NELEM(levels), "escalation_level", el, sizeof(el), fe,
                  &nfe);
    if (a.v[LP_DEPARTMENT] != NULL && !code_ok(a.v[LP_DEPARTMENT]))
        field_add(fe, &nfe, "department", "not a department code: %.*s",
                  utf8_cut(a.v[LP_DEPARTMENT], strlen(a.v[LP_DEPARTMENT]), 40), a.v[LP_DEPARTMENT]);
    for (int k = LP_OWNER; k <= LP_FIRST_RESPONDER; k++) {
        const char *v = a.v[k];
        if (v == NULL)
            continue;
        if (strcmp(v, "me") == 0 && j->who.kind != 't')
            field_add(fe, &nfe, lp_names[k], "\"me\" needs a staff member's token, not an API key");
        else if (strcmp(v, "me") != 0 && !code_ok(v))
            field_add(fe, &nfe, lp_names[k], "not a staff code: %.*s", utf8_cut(v, strlen(v), 40),
                      v);
    }
    if (a.v[LP_OVERDUE] != NULL) {
        if (strcmp(a.v[LP_OVERDUE], "true") == 0)
            overdue = 1;
        else if (strcmp(a.v[LP_OVERDUE], "false") == 0)
            overdue = 0;
        else
            field_add(fe, &nfe, "overdue", "expected true or false");
    }
    if (a.v[LP_TEXT] != NULL) {
        size_t chars = 0;
        utf8_valid(a.v[LP_TEXT], &chars);
        if (chars > LIST_TEXT_MAX)
            field_add(fe, &nfe, "text", "at most %d characters", LIST_TEXT_MAX);
        else
            snprintf(text, sizeof(text), "%s", a.v[LP_TEXT]);
    }
    if (a.v[LP_LIMIT] != NULL) {
        const char *v = a.v[LP_LIMIT];
        size_t n = strlen(v);
        limit = n >= 1 && n <= 3 && strspn(v, "0123456789") == n ? atoi(v) : 0;
        if (limit < 1 || limit > LIST_LIMIT_MAX)
            field_add(fe, &nfe, "limit", "expected an integer from 1 to %d", LIST_LIMIT_MAX);
    }
    if (nfe > 0) {
        job_reply_fields(j, fe, nfe);
        goto out;
    }

    /*
     * p: the codes the filters name, resolved (NULL: no such code).
     * x: the page, one more row than asked to know whether there is a next.
     */
    struct params ps = {.n = 0};
    param(&ps, j->who.site_id);
    buf_puts(&sql, "SELECT p.d IS NOT NULL, p.o IS NOT NULL, p.f IS NOT NULL, x.id::text, "
                   "x.number, x.status, x.type, x.channel, x.urgency, x.subject, x.dcode, "
                   "x.ocode, x.fcode, x.escalation_level, x.version, x.created, x.us, x.hd, "
                   "x.fd, x.ad, x.rd, x.cd, x.customer_name, x.customer_phone FROM (SELECT ");
    if (a.v[LP_DEPARTMENT] != NULL)
        buf_printf(&sql,
                   "(SELECT id FROM core.departments WHERE site_id = $1::uuid AND code = $%d) "
                   "AS d, ",
                   param(&ps, a.v[LP_DEPARTMENT]));
    else
        buf_puts(&sql, "NULL::uuid AS d, ");
    for (int k = LP_OWNER; k <= LP_FIRST_RESPONDER; k++) {
        const char *v = a.v[k], *as = k == LP_OWNER ? "o" : "f";
        if (v == NULL)
            buf_printf(&sql, "NULL::uuid AS %s", as);
        else if (strcmp(v, "me") == 0)
            buf_printf(&sql, "$%d::uuid AS %s", param(&ps, j->who.id), as);
        else
            buf_printf(&sql,
                       "(SELECT id FROM core.staff WHERE site_id = $1::uuid AND code = $%d) AS %s",
                       param(&ps, v), as);
        buf_puts(&sql, k == LP_OWNER ? ", " : ") p ");
    }
    // clang-format off
    buf_puts(&sql, "LEFT JOIN LATERAL (SELECT c.id, c.number, c.status, c.type, c.channel, "
                   "c.urgency, c.subject, d.code AS dcode, o.code AS ocode, fr.code AS fcode, "
                   "c.escalation_level, c.version, c.created_at, "
                   "to_char(c.created_at AT TIME ZONE 'UTC', " UTC_FORMAT ") AS created, "
                   "(extract(epoch FROM c.created_at) * 1000000)::bigint AS us, "
                   DUE_SQL("handoff") " AS hd, "
                   DUE_SQL("first_contact") " AS fd, "
                   DUE_SQL("answer") " AS ad, "
                   DUE_SQL("resolve") " AS rd, "
                   DUE_SQL("callback") " AS cd, "
                   "c.customer_name, c.customer_phone FROM core.cases c "
                   "LEFT JOIN core.departments d ON d.id = c.department_id "
                   "LEFT JOIN core.staff o ON o.id = c.owner_id "
                   "LEFT JOIN core.staff fr ON fr.id = c.first_responder_id "
                   "WHERE c.site_id = $1::uuid");
    // clang-format on
    if (own_cases_only(&j->who))
        buf_printf(&sql, " AND c.source = $%d", param(&ps, j->who.name));
    if (a.v[LP_STATUS] != NULL)
        buf_printf(&sql, " AND c.status = ANY($%d::text[])", param(&ps, st));
    if (a.v[LP_DEPARTMENT] != NULL)
        buf_puts(&sql, " AND c.department_id = p.d");
    if (a.v[LP_OWNER] != NULL)
        buf_puts(&sql, " AND c.owner_id = p.o");
    if (a.v[LP_FIRST_RESPONDER] != NULL)
        buf_puts(&sql, " AND c.first_responder_id = p.f");
    if (a.v[LP_TYPE] != NULL)
        buf_printf(&sql, " AND c.type = ANY($%d::text[])", param(&ps, ty));
    if (a.v[LP_URGENCY] != NULL)
        buf_printf(&sql, " AND c.urgency = ANY($%d::text[])", param(&ps, ur));
    if (a.v[LP_ESCALATION] != NULL)
        buf_printf(&sql, " AND c.escalation_level = ANY($%d::text[])", param(&ps, el));
    if (overdue == 1)
        buf_puts(&sql, " AND " OVERDUE_SQL);
    else if (overdue == 0)
        buf_puts(&sql, " AND NOT coalesce(" OVERDUE_SQL ", false)");
    if (a.v[LP_TEXT] != NULL && text[0] != '\0') {
        int t = param(&ps, text);
        buf_printf(&sql,
                   " AND (strpos(lower(c.number), lower($%d)) > 0 "
                   "OR strpos(lower(c.subject), lower($%d)) > 0 "
                   "OR strpos(lower(c.description), lower($%d)) > 0 "
                   "OR strpos(lower(c.customer_name), lower($%d)) > 0 "
                   "OR strpos(lower(c.customer_unit), lower($%d)) > 0 "
                   "OR strpos(lower(c.customer_address), lower($%d)) > 0)",
                   t, t, t, t, t, t);
    }
    if (a.v[LP_AFTER] != NULL) {
        int t = param(&ps, after_ts);
        buf_printf(&sql, " AND (c.created_at, c.id) < ($%d::timestamptz, $%d::uuid)", t,
                   param(&ps, after_id));
    }
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    buf_printf(&sql,
               " ORDER BY c.created_at DESC, c.id DESC LIMIT $%d) x ON true "
               "ORDER BY x.created_at DESC, x.id DESC",
               param(&ps, lim));

    r = PQexecParams(db, buf_cstr(&sql), ps.n, NULL, ps.v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not list cases", err, errlen);
        goto out;
    }
    if (PQntuples(r) < 1) { /* p always gives one row */
        snprintf(err, errlen, "could not list cases: no row");
        rv = SW_EDB;
        goto out;
    }
    static const char *const what[] = {"department", "staff member", "staff member"};
    for (int k = LP_DEPARTMENT; k <= LP_FIRST_RESPONDER; k++)
        if (a.v[k] != NULL && strcmp(PQgetvalue(r, 0, k - LP_DEPARTMENT), "t") != 0)
            field_add(fe, &nfe, lp_names[k], "no %s \"%s\" in site %s", what[k - LP_DEPARTMENT],
                      a.v[k], j->who.site);
    if (nfe > 0) {
        job_reply_fields(j, fe, nfe);
        goto out;
    }

    int rows = PQgetisnull(r, 0, LC_ID) ? 0 : PQntuples(r), shown = 0;
    bool phone_ok = phone_visible_to(&j->who);
    char next[LIST_CURSOR_LEN + 1] = "";
    buf_puts(&out, "{\"cases\":[");
    for (int i = 0; i < rows && i < limit; i++) {
        buf_reset(&item);
        if (i > 0)
            buf_puts(&item, ",");
        /* a page that would pass the answer's ceiling ends early, its cursor still right */
        if (list_item(&item, r, i, phone_ok) != SW_OK || out.len + item.len + 100 > out.max ||
            buf_puts(&out, buf_cstr(&item)) != SW_OK)
            break;
        shown++;
    }
    if (shown == 0 && rows > 0) {
        job_reply_error(j, 500, "answer too large");
        goto out;
    }
    if (shown < rows)
        make_cursor(PQgetvalue(r, shown - 1, LC_US), PQgetvalue(r, shown - 1, LC_ID), next,
                    sizeof(next));
    buf_puts(&out, "],\"next\":");
    buf_puts(&out, next[0] != '\0' ? "\"" : "null");
    if (next[0] != '\0')
        buf_printf(&out, "%s\"", next);
    if (buf_puts(&out, "}") != SW_OK) {
        job_reply_error(j, 500, "answer too large");
        goto out;
    }
    job_reply_json(j, 200, buf_cstr(&out));
out:
    PQclear(r);
    buf_free(&sql);
    buf_free(&out);
    buf_free(&item);
    return rv;
}

/* ---------------------------------------------------------------- history */

/*
 * ,"<name>":[{"kind":<column 0>, keys[0]:<column 1>, ...}, ...] for every
 * row of `r` (column 0 is the row's kind).
 */
static sw_err put_rows(struct buf *b, const char *name, const PGresult *r, const char *const *keys,
                       size_t nkeys)
{
    sw_err rv = buf_printf(b, ",\"%s\":[", name);
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        rv = buf_puts(b, i ? ",{\"kind\":" : "{\"kind\":");
        if (rv == SW_OK)
            rv = buf_json_string(b, PQgetvalue(r, i, 0));
        for (int c = 1; rv == SW_OK && c <= (int)nkeys; c++)
            rv = put_col(b, keys[c - 1], r, i, c);
        if (rv == SW_OK)
            rv = buf_puts(b, "}");
    }
    if (rv == SW_OK)
        rv = buf_puts(b, "]");
    return rv;
}

static sw_err history_handoffs(PGconn *db, struct job *j, struct buf *b, char *err, size_t errlen)
{
    const char *v[] = {j->case_id, j->who.site_id};
    PGresult *r = PQexecParams(
        db,
        "SELECT h.kind, fs.code, fd.code, ts.code, td.code, bs.code, h.by_system, ob.code, "
        "to_char(h.at AT TIME ZONE 'UTC', " UTC_FORMAT "), h.reason, h.event_id::text "
        "FROM core.handoffs h "
        "LEFT JOIN core.staff fs ON fs.id = h.from_staff_id "
        "LEFT JOIN core.departments fd ON fd.id = h.from_department_id "
        "LEFT JOIN core.staff ts ON ts.id = h.to_staff_id "
        "LEFT JOIN core.departments td ON td.id = h.to_department_id "
        "LEFT JOIN core.staff bs ON bs.id = h.by_staff_id "
        "LEFT JOIN core.staff ob ON ob.id = h.on_behalf_of_id "
        "WHERE h.case_id = $1::uuid AND h.site_id = $2::uuid ORDER BY h.at, h.id",
        2, NULL, v, NULL, NULL, 0);
    static const char *const keys[] = {
        "from_staff", "from_department", "to_staff", "to_department", "by",
        "by_system",  "on_behalf_of",    "at",       "reason",        "event_id"};
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not read the handoffs", err, errlen);
        PQclear(r);
        return rv;
    }
    rv = put_rows(b, "handoffs", r, keys, NELEM(keys));
    PQclear(r);
    return rv;
}

static sw_err history_notes(PGconn *db, struct job *j, struct buf *b, char *err, size_t errlen)
{
    const char *v[] = {j->case_id, j->who.site_id};
    PGresult *r = PQexecParams(
        db,
        "SELECT n.kind, s.code, to_char(n.at AT TIME ZONE 'UTC', " UTC_FORMAT "), n.text, "
        "to_char(n.expected_date, 'YYYY-MM-DD'), n.satisfaction, n.event_id::text "
        "FROM core.case_notes n LEFT JOIN core.staff s ON s.id = n.by_staff_id "
        "WHERE n.case_id = $1::uuid AND n.site_id = $2::uuid ORDER BY n.at, n.id",
        2, NULL, v, NULL, NULL, 0);
    static const char *const keys[] = {"by",           "at",      "text", "expected_date",
                                       "satisfaction", "event_id"};
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not read the notes", err, errlen);
        PQclear(r);
        return rv;
    }
    rv = put_rows(b, "notes", r, keys, NELEM(keys));
    PQclear(r);
    return rv;
}

/* Are the Envelope's strings that we show UTF-8 (protobuf-c does not check)? */
static bool envelope_text_ok(const Shouwen__V1__Envelope *e)
{
    const Shouwen__V1__Actor *a = e->actor;
    return utf8_valid(e->type, NULL) &&
           (a == NULL || (utf8_valid(a->staff_code, NULL) && utf8_valid(a->on_behalf_of, NULL) &&
                          utf8_valid(a->external_system, NULL)));
}

/* One event row: the outbox's columns, then what its Envelope says. */
static sw_err history_event(struct buf *b, const PGresult *r, int i)
{
    sw_err rv = buf_puts(b, i ? ",{\"event_id\":" : "{\"event_id\":");
    if (rv == SW_OK)
        rv = buf_json_string(b, PQgetvalue(r, i, 0));
    if (rv == SW_OK)
        rv = put_col(b, "type", r, i, 1);
    if (rv == SW_OK)
        rv = buf_printf(b, ",\"seq\":%s", PQgetvalue(r, i, 2));
    if (rv == SW_OK)
        rv = put_col(b, "created_at", r, i, 3);
    size_t len = (size_t)PQgetlength(r, i, 4);
    Shouwen__V1__Envelope *e =
        len <= BUS_MSG_MAX /* no event on the bus is larger */
            ? shouwen__v1__envelope__unpack(NULL, len, (const uint8_t *)PQgetvalue(r, i, 4))
            : NULL;
    if (rv == SW_OK && (e == NULL || !envelope_text_ok(e))) {
        rv = buf_puts(b, ",\"error\":\"undecodable payload\"}");
    } else if (rv == SW_OK) {
        const Shouwen__V1__Actor *a = e->actor;
        char t[80];
        const char *sys = NULL;
        if (a != NULL)
            sys = a->external_system[0] != '\0'               ? a->external_system
                  : a->role == SHOUWEN__V1__ROLE__ROLE_SYSTEM ? "system"
                                                              : NULL;
        rv = put_str(b, "by", a != NULL ? a->staff_code : NULL);
        if (rv == SW_OK)
            rv = put_str(b, "by_system", sys);
        if (rv == SW_OK)
            rv = put_str(b, "on_behalf_of", a != NULL ? a->on_behalf_of : NULL);
        if (rv == SW_OK)
            rv = put_str(b, "time", e->time != 0 && format_us(e->time, t, sizeof(t)) ? t : NULL);
        if (rv == SW_OK)
            rv = buf_printf(b, ",\"case_version\":%" PRId64 "}", e->case_version);
    }
    if (e != NULL)
        shouwen__v1__envelope__free_unpacked(e, NULL);
    return rv;
}

/*
 * The case's events.  bus.events has no index on case_id (every index
 * slows the outbox): the events of a case are all in its partition,
 * FNV-1a of the case id mod P, which the (partition, txid, seq) index
 * finds.  Events written before an operator changed P sit in another
 * partition and are not shown.
 */
static sw_err history_events(PGconn *db, const char *case_id, uint32_t partitions, struct buf *b,
                             char *err, size_t errlen)
{
    char part[16] = "-1"; /* no bus.settings row (never so after 0002): look everywhere */
    if (partitions > 0)
        snprintf(part, sizeof(part), "%" PRIu32, bus_partition_of(case_id, NULL, partitions));
    const char *v[] = {case_id, part};
    /* binary results: the payload as bytes; the other columns are text, the same in both */
    PGresult *r = PQexecParams(db,
                               "SELECT event_id::text, type, seq::text, "
                               "to_char(created_at AT TIME ZONE 'UTC', " UTC_FORMAT
                               "), payload FROM bus.events "
                               "WHERE ($2::int < 0 OR partition = $2::int) AND case_id = $1::uuid "
                               "ORDER BY created_at, seq",
                               2, NULL, v, NULL, NULL, 1);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not read the events", err, errlen);
        PQclear(r);
        return rv;
    }
    rv = buf_puts(b, ",\"events\":[");
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++)
        rv = history_event(b, r, i);
    if (rv == SW_OK)
        rv = buf_puts(b, "]");
    PQclear(r);
    return rv;
}

sw_err case_history(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                    size_t errlen)
{
    (void)in, (void)ob;
    const char *v[] = {j->case_id, j->who.site_id};
    struct buf b;
    sw_err rv = SW_OK;
    buf_init(&b, INTAKE_REPLY_MAX - 64);
    PGresult *r = PQexecParams(db,
                               "SELECT c.id::text, c.number, c.version::text, c.source, "
                               "(SELECT partitions FROM bus.settings)::text "
                               "FROM core.cases c WHERE c.id = $1::uuid AND c.site_id = $2::uuid",
                               2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not read the case", err, errlen);
        goto out;
    }
    if (PQntuples(r) != 1 ||
        (own_cases_only(&j->who) && strcmp(PQgetvalue(r, 0, 3), j->who.name) != 0)) {
        char msg[100];
        snprintf(msg, sizeof(msg), "no such case: %s", j->case_id);
        job_reply_error(j, 404, msg);
        goto out;
    }
    rv = buf_puts(&b, "{\"case\":{\"id\":");
    if (rv == SW_OK)
        rv = buf_json_string(&b, PQgetvalue(r, 0, 0));
    if (rv == SW_OK)
        rv = put_col(&b, "number", r, 0, 1);
    if (rv == SW_OK)
        rv = buf_printf(&b, ",\"version\":%s}", PQgetvalue(r, 0, 2));
    if (rv == SW_OK)
        rv = history_handoffs(db, j, &b, err, errlen);
    if (rv == SW_OK)
        rv = history_notes(db, j, &b, err, errlen);
    if (rv == SW_OK)
        rv = history_events(db, PQgetvalue(r, 0, 0), (uint32_t)atoi(PQgetvalue(r, 0, 4)), &b, err,
                            errlen);
    if (rv == SW_OK)
        rv = buf_puts(&b, "}");
    if (rv == SW_ETOOBIG) { /* no paging here: a history that large is refused whole */
        rv = SW_OK;
        job_reply_error(j, 500, "answer too large: the history passes the size of one answer");
    } else if (rv == SW_ENOMEM) {
        snprintf(err, errlen, "out of memory answering the history of %s", j->case_id);
    } else if (rv == SW_OK) {
        job_reply_json(j, 200, buf_cstr(&b));
    }
out:
    PQclear(r);
    buf_free(&b);
    return rv;
}
