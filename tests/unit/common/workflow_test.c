/*
 * workflow_test.c - the case workflow: every status x every command x every
 * role x every position of the actor, checked against an expectation table
 * written out here by hand (not read from the module), then the scenarios
 * of DOMAIN.md: the happy path, a callback that reopens, returns that
 * never strand a case, waiting and resuming, closing as unresolvable,
 * referring out, signed handoffs, versions and the name tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workflow.h"

#define MINUTE (60LL * 1000000LL)
#define HOUR   (60 * MINUTE)
#define DAY    (24 * HOUR)
#define T0     1767225600000000LL /* 2026-01-01T00:00:00Z */

#define ST(x)    SHOUWEN__V1__CASE_STATUS__CASE_STATUS_##x
#define ROLE(x)  SHOUWEN__V1__ROLE__ROLE_##x
#define CMD(x)   SHOUWEN__V1__COMMAND__COMMAND_##x
#define LEVEL(x) SHOUWEN__V1__ESCALATION_LEVEL__ESCALATION_LEVEL_##x
#define SAT(x)   SHOUWEN__V1__SATISFACTION__SATISFACTION_##x

#define CASE_ID "5b1f3c2e-8a4d-4c1e-9f00-00000000c0de"
#define NEW_ID  "5b1f3c2e-8a4d-4c1e-9f00-000000000001"

#define PUT(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* ---------------------------------------------------------------- fixtures */

/* A command with storage for every payload, filled with valid defaults. */
struct cmd {
    Shouwen__V1__Command c;
    Shouwen__V1__Actor actor;
    Shouwen__V1__RegisterCase reg;
    Shouwen__V1__ResolveCaseOnSpot spot;
    Shouwen__V1__AssignCase assign;
    Shouwen__V1__TransferCase transfer;
    Shouwen__V1__AcceptCase accept;
    Shouwen__V1__ReturnCase ret;
    Shouwen__V1__ForwardCase forward;
    Shouwen__V1__RecordFirstContact contact;
    Shouwen__V1__RecordProgress progress;
    Shouwen__V1__ResolveCase resolve;
    Shouwen__V1__RecordCallback callback;
    Shouwen__V1__ReopenCase reopen;
    Shouwen__V1__EscalateCase escalate;
    Shouwen__V1__DesignateLeadDepartment lead;
    Shouwen__V1__ReferCaseOut refer;
    Shouwen__V1__CloseCaseUnresolvable close;
    Shouwen__V1__WaitForParty wait;
    Shouwen__V1__ResumeCase resume;
    Shouwen__V1__RequestLeaderCallback leader;
    Shouwen__V1__AcknowledgeEmergency ack;
    char *assisting[WF_MAX_ASSIST + 2];
};

static void cmd_actor(struct cmd *b, Shouwen__V1__Role role, const char *staff, const char *obo)
{
    shouwen__v1__actor__init(&b->actor);
    b->actor.role = role;
    b->actor.staff_code = (char *)(staff != NULL ? staff : "");
    b->actor.on_behalf_of = (char *)(obo != NULL ? obo : "");
    if (role == ROLE(SYSTEM))
        b->actor.external_system = "routing";
    if (role == ROLE(EXTERNAL_SYSTEM)) {
        b->actor.external_system = "erp";
        b->actor.api_key_id = "key-1";
    }
    b->c.actor = &b->actor;
}

/* A valid `which` command by (role, staff), with the matrix's targets. */
static void cmd_init(struct cmd *b, Shouwen__V1__Command__CommandCase which, Shouwen__V1__Role role,
                     const char *staff)
{
    memset(b, 0, sizeof(*b));
    shouwen__v1__command__init(&b->c);
    b->c.command_id = "9d0c0c1e-0000-4000-8000-0000000000aa";
    b->c.site = "SH01";
    b->c.time = T0;
    cmd_actor(b, role, staff, NULL);

    shouwen__v1__register_case__init(&b->reg);
    b->reg.channel = SHOUWEN__V1__CHANNEL__CHANNEL_PHONE;
    b->reg.case_type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_COMPLAINT;
    b->reg.subject = "water leaking from the ceiling";
    shouwen__v1__resolve_case_on_spot__init(&b->spot);
    b->spot.result = "told the customer the opening hours";
    shouwen__v1__assign_case__init(&b->assign);
    b->assign.to_staff = "col2";
    b->assign.reason = "col2 is on duty";
    shouwen__v1__transfer_case__init(&b->transfer);
    b->transfer.to_department = "LEGAL";
    b->transfer.reason = "a contract question";
    b->transfer.slip_number = "SLIP-7";
    shouwen__v1__accept_case__init(&b->accept);
    b->accept.handler = "col2";
    b->accept.note = "col2 takes it";
    shouwen__v1__return_case__init(&b->ret);
    b->ret.reason = "not ours: the lift is the landlord's";
    shouwen__v1__forward_case__init(&b->forward);
    b->forward.to_department = "LEGAL";
    b->forward.reason = "legal owns contracts";
    shouwen__v1__record_first_contact__init(&b->contact);
    b->contact.note = "called the customer";
    shouwen__v1__record_progress__init(&b->progress);
    b->progress.note = "parts ordered";
    b->progress.expected_completion_at = T0 + 2 * DAY;
    shouwen__v1__resolve_case__init(&b->resolve);
    b->resolve.result = "pipe replaced";
    shouwen__v1__record_callback__init(&b->callback);
    b->callback.satisfaction = SAT(SATISFIED);
    b->callback.note = "all good";
    shouwen__v1__reopen_case__init(&b->reopen);
    b->reopen.reason = "it leaks again";
    shouwen__v1__escalate_case__init(&b->escalate);
    b->escalate.level = LEVEL(SUPERVISOR);
    b->escalate.to_staff = "sup1";
    b->escalate.reason = "open for two days";
    shouwen__v1__designate_lead_department__init(&b->lead);
    b->lead.lead_department = "LEGAL";
    b->assisting[0] = "ENG";
    b->lead.assisting_departments = b->assisting;
    b->lead.n_assisting_departments = 1;
    b->lead.reason = "contract and repair together";
    shouwen__v1__refer_case_out__init(&b->refer);
    b->refer.referred_to = "the city water board";
    b->refer.guidance = "call 12345 with the meter number";
    shouwen__v1__close_case_unresolvable__init(&b->close);
    b->close.reason = "the owner of the building refuses any work";
    shouwen__v1__wait_for_party__init(&b->wait);
    b->wait.waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_CUSTOMER;
    b->wait.reason = "the customer brings the lease on Monday";
    shouwen__v1__resume_case__init(&b->resume);
    b->resume.note = "the lease arrived";
    shouwen__v1__request_leader_callback__init(&b->leader);
    b->leader.leader = "gm1";
    b->leader.reason = "the customer asks for the general manager";
    b->leader.callback_phone = "13800000000";
    shouwen__v1__acknowledge_emergency__init(&b->ack);
    b->ack.alert_id = "alert-1";
    b->ack.note = "on my way";

    b->c.command_case = which;
    switch (which) {
    case CMD(REGISTER_CASE):
        b->c.register_case = &b->reg;
        break;
    case CMD(RESOLVE_ON_SPOT):
        b->c.resolve_on_spot = &b->spot;
        break;
    case CMD(ASSIGN):
        b->c.assign = &b->assign;
        break;
    case CMD(TRANSFER):
        b->c.transfer = &b->transfer;
        break;
    case CMD(ACCEPT):
        b->c.accept = &b->accept;
        break;
    case CMD(RETURN_CASE):
        b->c.return_case = &b->ret;
        break;
    case CMD(FORWARD):
        b->c.forward = &b->forward;
        break;
    case CMD(FIRST_CONTACT):
        b->c.first_contact = &b->contact;
        break;
    case CMD(PROGRESS):
        b->c.progress = &b->progress;
        break;
    case CMD(RESOLVE):
        b->c.resolve = &b->resolve;
        break;
    case CMD(CALLBACK):
        b->c.callback = &b->callback;
        break;
    case CMD(REOPEN):
        b->c.reopen = &b->reopen;
        break;
    case CMD(ESCALATE):
        b->c.escalate = &b->escalate;
        break;
    case CMD(DESIGNATE_LEAD):
        b->c.designate_lead = &b->lead;
        break;
    case CMD(REFER_OUT):
        b->c.refer_out = &b->refer;
        break;
    case CMD(CLOSE_UNRESOLVABLE):
        b->c.close_unresolvable = &b->close;
        break;
    case CMD(WAIT):
        b->c.wait = &b->wait;
        break;
    case CMD(RESUME):
        b->c.resume = &b->resume;
        break;
    case CMD(REQUEST_LEADER_CALLBACK):
        b->c.request_leader_callback = &b->leader;
        break;
    case CMD(ACKNOWLEDGE_EMERGENCY):
        b->c.acknowledge_emergency = &b->ack;
        break;
    default:
        fail_msg("no such command %d", (int)which);
    }
}

/* What the caller would have looked up for the matrix's targets. */
static struct wf_context ctx_for(Shouwen__V1__Command__CommandCase which, const char *actor_dept)
{
    struct wf_context x;
    memset(&x, 0, sizeof(x));
    x.now = T0;
    x.actor_department = actor_dept;
    x.actor_supervisor = "sup1";
    x.staff_found = true;
    x.staff_department = which == CMD(ESCALATE)                  ? "CS"
                         : which == CMD(REQUEST_LEADER_CALLBACK) ? "EXEC"
                                                                 : "ENG";
    x.department_found = true;
    x.department_head = "head9";
    x.new_case_id = NEW_ID;
    x.new_case_number = "SH01-20260101-0001";
    return x;
}

/* A case in `status`: first responder fr1 of FRONT, owned by own1 of ENG. */
static struct wf_case make_case(Shouwen__V1__CaseStatus status)
{
    struct wf_case c;
    memset(&c, 0, sizeof(c));
    if (status == ST(UNSPECIFIED))
        return c;
    PUT(c.id, CASE_ID);
    PUT(c.site, "SH01");
    PUT(c.number, "SH01-20251231-0007");
    c.version = 5;
    c.status = status;
    c.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_COMPLAINT;
    c.channel = SHOUWEN__V1__CHANNEL__CHANNEL_PHONE;
    c.urgency = SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY;
    PUT(c.first_responder, "fr1");
    PUT(c.first_department, "FRONT");
    PUT(c.owner, "own1");
    PUT(c.department, "ENG");
    c.transfer_count = 1;
    c.escalation_level = LEVEL(NONE);
    c.received_at = T0 - DAY;
    c.created_at = T0 - DAY;
    c.updated_at = T0 - HOUR;
    if (status == ST(WAITING)) {
        c.status_before_waiting = ST(IN_PROGRESS);
        c.waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_CUSTOMER;
        c.waiting_since = T0 - 3 * HOUR;
    }
    if (status >= ST(RESOLVED))
        c.resolved_at = T0 - 2 * HOUR;
    if (status >= ST(CLOSED)) {
        c.closed_at = T0 - HOUR;
        c.satisfaction = SAT(SATISFIED);
    }
    return c;
}

/* Packs and unpacks every event of `res`: what bus_outbox_add will do with them. */
static void check_events_pack(const struct wf_result *res)
{
    for (size_t i = 0; i < res->n_events; i++) {
        const Shouwen__V1__Envelope *env = &res->events[i];
        assert_true(protobuf_c_message_check(&env->base));
        size_t len = shouwen__v1__envelope__get_packed_size(env);
        uint8_t *buf = malloc(len);
        assert_non_null(buf);
        assert_int_equal(shouwen__v1__envelope__pack(env, buf), len);
        Shouwen__V1__Envelope *back = shouwen__v1__envelope__unpack(NULL, len, buf);
        free(buf);
        assert_non_null(back);
        assert_string_equal(back->type, env->type);
        assert_int_equal(back->event_case, env->event_case);
        assert_int_equal(back->case_version, env->case_version);
        assert_string_equal(back->case_id, env->case_id);
        assert_non_null(back->actor);
        assert_int_equal(back->actor->role, env->actor->role);
        shouwen__v1__envelope__free_unpacked(back, NULL);
    }
}

/* Fails the test with the module's message when the command is refused. */
static void apply_ok(const struct wf_case *cur, const struct cmd *b, const struct wf_context *x,
                     struct wf_result *res)
{
    struct wf_error err;
    memset(&err, 0, sizeof(err));
    enum wf_err rv = wf_apply(cur, &b->c, x, res, &err);
    if (rv != WF_OK)
        fail_msg("expected success, got %s: %s", wf_strerror(rv), err.message);
    check_events_pack(res);
}

/* Expects `want`; checks *res is untouched and the message's style. */
static void apply_err(const struct wf_case *cur, const struct cmd *b, const struct wf_context *x,
                      enum wf_err want, struct wf_error *err)
{
    struct wf_result res;
    unsigned char before[sizeof(res)];
    memset(&res, 0xa5, sizeof(res));
    memcpy(before, &res, sizeof(res));
    memset(err, 0, sizeof(*err));
    enum wf_err rv = wf_apply(cur, &b->c, x, &res, err);
    if (rv != want)
        fail_msg("expected %s, got %s (%s)", wf_strerror(want), wf_strerror(rv),
                 rv == WF_OK ? "accepted" : err->message);
    assert_int_equal(err->code, want);
    assert_memory_equal(before, &res, sizeof(res));
    size_t n = strlen(err->message);
    assert_true(n > 0);
    assert_false(err->message[0] >= 'A' && err->message[0] <= 'Z');
    assert_int_not_equal(err->message[n - 1], '.');
}

/* ---------------------------------------------------------------- the expectation table */

/*
 * Written by hand from the rules of workflow.h.  `outcome`: one character
 * per status of the case before the command, in this order:
 *
 *     -  R  A  T  C  P  W  V  D  U  O
 *   none registered assigned transferred accepted in_progress waiting
 *   resolved closed closed_unresolvable referred_out
 *
 * '.' = refused as the wrong state, else the letter of the status after it
 * (for the fixture's case: owned by own1 of ENG, first responder fr1 of
 * FRONT, waiting from in_progress, urgency emergency).
 *
 * `who`, per role (unspecified, staff, receptionist, department_head,
 * handler, supervisor, manager, qa, leader, system, external_system): the
 * positions allowed, "o" the owner, "d" a member of the owning department,
 * "f" the natural first responder, "*" anyone, "" nobody.
 */
struct expect {
    Shouwen__V1__Command__CommandCase cmd;
    const char *outcome;
    const char *who[11];
    const char *event;   /* Envelope.type of the (only) event */
    const char *handoff; /* core.handoffs.kind, or NULL */
};

#define HOLDER_SYS                                                                                 \
    {                                                                                              \
        "", "o", "o", "od", "o", "*", "*", "o", "*", "*", ""                                       \
    }
#define HOLDER                                                                                     \
    {                                                                                              \
        "", "o", "o", "od", "o", "*", "*", "o", "*", "", ""                                        \
    }

static const struct expect expect[] = {
    {CMD(REGISTER_CASE),
     "R..........",
     {"", "*", "*", "*", "*", "*", "*", "*", "*", "*", "*"},
     "case.registered",
     NULL},
    {CMD(RESOLVE_ON_SPOT),
     ".D.........",
     {"", "o", "o", "o", "o", "o", "o", "o", "o", "", ""},
     "case.resolved_on_spot",
     NULL},
    {CMD(ASSIGN), ".AA.CP.....", HOLDER_SYS, "case.assigned", "assign"},
    {CMD(TRANSFER), ".TT.TT.....", HOLDER_SYS, "case.transferred", "transfer"},
    {CMD(ACCEPT), "...C.......", HOLDER_SYS, "case.accepted", "accept"},
    {CMD(RETURN_CASE), "..AAAA.....", HOLDER, "case.returned", "return"},
    {CMD(FORWARD), "...TT......", HOLDER, "case.forwarded", "forward"},
    {CMD(FIRST_CONTACT),
     ".PP.P......",
     {"", "o", "o", "o", "o", "o", "o", "o", "o", "", ""},
     "case.first_contact",
     NULL},
    {CMD(PROGRESS),
     ".....P.....",
     {"", "od", "od", "od", "od", "*", "*", "od", "*", "", ""},
     "case.progress",
     NULL},
    {CMD(RESOLVE), ".VV.VV.....", HOLDER, "case.resolved", NULL},
    {CMD(CALLBACK),
     ".......D...",
     {"", "f", "*", "f", "f", "*", "*", "f", "*", "", ""},
     "case.callback",
     NULL},
    {CMD(REOPEN),
     ".......PPPP",
     {"", "f", "f", "f", "f", "*", "*", "*", "*", "", ""},
     "case.reopened",
     NULL},
    {CMD(ESCALATE),
     ".RATCPW....",
     {"", "of", "of", "odf", "of", "*", "*", "of", "*", "*", ""},
     "case.escalated",
     "escalate"},
    {CMD(DESIGNATE_LEAD),
     ".TTTTT.....",
     {"", "", "", "", "", "*", "*", "", "*", "*", ""},
     "case.lead_designated",
     "transfer"},
    {CMD(REFER_OUT), ".OOOOO.....", HOLDER, "case.referred_out", "refer_out"},
    {CMD(CLOSE_UNRESOLVABLE),
     ".UUUUUU....",
     {"", "", "", "", "", "", "*", "", "", "", ""},
     "case.closed_unresolvable",
     NULL},
    {CMD(WAIT), ".WW.WW.....", HOLDER, "case.waiting", NULL},
    {CMD(RESUME), "......P....", HOLDER_SYS, "case.resumed", NULL},
    {CMD(REQUEST_LEADER_CALLBACK),
     ".RATCPWV...",
     {"", "*", "*", "*", "*", "*", "*", "*", "*", "", ""},
     "case.leader_callback_requested",
     NULL},
    {CMD(ACKNOWLEDGE_EMERGENCY),
     ".RATCPW....",
     {"", "odf", "odf", "odf", "odf", "*", "*", "odf", "*", "", ""},
     "emergency.acknowledged",
     NULL},
};
#define NEXPECT (sizeof(expect) / sizeof(expect[0]))

static const char status_letters[] = "-RATCPWVDUO";

/* Where the actor stands toward the fixture's case. */
enum pos { P_OWNER, P_COLLEAGUE, P_FIRST_RESPONDER, P_OUTSIDER, NPOS };
static const char *const pos_staff[NPOS] = {"own1", "col1", "fr1", "out1"};
static const char *const pos_dept[NPOS] = {"ENG", "ENG", "FRONT", "SALES"};
static const char *const pos_name[NPOS] = {"owner", "colleague", "first responder", "outsider"};

static bool allowed_at(const char *spec, bool service, enum pos p)
{
    if (strchr(spec, '*') != NULL)
        return true;
    if (service)
        return false;
    return (strchr(spec, 'o') != NULL && p == P_OWNER) ||
           (strchr(spec, 'd') != NULL && (p == P_OWNER || p == P_COLLEAGUE)) ||
           (strchr(spec, 'f') != NULL && p == P_FIRST_RESPONDER);
}

static size_t matrix_runs;
static size_t matrix_accepted;

static void run_one(const struct expect *e, int status, int role, enum pos p)
{
    bool service =
        role == ROLE(SYSTEM) || role == ROLE(EXTERNAL_SYSTEM) || role == ROLE(UNSPECIFIED);
    struct cmd b;
    cmd_init(&b, e->cmd, (Shouwen__V1__Role)role, service ? NULL : pos_staff[p]);
    if (role == ROLE(UNSPECIFIED))
        b.actor.staff_code = "own1";
    struct wf_context x = ctx_for(e->cmd, service ? NULL : pos_dept[p]);
    struct wf_case cur = make_case((Shouwen__V1__CaseStatus)status);
    struct wf_case cur_copy = cur;
    struct wf_result res;
    struct wf_error err;
    memset(&res, 0xa5, sizeof(res));
    memset(&err, 0, sizeof(err));

    enum wf_err want;
    if (role == ROLE(UNSPECIFIED))
        want = WF_EINVAL;
    else if (e->outcome[status] == '.')
        want = WF_ESTATE;
    else if (!allowed_at(e->who[role], service, p))
        want = WF_EFORBIDDEN;
    else
        want = WF_OK;

    struct wf_result untouched;
    memcpy(&untouched, &res, sizeof(res));
    enum wf_err rv = wf_apply(&cur, &b.c, &x, &res, &err);
    matrix_runs++;
    if (rv != want)
        fail_msg("%s on a case that is %c, by %s at %s: got %s (%s), want %s",
                 wf_command_name(e->cmd), status_letters[status],
                 wf_role_name((Shouwen__V1__Role)role), service ? "-" : pos_name[p],
                 wf_strerror(rv), rv == WF_OK ? "accepted" : err.message, wf_strerror(want));
    /* the input case is never modified */
    assert_memory_equal(&cur, &cur_copy, sizeof(cur));
    if (want != WF_OK) {
        assert_int_equal(err.code, want);
        assert_memory_equal(&res, &untouched, sizeof(res));
        size_t n = strlen(err.message);
        assert_true(n > 0 && n < sizeof(err.message));
        assert_false(err.message[0] >= 'A' && err.message[0] <= 'Z');
        assert_int_not_equal(err.message[n - 1], '.');
        if (want == WF_ESTATE)
            assert_int_equal(strncmp(err.message, "cannot ", 7), 0);
        if (want == WF_EINVAL)
            assert_string_equal(err.field, "actor.role");
        return;
    }
    matrix_accepted++;
    const struct wf_case *n = &res.next;
    const char *after = strchr(status_letters, e->outcome[status]);
    assert_non_null(after);
    if (n->status != (Shouwen__V1__CaseStatus)(after - status_letters))
        fail_msg("%s on %c: status %s, want %c", wf_command_name(e->cmd), status_letters[status],
                 wf_status_name(n->status), e->outcome[status]);
    /* exactly one more version; register starts at 1 */
    assert_int_equal(n->version, status == 0 ? 1 : cur.version + 1);
    assert_int_equal(n->updated_at, T0);
    /* the natural first responder never changes */
    if (status == 0)
        assert_string_equal(n->first_responder, service ? "" : pos_staff[p]);
    else
        assert_string_equal(n->first_responder, cur.first_responder);
    assert_string_equal(n->first_department,
                        status == 0 ? (service ? "" : pos_dept[p]) : cur.first_department);
    /* never stranded: someone owns it, except a case only routing has seen */
    assert_true(n->owner[0] != '\0' || (status == 0 && service));
    /* the database's CHECKs */
    assert_int_equal(n->status == ST(WAITING), n->waiting_since != 0);
    if (n->status == ST(CLOSED) || n->status == ST(CLOSED_UNRESOLVABLE) ||
        n->status == ST(REFERRED_OUT))
        assert_true(n->closed_at == T0 || n->closed_at == cur.closed_at);
    /* one event, its envelope filled */
    assert_int_equal(res.n_events, 1);
    const Shouwen__V1__Envelope *env = &res.events[0];
    assert_string_equal(env->type, e->event);
    assert_non_null(env->registered); /* the oneof member is set */
    assert_string_equal(env->site, "SH01");
    assert_string_equal(env->case_id, status == 0 ? NEW_ID : CASE_ID);
    assert_int_equal(env->case_version, n->version);
    assert_int_equal(env->time, T0);
    assert_string_equal(env->event_id, "");
    assert_string_equal(env->command_id, b.c.command_id);
    assert_non_null(env->actor);
    assert_int_equal(env->actor->role, role);
    check_events_pack(&res);
    /* the handoff, when the command is one */
    if (e->handoff == NULL) {
        assert_null(res.handoff_kind);
    } else {
        assert_non_null(res.handoff_kind);
        assert_string_equal(res.handoff_kind, e->handoff);
        assert_string_equal(res.handoff.from_staff, cur.owner);
        assert_string_equal(res.handoff.from_department, cur.department);
        assert_int_equal(res.handoff.time, T0);
        assert_true(res.handoff.reason[0] != '\0');
    }
}

static void test_every_status_command_role_position(void **state)
{
    (void)state;
    matrix_runs = 0;
    matrix_accepted = 0;
    for (size_t i = 0; i < NEXPECT; i++) {
        assert_int_equal(strlen(expect[i].outcome), 11);
        for (int status = 0; status <= ST(REFERRED_OUT); status++)
            for (int role = 0; role <= ROLE(EXTERNAL_SYSTEM); role++)
                for (int p = 0; p < NPOS; p++) {
                    bool service = role == ROLE(SYSTEM) || role == ROLE(EXTERNAL_SYSTEM) ||
                                   role == ROLE(UNSPECIFIED);
                    if (service && p > 0)
                        continue; /* no staff code: position does not apply */
                    run_one(&expect[i], status, role, (enum pos)p);
                }
    }
    /* 20 commands x 11 statuses x (8 person roles x 4 positions + 3) */
    assert_int_equal(NEXPECT, 20);
    assert_int_equal(matrix_runs, 20 * 11 * (8 * 4 + 3));
    print_message("workflow matrix: %zu combinations, %zu accepted\n", matrix_runs,
                  matrix_accepted);
}

/* The table above names every command exactly once. */
static void test_expectation_table_covers_every_command(void **state)
{
    (void)state;
    for (int c = CMD(REGISTER_CASE); c <= CMD(ACKNOWLEDGE_EMERGENCY); c++) {
        int seen = 0;
        for (size_t i = 0; i < NEXPECT; i++)
            seen += expect[i].cmd == (Shouwen__V1__Command__CommandCase)c;
        assert_int_equal(seen, 1);
    }
}

/* ---------------------------------------------------------------- scenarios */

static void test_happy_path(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_context x;
    struct wf_result res;
    struct wf_case c;

    /* a guard at the front desk is asked first */
    cmd_init(&b, CMD(REGISTER_CASE), ROLE(STAFF), "fr1");
    x = ctx_for(CMD(REGISTER_CASE), "FRONT");
    apply_ok(NULL, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(REGISTERED));
    assert_int_equal(c.version, 1);
    assert_string_equal(c.id, NEW_ID);
    assert_string_equal(c.number, "SH01-20260101-0001");
    assert_string_equal(c.owner, "fr1");
    assert_string_equal(c.department, "FRONT");
    assert_int_equal(c.urgency, SHOUWEN__V1__URGENCY__URGENCY_NORMAL);
    assert_int_equal(c.escalation_level, LEVEL(NONE));
    assert_string_equal(res.events[0].registered->first_responder, "fr1");
    assert_string_equal(res.events[0].registered->department, "FRONT");
    assert_string_equal(res.events[0].registered->subject, "water leaking from the ceiling");

    /* transferred to engineering within the hour */
    cmd_init(&b, CMD(TRANSFER), ROLE(STAFF), "fr1");
    b.transfer.to_department = "ENG";
    b.c.expected_version = 1;
    x = ctx_for(CMD(TRANSFER), "FRONT");
    x.now = T0 + 20 * MINUTE;
    x.department_head = "head1";
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(TRANSFERRED));
    assert_int_equal(c.version, 2);
    assert_string_equal(c.department, "ENG");
    assert_string_equal(c.owner, "head1");
    assert_int_equal(c.transfer_count, 1);
    assert_string_equal(res.events[0].type, "case.transferred");
    assert_true(res.events[0].transferred->copied_to_qa);
    assert_int_equal(res.events[0].transferred->transfer_count, 1);
    assert_string_equal(res.events[0].transferred->handoff->slip_number, "SLIP-7");

    /* the head appoints a handler at once */
    cmd_init(&b, CMD(ACCEPT), ROLE(DEPARTMENT_HEAD), "head1");
    b.accept.handler = "h1";
    x = ctx_for(CMD(ACCEPT), "ENG");
    x.now = T0 + 25 * MINUTE;
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(ACCEPTED));
    assert_int_equal(c.version, 3);
    assert_string_equal(c.owner, "h1");
    assert_string_equal(res.events[0].accepted->handler, "h1");
    assert_string_equal(res.events[0].accepted->appointed_by, "head1");
    assert_string_equal(res.events[0].accepted->department, "ENG");

    /* the handler calls the customer */
    cmd_init(&b, CMD(FIRST_CONTACT), ROLE(HANDLER), "h1");
    x = ctx_for(CMD(FIRST_CONTACT), "ENG");
    x.now = T0 + 2 * HOUR;
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(IN_PROGRESS));
    assert_int_equal(c.version, 4);
    assert_int_equal(c.first_contact_at, T0 + 2 * HOUR);
    assert_string_equal(res.events[0].first_contact->handler, "h1");

    /* a long job: progress with the expected date */
    cmd_init(&b, CMD(PROGRESS), ROLE(HANDLER), "h1");
    x = ctx_for(CMD(PROGRESS), "ENG");
    x.now = T0 + DAY;
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(IN_PROGRESS));
    assert_int_equal(c.version, 5);
    assert_int_equal(c.expected_completion_at, T0 + 2 * DAY);
    assert_int_equal(res.events[0].progress->expected_completion_at, T0 + 2 * DAY);

    /* resolved and reported back */
    cmd_init(&b, CMD(RESOLVE), ROLE(HANDLER), "h1");
    x = ctx_for(CMD(RESOLVE), "ENG");
    x.now = T0 + 2 * DAY;
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(RESOLVED));
    assert_int_equal(c.version, 6);
    assert_int_equal(c.resolved_at, T0 + 2 * DAY);
    assert_string_equal(res.events[0].resolved->resolved_by, "h1");
    assert_string_equal(res.events[0].resolved->department, "ENG");

    /* the first responder calls back: satisfied, closed */
    cmd_init(&b, CMD(CALLBACK), ROLE(STAFF), "fr1");
    x = ctx_for(CMD(CALLBACK), "FRONT");
    x.now = T0 + 3 * DAY;
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.status, ST(CLOSED));
    assert_int_equal(c.version, 7);
    assert_int_equal(c.closed_at, T0 + 3 * DAY);
    assert_int_equal(c.satisfaction, SAT(SATISFIED));
    assert_int_equal(res.n_events, 1);
    assert_false(res.events[0].callback->reopened);
    assert_string_equal(c.first_responder, "fr1");
    assert_string_equal(c.first_department, "FRONT");
}

static void test_unsatisfied_callback_reopens(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_case cur = make_case(ST(RESOLVED));
    cmd_init(&b, CMD(CALLBACK), ROLE(STAFF), "fr1");
    b.callback.satisfaction = SAT(UNSATISFIED);
    b.callback.note = "still leaking";
    struct wf_context x = ctx_for(CMD(CALLBACK), "FRONT");
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));
    assert_string_equal(res.next.owner, "own1"); /* back with whoever resolved it */
    assert_int_equal(res.next.resolved_at, 0);
    assert_int_equal(res.next.satisfaction, SAT(UNSATISFIED));
    assert_int_equal(res.next.version, cur.version + 1);
    assert_int_equal(res.n_events, 2);
    assert_string_equal(res.events[0].type, "case.callback");
    assert_true(res.events[0].callback->reopened);
    assert_int_equal(res.events[0].callback->satisfaction, SAT(UNSATISFIED));
    assert_string_equal(res.events[1].type, "case.reopened");
    assert_int_equal(res.events[1].reopened->previous_status, ST(RESOLVED));
    assert_string_equal(res.events[1].reopened->reason, "still leaking");
    assert_int_equal(res.events[1].case_version, res.next.version);
    assert_int_equal(res.events[0].case_version, res.next.version);

    /* without a note the reopening still says why */
    b.callback.note = "";
    apply_ok(&cur, &b, &x, &res);
    assert_true(strlen(res.events[1].reopened->reason) > 0);

    /* unreachable and basically satisfied close it */
    b.callback.satisfaction = SAT(UNREACHABLE);
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(CLOSED));
    assert_int_equal(res.n_events, 1);
    b.callback.satisfaction = SAT(BASICALLY_SATISFIED);
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(CLOSED));

    /* a callback needs an answer */
    struct wf_error err;
    b.callback.satisfaction = SAT(UNSPECIFIED);
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "satisfaction");
    /* it is the first responder's duty: the handler may not record it */
    b.callback.satisfaction = SAT(SATISFIED);
    cmd_actor(&b, ROLE(HANDLER), "own1", NULL);
    x.actor_department = "ENG";
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "only the natural first responder may record a callback on "
                                     "this case");
}

static void test_return_never_strands(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_context x;

    /* from every status a return is allowed in, it lands on the first responder */
    const Shouwen__V1__CaseStatus from[] = {ST(ASSIGNED), ST(TRANSFERRED), ST(ACCEPTED),
                                            ST(IN_PROGRESS)};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        struct wf_case cur = make_case(from[i]);
        cmd_init(&b, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
        x = ctx_for(CMD(RETURN_CASE), "ENG");
        apply_ok(&cur, &b, &x, &res);
        assert_int_equal(res.next.status, ST(ASSIGNED));
        assert_string_equal(res.next.owner, "fr1");
        assert_string_equal(res.next.department, "FRONT");
        assert_int_equal(res.next.n_returned, 1);
        assert_string_equal(res.next.returned_by[0], "ENG");
        const Shouwen__V1__Handoff *h = res.events[0].returned->handoff;
        assert_ptr_equal(h, &res.handoff);
        assert_string_equal(h->from_staff, "own1");
        assert_string_equal(h->from_department, "ENG");
        assert_string_equal(h->to_staff, "fr1");
        assert_string_equal(h->to_department, "FRONT");
        assert_string_equal(h->reason, "not ours: the lift is the landlord's");
    }

    /* ENG returned it; the first responder may not push it back there */
    struct wf_case cur = make_case(ST(TRANSFERRED));
    cmd_init(&b, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(RETURN_CASE), "ENG");
    apply_ok(&cur, &b, &x, &res);
    struct wf_case back = res.next;
    cmd_init(&b, CMD(TRANSFER), ROLE(STAFF), "fr1");
    b.transfer.to_department = "ENG";
    x = ctx_for(CMD(TRANSFER), "FRONT");
    apply_err(&back, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "department ENG has returned this case: only a supervisor, "
                                     "manager or leader may send it back");
    /* a supervisor may, and then ENG cannot return it a second time */
    cmd_actor(&b, ROLE(SUPERVISOR), "sup1", NULL);
    x.actor_department = "CS";
    apply_ok(&back, &b, &x, &res);
    struct wf_case again = res.next;
    assert_string_equal(again.department, "ENG");
    cmd_init(&b, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(RETURN_CASE), "ENG");
    apply_err(&again, &b, &x, WF_EFORBIDDEN, &err);
    assert_non_null(strstr(err.message, "already returned"));

    /* a written reason is required */
    b.ret.reason = "   ";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    b.ret.reason = NULL;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");

    /* nothing to return to: the case is with the first responder's department */
    struct wf_case home = make_case(ST(ASSIGNED));
    PUT(home.department, "FRONT");
    PUT(home.owner, "fr2");
    cmd_init(&b, CMD(RETURN_CASE), ROLE(STAFF), "fr2");
    x = ctx_for(CMD(RETURN_CASE), "FRONT");
    apply_err(&home, &b, &x, WF_ESTATE, &err);

    /* no person asked first: back to routing's queue, and routing can pick it up */
    cmd_init(&b, CMD(REGISTER_CASE), ROLE(EXTERNAL_SYSTEM), NULL);
    b.reg.channel = SHOUWEN__V1__CHANNEL__CHANNEL_API;
    x = ctx_for(CMD(REGISTER_CASE), NULL);
    apply_ok(NULL, &b, &x, &res);
    struct wf_case api = res.next;
    assert_string_equal(api.owner, "");
    cmd_init(&b, CMD(TRANSFER), ROLE(SYSTEM), NULL);
    b.transfer.to_department = "ENG";
    x = ctx_for(CMD(TRANSFER), NULL);
    x.department_head = "head1";
    apply_ok(&api, &b, &x, &res);
    api = res.next;
    cmd_init(&b, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(RETURN_CASE), "ENG");
    apply_ok(&api, &b, &x, &res);
    api = res.next;
    assert_int_equal(api.status, ST(REGISTERED));
    assert_string_equal(api.owner, "");
    assert_string_equal(api.department, "");
    cmd_init(&b, CMD(ASSIGN), ROLE(SYSTEM), NULL);
    b.assign.rule_id = "rule-3";
    x = ctx_for(CMD(ASSIGN), NULL);
    x.staff_department = "SEC";
    apply_ok(&api, &b, &x, &res);
    assert_int_equal(res.next.status, ST(ASSIGNED));
    assert_string_equal(res.next.owner, "col2");
    assert_string_equal(res.next.department, "SEC");
}

static void test_wait_resume_restores_previous_status(void **state)
{
    (void)state;
    const Shouwen__V1__CaseStatus from[] = {ST(REGISTERED), ST(ASSIGNED), ST(ACCEPTED),
                                            ST(IN_PROGRESS)};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        struct wf_case cur = make_case(from[i]);
        cur.paused_total_us = HOUR;
        struct cmd b;
        struct wf_result res;
        cmd_init(&b, CMD(WAIT), ROLE(HANDLER), "own1");
        b.wait.waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_THIRD_PARTY;
        b.wait.expected_until = T0 + DAY;
        struct wf_context x = ctx_for(CMD(WAIT), "ENG");
        apply_ok(&cur, &b, &x, &res);
        struct wf_case waiting = res.next;
        assert_int_equal(waiting.status, ST(WAITING));
        assert_int_equal(waiting.status_before_waiting, from[i]);
        assert_int_equal(waiting.waiting_since, T0);
        assert_int_equal(waiting.waiting_on, SHOUWEN__V1__WAITING_ON__WAITING_ON_THIRD_PARTY);
        assert_int_equal(res.events[0].waiting->expected_until, T0 + DAY);

        cmd_init(&b, CMD(RESUME), ROLE(HANDLER), "own1");
        x = ctx_for(CMD(RESUME), "ENG");
        x.now = T0 + 3 * HOUR;
        apply_ok(&waiting, &b, &x, &res);
        assert_int_equal(res.next.status, from[i]);
        assert_int_equal(res.next.paused_total_us, HOUR + 3 * HOUR);
        assert_int_equal(res.events[0].resumed->paused_for_us, 3 * HOUR);
        assert_int_equal(res.next.waiting_since, 0);
        assert_int_equal(res.next.waiting_on, SHOUWEN__V1__WAITING_ON__WAITING_ON_UNSPECIFIED);
        assert_int_equal(res.next.status_before_waiting, ST(UNSPECIFIED));
        assert_int_equal(res.next.version, cur.version + 2);
    }

    struct cmd b;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    cmd_init(&b, CMD(WAIT), ROLE(HANDLER), "own1");
    struct wf_context x = ctx_for(CMD(WAIT), "ENG");
    b.wait.waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_UNSPECIFIED;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "waiting_on");
    b.wait.waiting_on = SHOUWEN__V1__WAITING_ON__WAITING_ON_CUSTOMER;
    b.wait.reason = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    b.wait.reason = "r";
    b.wait.expected_until = T0 - 1;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "expected_until");

    /* a case that does not know its earlier status resumes in progress */
    struct wf_case lost = make_case(ST(WAITING));
    lost.status_before_waiting = ST(UNSPECIFIED);
    struct wf_result res;
    cmd_init(&b, CMD(RESUME), ROLE(SYSTEM), NULL);
    x = ctx_for(CMD(RESUME), NULL);
    apply_ok(&lost, &b, &x, &res);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));
    lost.status_before_waiting = ST(CLOSED);
    apply_ok(&lost, &b, &x, &res);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));
}

static void test_close_unresolvable_manager_only_with_reason(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_error err;
    struct wf_result res;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    for (int role = ROLE(STAFF); role <= ROLE(EXTERNAL_SYSTEM); role++) {
        if (role == ROLE(MANAGER))
            continue;
        bool service = role == ROLE(SYSTEM) || role == ROLE(EXTERNAL_SYSTEM);
        cmd_init(&b, CMD(CLOSE_UNRESOLVABLE), (Shouwen__V1__Role)role, service ? NULL : "own1");
        struct wf_context x = ctx_for(CMD(CLOSE_UNRESOLVABLE), "ENG");
        apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
        assert_string_equal(err.message, "only a manager may close a case as unresolvable");
    }
    cmd_init(&b, CMD(CLOSE_UNRESOLVABLE), ROLE(MANAGER), "mgr1");
    struct wf_context x = ctx_for(CMD(CLOSE_UNRESOLVABLE), "MGMT");
    b.close.reason = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    assert_string_equal(err.message, "reason is required");
    b.close.reason = " \t\n";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    b.close.reason = "the building owner refuses";
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(CLOSED_UNRESOLVABLE));
    assert_int_equal(res.next.closed_at, T0);
    assert_string_equal(res.events[0].closed_unresolvable->closed_by, "mgr1");
    assert_string_equal(res.events[0].closed_unresolvable->reason, "the building owner refuses");

    /* from waiting: the clocks' pause ends with it */
    struct wf_case waiting = make_case(ST(WAITING));
    apply_ok(&waiting, &b, &x, &res);
    assert_int_equal(res.next.waiting_since, 0);
    assert_int_equal(res.next.paused_total_us, 3 * HOUR);
}

static void test_refer_out_requires_guidance(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_error err;
    struct wf_result res;
    struct wf_case cur = make_case(ST(ACCEPTED));
    cmd_init(&b, CMD(REFER_OUT), ROLE(HANDLER), "own1");
    struct wf_context x = ctx_for(CMD(REFER_OUT), "ENG");
    b.refer.guidance = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "guidance");
    b.refer.guidance = "  ";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "guidance");
    b.refer.guidance = "go to the water board";
    b.refer.referred_to = NULL;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "referred_to");
    b.refer.referred_to = "the water board";
    b.refer.to_superior_body = true;
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(REFERRED_OUT));
    assert_int_equal(res.next.closed_at, T0);
    assert_true(res.events[0].referred_out->to_superior_body);
    assert_string_equal(res.events[0].referred_out->guidance, "go to the water board");
    assert_string_equal(res.handoff_kind, "refer_out");
    assert_string_equal(res.handoff.reason, "go to the water board");
    assert_string_equal(res.handoff.to_department, "");

    /* the superior body answers: reopened to tell the customer */
    struct wf_case out = res.next;
    cmd_init(&b, CMD(REOPEN), ROLE(SUPERVISOR), "sup1");
    x = ctx_for(CMD(REOPEN), "CS");
    apply_ok(&out, &b, &x, &res);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));
    assert_int_equal(res.next.closed_at, 0);
    assert_int_equal(res.events[0].reopened->previous_status, ST(REFERRED_OUT));
}

/* Every handoff keeps the natural first responder; only the owner moves. */
static void test_first_responder_never_changes(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_context x;
    struct wf_case c;

    cmd_init(&b, CMD(REGISTER_CASE), ROLE(STAFF), "fr1");
    x = ctx_for(CMD(REGISTER_CASE), "FRONT");
    apply_ok(NULL, &b, &x, &res);
    c = res.next;
#define STEP(role, staff, which, dept, tweak)                                                      \
    do {                                                                                           \
        cmd_init(&b, which, role, staff);                                                          \
        x = ctx_for(which, dept);                                                                  \
        tweak;                                                                                     \
        apply_ok(&c, &b, &x, &res);                                                                \
        c = res.next;                                                                              \
        assert_string_equal(c.first_responder, "fr1");                                             \
        assert_string_equal(c.first_department, "FRONT");                                          \
    } while (0)

    STEP(ROLE(STAFF), "fr1", CMD(ASSIGN), "FRONT",
         (b.assign.to_staff = "fr2", x.staff_department = "FRONT"));
    assert_string_equal(c.owner, "fr2");
    STEP(ROLE(STAFF), "fr2", CMD(TRANSFER), "FRONT", b.transfer.to_department = "ENG");
    STEP(ROLE(DEPARTMENT_HEAD), "head1", CMD(ACCEPT), "ENG", (void)0);
    assert_string_equal(c.owner, "col2");
    STEP(ROLE(HANDLER), "col2", CMD(FORWARD), "ENG", (void)0);
    assert_string_equal(c.department, "LEGAL");
    STEP(ROLE(SUPERVISOR), "sup1", CMD(ESCALATE), "CS", (void)0);
    assert_string_equal(c.owner, "sup1");
    STEP(ROLE(SUPERVISOR), "sup1", CMD(DESIGNATE_LEAD), "CS", b.lead.lead_department = "SEC");
    STEP(ROLE(DEPARTMENT_HEAD), "head9", CMD(ACCEPT), "SEC", x.staff_department = "SEC");
    STEP(ROLE(SUPERVISOR), "sup1", CMD(RETURN_CASE), "CS", (void)0);
    assert_string_equal(c.owner, "fr1");
    STEP(ROLE(STAFF), "fr1", CMD(REFER_OUT), "FRONT", (void)0);
    assert_int_equal(c.status, ST(REFERRED_OUT));
    assert_int_equal(c.version, 10);
#undef STEP
}

static void check_handoff(const Shouwen__V1__Handoff *h, const char *from_staff,
                          const char *from_dept, const char *to_staff, const char *to_dept,
                          const char *reason, const char *signed_by, int64_t at)
{
    assert_non_null(h);
    assert_string_equal(h->from_staff, from_staff);
    assert_string_equal(h->from_department, from_dept);
    assert_string_equal(h->to_staff, to_staff);
    assert_string_equal(h->to_department, to_dept);
    assert_string_equal(h->reason, reason);
    assert_string_equal(h->signed_by, signed_by);
    assert_int_equal(h->time, at);
}

static void test_every_handoff_is_signed_and_timed(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_context x;
    struct wf_case cur;
    const int64_t at = T0 + 5 * MINUTE;

    /* a receptionist signs for the owner (代签): on whose behalf is in the envelope */
    cur = make_case(ST(IN_PROGRESS));
    cmd_init(&b, CMD(ASSIGN), ROLE(RECEPTIONIST), "rcp1");
    cmd_actor(&b, ROLE(RECEPTIONIST), "rcp1", "own1");
    x = ctx_for(CMD(ASSIGN), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    check_handoff(res.events[0].assigned->handoff, "own1", "ENG", "col2", "ENG", "col2 is on duty",
                  "rcp1", at);
    assert_string_equal(res.events[0].actor->on_behalf_of, "own1");
    assert_string_equal(res.events[0].actor->staff_code, "rcp1");
    assert_int_equal(res.events[0].time, at);

    cmd_init(&b, CMD(TRANSFER), ROLE(RECEPTIONIST), "rcp1");
    cmd_actor(&b, ROLE(RECEPTIONIST), "rcp1", "own1");
    x = ctx_for(CMD(TRANSFER), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    check_handoff(res.events[0].transferred->handoff, "own1", "ENG", "", "LEGAL",
                  "a contract question", "rcp1", at);
    assert_string_equal(res.events[0].actor->on_behalf_of, "own1");
    assert_string_equal(res.next.owner, "head9");

    /* routing transfers on a supervisor's behalf: signed by no person */
    cmd_init(&b, CMD(TRANSFER), ROLE(SYSTEM), NULL);
    cmd_actor(&b, ROLE(SYSTEM), NULL, "sup1");
    x = ctx_for(CMD(TRANSFER), "CS");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    check_handoff(res.events[0].transferred->handoff, "own1", "ENG", "", "LEGAL",
                  "a contract question", "", at);
    assert_string_equal(res.events[0].actor->on_behalf_of, "sup1");
    assert_string_equal(res.events[0].actor->external_system, "routing");

    cur = make_case(ST(TRANSFERRED));
    cmd_init(&b, CMD(FORWARD), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(FORWARD), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    check_handoff(res.events[0].forwarded->handoff, "own1", "ENG", "", "LEGAL",
                  "legal owns contracts", "head1", at);
    assert_int_equal(res.events[0].forwarded->transfer_count, 2);
    assert_string_equal(res.handoff_kind, "forward");

    cmd_init(&b, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(RETURN_CASE), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    check_handoff(res.events[0].returned->handoff, "own1", "ENG", "fr1", "FRONT",
                  "not ours: the lift is the landlord's", "head1", at);

    /* accept, escalate and refer out: the handoff record beside the event */
    cmd_init(&b, CMD(ACCEPT), ROLE(RECEPTIONIST), "rcp1");
    cmd_actor(&b, ROLE(RECEPTIONIST), "rcp1", "own1");
    x = ctx_for(CMD(ACCEPT), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.handoff_kind, "accept");
    check_handoff(&res.handoff, "own1", "ENG", "col2", "ENG", "col2 takes it", "rcp1", at);
    assert_string_equal(res.events[0].accepted->appointed_by, "own1");

    cmd_init(&b, CMD(ESCALATE), ROLE(SYSTEM), NULL);
    b.actor.external_system = "escalation";
    x = ctx_for(CMD(ESCALATE), NULL);
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.handoff_kind, "escalate");
    check_handoff(&res.handoff, "own1", "ENG", "sup1", "CS", "open for two days", "", at);
    assert_string_equal(res.events[0].escalated->to_staff, "sup1");
    assert_int_equal(res.events[0].escalated->from_level, LEVEL(NONE));
    assert_int_equal(res.events[0].escalated->level, LEVEL(SUPERVISOR));

    cmd_init(&b, CMD(REFER_OUT), ROLE(DEPARTMENT_HEAD), "head1");
    x = ctx_for(CMD(REFER_OUT), "ENG");
    x.now = at;
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.handoff_kind, "refer_out");
    check_handoff(&res.handoff, "own1", "ENG", "", "", "call 12345 with the meter number", "head1",
                  at);

    /* commands that move nobody record no handoff */
    cur = make_case(ST(IN_PROGRESS));
    cmd_init(&b, CMD(RESOLVE), ROLE(HANDLER), "own1");
    x = ctx_for(CMD(RESOLVE), "ENG");
    apply_ok(&cur, &b, &x, &res);
    assert_null(res.handoff_kind);
}

static void test_version_moves_by_one_and_is_checked(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case c = make_case(ST(ACCEPTED));
    struct wf_context x = ctx_for(CMD(FIRST_CONTACT), "ENG");
    cmd_init(&b, CMD(FIRST_CONTACT), ROLE(HANDLER), "own1");
    b.c.expected_version = 4;
    apply_err(&c, &b, &x, WF_ECONFLICT, &err);
    assert_string_equal(err.message, "the case is at version 5, not 4");
    b.c.expected_version = 5;
    apply_ok(&c, &b, &x, &res);
    assert_int_equal(res.next.version, 6);
    b.c.expected_version = 0; /* not checked */
    apply_ok(&c, &b, &x, &res);
    assert_int_equal(res.next.version, 6);

    /* a sequence: +1 per accepted command, none on a refused one */
    c = res.next;
    int64_t v = c.version;
    cmd_init(&b, CMD(ACCEPT), ROLE(DEPARTMENT_HEAD), "head1");
    apply_err(&c, &b, &x, WF_ESTATE, &err);
    assert_string_equal(err.message, "cannot accept a case that is in progress");
    assert_int_equal(c.version, v);
    cmd_init(&b, CMD(PROGRESS), ROLE(HANDLER), "own1");
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.version, v + 1);
    cmd_init(&b, CMD(RESOLVE), ROLE(HANDLER), "own1");
    apply_ok(&c, &b, &x, &res);
    c = res.next;
    assert_int_equal(c.version, v + 2);
    assert_int_equal(res.events[0].case_version, v + 2);
}

static void test_escalation_only_upward(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    cur.escalation_level = LEVEL(SUPERVISOR);
    cmd_init(&b, CMD(ESCALATE), ROLE(SYSTEM), NULL);
    struct wf_context x = ctx_for(CMD(ESCALATE), NULL);
    apply_err(&cur, &b, &x, WF_ESTATE, &err);
    assert_string_equal(err.message, "cannot escalate a case to supervisor: it is already at "
                                     "supervisor");
    b.escalate.level = LEVEL(MANAGER);
    b.escalate.to_staff = "mgr1";
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.escalation_level, LEVEL(MANAGER));
    assert_string_equal(res.next.owner, "mgr1");
    assert_int_equal(res.next.status, ST(IN_PROGRESS));

    cur.escalation_level = LEVEL(LEADER);
    apply_err(&cur, &b, &x, WF_ESTATE, &err);
    /* a rung may be skipped; an unset level reads as none */
    cur.escalation_level = LEVEL(UNSPECIFIED);
    b.escalate.level = LEVEL(LEADER);
    b.escalate.to_staff = "";
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.events[0].escalated->from_level, LEVEL(NONE));
    assert_int_equal(res.next.escalation_level, LEVEL(LEADER));
    assert_string_equal(res.next.owner, "own1"); /* nobody named: the owner keeps it */

    b.escalate.level = LEVEL(NONE);
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "level");
    b.escalate.level = LEVEL(MANAGER);
    b.escalate.reason = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    b.escalate.reason = "r";
    b.escalate.to_staff = "ghost";
    x.staff_found = false;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "to_staff");
}

static void test_designate_lead(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    cmd_init(&b, CMD(DESIGNATE_LEAD), ROLE(SUPERVISOR), "sup1");
    struct wf_context x = ctx_for(CMD(DESIGNATE_LEAD), "CS");

    b.assisting[1] = "LEGAL";
    b.lead.n_assisting_departments = 2;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.message, "assisting_departments must not name the lead department");
    b.assisting[1] = "ENG";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.message, "assisting_departments names a department twice");
    b.assisting[1] = "bad code!";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "assisting_departments");
    for (size_t i = 0; i < WF_MAX_ASSIST + 1; i++)
        b.assisting[i] =
            (char *)(const char *[]){"A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9"}[i];
    b.lead.n_assisting_departments = WF_MAX_ASSIST + 1;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "assisting_departments");
    b.lead.n_assisting_departments = 2;
    b.assisting[0] = "ENG";
    b.assisting[1] = "SEC";
    x.department_found = false;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "lead_department");
    x.department_found = true;

    /* the lead already owns it: nothing moves */
    b.lead.lead_department = "ENG";
    b.assisting[0] = "LEGAL";
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));
    assert_string_equal(res.next.owner, "own1");
    assert_null(res.handoff_kind);
    assert_string_equal(res.next.lead_department, "ENG");
    assert_int_equal(res.next.n_assisting, 2);
    assert_string_equal(res.next.assisting[1], "SEC");
    assert_int_equal(res.events[0].lead_designated->n_assisting_departments, 2);
    struct wf_case led = res.next;

    /* the designated lead may not bounce it; an assisting department reports progress */
    struct cmd t;
    cmd_init(&t, CMD(TRANSFER), ROLE(HANDLER), "own1");
    struct wf_context tx = ctx_for(CMD(TRANSFER), "ENG");
    apply_err(&led, &t, &tx, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "department ENG was designated lead: only a supervisor, "
                                     "manager or leader may move the case");
    cmd_init(&t, CMD(RETURN_CASE), ROLE(DEPARTMENT_HEAD), "head1");
    apply_err(&led, &t, &tx, WF_EFORBIDDEN, &err);
    cmd_init(&t, CMD(PROGRESS), ROLE(STAFF), "sec7");
    tx = ctx_for(CMD(PROGRESS), "SEC");
    apply_ok(&led, &t, &tx, &res);
    tx.actor_department = "SALES";
    apply_err(&led, &t, &tx, WF_EFORBIDDEN, &err);
    /* a supervisor moves it and the designation ends */
    cmd_init(&t, CMD(TRANSFER), ROLE(SUPERVISOR), "sup1");
    tx = ctx_for(CMD(TRANSFER), "CS");
    apply_ok(&led, &t, &tx, &res);
    assert_string_equal(res.next.lead_department, "");
    assert_int_equal(res.next.n_assisting, 0);

    /* another lead: transferred to its head */
    b.lead.lead_department = "LEGAL";
    b.assisting[0] = "ENG";
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(TRANSFERRED));
    assert_string_equal(res.next.owner, "head9");
    assert_string_equal(res.next.department, "LEGAL");
    assert_string_equal(res.handoff_kind, "transfer");
    assert_int_equal(res.next.transfer_count, cur.transfer_count); /* not a bounce */
}

static void test_on_behalf_of(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    struct wf_context x = ctx_for(CMD(RESOLVE), "ENG");

    /* a receptionist records the handler's result */
    cmd_init(&b, CMD(RESOLVE), ROLE(RECEPTIONIST), "rcp1");
    x.actor_department = "FRONT";
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "only the owner may resolve this case");
    cmd_actor(&b, ROLE(RECEPTIONIST), "rcp1", "own1");
    x.actor_department = "ENG";
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.events[0].resolved->resolved_by, "own1");
    assert_string_equal(res.events[0].actor->staff_code, "rcp1");

    /* staff, handlers, heads and qa sign only for themselves */
    const Shouwen__V1__Role roles[] = {ROLE(STAFF), ROLE(HANDLER), ROLE(DEPARTMENT_HEAD), ROLE(QA),
                                       ROLE(EXTERNAL_SYSTEM)};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        cmd_actor(&b, roles[i], "col1", "own1");
        apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
        assert_non_null(strstr(err.message, "may not act on behalf of someone"));
    }
    cmd_actor(&b, ROLE(HANDLER), "own1", "own1");
    apply_ok(&cur, &b, &x, &res);
    cmd_actor(&b, ROLE(RECEPTIONIST), "rcp1", "bad code");
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.on_behalf_of");
}

static void test_actor_and_command_validation(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    struct wf_context x = ctx_for(CMD(RESOLVE), "ENG");
    cmd_init(&b, CMD(RESOLVE), ROLE(HANDLER), "own1");

    b.c.actor = NULL;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor");
    cmd_actor(&b, (Shouwen__V1__Role)99, "own1", NULL);
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.role");
    cmd_actor(&b, ROLE(HANDLER), "", NULL);
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.staff_code");
    cmd_actor(&b, ROLE(HANDLER), "own 1", NULL);
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.staff_code");
    cmd_actor(&b, ROLE(HANDLER), "abcdefghijklmnopqrstuvwxyz0123456", NULL); /* 33 */
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    cmd_actor(&b, ROLE(SYSTEM), NULL, NULL);
    b.actor.external_system = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.external_system");
    cmd_actor(&b, ROLE(EXTERNAL_SYSTEM), NULL, NULL);
    b.actor.external_system = "";
    b.actor.api_key_id = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "actor.api_key_id");

    cmd_actor(&b, ROLE(HANDLER), "own1", NULL);
    x.actor_department = "not a code";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    x.actor_department = "ENG";

    apply_err(&cur, &b, NULL, WF_EINVAL, &err);
    assert_string_equal(err.field, "time");
    x.now = 0;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    x.now = T0;

    b.c.command_case = SHOUWEN__V1__COMMAND__COMMAND__NOT_SET;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "command");
    b.c.command_case = CMD(RESOLVE);
    b.c.resolve = NULL;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    b.c.resolve = &b.resolve;

    struct wf_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(wf_apply(&cur, NULL, &x, &res, &err), WF_EINVAL);
    assert_string_equal(err.field, "command");

    /* the case of another site, or another case */
    b.c.site = "SH02";
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "the case belongs to another site");
    b.c.site = "SH01";
    b.c.case_id = "00000000-0000-0000-0000-000000000000";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "case_id");
    b.c.case_id = CASE_ID;
    apply_ok(&cur, &b, &x, &res);

    /* a corrupt status is refused, not trusted */
    cur.status = (Shouwen__V1__CaseStatus)42;
    apply_err(&cur, &b, &x, WF_ESTATE, &err);
}

static void test_payload_fields_are_required(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_error err;
    struct wf_case cur = make_case(ST(IN_PROGRESS));
    struct wf_context x = ctx_for(CMD(TRANSFER), "ENG");

    cmd_init(&b, CMD(TRANSFER), ROLE(HANDLER), "own1");
    b.transfer.reason = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    assert_string_equal(err.message, "reason is required");
    b.transfer.reason = "r";
    b.transfer.to_department = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "to_department");
    b.transfer.to_department = "ENG";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.message, "the case is already with department ENG");
    b.transfer.to_department = "LEGAL";
    x.department_found = false;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.message, "to_department is not an active department of the site");
    x.department_found = true;
    x.department_head = NULL; /* a department without a head still receives it */
    struct wf_result res;
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.next.owner, "");
    assert_int_equal(res.next.transfer_count, 2);

    /* complaints are copied to QA, other types are not */
    cur.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPAIR;
    apply_ok(&cur, &b, &x, &res);
    assert_false(res.events[0].transferred->copied_to_qa);

    cur = make_case(ST(IN_PROGRESS));
    cmd_init(&b, CMD(RESOLVE), ROLE(HANDLER), "own1");
    b.resolve.result = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "result");
    cmd_init(&b, CMD(PROGRESS), ROLE(HANDLER), "own1");
    b.progress.note = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "note");
    b.progress.note = "n";
    b.progress.expected_completion_at = T0 - DAY;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "expected_completion_at");
    b.progress.expected_completion_at = 0; /* unchanged */
    cur.expected_completion_at = T0 + DAY;
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.expected_completion_at, T0 + DAY);
    cmd_init(&b, CMD(REQUEST_LEADER_CALLBACK), ROLE(STAFF), "out1");
    b.leader.leader = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "leader");
    b.leader.leader = "gm1";
    b.leader.reason = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    b.leader.reason = "r";
    b.leader.callback_phone = "123456789012345678901234567890123";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "callback_phone");
    cmd_init(&b, CMD(REOPEN), ROLE(SUPERVISOR), "sup1");
    b.reopen.reason = "";
    struct wf_case done = make_case(ST(CLOSED));
    apply_err(&done, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    cmd_init(&b, CMD(FIRST_CONTACT), ROLE(HANDLER), "own1");
    b.contact.contacted_at = -1;
    struct wf_case acc = make_case(ST(ACCEPTED));
    apply_err(&acc, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "contacted_at");
    b.contact.contacted_at = T0 - HOUR;
    apply_ok(&acc, &b, &x, &res);
    assert_int_equal(res.next.first_contact_at, T0 - HOUR);
}

static void test_assign_rules(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case cur = make_case(ST(REGISTERED));
    struct wf_context x = ctx_for(CMD(ASSIGN), "ENG");

    /* another department is a transfer, unless it is one's own supervisor */
    cmd_init(&b, CMD(ASSIGN), ROLE(STAFF), "own1");
    b.assign.to_staff = "sec7";
    x.staff_department = "SEC";
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    b.assign.to_staff = "sup1";
    x.staff_department = "CS";
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.next.owner, "sup1");
    assert_string_equal(res.next.department, "CS");
    assert_int_equal(res.next.status, ST(ASSIGNED));
    /* routing may assign anywhere, with its rule instead of a reason */
    cmd_init(&b, CMD(ASSIGN), ROLE(SYSTEM), NULL);
    b.assign.to_staff = "sec7";
    b.assign.reason = "";
    b.assign.rule_id = "rule-9";
    x.staff_department = "SEC";
    apply_ok(&cur, &b, &x, &res);
    assert_string_equal(res.events[0].assigned->rule_id, "rule-9");
    b.assign.rule_id = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "reason");
    b.assign.reason = "r";
    b.assign.to_staff = "own1";
    x.staff_department = "ENG";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.message, "to_staff already owns the case");
    b.assign.to_staff = "col2";
    b.assign.to_department = "SEC";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "to_department");
    b.assign.to_department = "ENG";
    x.staff_found = false;
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "to_staff");
}

static void test_accept_rules(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_error err;
    struct wf_case cur = make_case(ST(TRANSFERRED));
    struct wf_context x = ctx_for(CMD(ACCEPT), "ENG");
    cmd_init(&b, CMD(ACCEPT), ROLE(DEPARTMENT_HEAD), "head1");
    x.staff_department = "SALES";
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message, "the handler must belong to department ENG");
    /* the head of another department may not appoint here */
    x = ctx_for(CMD(ACCEPT), "SALES");
    apply_err(&cur, &b, &x, WF_EFORBIDDEN, &err);
    assert_string_equal(err.message,
                        "only the owner or the head of the owning department may accept this "
                        "case");
    x = ctx_for(CMD(ACCEPT), "ENG");
    b.accept.handler = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "handler");
}

static void test_register_rules(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case blank;
    memset(&blank, 0, sizeof(blank));
    struct wf_context x = ctx_for(CMD(REGISTER_CASE), "FRONT");
    cmd_init(&b, CMD(REGISTER_CASE), ROLE(RECEPTIONIST), "rcp1");

    /* a receptionist registers for the guard who was asked first */
    b.reg.first_responder = "guard3";
    x.staff_department = "SEC";
    b.reg.case_type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY;
    b.reg.urgency = SHOUWEN__V1__URGENCY__URGENCY_NORMAL;
    b.reg.received_at = T0 - MINUTE;
    char *docs[] = {"lease", "id card"};
    b.reg.required_documents = docs;
    b.reg.n_required_documents = 2;
    apply_ok(&blank, &b, &x, &res);
    assert_string_equal(res.next.first_responder, "guard3");
    assert_string_equal(res.next.first_department, "SEC");
    assert_string_equal(res.next.owner, "guard3");
    assert_int_equal(res.next.urgency, SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY);
    assert_int_equal(res.next.received_at, T0 - MINUTE);
    assert_int_equal(res.next.created_at, T0);
    assert_int_equal(res.events[0].registered->n_required_documents, 2);
    assert_string_equal(res.events[0].registered->required_documents[1], "id card");
    x.staff_found = false;
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "first_responder");
    x.staff_found = true;

    docs[1] = " ";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "required_documents");
    b.reg.n_required_documents = 0;
    b.reg.subject = "";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "subject");
    b.reg.subject = "s";
    b.reg.channel = SHOUWEN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "channel");
    b.reg.channel = SHOUWEN__V1__CHANNEL__CHANNEL_VISIT;
    b.reg.case_type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_UNSPECIFIED;
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "case_type");
    b.reg.case_type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPAIR;
    b.reg.urgency = SHOUWEN__V1__URGENCY__URGENCY_UNSPECIFIED;
    apply_ok(&blank, &b, &x, &res);
    assert_int_equal(res.next.urgency, SHOUWEN__V1__URGENCY__URGENCY_NORMAL);
    b.c.site = "sh01";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "site");
    b.c.site = "SH01";
    b.reg.site = "SH02";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "site");
    b.reg.site = "";
    x.new_case_id = NULL;
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "case_id");
    x.new_case_id = NEW_ID;
    x.new_case_number = "SH02-20260101-0001";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "number");
    x.new_case_number = "SH01-2026011-0001";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    x.new_case_number = "SH01-20260101-001";
    apply_err(&blank, &b, &x, WF_EINVAL, &err);
    x.new_case_number = "SH01-20260101-00000001";
    apply_ok(NULL, &b, &x, &res);
    assert_string_equal(res.next.number, "SH01-20260101-00000001");
    assert_string_equal(res.events[0].registered->number, "SH01-20260101-00000001");
    /* a case that exists cannot be registered again */
    struct wf_case cur = make_case(ST(CLOSED));
    apply_err(&cur, &b, &x, WF_ESTATE, &err);
    assert_string_equal(err.message, "cannot register a case that is closed");
}

static void test_resolve_on_spot_and_emergency(void **state)
{
    (void)state;
    struct cmd b;
    struct wf_result res;
    struct wf_error err;
    struct wf_case cur = make_case(ST(REGISTERED));
    struct wf_context x = ctx_for(CMD(RESOLVE_ON_SPOT), "ENG");
    cmd_init(&b, CMD(RESOLVE_ON_SPOT), ROLE(STAFF), "own1");
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(CLOSED));
    assert_true(res.next.resolved_on_spot);
    assert_int_equal(res.next.resolved_at, T0);
    assert_string_equal(res.events[0].resolved_on_spot->resolved_by, "own1");
    b.spot.result = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "result");
    /* reopening a case resolved on the spot clears the flag */
    struct wf_case closed = res.next;
    closed.resolved_on_spot = true;
    cmd_init(&b, CMD(REOPEN), ROLE(QA), "qa1");
    x.actor_department = "QA";
    apply_ok(&closed, &b, &x, &res);
    assert_false(res.next.resolved_on_spot);
    assert_int_equal(res.next.status, ST(IN_PROGRESS));

    cmd_init(&b, CMD(ACKNOWLEDGE_EMERGENCY), ROLE(HANDLER), "own1");
    x = ctx_for(CMD(ACKNOWLEDGE_EMERGENCY), "ENG");
    cur = make_case(ST(ACCEPTED));
    cur.escalation_level = LEVEL(MANAGER);
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.emergency_acknowledged_at, T0);
    assert_int_equal(res.events[0].emergency_acknowledged->level, LEVEL(MANAGER));
    assert_string_equal(res.events[0].emergency_acknowledged->alert_id, "alert-1");
    assert_int_equal(res.next.status, ST(ACCEPTED));
    cur.urgency = SHOUWEN__V1__URGENCY__URGENCY_URGENT;
    apply_err(&cur, &b, &x, WF_ESTATE, &err);
    assert_string_equal(err.message,
                        "cannot acknowledge an emergency on a case that is not an emergency");
    cur.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_EMERGENCY;
    apply_ok(&cur, &b, &x, &res);
    b.ack.alert_id = "";
    apply_err(&cur, &b, &x, WF_EINVAL, &err);
    assert_string_equal(err.field, "alert_id");

    /* the leader's contact is never given: the request records the customer's */
    cmd_init(&b, CMD(REQUEST_LEADER_CALLBACK), ROLE(RECEPTIONIST), "rcp1");
    x = ctx_for(CMD(REQUEST_LEADER_CALLBACK), "FRONT");
    cur = make_case(ST(RESOLVED));
    apply_ok(&cur, &b, &x, &res);
    assert_int_equal(res.next.status, ST(RESOLVED));
    assert_string_equal(res.events[0].leader_callback_requested->leader, "gm1");
    assert_string_equal(res.events[0].leader_callback_requested->callback_phone, "13800000000");
}

/* ---------------------------------------------------------------- name tables */

struct pair {
    int value;
    const char *name;
};

#define CHECK_TABLE(fname, type, pairs, last)                                                      \
    do {                                                                                           \
        size_t np = sizeof(pairs) / sizeof(pairs[0]);                                              \
        for (size_t i = 0; i < np; i++) {                                                          \
            type v = (type)0;                                                                      \
            assert_non_null(wf_##fname##_name((type)pairs[i].value));                              \
            assert_string_equal(wf_##fname##_name((type)pairs[i].value), pairs[i].name);           \
            assert_true(wf_##fname##_parse(pairs[i].name, &v));                                    \
            assert_int_equal(v, pairs[i].value);                                                   \
        }                                                                                          \
        /* every value of the enum has a name, and only those */                                   \
        assert_int_equal(np, (size_t)(last));                                                      \
        assert_null(wf_##fname##_name((type)0));                                                   \
        assert_null(wf_##fname##_name((type)((last) + 1)));                                        \
        assert_null(wf_##fname##_name((type)1000));                                                \
        const char *bad[] = {"", "unspecified", "UNSPECIFIED", "nope", " x", NULL};                \
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {                                \
            type v = (type)77;                                                                     \
            assert_false(wf_##fname##_parse(bad[i], &v));                                          \
            assert_int_equal(v, 77);                                                               \
        }                                                                                          \
        type v = (type)77;                                                                         \
        char upper[64];                                                                            \
        snprintf(upper, sizeof(upper), "%s", pairs[0].name);                                       \
        upper[0] = (char)(upper[0] - 'a' + 'A');                                                   \
        assert_false(wf_##fname##_parse(upper, &v));                                               \
        snprintf(upper, sizeof(upper), "%s ", pairs[0].name);                                      \
        assert_false(wf_##fname##_parse(upper, &v));                                               \
        assert_int_equal(v, 77);                                                                   \
    } while (0)

static void test_name_tables_round_trip(void **state)
{
    (void)state;
    /* the text values of deploy/migrations/0001_core.sql, written out again */
    static const struct pair statuses[] = {
        {1, "registered"},          {2, "assigned"},      {3, "transferred"}, {4, "accepted"},
        {5, "in_progress"},         {6, "waiting"},       {7, "resolved"},    {8, "closed"},
        {9, "closed_unresolvable"}, {10, "referred_out"},
    };
    static const struct pair types[] = {
        {1, "consultation"}, {2, "complaint"}, {3, "help"},   {4, "suggestion"},
        {5, "repair"},       {6, "business"},  {7, "report"}, {8, "emergency"},
    };
    static const struct pair channels[] = {
        {1, "visit"}, {2, "phone"},  {3, "letter"},  {4, "web"},       {5, "email"}, {6, "hotline"},
        {7, "chat"},  {8, "social"}, {9, "meeting"}, {10, "callback"}, {11, "api"},  {12, "device"},
    };
    static const struct pair urgencies[] = {{1, "normal"}, {2, "urgent"}, {3, "emergency"}};
    static const struct pair levels[] = {
        {1, "none"}, {2, "supervisor"}, {3, "manager"}, {4, "leader"}};
    static const struct pair satisfactions[] = {
        {1, "satisfied"}, {2, "basically_satisfied"}, {3, "unsatisfied"}, {4, "unreachable"}};
    static const struct pair waiting[] = {{1, "customer"}, {2, "third_party"}};
    static const struct pair roles[] = {
        {1, "staff"},
        {2, "receptionist"},
        {3, "department_head"},
        {4, "handler"},
        {5, "supervisor"},
        {6, "manager"},
        {7, "qa"},
        {8, "leader"},
        {9, "system"},
        {10, "external_system"},
    };
    CHECK_TABLE(status, Shouwen__V1__CaseStatus, statuses, 10);
    CHECK_TABLE(case_type, Shouwen__V1__CaseType, types, 8);
    CHECK_TABLE(channel, Shouwen__V1__Channel, channels, 12);
    CHECK_TABLE(urgency, Shouwen__V1__Urgency, urgencies, 3);
    CHECK_TABLE(escalation, Shouwen__V1__EscalationLevel, levels, 4);
    CHECK_TABLE(satisfaction, Shouwen__V1__Satisfaction, satisfactions, 4);
    CHECK_TABLE(waiting_on, Shouwen__V1__WaitingOn, waiting, 2);
    CHECK_TABLE(role, Shouwen__V1__Role, roles, 10);

    /* the enums above end where common.proto ends them */
    assert_int_equal(shouwen__v1__case_status__descriptor.n_values, 11);
    assert_int_equal(shouwen__v1__channel__descriptor.n_values, 13);
    assert_int_equal(shouwen__v1__role__descriptor.n_values, 11);
    assert_int_equal(shouwen__v1__case_type__descriptor.n_values, 9);
}

static void test_command_and_event_names(void **state)
{
    (void)state;
    /* POST /v1/cases/{id}/actions/{command} */
    static const char *const commands[] = {
        "register",
        "resolve_on_spot",
        "assign",
        "transfer",
        "accept",
        "return",
        "forward",
        "first_contact",
        "progress",
        "resolve",
        "callback",
        "reopen",
        "escalate",
        "designate_lead",
        "refer_out",
        "close_unresolvable",
        "wait",
        "resume",
        "request_leader_callback",
        "acknowledge_emergency",
    };
    for (int i = 0; i < 20; i++) {
        Shouwen__V1__Command__CommandCase c = SHOUWEN__V1__COMMAND__COMMAND__NOT_SET;
        Shouwen__V1__Command__CommandCase want = (Shouwen__V1__Command__CommandCase)(10 + i);
        assert_string_equal(wf_command_name(want), commands[i]);
        assert_true(wf_command_parse(commands[i], &c));
        assert_int_equal(c, want);
    }
    Shouwen__V1__Command__CommandCase c = CMD(ASSIGN);
    assert_false(wf_command_parse("register_case", &c));
    assert_false(wf_command_parse("return_case", &c));
    assert_false(wf_command_parse("Transfer", &c));
    assert_false(wf_command_parse(NULL, &c));
    assert_int_equal(c, CMD(ASSIGN));
    assert_null(wf_command_name(SHOUWEN__V1__COMMAND__COMMAND__NOT_SET));
    assert_null(wf_command_name((Shouwen__V1__Command__CommandCase)30));

    /* envelope.proto's table, member -> dotted type */
    static const char *const types[] = {
        "case.registered",
        "case.resolved_on_spot",
        "case.assigned",
        "case.transferred",
        "case.accepted",
        "case.returned",
        "case.forwarded",
        "case.first_contact",
        "case.progress",
        "case.resolved",
        "case.callback",
        "case.reopened",
        "case.escalated",
        "case.lead_designated",
        "case.referred_out",
        "case.closed_unresolvable",
        "case.waiting",
        "case.resumed",
        "case.leader_callback_requested",
        "case.deadline_breached",
        "violation.recorded",
        "emergency.alerted",
        "emergency.acknowledged",
        "notification.delivered",
        "notification.failed",
        "audit.verified",
        "review.requested",
    };
    for (int i = 0; i < 27; i++) {
        Shouwen__V1__Envelope__EventCase e = SHOUWEN__V1__ENVELOPE__EVENT__NOT_SET;
        Shouwen__V1__Envelope__EventCase want = (Shouwen__V1__Envelope__EventCase)(20 + i);
        assert_string_equal(wf_event_type_name(want), types[i]);
        assert_true(wf_event_type_parse(types[i], &e));
        assert_int_equal(e, want);
    }
    Shouwen__V1__Envelope__EventCase e = SHOUWEN__V1__ENVELOPE__EVENT_AUDIT_VERIFIED;
    assert_false(wf_event_type_parse("case.", &e));
    assert_false(wf_event_type_parse("registered", &e));
    assert_int_equal(e, SHOUWEN__V1__ENVELOPE__EVENT_AUDIT_VERIFIED);
    assert_null(wf_event_type_name(SHOUWEN__V1__ENVELOPE__EVENT__NOT_SET));
    assert_null(wf_event_type_name((Shouwen__V1__Envelope__EventCase)47));
}

static void test_strerror(void **state)
{
    (void)state;
    const enum wf_err codes[] = {WF_OK, WF_EINVAL, WF_EFORBIDDEN, WF_ESTATE, WF_ECONFLICT};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *s = wf_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, wf_strerror(codes[j]));
    }
    assert_string_equal(wf_strerror((enum wf_err)99), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expectation_table_covers_every_command),
        cmocka_unit_test(test_every_status_command_role_position),
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_unsatisfied_callback_reopens),
        cmocka_unit_test(test_return_never_strands),
        cmocka_unit_test(test_wait_resume_restores_previous_status),
        cmocka_unit_test(test_close_unresolvable_manager_only_with_reason),
        cmocka_unit_test(test_refer_out_requires_guidance),
        cmocka_unit_test(test_first_responder_never_changes),
        cmocka_unit_test(test_every_handoff_is_signed_and_timed),
        cmocka_unit_test(test_version_moves_by_one_and_is_checked),
        cmocka_unit_test(test_escalation_only_upward),
        cmocka_unit_test(test_designate_lead),
        cmocka_unit_test(test_on_behalf_of),
        cmocka_unit_test(test_actor_and_command_validation),
        cmocka_unit_test(test_payload_fields_are_required),
        cmocka_unit_test(test_assign_rules),
        cmocka_unit_test(test_accept_rules),
        cmocka_unit_test(test_register_rules),
        cmocka_unit_test(test_resolve_on_spot_and_emergency),
        cmocka_unit_test(test_name_tables_round_trip),
        cmocka_unit_test(test_command_and_event_names),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests_name("workflow", tests, NULL, NULL);
}
