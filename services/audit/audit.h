/*
 * audit.h - the audit service's parts: the batch handler that chains every
 * event into the site's log and keeps the report roll-ups (append.c,
 * facts.c), and the signed checkpoints (checkpoint.c).
 */
#ifndef SHOUWEN_AUDIT_H
#define SHOUWEN_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "auditlog.h"
#include "buf.h"
#include "bus.h"
#include "metrics.h"

#define AUDIT_KEY_MAX 1024

struct audit {
    struct bus_consumer *consumer;
    uint8_t master[AUDIT_KEY_MAX]; /* SHOUWEN_AUDIT_KEY, or nothing */
    size_t masterlen;
    long long checkpoint_ms; /* SHOUWEN_AUDIT_CHECKPOINT_INTERVAL */
    long long next_checkpoint;
    size_t pending_appended; /* in the open transaction */
    size_t pending_skipped;
    size_t pending_no_facts;
    struct metric *m_appended;
    struct metric *m_skipped;
    struct metric *m_no_facts;
    struct metric *m_checkpoints;
    struct metric *m_checkpoint_errors;
};

/* One event of a batch, as the chain and the roll-ups see it. */
struct aud_event {
    const Shouwen__V1__Envelope *env;
    const char *site_id; /* points into the batch's site table; NULL: skipped */
    int64_t seq;
    uint8_t digest[AUDIT_HASH_LEN];
    char actor[AUDIT_ACTOR_MAX + 1];
};

/* append.c: the bus batch handler (bus_batch_fn). */
sw_err aud_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen);

/* facts.c: brings the roll-ups up to date with the batch's events (skipped ones left out). */
sw_err aud_facts(struct audit *a, PGconn *tx, const struct aud_event *ev, size_t n, char *err,
                 size_t errlen);

/* The wall clock in unix microseconds. */
int64_t aud_now_us(void);

/* Appends "YYYY-MM-DD HH:MM:SS.ffffff+00" for unix microseconds (a JSON string when quoted). */
sw_err aud_put_time(struct buf *b, int64_t us);

/* checkpoint.c: signs the head of every site whose chain moved since its last checkpoint. */
sw_err aud_checkpoint(struct audit *a, PGconn *c, int *made, char *err, size_t errlen);

#endif
