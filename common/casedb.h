/*
 * casedb.h - a case in PostgreSQL, for every caller of the workflow
 * (DESIGN.md section 2): intake applies people's commands, routing its
 * decisions, escalation its escalations, and all of them read and write a
 * case here, the same way.
 *
 * casedb_load reads a case (locked FOR UPDATE until the caller's commit)
 * as struct wf_case; the caller applies wf_apply; casedb_save writes what
 * it decided in the caller's open transaction: the case row (optimistic:
 * WHERE version = the version read), the signed, timed handoff
 * (core.handoffs), the notes (core.case_notes), the lead and assisting
 * departments (core.case_departments) and a leader's call-back
 * (core.leader_callbacks).  The events are the caller's to stage and write.
 *
 * Only PostgreSQL's primary message goes into `err`, never its DETAIL
 * (which can quote a row, and so a customer's words).
 */
#ifndef SHOUWEN_CASEDB_H
#define SHOUWEN_CASEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"
#include "workflow.h"

struct db_query; /* db.h */

/* Who signs, for which case, when. */
struct casedb_ctx {
    const char *site_id;      /* uuid */
    const char *case_id;      /* uuid */
    const char *staff_id;     /* uuid of the person who signs; NULL when a service does */
    const char *system;       /* the service that signs ("routing") when staff_id is NULL */
    const char *time_zone;    /* the site's: the local dates of notes */
    const char *on_behalf_of; /* a staff code, or NULL */
    int64_t at;               /* the command's time, unix microseconds */
    const char *event_id;     /* the command's first event: the handoff's and notes' */
};

/*
 * casedb_load reads case `case_id` of site `site_id`, locked until the
 * commit.  *found is false when there is no such case (not an error).
 */
sw_err casedb_load(PGconn *db, const char *case_id, const char *site_id, struct wf_case *c,
                   bool *found, char *err, size_t errlen);

/*
 * casedb_load_many reads the `n` cases `case_ids` (of `site_ids`) in one
 * query, one probe of the key per id, its plan made once under the guards
 * (db_exec_guarded, db.h); found[i] says whether c[i] was read (an id
 * given twice is read twice).  Unlike casedb_load it does not lock:
 * casedb_save_many's version check catches a case changed since (lost),
 * and a transaction that has only read holds no transaction id, so it
 * does not hold back what the bus's consumers may read as final
 * (bus.h) while it decides; it takes one at its first write.
 */
sw_err casedb_load_many(PGconn *db, const char *const *case_ids, const char *const *site_ids,
                        size_t n, struct wf_case *c, bool *found, char *err, size_t errlen);

/*
 * casedb_load_many_keyed and casedb_save_many_keyed: the same, as prepared
 * statements whose generic plan is made once and kept, for a transaction
 * opened with DB_BEGIN_KEYED (db.h) and only there.  A consumer's batch
 * then does not plan them anew: planning cost more than running them.
 * `also`, unless NULL, is a statement of the caller's that goes in the
 * same round trip (db_pipeline); its result is left in *also_out for the
 * caller to clear (NULL if it did not run), whatever the outcome.
 */
sw_err casedb_load_many_keyed(PGconn *db, const char *const *case_ids, const char *const *site_ids,
                              size_t n, struct wf_case *c, bool *found, const struct db_query *also,
                              PGresult **also_out, char *err, size_t errlen);

/*
 * casedb_save writes what wf_apply made of `old` (`res`) for `cmd`.
 * *lost is set when the case's version was no longer old->version (then
 * nothing else is written; the caller refuses or retries).
 */
sw_err casedb_save(PGconn *db, const struct casedb_ctx *x, const Shouwen__V1__Command *cmd,
                   const struct wf_case *old, const struct wf_result *res, bool *lost, char *err,
                   size_t errlen);

/* One command's result to write with casedb_save_many. */
struct casedb_write {
    struct casedb_ctx x;
    const Shouwen__V1__Command *cmd;
    const struct wf_case *old;
    const struct wf_result *res;
    bool lost; /* out: the case was no longer at old->version; nothing written for it */
};

/*
 * casedb_save_many is casedb_save for `n` commands on n different cases
 * (SW_EINVAL otherwise), with one statement for all the case rows and
 * their handoffs: what a consumer handling a batch of events writes.
 */
sw_err casedb_save_many(PGconn *db, struct casedb_write *w, size_t n, char *err, size_t errlen);
sw_err casedb_save_many_keyed(PGconn *db, struct casedb_write *w, size_t n, char *err,
                              size_t errlen);

/* What wf_apply needs to know of the people and departments a command names. */
struct casedb_lookups {
    bool person_found; /* the person acted as (on_behalf_of) is active staff of the site */
    char staff_role[24];
    char actor_department[WF_CODE_SIZE];
    char actor_supervisor[WF_CODE_SIZE];
    bool staff_found;
    char staff_department[WF_CODE_SIZE];
    bool department_found;
    char department_head[WF_CODE_SIZE];
    bool has_head;
};

/*
 * casedb_look_up fills `lu` in one query: the department and direct
 * supervisor of `person` (the one acting, or acted for), whether `staff`
 * (the person the command names) is active staff of the site and their
 * department and role, whether every one of `depts` is an active
 * department, and who heads `head_of`: its department head, else a
 * supervisor or manager in it (on duty first).
 */
sw_err casedb_look_up(PGconn *db, const char *site_id, const char *person, const char *staff,
                      const char *const *depts, size_t ndepts, const char *head_of,
                      struct casedb_lookups *lu, char *err, size_t errlen);

#endif
