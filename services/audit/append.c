/*
 * append.c - every event of a batch, once, onto its site's hash chain.
 *
 * In the consumer's transaction: events already in the log are skipped
 * (the unique event id makes a second append impossible anyway); the
 * heads of the sites concerned are locked (SELECT ... FOR UPDATE, in site
 * id order so that replicas never deadlock); the entries are hashed here
 * and inserted in one statement; the heads move; the roll-ups follow
 * (facts.c).  The cursor moves in the same transaction (bus.c), so a kill
 * at any moment leaves either all of it or none: the chain is never half
 * written, and no event is chained twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "pgcopy.h"

#define BATCH_JSON_MAX (64u << 20)
#define SITES_MAX      256 /* distinct sites in one batch */

struct site {
    char code[17];
    char id[37];
    int64_t seq;
    uint8_t hash[AUDIT_HASH_LEN];
    bool moved;
};

sw_err aud_put_time(struct buf *b, int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        s--;
    }
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL)
        return SW_EINVAL;
    return buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

int64_t aud_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The packed envelope's SHA-256 (protobuf-c packs fields in number order: the bytes sent). */
static sw_err digest(const Shouwen__V1__Envelope *env, uint8_t out[AUDIT_HASH_LEN])
{
    size_t len = protobuf_c_message_get_packed_size(&env->base);
    uint8_t stack[4096], *p = len <= sizeof(stack) ? stack : malloc(len);
    if (p == NULL)
        return SW_ENOMEM;
    protobuf_c_message_pack(&env->base, p);
    crypto_sha256(p, len, out);
    if (p != stack)
        free(p);
    return SW_OK;
}

/* Marks the events already in the log (ev[i].site_id stays NULL for them). */
static sw_err already(PGconn *tx, struct aud_event *ev, size_t n, bool *seen, char *err,
                      size_t errlen)
{
    struct buf ids;
    buf_init(&ids, BATCH_JSON_MAX);
    sw_err rv = buf_puts(&ids, "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++)
        rv = buf_printf(&ids, "%s%s", i ? "," : "", ev[i].env->event_id);
    if (rv == SW_OK)
        rv = buf_puts(&ids, "}");
    if (rv != SW_OK) {
        buf_free(&ids);
        snprintf(err, errlen, "too many events at once");
        return rv;
    }
    const char *v[] = {buf_cstr(&ids)};
    PGresult *r = db_exec_fixed(tx,
                                "SELECT event_id::text FROM audit.log WHERE event_id = "
                                "ANY($1::uuid[])",
                                1, v);
    buf_free(&ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail_clear(tx, r, "look for events already audited", err, errlen);
    for (int k = 0; k < PQntuples(r); k++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(ev[i].env->event_id, PQgetvalue(r, k, 0)) == 0)
                seen[i] = true;
    PQclear(r);
    return SW_OK;
}

/* Locks and reads the heads of the batch's sites; *failed names an event of an unknown site. */
static sw_err heads(PGconn *tx, struct aud_event *ev, size_t n, const bool *seen,
                    struct site *sites, size_t *nsites, size_t *failed, char *err, size_t errlen)
{
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (seen[i])
            continue;
        const char *code = ev[i].env->site != NULL ? ev[i].env->site : "";
        size_t k = 0;
        while (k < ns && strcmp(sites[k].code, code) != 0)
            k++;
        if (k < ns)
            continue;
        if (strlen(code) >= sizeof(sites[0].code) || ns == SITES_MAX) {
            *failed = i;
            snprintf(err, errlen, "event %s names no known site (\"%.40s\")", ev[i].env->event_id,
                     code);
            return SW_EINVAL;
        }
        memset(&sites[ns], 0, sizeof(sites[ns]));
        snprintf(sites[ns++].code, sizeof(sites[0].code), "%s", code);
    }
    *nsites = ns;
    if (ns == 0)
        return SW_OK;
    struct buf codes;
    buf_init(&codes, 1u << 16);
    sw_err rv = buf_puts(&codes, "{");
    for (size_t k = 0; rv == SW_OK && k < ns; k++)
        rv = buf_pg_elem(&codes, k == 0, sites[k].code);
    if (rv == SW_OK)
        rv = buf_puts(&codes, "}");
    if (rv != SW_OK) {
        buf_free(&codes);
        snprintf(err, errlen, "too many sites at once");
        return rv;
    }
    const char *v[] = {buf_cstr(&codes)};
    PGresult *r = db_exec_fixed(tx,
                                "INSERT INTO audit.chain_heads (site_id) SELECT id FROM core.sites "
                                "WHERE code = ANY($1::text[]) ON CONFLICT DO NOTHING",
                                1, v);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        buf_free(&codes);
        return db_fail_clear(tx, r, "start the chains", err, errlen);
    }
    PQclear(r);
    r = db_exec_fixed(tx,
                      "SELECT s.code, s.id::text, h.last_seq, encode(h.last_hash, 'hex') FROM "
                      "core.sites s JOIN audit.chain_heads h ON h.site_id = s.id WHERE s.code = "
                      "ANY($1::text[]) ORDER BY s.id FOR UPDATE OF h",
                      1, v);
    buf_free(&codes);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail_clear(tx, r, "lock the chain heads", err, errlen);
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t k = 0; k < ns; k++) {
            if (strcmp(sites[k].code, PQgetvalue(r, row, 0)) != 0)
                continue;
            snprintf(sites[k].id, sizeof(sites[k].id), "%s", PQgetvalue(r, row, 1));
            sites[k].seq = strtoll(PQgetvalue(r, row, 2), NULL, 10);
            (void)crypto_unhex(PQgetvalue(r, row, 3), sites[k].hash, AUDIT_HASH_LEN);
        }
    PQclear(r);
    for (size_t i = 0; i < n; i++) {
        if (seen[i])
            continue;
        for (size_t k = 0; k < ns; k++)
            if (strcmp(sites[k].code, ev[i].env->site != NULL ? ev[i].env->site : "") == 0) {
                if (sites[k].id[0] == '\0') {
                    *failed = i;
                    snprintf(err, errlen, "event %s (%s) names an unknown site \"%s\"",
                             ev[i].env->event_id, ev[i].env->type, sites[k].code);
                    return SW_EINVAL;
                }
                ev[i].site_id = sites[k].id;
            }
    }
    return SW_OK;
}

/*
 * Hashes the entries and inserts them (a binary COPY: no JSON or text for
 * PostgreSQL to parse, which was a fifth of audit's database time); moves
 * the heads.
 */
static sw_err chain(PGconn *tx, struct aud_event *ev, size_t n, struct site *sites, size_t ns,
                    char *err, size_t errlen)
{
    int64_t recorded = aud_now_us();
    struct pgcopy pc;
    bool started = false;
    sw_err rv = SW_OK;
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        if (ev[i].site_id == NULL)
            continue;
        const Shouwen__V1__Envelope *env = ev[i].env;
        struct site *s = NULL;
        for (size_t k = 0; k < ns && s == NULL; k++)
            if (ev[i].site_id == sites[k].id)
                s = &sites[k];
        if (s == NULL)
            continue;
        struct audit_entry e = {
            .site_id = s->id,
            .seq = s->seq + 1,
            .event_id = env->event_id,
            .type = env->type,
            .case_id = env->case_id != NULL ? env->case_id : "",
            .actor = ev[i].actor,
            .event_us = env->time,
            .recorded_us = recorded,
        };
        memcpy(e.payload_sha256, ev[i].digest, AUDIT_HASH_LEN);
        uint8_t h[AUDIT_HASH_LEN];
        audit_hash(s->hash, &e, h);
        if (!started) {
            started = true;
            rv = pgcopy_begin(&pc, tx,
                              "COPY audit.log (site_id, seq, event_id, event_type, case_id, "
                              "actor, event_time, recorded_at, payload_sha256, prev_hash, hash) "
                              "FROM STDIN (FORMAT binary)",
                              "append to the audit log", err, errlen);
        }
        pgcopy_row(&pc, 11);
        pgcopy_uuid(&pc, e.site_id);
        pgcopy_int8(&pc, e.seq);
        pgcopy_uuid(&pc, e.event_id);
        pgcopy_text(&pc, e.type);
        pgcopy_uuid(&pc, e.case_id);
        pgcopy_text(&pc, e.actor);
        pgcopy_time_us(&pc, e.event_us);
        pgcopy_time_us(&pc, e.recorded_us);
        pgcopy_bytes(&pc, e.payload_sha256, AUDIT_HASH_LEN);
        pgcopy_bytes(&pc, s->hash, AUDIT_HASH_LEN);
        pgcopy_bytes(&pc, h, AUDIT_HASH_LEN);
        s->seq = e.seq;
        memcpy(s->hash, h, AUDIT_HASH_LEN);
        s->moved = true;
        ev[i].seq = e.seq;
    }
    if (!started)
        return SW_OK;
    sw_err end = pgcopy_end(&pc, err, errlen);
    if (rv != SW_OK || end != SW_OK)
        return rv != SW_OK ? rv : end;
    struct buf hv;
    PGresult *r;
    buf_init(&hv, 1u << 20);
    rv = buf_puts(&hv, "[");
    size_t k2 = 0;
    for (size_t k = 0; rv == SW_OK && k < ns; k++) {
        if (!sites[k].moved)
            continue;
        char hex[2 * AUDIT_HASH_LEN + 1];
        crypto_hex(sites[k].hash, AUDIT_HASH_LEN, hex);
        rv = buf_printf(&hv,
                        "%s{\"site_id\":\"%s\",\"last_seq\":%" PRId64 ",\"last_hash\":\"\\\\x%s\"}",
                        k2++ ? "," : "", sites[k].id, sites[k].seq, hex);
    }
    if (rv == SW_OK)
        rv = buf_puts(&hv, "]");
    const char *hv1[] = {buf_cstr(&hv)};
    r = db_exec_fixed(tx,
                      "UPDATE audit.chain_heads h SET last_seq = u.last_seq, last_hash = "
                      "u.last_hash, updated_at = now() FROM json_populate_recordset(NULL::"
                      "audit.chain_heads, $1::json) u WHERE h.site_id = u.site_id",
                      1, hv1);
    buf_free(&hv);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return db_fail_clear(tx, r, "move the chain heads", err, errlen);
    PQclear(r);
    return rv;
}

sw_err aud_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen)
{
    struct audit *a = arg;
    *failed = 0;
    struct aud_event *ev = calloc(n, sizeof(*ev));
    bool *seen = calloc(n, sizeof(*seen));
    struct site *sites = calloc(SITES_MAX, sizeof(*sites));
    sw_err rv = ev == NULL || seen == NULL || sites == NULL ? SW_ENOMEM : SW_OK;
    if (rv != SW_OK)
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        ev[i].env = envs[i];
        audit_actor(envs[i]->actor, ev[i].actor);
        if ((rv = digest(envs[i], ev[i].digest)) != SW_OK)
            snprintf(err, errlen, "out of memory");
    }
    size_t ns = 0;
    if (rv == SW_OK)
        rv = already(tx, ev, n, seen, err, errlen);
    if (rv == SW_OK)
        rv = heads(tx, ev, n, seen, sites, &ns, failed, err, errlen);
    if (rv == SW_OK)
        rv = chain(tx, ev, n, sites, ns, err, errlen);
    if (rv == SW_OK)
        rv = aud_facts(a, tx, ev, n, err, errlen);
    if (rv == SW_OK) {
        size_t appended = 0, skipped = 0;
        for (size_t i = 0; i < n; i++)
            appended += ev[i].site_id != NULL, skipped += seen[i];
        a->pending_appended += appended; /* counted when committed */
        a->pending_skipped += skipped;
    }
    free(ev);
    free(seen);
    free(sites);
    return rv;
}
