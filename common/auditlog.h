/*
 * auditlog.h - the audit log's hash chain and checkpoints: what an entry's
 * hash covers, how a checkpoint is signed, and the verification of a
 * site's chain (used by shouwen-audit, its `verify` command and intake's
 * API).
 *
 * Canonical bytes of an entry (version 1): these lines, each ended by '\n'
 *
 *     shouwen-audit/1
 *     <site id, lowercase UUID>
 *     <seq, decimal>
 *     <event id, lowercase UUID>
 *     <event type>
 *     <case id, lowercase UUID, or empty>
 *     <actor>
 *     <event time, unix microseconds, decimal>
 *     <recorded time, unix microseconds, decimal>
 *     <SHA-256 of the packed Envelope, 64 lowercase hex digits>
 *
 * and hash = SHA-256(prev_hash || canonical bytes), prev_hash being the
 * previous entry's hash, or 32 zero bytes for seq 1.  A field may not hold
 * '\n' (the actor is cleaned of control characters when it is made).
 *
 * A checkpoint signs a chain head: signature = HMAC-SHA256(site key,
 * "shouwen-audit-checkpoint/1\n<site id>\n<seq>\n<hash hex>\n<signed us>\n").
 * The site key is HMAC-SHA256(master key, "shouwen-audit-site/1\n<site id>"),
 * the master key being SHOUWEN_AUDIT_KEY.
 */
#ifndef SHOUWEN_AUDITLOG_H
#define SHOUWEN_AUDITLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"
#include "shouwen/v1/envelope.pb-c.h"

#define AUDIT_HASH_LEN  32
#define AUDIT_ACTOR_MAX 300

struct audit_entry {
    const char *site_id;
    int64_t seq;
    const char *event_id;
    const char *type;
    const char *case_id; /* "" when none */
    const char *actor;
    int64_t event_us;
    int64_t recorded_us;
    uint8_t payload_sha256[AUDIT_HASH_LEN];
};

/* audit_hash: the entry's hash after `prev` (32 zero bytes for seq 1). */
void audit_hash(const uint8_t prev[AUDIT_HASH_LEN], const struct audit_entry *e,
                uint8_t out[AUDIT_HASH_LEN]);

/*
 * audit_actor writes who caused an event: the staff code, " for <code>"
 * when acting on someone's behalf; else "key:<id>" for an API key, or
 * "system:<name>"; "" when the envelope names nobody.  Control characters
 * become '?'; cut at AUDIT_ACTOR_MAX bytes on a character boundary.
 */
void audit_actor(const Shouwen__V1__Actor *a, char out[AUDIT_ACTOR_MAX + 1]);

/* The site's key from the master key (any length, at least 1 byte). */
void audit_site_key(const void *master, size_t len, const char *site_id,
                    uint8_t key[AUDIT_HASH_LEN]);
/* key_id: the first 16 hex digits of SHA-256(key). */
void audit_key_id(const uint8_t key[AUDIT_HASH_LEN], char out[17]);
void audit_checkpoint_sign(const uint8_t key[AUDIT_HASH_LEN], const char *site_id, int64_t seq,
                           const uint8_t hash[AUDIT_HASH_LEN], int64_t signed_us,
                           uint8_t sig[AUDIT_HASH_LEN]);

/* What a verification found. */
struct audit_verdict {
    bool ok;
    int64_t checked;  /* entries recomputed */
    int64_t head_seq; /* the last entry checked (0: none) */
    uint8_t head_hash[AUDIT_HASH_LEN];
    int64_t first_bad_seq;   /* 0 when ok */
    int64_t checkpoints;     /* checkpoints compared with the chain */
    bool signatures_checked; /* a key was given and every signature was checked */
    char detail[512];        /* what is wrong, naming the entry; or a summary */
};

/*
 * audit_verify recomputes the chain of the site `site_id` from seq 1 (in
 * pages, in one read-only snapshot), compares it with the chain head and
 * with every checkpoint, and, when `key` is not NULL (the site key), checks
 * each checkpoint's signature.  The first entry found missing, unlinked or
 * changed is named in v->first_bad_seq and v->detail.  Runs in the open
 * transaction of `c` if there is one, else in its own.  SW_OK when the
 * chain was read (whatever it holds); an error only when it could not be.
 */
sw_err audit_verify(PGconn *c, const char *site_id, const uint8_t *key, struct audit_verdict *v,
                    char *err, size_t errlen);

#endif
