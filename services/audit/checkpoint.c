/*
 * checkpoint.c - signed chain heads (签名签时).
 *
 * Every SHOUWEN_AUDIT_CHECKPOINT_INTERVAL, the head of each site whose
 * chain grew since its last checkpoint is signed with the site's key
 * (auditlog.h) and stored in audit.checkpoints, for the site to publish or
 * archive: a chain rewritten from an entry onwards, even with every hash
 * recomputed, no longer matches a checkpoint signed before.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crypto.h"
#include "db.h"
#include "log.h"

sw_err aud_checkpoint(struct audit *a, PGconn *c, int *made, char *err, size_t errlen)
{
    *made = 0;
    if (a->masterlen == 0)
        return SW_OK;
    PGresult *r = PQexec(c, "SELECT h.site_id::text, h.last_seq, encode(h.last_hash, 'hex') FROM "
                            "audit.chain_heads h WHERE h.last_seq > coalesce((SELECT max(seq) "
                            "FROM audit.checkpoints k WHERE k.site_id = h.site_id), 0)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail_clear(c, r, "read the chain heads", err, errlen);
    int64_t now = aud_now_us();
    sw_err rv = SW_OK;
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        const char *site = PQgetvalue(r, i, 0), *hex = PQgetvalue(r, i, 2);
        int64_t seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        uint8_t key[AUDIT_HASH_LEN], hash[AUDIT_HASH_LEN], sig[AUDIT_HASH_LEN];
        if (!crypto_unhex(hex, hash, AUDIT_HASH_LEN))
            continue; /* the column's CHECK makes this impossible; never sign garbage */
        audit_site_key(a->master, a->masterlen, site, key);
        audit_checkpoint_sign(key, site, seq, hash, now, sig);
        char kid[17], sighex[2 * AUDIT_HASH_LEN + 3] = "\\x", seqs[24], at[24];
        audit_key_id(key, kid);
        crypto_hex(sig, AUDIT_HASH_LEN, sighex + 2);
        snprintf(seqs, sizeof(seqs), "%" PRId64, seq);
        snprintf(at, sizeof(at), "%" PRId64, now);
        char hashx[2 * AUDIT_HASH_LEN + 3];
        snprintf(hashx, sizeof(hashx), "\\x%s", hex);
        const char *v[] = {site, seqs, hashx, at, kid, sighex};
        PGresult *w = PQexecParams(c,
                                   "INSERT INTO audit.checkpoints (site_id, seq, hash, signed_at, "
                                   "key_id, signature) VALUES ($1, $2, $3, 'epoch'::timestamptz + "
                                   "$4::bigint * interval '1 microsecond', $5, $6) ON CONFLICT "
                                   "DO NOTHING",
                                   6, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(w) != PGRES_COMMAND_OK) {
            rv = db_fail_clear(c, w, "store a checkpoint", err, errlen);
            break;
        }
        if (strcmp(PQcmdTuples(w), "1") == 0) {
            (*made)++;
            LOG(LOG_DEBUG, "AUDIT-CHECKPOINT", "site %s: entry %" PRId64 " signed (key %s)", site,
                seq, kid);
        }
        PQclear(w);
    }
    PQclear(r);
    return rv;
}
