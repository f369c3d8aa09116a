/*
 * routing.h - the routing service's state, shared by its files.
 *
 * One consumer thread (common/bus.c) calls the handler for each new or
 * returned case, inside its transaction; everything here is touched by
 * that thread only.
 */
#ifndef SHOUWEN_ROUTING_H
#define SHOUWEN_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <libpq-fe.h>
#include <nng/nng.h>

#include "bus.h"
#include "err.h"
#include "metrics.h"
#include "route.h"

#define ROUTING_SITES_MAX  1024 /* sites whose rules are kept in memory */
#define ROUTING_SITE_CACHE 64   /* sites by code: id and time zone */
#define ROUTING_SITE_TTL   60   /* seconds before a site's time zone is read again */

struct site_cache {
    char code[17], id[37], tz[65];
    time_t at;
};

/* A site's rules as last loaded, and the stamp that tells when they changed. */
struct site_rules {
    char site_id[37];
    char stamp[80]; /* count and newest updated_at of the active rules */
    struct route_rule *rules;
    size_t n;
    struct route_table *table;
};

struct staged {
    struct bus_outbox *ob; /* the events of one command, written, not yet published */
};

/*
 * One consumer thread's state: the service runs SHOUWEN_ROUTING_CONSUMERS
 * of them, each its own database session claiming its share of the
 * partitions, as replicas would.
 */
struct routing {
    const char *db_url;
    nng_socket *pub;
    struct bus_consumer *consumer;
    uint32_t partitions;   /* learnt from the database on first use */
    struct staged *staged; /* one per command of the open transaction */
    size_t nstaged, capstaged;
    struct site_rules sites[ROUTING_SITES_MAX];
    size_t nsites;
    struct site_cache site_cache[ROUTING_SITE_CACHE];
    size_t nsite_cache, site_next;
    struct metric *m_decisions[6]; /* by enum route_action */
    struct metric *m_refused;      /* decisions the workflow refused (the case moved on) */
    struct metric *m_skipped;      /* events about cases already past them */
    struct metric *m_loops;
};

/* The rules of `site_id` whose stamp is `stamp`, loaded anew when it changed. */
sw_err routing_rules(struct routing *rt, PGconn *tx, const char *site_id, const char *stamp,
                     const struct site_rules **out, char *err, size_t errlen);
void routing_rules_free(struct routing *rt);

/* The bus handler: case.registered and case.returned. */
sw_err routing_handle(PGconn *tx, const Shouwen__V1__Envelope *env, void *arg, char *err,
                      size_t errlen);

#endif
