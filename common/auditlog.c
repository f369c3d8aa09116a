/*
 * auditlog.c - the audit chain's hashes, checkpoint signatures and
 * verification (see auditlog.h for the exact bytes).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "notify.h"

#define VERIFY_PAGE 5000

void audit_hash(const uint8_t prev[AUDIT_HASH_LEN], const struct audit_entry *e,
                uint8_t out[AUDIT_HASH_LEN])
{
    char hex[2 * AUDIT_HASH_LEN + 1];
    crypto_hex(e->payload_sha256, AUDIT_HASH_LEN, hex);
    /* fixed-size fields plus the actor (bounded) and the type (bounded): fits */
    uint8_t msg[AUDIT_HASH_LEN + 1024];
    memcpy(msg, prev, AUDIT_HASH_LEN);
    int n =
        snprintf((char *)msg + AUDIT_HASH_LEN, sizeof(msg) - AUDIT_HASH_LEN,
                 "shouwen-audit/1\n%s\n%" PRId64 "\n%s\n%s\n%s\n%s\n%" PRId64 "\n%" PRId64 "\n%s\n",
                 e->site_id, e->seq, e->event_id, e->type, e->case_id, e->actor, e->event_us,
                 e->recorded_us, hex);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len >= sizeof(msg) - AUDIT_HASH_LEN) { /* only with fields past their limits */
        struct buf b;
        buf_init(&b, 1u << 20);
        (void)buf_append(&b, prev, AUDIT_HASH_LEN);
        (void)buf_printf(
            &b, "shouwen-audit/1\n%s\n%" PRId64 "\n%s\n%s\n%s\n%s\n%" PRId64 "\n%" PRId64 "\n%s\n",
            e->site_id, e->seq, e->event_id, e->type, e->case_id, e->actor, e->event_us,
            e->recorded_us, hex);
        crypto_sha256(b.data, b.len, out);
        buf_free(&b);
        return;
    }
    crypto_sha256(msg, AUDIT_HASH_LEN + len, out);
}

static size_t put_clean(char *out, size_t at, size_t max, const char *s)
{
    for (; s != NULL && *s != '\0' && at < max; s++)
        out[at++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    return at;
}

void audit_actor(const Shouwen__V1__Actor *a, char out[AUDIT_ACTOR_MAX + 1])
{
    size_t n = 0;
    if (a != NULL && a->staff_code != NULL && a->staff_code[0] != '\0') {
        n = put_clean(out, n, AUDIT_ACTOR_MAX, a->staff_code);
        if (a->on_behalf_of != NULL && a->on_behalf_of[0] != '\0') {
            n = put_clean(out, n, AUDIT_ACTOR_MAX, " for ");
            n = put_clean(out, n, AUDIT_ACTOR_MAX, a->on_behalf_of);
        }
    } else if (a != NULL && a->api_key_id != NULL && a->api_key_id[0] != '\0') {
        n = put_clean(out, n, AUDIT_ACTOR_MAX, "key:");
        n = put_clean(out, n, AUDIT_ACTOR_MAX, a->api_key_id);
    } else if (a != NULL && a->external_system != NULL && a->external_system[0] != '\0') {
        n = put_clean(out, n, AUDIT_ACTOR_MAX, "system:");
        n = put_clean(out, n, AUDIT_ACTOR_MAX, a->external_system);
    }
    /* never end inside a UTF-8 sequence: drop a last character that was cut */
    if (n == AUDIT_ACTOR_MAX) {
        size_t k = n;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (n - (k - 1) < want)
                n = k - 1;
        }
    }
    out[n] = '\0';
}

void audit_site_key(const void *master, size_t len, const char *site_id,
                    uint8_t key[AUDIT_HASH_LEN])
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "shouwen-audit-site/1\n%s", site_id);
    ntf_hmac_sha256(master, len, msg, n < 0 ? 0 : (size_t)n, key);
}

void audit_key_id(const uint8_t key[AUDIT_HASH_LEN], char out[17])
{
    uint8_t h[AUDIT_HASH_LEN];
    crypto_sha256(key, AUDIT_HASH_LEN, h);
    crypto_hex(h, 8, out);
    out[16] = '\0';
}

void audit_checkpoint_sign(const uint8_t key[AUDIT_HASH_LEN], const char *site_id, int64_t seq,
                           const uint8_t hash[AUDIT_HASH_LEN], int64_t signed_us,
                           uint8_t sig[AUDIT_HASH_LEN])
{
    char hex[2 * AUDIT_HASH_LEN + 1], msg[256];
    crypto_hex(hash, AUDIT_HASH_LEN, hex);
    int n =
        snprintf(msg, sizeof(msg), "shouwen-audit-checkpoint/1\n%s\n%" PRId64 "\n%s\n%" PRId64 "\n",
                 site_id, seq, hex, signed_us);
    ntf_hmac_sha256(key, AUDIT_HASH_LEN, msg, n < 0 ? 0 : (size_t)n, sig);
}

/* ---- verification ---------------------------------------------------------------------- */

/* "could not <what>: <PostgreSQL's primary message>" (db_fail: never a DETAIL); clears r. */
/* The checkpoints, read a page at a time in seq order. */
struct cps {
    PGresult *r;
    int at;
    int64_t after;
    bool done;
};

static sw_err cps_next(PGconn *c, const char *site_id, struct cps *p, char *err, size_t errlen)
{
    if (p->r != NULL && p->at + 1 < PQntuples(p->r)) {
        p->at++;
        return SW_OK;
    }
    if (p->r != NULL && PQntuples(p->r) < VERIFY_PAGE) {
        p->done = true;
        return SW_OK;
    }
    PQclear(p->r);
    char after[24];
    snprintf(after, sizeof(after), "%" PRId64, p->after);
    const char *v[] = {site_id, after};
    p->r = PQexecParams(c,
                        "SELECT seq, encode(hash, 'hex'), (extract(epoch FROM signed_at) * "
                        "1000000)::bigint, key_id, encode(signature, 'hex') FROM "
                        "audit.checkpoints WHERE site_id = $1 AND seq > $2 ORDER BY seq LIMIT 5000",
                        2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(p->r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail_clear(c, p->r, "read the checkpoints", err, errlen);
        p->r = NULL;
        return rv;
    }
    p->at = 0;
    p->done = PQntuples(p->r) == 0;
    return SW_OK;
}

static int64_t cps_seq(const struct cps *p)
{
    return p->done ? INT64_MAX : strtoll(PQgetvalue(p->r, p->at, 0), NULL, 10);
}

static void bad(struct audit_verdict *v, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad(struct audit_verdict *v, int64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->ok = false;
    v->first_bad_seq = seq;
    vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
    va_end(ap);
}

/* Compares checkpoint p (at the entry just recomputed, seq, hash h) with the chain. */
static void cp_check(const struct cps *p, const char *site_id, const uint8_t *key, int64_t seq,
                     const uint8_t h[AUDIT_HASH_LEN], int64_t last_good_cp, struct audit_verdict *v)
{
    uint8_t want[AUDIT_HASH_LEN], sig[AUDIT_HASH_LEN], mine[AUDIT_HASH_LEN];
    const char *signed_at = PQgetvalue(p->r, p->at, 2);
    if (!crypto_unhex(PQgetvalue(p->r, p->at, 1), want, AUDIT_HASH_LEN) ||
        !crypto_equal(want, h, AUDIT_HASH_LEN)) {
        bad(v, last_good_cp + 1,
            "the chain at entry %" PRId64 " does not match its checkpoint signed at %s us: entries "
            "%" PRId64 "..%" PRId64 " were rewritten",
            seq, signed_at, last_good_cp + 1, seq);
        return;
    }
    v->checkpoints++;
    if (key == NULL)
        return;
    char kid[17];
    audit_key_id(key, kid);
    if (strcmp(kid, PQgetvalue(p->r, p->at, 3)) != 0) {
        bad(v, seq, "the checkpoint at entry %" PRId64 " was signed with key %s, not this key (%s)",
            seq, PQgetvalue(p->r, p->at, 3), kid);
        return;
    }
    audit_checkpoint_sign(key, site_id, seq, h, strtoll(signed_at, NULL, 10), mine);
    if (!crypto_unhex(PQgetvalue(p->r, p->at, 4), sig, AUDIT_HASH_LEN) ||
        !crypto_equal(sig, mine, AUDIT_HASH_LEN))
        bad(v, seq, "the checkpoint at entry %" PRId64 " has a signature that does not verify",
            seq);
}

static sw_err walk(PGconn *c, const char *site_id, const uint8_t *key, int64_t head_seq,
                   const uint8_t head_hash[AUDIT_HASH_LEN], struct audit_verdict *v, char *err,
                   size_t errlen)
{
    uint8_t prev[AUDIT_HASH_LEN] = {0}, h[AUDIT_HASH_LEN], stored[AUDIT_HASH_LEN];
    int64_t expect = 1, last_good_cp = 0;
    struct cps cp = {0};
    sw_err rv = cps_next(c, site_id, &cp, err, errlen);
    while (rv == SW_OK && v->ok && expect <= head_seq) {
        char after[24], upto[24];
        snprintf(after, sizeof(after), "%" PRId64, expect - 1);
        snprintf(upto, sizeof(upto), "%" PRId64, head_seq);
        const char *pv[] = {site_id, after, upto};
        PGresult *r = PQexecParams(
            c,
            "SELECT seq, event_id, event_type, coalesce(case_id::text, ''), actor, "
            "(extract(epoch FROM event_time) * 1000000)::bigint, (extract(epoch FROM recorded_at) "
            "* 1000000)::bigint, encode(payload_sha256, 'hex'), encode(prev_hash, 'hex'), "
            "encode(hash, 'hex') FROM audit.log WHERE site_id = $1 AND seq > $2 AND seq <= $3 "
            "ORDER BY seq LIMIT 5000",
            3, NULL, pv, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rv = db_fail_clear(c, r, "read the audit log", err, errlen);
            break;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n && v->ok; i++) {
            int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            if (seq != expect) {
                bad(v, expect,
                    "entry %" PRId64 " is missing (the next one present is %" PRId64
                    "): removed from the log",
                    expect, seq);
                break;
            }
            struct audit_entry e = {
                .site_id = site_id,
                .seq = seq,
                .event_id = PQgetvalue(r, i, 1),
                .type = PQgetvalue(r, i, 2),
                .case_id = PQgetvalue(r, i, 3),
                .actor = PQgetvalue(r, i, 4),
                .event_us = strtoll(PQgetvalue(r, i, 5), NULL, 10),
                .recorded_us = strtoll(PQgetvalue(r, i, 6), NULL, 10),
            };
            uint8_t link[AUDIT_HASH_LEN];
            if (!crypto_unhex(PQgetvalue(r, i, 7), e.payload_sha256, AUDIT_HASH_LEN) ||
                !crypto_unhex(PQgetvalue(r, i, 8), link, AUDIT_HASH_LEN) ||
                !crypto_unhex(PQgetvalue(r, i, 9), stored, AUDIT_HASH_LEN)) {
                bad(v, seq, "entry %" PRId64 " holds a malformed hash", seq);
                break;
            }
            if (!crypto_equal(link, prev, AUDIT_HASH_LEN)) {
                bad(v, seq,
                    "entry %" PRId64 " does not link to entry %" PRId64
                    " (its prev_hash is not that entry's hash)",
                    seq, seq - 1);
                break;
            }
            audit_hash(prev, &e, h);
            if (!crypto_equal(h, stored, AUDIT_HASH_LEN)) {
                bad(v, seq,
                    "entry %" PRId64 " (event %s, %s) does not match its hash: changed after it "
                    "was written",
                    seq, e.event_id, e.type);
                break;
            }
            while (rv == SW_OK && v->ok && cps_seq(&cp) <= seq) {
                if (cps_seq(&cp) < seq) /* a checkpoint for an entry that was not there */
                    bad(v, cps_seq(&cp),
                        "a checkpoint names entry %" PRId64 ", which is not in the chain",
                        cps_seq(&cp));
                else {
                    cp_check(&cp, site_id, key, seq, h, last_good_cp, v);
                    if (v->ok)
                        last_good_cp = seq;
                }
                cp.after = cps_seq(&cp);
                if (v->ok)
                    rv = cps_next(c, site_id, &cp, err, errlen);
            }
            memcpy(prev, h, AUDIT_HASH_LEN);
            v->checked++;
            v->head_seq = seq;
            memcpy(v->head_hash, h, AUDIT_HASH_LEN);
            expect = seq + 1;
        }
        PQclear(r);
        if (rv == SW_OK && v->ok && n == 0 && expect <= head_seq)
            bad(v, expect,
                "entries %" PRId64 "..%" PRId64 " are missing: the chain head says %" PRId64
                " entries",
                expect, head_seq, head_seq);
    }
    if (rv == SW_OK && v->ok && head_seq > 0 && !crypto_equal(head_hash, prev, AUDIT_HASH_LEN))
        bad(v, head_seq, "entry %" PRId64 " is not the chain head recorded (its hash differs)",
            head_seq);
    if (rv == SW_OK && v->ok && !cp.done)
        bad(v, head_seq + 1,
            "a checkpoint names entry %" PRId64 ", past the chain's last entry %" PRId64
            ": entries were removed",
            cps_seq(&cp), head_seq);
    PQclear(cp.r);
    return rv;
}

sw_err audit_verify(PGconn *c, const char *site_id, const uint8_t *key, struct audit_verdict *v,
                    char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    v->ok = true;
    bool own = PQtransactionStatus(c) == PQTRANS_IDLE;
    if (own) {
        PGresult *r = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return db_fail_clear(c, r, "begin a snapshot", err, errlen);
        PQclear(r);
    }
    const char *pv[] = {site_id};
    PGresult *r = PQexecParams(c,
                               "SELECT last_seq, encode(last_hash, 'hex') FROM audit.chain_heads "
                               "WHERE site_id = $1",
                               1, NULL, pv, NULL, NULL, 0);
    sw_err rv = SW_OK;
    int64_t head_seq = 0;
    uint8_t head_hash[AUDIT_HASH_LEN] = {0};
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = db_fail_clear(c, r, "read the chain head", err, errlen);
    } else {
        if (PQntuples(r) == 1) {
            head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            if (!crypto_unhex(PQgetvalue(r, 0, 1), head_hash, AUDIT_HASH_LEN))
                bad(v, head_seq, "the chain head holds a malformed hash");
        }
        PQclear(r);
        if (v->ok)
            rv = walk(c, site_id, key, head_seq, head_hash, v, err, errlen);
    }
    if (own) {
        r = PQexec(c, rv == SW_OK ? "COMMIT" : "ROLLBACK");
        PQclear(r);
    }
    if (rv == SW_OK && v->ok) {
        v->signatures_checked = key != NULL;
        snprintf(v->detail, sizeof(v->detail),
                 "%" PRId64 " entries verified, %" PRId64 " checkpoints match%s", v->checked,
                 v->checkpoints,
                 key != NULL ? " and their signatures verify"
                             : " (signatures not checked: no key)");
    }
    return rv;
}
