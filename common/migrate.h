/*
 * migrate.h - ordered, versioned SQL migrations.
 *
 * A migrations folder holds files named NNNN_description.sql, applied in
 * version order.  Each pending file runs in its own transaction together
 * with the row that records it in shouwen_meta.schema_migrations, so a
 * file is either applied and recorded or not at all: a failure leaves the
 * schema as it was and names the file and line.  A file changed after it
 * was applied is refused (its checksum no longer matches): migrations are
 * history, new changes go in a new file.  Concurrent migrators serialise
 * on an advisory lock.
 */
#ifndef SHOUWEN_MIGRATE_H
#define SHOUWEN_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "err.h"

struct migrate_stmt {
    size_t off; /* byte offset of the statement in the source */
    size_t len; /* bytes, without the terminating ';' */
    int line;   /* 1-based line where the statement starts */
};

/*
 * migrate_split cuts `sql` into statements at top-level semicolons,
 * understanding '...' and E'...' strings, "identifiers", -- and nested
 * block comments and $tag$ dollar quoting.  Statements that hold only
 * blanks and comments are skipped.  On success `*out` is a malloc'd array
 * of `*n` statements (free with free()); returns SW_EINVAL with `*line`
 * set when a quote or comment is never closed, SW_ENOMEM on no memory.
 */
sw_err migrate_split(const char *sql, size_t len, struct migrate_stmt **out, size_t *n, int *line);

/*
 * migrate_line_of returns the 1-based line, in the whole file, of the
 * 1-based *character* position `pos` (as PostgreSQL reports it) inside
 * statement `st`.
 */
int migrate_line_of(const char *sql, const struct migrate_stmt *st, int pos);

/*
 * migrate_run applies every pending migration in `dir` over `conn`,
 * reporting progress lines on `progress` (may be NULL).  Returns SW_OK
 * (also when nothing was pending) or an error with a one-line message in
 * `err` naming the file and line.
 */
sw_err migrate_run(PGconn *conn, const char *dir, FILE *progress, char *err, size_t errlen);

#endif
