/*
 * workflow.c - the rules of a case: wf_apply and the name tables.
 *
 * One table (rules[]) says, per command, in which statuses it is allowed
 * and who may issue it (the table of workflow.h, in code); one function
 * per command checks the payload and makes the change.  In every path all
 * checks come before the first write to the result, so a refused command
 * leaves *res as it was.  No I/O, no allocation, no global state.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "workflow.h"

#define ST(x)    SHOUWEN__V1__CASE_STATUS__CASE_STATUS_##x
#define ROLE(x)  SHOUWEN__V1__ROLE__ROLE_##x
#define CMD(x)   SHOUWEN__V1__COMMAND__COMMAND_##x
#define EV(x)    SHOUWEN__V1__ENVELOPE__EVENT_##x
#define LEVEL(x) SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_##x

#define NROLES    11 /* ROLE_UNSPECIFIED .. ROLE_EXTERNAL_SYSTEM */
#define NSTATUSES 11 /* CASE_STATUS_UNSPECIFIED .. CASE_STATUS_REFERRED_OUT */
#define CMD_FIRST CMD(REGISTER_CASE)
#define CMD_LAST  CMD(ACKNOWLEDGE_EMERGENCY)

/* ---------------------------------------------------------------- name tables */

struct name {
    int value;
    const char *name;
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const struct name *t, size_t n, int v)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].value == v)
            return t[i].name;
    return NULL;
}

static bool name_parse(const struct name *t, size_t n, const char *s, int *out)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, s) == 0) {
            *out = t[i].value;
            return true;
        }
    return false;
}

static const struct name status_names[] = {
    {ST(REGISTERED), "registered"},
    {ST(ASSIGNED), "assigned"},
    {ST(TRANSFERRED), "transferred"},
    {ST(ACCEPTED), "accepted"},
    {ST(IN_PROGRESS), "in_progress"},
    {ST(WAITING), "waiting"},
    {ST(RESOLVED), "resolved"},
    {ST(CLOSED), "closed"},
    {ST(CLOSED_UNRESOLVABLE), "closed_unresolvable"},
    {ST(REFERRED_OUT), "referred_out"},
};

static const struct name case_type_names[] = {
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_CONSULTATION, "consultation"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_COMPLAINT, "complaint"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_HELP, "help"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_SUGGESTION, "suggestion"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPAIR, "repair"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_BUSINESS, "business"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPORT, "report"},
    {SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY, "emergency"},
};

static const struct name channel_names[] = {
    {SHOUWEN__V1__CHANNEL__CHANNEL_VISIT, "visit"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_PHONE, "phone"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_LETTER, "letter"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_WEB, "web"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_EMAIL, "email"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_HOTLINE, "hotline"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_CHAT, "chat"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_SOCIAL, "social"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_MEETING, "meeting"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_CALLBACK, "callback"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_API, "api"},
    {SHOUWEN__V1__CHANNEL__CHANNEL_DEVICE, "device"},
};

static const struct name urgency_names[] = {
    {SHOUWEN__V1__URGENCY__URGENCY_NORMAL, "normal"},
    {SHOUWEN__V1__URGENCY__URGENCY_URGENT, "urgent"},
    {SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY, "emergency"},
};

static const struct name escalation_names[] = {
    {LEVEL(NONE), "none"},
    {LEVEL(SUPERVISOR), "supervisor"},
    {LEVEL(MANAGER), "manager"},
    {LEVEL(LEADER), "leader"},
};

static const struct name satisfaction_names[] = {
    {SHOUWEN__V1__SATISFACTION__SATISFACTION_SATISFIED, "satisfied"},
    {SHOUWEN__V1__SATISFACTION__SATISFACTION_BASICALLY_SATISFIED, "basically_satisfied"},
    {SHOUWEN__V1__SATISFACTION__SATISFACTION_UNSATISFIED, "unsatisfied"},
    {SHOUWEN__V1__SATISFACTION__SATISFACTION_UNREACHABLE, "unreachable"},
};

static const struct name waiting_on_names[] = {
    {SHOUWEN__V1__WAITING_ON__WAITING_ON_CUSTOMER, "customer"},
    {SHOUWEN__V1__WAITING_ON__WAITING_ON_THIRD_PARTY, "third_party"},
};

static const struct name role_names[] = {
    {ROLE(STAFF), "staff"},
    {ROLE(RECEPTIONIST), "receptionist"},
    {ROLE(DEPARTMENT_HEAD), "department_head"},
    {ROLE(HANDLER), "handler"},
    {ROLE(SUPERVISOR), "supervisor"},
    {ROLE(MANAGER), "manager"},
    {ROLE(QA), "qa"},
    {ROLE(LEADER), "leader"},
    {ROLE(SYSTEM), "system"},
    {ROLE(EXTERNAL_SYSTEM), "external_system"},
};

static const struct name command_names[] = {
    {CMD(REGISTER_CASE), "register"},
    {CMD(RESOLVE_ON_SPOT), "resolve_on_spot"},
    {CMD(ASSIGN), "assign"},
    {CMD(TRANSFER), "transfer"},
    {CMD(ACCEPT), "accept"},
    {CMD(RETURN_CASE), "return"},
    {CMD(FORWARD), "forward"},
    {CMD(FIRST_CONTACT), "first_contact"},
    {CMD(PROGRESS), "progress"},
    {CMD(RESOLVE), "resolve"},
    {CMD(CALLBACK), "callback"},
    {CMD(REOPEN), "reopen"},
    {CMD(ESCALATE), "escalate"},
    {CMD(DESIGNATE_LEAD), "designate_lead"},
    {CMD(REFER_OUT), "refer_out"},
    {CMD(CLOSE_UNRESOLVABLE), "close_unresolvable"},
    {CMD(WAIT), "wait"},
    {CMD(RESUME), "resume"},
    {CMD(REQUEST_LEADER_CALLBACK), "request_leader_callback"},
    {CMD(ACKNOWLEDGE_EMERGENCY), "acknowledge_emergency"},
};

static const struct name event_type_names[] = {
    {EV(REGISTERED), "case.registered"},
    {EV(RESOLVED_ON_SPOT), "case.resolved_on_spot"},
    {EV(ASSIGNED), "case.assigned"},
    {EV(TRANSFERRED), "case.transferred"},
    {EV(ACCEPTED), "case.accepted"},
    {EV(RETURNED), "case.returned"},
    {EV(FORWARDED), "case.forwarded"},
    {EV(FIRST_CONTACT), "case.first_contact"},
    {EV(PROGRESS), "case.progress"},
    {EV(RESOLVED), "case.resolved"},
    {EV(CALLBACK), "case.callback"},
    {EV(REOPENED), "case.reopened"},
    {EV(ESCALATED), "case.escalated"},
    {EV(LEAD_DESIGNATED), "case.lead_designated"},
    {EV(REFERRED_OUT), "case.referred_out"},
    {EV(CLOSED_UNRESOLVABLE), "case.closed_unresolvable"},
    {EV(WAITING), "case.waiting"},
    {EV(RESUMED), "case.resumed"},
    {EV(LEADER_CALLBACK_REQUESTED), "case.leader_callback_requested"},
    {EV(DEADLINE_BREACHED), "case.deadline_breached"},
    {EV(VIOLATION_RECORDED), "violation.recorded"},
    {EV(EMERGENCY_ALERTED), "emergency.alerted"},
    {EV(EMERGENCY_ACKNOWLEDGED), "emergency.acknowledged"},
    {EV(NOTIFICATION_DELIVERED), "notification.delivered"},
    {EV(NOTIFICATION_FAILED), "notification.failed"},
    {EV(AUDIT_VERIFIED), "audit.verified"},
    {EV(REVIEW_REQUESTED), "review.requested"},
};

#define NAME_FUNCS(fname, type, table)                                                             \
    const char *wf_##fname##_name(type v)                                                          \
    {                                                                                              \
        return name_of(table, COUNT(table), (int)v);                                               \
    }                                                                                              \
    bool wf_##fname##_parse(const char *name, type *out)                                           \
    {                                                                                              \
        int v = 0;                                                                                 \
        if (!name_parse(table, COUNT(table), name, &v))                                            \
            return false;                                                                          \
        *out = (type)v;                                                                            \
        return true;                                                                               \
    }

NAME_FUNCS(status, Shouwen__V1__CaseStatus, status_names)
NAME_FUNCS(case_type, Shouwen__V1__CaseType, case_type_names)
NAME_FUNCS(channel, Shouwen__V1__Channel, channel_names)
NAME_FUNCS(urgency, Shouwen__V1__Urgency, urgency_names)
NAME_FUNCS(escalation, Shouwen__V1__EscalationLevel, escalation_names)
NAME_FUNCS(satisfaction, Shouwen__V1__Satisfaction, satisfaction_names)
NAME_FUNCS(waiting_on, Shouwen__V1__WaitingOn, waiting_on_names)
NAME_FUNCS(role, Shouwen__V1__Role, role_names)
NAME_FUNCS(command, Shouwen__V1__Command__CommandCase, command_names)
NAME_FUNCS(event_type, Shouwen__V1__Envelope__EventCase, event_type_names)

const char *wf_strerror(enum wf_err err)
{
    switch (err) {
    case WF_OK:
        return "no error";
    case WF_EINVAL:
        return "invalid input";
    case WF_EFORBIDDEN:
        return "not allowed for this actor";
    case WF_ESTATE:
        return "not allowed in the case's state";
    case WF_ECONFLICT:
        return "version conflict";
    }
    return "unknown error";
}

/* ---------------------------------------------------------------- the rules table */

/* Positions (workflow.h): who may issue a command, per role. */
enum {
    OWN = 1u << 0,  /* o: the case's owner */
    DEPT = 1u << 1, /* d: a member (for department_head: the head) of the owning department */
    TEAM = 1u << 2, /* t: of the owning or an assisting department */
    FR = 1u << 3,   /* f: the natural first responder */
    ANY = 1u << 4,  /* *: anyone of the site */
};

#define S(x)     (1u << ST(x))
#define NO_CASE  (1u << ST(UNSPECIFIED))
#define HELD     (S(REGISTERED) | S(ASSIGNED) | S(ACCEPTED) | S(IN_PROGRESS))
#define OPEN     (HELD | S(TRANSFERRED))
#define OPEN_W   (OPEN | S(WAITING))
#define FINISHED (S(CLOSED) | S(CLOSED_UNRESOLVABLE) | S(REFERRED_OUT))

struct op;

struct rule {
    const char *verb; /* "cannot <verb> a case that is ..." */
    unsigned statuses;
    /* by role: unspecified, staff, receptionist, department_head, handler,
     * supervisor, manager, qa, leader, system, external_system */
    unsigned char who[NROLES];
    enum wf_err (*apply)(struct op *op);
};

/* the usual holder of a case: its owner, the owning department's head, a coord */
#define HOLDER(sys)                                                                                \
    {                                                                                              \
        0, OWN, OWN, OWN | DEPT, OWN, ANY, ANY, OWN, ANY, sys, 0                                   \
    }

static enum wf_err do_register(struct op *op);
static enum wf_err do_resolve_on_spot(struct op *op);
static enum wf_err do_assign(struct op *op);
static enum wf_err do_transfer(struct op *op);
static enum wf_err do_accept(struct op *op);
static enum wf_err do_return(struct op *op);
static enum wf_err do_forward(struct op *op);
static enum wf_err do_first_contact(struct op *op);
static enum wf_err do_progress(struct op *op);
static enum wf_err do_resolve(struct op *op);
static enum wf_err do_callback(struct op *op);
static enum wf_err do_reopen(struct op *op);
static enum wf_err do_escalate(struct op *op);
static enum wf_err do_designate_lead(struct op *op);
static enum wf_err do_refer_out(struct op *op);
static enum wf_err do_close_unresolvable(struct op *op);
static enum wf_err do_wait(struct op *op);
static enum wf_err do_resume(struct op *op);
static enum wf_err do_request_leader_callback(struct op *op);
static enum wf_err do_acknowledge_emergency(struct op *op);

/* Indexed by command_case - CMD_FIRST; the oneof numbers are contiguous. */
static const struct rule rules[] = {
    {"register", NO_CASE, {0, ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY}, do_register},
    {"resolve on the spot",
     S(REGISTERED),
     {0, OWN, OWN, OWN, OWN, OWN, OWN, OWN, OWN, 0, 0},
     do_resolve_on_spot},
    {"assign", HELD, HOLDER(ANY), do_assign},
    {"transfer", HELD, HOLDER(ANY), do_transfer},
    {"accept", S(TRANSFERRED), HOLDER(ANY), do_accept},
    {"return", S(ASSIGNED) | S(TRANSFERRED) | S(ACCEPTED) | S(IN_PROGRESS), HOLDER(0), do_return},
    {"forward", S(TRANSFERRED) | S(ACCEPTED), HOLDER(0), do_forward},
    {"record first contact on",
     S(REGISTERED) | S(ASSIGNED) | S(ACCEPTED),
     {0, OWN, OWN, OWN, OWN, OWN, OWN, OWN, OWN, 0, 0},
     do_first_contact},
    {"record progress on",
     S(IN_PROGRESS),
     {0, OWN | TEAM, OWN | TEAM, OWN | TEAM, OWN | TEAM, ANY, ANY, OWN | TEAM, ANY, 0, 0},
     do_progress},
    {"resolve", HELD, HOLDER(0), do_resolve},
    {"record a callback on",
     S(RESOLVED),
     {0, FR, ANY, FR, FR, ANY, ANY, FR, ANY, 0, 0},
     do_callback},
    {"reopen", S(RESOLVED) | FINISHED, {0, FR, FR, FR, FR, ANY, ANY, ANY, ANY, 0, 0}, do_reopen},
    {"escalate",
     OPEN_W,
     {0, OWN | FR, OWN | FR, OWN | DEPT | FR, OWN | FR, ANY, ANY, OWN | FR, ANY, ANY, 0},
     do_escalate},
    {"designate a lead department for",
     OPEN,
     {0, 0, 0, 0, 0, ANY, ANY, 0, ANY, ANY, 0},
     do_designate_lead},
    {"refer out", OPEN, HOLDER(0), do_refer_out},
    {"close as unresolvable", OPEN_W, {0, 0, 0, 0, 0, 0, ANY, 0, 0, 0, 0}, do_close_unresolvable},
    {"put on hold", HELD, HOLDER(0), do_wait},
    {"resume", S(WAITING), HOLDER(ANY), do_resume},
    {"request a leader's call-back on",
     OPEN_W | S(RESOLVED),
     {0, ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY, 0, 0},
     do_request_leader_callback},
    {"acknowledge an emergency on",
     OPEN_W,
     {0, OWN | DEPT | FR, OWN | DEPT | FR, OWN | DEPT | FR, OWN | DEPT | FR, ANY, ANY,
      OWN | DEPT | FR, ANY, 0, 0},
     do_acknowledge_emergency},
};

_Static_assert(COUNT(rules) == CMD_LAST - CMD_FIRST + 1, "one rule per command");

/* How a status reads in "cannot ... a case that is <phrase>". */
static const char *const status_phrase[NSTATUSES] = {
    "not registered", "registered", "assigned", "transferred", "accepted",
    "in progress",    "waiting",    "resolved", "closed",      "closed as unresolvable",
    "referred out",
};

/* ---------------------------------------------------------------- helpers */

struct op {
    const struct wf_case *cur; /* NULL for register */
    const Shouwen__V1__Command *cmd;
    const struct wf_context *ctx;
    struct wf_result *res;
    struct wf_error *err;
    const struct rule *rule;
    Shouwen__V1__Role role;
    bool coord;         /* supervisor, manager or leader */
    const char *staff;  /* actor.staff_code, "" for a service */
    char *person_field; /* the command's on_behalf_of when set, else staff_code */
    const char *person; /* str(person_field) */
    const char *adept;  /* the person's department, "" if none */
    int64_t now;
};

static const char *str(const char *s)
{
    return s != NULL ? s : "";
}

/* A string for a message field: never NULL (protobuf-c packs "" as absent). */
static char *pb(char *s)
{
    return s != NULL ? s : (char *)protobuf_c_empty_string;
}

static bool same(const char *a, const char *b)
{
    return strcmp(str(a), str(b)) == 0;
}

/* At least one character that is not white space (the database's btrim). */
static bool has_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)str(s); *p; p++)
        if (!isspace(*p))
            return true;
    return false;
}

/* ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$: staff and department codes. */
static bool code_ok(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)str(s); *p; p++, n++) {
        bool alnum =
            (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!alnum && (n == 0 || (*p != '_' && *p != '.' && *p != '-')))
            return false;
    }
    return n >= 1 && n < WF_CODE_SIZE;
}

/* ^[A-Z][A-Z0-9]{1,15}$: site codes. */
static bool site_ok(const char *s)
{
    size_t n = 0;
    for (const char *p = str(s); *p; p++, n++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (n > 0 && *p >= '0' && *p <= '9');
        if (!ok)
            return false;
    }
    return n >= 2 && n < WF_SITE_SIZE;
}

/* SITE-YYYYMMDD-NNNN..NNNNNNNN for `site`. */
static bool number_ok(const char *s, const char *site)
{
    size_t sl = strlen(site);
    if (strncmp(s, site, sl) != 0 || s[sl] != '-')
        return false;
    const char *p = s + sl + 1;
    size_t n = 0;
    for (; n < 8; n++)
        if (p[n] < '0' || p[n] > '9')
            return false;
    if (p[8] != '-')
        return false;
    p += 9;
    for (n = 0; p[n] >= '0' && p[n] <= '9'; n++)
        ;
    return p[n] == '\0' && n >= 4 && n <= 8;
}

/* Copies a string known to fit (checked by the caller). */
static void set(char *dst, size_t size, const char *src)
{
    size_t n = strlen(str(src));
    if (n >= size)
        n = size - 1;
    memcpy(dst, str(src), n);
    dst[n] = '\0';
}

#define SET(dst, src) set((dst), sizeof(dst), (src))

static enum wf_err fail(struct op *op, enum wf_err code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum wf_err fail(struct op *op, enum wf_err code, const char *field, const char *fmt, ...)
{
    va_list ap;
    op->err->code = code;
    op->err->field = field;
    va_start(ap, fmt);
    vsnprintf(op->err->message, sizeof(op->err->message), fmt, ap);
    va_end(ap);
    return code;
}

static enum wf_err need_text(struct op *op, const char *s, const char *field)
{
    if (!has_text(s))
        return fail(op, WF_EINVAL, field, "%s is required", field);
    return WF_OK;
}

static enum wf_err need_code(struct op *op, const char *s, const char *field)
{
    if (!has_text(s))
        return fail(op, WF_EINVAL, field, "%s is required", field);
    if (!code_ok(s))
        return fail(op, WF_EINVAL, field,
                    "%s must be a code of 1 to 32 letters, digits, '_', '.' or '-'", field);
    return WF_OK;
}

static enum wf_err need_time(struct op *op, int64_t t, const char *field)
{
    if (t < 0)
        return fail(op, WF_EINVAL, field, "%s must not be negative", field);
    return WF_OK;
}

/* A value the caller looked up: empty, or a well-formed code. */
static enum wf_err lookup(struct op *op, const char *s, const char *field, const char **out)
{
    if (str(s)[0] != '\0' && !code_ok(s))
        return fail(op, WF_EINVAL, field, "%s from the caller is not a code", field);
    *out = str(s);
    return WF_OK;
}

static enum wf_err need_staff(struct op *op, const char *s, const char *field)
{
    enum wf_err rv = need_code(op, s, field);
    if (rv == WF_OK && !op->ctx->staff_found)
        rv = fail(op, WF_EINVAL, field, "%s is not an active staff member of the site", field);
    return rv;
}

static enum wf_err need_department(struct op *op, const char *s, const char *field)
{
    enum wf_err rv = need_code(op, s, field);
    if (rv == WF_OK && !op->ctx->department_found)
        rv = fail(op, WF_EINVAL, field, "%s is not an active department of the site", field);
    return rv;
}

static bool returned_by(const struct wf_case *c, const char *dept)
{
    for (size_t i = 0; i < c->n_returned && i < WF_MAX_RETURNED; i++)
        if (same(c->returned_by[i], dept))
            return true;
    return false;
}

static bool in_team(const struct wf_case *c, const char *dept)
{
    if (dept[0] == '\0')
        return false;
    if (same(c->department, dept))
        return true;
    for (size_t i = 0; i < c->n_assisting && i < WF_MAX_ASSIST; i++)
        if (same(c->assisting[i], dept))
            return true;
    return false;
}

static Shouwen__V1__EscalationLevel level_of(const struct wf_case *c)
{
    return c->escalation_level == LEVEL(UNSPECIFIED) ? LEVEL(NONE) : c->escalation_level;
}

/* Only a coord moves a case whose lead department was designated. */
static enum wf_err lead_guard(struct op *op)
{
    if (op->cur->lead_department[0] != '\0' && !op->coord)
        return fail(op, WF_EFORBIDDEN, NULL,
                    "department %s was designated lead: only a supervisor, manager or leader "
                    "may move the case",
                    op->cur->lead_department);
    return WF_OK;
}

/* ---------------------------------------------------------------- writing the result */

/* The first write to *res: every check has passed. */
static void begin(struct op *op)
{
    struct wf_result *r = op->res;
    if (op->cur != NULL && op->cur->status != ST(UNSPECIFIED)) {
        r->next = *op->cur;
        r->next.version++;
    } else {
        memset(&r->next, 0, sizeof(r->next));
        r->next.version = 1;
    }
    r->next.updated_at = op->now;
    r->n_events = 0;
    r->handoff_kind = NULL;
    shouwen__v1__handoff__init(&r->handoff);
    r->actor_ = *op->cmd->actor; /* shallow: the strings stay the command's */
    SET(r->from_staff_, r->next.owner);
    SET(r->from_department_, r->next.department);
}

/* Appends an envelope for `kind`; *msg is the storage for its event message. */
static Shouwen__V1__Envelope *add_event(struct op *op, Shouwen__V1__Envelope__EventCase kind,
                                        union wf__event_msg **msg)
{
    struct wf_result *r = op->res;
    size_t i = r->n_events++;
    Shouwen__V1__Envelope *e = &r->events[i];
    shouwen__v1__envelope__init(e);
    /* static text; protobuf-c only reads it */
    e->type = (char *)wf_event_type_name(kind);
    e->site = r->next.site;
    e->case_id = r->next.id;
    e->case_version = r->next.version;
    e->time = op->now;
    e->actor = &r->actor_;
    e->command_id = pb(op->cmd->command_id);
    e->event_case = kind;
    *msg = &r->msg_[i];
    return e;
}

/* Records the handoff from the previous owner to (to_staff, to_department). */
static Shouwen__V1__Handoff *handoff(struct op *op, const char *kind, char *to_staff,
                                     char *to_department, char *reason, char *slip)
{
    struct wf_result *r = op->res;
    Shouwen__V1__Handoff *h = &r->handoff;
    r->handoff_kind = kind;
    h->from_staff = r->from_staff_;
    h->from_department = r->from_department_;
    h->to_staff = pb(to_staff);
    h->to_department = pb(to_department);
    h->reason = pb(reason);
    h->signed_by = pb(op->cmd->actor->staff_code);
    h->time = op->now;
    h->slip_number = pb(slip);
    return h;
}

static void clear_lead(struct wf_case *c)
{
    c->lead_department[0] = '\0';
    c->n_assisting = 0;
    memset(c->assisting, 0, sizeof(c->assisting));
}

static void leave_waiting(struct wf_case *c, int64_t now)
{
    if (c->waiting_since > 0 && now > c->waiting_since)
        c->paused_total_us += now - c->waiting_since;
    c->waiting_since = 0;
    c->waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_UNSPECIFIED;
    c->status_before_waiting = ST(UNSPECIFIED);
}

/* The person for event fields such as resolved_by: "" only for a service. */
static char *person(struct op *op)
{
    return pb(op->person_field);
}

/* ---------------------------------------------------------------- the commands */

static enum wf_err do_register(struct op *op)
{
    const Shouwen__V1__RegisterCase *m = op->cmd->register_case;
    const struct wf_context *ctx = op->ctx;
    const char *site = str(op->cmd->site)[0] ? op->cmd->site : str(m->site);
    const char *id = str(ctx->new_case_id);
    const char *number = str(ctx->new_case_number);
    const char *fr = str(m->first_responder)[0] ? m->first_responder : op->person;
    const char *frdept = "";
    Shouwen__V1__Urgency urgency = m->urgency;
    enum wf_err rv;

    if (!site_ok(site))
        return fail(op, WF_EINVAL, "site",
                    "site must be a site code: an upper-case letter, then 1 to 15 upper-case "
                    "letters or digits");
    if (str(m->site)[0] && !same(m->site, site))
        return fail(op, WF_EINVAL, "site", "register_case.site does not match the command's site");
    if (id[0] == '\0' || strlen(id) >= WF_ID_SIZE)
        return fail(op, WF_EINVAL, "case_id",
                    "case_id of the new case is required from the caller");
    if (strlen(number) >= WF_NUMBER_SIZE || !number_ok(number, site))
        return fail(op, WF_EINVAL, "number",
                    "number of the new case must be %s-YYYYMMDD-NNNN from the caller", site);
    if (wf_channel_name(m->channel) == NULL)
        return fail(op, WF_EINVAL, "channel", "channel is required");
    if (wf_case_type_name(m->case_type) == NULL)
        return fail(op, WF_EINVAL, "case_type", "case_type is required");
    if (urgency == SHOUWEN__V1__URGENCY__URGENCY_UNSPECIFIED)
        urgency = SHOUWEN__V1__URGENCY__URGENCY_NORMAL;
    else if (wf_urgency_name(urgency) == NULL)
        return fail(op, WF_EINVAL, "urgency", "urgency is not a known value");
    if (m->case_type == SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY)
        urgency = SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY;
    if ((rv = need_text(op, m->subject, "subject")) != WF_OK)
        return rv;
    if (m->n_required_documents > 100)
        return fail(op, WF_EINVAL, "required_documents",
                    "required_documents has more than 100 items");
    for (size_t i = 0; i < m->n_required_documents; i++)
        if (!has_text(m->required_documents[i]))
            return fail(op, WF_EINVAL, "required_documents", "required_documents has a blank item");
    if ((rv = need_time(op, m->received_at, "received_at")) != WF_OK)
        return rv;
    if (fr[0] != '\0') {
        if ((rv = need_code(op, fr, "first_responder")) != WF_OK)
            return rv;
        if (same(fr, op->person)) {
            frdept = op->adept;
        } else if ((rv = need_staff(op, fr, "first_responder")) != WF_OK ||
                   (rv = lookup(op, op->ctx->staff_department, "staff_department", &frdept)) !=
                       WF_OK) {
            return rv;
        }
    }

    begin(op);
    struct wf_case *c = &op->res->next;
    SET(c->id, id);
    SET(c->site, site);
    SET(c->number, number);
    c->status = ST(REGISTERED);
    c->type = m->case_type;
    c->channel = m->channel;
    c->urgency = urgency;
    SET(c->first_responder, fr);
    SET(c->first_department, frdept);
    SET(c->owner, fr);
    SET(c->department, frdept);
    c->escalation_level = LEVEL(NONE);
    c->received_at = m->received_at > 0 ? m->received_at : op->now;
    c->created_at = op->now;

    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(REGISTERED), &msg);
    Shouwen__V1__CaseRegistered *e = &msg->registered;
    shouwen__v1__case_registered__init(e);
    e->number = c->number;
    e->channel = c->channel;
    e->case_type = c->type;
    e->urgency = c->urgency;
    e->customer = m->customer;
    e->subject = pb(m->subject);
    e->description = pb(m->description);
    e->category = pb(m->category);
    e->n_required_documents = m->n_required_documents;
    e->required_documents = m->required_documents;
    e->external_ref = pb(m->external_ref);
    e->source = pb(m->source);
    e->first_responder = c->first_responder;
    e->department = c->first_department;
    e->received_at = c->received_at;
    env->registered = e;
    return WF_OK;
}

static enum wf_err do_resolve_on_spot(struct op *op)
{
    const Shouwen__V1__ResolveCaseOnSpot *m = op->cmd->resolve_on_spot;
    enum wf_err rv = need_text(op, m->result, "result");
    if (rv != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(CLOSED);
    c->resolved_on_spot = true;
    c->resolved_at = op->now;
    c->closed_at = op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(RESOLVED_ON_SPOT), &msg);
    Shouwen__V1__CaseResolvedOnSpot *e = &msg->resolved_on_spot;
    shouwen__v1__case_resolved_on_spot__init(e);
    e->result = pb(m->result);
    e->resolved_by = person(op);
    env->resolved_on_spot = e;
    return WF_OK;
}

static enum wf_err do_assign(struct op *op)
{
    const Shouwen__V1__AssignCase *m = op->cmd->assign;
    const struct wf_case *cur = op->cur;
    const char *sdept = "";
    const char *supervisor = "";
    const char *todept = str(m->to_department);
    enum wf_err rv;

    if ((rv = need_staff(op, m->to_staff, "to_staff")) != WF_OK ||
        (rv = lookup(op, op->ctx->staff_department, "staff_department", &sdept)) != WF_OK ||
        (rv = lookup(op, op->ctx->actor_supervisor, "actor_supervisor", &supervisor)) != WF_OK)
        return rv;
    if (todept[0] != '\0') {
        if ((rv = need_code(op, todept, "to_department")) != WF_OK)
            return rv;
        if (sdept[0] != '\0' && !same(todept, sdept))
            return fail(op, WF_EINVAL, "to_department",
                        "to_department is not the department of to_staff");
        if (sdept[0] == '\0' && !op->ctx->department_found)
            return need_department(op, todept, "to_department");
    }
    if (!has_text(m->reason) && !has_text(m->rule_id))
        return fail(op, WF_EINVAL, "reason", "reason is required (or rule_id, for routing)");
    if (same(m->to_staff, cur->owner))
        return fail(op, WF_EINVAL, "to_staff", "to_staff already owns the case");
    const char *newdept = sdept[0] ? sdept : todept[0] ? todept : cur->department;
    bool moves = !same(newdept, cur->department);
    if (!op->coord && op->role != ROLE(SYSTEM) && moves && !same(m->to_staff, supervisor))
        return fail(op, WF_EFORBIDDEN, NULL,
                    "assign only within the owning department or to your direct supervisor; "
                    "transfer the case to another department");
    if (moves && (rv = lead_guard(op)) != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    SET(c->owner, m->to_staff);
    SET(c->department, newdept);
    if (moves)
        clear_lead(c);
    if (c->status == ST(REGISTERED))
        c->status = ST(ASSIGNED);
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(ASSIGNED), &msg);
    Shouwen__V1__CaseAssigned *e = &msg->assigned;
    shouwen__v1__case_assigned__init(e);
    e->handoff = handoff(op, "assign", c->owner, c->department, m->reason, NULL);
    e->rule_id = pb(m->rule_id);
    env->assigned = e;
    return WF_OK;
}

/* transfer and forward: to another department, whose head appoints a handler. */
static enum wf_err move_to_department(struct op *op, const char *to, char *reason, char *slip,
                                      bool forward)
{
    const struct wf_case *cur = op->cur;
    const char *head = "";
    enum wf_err rv;

    if ((rv = need_department(op, to, "to_department")) != WF_OK ||
        (rv = need_text(op, reason, "reason")) != WF_OK ||
        (rv = lookup(op, op->ctx->department_head, "department_head", &head)) != WF_OK)
        return rv;
    if (same(to, cur->department))
        return fail(op, WF_EINVAL, "to_department", "the case is already with department %s",
                    cur->department);
    if ((rv = lead_guard(op)) != WF_OK)
        return rv;
    if (returned_by(cur, to) && !op->coord)
        return fail(op, WF_EFORBIDDEN, NULL,
                    "department %s has returned this case: only a supervisor, manager or "
                    "leader may send it back",
                    to);

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(TRANSFERRED);
    SET(c->department, to);
    SET(c->owner, head);
    clear_lead(c);
    if (c->transfer_count < INT32_MAX)
        c->transfer_count++;
    /* to_staff stays empty: given to the department's head (common.proto) */
    Shouwen__V1__Handoff *h =
        handoff(op, forward ? "forward" : "transfer", NULL, c->department, reason, slip);
    if (forward) {
        union wf__event_msg *msg = NULL;
        Shouwen__V1__Envelope *env = add_event(op, EV(FORWARDED), &msg);
        Shouwen__V1__CaseForwarded *e = &msg->forwarded;
        shouwen__v1__case_forwarded__init(e);
        e->handoff = h;
        e->transfer_count = c->transfer_count;
        env->forwarded = e;
    } else {
        union wf__event_msg *msg = NULL;
        Shouwen__V1__Envelope *env = add_event(op, EV(TRANSFERRED), &msg);
        Shouwen__V1__CaseTransferred *e = &msg->transferred;
        shouwen__v1__case_transferred__init(e);
        e->handoff = h;
        e->copied_to_qa = c->type == SHOUWEN__V1__CASE_TYPE__CASE_TYPE_COMPLAINT;
        e->transfer_count = c->transfer_count;
        env->transferred = e;
    }
    return WF_OK;
}

static enum wf_err do_transfer(struct op *op)
{
    const Shouwen__V1__TransferCase *m = op->cmd->transfer;
    return move_to_department(op, m->to_department, m->reason, m->slip_number, false);
}

static enum wf_err do_forward(struct op *op)
{
    const Shouwen__V1__ForwardCase *m = op->cmd->forward;
    return move_to_department(op, m->to_department, m->reason, NULL, true);
}

static enum wf_err do_accept(struct op *op)
{
    const Shouwen__V1__AcceptCase *m = op->cmd->accept;
    const char *sdept = "";
    enum wf_err rv;

    if ((rv = need_staff(op, m->handler, "handler")) != WF_OK ||
        (rv = lookup(op, op->ctx->staff_department, "staff_department", &sdept)) != WF_OK)
        return rv;
    if (!same(sdept, op->cur->department))
        return fail(op, WF_EFORBIDDEN, NULL, "the handler must belong to department %s",
                    op->cur->department);

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(ACCEPTED);
    SET(c->owner, m->handler);
    handoff(op, "accept", c->owner, c->department, m->note, NULL);
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(ACCEPTED), &msg);
    Shouwen__V1__CaseAccepted *e = &msg->accepted;
    shouwen__v1__case_accepted__init(e);
    e->department = c->department;
    e->handler = c->owner;
    e->appointed_by = person(op);
    e->note = pb(m->note);
    env->accepted = e;
    return WF_OK;
}

static enum wf_err do_return(struct op *op)
{
    const Shouwen__V1__ReturnCase *m = op->cmd->return_case;
    const struct wf_case *cur = op->cur;
    enum wf_err rv;

    if ((rv = need_text(op, m->reason, "reason")) != WF_OK || (rv = lead_guard(op)) != WF_OK)
        return rv;
    if (cur->first_responder[0] != '\0' &&
        (same(cur->owner, cur->first_responder) ||
         (cur->first_department[0] != '\0' && same(cur->department, cur->first_department))))
        return fail(op, WF_ESTATE, NULL,
                    "cannot return a case that is with its first responder's department: "
                    "transfer or escalate it");
    if (cur->department[0] != '\0' && returned_by(cur, cur->department))
        return fail(op, WF_EFORBIDDEN, NULL,
                    "department %s has already returned this case once: ask a supervisor to "
                    "designate a lead department",
                    cur->department);
    if (cur->department[0] != '\0' && cur->n_returned >= WF_MAX_RETURNED)
        return fail(op, WF_EFORBIDDEN, NULL,
                    "this case was returned %d times: ask a supervisor to designate a lead "
                    "department",
                    WF_MAX_RETURNED);

    begin(op);
    struct wf_case *c = &op->res->next;
    if (c->department[0] != '\0') {
        SET(c->returned_by[c->n_returned], c->department);
        c->n_returned++;
    }
    clear_lead(c);
    if (c->first_responder[0] != '\0') {
        /* back to whoever stays accountable: never to nobody */
        c->status = ST(ASSIGNED);
        SET(c->owner, c->first_responder);
        SET(c->department, c->first_department);
    } else {
        /* no person asked first (an external system): routing's queue again */
        c->status = ST(REGISTERED);
        c->owner[0] = '\0';
        c->department[0] = '\0';
    }
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(RETURNED), &msg);
    Shouwen__V1__CaseReturned *e = &msg->returned;
    shouwen__v1__case_returned__init(e);
    e->handoff = handoff(op, "return", c->owner, c->department, m->reason, NULL);
    env->returned = e;
    return WF_OK;
}

static enum wf_err do_first_contact(struct op *op)
{
    const Shouwen__V1__RecordFirstContact *m = op->cmd->first_contact;
    enum wf_err rv = need_time(op, m->contacted_at, "contacted_at");
    if (rv != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(IN_PROGRESS);
    c->first_contact_at = m->contacted_at > 0 ? m->contacted_at : op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(FIRST_CONTACT), &msg);
    Shouwen__V1__CaseFirstContact *e = &msg->first_contact;
    shouwen__v1__case_first_contact__init(e);
    e->handler = person(op);
    e->note = pb(m->note);
    e->contacted_at = c->first_contact_at;
    env->first_contact = e;
    return WF_OK;
}

static enum wf_err do_progress(struct op *op)
{
    const Shouwen__V1__RecordProgress *m = op->cmd->progress;
    enum wf_err rv;
    if ((rv = need_text(op, m->note, "note")) != WF_OK ||
        (rv = need_time(op, m->expected_completion_at, "expected_completion_at")) != WF_OK)
        return rv;
    if (m->expected_completion_at > 0 && m->expected_completion_at < op->now)
        return fail(op, WF_EINVAL, "expected_completion_at",
                    "expected_completion_at is in the past");

    begin(op);
    struct wf_case *c = &op->res->next;
    if (m->expected_completion_at > 0)
        c->expected_completion_at = m->expected_completion_at;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(PROGRESS), &msg);
    Shouwen__V1__CaseProgress *e = &msg->progress;
    shouwen__v1__case_progress__init(e);
    e->note = pb(m->note);
    e->expected_completion_at = m->expected_completion_at;
    env->progress = e;
    return WF_OK;
}

static enum wf_err do_resolve(struct op *op)
{
    const Shouwen__V1__ResolveCase *m = op->cmd->resolve;
    enum wf_err rv = need_text(op, m->result, "result");
    if (rv != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(RESOLVED);
    c->resolved_at = op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(RESOLVED), &msg);
    Shouwen__V1__CaseResolved *e = &msg->resolved;
    shouwen__v1__case_resolved__init(e);
    e->result = pb(m->result);
    e->resolved_by = person(op);
    e->department = c->department;
    env->resolved = e;
    return WF_OK;
}

/* The case works again: with its owner, or in routing's queue if it has none. */
static void reopen_case(struct op *op, char *reason)
{
    struct wf_case *c = &op->res->next;
    Shouwen__V1__CaseStatus previous = c->status;
    c->status = c->owner[0] != '\0' ? ST(IN_PROGRESS) : ST(REGISTERED);
    c->resolved_at = 0;
    c->closed_at = 0;
    c->resolved_on_spot = false;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(REOPENED), &msg);
    Shouwen__V1__CaseReopened *e = &msg->reopened;
    shouwen__v1__case_reopened__init(e);
    e->reason = reason;
    e->previous_status = previous;
    env->reopened = e;
}

static enum wf_err do_callback(struct op *op)
{
    const Shouwen__V1__RecordCallback *m = op->cmd->callback;
    enum wf_err rv;
    if (wf_satisfaction_name(m->satisfaction) == NULL)
        return fail(op, WF_EINVAL, "satisfaction", "satisfaction is required");
    if ((rv = need_time(op, m->called_at, "called_at")) != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    bool reopen = m->satisfaction == SHOUWEN__V1__SATISFACTION__SATISFACTION_UNSATISFIED;
    c->satisfaction = m->satisfaction;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(CALLBACK), &msg);
    Shouwen__V1__CaseCallback *e = &msg->callback;
    shouwen__v1__case_callback__init(e);
    e->satisfaction = m->satisfaction;
    e->note = pb(m->note);
    e->called_at = m->called_at > 0 ? m->called_at : op->now;
    e->reopened = reopen;
    env->callback = e;
    if (reopen) {
        reopen_case(op,
                    has_text(m->note) ? m->note : "the customer was unsatisfied at the callback");
    } else {
        c->status = ST(CLOSED);
        c->closed_at = op->now;
    }
    return WF_OK;
}

static enum wf_err do_reopen(struct op *op)
{
    const Shouwen__V1__ReopenCase *m = op->cmd->reopen;
    enum wf_err rv = need_text(op, m->reason, "reason");
    if (rv != WF_OK)
        return rv;
    begin(op);
    reopen_case(op, m->reason);
    return WF_OK;
}

static enum wf_err do_escalate(struct op *op)
{
    const Shouwen__V1__EscalateCase *m = op->cmd->escalate;
    Shouwen__V1__EscalationLevel from = level_of(op->cur);
    const char *sdept = "";
    enum wf_err rv;

    if (m->level != LEVEL(SUPERVISOR) && m->level != LEVEL(MANAGER) && m->level != LEVEL(LEADER))
        return fail(op, WF_EINVAL, "level", "level must be supervisor, manager or leader");
    if ((rv = need_text(op, m->reason, "reason")) != WF_OK)
        return rv;
    if (str(m->to_staff)[0] != '\0' &&
        ((rv = need_staff(op, m->to_staff, "to_staff")) != WF_OK ||
         (rv = lookup(op, op->ctx->staff_department, "staff_department", &sdept)) != WF_OK))
        return rv;
    if (m->level <= from)
        return fail(op, WF_ESTATE, NULL, "cannot escalate a case to %s: it is already at %s",
                    wf_escalation_name(m->level), str(wf_escalation_name(from)));

    begin(op);
    struct wf_case *c = &op->res->next;
    c->escalation_level = m->level;
    if (str(m->to_staff)[0] != '\0') {
        SET(c->owner, m->to_staff);
        if (sdept[0] != '\0' && !same(sdept, c->department)) {
            SET(c->department, sdept);
            clear_lead(c);
        }
    }
    handoff(op, "escalate", c->owner, c->department, m->reason, NULL);
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(ESCALATED), &msg);
    Shouwen__V1__CaseEscalated *e = &msg->escalated;
    shouwen__v1__case_escalated__init(e);
    e->from_level = from;
    e->level = m->level;
    e->to_staff = pb(m->to_staff);
    e->reason = pb(m->reason);
    env->escalated = e;
    return WF_OK;
}

static enum wf_err do_designate_lead(struct op *op)
{
    const Shouwen__V1__DesignateLeadDepartment *m = op->cmd->designate_lead;
    const char *head = "";
    enum wf_err rv;

    if ((rv = need_code(op, m->lead_department, "lead_department")) != WF_OK)
        return rv;
    if (m->n_assisting_departments > WF_MAX_ASSIST)
        return fail(op, WF_EINVAL, "assisting_departments",
                    "assisting_departments has more than %d items", WF_MAX_ASSIST);
    for (size_t i = 0; i < m->n_assisting_departments; i++) {
        const char *a = m->assisting_departments[i];
        if ((rv = need_code(op, a, "assisting_departments")) != WF_OK)
            return rv;
        if (same(a, m->lead_department))
            return fail(op, WF_EINVAL, "assisting_departments",
                        "assisting_departments must not name the lead department");
        for (size_t j = 0; j < i; j++)
            if (same(a, m->assisting_departments[j]))
                return fail(op, WF_EINVAL, "assisting_departments",
                            "assisting_departments names a department twice");
    }
    if ((rv = need_department(op, m->lead_department, "lead_department")) != WF_OK ||
        (rv = need_text(op, m->reason, "reason")) != WF_OK ||
        (rv = lookup(op, op->ctx->department_head, "department_head", &head)) != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    SET(c->lead_department, m->lead_department);
    memset(c->assisting, 0, sizeof(c->assisting));
    c->n_assisting = m->n_assisting_departments;
    for (size_t i = 0; i < m->n_assisting_departments; i++)
        SET(c->assisting[i], m->assisting_departments[i]);
    if (!same(c->department, c->lead_department)) {
        /* moved: the lead's head appoints a handler, as after a transfer */
        SET(c->department, c->lead_department);
        SET(c->owner, head);
        c->status = ST(TRANSFERRED);
        handoff(op, "transfer", NULL, c->department, m->reason, NULL);
    }
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(LEAD_DESIGNATED), &msg);
    Shouwen__V1__CaseLeadDesignated *e = &msg->lead_designated;
    shouwen__v1__case_lead_designated__init(e);
    e->lead_department = c->lead_department;
    e->n_assisting_departments = m->n_assisting_departments;
    e->assisting_departments = m->assisting_departments;
    e->reason = pb(m->reason);
    env->lead_designated = e;
    return WF_OK;
}

static enum wf_err do_refer_out(struct op *op)
{
    const Shouwen__V1__ReferCaseOut *m = op->cmd->refer_out;
    enum wf_err rv;
    if ((rv = need_text(op, m->referred_to, "referred_to")) != WF_OK ||
        (rv = need_text(op, m->guidance, "guidance")) != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status = ST(REFERRED_OUT);
    c->closed_at = op->now;
    /* outside the company: nobody here receives it; the guidance is the reason */
    handoff(op, "refer_out", NULL, NULL, m->guidance, NULL);
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(REFERRED_OUT), &msg);
    Shouwen__V1__CaseReferredOut *e = &msg->referred_out;
    shouwen__v1__case_referred_out__init(e);
    e->referred_to = pb(m->referred_to);
    e->guidance = pb(m->guidance);
    e->to_superior_body = m->to_superior_body;
    env->referred_out = e;
    return WF_OK;
}

static enum wf_err do_close_unresolvable(struct op *op)
{
    const Shouwen__V1__CloseCaseUnresolvable *m = op->cmd->close_unresolvable;
    enum wf_err rv = need_text(op, m->reason, "reason");
    if (rv != WF_OK)
        return rv;

    begin(op);
    struct wf_case *c = &op->res->next;
    if (c->status == ST(WAITING))
        leave_waiting(c, op->now);
    c->status = ST(CLOSED_UNRESOLVABLE);
    c->closed_at = op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(CLOSED_UNRESOLVABLE), &msg);
    Shouwen__V1__CaseClosedUnresolvable *e = &msg->closed_unresolvable;
    shouwen__v1__case_closed_unresolvable__init(e);
    e->reason = pb(m->reason);
    e->closed_by = person(op);
    env->closed_unresolvable = e;
    return WF_OK;
}

static enum wf_err do_wait(struct op *op)
{
    const Shouwen__V1__WaitForParty *m = op->cmd->wait;
    enum wf_err rv;
    if (wf_waiting_on_name(m->waiting_on) == NULL)
        return fail(op, WF_EINVAL, "waiting_on", "waiting_on is required");
    if ((rv = need_text(op, m->reason, "reason")) != WF_OK ||
        (rv = need_time(op, m->expected_until, "expected_until")) != WF_OK)
        return rv;
    if (m->expected_until > 0 && m->expected_until <= op->now)
        return fail(op, WF_EINVAL, "expected_until", "expected_until is in the past");

    begin(op);
    struct wf_case *c = &op->res->next;
    c->status_before_waiting = c->status;
    c->status = ST(WAITING);
    c->waiting_on = m->waiting_on;
    c->waiting_since = op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(WAITING), &msg);
    Shouwen__V1__CaseWaiting *e = &msg->waiting;
    shouwen__v1__case_waiting__init(e);
    e->waiting_on = m->waiting_on;
    e->reason = pb(m->reason);
    e->expected_until = m->expected_until;
    env->waiting = e;
    return WF_OK;
}

static enum wf_err do_resume(struct op *op)
{
    const Shouwen__V1__ResumeCase *m = op->cmd->resume;

    begin(op);
    struct wf_case *c = &op->res->next;
    Shouwen__V1__CaseStatus back = c->status_before_waiting;
    /* A case loaded without the status it had resumes in progress. */
    if ((unsigned)back >= NSTATUSES || !(HELD & (1u << back)))
        back = ST(IN_PROGRESS);
    int64_t before = c->paused_total_us;
    leave_waiting(c, op->now);
    c->status = back;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(RESUMED), &msg);
    Shouwen__V1__CaseResumed *e = &msg->resumed;
    shouwen__v1__case_resumed__init(e);
    e->note = pb(m->note);
    e->paused_for_us = c->paused_total_us - before;
    env->resumed = e;
    return WF_OK;
}

static enum wf_err do_request_leader_callback(struct op *op)
{
    const Shouwen__V1__RequestLeaderCallback *m = op->cmd->request_leader_callback;
    enum wf_err rv;
    if ((rv = need_staff(op, m->leader, "leader")) != WF_OK ||
        (rv = need_text(op, m->reason, "reason")) != WF_OK ||
        (rv = need_time(op, m->preferred_time, "preferred_time")) != WF_OK)
        return rv;
    if (strlen(str(m->callback_phone)) > 32)
        return fail(op, WF_EINVAL, "callback_phone", "callback_phone is longer than 32 bytes");

    begin(op);
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(LEADER_CALLBACK_REQUESTED), &msg);
    Shouwen__V1__CaseLeaderCallbackRequested *e = &msg->leader_callback_requested;
    shouwen__v1__case_leader_callback_requested__init(e);
    e->leader = pb(m->leader);
    e->reason = pb(m->reason);
    e->callback_phone = pb(m->callback_phone);
    e->preferred_time = m->preferred_time;
    env->leader_callback_requested = e;
    return WF_OK;
}

static enum wf_err do_acknowledge_emergency(struct op *op)
{
    const Shouwen__V1__AcknowledgeEmergency *m = op->cmd->acknowledge_emergency;
    enum wf_err rv = need_text(op, m->alert_id, "alert_id");
    if (rv != WF_OK)
        return rv;
    if (op->cur->urgency != SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY &&
        op->cur->type != SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY)
        return fail(op, WF_ESTATE, NULL,
                    "cannot acknowledge an emergency on a case that is not an emergency");

    begin(op);
    struct wf_case *c = &op->res->next;
    c->emergency_acknowledged_at = op->now;
    union wf__event_msg *msg = NULL;
    Shouwen__V1__Envelope *env = add_event(op, EV(EMERGENCY_ACKNOWLEDGED), &msg);
    Shouwen__V1__EmergencyAcknowledged *e = &msg->emergency_acknowledged;
    shouwen__v1__emergency_acknowledged__init(e);
    e->alert_id = pb(m->alert_id);
    e->acknowledged_by = person(op);
    e->level = level_of(c);
    e->acknowledged_at = op->now;
    env->emergency_acknowledged = e;
    return WF_OK;
}

/* ---------------------------------------------------------------- wf_apply */

/* "the owner, the head of the owning department or the natural first responder" */
static void describe_who(char *buf, size_t size, unsigned who, Shouwen__V1__Role role)
{
    const char *parts[4];
    size_t n = 0;
    if (who & OWN)
        parts[n++] = "the owner";
    if (who & DEPT)
        parts[n++] = role == ROLE(DEPARTMENT_HEAD) ? "the head of the owning department"
                                                   : "the owning department";
    if (who & TEAM)
        parts[n++] = "the owning or an assisting department";
    if (who & FR)
        parts[n++] = "the natural first responder";
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", parts[i]);
    }
}

static enum wf_err check_actor(struct op *op)
{
    const Shouwen__V1__Actor *a = op->cmd->actor;
    if (a == NULL)
        return fail(op, WF_EINVAL, "actor", "actor is required");
    if (a->role == ROLE(UNSPECIFIED))
        return fail(op, WF_EINVAL, "actor.role", "actor.role is required");
    if (wf_role_name(a->role) == NULL)
        return fail(op, WF_EINVAL, "actor.role", "actor.role is not a known role");
    op->role = a->role;
    op->coord = a->role == ROLE(SUPERVISOR) || a->role == ROLE(MANAGER) || a->role == ROLE(LEADER);
    op->staff = str(a->staff_code);
    bool service = a->role == ROLE(SYSTEM) || a->role == ROLE(EXTERNAL_SYSTEM);
    if (!service || op->staff[0] != '\0') {
        enum wf_err rv = need_code(op, op->staff, "actor.staff_code");
        if (rv != WF_OK)
            return rv;
    }
    if (a->role == ROLE(SYSTEM) && !has_text(a->external_system))
        return fail(op, WF_EINVAL, "actor.external_system",
                    "actor.external_system must name the service that acts");
    if (a->role == ROLE(EXTERNAL_SYSTEM) && !has_text(a->api_key_id) &&
        !has_text(a->external_system))
        return fail(op, WF_EINVAL, "actor.api_key_id",
                    "actor.api_key_id or actor.external_system is required for an external "
                    "system");
    op->person_field = a->staff_code;
    if (str(a->on_behalf_of)[0] != '\0') {
        enum wf_err rv = need_code(op, a->on_behalf_of, "actor.on_behalf_of");
        if (rv != WF_OK)
            return rv;
        op->person_field = a->on_behalf_of;
    }
    op->person = str(op->person_field);
    return lookup(op, op->ctx->actor_department, "actor_department", &op->adept);
}

static enum wf_err check_position(struct op *op)
{
    const struct wf_case *cur = op->cur;
    const Shouwen__V1__Actor *a = op->cmd->actor;
    unsigned who = op->rule->who[op->role];
    char whom[200];

    if (str(a->on_behalf_of)[0] != '\0' && !same(a->on_behalf_of, op->staff) && !op->coord &&
        op->role != ROLE(RECEPTIONIST) && op->role != ROLE(SYSTEM))
        return fail(op, WF_EFORBIDDEN, NULL,
                    "role %s may not act on behalf of someone: only a receptionist, supervisor, "
                    "manager, leader or the system may",
                    wf_role_name(op->role));
    if (who == 0) {
        if (op->cmd->command_case == CMD(CLOSE_UNRESOLVABLE))
            return fail(op, WF_EFORBIDDEN, NULL, "only a manager may close a case as unresolvable");
        return fail(op, WF_EFORBIDDEN, NULL, "role %s may not %s a case", wf_role_name(op->role),
                    op->rule->verb);
    }
    if (who & ANY)
        return WF_OK;
    if ((who & OWN) && op->person[0] != '\0' && same(op->person, cur->owner))
        return WF_OK;
    if ((who & DEPT) && op->adept[0] != '\0' && same(op->adept, cur->department))
        return WF_OK;
    if ((who & TEAM) && in_team(cur, op->adept))
        return WF_OK;
    if ((who & FR) && op->person[0] != '\0' && same(op->person, cur->first_responder))
        return WF_OK;
    describe_who(whom, sizeof(whom), who, op->role);
    return fail(op, WF_EFORBIDDEN, NULL, "only %s may %s this case", whom, op->rule->verb);
}

enum wf_err wf_apply(const struct wf_case *cur, const Shouwen__V1__Command *cmd,
                     const struct wf_context *ctx, struct wf_result *res, struct wf_error *err)
{
    struct op op = {.cur = cur, .cmd = cmd, .ctx = ctx, .res = res, .err = err};
    enum wf_err rv;

    if (cmd == NULL)
        return fail(&op, WF_EINVAL, "command", "command is required");
    if (cmd->command_case < CMD_FIRST || cmd->command_case > CMD_LAST ||
        cmd->register_case == NULL) /* every member of the oneof is a message pointer */
        return fail(&op, WF_EINVAL, "command", "command is not set");
    op.rule = &rules[cmd->command_case - CMD_FIRST];
    if (ctx == NULL || ctx->now <= 0)
        return fail(&op, WF_EINVAL, "time", "the time of the change is required");
    op.now = ctx->now;
    if ((rv = check_actor(&op)) != WF_OK)
        return rv;

    Shouwen__V1__CaseStatus status = cur != NULL ? cur->status : ST(UNSPECIFIED);
    if ((unsigned)status >= NSTATUSES)
        return fail(&op, WF_ESTATE, NULL, "cannot %s a case in an unknown state", op.rule->verb);
    if (status != ST(UNSPECIFIED)) {
        if (str(cmd->site)[0] != '\0' && !same(cmd->site, cur->site))
            return fail(&op, WF_EFORBIDDEN, NULL, "the case belongs to another site");
        if (str(cmd->case_id)[0] != '\0' && !same(cmd->case_id, cur->id))
            return fail(&op, WF_EINVAL, "case_id", "case_id does not match the case");
        if (cmd->expected_version != 0 && cmd->expected_version != cur->version)
            return fail(&op, WF_ECONFLICT, NULL, "the case is at version %lld, not %lld",
                        (long long)cur->version, (long long)cmd->expected_version);
    }
    if (!(op.rule->statuses & (1u << status)))
        return fail(&op, WF_ESTATE, NULL, "cannot %s a case that is %s", op.rule->verb,
                    status_phrase[status]);
    if ((rv = check_position(&op)) != WF_OK)
        return rv;
    return op.rule->apply(&op);
}
