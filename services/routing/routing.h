/*
 * routing.h - the routing service's state, shared by its files.
 *
 * Each consumer thread (common/bus.c) hands its struct routing the new and
 * returned cases of a transaction at once; everything in one struct
 * routing is touched by its thread only.
 */
#ifndef SHOUWEN_ROUTING_H
#define SHOUWEN_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <libpq-fe.h>
#include <nng/nng.h>

#include "bus.h"
#include "casedb.h"
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

#define ROUTING_MEMO 64 /* people and departments looked up, remembered for one batch */

struct lookup_memo {
    char key[640];
    struct casedb_lookups lu;
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
    struct bus_outbox *ob; /* the events of the open transaction */
    bool pending;          /* written: to publish after the commit */
    struct lookup_memo memo[ROUTING_MEMO];
    size_t nmemo;
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

/* The bus's batch handler: case.registered and case.returned. */
sw_err routing_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                     size_t *failed, char *err, size_t errlen);

#endif
