/*
 * bus.h - the durable bus: a transactional outbox in PostgreSQL, with nng
 * pub/sub as the doorbell (DESIGN.md section 1).
 *
 * Producing.  Inside its own transaction a service stages envelopes in a
 * `struct bus_outbox` and writes them to bus.events with the rest of its
 * changes; after COMMIT it publishes them on its PUB socket.  A publish
 * that is lost costs only latency: consumers find every committed event in
 * the table.
 *
 * Wire layout of one bus message (what NNG_OPT_SUB_SUBSCRIBE filters on):
 *
 *     type bytes ("case.registered") | 0x00 | partition (u32, big-endian)
 *     | seq (u64, big-endian) | protobuf Envelope bytes
 *
 * so subscribing to "case." takes every case event, and "case.registered"
 * followed by the 0x00 byte takes exactly that type.
 *
 * Consuming.  A consumer has a name (its group), the type prefixes it
 * wants (its doorbell subscriptions, and, with filter_types, its reads),
 * and a handler called with (open transaction, envelope).  Each
 * replica runs one thread with one database session; replicas of a name
 * split the partitions with session advisory locks (a dead replica's
 * locks go with its connection) and keep one cursor per (name,
 * partition), moved in the same transaction as the handler's effects:
 * exactly one effect per event, whatever is killed when.
 *
 * Reading order.  A row is final when its transaction id is below
 * pg_snapshot_xmin(pg_current_snapshot()): no transaction that could
 * still add rows is that old.  But `seq > cursor AND txid < xmin` is not
 * a safe read: an older transaction can commit a higher seq while a
 * younger one still holds a lower seq, and the cursor would pass the
 * lower one for good.  So the cursor is a window of transaction ids
 * [floor, top) chosen below xmin, whose rows are final and are read in seq
 * order, plus the last seq handled inside it; when the window is done the
 * next one starts at the smallest txid past it.  Within one case, events
 * keep their order (a later change of a case waits for the earlier one's
 * commit, so both land in one window, in seq order, or in order across
 * windows).
 */
#ifndef SHOUWEN_BUS_H
#define SHOUWEN_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <nng/nng.h>

#include "err.h"
#include "shouwen/v1/envelope.pb-c.h"

#define BUS_TYPE_MAX       100
#define BUS_HEADER_FIXED   13         /* 0x00 + partition + seq */
#define BUS_MSG_MAX        (1u << 20) /* NNG_OPT_RECVMAXSZ of every bus socket */
#define BUS_PARTITIONS_MAX 1024       /* bus.settings.partitions is at most this */

/* bus_partition_of: FNV-1a of the case id (or, without one, the event id) mod p. */
uint32_t bus_partition_of(const char *case_id, const char *event_id, uint32_t partitions);

/*
 * bus_uuid_v7 writes a new UUID into out[37], version 7 (RFC 9562): the
 * first 48 bits are the Unix time in milliseconds, the next 12 the
 * fraction of the millisecond, then 62 random bits ("tttttttt-tttt-7fff-
 * [89ab]rrr-rrrrrrrrrrrr").  Every id the services make (cases, events,
 * deadlines, commands) is one: ids made close in time sort close
 * together, so the B-tree indexes keyed by them (a case's row, its
 * events, deadlines, marks, audit entries and roll-up) take each new
 * entry near their right edge, on pages already in memory, instead of
 * on a random page of the whole index.  The time they tell is when the
 * row was made, which every such row also records.
 */
sw_err bus_uuid_v7(char out[37]);

/* bus_partitions reads P from bus.settings. */
sw_err bus_partitions(PGconn *c, uint32_t *out, char *err, size_t errlen);

/*
 * The wire.  A bus message rings for one event, or for several events of
 * one type that one transaction wrote:
 *
 *     one event   type 0x00 | partition u32 | seq u64 | Envelope
 *     a batch     type 0x00 | 0xFFFFFFFF    | count u64 |
 *                 count x (partition u32 | seq u64 | length u32 | Envelope)
 *
 * (integers big-endian).  The type leads either way, so a subscriber's
 * NNG_OPT_SUB_SUBSCRIBE prefix picks whole messages by type.  A batch
 * costs the sockets one message where the events would cost one each: a
 * message is a write, a read and a wake-up of a thread in each process.
 */
#define BUS_WIRE_BATCH   0xFFFFFFFFu  /* the partition field of a batch */
#define BUS_RECORD_FIXED 16           /* partition + seq + length, before each Envelope */
#define BUS_BATCH_BYTES  (256u << 10) /* a batch grows to about this, then another starts */

struct bus_wire {
    const char *type; /* not NUL-terminated: typelen bytes */
    size_t typelen;
    size_t count; /* events in the message */
    /* the event bus_wire_next stepped to */
    uint32_t partition;
    uint64_t seq;
    const uint8_t *env;
    size_t envlen;
    /* private */
    const uint8_t *at, *end;
    size_t left;
    bool batch;
};

/*
 * bus_wire_open checks a whole bus message, either layout, and points
 * `w` into it: its type and how many events it carries.  Returns
 * SW_EINVAL for anything malformed (no type, a short header, a batch of
 * no events, a record running past the end or bytes left after the
 * last).  Pure: it reads `msg`, which must outlive `w`.
 */
sw_err bus_wire_open(struct bus_wire *w, const uint8_t *msg, size_t len);

/* bus_wire_next steps to the next event of an opened message: false after the last. */
bool bus_wire_next(struct bus_wire *w);

/*
 * bus_envelope_framed: whether `len` bytes are a sequence of whole
 * protobuf fields (each key a varint, each value a varint, 4 or 8 bytes,
 * or a length that stays within the bytes), as an Envelope is; an empty
 * one is not.  No stricter than protobuf-c: what it unpacks is framed.
 * It does not decode them: a doorbell's envelopes are never used (the
 * consumer reads the events from PostgreSQL), so a consumer checks only
 * that they are framed, without the allocations of unpacking each one.
 * Pure.
 */
bool bus_envelope_framed(const uint8_t *p, size_t len);

/* ---- producing ------------------------------------------------------------------------ */

struct bus_outbox;
struct db_query;

/* Allocate an outbox for `partitions` partitions.  Free with bus_outbox_free. */
sw_err bus_outbox_alloc(struct bus_outbox **out, uint32_t partitions);
void bus_outbox_free(struct bus_outbox *ob);

/*
 * bus_outbox_add stages `env`: fills event_id (a new UUID) when empty,
 * time (now) when 0, and partition; then packs it.  The caller keeps `env`.
 * An event or case id that is not a canonical UUID ("8-4-4-4-12" hex
 * digits, either case) is refused with SW_EINVAL and nothing is staged.
 * The event id is kept on a retry of the same outbox, so a retried
 * transaction whose first COMMIT did succeed fails on the unique event id
 * instead of writing the event twice.
 */
sw_err bus_outbox_add(struct bus_outbox *ob, Shouwen__V1__Envelope *env);

/* Number of staged events. */
size_t bus_outbox_len(const struct bus_outbox *ob);

/*
 * bus_outbox_write inserts every staged event inside the caller's open
 * transaction `tx` (one INSERT for a few, binary COPY for many) and learns their seqs.
 */
sw_err bus_outbox_write(struct bus_outbox *ob, PGconn *tx, char *err, size_t errlen);

/*
 * bus_outbox_queries puts INSERT statements of every staged event into
 * `qs`, for the caller to send in its own pipeline (db_pipeline) inside
 * its transaction: one round trip for its writes and the events together.
 * Returns how many statements (one per 64 events), 0 when nothing is
 * staged, or -1 when they would need more than `max` or memory ran out
 * (then bus_outbox_write).  Their text and parameters stay in the outbox
 * until bus_outbox_written takes the statements' results (the events'
 * seqs) after the pipeline, or bus_outbox_clear.
 */
int bus_outbox_queries(struct bus_outbox *ob, struct db_query *qs, int max);
sw_err bus_outbox_written(struct bus_outbox *ob, PGresult *const *rs, int nq, char *err,
                          size_t errlen);

/*
 * bus_outbox_publish sends the written events on `pub` (after COMMIT) and
 * empties the outbox: the events of each type in one message (a batch,
 * above; more than one past BUS_BATCH_BYTES), an event alone in its type
 * as one event.  Lost sends are fine by design; returns how many events
 * were handed to nng.
 */
size_t bus_outbox_publish(struct bus_outbox *ob, nng_socket pub);

/* bus_outbox_clear empties the outbox (after a rollback). */
void bus_outbox_clear(struct bus_outbox *ob);

/* ---- consuming ------------------------------------------------------------------------ */

/*
 * A handler applies one event inside the open transaction `tx`.  Return
 * SW_OK, or an error with a message: the transaction is rolled back and the
 * event retried with backoff; after `max_attempts` failures it is parked
 * in bus.dead_letters and the partition moves on.
 */
typedef sw_err (*bus_handler_fn)(PGconn *tx, const Shouwen__V1__Envelope *env, void *arg, char *err,
                                 size_t errlen);

/*
 * A batch handler applies all the wanted events of one transaction at once
 * (`n` of them, in the order read), for consumers whose work is cheaper
 * set-wise than row by row.  On failure it sets *failed to the index of
 * the event at fault (0 when it cannot tell): that event's partition is
 * then retried one event per transaction, so a failure always ends up
 * attributed to its own event, and parked alone.
 */
typedef sw_err (*bus_batch_fn)(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n,
                               void *arg, size_t *failed, char *err, size_t errlen);

/* Called after each commit with the number of events just handled (may be NULL). */
typedef void (*bus_committed_fn)(void *arg, size_t n);

/*
 * Called at the start of each batch's transaction, before the handler (may
 * be NULL; the BEGIN itself goes with the batch's first read): a handler
 * that stages events of its own clears them here, so that what a
 * rolled-back attempt staged is never published.
 */
typedef void (*bus_begun_fn)(void *arg);

struct bus_consumer_config {
    const char *name;         /* the group; cursors and locks are per name */
    const char *const *types; /* NULL-terminated type prefixes; NULL for all */
    bus_handler_fn handler;   /* one event at a time; or */
    bus_batch_fn batch;       /* all of a transaction's events at once (exactly one is set) */
    bus_committed_fn committed;
    bus_begun_fn begun;
    /* The handler's transactions are keyed (DB_BEGIN_KEYED, db.h): the
     * handler and the bus's own reads keep prepared plans. */
    bool keyed;
    /* The reads return only the wanted types; otherwise every event comes
     * back and the others are skipped here.  It pays where the others are
     * most of the events: routing wants one of a case's three.  Escalation
     * wants two of the three, and its sessions cost more with it
     * (BENCHMARKS.md, session 42). */
    bool filter_types;
    void *arg;
    const char *db_url;
    const char *const *sub_urls; /* NULL-terminated PUB addresses to dial */
    int batch_max;               /* events per transaction when busy (default 500) */
    int max_attempts;            /* failures before parking (default 5) */
    long long catchup_ms;        /* catch-up read at least this often (default 500) */
    long long rebalance_ms;      /* partition claims checked this often (default 1000) */
    long long batch_wait_ms;     /* when BUS_WAIT_FROM events or more came in while a batch
                                    that was not full was applied (a busy consumer), the
                                    next starts no sooner than this after it began
                                    (default 0: at once) */
    int recv_buf;                /* NNG_OPT_RECVBUF in messages (default 4096; tests: 1) */
};

/* shouwen_bus_lag counts a partition's events not handled yet up to this
 * many (a larger backlog reads as BUS_LAG_MAX), this often. */
#define BUS_LAG_MAX      10000
#define BUS_LAG_EVERY_MS 5000

/* A consumer is busy, and waits (batch_wait_ms), when this many events or
 * more came in while its last batch was applied. */
#define BUS_WAIT_FROM 64

/* A numeric macro's value as a string literal, for the settings' help texts. */
#define BUS_STR_(x) #x
#define BUS_STR(x)  BUS_STR_(x)

/* A service's setting for batch_wait_ms (read with cfg_ms), with its default. */
#define BUS_BATCH_WAIT_SETTING(NAME, DEFAULT)                                                      \
    {                                                                                              \
        "SHOUWEN_" NAME "_BATCH_WAIT", CFG_DURATION, 0, 1000, DEFAULT, NULL,                       \
            "When busy (" BUS_STR(BUS_WAIT_FROM) " events or more came in while a batch, not "     \
                                                 "full, was applied), how long after a batch "     \
                                                 "began the next starts (0ms: at once): "          \
                                                 "larger batches cost less per event, each "       \
                                                 "waiting at most this much longer; a "            \
                                                 "consumer that keeps up reads at once"            \
    }

struct bus_consumer;

/*
 * bus_consumer_start starts a consumer thread.  It connects (and
 * reconnects) by itself; events are handled from the moment it owns
 * partitions.  On failure writes `err`.  Stop with bus_consumer_stop.
 */
sw_err bus_consumer_start(struct bus_consumer **out, const struct bus_consumer_config *cfg,
                          char *err, size_t errlen);

/* Finish the batch in hand, commit, release the partitions, join, free. NULL is fine. */
void bus_consumer_stop(struct bus_consumer *c);

/* Partitions this replica owns now.  Any thread. */
int bus_consumer_owned(const struct bus_consumer *c);
/* How many times ownership changed (claims and releases): a reader compares.  Any thread. */
uint64_t bus_consumer_generation(const struct bus_consumer *c);
/* Writes the partitions owned now to out (at most max), returns how many.  Any thread. */
size_t bus_consumer_partitions(const struct bus_consumer *c, uint32_t *out, size_t max);

#endif
