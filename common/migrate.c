/*
 * migrate.c - applying the SQL migrations in order, each atomically.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "migrate.h"

#define MIGRATE_FILE_MAX (8u << 20)
#define MIGRATE_LOCK_KEY "7275368021" /* arbitrary, fixed: 'shouwen migrate' */

static bool is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/* At sql[i] == '$': length of a dollar-quote tag "$tag$", or 0 if none. */
static size_t dollar_tag(const char *sql, size_t len, size_t i)
{
    if (i > 0 && is_ident(sql[i - 1]))
        return 0; /* part of an identifier such as a$b */
    size_t j = i + 1;
    if (j < len && (isdigit((unsigned char)sql[j])))
        return 0; /* $1: a parameter */
    while (j < len && is_ident(sql[j]))
        j++;
    if (j < len && sql[j] == '$')
        return j - i + 1;
    return 0;
}

sw_err migrate_split(const char *sql, size_t len, struct migrate_stmt **out, size_t *n, int *line)
{
    struct migrate_stmt *v = NULL;
    size_t nv = 0, cap = 0;
    int ln = 1;
    size_t start = 0;   /* first byte of the current statement */
    int start_line = 0; /* 0 until the statement has a non-blank token */
    size_t i = 0;
    sw_err rv = SW_OK;

    while (i <= len) {
        char c = i < len ? sql[i] : ';'; /* the end closes the last statement */
        if (i < len && c == '\n') {
            ln++;
            i++;
            continue;
        }
        if (i < len && isspace((unsigned char)c)) {
            i++;
            continue;
        }
        if (i + 1 < len && c == '-' && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n')
                i++;
            continue;
        }
        if (i + 1 < len && c == '/' && sql[i + 1] == '*') {
            int depth = 1, open_line = ln;
            i += 2;
            while (i < len && depth > 0) {
                if (sql[i] == '\n')
                    ln++;
                if (i + 1 < len && sql[i] == '/' && sql[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (i + 1 < len && sql[i] == '*' && sql[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
            if (depth > 0) {
                *line = open_line;
                rv = SW_EINVAL;
                goto out;
            }
            continue;
        }
        if (c == ';') {
            if (start_line > 0) {
                if (nv == cap) {
                    size_t nc = cap ? cap * 2 : 32;
                    struct migrate_stmt *p = realloc(v, nc * sizeof(*v));
                    if (p == NULL) {
                        rv = SW_ENOMEM;
                        goto out;
                    }
                    v = p;
                    cap = nc;
                }
                v[nv].off = start;
                v[nv].len = (i < len ? i : len) - start;
                v[nv].line = start_line;
                nv++;
            }
            start_line = 0;
            i++;
            start = i;
            continue;
        }
        if (start_line == 0) {
            start_line = ln;
            start = i;
        }
        if (c == '\'' || c == '"') {
            bool esc = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                       (i < 2 || !is_ident(sql[i - 2]));
            int open_line = ln;
            i++;
            for (;;) {
                if (i >= len) {
                    *line = open_line;
                    rv = SW_EINVAL;
                    goto out;
                }
                if (sql[i] == '\n')
                    ln++;
                if (esc && sql[i] == '\\' && i + 1 < len) {
                    if (sql[i + 1] == '\n')
                        ln++;
                    i += 2;
                    continue;
                }
                if (sql[i] == c) {
                    if (i + 1 < len && sql[i + 1] == c) {
                        i += 2; /* doubled quote */
                        continue;
                    }
                    i++;
                    break;
                }
                i++;
            }
            continue;
        }
        if (c == '$') {
            size_t tl = dollar_tag(sql, len, i);
            if (tl > 0) {
                int open_line = ln;
                const char *tag = sql + i;
                i += tl;
                for (;;) {
                    if (i >= len) {
                        *line = open_line;
                        rv = SW_EINVAL;
                        goto out;
                    }
                    if (sql[i] == '$' && i + tl <= len && memcmp(sql + i, tag, tl) == 0) {
                        i += tl;
                        break;
                    }
                    if (sql[i] == '\n')
                        ln++;
                    i++;
                }
                continue;
            }
        }
        i++;
    }
    *out = v;
    *n = nv;
    v = NULL;
out:
    free(v);
    return rv;
}

int migrate_line_of(const char *sql, const struct migrate_stmt *st, int pos)
{
    int line = st->line;
    int chars = 0;
    /* The statement's text as sent begins at its first token. */
    for (size_t i = st->off; i < st->off + st->len; i++) {
        unsigned char c = (unsigned char)sql[i];
        if ((c & 0xc0) != 0x80)
            chars++; /* a character starts here */
        if (chars >= pos)
            break;
        if (c == '\n')
            line++;
    }
    return line;
}

static char *read_file_path(const char *dir, const char *name, size_t *len, char *err,
                            size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[8192];
    size_t n;
    if (f == NULL) {
        snprintf(err, errlen, "could not open %s: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&b, MIGRATE_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) != SW_OK) {
            snprintf(err, errlen, "could not read %s: larger than %u bytes", path,
                     MIGRATE_FILE_MAX);
            fclose(f);
            buf_free(&b);
            return NULL;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "could not read %s: %s", path, strerror(errno));
        fclose(f);
        buf_free(&b);
        return NULL;
    }
    fclose(f);
    if (b.data == NULL && buf_append(&b, "", 0) != SW_OK) {
        snprintf(err, errlen, "out of memory reading %s", path);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

struct mfile {
    int version;
    char *name;
};

static int mfile_cmp(const void *a, const void *b)
{
    const struct mfile *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static void mfiles_free(struct mfile *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i].name);
    free(v);
}

/* List NNNN_*.sql files in version order; refuse odd names and duplicates. */
static sw_err list_files(const char *dir, struct mfile **out, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct mfile *v = NULL;
    size_t nv = 0, cap = 0;
    struct dirent *e;
    sw_err rv = SW_OK;
    if (d == NULL) {
        snprintf(err, errlen, "could not open migrations folder %s: %s", dir, strerror(errno));
        return SW_ENOTFOUND;
    }
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (l < 4 || strcmp(nm + l - 4, ".sql") != 0)
            continue;
        size_t digits = strspn(nm, "0123456789");
        if (digits != 4 || nm[4] != '_' || l < 10) {
            snprintf(err, errlen, "bad migration file name %s/%s: expected NNNN_description.sql",
                     dir, nm);
            rv = SW_EINVAL;
            goto out;
        }
        if (nv == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct mfile *p = realloc(v, nc * sizeof(*v));
            if (p == NULL) {
                rv = SW_ENOMEM;
                goto out;
            }
            v = p;
            cap = nc;
        }
        v[nv].version = atoi(nm);
        v[nv].name = strdup(nm);
        if (v[nv].name == NULL) {
            rv = SW_ENOMEM;
            goto out;
        }
        nv++;
    }
    if (nv > 1)
        qsort(v, nv, sizeof(*v), mfile_cmp);
    for (size_t i = 1; i < nv; i++) {
        if (v[i].version == v[i - 1].version) {
            snprintf(err, errlen, "two migrations have version %04d: %s and %s", v[i].version,
                     v[i - 1].name, v[i].name);
            rv = SW_EINVAL;
            goto out;
        }
    }
    *out = v;
    *n = nv;
    v = NULL;
out:
    if (rv == SW_ENOMEM)
        snprintf(err, errlen, "out of memory listing %s", dir);
    mfiles_free(v, nv);
    closedir(d);
    return rv;
}

static sw_err exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    sw_err rv = SW_OK;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "could not run \"%s\": %s", sql, PQerrorMessage(c));
        rv = SW_EDB;
    }
    PQclear(r);
    return rv;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Apply one file inside one transaction; the caller has checked it is pending. */
static sw_err apply_one(PGconn *c, const char *dir, const struct mfile *m, const char *sql,
                        size_t len, const char *sum, FILE *progress, char *err, size_t errlen)
{
    struct migrate_stmt *st = NULL;
    size_t nst = 0;
    int line = 0;
    sw_err rv = migrate_split(sql, len, &st, &nst, &line);
    struct timespec t0, t1;
    if (rv == SW_EINVAL) {
        snprintf(err, errlen, "%s/%s:%d: unterminated quote or comment", dir, m->name, line);
        return rv;
    }
    if (rv != SW_OK) {
        snprintf(err, errlen, "out of memory parsing %s/%s", dir, m->name);
        return rv;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((rv = exec_ok(c, "BEGIN", err, errlen)) != SW_OK)
        goto out;
    for (size_t i = 0; i < nst; i++) {
        char *text = strndup(sql + st[i].off, st[i].len);
        if (text == NULL) {
            snprintf(err, errlen, "out of memory applying %s", m->name);
            rv = SW_ENOMEM;
            goto rollback;
        }
        PGresult *r = PQexec(c, text);
        free(text);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
            const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
            const char *prim = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
            int at = pos ? migrate_line_of(sql, &st[i], atoi(pos)) : st[i].line;
            char msg[600];
            snprintf(msg, sizeof(msg), "%s", prim ? prim : PQerrorMessage(c));
            chomp(msg);
            snprintf(err, errlen, "%s/%s:%d: %s (SQLSTATE %s)%s%s; nothing of this file applied",
                     dir, m->name, at, msg, state ? state : "?", detail ? ": " : "",
                     detail ? detail : "");
            PQclear(r);
            rv = SW_EDB;
            goto rollback;
        }
        PQclear(r);
    }
    {
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        const char *params[] = {version, m->name, sum};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO shouwen_meta.schema_migrations "
                                   "(version, name, checksum) VALUES ($1, $2, $3)",
                                   3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "could not record %s: %s", m->name, PQerrorMessage(c));
            chomp(err);
            PQclear(r);
            rv = SW_EDB;
            goto rollback;
        }
        PQclear(r);
    }
    if ((rv = exec_ok(c, "COMMIT", err, errlen)) != SW_OK)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (progress != NULL)
        fprintf(progress, "applied %s (%zu statements, %ld ms)\n", m->name, nst,
                (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    goto out;
rollback : {
    char ignore[256];
    exec_ok(c, "ROLLBACK", ignore, sizeof(ignore));
}
out:
    free(st);
    return rv;
}

/* The SHA-256 of `data` in hex, computed by the server: no crypto library needed here. */
static sw_err checksum(PGconn *c, const char *data, size_t len, char out[65], char *err,
                       size_t errlen)
{
    const char *params[] = {data};
    int lens[] = {(int)len};
    int fmts[] = {1};
    PGresult *r =
        PQexecParams(c, "SELECT encode(sha256($1::bytea), 'hex')", 1, NULL, params, lens, fmts, 0);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "could not compute a checksum: %s", PQerrorMessage(c));
        chomp(err);
        rv = SW_EDB;
    } else {
        snprintf(out, 65, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rv;
}

sw_err migrate_run(PGconn *c, const char *dir, FILE *progress, char *err, size_t errlen)
{
    struct mfile *files = NULL;
    size_t nfiles = 0, applied = 0, current = 0;
    PGresult *have = NULL;
    char *sql = NULL;
    int top = 0;
    sw_err rv = list_files(dir, &files, &nfiles, err, errlen);
    if (rv != SW_OK)
        return rv;
    if ((rv = exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen)) != SW_OK)
        goto out;
    if ((rv = exec_ok(c,
                      "SET client_min_messages = warning;"
                      "CREATE SCHEMA IF NOT EXISTS shouwen_meta;"
                      "CREATE TABLE IF NOT EXISTS shouwen_meta.schema_migrations ("
                      " version integer PRIMARY KEY,"
                      " name text NOT NULL,"
                      " checksum text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
                      err, errlen)) != SW_OK)
        goto unlock;
    have = PQexec(c, "SELECT version, name, checksum FROM shouwen_meta.schema_migrations "
                     "ORDER BY version");
    if (PQresultStatus(have) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "could not read applied migrations: %s", PQerrorMessage(c));
        chomp(err);
        rv = SW_EDB;
        goto unlock;
    }
    for (int r = 0; r < PQntuples(have); r++) {
        int v = atoi(PQgetvalue(have, r, 0));
        bool found = false;
        for (size_t i = 0; i < nfiles; i++)
            found |= files[i].version == v;
        if (!found && progress != NULL)
            fprintf(progress, "warning: applied migration %s is no longer in %s\n",
                    PQgetvalue(have, r, 1), dir);
        if (v > top)
            top = v;
    }
    for (size_t i = 0; i < nfiles; i++) {
        size_t len = 0;
        char sum[65];
        const char *old = NULL;
        free(sql);
        if ((sql = read_file_path(dir, files[i].name, &len, err, errlen)) == NULL) {
            rv = SW_EIO;
            goto unlock;
        }
        if ((rv = checksum(c, sql, len, sum, err, errlen)) != SW_OK)
            goto unlock;
        for (int r = 0; r < PQntuples(have); r++)
            if (atoi(PQgetvalue(have, r, 0)) == files[i].version)
                old = PQgetvalue(have, r, 2);
        if (old != NULL) {
            if (strcmp(old, sum) != 0) {
                snprintf(err, errlen,
                         "%s/%s was changed after it was applied (checksum %.12s, applied "
                         "%.12s): put new changes in a new migration",
                         dir, files[i].name, sum, old);
                rv = SW_ECONFLICT;
                goto unlock;
            }
            current++;
            continue;
        }
        if (files[i].version < top && progress != NULL)
            fprintf(progress, "warning: %s is older than applied version %04d; applying it now\n",
                    files[i].name, top);
        if ((rv = apply_one(c, dir, &files[i], sql, len, sum, progress, err, errlen)) != SW_OK)
            goto unlock;
        applied++;
        if (files[i].version > top)
            top = files[i].version;
    }
    if (progress != NULL) {
        if (applied == 0)
            fprintf(progress, "nothing to apply: schema at version %04d (%zu migrations)\n", top,
                    current);
        else
            fprintf(progress, "schema at version %04d: %zu applied now, %zu already applied\n", top,
                    applied, current);
    }
unlock : {
    char ignore[256];
    exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", ignore, sizeof(ignore));
}
out:
    free(sql);
    PQclear(have);
    mfiles_free(files, nfiles);
    return rv;
}
