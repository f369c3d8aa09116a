/*
 * workflow.h - the rules of a case, as one pure function (DESIGN.md section 2).
 *
 * Every change to a case, whoever asks for it (a person through intake,
 * routing, escalation), goes through wf_apply: (case, command, context) ->
 * (new case, events) or an error that says which rule refused it.  The
 * module does no I/O at all: no database, no clock, no randomness, no
 * globals, no logging.  The caller looks up what the rules need (the
 * actor's department, whether a named department or person exists, who
 * heads a department, the time) and passes it in `struct wf_context`; it
 * then persists the new case with optimistic locking (`... WHERE id = $1
 * AND version = $2`), records the handoff and stages the events, and
 * retries the whole apply on a version conflict.  The name tables convert
 * every enum the rules use to and from the exact text values of the
 * database (deploy/migrations/0001_core.sql) and of the HTTP API.
 *
 * Thread-safety: every function is reentrant; nothing is shared.
 *
 * THE RULES
 *
 * Position of the actor toward the case.  When the actor acts for someone
 * else (Actor.on_behalf_of, allowed to a receptionist, supervisor, manager,
 * leader or the system only), the position is that person's, and
 * wf_context.actor_department is that person's department.
 *   o  owner: the person is case.owner
 *   d  owning department: actor_department is case.department (for a
 *      department_head: the head of the owning department)
 *   t  team: d, or actor_department is one of case.assisting
 *   f  the natural first responder (case.first_responder)
 *   *  any case of the site
 *   -  never
 * coord = supervisor, manager, leader ("manager": only the manager, not
 * the supervisor or a leader).  An external_system may only register.
 * ROLE_UNSPECIFIED is invalid input.
 *
 * Statuses: R registered, A assigned, T transferred, C accepted,
 * P in_progress, W waiting, V resolved, D closed, U closed_unresolvable,
 * O referred_out; "none" is no case yet (cur NULL or status UNSPECIFIED).
 *
 * command                  statuses       staff,  recep-  depart- qa     coord    system
 *                                         handler tionist ment
 *                                                         head
 * register                 none           *       *       *       *      *        *
 * resolve_on_spot          R              o       o       o       o      o        -
 * assign                   R A C P        o       o       o d     o      *        *
 * transfer                 R A C P        o       o       o d     o      *        *
 * accept                   T              o       o       o d     o      *        *
 * return                   A T C P        o       o       o d     o      *        -
 * forward                  T C            o       o       o d     o      *        -
 * first_contact            R A C          o       o       o       o      o        -
 * progress                 P              o t     o t     o t     o t    *        -
 * resolve                  R A C P        o       o       o d     o      *        -
 * callback                 V              f       *       f       f      *        -
 * reopen                   V D U O        f       f       f       *      *        -
 * escalate                 R A T C P W    o f     o f     o d f   o f    *        *
 * designate_lead           R A T C P      -       -       -       -      *        *
 * refer_out                R A T C P      o       o       o d     o      *        -
 * close_unresolvable       R A T C P W    -       -       -       -      manager  -
 * wait                     R A C P        o       o       o d     o      *        -
 * resume                   W              o       o       o d     o      *        *
 * request_leader_callback  R A T C P W V  *       *       *       *      *        -
 * acknowledge_emergency    R A T C P W    o d f   o d f   o d f   o d f  *        -
 *
 * command                  new status                     events (Envelope.type)
 * register                 registered; owner = first      case.registered
 *                          responder (none: no owner, for
 *                          routing)
 * resolve_on_spot          closed (no callback is due:    case.resolved_on_spot
 *                          the customer was there)
 * assign                   assigned from R, else kept;    case.assigned
 *                          owner = to_staff
 * transfer                 transferred; owner = the       case.transferred
 *                          department's head
 * accept                   accepted; owner = handler      case.accepted
 * return                   assigned to the first          case.returned
 *                          responder; registered with no
 *                          owner when there is none
 * forward                  transferred; owner = head      case.forwarded
 * first_contact            in_progress                    case.first_contact
 * progress                 in_progress                    case.progress
 * resolve                  resolved                       case.resolved
 * callback                 closed; unsatisfied: in_progress case.callback
 *                                                         [+ case.reopened]
 * reopen                   in_progress (registered when   case.reopened
 *                          the case has no owner)
 * escalate                 kept; owner = to_staff if set  case.escalated
 * designate_lead           kept when the lead owns it,    case.lead_designated
 *                          else transferred to its head
 * refer_out                referred_out                   case.referred_out
 * close_unresolvable       closed_unresolvable            case.closed_unresolvable
 * wait                     waiting                        case.waiting
 * resume                   the status before waiting      case.resumed
 * request_leader_callback  kept                           case.leader_callback_requested
 * acknowledge_emergency    kept                           emergency.acknowledged
 *
 * Further rules, each with its error:
 * - Required (WF_EINVAL, names the field): a reason for transfer, return,
 *   forward, reopen, escalate, designate_lead, close_unresolvable, wait,
 *   request_leader_callback and for assign unless rule_id is set; the
 *   result of resolve and resolve_on_spot; guidance and referred_to of
 *   refer_out; the note of progress; the satisfaction of callback; the
 *   waiting_on of wait; the target of assign, transfer, forward, accept,
 *   designate_lead, request_leader_callback; alert_id of
 *   acknowledge_emergency.  "Required" means at least one non-blank
 *   character.  Staff and department codes must have the database's form
 *   and, per the context, exist.
 * - A department returns a case once (WF_EFORBIDDEN on a second return,
 *   and once WF_MAX_RETURNED departments have); a case already with the
 *   first responder or their department cannot be returned (WF_ESTATE:
 *   transfer it or escalate).  Only coord may send a case by transfer or
 *   forward to a department that returned it (WF_EFORBIDDEN).
 * - Once a coord or the system designates a lead department, only a coord
 *   transfers, forwards or returns it (which clears the designation).
 * - A staff, receptionist, handler, qa or department_head assigns only to
 *   a member of the owning department or to their own direct supervisor
 *   (WF_EFORBIDDEN); never to the current owner (WF_EINVAL).
 * - transfer and forward: never to the department that has the case
 *   (WF_EINVAL); each adds one to transfer_count (designate_lead does not).
 * - accept: the handler must belong to the owning department (WF_EFORBIDDEN).
 * - escalate: only upward (WF_ESTATE otherwise), to supervisor, manager
 *   or leader; rungs may be skipped.  With to_staff, that person and
 *   their department take the case over; without, only the level rises.
 * - acknowledge_emergency: only on a case of urgency or type emergency
 *   (WF_ESTATE).
 * - Leaving waiting (resume, close_unresolvable) adds the pause to
 *   paused_total_us.  A waiting case whose status_before_waiting is not
 *   one wait allows (R A C P) resumes in_progress.
 * - The natural first responder and their department never change after
 *   register.  Every accepted command adds exactly one to the version.
 *
 * Order of checks, so that the answer does not depend on luck: the
 * command and actor are well-formed (WF_EINVAL); the case is of the
 * command's site (WF_EFORBIDDEN); expected_version, when not 0, is the
 * case's version (WF_ECONFLICT); the status allows the command (WF_ESTATE);
 * the role and position allow it (WF_EFORBIDDEN); then the payload and
 * the command's own rules (WF_EINVAL, WF_EFORBIDDEN, WF_ESTATE).
 */
#ifndef SHOUWEN_WORKFLOW_H
#define SHOUWEN_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shouwen/v1/commands.pb-c.h"
#include "shouwen/v1/common.pb-c.h"
#include "shouwen/v1/envelope.pb-c.h"

/* Sizes of the fixed strings, NUL included; they follow the database's CHECKs. */
#define WF_ID_SIZE      37 /* a UUID */
#define WF_SITE_SIZE    17 /* ^[A-Z][A-Z0-9]{1,15}$ */
#define WF_NUMBER_SIZE  36 /* SITE-YYYYMMDD-NNNNNNNN */
#define WF_CODE_SIZE    33 /* staff and department codes: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$ */
#define WF_MAX_ASSIST   8  /* assisting departments of one case */
#define WF_MAX_RETURNED 16 /* departments that returned one case */
#define WF_MAX_EVENTS   2  /* events of one command (callback unsatisfied: 2) */
#define WF_ERROR_SIZE   160

/*
 * What the rules know of a case.  Plain data: copy it with `=`.  Empty
 * strings mean "none".  Times are unix microseconds, 0 = not yet.
 */
struct wf_case {
    char id[WF_ID_SIZE];
    char site[WF_SITE_SIZE];
    char number[WF_NUMBER_SIZE];
    int64_t version; /* 1 after register, +1 per accepted command */
    Shouwen__V1__CaseStatus status;
    Shouwen__V1__CaseType type;
    Shouwen__V1__Channel channel;
    Shouwen__V1__Urgency urgency;
    char first_responder[WF_CODE_SIZE]; /* natural first responder (自然首问责任人); "" if none */
    char first_department[WF_CODE_SIZE]; /* their department */
    char owner[WF_CODE_SIZE];            /* actual responsible person (事实首问责任人) */
    char department[WF_CODE_SIZE];       /* owning department; the lead when designated */
    char lead_department[WF_CODE_SIZE];  /* "" unless designated (then == department) */
    char assisting[WF_MAX_ASSIST][WF_CODE_SIZE];
    size_t n_assisting;
    char returned_by[WF_MAX_RETURNED][WF_CODE_SIZE]; /* departments that returned it */
    size_t n_returned;
    int32_t transfer_count;                        /* transfers and forwards so far */
    Shouwen__V1__EscalationLevel escalation_level; /* UNSPECIFIED reads as NONE */
    Shouwen__V1__WaitingOn waiting_on;             /* while waiting */
    Shouwen__V1__CaseStatus status_before_waiting; /* while waiting; resume restores it */
    int64_t waiting_since;                         /* while waiting */
    int64_t paused_total_us;                       /* time spent waiting, all waits */
    int64_t expected_completion_at;                /* told to the customer (progress) */
    bool resolved_on_spot;
    Shouwen__V1__Satisfaction satisfaction; /* of the last callback */
    int64_t received_at;
    int64_t created_at;
    int64_t updated_at; /* time of the last accepted command */
    int64_t first_contact_at;
    int64_t resolved_at;
    int64_t closed_at; /* closed, closed_unresolvable or referred_out */
    int64_t emergency_acknowledged_at;
};

/*
 * What the caller looked up for one command.  Strings may be NULL (read
 * as ""); the module keeps no pointer to them after wf_apply returns
 * except where noted in struct wf_result.
 */
struct wf_context {
    int64_t now; /* required: the time of the change, unix microseconds */
    /* Department of the person the actor acts as (on_behalf_of, else staff_code). */
    const char *actor_department;
    /* That person's direct supervisor (直接上级), whom they may assign to. */
    const char *actor_supervisor;
    /*
     * The person the command names: register_case.first_responder (when it
     * is not the actor), assign.to_staff, accept.handler, escalate.to_staff,
     * request_leader_callback.leader.  staff_found: active staff of the site.
     */
    bool staff_found;
    const char *staff_department;
    /*
     * The department(s) the command names: transfer and forward
     * to_department, assign.to_department, designate_lead (lead and every
     * assisting one).  department_found: all exist and are active.
     * department_head: the head of the (lead) department, NULL if none.
     */
    bool department_found;
    const char *department_head;
    /* register only: the id and number intake gave the new case. */
    const char *new_case_id;
    const char *new_case_number;
};

enum wf_err {
    WF_OK = 0,
    WF_EINVAL,     /* a field is missing or malformed (HTTP 422); wf_error.field names it */
    WF_EFORBIDDEN, /* the actor's role or position does not allow it (HTTP 403) */
    WF_ESTATE,     /* the case's state does not allow it (HTTP 409) */
    WF_ECONFLICT,  /* expected_version is not the case's version (HTTP 412, reload) */
};

struct wf_error {
    enum wf_err code;
    const char *field; /* WF_EINVAL: static name of the field at fault; else NULL */
    /* PostgreSQL style: lower case, no final period, e.g.
     * "cannot transfer a case that is resolved". */
    char message[WF_ERROR_SIZE];
};

/* Storage the events point into; not for the caller. */
union wf__event_msg {
    Shouwen__V1__CaseRegistered registered;
    Shouwen__V1__CaseResolvedOnSpot resolved_on_spot;
    Shouwen__V1__CaseAssigned assigned;
    Shouwen__V1__CaseTransferred transferred;
    Shouwen__V1__CaseAccepted accepted;
    Shouwen__V1__CaseReturned returned;
    Shouwen__V1__CaseForwarded forwarded;
    Shouwen__V1__CaseFirstContact first_contact;
    Shouwen__V1__CaseProgress progress;
    Shouwen__V1__CaseResolved resolved;
    Shouwen__V1__CaseCallback callback;
    Shouwen__V1__CaseReopened reopened;
    Shouwen__V1__CaseEscalated escalated;
    Shouwen__V1__CaseLeadDesignated lead_designated;
    Shouwen__V1__CaseReferredOut referred_out;
    Shouwen__V1__CaseClosedUnresolvable closed_unresolvable;
    Shouwen__V1__CaseWaiting waiting;
    Shouwen__V1__CaseResumed resumed;
    Shouwen__V1__CaseLeaderCallbackRequested leader_callback_requested;
    Shouwen__V1__EmergencyAcknowledged emergency_acknowledged;
};

/*
 * The outcome of an accepted command.
 *
 * Ownership: no heap.  The envelopes, their event messages and `handoff`
 * point into this struct (next, the private storage) and borrow strings
 * and repeated fields from the command; they stay valid while both the
 * command and this struct live and are not moved or changed.  So do not
 * copy a wf_result: stage its events at once (bus_outbox_add packs each
 * immediately, filling event_id and partition in its own copy) and copy
 * `next` out if it must outlive them.  Nothing needs freeing.
 */
struct wf_result {
    struct wf_case next; /* the case after the command; version = old + 1 */
    size_t n_events;     /* 1..WF_MAX_EVENTS */
    /* type, site, case_id, case_version (= next.version), time (= ctx now),
     * actor (the command's), command_id and the event are set; event_id and
     * partition are left for bus_outbox_add. */
    Shouwen__V1__Envelope events[WF_MAX_EVENTS];
    /*
     * The signed, timed handoff (签名签时) to record in core.handoffs, or
     * NULL when the command moves nobody: "assign", "transfer", "accept",
     * "return", "forward", "escalate", "refer_out" (and "transfer" for a
     * designate_lead that moves the case to another department).  On whose
     * behalf: the envelopes' actor.on_behalf_of.  For assign, transfer,
     * return and forward the event carries this same Handoff.
     */
    const char *handoff_kind;
    Shouwen__V1__Handoff handoff;
    /* private: what the pointers above point into */
    Shouwen__V1__Actor actor_;
    char from_staff_[WF_CODE_SIZE];
    char from_department_[WF_CODE_SIZE];
    union wf__event_msg msg_[WF_MAX_EVENTS];
};

/*
 * wf_apply applies `cmd` to `cur` as the rules above say.
 *
 * cur: the case as loaded (not modified); NULL, or status UNSPECIFIED, for
 *      register.  cmd: the command with its actor (not modified; the events
 *      borrow from it).  ctx: the time and the caller's look-ups.
 * On WF_OK, *res holds the new case and the events; *err is untouched.
 * On an error, *err says why and *res is untouched.  res and err must not
 * be NULL.
 */
enum wf_err wf_apply(const struct wf_case *cur, const Shouwen__V1__Command *cmd,
                     const struct wf_context *ctx, struct wf_result *res, struct wf_error *err);

/* wf_strerror returns a static, lower-case description of `err`. */
const char *wf_strerror(enum wf_err err);

/*
 * Name tables, both ways, with the exact text values of the database and
 * the HTTP API.  *_name returns a static string, or NULL for UNSPECIFIED
 * and unknown values.  *_parse writes *out and returns true for a known
 * name (case-sensitive); otherwise it returns false and leaves *out.
 */
const char *wf_status_name(Shouwen__V1__CaseStatus v);
bool wf_status_parse(const char *name, Shouwen__V1__CaseStatus *out);
const char *wf_case_type_name(Shouwen__V1__CaseType v);
bool wf_case_type_parse(const char *name, Shouwen__V1__CaseType *out);
const char *wf_channel_name(Shouwen__V1__Channel v);
bool wf_channel_parse(const char *name, Shouwen__V1__Channel *out);
const char *wf_urgency_name(Shouwen__V1__Urgency v);
bool wf_urgency_parse(const char *name, Shouwen__V1__Urgency *out);
const char *wf_escalation_name(Shouwen__V1__EscalationLevel v);
bool wf_escalation_parse(const char *name, Shouwen__V1__EscalationLevel *out);
const char *wf_satisfaction_name(Shouwen__V1__Satisfaction v);
bool wf_satisfaction_parse(const char *name, Shouwen__V1__Satisfaction *out);
const char *wf_waiting_on_name(Shouwen__V1__WaitingOn v);
bool wf_waiting_on_parse(const char *name, Shouwen__V1__WaitingOn *out);
const char *wf_role_name(Shouwen__V1__Role v);
bool wf_role_parse(const char *name, Shouwen__V1__Role *out);
/* Command names of POST /v1/cases/{id}/actions/{command}: "transfer", ... */
const char *wf_command_name(Shouwen__V1__Command__CommandCase v);
bool wf_command_parse(const char *name, Shouwen__V1__Command__CommandCase *out);
/* Dotted event types of envelope.proto: "case.registered", ... */
const char *wf_event_type_name(Shouwen__V1__Envelope__EventCase v);
bool wf_event_type_parse(const char *name, Shouwen__V1__Envelope__EventCase *out);

#endif
