/*
 * pgcopy.c - rows into a table with a binary COPY; see pgcopy.h.
 *
 * PostgreSQL's binary COPY format: a signature, a flags word and an
 * extension length; per row the field count, then each field as its
 * length (-1 for NULL) and its bytes in the type's binary form (network
 * byte order); -1 as the field count at the end.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "db.h"
#include "pgcopy.h"

#define PGCOPY_CHUNK (1u << 16) /* bytes handed to libpq at a time */
#define PGCOPY_MAX   (1u << 30) /* the buffer's ceiling (it is flushed long before) */
/* microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch */
#define PG_EPOCH_US INT64_C(946684800000000)

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void failf(struct pgcopy *pc, sw_err rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failf(struct pgcopy *pc, sw_err rv, const char *fmt, ...)
{
    if (pc->rv != SW_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->failure, sizeof(pc->failure), fmt, ap);
    va_end(ap);
    pc->rv = rv;
}

/* Hands what is buffered to libpq once a chunk has gathered (or `all`). */
static void flush(struct pgcopy *pc, bool all)
{
    if (pc->rv != SW_OK || pc->b.len == 0 || (!all && pc->b.len < PGCOPY_CHUNK))
        return;
    if (PQputCopyData(pc->c, pc->b.data, (int)pc->b.len) != 1) {
        char e[sizeof(pc->failure)];
        sw_err rv = db_fail(pc->c, NULL, "sending the rows", e, sizeof(e));
        failf(pc, rv, "%s", e);
        return;
    }
    buf_reset(&pc->b);
}

static void put(struct pgcopy *pc, const void *p, size_t len)
{
    if (pc->rv != SW_OK)
        return;
    sw_err rv = buf_append(&pc->b, p, len);
    if (rv != SW_OK)
        failf(pc, rv, "a row does not fit in memory");
}

/* A field's length word and its bytes. */
static void field(struct pgcopy *pc, const void *p, uint32_t len)
{
    uint8_t w[4];
    put_be32(w, len);
    put(pc, w, sizeof(w));
    put(pc, p, len);
}

sw_err pgcopy_begin(struct pgcopy *pc, PGconn *c, const char *copy_sql, const char *what, char *err,
                    size_t errlen)
{
    memset(pc, 0, sizeof(*pc));
    pc->c = c;
    pc->what = what;
    buf_init(&pc->b, PGCOPY_MAX);
    PGresult *r = PQexec(c, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        char w[120];
        snprintf(w, sizeof(w), "could not %s", what);
        pc->rv = db_fail(c, r, w, pc->failure, sizeof(pc->failure));
        snprintf(err, errlen, "%s", pc->failure);
        PQclear(r);
        return pc->rv;
    }
    PQclear(r);
    pc->started = true;
    put(pc, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
    return pc->rv;
}

void pgcopy_row(struct pgcopy *pc, uint16_t nfields)
{
    uint8_t w[2];
    flush(pc, false);
    put_be16(w, nfields);
    put(pc, w, sizeof(w));
    pc->rows++;
}

void pgcopy_null(struct pgcopy *pc)
{
    uint8_t w[4];
    put_be32(w, UINT32_MAX);
    put(pc, w, sizeof(w));
}

void pgcopy_int4(struct pgcopy *pc, int32_t v)
{
    uint8_t w[4];
    put_be32(w, (uint32_t)v);
    field(pc, w, sizeof(w));
}

void pgcopy_int8(struct pgcopy *pc, int64_t v)
{
    uint8_t w[8];
    put_be64(w, (uint64_t)v);
    field(pc, w, sizeof(w));
}

void pgcopy_text(struct pgcopy *pc, const char *s)
{
    if (s == NULL) {
        pgcopy_null(pc);
        return;
    }
    size_t n = strlen(s);
    if (n > INT32_MAX) {
        failf(pc, SW_ETOOBIG, "a text of %zu bytes", n);
        return;
    }
    field(pc, s, (uint32_t)n);
}

void pgcopy_bytes(struct pgcopy *pc, const void *p, size_t len)
{
    if (len > INT32_MAX) {
        failf(pc, SW_ETOOBIG, "a value of %zu bytes", len);
        return;
    }
    field(pc, p, (uint32_t)len);
}

void pgcopy_time_us(struct pgcopy *pc, int64_t unix_us)
{
    pgcopy_int8(pc, unix_us - PG_EPOCH_US);
}

bool pgcopy_uuid_bytes(const char *s, uint8_t out[16])
{
    int n = 0;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
            continue;
        }
        int v = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (v < 0)
            return false;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return s[36] == '\0';
}

void pgcopy_uuid(struct pgcopy *pc, const char *s)
{
    uint8_t u[16];
    if (s == NULL || s[0] == '\0') {
        pgcopy_null(pc);
        return;
    }
    if (!pgcopy_uuid_bytes(s, u)) {
        failf(pc, SW_EINVAL, "\"%.40s\" is not a UUID", s);
        return;
    }
    field(pc, u, sizeof(u));
}

sw_err pgcopy_end(struct pgcopy *pc, char *err, size_t errlen)
{
    sw_err rv = pc->rv;
    char w[120];
    snprintf(w, sizeof(w), "could not %s", pc->what);
    if (pc->started) {
        uint8_t end[2] = {0xff, 0xff};
        put(pc, end, sizeof(end));
        flush(pc, true);
        rv = pc->rv;
        if (rv != SW_OK)
            snprintf(err, errlen, "%s: %s", w, pc->failure);
        if (PQputCopyEnd(pc->c, rv == SW_OK ? NULL : "aborted by the writer") != 1 && rv == SW_OK)
            rv = db_fail(pc->c, NULL, w, err, errlen);
        PGresult *r;
        while ((r = PQgetResult(pc->c)) != NULL) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK && rv == SW_OK)
                rv = db_fail(pc->c, r, w, err, errlen);
            PQclear(r);
        }
    } else if (rv != SW_OK) {
        snprintf(err, errlen, "%s", pc->failure);
    }
    buf_free(&pc->b);
    pc->started = false;
    return rv;
}
