/*
 * buf.h - a growing byte buffer with a ceiling (curl's dynbuf).
 *
 * Every buffer that grows with outside input has a maximum size; an append
 * that would pass it fails with SW_ETOOBIG and leaves the buffer as it was.
 * The contents are always NUL-terminated so they can be used as a string.
 */
#ifndef SHOUWEN_BUF_H
#define SHOUWEN_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct buf {
    char *data; /* NULL until the first append; owned by the buffer */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling for len */
};

/* buf_init prepares an empty buffer that may grow to `max` bytes. */
void buf_init(struct buf *b, size_t max);

/* buf_free releases the contents; the buffer may be reused after buf_init. */
void buf_free(struct buf *b);

/* buf_reset empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);

sw_err buf_append(struct buf *b, const void *data, size_t len);
sw_err buf_puts(struct buf *b, const char *s);
sw_err buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
sw_err buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* buf_json_string appends `s` as a quoted, escaped JSON string. */
sw_err buf_json_string(struct buf *b, const char *s);

/* buf_cstr returns the contents as a string ("" when empty); owned by b. */
const char *buf_cstr(const struct buf *b);

/*
 * buf_pg_array appends `v` as a PostgreSQL text array literal: {"a","b\"c"};
 * a NULL element is written as NULL.
 */
sw_err buf_pg_array(struct buf *b, const char *const *v, size_t n);
/*
 * buf_pg_elem appends one element of such a literal, preceded by a comma
 * unless `first`, for arrays built element by element (the caller writes
 * the braces).  NULL is written as NULL.
 */
sw_err buf_pg_elem(struct buf *b, bool first, const char *v);

#endif
