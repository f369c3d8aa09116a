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

/* db_now_ms: CLOCK_MONOTONIC in milliseconds. */
long long db_now_ms(void);

#endif
