/*
 * handle_action.c - POST /v1/cases/{id}/actions/{command}: one workflow
 * command on one case, by a staff member (their bearer token).
 *
 * The command's name is the URL's last segment (wf_command_parse: "transfer",
 * "accept", "return", ...).  The body is a JSON object whose members are
 * the fields of that command's message in commands.proto, by the same
 * names ("to_department", "reason", ...), plus "on_behalf_of" (a staff
 * code, for a receptionist recording what a handler did) and
 * "command_id" (a UUID; a retry may reuse it).  Enums are their lower-case
 * names ("satisfied", "third_party", "manager"); times are RFC 3339
 * ("2026-11-30T18:00:00+08:00"), a local date or local time of the site
 * ("2026-11-30", "2026-11-30T18:00"), or unix microseconds.
 *
 * If-Match carries the version the caller saw (the ETag of GET
 * /v1/cases/{id}).  In one transaction: the case is locked, its version
 * compared (412 when stale), the rules applied (common/workflow.c: 403 for
 * the role or position, 409 with the rule's reason for the case's state,
 * 422 naming a field), the case updated, the handoff signed and timed
 * (core.handoffs), notes kept (core.case_notes), the lead and assisting
 * departments kept (core.case_departments), a leader's call-back recorded
 * (core.leader_callbacks), and the events written to the outbox.  The
 * answer is the case as it now is (as GET /v1/cases/{id}), with its new ETag.
 *
 * API keys do not act on cases: an external system only submits and
 * reads (403); the services act through the bus.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "casedb.h"
#include "db.h"
#include "intake.h"
#include "workflow.h"

#define ACT_MAX_REPEATED 16
#define ACT_TEXT_MAX     10000 /* characters of any text member: a reason, a note, a result */
#define US_PER_DAY       (86400 * INT64_C(1000000))

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void reply_field(struct job *j, const char *field, const char *message)
{
    struct field_error fe;
    size_t f = strnlen(field, sizeof(fe.field) - 1), m = strnlen(message, sizeof(fe.message) - 1);
    while (f > 0 && ((unsigned char)field[f] & 0xC0) == 0x80) /* never cut a character in two */
        f--;
    while (m > 0 && ((unsigned char)message[m] & 0xC0) == 0x80)
        m--;
    memcpy(fe.field, field, f); /* cut short if need be */
    fe.field[f] = '\0';
    memcpy(fe.message, message, m);
    fe.message[m] = '\0';
    job_reply_fields(j, &fe, 1);
}

/* ------------------------------------------------------------ times in the body */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

/*
 * Parses "YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM|-HH:MM]".  Writes the
 * wall time as "YYYY-MM-DD HH:MM:SS.ffffff" into `local` and, when an offset
 * was given, the instant into *us (and sets *zoned).
 */
bool parse_time(const char *s, char *local, size_t llen, int64_t *us, bool *zoned)
{
    int y, mo, d, h = 0, mi = 0, se = 0, frac = 0;
    size_t n = strlen(s), i = 10;
    if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &d) || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
        d > days_in_month(y, mo))
        return false;
    if (i < n && (s[i] == 'T' || s[i] == ' ')) {
        if (n < i + 6 || !digits(s + i + 1, 2, &h) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &mi) || h > 23 || mi > 59)
            return false;
        i += 6;
        if (i < n && s[i] == ':') {
            if (n < i + 3 || !digits(s + i + 1, 2, &se) || se > 59)
                return false;
            i += 3;
            if (i < n && s[i] == '.') {
                int k = 0;
                for (i++; i < n && isdigit((unsigned char)s[i]); i++, k++)
                    if (k < 6)
                        frac = frac * 10 + (s[i] - '0');
                if (k == 0)
                    return false;
                for (; k < 6; k++)
                    frac *= 10;
            }
        }
    }
    *zoned = false;
    if (i < n) {
        int oh = 0, om = 0, sign = 1;
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
            /* UTC */
        } else if ((s[i] == '+' || s[i] == '-') && n == i + 6 && digits(s + i + 1, 2, &oh) &&
                   s[i + 3] == ':' && digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
            sign = s[i] == '-' ? -1 : 1;
        } else {
            return false;
        }
        struct tm tm = {.tm_year = y - 1900,
                        .tm_mon = mo - 1,
                        .tm_mday = d,
                        .tm_hour = h,
                        .tm_min = mi,
                        .tm_sec = se};
        time_t t = timegm(&tm) - (time_t)sign * (oh * 3600 + om * 60);
        *us = (int64_t)t * 1000000 + frac;
        *zoned = true;
    }
    snprintf(local, llen, "%04d-%02d-%02d %02d:%02d:%02d.%06d", y, mo, d, h, mi, se, frac);
    return true;
}

/* A local wall time of the site as unix microseconds (the site's zone is valid). */
static sw_err local_to_us(PGconn *db, const char *local, const char *zone, int64_t *us, char *err,
                          size_t errlen)
{
    const char *v[] = {local, zone};
    PGresult *r = PQexecParams(db,
                               "SELECT (extract(epoch FROM ($1::timestamp AT TIME ZONE $2)) * "
                               "1000000)::bigint",
                               2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        sw_err rv = db_fail(db, r, "could not convert a local time", err, errlen);
        PQclear(r);
        return rv;
    }
    *us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return SW_OK;
}

/* ------------------------------------------------------- the body as a command */

/* What building the command allocated (the strings stay in the JSON body). */
struct built {
    ProtobufCMessage *sub;
    char **arrays[4];
    int narrays;
};

static void built_free(struct built *b)
{
    free(b->sub);
    for (int i = 0; i < b->narrays; i++)
        free(b->arrays[i]);
}

/* "satisfied" for SATISFACTION_SATISFIED: the value's name without the enum's prefix. */
static bool enum_from(const ProtobufCEnumDescriptor *ed, const char *s, int *out)
{
    const char *unspec = NULL;
    for (unsigned i = 0; i < ed->n_values; i++)
        if (ed->values[i].value == 0)
            unspec = ed->values[i].name;
    if (unspec == NULL)
        return false;
    size_t plen = strlen(unspec) - strlen("UNSPECIFIED");
    for (unsigned i = 0; i < ed->n_values; i++) {
        const char *name = ed->values[i].name;
        if (ed->values[i].value == 0 || strlen(name) <= plen)
            continue;
        if (strcasecmp(name + plen, s) == 0) {
            for (const char *c = s; *c; c++) /* lower case only, as the API documents */
                if (isupper((unsigned char)*c))
                    return false;
            *out = ed->values[i].value;
            return true;
        }
    }
    return false;
}

static void enum_choices(const ProtobufCEnumDescriptor *ed, char *out, size_t len)
{
    const char *unspec = NULL;
    size_t o = 0;
    for (unsigned i = 0; i < ed->n_values; i++)
        if (ed->values[i].value == 0)
            unspec = ed->values[i].name;
    size_t plen = unspec ? strlen(unspec) - strlen("UNSPECIFIED") : 0;
    out[0] = '\0';
    for (unsigned i = 0; i < ed->n_values && o + 2 < len; i++) {
        if (ed->values[i].value == 0)
            continue;
        int w = snprintf(out + o, len - o, "%s", o ? ", " : "");
        o += (size_t)w;
        for (const char *c = ed->values[i].name + plen; *c && o + 1 < len; c++)
            out[o++] = (char)tolower((unsigned char)*c);
        out[o] = '\0';
    }
}

/*
 * Fill the command's message from the body.  Answers 422 (and returns
 * false) naming the first member that is unknown or of the wrong kind.
 */
static bool build(PGconn *db, struct job *j, const ProtobufCMessageDescriptor *md, int64_t created,
                  int64_t now, struct built *b, sw_err *dbrv, char *err, size_t errlen)
{
    char msg[200];
    const char *key;
    json_t *val;
    b->sub = calloc(1, md->sizeof_message);
    if (b->sub == NULL) {
        job_reply_error(j, 503, "out of memory");
        return false;
    }
    protobuf_c_message_init(md, b->sub);
    json_object_foreach(j->json, key, val)
    {
        if (strcmp(key, "on_behalf_of") == 0 || strcmp(key, "command_id") == 0) {
            if (!json_is_string(val)) {
                reply_field(j, key, "must be a string");
                return false;
            }
            continue;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(md, key);
        if (f == NULL) {
            snprintf(msg, sizeof(msg), "unknown member for %s", j->command);
            reply_field(j, key, msg);
            return false;
        }
        char *at = (char *)b->sub + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = json_array_size(val);
            if (f->type != PROTOBUF_C_TYPE_STRING || !json_is_array(val) || n > ACT_MAX_REPEATED ||
                b->narrays == 4) {
                snprintf(msg, sizeof(msg), "must be an array of at most %d strings",
                         ACT_MAX_REPEATED);
                reply_field(j, key, msg);
                return false;
            }
            char **arr = calloc(n ? n : 1, sizeof(char *));
            if (arr == NULL) {
                job_reply_error(j, 503, "out of memory");
                return false;
            }
            b->arrays[b->narrays++] = arr;
            for (size_t i = 0; i < n; i++) {
                if (!json_is_string(json_array_get(val, i))) {
                    reply_field(j, key, "must be an array of strings");
                    return false;
                }
                arr[i] = (char *)json_string_value(json_array_get(val, i));
            }
            *(size_t *)((char *)b->sub + f->quantifier_offset) = n;
            *(char ***)at = arr;
            continue;
        }
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
            if (!json_is_string(val)) {
                reply_field(j, key, "must be a string");
                return false;
            }
            if (utf8_chars(json_string_value(val)) > ACT_TEXT_MAX) {
                snprintf(msg, sizeof(msg), "is too long (at most %d characters)", ACT_TEXT_MAX);
                reply_field(j, key, msg);
                return false;
            }
            *(const char **)at = json_string_value(val);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            if (!json_is_boolean(val)) {
                reply_field(j, key, "must be true or false");
                return false;
            }
            *(protobuf_c_boolean *)at = json_is_true(val);
            break;
        case PROTOBUF_C_TYPE_ENUM: {
            int v;
            if (!json_is_string(val) || !enum_from(f->descriptor, json_string_value(val), &v)) {
                char choices[160];
                enum_choices(f->descriptor, choices, sizeof(choices));
                snprintf(msg, sizeof(msg), "must be one of: %s", choices);
                reply_field(j, key, msg);
                return false;
            }
            *(int *)at = v;
            break;
        }
        case PROTOBUF_C_TYPE_INT64: {
            int64_t us = 0;
            if (json_is_integer(val) && json_integer_value(val) >= 0) {
                us = json_integer_value(val);
            } else if (json_is_string(val)) {
                char local[40];
                bool zoned;
                if (!parse_time(json_string_value(val), local, sizeof(local), &us, &zoned)) {
                    reply_field(j, key,
                                "must be a time: RFC 3339 (2026-11-30T18:00:00+08:00), a local "
                                "date or time of the site (2026-11-30, 2026-11-30T18:00), or unix "
                                "microseconds");
                    return false;
                }
                if (!zoned &&
                    (*dbrv = local_to_us(db, local, j->who.time_zone, &us, err, errlen)) != SW_OK)
                    return false;
            } else {
                reply_field(j, key, "must be a time (RFC 3339 text) or unix microseconds");
                return false;
            }
            /* When something was done (contacted_at, called_at): during the
             * case's life, not in the future; a date promised or awaited:
             * within ten years. */
            bool done = strcmp(key, "contacted_at") == 0 || strcmp(key, "called_at") == 0;
            int64_t lo = done ? created - 60 * INT64_C(1000000) : 946684800 * INT64_C(1000000);
            int64_t hi = done ? now + 300 * INT64_C(1000000) : now + 3653 * US_PER_DAY;
            if (us < lo || us > hi) {
                reply_field(j, key,
                            done ? "must be a time between the case's registration and now"
                                 : "must be a time between 2000 and ten years from now");
                return false;
            }
            *(int64_t *)at = us;
            break;
        }
        default:
            reply_field(j, key, "is not accepted over HTTP");
            return false;
        }
    }
    return true;
}

/* A string member of the command's message, or "" (protobuf-c's empty string). */
static const char *member_str(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return "";
    const char *s = *(const char *const *)((const char *)m + f->offset);
    return s != NULL ? s : "";
}

/* ------------------------------------------------------------ the look-ups */

/* ------------------------------------------------------------------ the action */

/* If-Match: 7, "7" or W/"7".  Returns false when it is not a version. */
static bool parse_if_match(const char *s, int64_t *out)
{
    if (strncmp(s, "W/", 2) == 0)
        s += 2;
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v >= 1;
}

static uint16_t wf_status_code(enum wf_err e)
{
    switch (e) {
    case WF_EINVAL:
        return 422;
    case WF_EFORBIDDEN:
        return 403;
    case WF_ECONFLICT:
        return 412;
    default:
        return 409;
    }
}

sw_err case_action(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen)
{
    Shouwen__V1__Command__CommandCase which;
    char msg[300];
    int64_t expected;
    sw_err rv = SW_OK;

    if (!wf_command_parse(j->command, &which) ||
        which == SHOUWEN__V1__COMMAND__COMMAND_REGISTER_CASE) {
        snprintf(msg, sizeof(msg),
                 "no such command: \"%.40s\" (one of: resolve_on_spot, assign, transfer, accept, "
                 "return, forward, first_contact, progress, resolve, callback, reopen, escalate, "
                 "designate_lead, refer_out, close_unresolvable, wait, resume, "
                 "request_leader_callback, acknowledge_emergency)",
                 j->command);
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    if (j->who.kind != 't') {
        job_reply_error(j, 403,
                        "an API key may only register and read cases; staff act on cases with "
                        "their bearer token");
        return SW_OK;
    }
    if (j->if_match[0] == '\0') {
        job_reply_error(j, 428,
                        "If-Match is required: send the version you last read (the ETag of GET "
                        "/v1/cases/{id}), so that a change made meanwhile is not overwritten");
        return SW_OK;
    }
    if (!parse_if_match(j->if_match, &expected)) {
        job_reply_error(j, 400,
                        "malformed If-Match header: expected the case's version, e.g. \"3\"");
        return SW_OK;
    }
    json_t *cid = json_object_get(j->json, "command_id");
    if (cid != NULL &&
        (!json_is_string(cid) || !is_uuid(json_string_value(cid), json_string_length(cid)))) {
        reply_field(j, "command_id", "must be a UUID");
        return SW_OK;
    }

    /* the case, locked until the commit */
    struct wf_case cur;
    bool found = false;
    if ((rv = casedb_load(db, j->case_id, j->who.site_id, &cur, &found, err, errlen)) != SW_OK)
        return rv;
    if (!found) {
        snprintf(msg, sizeof(msg), "no such case: %s", j->case_id);
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    if (cur.version != expected) {
        snprintf(msg, sizeof(msg),
                 "the case changed meanwhile: it is at version %lld, not %lld; read it again",
                 (long long)cur.version, (long long)expected);
        job_reply_error(j, 412, msg);
        snprintf(j->etag, sizeof(j->etag), "\"%lld\"", (long long)cur.version);
        return SW_OK;
    }

    /* the command */
    const ProtobufCFieldDescriptor *cf =
        protobuf_c_message_descriptor_get_field(&shouwen__v1__command__descriptor, (unsigned)which);
    struct built b = {0};
    Shouwen__V1__Command cmd = SHOUWEN__V1__COMMAND__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    Shouwen__V1__Role role = SHOUWEN__V1__ROLE__ROLE_UNSPECIFIED;
    char command_id[37];
    json_t *obo = json_object_get(j->json, "on_behalf_of");
    if (cf == NULL || cf->descriptor == NULL) {
        job_reply_error(j, 404, "no such command");
        return SW_OK;
    }
    int64_t now = now_us();
    if (!build(db, j, cf->descriptor, cur.created_at, now, &b, &rv, err, errlen)) {
        built_free(&b);
        return rv;
    }
    if (cid != NULL)
        snprintf(command_id, sizeof(command_id), "%s", json_string_value(cid));
    else if ((rv = bus_uuid_v7(command_id)) != SW_OK) {
        built_free(&b);
        snprintf(err, errlen, "could not make a command id");
        return rv;
    }
    wf_role_parse(j->who.role, &role);
    actor.staff_code = j->who.name;
    actor.role = role;
    actor.on_behalf_of = obo != NULL ? (char *)json_string_value(obo) : (char *)"";
    cmd.command_id = command_id;
    cmd.site = j->who.site;
    cmd.case_id = cur.id;
    cmd.expected_version = expected;
    cmd.actor = &actor;
    cmd.time = now;
    cmd.command_case = which;
    *(ProtobufCMessage **)((char *)&cmd + cf->offset) = b.sub;

    /* what the rules need to know */
    const char *person = actor.on_behalf_of[0] ? actor.on_behalf_of : j->who.name;
    const char *staff = member_str(b.sub, "to_staff");
    if (!staff[0])
        staff = member_str(b.sub, "handler");
    if (!staff[0])
        staff = member_str(b.sub, "leader");
    const char *depts[1 + ACT_MAX_REPEATED];
    size_t nd = 0;
    const char *head_of = member_str(b.sub, "to_department");
    if (!head_of[0])
        head_of = member_str(b.sub, "lead_department");
    if (head_of[0])
        depts[nd++] = head_of;
    if (which == SHOUWEN__V1__COMMAND__COMMAND_DESIGNATE_LEAD)
        for (size_t i = 0; i < cmd.designate_lead->n_assisting_departments && nd < 17; i++)
            depts[nd++] = cmd.designate_lead->assisting_departments[i];
    struct casedb_lookups lu;
    if ((rv = casedb_look_up(db, j->who.site_id, person, staff, depts, nd, head_of, &lu, err,
                             errlen)) != SW_OK) {
        built_free(&b);
        return rv;
    }
    if (which == SHOUWEN__V1__COMMAND__COMMAND_REQUEST_LEADER_CALLBACK &&
        cmd.request_leader_callback->callback_phone[0] != '\0' &&
        !phone_ok(cmd.request_leader_callback->callback_phone)) {
        reply_field(j, "callback_phone",
                    "must be a phone number: 5-20 digits, optionally with a leading +, spaces, "
                    "hyphens or parentheses");
        built_free(&b);
        return SW_OK;
    }
    if (actor.on_behalf_of[0] != '\0' && !lu.person_found) {
        snprintf(msg, sizeof(msg), "no active staff member \"%.40s\" of this site",
                 actor.on_behalf_of);
        reply_field(j, "on_behalf_of", msg);
        built_free(&b);
        return SW_OK;
    }
    if (which == SHOUWEN__V1__COMMAND__COMMAND_REQUEST_LEADER_CALLBACK && lu.staff_found &&
        strcmp(lu.staff_role, "leader") != 0) {
        reply_field(j, "leader", "must name a leader (a staff member of role leader)");
        built_free(&b);
        return SW_OK;
    }
    struct wf_context ctx = {
        .now = cmd.time,
        .actor_department = lu.actor_department,
        .actor_supervisor = lu.actor_supervisor,
        .staff_found = lu.staff_found,
        .staff_department = lu.staff_department,
        .department_found = nd == 0 || lu.department_found,
        .department_head = lu.has_head ? lu.department_head : NULL,
    };
    struct wf_result *res = malloc(sizeof(*res));
    struct wf_error we = {0};
    if (res == NULL) {
        built_free(&b);
        job_reply_error(j, 503, "out of memory");
        return SW_OK;
    }
    enum wf_err e = wf_apply(&cur, &cmd, &ctx, res, &we);
    if (e != WF_OK) {
        if (e == WF_EINVAL && we.field != NULL)
            reply_field(j, we.field, we.message);
        else
            job_reply_error(j, wf_status_code(e), we.message);
        free(res);
        built_free(&b);
        return SW_OK;
    }

    /* write it all: the case, the handoff, the rows beside it, the events */
    char event_ids[WF_MAX_EVENTS][37];
    bool lost = false;
    for (size_t i = 0; rv == SW_OK && i < res->n_events; i++) {
        if ((rv = bus_uuid_v7(event_ids[i])) == SW_OK) {
            res->events[i].event_id = event_ids[i];
            rv = bus_outbox_add(ob, &res->events[i]);
        }
    }
    if (rv != SW_OK)
        snprintf(err, errlen, "could not stage the events of %s", j->command);
    struct casedb_ctx cx = {.site_id = j->who.site_id,
                            .case_id = cur.id,
                            .staff_id = j->who.id,
                            .time_zone = j->who.time_zone,
                            .on_behalf_of = actor.on_behalf_of[0] ? actor.on_behalf_of : NULL,
                            .at = cmd.time,
                            .event_id = res->n_events > 0 ? event_ids[0] : NULL};
    if (rv == SW_OK)
        rv = casedb_save(db, &cx, &cmd, &cur, res, &lost, err, errlen);
    if (rv == SW_OK && lost) {
        /* the row is locked FOR UPDATE, so this cannot happen; refuse rather than guess */
        job_reply_error(j, 412, "the case changed meanwhile; read it again");
    } else if (rv == SW_OK) {
        if (rv == SW_OK)
            rv = bus_outbox_write(ob, db, err, errlen);
        if (rv == SW_OK)
            rv = case_get(in, db, j, ob, err, errlen); /* the answer: the case as it now is */
    }
    free(res);
    built_free(&b);
    return rv;
}
