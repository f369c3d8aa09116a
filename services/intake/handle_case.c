/*
 * handle_case.c - GET /v1/cases/{id}: one case, as the caller may see it.
 *
 * A credential sees only its own site's cases; an external system's key
 * (role system or device) only the cases it submitted.  The customer's
 * phone is masked for those who do not need it (DESIGN.md section 6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"

bool phone_visible_to(const struct principal *p)
{
    static const char *const need[] = {"receptionist", "department_head", "handler",
                                       "supervisor",   "manager",         "staff"};
    if (p->kind == 'k') /* an external system sees what it sent in */
        return strcmp(p->role, "system") == 0 || strcmp(p->role, "device") == 0;
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (strcmp(p->role, need[i]) == 0)
            return true;
    return false;
}

void mask_phone(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);
    if (outlen == 0)
        return;
    if (n <= 4) {
        snprintf(out, outlen, "****");
        return;
    }
    size_t keep_head = n >= 11 ? 3 : 0, keep_tail = 4;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++)
        out[o++] = (i < keep_head || i >= n - keep_tail) ? in[i] : '*';
    out[o] = '\0';
}

static void member(struct buf *b, const char *key, const PGresult *r, int col, bool first)
{
    buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
    if (PQgetisnull(r, 0, col))
        buf_puts(b, "null");
    else
        buf_json_string(b, PQgetvalue(r, 0, col));
}

/*
 * One case (columns 0-26), its clocks as JSON (27), its lead department
 * (28) and assisting ones as a JSON array (29).
 */
// clang-format off
#define CASE_SQL                                                                                   \
    "SELECT c.id::text, c.number, c.status, c.type, c.channel, c.urgency, c.category, "           \
    "c.subject, c.description, c.customer_name, c.customer_phone, c.customer_unit, "              \
    "c.customer_address, fr.code, o.code, d.code, c.escalation_level, c.external_ref, "           \
    "c.source, c.version::text, " SQL_UTC("c.created_at") ", c.result, c.satisfaction, "           \
    "array_to_json(c.required_documents)::text, c.customer_room, c.customer_email, "              \
    "c.customer_consent, "                                                                         \
    "(SELECT coalesce(jsonb_agg(jsonb_build_object('kind', dl.kind, 'state', "                    \
    " CASE WHEN dl.met_at IS NOT NULL THEN 'met' WHEN dl.breached_at IS NOT NULL THEN 'breached' "\
    " WHEN dl.due_at IS NULL THEN 'paused' ELSE 'running' END, "                                  \
    " 'due_at', " SQL_UTC("dl.due_at") ", 'started_at', " SQL_UTC("dl.started_at") ") "           \
    " ORDER BY dl.started_at, dl.kind), '[]')::text "                                              \
    " FROM escalation.deadlines dl WHERE dl.case_id = c.id), "                                     \
    "(SELECT ld.code FROM core.case_departments cd JOIN core.departments ld ON "                   \
    " ld.id = cd.department_id WHERE cd.case_id = c.id AND cd.role = 'lead'), "                    \
    "(SELECT coalesce(array_to_json(array_agg(ad.code ORDER BY ad.code)), '[]')::text "           \
    " FROM core.case_departments cd JOIN core.departments ad ON ad.id = cd.department_id "        \
    " WHERE cd.case_id = c.id AND cd.role = 'assisting') "                                         \
    "FROM core.cases c LEFT JOIN core.staff fr ON fr.id = c.first_responder_id "                   \
    "LEFT JOIN core.staff o ON o.id = c.owner_id "                                                 \
    "LEFT JOIN core.departments d ON d.id = c.department_id "                                      \
    "WHERE c.id = $1::uuid AND c.site_id = $2::uuid"
// clang-format on

sw_err case_get(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                size_t errlen)
{
    (void)in;
    (void)ob;
    const char *v[] = {j->case_id, j->who.site_id};
    PGresult *r = PQexecParams(db, CASE_SQL, 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "could not read case %s: %s", j->case_id, PQerrorMessage(db));
        PQclear(r);
        return PQstatus(db) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
    }
    bool foreign = PQntuples(r) == 1 && j->who.kind == 'k' && strcmp(j->who.role, "admin") != 0 &&
                   strcmp(j->who.role, "reader") != 0 &&
                   strcmp(PQgetvalue(r, 0, 18), j->who.name) != 0;
    if (PQntuples(r) != 1 || foreign) {
        char msg[100];
        snprintf(msg, sizeof(msg), "no such case: %s", j->case_id);
        job_reply_error(j, 404, msg);
        PQclear(r);
        return SW_OK;
    }
    static const char *const names[] = {"id",
                                        "number",
                                        "status",
                                        "type",
                                        "channel",
                                        "urgency",
                                        "category",
                                        "subject",
                                        "description",
                                        NULL,
                                        NULL,
                                        NULL,
                                        NULL,
                                        "first_responder",
                                        "owner",
                                        "department",
                                        "escalation_level",
                                        "external_ref",
                                        "source"};
    struct buf *b = &j->body;
    j->status = 200;
    buf_reset(b);
    buf_puts(b, "{");
    for (int c = 0; c < 19; c++)
        if (names[c] != NULL)
            member(b, names[c], r, c, c == 0);
    buf_printf(b, ",\"version\":%s", PQgetvalue(r, 0, 19));
    member(b, "created_at", r, 20, false);
    member(b, "result", r, 21, false);
    member(b, "satisfaction", r, 22, false);
    buf_printf(b, ",\"required_documents\":%s", PQgetvalue(r, 0, 23)); /* JSON from the database */
    buf_puts(b, ",\"customer\":{");
    member(b, "name", r, 9, true);
    if (!PQgetisnull(r, 0, 10) && !phone_visible_to(&j->who)) {
        char masked[40];
        mask_phone(PQgetvalue(r, 0, 10), masked, sizeof(masked));
        buf_puts(b, ",\"phone\":");
        buf_json_string(b, masked);
    } else {
        member(b, "phone", r, 10, false);
    }
    member(b, "unit", r, 11, false);
    member(b, "address", r, 12, false);
    member(b, "room", r, 24, false);
    if (!PQgetisnull(r, 0, 25) && !phone_visible_to(&j->who))
        buf_puts(b, ",\"email\":\"***\""); /* as confidential as the phone */
    else
        member(b, "email", r, 25, false);
    buf_printf(b, ",\"consent\":%s", PQgetvalue(r, 0, 26)[0] == 't' ? "true" : "false");
    buf_puts(b, "},\"clocks\":");
    buf_puts(b, PQgetvalue(r, 0, 27)); /* JSON from the database */
    member(b, "lead_department", r, 28, false);
    buf_printf(b, ",\"assisting_departments\":%s}", PQgetvalue(r, 0, 29));
    snprintf(j->etag, sizeof(j->etag), "\"%s\"", PQgetvalue(r, 0, 19));
    PQclear(r);
    return SW_OK;
}
