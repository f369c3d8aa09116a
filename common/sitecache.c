/*
 * sitecache.c - per-site state read on first use, dropped when the
 * settings stamp moves (see sitecache.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "sitecache.h"

void sitecache_init(struct sitecache *c, const char *stamp_sql,
                    sw_err (*load)(PGconn *, const char *, void **, char *, size_t),
                    void (*free_fn)(void *))
{
    c->stamp_sql = stamp_sql;
    c->load = load;
    c->free = free_fn;
    c->stamp = -1;
    c->n = 0;
}

void sitecache_clear(struct sitecache *c)
{
    for (size_t i = 0; i < c->n; i++)
        c->free(c->sites[i]);
    c->n = 0;
}

sw_err sitecache_check(struct sitecache *c, PGconn *db, bool *changed, char *err, size_t errlen)
{
    if (changed != NULL)
        *changed = false;
    PGresult *r = db_exec_fixed(db, c->stamp_sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        sw_err rv = db_fail(db, r, "read the settings stamp", err, errlen);
        PQclear(r);
        return rv;
    }
    int64_t stamp = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (stamp != c->stamp) {
        sitecache_clear(c);
        c->stamp = stamp;
        if (changed != NULL)
            *changed = true;
    }
    return SW_OK;
}

sw_err sitecache_get(struct sitecache *c, PGconn *db, const char *code, void **out, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->codes[i], code) == 0) {
            *out = c->sites[i];
            return SW_OK;
        }
    void *s = NULL;
    sw_err rv = c->load(db, code, &s, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (c->n == SITECACHE_MAX)
        sitecache_clear(c);
    snprintf(c->codes[c->n], sizeof(c->codes[0]), "%s", code);
    c->sites[c->n++] = s;
    *out = s;
    return SW_OK;
}
