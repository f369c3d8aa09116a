/*
 * casedb.c - a case in PostgreSQL; see casedb.h.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "casedb.h"
#include "db.h"

/* clang-format off */
#define CASE_SELECT \
    "SELECT c.id::text, s.code, c.number, c.version, c.status, c.type, c.channel, c.urgency, " \
    "fr.code, frd.code, o.code, d.code, " \
    "(SELECT ld.code FROM core.case_departments cd JOIN core.departments ld ON ld.id = " \
    "cd.department_id WHERE cd.case_id = c.id AND cd.role = 'lead'), " \
    "(SELECT coalesce(string_agg(ad.code, ',' ORDER BY ad.code), '') FROM core.case_departments " \
    "cd JOIN core.departments ad ON ad.id = cd.department_id WHERE cd.case_id = c.id AND cd.role " \
    "= 'assisting'), " \
    "array_to_string(c.returned_by, ','), c.transfer_count, c.escalation_level, c.waiting_on, " \
    "c.status_before_waiting, " \
    "(extract(epoch FROM c.waiting_since) * 1000000)::bigint, " \
    "(extract(epoch FROM c.paused_total) * 1000000)::bigint, " \
    "(extract(epoch FROM c.expected_completion) * 1000000)::bigint, c.resolved_on_spot, " \
    "c.satisfaction, (extract(epoch FROM c.created_at) * 1000000)::bigint, " \
    "(extract(epoch FROM c.updated_at) * 1000000)::bigint, " \
    "(extract(epoch FROM c.first_contact_at) * 1000000)::bigint, " \
    "(extract(epoch FROM c.resolved_at) * 1000000)::bigint, " \
    "(extract(epoch FROM c.closed_at) * 1000000)::bigint, " \
    "(extract(epoch FROM c.emergency_acknowledged_at) * 1000000)::bigint, c.source "
#define CASE_FROM "FROM core.cases c " CASE_JOINS
#define CASE_JOINS \
    "JOIN core.sites s ON s.id = c.site_id " \
    "LEFT JOIN core.staff fr ON fr.id = c.first_responder_id " \
    "LEFT JOIN core.departments frd ON frd.id = fr.department_id " \
    "LEFT JOIN core.staff o ON o.id = c.owner_id " \
    "LEFT JOIN core.departments d ON d.id = c.department_id "
static const char case_one[] =
    CASE_SELECT CASE_FROM "WHERE c.id = $1::uuid AND c.site_id = $2::uuid FOR UPDATE OF c";
/*
 * Many cases: one probe of the key per given id, its ordinal (column 32)
 * carried along, in a keyed transaction (db.h) or under the guards
 * (db_exec_guarded), so that its plan is made once and kept.  The site is
 * compared with IS NOT DISTINCT FROM, which no index can serve (see
 * UPDATE_MANY).  (It was `id = ANY`, planned per batch outside keyed
 * transactions: planning cost escalation 1.6 ms a batch, more than
 * running it.)
 */
static const char case_many_keyed[] =
    CASE_SELECT ", u.i "
    "FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS u(id, site, i) "
    "JOIN core.cases c ON c.id = u.id AND c.site_id IS NOT DISTINCT FROM u.site "
    CASE_JOINS;
/* clang-format on */
#define CASE_NCOLS 32

static void put(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static int64_t i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Split "a,b,c" (codes have no commas) into `out`. */
static size_t split_codes(const char *list, char (*out)[WF_CODE_SIZE], size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (*p && n < max) {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < WF_CODE_SIZE) {
            memcpy(out[n], p, len);
            out[n][len] = '\0';
            n++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}

static void load(const PGresult *r, int row, struct wf_case *c)
{
    memset(c, 0, sizeof(*c));
    put(c->id, sizeof(c->id), r, row, 0);
    put(c->site, sizeof(c->site), r, row, 1);
    put(c->number, sizeof(c->number), r, row, 2);
    c->version = i64(r, row, 3);
    wf_status_parse(PQgetvalue(r, row, 4), &c->status);
    wf_case_type_parse(PQgetvalue(r, row, 5), &c->type);
    wf_channel_parse(PQgetvalue(r, row, 6), &c->channel);
    wf_urgency_parse(PQgetvalue(r, row, 7), &c->urgency);
    put(c->first_responder, sizeof(c->first_responder), r, row, 8);
    put(c->first_department, sizeof(c->first_department), r, row, 9);
    put(c->owner, sizeof(c->owner), r, row, 10);
    put(c->department, sizeof(c->department), r, row, 11);
    put(c->lead_department, sizeof(c->lead_department), r, row, 12);
    c->n_assisting = split_codes(PQgetvalue(r, row, 13), c->assisting, WF_MAX_ASSIST);
    c->n_returned = split_codes(PQgetvalue(r, row, 14), c->returned_by, WF_MAX_RETURNED);
    c->transfer_count = (int32_t)i64(r, row, 15);
    wf_escalation_parse(PQgetvalue(r, row, 16), &c->escalation_level);
    if (!PQgetisnull(r, row, 17))
        wf_waiting_on_parse(PQgetvalue(r, row, 17), &c->waiting_on);
    if (!PQgetisnull(r, row, 18))
        wf_status_parse(PQgetvalue(r, row, 18), &c->status_before_waiting);
    c->waiting_since = i64(r, row, 19);
    c->paused_total_us = i64(r, row, 20);
    c->expected_completion_at = i64(r, row, 21);
    c->resolved_on_spot = PQgetvalue(r, row, 22)[0] == 't';
    if (!PQgetisnull(r, row, 23))
        wf_satisfaction_parse(PQgetvalue(r, row, 23), &c->satisfaction);
    c->created_at = i64(r, row, 24);
    c->received_at = c->created_at;
    c->updated_at = i64(r, row, 25);
    c->first_contact_at = i64(r, row, 26);
    c->resolved_at = i64(r, row, 27);
    c->closed_at = i64(r, row, 28);
    c->emergency_acknowledged_at = i64(r, row, 29);
}

/* An instant as PostgreSQL text (UTC, microseconds), or NULL for 0 (none). */
static char *ts_text(int64_t us, char *out, size_t len)
{
    struct tm tm;
    time_t t = (time_t)(us / 1000000);
    if (us <= 0 || gmtime_r(&t, &tm) == NULL)
        return NULL;
    size_t n = strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
    if (n == 0)
        return NULL;
    snprintf(out + n, len - n, ".%06d+00", (int)(us % 1000000));
    return out;
}

/* A duration in microseconds as text, or NULL for none. */
static char *us_text(int64_t us, char *out, size_t len)
{
    if (us <= 0)
        return NULL;
    snprintf(out, len, "%" PRId64, us);
    return out;
}

static const char update_sql[] =
    "UPDATE core.cases SET version = version + 1, status = $3, "
    "owner_id = (SELECT id FROM core.staff WHERE site_id = $25::uuid AND code = $4), "
    "department_id = (SELECT id FROM core.departments WHERE site_id = $25::uuid AND code = $5), "
    "escalation_level = $6, waiting_on = $7, status_before_waiting = $8, "
    "waiting_since = $9::timestamptz, "
    "paused_total = coalesce($10::bigint, 0) * interval '1 microsecond', "
    "expected_completion = $11::timestamptz, "
    "satisfaction = $12, resolved_on_spot = $13::boolean, transfer_count = $14::int, "
    "returned_by = string_to_array($15, ','), "
    "first_contact_at = $16::timestamptz, "
    "resolved_at = $17::timestamptz, "
    "closed_at = $18::timestamptz, "
    "emergency_acknowledged_at = $19::timestamptz, "
    "updated_at = coalesce($20::timestamptz, now()), "
    "result = coalesce($21, CASE WHEN $3 IN ('resolved', 'closed') THEN result END), "
    "referral_guidance = coalesce($22, referral_guidance), "
    "unresolvable_reason = coalesce($23, unresolvable_reason), "
    "waiting_reason = CASE WHEN $3 = 'waiting' THEN coalesce($24, waiting_reason) END "
    "WHERE id = $1::uuid AND version = $2::bigint AND site_id = $25::uuid";

/*
 * The same for many cases at once (in save_many_sql): $1..$25 are arrays,
 * one element per case, `u.i` its ordinal.  FIND comes first in the WHERE
 * clause: `c.id = ANY($1::uuid[]) AND ` lets the cases be found by their
 * key whatever the planner believes of the table's size; a keyed
 * transaction (db.h) needs nothing there, as it can only probe the key.
 * There the ANY made things worse: its generic plan read the cases found
 * by it once and then matched each of them against every element
 * (57,000 rows removed by the join filter for 338 cases).  The site is
 * compared with IS NOT DISTINCT FROM, which no index can serve: with `=`,
 * a plan made on an empty table probed an index on the site (and the
 * time of creation) and filtered the id, a scan of the site's cases.
 */
/* clang-format off */
#define UPDATE_MANY(FIND) \
    "UPDATE core.cases c SET version = c.version + 1, status = u.status, " \
    "owner_id = (SELECT id FROM core.staff WHERE site_id = u.site AND code = u.owner), " \
    "department_id = (SELECT id FROM core.departments WHERE site_id = u.site AND code = u.dept), " \
    "escalation_level = u.esc, waiting_on = u.won, status_before_waiting = u.sbw, " \
    "waiting_since = u.ws::timestamptz, " \
    "paused_total = coalesce(u.paused::bigint, 0) * interval '1 microsecond', " \
    "expected_completion = u.ec::timestamptz, " \
    "satisfaction = u.sat, resolved_on_spot = u.ros::boolean, transfer_count = u.tc::int, " \
    "returned_by = string_to_array(u.ret, ','), " \
    "first_contact_at = u.fca::timestamptz, " \
    "resolved_at = u.ra::timestamptz, " \
    "closed_at = u.ca::timestamptz, " \
    "emergency_acknowledged_at = u.eaa::timestamptz, " \
    "updated_at = coalesce(u.ua::timestamptz, now()), " \
    "result = coalesce(u.res, CASE WHEN u.status IN ('resolved', 'closed') THEN c.result END), " \
    "referral_guidance = coalesce(u.guid, c.referral_guidance), " \
    "unresolvable_reason = coalesce(u.unres, c.unresolvable_reason), " \
    "waiting_reason = CASE WHEN u.status = 'waiting' THEN coalesce(u.wr, c.waiting_reason) END " \
    "FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], " \
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], " \
    "$14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], " \
    "$21::text[], $22::text[], $23::text[], $24::text[], $25::uuid[]) WITH ORDINALITY " \
    "AS u(id, ver, status, owner, dept, esc, won, sbw, ws, paused, ec, sat, ros, tc, ret, fca, " \
    "ra, ca, eaa, ua, res, guid, unres, wr, site, i) " \
    "WHERE " FIND "c.id = u.id AND c.version = u.ver AND c.site_id IS NOT DISTINCT FROM u.site " \
    "RETURNING u.i::int AS i"
/* clang-format on */

/*
 * The command's text that the case row keeps: the result of a resolution,
 * the guidance of a referral, the reason of an unresolvable close or of a
 * wait.  NULL leaves the column as it is.
 */
struct kept {
    const char *result, *guidance, *unresolvable, *waiting_reason;
};

static struct kept kept_of(const Shouwen__V1__Command *cmd)
{
    struct kept k = {0};
    switch (cmd->command_case) {
    case SHOUWEN__V1__COMMAND__COMMAND_RESOLVE:
        k.result = cmd->resolve->result;
        break;
    case SHOUWEN__V1__COMMAND__COMMAND_RESOLVE_ON_SPOT:
        k.result = cmd->resolve_on_spot->result;
        break;
    case SHOUWEN__V1__COMMAND__COMMAND_REFER_OUT:
        k.guidance = cmd->refer_out->guidance;
        break;
    case SHOUWEN__V1__COMMAND__COMMAND_CLOSE_UNRESOLVABLE:
        k.unresolvable = cmd->close_unresolvable->reason;
        break;
    case SHOUWEN__V1__COMMAND__COMMAND_WAIT:
        k.waiting_reason = cmd->wait->reason;
        break;
    default:
        break;
    }
    return k;
}

/* The parameters of update_sql for one case, and the text they point into. */
#define CASE_NVALS 25
struct case_row {
    char ver[24], tc[16], t[9][40];
    char returned[WF_MAX_RETURNED * WF_CODE_SIZE];
    const char *v[CASE_NVALS];
};

static void case_row(struct case_row *cr, const struct casedb_ctx *x, const struct wf_case *old,
                     const struct wf_case *nc, const struct kept *k)
{
    size_t n = 0;
    cr->returned[0] = '\0';
    for (size_t i = 0; i < nc->n_returned; i++)
        n += (size_t)snprintf(cr->returned + n, sizeof(cr->returned) - n, "%s%s", i ? "," : "",
                              nc->returned_by[i]);
    snprintf(cr->ver, sizeof(cr->ver), "%" PRId64, old->version);
    snprintf(cr->tc, sizeof(cr->tc), "%d", (int)nc->transfer_count);
    const char *v[CASE_NVALS] = {
        old->id,
        cr->ver,
        wf_status_name(nc->status),
        nc->owner,
        nc->department,
        wf_escalation_name(nc->escalation_level) ? wf_escalation_name(nc->escalation_level)
                                                 : "none",
        wf_waiting_on_name(nc->waiting_on),
        nc->status == SHOUWEN__V1__CASE_STATUS__CASE_STATUS_WAITING
            ? wf_status_name(nc->status_before_waiting)
            : NULL,
        ts_text(nc->waiting_since, cr->t[0], sizeof(cr->t[0])),
        us_text(nc->paused_total_us > 0 ? nc->paused_total_us : 0, cr->t[1], sizeof(cr->t[1])),
        ts_text(nc->expected_completion_at, cr->t[2], sizeof(cr->t[2])),
        wf_satisfaction_name(nc->satisfaction),
        nc->resolved_on_spot ? "t" : "f",
        cr->tc,
        cr->returned,
        ts_text(nc->first_contact_at, cr->t[3], sizeof(cr->t[3])),
        ts_text(nc->resolved_at, cr->t[4], sizeof(cr->t[4])),
        ts_text(nc->closed_at, cr->t[5], sizeof(cr->t[5])),
        ts_text(nc->emergency_acknowledged_at, cr->t[6], sizeof(cr->t[6])),
        ts_text(nc->updated_at, cr->t[7], sizeof(cr->t[7])),
        k->result,
        k->guidance,
        k->unresolvable,
        k->waiting_reason,
        x->site_id,
    };
    memcpy(cr->v, v, sizeof(v));
}

static sw_err save_case(PGconn *db, const struct casedb_ctx *x, const struct wf_case *old,
                        const struct wf_case *nc, const struct kept *k, bool *lost, char *err,
                        size_t errlen)
{
    struct case_row cr;
    case_row(&cr, x, old, nc, k);
    PGresult *r = db_exec_fixed(db, update_sql, CASE_NVALS, cr.v);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        sw_err rv = db_fail(db, r, "could not update the case", err, errlen);
        PQclear(r);
        return rv;
    }
    *lost = strcmp(PQcmdTuples(r), "1") != 0;
    PQclear(r);
    return SW_OK;
}

static sw_err exec_params(PGconn *db, const char *what, const char *sql, int n,
                          const char *const *v, char *err, size_t errlen)
{
    PGresult *r = db_exec_fixed(db, sql, n, v);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rv = db_fail(db, r, what, err, errlen);
    PQclear(r);
    return rv;
}

static const char handoff_sql[] =
    "INSERT INTO core.handoffs (site_id, case_id, kind, from_staff_id, from_department_id, "
    "to_staff_id, to_department_id, by_staff_id, on_behalf_of_id, at, reason, event_id, "
    "by_system) "
    "SELECT $1::uuid, $2::uuid, $3, "
    "(SELECT id FROM core.staff WHERE site_id = $1::uuid AND code = $4), "
    "(SELECT id FROM core.departments WHERE site_id = $1::uuid AND code = $5), "
    "(SELECT id FROM core.staff WHERE site_id = $1::uuid AND code = $6), "
    "(SELECT id FROM core.departments WHERE site_id = $1::uuid AND code = $7), "
    "$8::uuid, (SELECT id FROM core.staff WHERE site_id = $1::uuid AND code = $9), "
    "$10::timestamptz, $11, $12::uuid, $13";

/*
 * The cases' new versions and the handoffs of those written, in one
 * statement (one round trip).  $26..$38 are the handoffs' columns and $39
 * the ordinal of the case each belongs to: a case whose version had moved
 * on is not updated (it is lost) and its handoff not inserted.  The
 * handoffs go in in the order given.  Returns the ordinals of the cases
 * updated.  The updated ordinals are gathered into one array first: as a
 * semi-join with `up`, a keyed transaction (no hash join) rescanned `up`
 * for every handoff, and a drain's batch of 1,000 cost twice the
 * database time per case.
 */
/* clang-format off */
#define SAVE_MANY(FIND) \
    "WITH up AS (" UPDATE_MANY(FIND) "), ho AS (" \
    "INSERT INTO core.handoffs (site_id, case_id, kind, from_staff_id, from_department_id, " \
    "to_staff_id, to_department_id, by_staff_id, on_behalf_of_id, at, reason, event_id, " \
    "by_system) " \
    "SELECT h.site, h.case_id, h.kind, " \
    "(SELECT id FROM core.staff WHERE site_id = h.site AND code = h.fs), " \
    "(SELECT id FROM core.departments WHERE site_id = h.site AND code = h.fd), " \
    "(SELECT id FROM core.staff WHERE site_id = h.site AND code = h.ts), " \
    "(SELECT id FROM core.departments WHERE site_id = h.site AND code = h.td), " \
    "h.bys, (SELECT id FROM core.staff WHERE site_id = h.site AND code = h.obo), " \
    "h.hat::timestamptz, h.reason, h.ev, h.sys " \
    "FROM unnest($26::uuid[], $27::uuid[], $28::text[], $29::text[], $30::text[], $31::text[], " \
    "$32::text[], $33::uuid[], $34::text[], $35::text[], $36::text[], $37::uuid[], $38::text[], " \
    "$39::int[]) WITH ORDINALITY AS h(site, case_id, kind, fs, fd, ts, td, bys, obo, hat, " \
    "reason, ev, sys, k, i) WHERE h.k = ANY (ARRAY(SELECT up.i FROM up)) ORDER BY h.i) " \
    "SELECT i FROM up"
static const char save_many_sql[] = SAVE_MANY("c.id = ANY($1::uuid[]) AND ");
static const char save_many_keyed_sql[] = SAVE_MANY("");
/* clang-format on */

/* The parameters of handoff_sql for one command. */
#define HANDOFF_NVALS 13
struct handoff_row {
    char at[40], k[24];
    const char *v[HANDOFF_NVALS + 1]; /* and, in save_many, the case's ordinal */
};

/* save_many_sql's parameters: the cases', the handoffs', their cases' ordinals */
#define SAVE_NVALS (CASE_NVALS + HANDOFF_NVALS + 1)

static void handoff_row(struct handoff_row *hr, const struct casedb_ctx *x,
                        const struct wf_result *res)
{
    const Shouwen__V1__Handoff *h = &res->handoff;
    const char *v[HANDOFF_NVALS] = {x->site_id,
                                    x->case_id,
                                    res->handoff_kind,
                                    h->from_staff,
                                    h->from_department,
                                    h->to_staff,
                                    h->to_department,
                                    x->staff_id,
                                    x->on_behalf_of,
                                    ts_text(h->time, hr->at, sizeof(hr->at)),
                                    h->reason != NULL && h->reason[0] != '\0' ? h->reason : NULL,
                                    x->event_id,
                                    x->staff_id == NULL ? x->system : NULL};
    memcpy(hr->v, v, sizeof(v));
}

/* The signed, timed handoff (签名签时): who, to whom, for whom, when, why. */
static sw_err save_handoff(PGconn *db, const struct casedb_ctx *x, const struct wf_result *res,
                           char *err, size_t errlen)
{
    struct handoff_row hr;
    handoff_row(&hr, x, res);
    return exec_params(db, "could not record the handoff", handoff_sql, HANDOFF_NVALS, hr.v, err,
                       errlen);
}

static sw_err save_note(PGconn *db, const struct casedb_ctx *x, const char *kind, const char *text,
                        int64_t at, int64_t expected, const char *satisfaction, char *err,
                        size_t errlen)
{
    char ex[40], when[40];
    const char *v[] = {x->site_id,
                       x->case_id,
                       kind,
                       x->staff_id,
                       text ? text : "",
                       ts_text(expected, ex, sizeof(ex)),
                       satisfaction,
                       x->event_id,
                       x->time_zone,
                       ts_text(at > 0 ? at : x->at, when, sizeof(when)),
                       x->on_behalf_of};
    return exec_params(
        db, "could not record the note",
        "INSERT INTO core.case_notes (site_id, case_id, kind, by_staff_id, text, expected_date, "
        "satisfaction, event_id, at, on_behalf_of_id) VALUES ($1::uuid, $2::uuid, $3, $4::uuid, "
        "$5, ($6::timestamptz AT TIME ZONE $9)::date, $7, $8::uuid, $10::timestamptz, "
        "(SELECT id FROM core.staff WHERE site_id = $1::uuid AND code = $11))",
        11, v, err, errlen);
}

/* The lead and assisting departments, as the new case has them. */
static sw_err save_departments(PGconn *db, const struct casedb_ctx *x, const struct wf_case *nc,
                               char *err, size_t errlen)
{
    const char *codes[WF_MAX_ASSIST];
    struct buf arr;
    for (size_t i = 0; i < nc->n_assisting; i++)
        codes[i] = nc->assisting[i];
    buf_init(&arr, 1u << 12);
    buf_pg_array(&arr, codes, nc->n_assisting);
    const char *v[] = {x->site_id, x->case_id, nc->lead_department, buf_cstr(&arr), x->staff_id};
    sw_err rv = exec_params(db, "could not clear the case's departments",
                            "DELETE FROM core.case_departments WHERE case_id = $2::uuid AND "
                            "site_id = $1::uuid",
                            2, v, err, errlen);
    if (rv == SW_OK && nc->lead_department[0] != '\0')
        rv = exec_params(
            db, "could not record the lead and assisting departments",
            "INSERT INTO core.case_departments (site_id, case_id, department_id, role, "
            "designated_by) SELECT $1::uuid, $2::uuid, d.id, CASE WHEN d.code = $3 THEN 'lead' "
            "ELSE 'assisting' END, $5::uuid FROM core.departments d WHERE d.site_id = $1::uuid "
            "AND (d.code = $3 OR d.code = ANY($4::text[]))",
            5, v, err, errlen);
    buf_free(&arr);
    return rv;
}

static bool same_departments(const struct wf_case *a, const struct wf_case *b)
{
    if (strcmp(a->lead_department, b->lead_department) != 0 || a->n_assisting != b->n_assisting)
        return false;
    for (size_t i = 0; i < a->n_assisting; i++)
        if (strcmp(a->assisting[i], b->assisting[i]) != 0)
            return false;
    return true;
}

/* The rows beside the case that this command keeps. */
static sw_err save_extras(PGconn *db, const struct casedb_ctx *x, const Shouwen__V1__Command *cmd,
                          const struct wf_case *old, const struct wf_result *res, char *err,
                          size_t errlen)
{
    switch (cmd->command_case) {
    case SHOUWEN__V1__COMMAND__COMMAND_RESOLVE_ON_SPOT:
        return save_note(db, x, "result", cmd->resolve_on_spot->result, 0, 0, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_RESOLVE:
        return save_note(db, x, "result", cmd->resolve->result, 0, 0, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_FIRST_CONTACT:
        return save_note(db, x, "first_contact", cmd->first_contact->note,
                         cmd->first_contact->contacted_at, 0, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_PROGRESS:
        return save_note(db, x, "progress", cmd->progress->note, 0,
                         cmd->progress->expected_completion_at, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_CALLBACK:
        return save_note(db, x, "callback", cmd->callback->note, cmd->callback->called_at, 0,
                         wf_satisfaction_name(cmd->callback->satisfaction), err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_WAIT:
        return save_note(db, x, "waiting", cmd->wait->reason, 0, cmd->wait->expected_until, NULL,
                         err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_RESUME:
        return save_note(db, x, "resumed", cmd->resume->note, 0, 0, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_REFER_OUT:
        return save_note(db, x, "guidance", cmd->refer_out->guidance, 0, 0, NULL, err, errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_ACKNOWLEDGE_EMERGENCY:
        return save_note(db, x, "comment", cmd->acknowledge_emergency->note, 0, 0, NULL, err,
                         errlen);
    case SHOUWEN__V1__COMMAND__COMMAND_REQUEST_LEADER_CALLBACK: {
        const Shouwen__V1__RequestLeaderCallback *m = cmd->request_leader_callback;
        char at[40], pref[40];
        const char *v[] = {x->site_id,
                           x->case_id,
                           m->leader,
                           x->staff_id,
                           m->reason,
                           ts_text(x->at, at, sizeof(at)),
                           m->callback_phone[0] != '\0' ? m->callback_phone : NULL,
                           ts_text(m->preferred_time, pref, sizeof(pref))};
        return exec_params(db, "could not record the leader's call-back",
                           "INSERT INTO core.leader_callbacks (site_id, case_id, leader_id, "
                           "requested_by, note, requested_at, callback_phone, preferred_time) "
                           "SELECT $1::uuid, $2::uuid, s.id, $4::uuid, $5, $6::timestamptz, $7, "
                           "$8::timestamptz FROM core.staff s WHERE s.site_id = $1::uuid AND "
                           "s.code = $3",
                           8, v, err, errlen);
    }
    default:
        break;
    }
    if (!same_departments(old, &res->next))
        return save_departments(db, x, &res->next, err, errlen);
    return SW_OK;
}

sw_err casedb_load(PGconn *db, const char *case_id, const char *site_id, struct wf_case *c,
                   bool *found, char *err, size_t errlen)
{
    const char *v[] = {case_id, site_id};
    PGresult *r = db_exec_fixed(db, case_one, 2, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(db, r, "could not read the case", err, errlen);
        PQclear(r);
        return rv;
    }
    *found = PQntuples(r) == 1;
    if (*found)
        load(r, 0, c);
    PQclear(r);
    return SW_OK;
}

static sw_err load_many(PGconn *db, const char *const *case_ids, const char *const *site_ids,
                        size_t n, struct wf_case *c, bool *found, bool keyed,
                        const struct db_query *also, PGresult **also_out, char *err, size_t errlen)
{
    struct buf ids, sites;
    PGresult *r = NULL;
    sw_err rv = SW_OK;
    buf_init(&ids, 1u << 24);
    buf_init(&sites, 1u << 24);
    for (size_t i = 0; i < n; i++)
        found[i] = false;
    if (also_out != NULL)
        *also_out = NULL;
    if (buf_pg_array(&ids, case_ids, n) != SW_OK || buf_pg_array(&sites, site_ids, n) != SW_OK) {
        buf_free(&ids);
        buf_free(&sites);
        snprintf(err, errlen, "too many cases to read at once (%zu)", n);
        return SW_ETOOBIG;
    }
    const char *v[] = {buf_cstr(&ids), buf_cstr(&sites)};
    if (also != NULL) {
        /* the caller's statement in the same round trip (keyed only) */
        struct db_query qs[2] = {{.sql = case_many_keyed, .n = 2, .vals = v, .fixed = true}, *also};
        PGresult *out[2];
        rv = db_pipeline(db, qs, 2, out, err, errlen);
        r = out[0];
        if (also_out != NULL)
            *also_out = out[1];
        else
            PQclear(out[1]);
    } else {
        r = keyed ? db_exec_fixed(db, case_many_keyed, 2, v)
                  : db_exec_guarded(db, case_many_keyed, 2, v);
    }
    buf_free(&ids);
    buf_free(&sites);
    if (rv != SW_OK) {
        PQclear(r);
        return rv;
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) != CASE_NCOLS) {
        snprintf(err, errlen, "could not read the cases: %d columns, not %d", PQnfields(r),
                 CASE_NCOLS);
        PQclear(r);
        return SW_EDB;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not read the cases", err, errlen);
        PQclear(r);
        return rv;
    }
    for (int t = 0; t < PQntuples(r); t++) {
        long i = strtol(PQgetvalue(r, t, CASE_NCOLS - 1), NULL, 10) - 1;
        if (i < 0 || (size_t)i >= n)
            continue;
        load(r, t, &c[i]);
        found[i] = true;
    }
    PQclear(r);
    return SW_OK;
}

sw_err casedb_load_many(PGconn *db, const char *const *case_ids, const char *const *site_ids,
                        size_t n, struct wf_case *c, bool *found, char *err, size_t errlen)
{
    return load_many(db, case_ids, site_ids, n, c, found, false, NULL, NULL, err, errlen);
}

sw_err casedb_load_many_keyed(PGconn *db, const char *const *case_ids, const char *const *site_ids,
                              size_t n, struct wf_case *c, bool *found, const struct db_query *also,
                              PGresult **also_out, char *err, size_t errlen)
{
    return load_many(db, case_ids, site_ids, n, c, found, true, also, also_out, err, errlen);
}

sw_err casedb_save(PGconn *db, const struct casedb_ctx *x, const Shouwen__V1__Command *cmd,
                   const struct wf_case *old, const struct wf_result *res, bool *lost, char *err,
                   size_t errlen)
{
    struct kept k = kept_of(cmd);
    sw_err rv = save_case(db, x, old, &res->next, &k, lost, err, errlen);
    if (rv != SW_OK || *lost)
        return rv;
    if (res->handoff_kind != NULL)
        rv = save_handoff(db, x, res, err, errlen);
    if (rv == SW_OK)
        rv = save_extras(db, x, cmd, old, res, err, errlen);
    return rv;
}

/*
 * Column j of `rows` (n rows of `stride` bytes whose value pointers start
 * at `off`) as n PostgreSQL array literals, one per column, into `cols`.
 */
static sw_err columns(struct buf *cols, size_t ncols, const void *rows, size_t n, size_t stride,
                      size_t off, const bool *skip)
{
    const char **col = malloc((n ? n : 1) * sizeof(*col));
    sw_err rv = col == NULL ? SW_ENOMEM : SW_OK;
    for (size_t j = 0; j < ncols; j++)
        buf_init(&cols[j], 1u << 28);
    for (size_t j = 0; rv == SW_OK && j < ncols; j++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (skip != NULL && skip[i])
                continue;
            const char *const *v = (const char *const *)((const char *)rows + i * stride + off);
            col[m++] = v[j];
        }
        rv = buf_pg_array(&cols[j], col, m);
    }
    free(col);
    return rv;
}

static void free_columns(struct buf *cols, size_t ncols)
{
    for (size_t j = 0; j < ncols; j++)
        buf_free(&cols[j]);
}

/* Run `sql` with the columns as its parameters. */
static PGresult *exec_columns(PGconn *db, const char *sql, struct buf *cols, size_t ncols,
                              bool keyed)
{
    const char *v[SAVE_NVALS];
    for (size_t j = 0; j < ncols && j < SAVE_NVALS; j++)
        v[j] = buf_cstr(&cols[j]);
    /* not prepared unless keyed: a generic plan made while the table was young stays slow */
    return keyed ? db_exec_fixed(db, sql, (int)ncols, v)
                 : PQexecParams(db, sql, (int)ncols, NULL, v, NULL, NULL, 0);
}

static int by_case_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* SW_EINVAL, naming it, when a case comes twice in `w` (sorted, so any batch size is cheap). */
static sw_err distinct_cases(const struct casedb_write *w, size_t n, char *err, size_t errlen)
{
    const char **ids = malloc(n * sizeof(*ids));
    sw_err rv = SW_OK;
    if (ids == NULL) {
        snprintf(err, errlen, "out of memory writing %zu cases", n);
        return SW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = w[i].x.case_id;
    qsort(ids, n, sizeof(*ids), by_case_id);
    for (size_t i = 1; rv == SW_OK && i < n; i++)
        if (strcmp(ids[i], ids[i - 1]) == 0) {
            snprintf(err, errlen, "case %s twice in one write", ids[i]);
            rv = SW_EINVAL;
        }
    free(ids);
    return rv;
}

static sw_err save_many(PGconn *db, struct casedb_write *w, size_t n, bool keyed, char *err,
                        size_t errlen)
{
    struct case_row *rows = NULL;
    struct handoff_row *hrows = NULL;
    bool *skip = NULL;
    struct buf cols[SAVE_NVALS];
    PGresult *r = NULL;
    sw_err rv = SW_OK;

    if (n == 0)
        return SW_OK;
    if ((rv = distinct_cases(w, n, err, errlen)) != SW_OK)
        return rv;
    rows = calloc(n, sizeof(*rows));
    hrows = calloc(n, sizeof(*hrows));
    skip = calloc(n, sizeof(*skip));
    if (rows == NULL || hrows == NULL || skip == NULL) {
        rv = SW_ENOMEM;
        snprintf(err, errlen, "out of memory writing %zu cases", n);
        goto out;
    }
    /* the cases, and the handoffs of those that have one (skip the others) */
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        struct kept k = kept_of(w[i].cmd);
        case_row(&rows[i], &w[i].x, w[i].old, &w[i].res->next, &k);
        w[i].lost = true;
        skip[i] = w[i].res->handoff_kind == NULL;
        if (!skip[i]) {
            handoff_row(&hrows[i], &w[i].x, w[i].res);
            snprintf(hrows[i].k, sizeof(hrows[i].k), "%zu", i + 1);
            hrows[i].v[HANDOFF_NVALS] = hrows[i].k;
            nh++;
        }
    }
    rv = columns(cols, CASE_NVALS, rows, n, sizeof(*rows), offsetof(struct case_row, v), NULL);
    sw_err hrv = columns(cols + CASE_NVALS, HANDOFF_NVALS + 1, hrows, n, sizeof(*hrows),
                         offsetof(struct handoff_row, v), skip);
    if (rv == SW_OK)
        rv = hrv;
    if (rv == SW_OK)
        r = exec_columns(db, keyed ? save_many_keyed_sql : save_many_sql, cols, SAVE_NVALS, keyed);
    free_columns(cols, SAVE_NVALS);
    if (rv != SW_OK) {
        snprintf(err, errlen, "out of memory writing %zu cases and %zu handoffs", n, nh);
        goto out;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail(db, r, "could not update the cases and record their handoffs", err, errlen);
        goto out;
    }
    for (int t = 0; t < PQntuples(r); t++) {
        long i = strtol(PQgetvalue(r, t, 0), NULL, 10) - 1;
        if (i >= 0 && (size_t)i < n)
            w[i].lost = false;
    }
    PQclear(r);
    r = NULL;
    /* the rarer rows beside the case, one command at a time */
    for (size_t i = 0; rv == SW_OK && i < n; i++)
        if (!w[i].lost)
            rv = save_extras(db, &w[i].x, w[i].cmd, w[i].old, w[i].res, err, errlen);
out:
    PQclear(r);
    free(rows);
    free(hrows);
    free(skip);
    return rv;
}

sw_err casedb_save_many(PGconn *db, struct casedb_write *w, size_t n, char *err, size_t errlen)
{
    return save_many(db, w, n, false, err, errlen);
}

sw_err casedb_save_many_keyed(PGconn *db, struct casedb_write *w, size_t n, char *err,
                              size_t errlen)
{
    return save_many(db, w, n, true, err, errlen);
}

sw_err casedb_look_up(PGconn *db, const char *site_id, const char *person, const char *staff,
                      const char *const *depts, size_t ndepts, const char *head_of,
                      struct casedb_lookups *lu, char *err, size_t errlen)
{
    struct buf arr;
    buf_init(&arr, 1u << 16);
    buf_pg_array(&arr, depts, ndepts);
    const char *v[] = {site_id, person, staff, buf_cstr(&arr), head_of};
    PGresult *r = db_exec_fixed(
        db,
        "SELECT (SELECT d.code FROM core.staff s JOIN core.departments d ON d.id = "
        "s.department_id WHERE s.site_id = $1::uuid AND s.code = $2), "
        "(SELECT b.code FROM core.staff s JOIN core.staff b ON b.id = s.supervisor_id "
        " WHERE s.site_id = $1::uuid AND s.code = $2 AND b.active), "
        "(SELECT s.active FROM core.staff s WHERE s.site_id = $1::uuid AND s.code = $3), "
        "(SELECT d.code FROM core.staff s JOIN core.departments d ON d.id = s.department_id "
        " WHERE s.site_id = $1::uuid AND s.code = $3), "
        "(SELECT count(DISTINCT d.code) FROM core.departments d WHERE d.site_id = $1::uuid AND "
        " d.active AND d.code = ANY($4::text[])) = cardinality(ARRAY(SELECT DISTINCT "
        " unnest($4::text[]))), "
        "(SELECT s.code FROM core.staff s JOIN core.departments d ON d.id = s.department_id "
        " WHERE d.site_id = $1::uuid AND d.code = $5 AND s.active AND s.role IN "
        " ('department_head', 'supervisor', 'manager') ORDER BY CASE s.role WHEN "
        " 'department_head' THEN 0 WHEN 'supervisor' THEN 1 ELSE 2 END, s.on_duty DESC, s.code "
        " LIMIT 1), "
        "(SELECT s.active FROM core.staff s WHERE s.site_id = $1::uuid AND s.code = $2), "
        "(SELECT s.role FROM core.staff s WHERE s.site_id = $1::uuid AND s.code = $3)",
        5, v);
    buf_free(&arr);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        sw_err rv =
            db_fail(db, r, "could not look up the command's people and departments", err, errlen);
        PQclear(r);
        return rv;
    }
    memset(lu, 0, sizeof(*lu));
    put(lu->actor_department, sizeof(lu->actor_department), r, 0, 0);
    put(lu->actor_supervisor, sizeof(lu->actor_supervisor), r, 0, 1);
    lu->staff_found = !PQgetisnull(r, 0, 2) && PQgetvalue(r, 0, 2)[0] == 't';
    put(lu->staff_department, sizeof(lu->staff_department), r, 0, 3);
    lu->department_found = PQgetvalue(r, 0, 4)[0] == 't';
    lu->has_head = !PQgetisnull(r, 0, 5);
    put(lu->department_head, sizeof(lu->department_head), r, 0, 5);
    lu->person_found = !PQgetisnull(r, 0, 6) && PQgetvalue(r, 0, 6)[0] == 't';
    put(lu->staff_role, sizeof(lu->staff_role), r, 0, 7);
    PQclear(r);
    return SW_OK;
}
