/*
 * pgcopy.h - rows into a table with COPY ... FROM STDIN (FORMAT binary).
 *
 * Many rows go in with a binary COPY far more cheaply than with an INSERT
 * of arrays or JSON: PostgreSQL parses no text, neither the statement's
 * (there is none to plan) nor the values' (each field is in its type's
 * binary form).  Usage:
 *
 *     struct pgcopy pc;
 *     if (pgcopy_begin(&pc, tx, "COPY t (a, b) FROM STDIN (FORMAT binary)",
 *                      "append to t", err, errlen) == SW_OK) {
 *         for (each row) {
 *             pgcopy_row(&pc, 2);
 *             pgcopy_int8(&pc, a);
 *             pgcopy_text(&pc, b);
 *         }
 *     }
 *     rv = pgcopy_end(&pc, err, errlen);
 *
 * The field functions record the first failure (out of memory, a malformed
 * id) in the struct and do nothing after it; pgcopy_end then aborts the
 * COPY, so none of its rows is written, and reports that failure.  The
 * buffer is handed to libpq about 64 KiB at a time.  pgcopy_end must be
 * called once pgcopy_begin has been, whatever it returned; it frees
 * everything.  The rows are the transaction's like any other: a failed
 * COPY leaves the transaction aborted, the caller's to roll back.
 */
#ifndef SHOUWEN_PGCOPY_H
#define SHOUWEN_PGCOPY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct pgcopy {
    PGconn *c;
    struct buf b;
    const char *what;  /* "could not <what>" in errors */
    sw_err rv;         /* the first failure */
    char failure[200]; /* its words, for pgcopy_end */
    size_t rows;
    bool started; /* the server is in COPY IN */
};

/* Starts `copy_sql` (a COPY ... FROM STDIN (FORMAT binary)) on `c`. */
sw_err pgcopy_begin(struct pgcopy *pc, PGconn *c, const char *copy_sql, const char *what, char *err,
                    size_t errlen);

/* A new row of `nfields` fields. */
void pgcopy_row(struct pgcopy *pc, uint16_t nfields);

void pgcopy_null(struct pgcopy *pc);
void pgcopy_int4(struct pgcopy *pc, int32_t v);
void pgcopy_int8(struct pgcopy *pc, int64_t v);
/* text (or varchar) from a string; NULL writes NULL */
void pgcopy_text(struct pgcopy *pc, const char *s);
/* bytea */
void pgcopy_bytes(struct pgcopy *pc, const void *p, size_t len);
/* timestamptz, from microseconds since 1970 (UTC) */
void pgcopy_time_us(struct pgcopy *pc, int64_t unix_us);
/*
 * uuid from its canonical text (8-4-4-4-12 hex digits, either case); NULL
 * or "" writes NULL.  Anything else fails the COPY, naming the value: the
 * bytes go to the server as they are, unchecked.
 */
void pgcopy_uuid(struct pgcopy *pc, const char *s);

/*
 * Ends the COPY: on success the rows are in the table (SW_OK); after a
 * failure, here or recorded by a field function, it is aborted and the
 * failure is in `err`.
 */
sw_err pgcopy_end(struct pgcopy *pc, char *err, size_t errlen);

/* A canonical UUID to its 16 bytes; false for anything else. */
bool pgcopy_uuid_bytes(const char *s, uint8_t out[16]);

#endif
