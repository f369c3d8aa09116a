/*
 * db.h - one PostgreSQL connection that comes back by itself.
 *
 * A `struct db` owns a libpq connection to SHOUWEN_DATABASE_URL (a URI or
 * a key=value string).  Connecting is asynchronous (PQconnectStart and
 * PQconnectPoll) and checks a caller's stop function between polls, so a
 * service stops within a fraction of a second even while the database
 * hangs.  After a failure, db_tick waits with exponential backoff and
 * jitter (100 ms doubling up to a ceiling) before the next attempt.
 *
 * Not thread-safe: one thread uses a `struct db`.  db_ready and
 * db_last_error may be read from any thread.
 */
#ifndef SHOUWEN_DB_H
#define SHOUWEN_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"

struct db;

/* Returns nonzero when the caller wants to give up (e.g. SIGTERM arrived). */
typedef int (*db_stop_fn)(void);

/*
 * db_open allocates a handle for `url` without connecting.  `app` is
 * sent as application_name.  `retry_max_ms` caps the backoff.  Free with
 * db_close.
 */
sw_err db_open(struct db **out, const char *url, const char *app, long long retry_max_ms);

/* db_close closes the connection and frees the handle; accepts NULL. */
void db_close(struct db *db);

/*
 * db_tick is called from the owner's loop.  Not connected and the backoff
 * has passed: tries once to connect (returns SW_OK or SW_EDBDOWN).
 * Connected and `check` set: pings the server and drops the connection if
 * it is gone.  Returns SW_OK when connected afterwards.
 */
sw_err db_tick(struct db *db, bool check, db_stop_fn stop);

/* db_conn returns the live connection or NULL; owned by db. */
PGconn *db_conn(struct db *db);

/* db_ready: connected at the last check.  Any thread. */
bool db_ready(const struct db *db);

/* db_last_error copies the last connection error ("" if none). Any thread. */
void db_last_error(struct db *db, char *out, size_t outlen);

/* db_reset drops the connection, e.g. after a query found it broken. */
void db_reset(struct db *db);

/*
 * db_exec_prepared runs `sql` as the prepared statement `name` on `c`
 * (PQexecPrepared), preparing it first if this session has not yet.  The
 * names a session has prepared are kept with the PGconn itself (libpq's
 * instance data), so a new or reset connection starts empty and prepares
 * again.  Meant for writes whose plan cannot depend on the tables'
 * statistics (INSERTs of given rows): a generic plan of a lookup, made
 * while a table was small, could scan it whole for ever.  `name` must be
 * below 64 bytes and always name the same text.  Returns what
 * PQexecPrepared returns, or the failed PQprepare result (never NULL
 * unless out of memory); the caller clears it.
 */
PGresult *db_exec_prepared(PGconn *c, const char *name, const char *sql, int n,
                           const char *const *vals, const int *lens, const int *fmts);

/*
 * db_exec_fixed: db_exec_prepared named after `sql` itself (a 64-bit hash
 * of its text), for statements whose text never varies.  The same
 * caution: keyed look-ups and writes, not scans whose plan depends on
 * statistics.
 */
PGresult *db_exec_fixed(PGconn *c, const char *sql, int n, const char *const *vals);

/*
 * One statement of a pipeline (db_pipeline): `sql` with its `n`
 * parameters `vals`, text unless `fmts` (NULL: all text) marks one binary
 * (1), with its length in `lens`; results in text (binary 0) or binary (1)
 * form; `fixed`: prepared once per session and kept, as db_exec_fixed
 * does (the same caution applies).
 */
struct db_query {
    const char *sql;
    int n;
    const char *const *vals;
    const int *lens;
    const int *fmts;
    int binary;
    bool fixed;
};

#define DB_PIPELINE_MAX 8 /* statements in one db_pipeline */

/*
 * db_pipeline sends the `nq` statements of `qs` at once (libpq's pipeline
 * mode) and waits once for all their answers: one round trip instead of
 * one each, so none may need another's result.  out[i] is statement i's
 * result, or NULL when PostgreSQL skipped it after an earlier one failed;
 * the caller clears them all, whatever the outcome.  SW_OK when every
 * statement succeeded; else the first failure in `err` ("statement K of
 * N: ..."), and a transaction that the statements opened or were in is
 * the caller's to roll back.  SW_EDBDOWN: the session is lost or out of
 * step and must be dropped (db_reset).
 */
sw_err db_pipeline(PGconn *c, const struct db_query *qs, int nq, PGresult **out, char *err,
                   size_t errlen);

/*
 * DB_BEGIN_KEYED opens a transaction that finds its rows by key (ids in
 * arrays, primary and foreign keys): sequential scans, hash joins and
 * merge joins are off in it.  There, a prepared statement's generic plan
 * probes by key whatever the tables held when it was made, so a look-up
 * as well as a write may be prepared (db_exec_fixed) and kept, and a
 * consumer's batch does not pay to plan it again: planning the batch's
 * look-ups cost more than running them.  The generic plan is forced
 * (plan_cache_mode): left to choose, PostgreSQL compares it with plans
 * made for the values at hand, and a custom plan that knows an array
 * holds 3 elements, not the 10 a generic one assumes, always looks
 * cheaper, so the statement was planned anew every time (intake's
 * credential check was, 2,805 times in 2,805 batches).  Every execution of such a
 * statement must then be in such a transaction, since a plan is remade
 * where it runs (after ANALYZE, say).  The guards choose no index: a
 * statement is fit only when one index serves its key.  Intake's look-up
 * of earlier submissions (site, source, external reference), planned on
 * an empty core.cases, probes the index on the site alone even here, and
 * so stays planned per batch.  One simple-protocol string (PQexec), whose
 * last result is the guards' row.
 */
#define DB_BEGIN_KEYED "BEGIN; " DB_KEYED_GUARDS

/* The guards as one statement (its result is a row), also for a pipeline (db_pipeline). */
#define DB_KEYED_GUARDS                                                                            \
    "SELECT set_config('enable_seqscan', 'off', true), "                                           \
    "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), "    \
    "set_config('plan_cache_mode', 'force_generic_plan', true)"

/*
 * The guards for a few statements of a transaction that is not keyed: set
 * as DB_KEYED_GUARDS does, the values they replace kept (in placeholder
 * settings, shouwen.*, local to the transaction) for DB_KEYED_GUARDS_RESTORE,
 * which puts them back, whatever they were (postgresql.conf's, a role's).
 * The inner SELECT runs first: a subquery with volatile functions is not
 * merged into the outer one.
 */
#define DB_KEYED_GUARDS_SAVE                                                                       \
    "SELECT set_config('enable_seqscan', 'off', true), "                                           \
    "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), "    \
    "set_config('plan_cache_mode', 'force_generic_plan', true) FROM (SELECT "                      \
    "set_config('shouwen.enable_seqscan', current_setting('enable_seqscan'), true), "              \
    "set_config('shouwen.enable_hashjoin', current_setting('enable_hashjoin'), true), "            \
    "set_config('shouwen.enable_mergejoin', current_setting('enable_mergejoin'), true), "          \
    "set_config('shouwen.plan_cache_mode', current_setting('plan_cache_mode'), true)) saved"

#define DB_KEYED_GUARDS_RESTORE                                                                    \
    "SELECT set_config('enable_seqscan', current_setting('shouwen.enable_seqscan'), true), "       \
    "set_config('enable_hashjoin', current_setting('shouwen.enable_hashjoin'), true), "            \
    "set_config('enable_mergejoin', current_setting('shouwen.enable_mergejoin'), true), "          \
    "set_config('plan_cache_mode', current_setting('shouwen.plan_cache_mode'), true)"

/*
 * db_exec_guarded: `sql`, prepared and kept (db_exec_fixed), run with the
 * guards set around it alone (DB_KEYED_GUARDS_SAVE, then
 * DB_KEYED_GUARDS_RESTORE, in one round trip): a keyed statement in a
 * transaction that is not keyed, planned once instead of per batch, while
 * the transaction's other statements plan as they would have.  Meant for
 * an open transaction.  Returns the statement's result (NULL only when
 * out of memory or the session broke; PQerrorMessage says which).
 */
PGresult *db_exec_guarded(PGconn *c, const char *sql, int n, const char *const *vals);

/* The guards lifted again, for the rest of such a transaction's statements. */
#define DB_KEYED_GUARDS_LIFTED                                                                     \
    "SELECT set_config('enable_seqscan', 'on', true), "                                            \
    "set_config('enable_hashjoin', 'on', true), set_config('enable_mergejoin', 'on', true), "      \
    "set_config('plan_cache_mode', 'auto', true)"

/*
 * db_fail writes "<what>: <PostgreSQL's primary message>" into `err` (never
 * the DETAIL, which can quote a row and so a customer's words) and returns
 * SW_EDBDOWN when the connection is gone, else SW_EDB.  `r` may be NULL; it
 * is not cleared.
 */
sw_err db_fail(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen);

/* db_fail_clear: db_fail with "could not <what>", then PQclear(r). */
sw_err db_fail_clear(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen);

/* db_now_ms: CLOCK_MONOTONIC in milliseconds. */
long long db_now_ms(void);

#endif
