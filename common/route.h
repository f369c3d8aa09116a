/*
 * route.h - who gets a case: a site's routing rules and the decisions made
 * with them (DOMAIN.md: first-contact responsibility, 转办, no 推诿).
 *
 * Pure, like workflow.h: no I/O, no clock, no allocation after a table is
 * built.  The routing service loads the rules and the facts of a case
 * (its first responder's department and scope, the departments that
 * returned it, where it has been) and asks here where it goes; intake
 * checks a rule here before it is saved.
 *
 * A rule matches a case when every condition it sets holds: request type,
 * channel and urgency (each a set; empty = any), keywords (any one of them
 * occurring in the subject or the description; ASCII letters compare
 * without case, Chinese text byte for byte, no word segmentation),
 * location (a prefix of the customer's address, room or unit, e.g. "3-"
 * for building 3) and time of day (local minutes, [from, to), wrapping
 * past midnight when from > to).  A rule with no condition at all is
 * refused: the site's fallback, its customer-relations supervisor (客服主
 * 管), is what catches the rest.  Rules are tried by priority (lower
 * first); two rules of a site may not share a priority.
 */
#ifndef SHOUWEN_ROUTE_H
#define SHOUWEN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "workflow.h"

#define ROUTE_MAX_KEYWORDS 16  /* per rule */
#define ROUTE_KEYWORD_MAX  100 /* bytes of one keyword */
#define ROUTE_LOCATION_MAX 64  /* bytes of a location prefix */
#define ROUTE_NAME_MAX     200 /* bytes of a rule's name */
#define ROUTE_WHY_MAX      400 /* bytes of an explanation */

struct route_rule {
    char id[37]; /* as stored ("" before it is saved) */
    char name[ROUTE_NAME_MAX + 1];
    int priority;
    /* sets of enum values: bit (1u << value) of Shouwen__V1__CaseType,
     * __Channel, __Urgency; 0 = any */
    uint32_t types, channels, urgencies;
    size_t nkeywords;
    char keywords[ROUTE_MAX_KEYWORDS][ROUTE_KEYWORD_MAX + 1];
    char location[ROUTE_LOCATION_MAX + 1]; /* "" = anywhere */
    int from_minute, to_minute;            /* -1, -1 = any time of day */
    char target[WF_CODE_SIZE];             /* the (lead) department */
    size_t nassisting;                     /* > 0: a multi-department case */
    char assisting[WF_MAX_ASSIST][WF_CODE_SIZE];
};

/* What a rule is matched against. */
struct route_facts {
    int type, channel, urgency; /* enum values */
    const char *subject, *description;
    const char *location[3]; /* address, room, unit; NULL or "" = unknown */
    int minute;              /* local minutes since midnight, 0..1439; -1 = unknown */
};

/*
 * route_rule_check tells what is wrong with one rule, given the codes of
 * the site's active departments: the field (as the API names it) and a
 * message.  Returns true when the rule may be saved.
 */
bool route_rule_check(const struct route_rule *r, const char *const *depts, size_t ndepts,
                      char *field, size_t fieldlen, char *msg, size_t msglen);

/* route_rules_check_order: false, with a message, when two rules share a priority. */
bool route_rules_check_order(const struct route_rule *rules, size_t n, char *msg, size_t msglen);

/* A site's rules, ordered and with their keywords compiled into one automaton. */
struct route_table;

/* route_table_build copies `rules` (checked or not) into a new table. */
sw_err route_table_build(const struct route_rule *rules, size_t n, struct route_table **out);
void route_table_free(struct route_table *t);
size_t route_table_size(const struct route_table *t);

/*
 * route_match returns the first rule in order that matches `f` and whose
 * target is none of `exclude`, or NULL.  Thread-safe on a shared table.
 */
const struct route_rule *route_match(const struct route_table *t, const struct route_facts *f,
                                     const char *const *exclude, size_t nexclude);

/* ---- decisions ------------------------------------------------------------------------- */

enum route_action {
    ROUTE_NOTHING,           /* resolved on the spot, or already where it belongs */
    ROUTE_OWN_DEPARTMENT,    /* the first responder's department covers it: assign there */
    ROUTE_DIRECT_SUPERVISOR, /* an operator's request outside their scope: to their supervisor */
    ROUTE_RULE,              /* transfer by a rule (with assisting departments: a lead) */
    ROUTE_FALLBACK,          /* nothing matched: the site's customer-relations supervisor */
    ROUTE_LOOP,              /* it would go back where it has been: the supervisor, flagged */
};

/* The case as routing sees it. */
struct route_case {
    struct route_facts facts;
    bool resolved_on_spot;
    /* the natural first responder */
    const char *first_department; /* "" if none */
    bool first_department_covers; /* that department's scope covers the type */
    bool first_is_operator;       /* guard, cleaner, technician: role staff */
    const char *first_supervisor; /* their direct supervisor's code, "" if none */
    /* where it has been */
    const char *department; /* now, "" if none */
    const char *const *returned_by;
    size_t nreturned;
    const char *const *visited; /* departments it was sent to, oldest first */
    size_t nvisited;
};

struct route_decision {
    enum route_action action;
    const struct route_rule *rule; /* ROUTE_RULE; and the rule that pointed back for ROUTE_LOOP */
    char department[WF_CODE_SIZE]; /* ROUTE_OWN_DEPARTMENT and ROUTE_RULE */
    char staff[WF_CODE_SIZE];      /* ROUTE_DIRECT_SUPERVISOR */
    bool flag_qa;                  /* a loop: QA is told */
    char why[ROUTE_WHY_MAX];       /* for the case's history */
};

/* route_new_case decides for a registered case (DOMAIN.md, first responder's steps). */
void route_new_case(const struct route_table *t, const struct route_case *c,
                    struct route_decision *d);

/*
 * route_returned decides for a returned transfer: the next matching
 * department that has not returned it, never automatically back to one
 * that did; one it has already been sent to is a loop.
 */
void route_returned(const struct route_table *t, const struct route_case *c,
                    struct route_decision *d);

const char *route_action_name(enum route_action a);

#endif
