/*
 * handle_reports.c - the audit chain's verification and checkpoints, and the
 * QA reports, under /v1/sites/{code}/ (through admin_run):
 *
 *   POST /audit/verify              recompute the site's chain (auditlog.c), record
 *                                   the verdict, publish audit.verified
 *   GET  /audit/checkpoints         the signed chain heads, to publish or archive
 *   GET  /reports/qa                the QA report of a period (from, to | month),
 *                                   for the site, a department or a first responder
 *   GET  /reports/reception-log     the day's reception log (《接待业主情况记录》)
 *   GET  /reports/weekly-review     the manager's Monday review of a week
 *
 * Reports read the audit service's roll-ups (audit.case_facts,
 * audit.violations), never the event log.  format=csv answers text/csv.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "calendar.h"
#include "crypto.h"
#include "intake.h"

#define PERIOD_DAYS_MAX 366

/* "YYYY-MM-DD" of a day number (calendar.h's days since 1970-01-01). */
static void day_string(int32_t days, char out[11])
{
    int y, m, d;
    cal_civil_from_days(days, &y, &m, &d);
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", y, m, d);
    memcpy(out, tmp, 10);
    out[10] = '\0';
}

/* ---- CSV ------------------------------------------------------------------------------------ */

static sw_err csv_cell(struct buf *b, const json_t *v)
{
    char num[64];
    const char *s;
    bool text = json_is_string(v);
    if (text)
        s = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), s = num;
    else if (json_is_real(v))
        snprintf(num, sizeof(num), "%.4f", json_real_value(v)), s = num;
    else if (json_is_true(v))
        s = "true";
    else if (json_is_false(v))
        s = "false";
    else
        s = "";
    /* a cell a spreadsheet would run as a formula is kept as text */
    bool formula = text && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@');
    if (!formula && strpbrk(s, ",\"\r\n") == NULL)
        return buf_puts(b, s);
    sw_err rv = buf_puts(b, formula ? "\"'" : "\"");
    for (const char *p = s; rv == SW_OK && *p != '\0'; p++)
        rv = *p == '"' ? buf_puts(b, "\"\"") : buf_append(b, p, 1);
    return rv == SW_OK ? buf_puts(b, "\"") : rv;
}

/* An array of flat objects as a table: the header from the first object's keys. */
static sw_err csv_table(struct buf *b, const json_t *rows)
{
    const json_t *first = json_array_get(rows, 0);
    const char *key;
    json_t *v;
    sw_err rv = SW_OK;
    if (first == NULL)
        return SW_OK;
    bool sep = false;
    json_object_foreach((json_t *)first, key, v)
    {
        if (rv == SW_OK && sep)
            rv = buf_puts(b, ",");
        if (rv == SW_OK)
            rv = buf_puts(b, key);
        sep = true;
    }
    if (rv == SW_OK)
        rv = buf_puts(b, "\r\n");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        sep = false;
        json_object_foreach((json_t *)first, key, v)
        {
            if (rv == SW_OK && sep)
                rv = buf_puts(b, ",");
            if (rv == SW_OK)
                rv = csv_cell(b, json_object_get(row, key));
            sep = true;
        }
        if (rv == SW_OK)
            rv = buf_puts(b, "\r\n");
    }
    return rv;
}

/*
 * A report object as "section,name,value" rows: scalars under `section`,
 * an object's members under its own name, and each element of an array of
 * objects as "<array>,<first field's value>/<field>,<value>".
 */
static sw_err csv_flat(struct buf *b, const char *section, const json_t *o)
{
    const char *key;
    json_t *v;
    sw_err rv = SW_OK;
    json_object_foreach((json_t *)o, key, v)
    {
        if (rv != SW_OK)
            break;
        if (json_is_object(v)) {
            rv = csv_flat(b, key, v);
            continue;
        }
        if (!json_is_array(v)) {
            rv = buf_printf(b, "%s,%s,", section, key);
            if (rv == SW_OK)
                rv = csv_cell(b, v);
            if (rv == SW_OK)
                rv = buf_puts(b, "\r\n");
            continue;
        }
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el)
        {
            const char *k2, *name = NULL;
            char namebuf[64];
            json_t *x;
            json_object_foreach(el, k2, x)
            {
                if (rv != SW_OK)
                    break;
                if (name == NULL) {
                    if (json_is_string(x))
                        name = json_string_value(x);
                    else {
                        snprintf(namebuf, sizeof(namebuf), "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(x));
                        name = namebuf;
                    }
                    continue;
                }
                if (json_is_object(x) || json_is_array(x))
                    continue;
                rv = buf_printf(b, "%s,", key);
                char cell[300];
                snprintf(cell, sizeof(cell), "%s/%s", name, k2);
                json_t *c = json_string(cell);
                if (rv == SW_OK)
                    rv = csv_cell(b, c);
                json_decref(c);
                if (rv == SW_OK)
                    rv = buf_puts(b, ",");
                if (rv == SW_OK)
                    rv = csv_cell(b, x);
                if (rv == SW_OK)
                    rv = buf_puts(b, "\r\n");
            }
        }
    }
    return rv;
}

/* Answers the JSON of `sql`'s first column, or its CSV when `csv`. */
static sw_err answer(struct job *j, PGconn *db, const char *what, const char *sql, int n,
                     const char *const *v, bool csv, char *err, size_t errlen)
{
    PGresult *r;
    sw_err rv = db_run(db, what, sql, n, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    const char *text = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "{}";
    if (!csv) {
        job_reply_json(j, 200, text);
        PQclear(r);
        return SW_OK;
    }
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    PQclear(r);
    if (o == NULL) {
        snprintf(err, errlen, "could not %s: the database answered no JSON", what);
        return SW_EDB;
    }
    buf_reset(&j->body);
    json_t *rows = json_object_get(o, "rows");
    rv = json_is_array(rows) ? csv_table(&j->body, rows) : csv_flat(&j->body, "summary", o);
    json_decref(o);
    if (rv != SW_OK) {
        job_reply_error(j, 500, "answer too large");
        return SW_OK;
    }
    j->status = 200;
    j->ctype = "text/csv; charset=utf-8";
    return SW_OK;
}

/* format=json|csv; false (answered 422) when neither. */
static bool want_csv(struct field_errors *f, const char *q, bool *csv)
{
    char fmt[16] = "json";
    query_get(q, "format", fmt, sizeof(fmt));
    *csv = strcmp(fmt, "csv") == 0;
    if (!*csv && strcmp(fmt, "json") != 0) {
        field_bad(f, "format", "must be json or csv");
        return false;
    }
    return true;
}

/* Is `code` a department (kind 'd') or a staff member ('s') of the site?  Answers 404 if not. */
static sw_err known(struct job *j, PGconn *db, char kind, const char *code, bool *found, char *err,
                    size_t errlen)
{
    const char *v[] = {j->who.site_id, code};
    PGresult *r;
    sw_err rv =
        db_run(db, kind == 'd' ? "look up the department" : "look up the staff member",
               kind == 'd' ? "SELECT 1 FROM core.departments WHERE site_id = $1 AND code = $2"
                           : "SELECT 1 FROM core.staff WHERE site_id = $1 AND code = $2",
               2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    *found = PQntuples(r) == 1;
    PQclear(r);
    if (!*found) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no such %s in site %s: \"%s\"",
                 kind == 'd' ? "department" : "staff member", j->who.site, code);
        job_reply_error(j, 404, msg);
    }
    return SW_OK;
}

/* ---- the chain ----------------------------------------------------------------------------- */

sw_err audit_verify_run(struct job *j, PGconn *db, struct bus_outbox *ob, char *err, size_t errlen)
{
    struct audit_verdict vd;
    sw_err rv = audit_verify(db, j->who.site_id, NULL, &vd, err, errlen);
    if (rv != SW_OK)
        return rv;
    char through[24], bad[24], hex[2 * AUDIT_HASH_LEN + 1];
    snprintf(through, sizeof(through), "%" PRId64, vd.head_seq);
    snprintf(bad, sizeof(bad), "%" PRId64, vd.first_bad_seq);
    crypto_hex(vd.head_hash, AUDIT_HASH_LEN, hex);
    const char *v[] = {j->who.site_id, through, vd.ok ? "true" : "false", vd.ok ? NULL : bad,
                       vd.detail};
    PGresult *r;
    rv = db_run(db, "record the verification",
                "INSERT INTO audit.verifications (site_id, through_seq, ok, first_bad_seq, detail) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id, at",
                5, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    struct buf b;
    buf_init(&b, 8192);
    rv = buf_printf(&b,
                    "{\"site\":\"%s\",\"ok\":%s,\"entries\":%" PRId64 ",\"head_seq\":%" PRId64
                    ",\"head_hash\":\"%s\",\"first_bad_seq\":",
                    j->who.site, vd.ok ? "true" : "false", vd.checked, vd.head_seq,
                    vd.checked ? hex : "");
    if (rv == SW_OK)
        rv = vd.ok ? buf_puts(&b, "null") : buf_puts(&b, bad);
    if (rv == SW_OK)
        rv = buf_printf(&b,
                        ",\"checkpoints\":%" PRId64 ",\"signatures_checked\":false,"
                        "\"verification_id\":%s,\"at\":\"%s\",\"detail\":",
                        vd.checkpoints, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    if (rv == SW_OK)
        rv = buf_json_string(&b, vd.detail);
    if (rv == SW_OK)
        rv = buf_puts(&b, "}");
    PQclear(r);
    /* the event, so that the verification itself is on the record */
    Shouwen__V1__AuditVerified av = SHOUWEN__V1__AUDIT_VERIFIED__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    av.from_seq = vd.checked ? 1 : 0;
    av.to_seq = (uint64_t)vd.head_seq;
    av.events_checked = (uint64_t)vd.checked;
    av.ok = vd.ok;
    av.first_bad_seq = (uint64_t)vd.first_bad_seq;
    av.head_hash.data = vd.head_hash;
    av.head_hash.len = vd.checked ? AUDIT_HASH_LEN : 0;
    av.requested_by = j->who.name;
    if (j->who.kind == 't')
        actor.staff_code = j->who.name;
    else {
        actor.api_key_id = j->who.id;
        actor.external_system = j->who.name;
    }
    env.type = (char *)"audit.verified";
    env.site = j->who.site;
    env.actor = &actor;
    env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_AUDIT_VERIFIED;
    env.audit_verified = &av;
    if (rv == SW_OK && bus_outbox_add(ob, &env) != SW_OK) {
        snprintf(err, errlen, "could not stage audit.verified");
        rv = SW_ENOMEM;
    }
    if (rv == SW_OK)
        rv = bus_outbox_write(ob, db, err, errlen);
    if (rv == SW_OK)
        job_reply_json(j, 200, buf_cstr(&b));
    buf_free(&b);
    return rv;
}

sw_err audit_checkpoints_list(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    static const char *const names[] = {"after", "limit", NULL};
    char after[24] = "0", lim[16] = "100";
    if (query_only(&f, j->query, names, "after and limit")) {
        query_get(j->query, "after", after, sizeof(after));
        query_get(j->query, "limit", lim, sizeof(lim));
        if (after[0] == '\0' || strlen(after) > 18 || strspn(after, "0123456789") != strlen(after))
            field_bad(&f, "after", "must be an entry number (0 or more)");
        int limit = atoi(lim);
        if (limit < 1 || limit > 1000 || strspn(lim, "0123456789") != strlen(lim))
            field_bad(&f, "limit", "must be 1 to 1000");
    }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, after, lim};
    return answer(j, db, "read the checkpoints",
                  "SELECT json_build_object('checkpoints', coalesce(json_agg(json_build_object("
                  "'seq', seq, 'hash', encode(hash, 'hex'), 'signed_at', signed_at, "
                  "'signed_us', (extract(epoch FROM signed_at) * 1000000)::bigint, 'key_id', "
                  "key_id, 'signature', encode(signature, 'hex')) ORDER BY seq), '[]')) FROM "
                  "(SELECT * FROM audit.checkpoints WHERE site_id = $1 AND seq > $2::bigint "
                  "ORDER BY seq LIMIT $3::int) c",
                  3, v, false, err, errlen);
}

/* ---- the QA report ----------------------------------------------------------------------------
 */

/*
 * The figures of one period, from the roll-ups: $1 site, $2 first day, $3
 * last day (local dates, both included), $4 department or NULL, $5 first
 * responder (staff) or NULL.  Cases count in the period of their
 * registration; violations in the period they occurred.
 */
#define QA_SQL                                                                                     \
    "WITH f AS MATERIALIZED (SELECT * FROM audit.case_facts WHERE site_id = $1::uuid AND reg_day " \
    "BETWEEN $2::date AND $3::date AND ($4::text IS NULL OR department = $4) AND ($5::text IS "    \
    "NULL OR first_responder = $5)), v AS MATERIALIZED (SELECT * FROM audit.violations WHERE "     \
    "site_id = $1::uuid AND day BETWEEN $2::date AND $3::date AND ($4::text IS NULL OR "           \
    "department = $4) AND ($5::text IS NULL OR staff = $5)), t AS (SELECT count(*) AS n, "         \
    "count(*) "                                                                                    \
    "FILTER (WHERE on_spot) AS on_spot, count(*) FILTER (WHERE handed_off OR late_handoff) AS "    \
    "handoffs, count(*) FILTER (WHERE handed_off AND NOT late_handoff) AS handoffs_ok, count(*) "  \
    "FILTER (WHERE responded) AS responded, count(*) FILTER (WHERE responded AND NOT "             \
    "late_answer) AS answered_ok, count(*) FILTER (WHERE outcome = 'resolved') AS resolved, "      \
    "count(*) FILTER (WHERE outcome = 'resolved' AND NOT late_resolve) AS resolved_ok, count(*) "  \
    "FILTER (WHERE outcome = 'unresolvable') AS unresolvable, count(*) FILTER (WHERE outcome = "   \
    "'referred_out') AS referred_out, count(*) FILTER (WHERE outcome = 'open') AS open, count(*) " \
    "FILTER (WHERE called_back OR late_callback) AS callbacks, count(*) FILTER (WHERE "            \
    "called_back AND NOT late_callback) AS callbacks_ok, count(*) FILTER (WHERE satisfaction = "   \
    "'satisfied') AS sat, count(*) FILTER (WHERE satisfaction = 'basically_satisfied') AS bsat, "  \
    "count(*) FILTER (WHERE satisfaction = 'unsatisfied') AS unsat, count(*) FILTER (WHERE "       \
    "satisfaction = 'unreachable') AS unreach, percentile_disc(0.5) WITHIN GROUP (ORDER BY "       \
    "resolve_s) FILTER (WHERE outcome = 'resolved') AS p50, percentile_disc(0.9) WITHIN GROUP "    \
    "(ORDER BY resolve_s) FILTER (WHERE outcome = 'resolved') AS p90, coalesce(sum("               \
    "esc_supervisor), 0) AS esc_sup, coalesce(sum(esc_manager), 0) AS esc_mgr, "                   \
    "coalesce(sum(esc_leader), 0) AS esc_lead, coalesce(sum(transfers), 0) AS transfers, "         \
    "count(*) FILTER (WHERE transfers = 0) AS t0, count(*) FILTER (WHERE transfers = 1) AS t1, "   \
    "count(*) FILTER (WHERE transfers = 2) AS t2, count(*) FILTER (WHERE transfers >= 3) AS t3, "  \
    "coalesce(max(transfers), 0) AS tmax, count(*) FILTER (WHERE transfers >= 2 OR returns > 0) "  \
    "AS bounced, coalesce(sum(returns), 0) AS returns, coalesce(sum(reopened), 0) AS reopened "    \
    "FROM f) SELECT json_build_object('site', $6::text, 'from', $2::date, 'to', $3::date, "        \
    "'department', $4::text, 'staff', $5::text, 'cases', t.n, 'by_type', (SELECT "                 \
    "coalesce(json_object_agg(case_type, c ORDER BY case_type), '{}') FROM (SELECT case_type, "    \
    "count(*) AS c FROM f GROUP BY 1) x), 'by_channel', (SELECT coalesce(json_object_agg("         \
    "channel, c ORDER BY channel), '{}') FROM (SELECT channel, count(*) AS c FROM f GROUP BY 1) "  \
    "x), 'outcomes', json_build_object('resolved', t.resolved, 'unresolvable', t.unresolvable, "   \
    "'referred_out', t.referred_out, 'open', t.open), 'first_contact_resolution', "                \
    "json_build_object('cases', t.on_spot, 'rate', round(t.on_spot::numeric / nullif(t.n, 0), "    \
    "4)), 'handoff_within_limit', json_build_object('handoffs', t.handoffs, 'in_time', "           \
    "t.handoffs_ok, 'rate', round(t.handoffs_ok::numeric / nullif(t.handoffs, 0), 4)), "           \
    "'answer_within_limit', json_build_object('answered_in_time', t.answered_ok, 'rate', "         \
    "round(t.answered_ok::numeric / nullif(t.n, 0), 4)), 'resolution_within_limit', "              \
    "json_build_object('resolved_in_time', t.resolved_ok, 'rate', round(t.resolved_ok::numeric "   \
    "/ nullif(t.resolved, 0), 4)), 'resolution_time_s', json_build_object('p50', t.p50, 'p90', "   \
    "t.p90), 'callback_within_limit', json_build_object('callbacks_due', t.callbacks, "            \
    "'in_time', t.callbacks_ok, 'rate', round(t.callbacks_ok::numeric / nullif(t.callbacks, 0), "  \
    "4)), 'satisfaction', json_build_object('satisfied', t.sat, 'basically_satisfied', t.bsat, "   \
    "'unsatisfied', t.unsat, 'unreachable', t.unreach), 'hotline_rates', json_build_object("       \
    "'response_rate', round(t.responded::numeric / nullif(t.n, 0), 4), 'resolution_rate', "        \
    "round(t.resolved::numeric / nullif(t.n, 0), 4), 'satisfaction_rate', round((t.sat + "         \
    "t.bsat)::numeric / nullif(t.sat + t.bsat + t.unsat, 0), 4)), 'unresolvable_rate', "           \
    "round(t.unresolvable::numeric / nullif(t.n, 0), 4), 'escalations', json_build_object("        \
    "'supervisor', t.esc_sup, 'manager', t.esc_mgr, 'leader', t.esc_lead), 'transfers', "          \
    "json_build_object('total', t.transfers, 'per_case', round(t.transfers::numeric / nullif("     \
    "t.n, 0), 4), 'none', t.t0, 'one', t.t1, 'two', t.t2, 'three_or_more', t.t3, 'most', t.tmax, " \
    "'bounced_cases', t.bounced, 'returns', t.returns, 'reopened', t.reopened), "                  \
    "'conflict_escalations', (SELECT coalesce(json_object_agg(department, c ORDER BY "             \
    "department), '{}') FROM (SELECT department, count(*) AS c FROM v WHERE kind = "               \
    "'conflict_escalation' GROUP BY 1) x), 'violations', json_build_object('count', (SELECT "      \
    "count(*) FROM v), 'points', (SELECT coalesce(sum(points), 0) FROM v), 'by_kind', (SELECT "    \
    "coalesce(json_object_agg(kind, c ORDER BY kind), '{}') FROM (SELECT kind, count(*) AS c "     \
    "FROM v GROUP BY 1) x)), 'violations_by_person', (SELECT coalesce(json_agg(json_build_object(" \
    "'staff', staff, 'department', department, 'count', c, 'points', p) ORDER BY p DESC, c DESC, " \
    "staff, department), '[]') FROM (SELECT staff, department, count(*) AS c, sum(points) AS p "   \
    "FROM v GROUP BY 1, 2) x)) FROM t"

/*
 * Reads the period of a report query: from and to (both), or month
 * (YYYY-MM), and writes its two dates; neither leaves them "" (the
 * caller's default, default_period).  On a bad value records it in f.
 */
static void period(struct field_errors *f, const char *q, char from[11], char to[11])
{
    char a[16] = "", b[16] = "", m[16] = "";
    bool hf = query_get(q, "from", a, sizeof(a)), ht = query_get(q, "to", b, sizeof(b)),
         hm = query_get(q, "month", m, sizeof(m));
    int32_t d0 = 0, d1 = 0;
    from[0] = to[0] = '\0';
    if (hm && (hf || ht)) {
        field_bad(f, "month", "give either month or from and to, not both");
        return;
    }
    if (hm) {
        char first[16];
        snprintf(first, sizeof(first), "%.7s-01", m);
        if (strlen(m) != 7 || cal_parse_date(first, &d0) != SW_OK) {
            field_bad(f, "month", "must be a month YYYY-MM, not \"%.20s\"", m);
            return;
        }
        int y = atoi(m), mo = atoi(m + 5);
        d1 = cal_days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1);
        day_string(d0, from);
        day_string(d1 - 1, to);
        return;
    }
    if (hf != ht) {
        field_bad(f, hf ? "to" : "from", "from and to go together (or give month)");
        return;
    }
    if (!hf)
        return; /* the default, in SQL */
    if (cal_parse_date(a, &d0) != SW_OK)
        field_bad(f, "from", "must be a date YYYY-MM-DD, not \"%.20s\"", a);
    if (cal_parse_date(b, &d1) != SW_OK)
        field_bad(f, "to", "must be a date YYYY-MM-DD, not \"%.20s\"", b);
    if (f->n > 0)
        return;
    if (d1 < d0)
        field_bad(f, "to", "must not be before from");
    else if (d1 - d0 + 1 > PERIOD_DAYS_MAX)
        field_bad(f, "to", "a period is at most %d days", PERIOD_DAYS_MAX);
    else {
        day_string(d0, from);
        day_string(d1, to);
    }
}

/* The site's own month (or week) when no period was given: filled in from the database. */
static sw_err default_period(struct job *j, PGconn *db, char kind, char from[11], char to[11],
                             char *err, size_t errlen)
{
    const char *v[] = {j->who.time_zone};
    PGresult *r;
    sw_err rv =
        db_run(db, "work out the period",
               kind == 'm' ? "SELECT date_trunc('month', now() AT TIME ZONE $1)::date, "
                             "(date_trunc('month', now() AT TIME ZONE $1) + interval '1 month' - "
                             "interval '1 day')::date"
                           : "SELECT (date_trunc('week', now() AT TIME ZONE $1) - interval '7 "
                             "days')::date, (date_trunc('week', now() AT TIME ZONE $1) - interval "
                             "'1 day')::date",
               1, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    snprintf(from, 11, "%s", PQgetvalue(r, 0, 0));
    snprintf(to, 11, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return SW_OK;
}

sw_err report_qa(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    static const char *const names[] = {"from",  "to",     "month", "department",
                                        "staff", "format", NULL};
    char from[11] = "", to[11] = "", dept[80] = "", staff[80] = "";
    bool csv = false, found = true;
    if (query_only(&f, j->query, names, "from, to, month, department, staff and format")) {
        period(&f, j->query, from, to);
        want_csv(&f, j->query, &csv);
    }
    bool hd = query_get(j->query, "department", dept, sizeof(dept)),
         hs = query_get(j->query, "staff", staff, sizeof(staff));
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    sw_err rv = SW_OK;
    if (hd)
        rv = known(j, db, 'd', dept, &found, err, errlen);
    if (rv == SW_OK && found && hs)
        rv = known(j, db, 's', staff, &found, err, errlen);
    if (rv != SW_OK || !found)
        return rv;
    if (from[0] == '\0' && (rv = default_period(j, db, 'm', from, to, err, errlen)) != SW_OK)
        return rv;
    const char *v[] = {j->who.site_id, from, to, hd ? dept : NULL, hs ? staff : NULL, j->who.site};
    return answer(j, db, "compute the report", QA_SQL, 6, v, csv, err, errlen);
}

/* ---- the reception log and the Monday review --------------------------------------------------
 */

sw_err report_reception(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    static const char *const names[] = {"date", "format", NULL};
    char date[16] = "";
    int32_t d;
    bool csv = false;
    if (query_only(&f, j->query, names, "date and format")) {
        if (query_get(j->query, "date", date, sizeof(date)) && cal_parse_date(date, &d) != SW_OK)
            field_bad(&f, "date", "must be a date YYYY-MM-DD, not \"%.20s\"", date);
        want_csv(&f, j->query, &csv);
    }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {j->who.site_id, date[0] ? date : NULL, j->who.time_zone, j->who.site};
    return answer(
        j, db, "read the reception log",
        "WITH p AS (SELECT coalesce($2::date, (now() AT TIME ZONE $3)::date) AS day) SELECT "
        "json_build_object('site', $4::text, 'date', p.day, 'rows', coalesce((SELECT json_agg("
        "json_build_object('time', to_char(c.created_at AT TIME ZONE $3, 'HH24:MI'), 'number', "
        "c.number, 'customer', coalesce(c.customer_name, ''), 'contact', "
        "coalesce(c.customer_phone, "
        "''), 'unit', coalesce(c.customer_unit, ''), 'room', concat_ws(' ', "
        "nullif(c.customer_address, ''), nullif(c.customer_room, '')), 'channel', c.channel, "
        "'type', c.type, 'matter', c.subject, 'first_responder', fr.code, 'handling', CASE WHEN "
        "c.resolved_on_spot THEN 'resolved on the spot by ' || fr.code ELSE concat_ws(', ', "
        "'with ' || d.code, 'owner ' || o.code, (SELECT count(*) FROM core.handoffs h WHERE "
        "h.case_id = c.id AND h.kind IN ('transfer', 'forward')) || ' transfer(s)') END, 'status', "
        "c.status, 'result', coalesce(c.result, c.unresolvable_reason, c.referral_guidance, '')) "
        "ORDER BY c.created_at, c.number) FROM core.cases c JOIN core.staff fr ON fr.id = "
        "c.first_responder_id LEFT JOIN core.staff o ON o.id = c.owner_id LEFT JOIN "
        "core.departments d ON d.id = c.department_id WHERE c.site_id = $1::uuid AND "
        "c.created_at >= (p.day::timestamp AT TIME ZONE $3) AND c.created_at < ((p.day + 1)"
        "::timestamp AT TIME ZONE $3)), '[]')) FROM p",
        4, v, csv, err, errlen);
}

sw_err report_weekly(struct job *j, PGconn *db, char *err, size_t errlen)
{
    struct field_errors f = {.n = 0};
    static const char *const names[] = {"week", NULL};
    char week[16] = "", from[11] = "", to[11] = "";
    int32_t d;
    if (query_only(&f, j->query, names, "week (any date of the week)") &&
        query_get(j->query, "week", week, sizeof(week))) {
        if (cal_parse_date(week, &d) != SW_OK)
            field_bad(&f, "week", "must be a date YYYY-MM-DD (any day of the week), not \"%.20s\"",
                      week);
        else {
            int32_t monday = d - (cal_iso_weekday(d) - 1);
            day_string(monday, from);
            day_string(monday + 6, to);
        }
    }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    sw_err rv = SW_OK;
    if (from[0] == '\0' && (rv = default_period(j, db, 'w', from, to, err, errlen)) != SW_OK)
        return rv;
    const char *v[] = {j->who.site_id, from, to, NULL, NULL, j->who.site, j->who.time_zone};
    return answer(
        j, db, "compute the weekly review",
        "WITH r AS (" QA_SQL "), still AS (SELECT c.number, c.status, c.subject, d.code AS "
        "department, o.code AS owner, c.escalation_level, c.created_at FROM core.cases c LEFT JOIN "
        "core.departments d ON d.id = c.department_id LEFT JOIN core.staff o ON o.id = c.owner_id "
        "WHERE c.site_id = $1::uuid AND c.created_at >= ($2::date::timestamp AT TIME ZONE $7) AND "
        "c.created_at < (($3::date + 1)::timestamp AT TIME ZONE $7) AND c.closed_at IS NULL AND "
        "c.resolved_at IS NULL ORDER BY c.created_at LIMIT 500) SELECT json_build_object('kind', "
        "'weekly_review', 'site', $6::text, 'week_from', $2::date, 'week_to', $3::date, "
        "'report', (SELECT * FROM r), 'still_open', (SELECT coalesce(json_agg(row_to_json(still)), "
        "'[]') FROM still))",
        7, v, false, err, errlen);
}
