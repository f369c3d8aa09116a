/*
 * buf.c - a growing byte buffer with a ceiling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static sw_err buf__reserve(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return SW_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return SW_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return SW_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SW_OK;
}

sw_err buf_append(struct buf *b, const void *data, size_t len)
{
    sw_err rv = buf__reserve(b, len);
    if (rv != SW_OK)
        return rv;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return SW_OK;
}

sw_err buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/*
 * Formatted once into the room the buffer has, which is nearly always
 * enough; only when it is not, sized and formatted again.  (It was always
 * formatted twice, the first time only to be measured: the services build
 * their statements' arrays with it, a dozen numbers a row.)
 */
sw_err buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->data != NULL ? b->cap - b->len : 0; /* the NUL's byte included */
    int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n >= 0 && (size_t)n < room && (size_t)n <= b->max - b->len) {
        b->len += (size_t)n;
        return SW_OK;
    }
    if (room > 0)
        b->data[b->len] = '\0'; /* as it was */
    if (n < 0)
        return SW_EINVAL;
    sw_err rv = buf__reserve(b, (size_t)n);
    if (rv != SW_OK)
        return rv;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SW_OK;
}

sw_err buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sw_err rv = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rv;
}

sw_err buf_json_string(struct buf *b, const char *s)
{
    size_t start = b->len;
    sw_err rv = buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; rv == SW_OK && *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            rv = buf_append(b, "\\\"", 2);
            break;
        case '\\':
            rv = buf_append(b, "\\\\", 2);
            break;
        case '\n':
            rv = buf_append(b, "\\n", 2);
            break;
        case '\r':
            rv = buf_append(b, "\\r", 2);
            break;
        case '\t':
            rv = buf_append(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                rv = buf_append(b, esc, 6);
            } else {
                rv = buf_append(b, p, 1);
            }
        }
    }
    if (rv == SW_OK)
        rv = buf_append(b, "\"", 1);
    if (rv != SW_OK && b->data != NULL) {
        b->len = start; /* leave the buffer as it was */
        b->data[start] = '\0';
    }
    return rv;
}

const char *buf_cstr(const struct buf *b)
{
    return b->data != NULL ? b->data : "";
}

sw_err buf_pg_elem(struct buf *b, bool first, const char *v)
{
    sw_err rv = first ? SW_OK : buf_puts(b, ",");
    if (rv != SW_OK || v == NULL)
        return rv == SW_OK ? buf_puts(b, "NULL") : rv;
    rv = buf_puts(b, "\"");
    for (const char *c = v; rv == SW_OK && *c; c++) {
        if (*c == '"' || *c == '\\')
            rv = buf_puts(b, "\\");
        if (rv == SW_OK)
            rv = buf_append(b, c, 1);
    }
    return rv == SW_OK ? buf_puts(b, "\"") : rv;
}

sw_err buf_pg_array(struct buf *b, const char *const *v, size_t n)
{
    sw_err rv = buf_puts(b, "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++)
        rv = buf_pg_elem(b, i == 0, v[i]);
    return rv == SW_OK ? buf_puts(b, "}") : rv;
}
