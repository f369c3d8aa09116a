/*
 * sitecache.h - what a service keeps in memory per site, read on first use
 * and dropped whenever the service's settings stamp (a one-row table that
 * triggers bump on every change that matters to it) moves.  Used by
 * escalation (calendars, limits, people) and notification (channels,
 * subscriptions, templates, people); each thread keeps its own.
 */
#ifndef SHOUWEN_SITECACHE_H
#define SHOUWEN_SITECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"

#define SITECACHE_MAX 4096 /* sites one cache keeps (then it starts over) */

struct sitecache {
    /* set by the owner */
    const char *stamp_sql; /* "SELECT stamp FROM escalation.settings_stamp" */
    /* Reads site `code` into *out; SW_ENOTFOUND when there is no such site. */
    sw_err (*load)(PGconn *db, const char *code, void **out, char *err, size_t errlen);
    void (*free)(void *site);
    /* kept here */
    int64_t stamp; /* when loaded; -1: never (sitecache_init) */
    size_t n;
    char codes[SITECACHE_MAX][17];
    void *sites[SITECACHE_MAX];
};

void sitecache_init(struct sitecache *c, const char *stamp_sql,
                    sw_err (*load)(PGconn *, const char *, void **, char *, size_t),
                    void (*free_fn)(void *));
/* Reads the stamp: a change empties the cache (*changed, when not NULL, says so). */
sw_err sitecache_check(struct sitecache *c, PGconn *db, bool *changed, char *err, size_t errlen);
/* The site with code `code`, loaded on first use. */
sw_err sitecache_get(struct sitecache *c, PGconn *db, const char *code, void **out, char *err,
                     size_t errlen);
void sitecache_clear(struct sitecache *c);

#endif
