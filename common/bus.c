/*
 * bus.c - the transactional outbox, the doorbell and the consumers.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bus.h"
#include "buf.h"
#include "bytes.h"

#include <nng/protocol/pubsub0/sub.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pgcopy.h"
#include "tls.h"

#define BUS_COPY_FROM  64         /* events per write from which COPY beats INSERT */
#define BUS_MEMBER_KEY 2147483647 /* second advisory-lock key of the group membership lock */
/* Moving cursors: CURSOR_INSERT, one or more (consumer, p, floor, top, last), CURSOR_UPSERT. */
#define CURSOR_INSERT                                                                              \
    "INSERT INTO bus.cursors (consumer, partition, window_floor, window_top, last_seq) VALUES "
#define CURSOR_UPSERT                                                                              \
    " ON CONFLICT (consumer, partition) DO UPDATE SET window_floor = EXCLUDED.window_floor, "      \
    "window_top = EXCLUDED.window_top, last_seq = EXCLUDED.last_seq, updated_at = now()"
#define FP_SLOTS      65536 /* recent doorbell seqs, to tell fast path from catch-up */
#define BELL_WAIT_MAX 8     /* ms: the longest wait for a doorbell's event to become final */

/* ---- small pieces ----------------------------------------------------------------------- */

uint32_t bus_partition_of(const char *case_id, const char *event_id, uint32_t partitions)
{
    const char *key = (case_id != NULL && case_id[0] != '\0') ? case_id : event_id;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)(key ? key : ""); *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return partitions ? h % partitions : 0;
}

sw_err bus_uuid_v7(char out[37])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SW_EIO;
        }
        got += (size_t)n;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    /* RFC 9562 method 3: the 12 bits after the version are the fraction of the millisecond */
    uint32_t frac = (uint32_t)(((uint64_t)(ts.tv_nsec % 1000000) << 12) / 1000000u);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (frac >> 8));
    b[7] = (uint8_t)(frac & 0xff);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return SW_OK;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static sw_err pq_fail(PGconn *c, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "could not %s: %s", what, PQerrorMessage(c));
    chomp(err);
    return PQstatus(c) == CONNECTION_BAD ? SW_EDBDOWN : SW_EDB;
}

sw_err bus_partitions(PGconn *c, uint32_t *out, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT partitions FROM bus.settings");
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rv = pq_fail(c, "read bus.settings", err, errlen);
    else
        *out = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rv;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

sw_err bus_wire_open(struct bus_wire *w, const uint8_t *msg, size_t len)
{
    memset(w, 0, sizeof(*w));
    if (msg == NULL || len > BUS_MSG_MAX)
        return SW_EINVAL;
    const uint8_t *nul = memchr(msg, 0, len < BUS_TYPE_MAX + 1 ? len : BUS_TYPE_MAX + 1);
    if (nul == NULL || nul == msg)
        return SW_EINVAL;
    size_t tl = (size_t)(nul - msg);
    if (len - tl < BUS_HEADER_FIXED)
        return SW_EINVAL;
    w->type = (const char *)msg;
    w->typelen = tl;
    w->at = nul + BUS_HEADER_FIXED;
    w->end = msg + len;
    if ((uint32_t)get_be(nul + 1, 4) != BUS_WIRE_BATCH) {
        w->count = w->left = 1;
        return SW_OK;
    }
    /* a batch: every record must fit, and the last must end the message */
    uint64_t count = get_be(nul + 5, 8);
    if (count == 0 || count > (uint64_t)(w->end - w->at) / BUS_RECORD_FIXED)
        return SW_EINVAL;
    const uint8_t *p = w->at;
    for (uint64_t i = 0; i < count; i++) {
        if ((size_t)(w->end - p) < BUS_RECORD_FIXED)
            return SW_EINVAL;
        size_t el = (size_t)get_be(p + 12, 4);
        if (el > (size_t)(w->end - p) - BUS_RECORD_FIXED)
            return SW_EINVAL;
        p += BUS_RECORD_FIXED + el;
    }
    if (p != w->end)
        return SW_EINVAL;
    w->batch = true;
    w->count = w->left = (size_t)count;
    return SW_OK;
}

bool bus_wire_next(struct bus_wire *w)
{
    if (w->left == 0)
        return false;
    w->left--;
    if (!w->batch) {
        const uint8_t *h = w->at - BUS_HEADER_FIXED + 1;
        w->partition = (uint32_t)get_be(h, 4);
        w->seq = get_be(h + 4, 8);
        w->env = w->at;
        w->envlen = (size_t)(w->end - w->at);
        return true;
    }
    w->partition = (uint32_t)get_be(w->at, 4);
    w->seq = get_be(w->at + 4, 8);
    w->envlen = (size_t)get_be(w->at + 12, 4);
    w->env = w->at + BUS_RECORD_FIXED;
    w->at += BUS_RECORD_FIXED + w->envlen;
    return true;
}

/* A varint at *p (before end): its value, *p past it; false if it runs out or past 10 bytes. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

bool bus_envelope_framed(const uint8_t *p, size_t len)
{
    if (p == NULL || len == 0)
        return false;
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t key, v;
        if (!varint(&p, end, &key))
            return false;
        switch (key & 7) {
        case 0: /* varint */
            if (!varint(&p, end, &v))
                return false;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            p += v;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return false;
            p += 4;
            break;
        default: /* groups (3, 4) are not proto3; 6 and 7 are no wire type */
            return false;
        }
    }
    return true;
}

/* ---- the outbox ------------------------------------------------------------------------- */

struct bus_item {
    char event_id[37];
    char type[BUS_TYPE_MAX + 1];
    char site[65];
    char case_id[37];
    uint8_t event_uuid[16]; /* the ids as bytes, for the binary COPY */
    uint8_t case_uuid[16];
    uint32_t partition;
    uint8_t *bytes;
    size_t len;
    int64_t seq; /* 0 until written */
    bool rung;   /* bus_outbox_publish: put in a message already */
};

struct bus_outbox {
    uint32_t partitions;
    struct bus_item *items;
    size_t n;
    size_t cap;
    struct metric *m_published;
    struct outbox_chunk *chunks; /* bus_outbox_queries' statements, until bus_outbox_written */
    size_t nchunks;
};

static void outbox_chunks_free(struct bus_outbox *ob);

sw_err bus_outbox_alloc(struct bus_outbox **out, uint32_t partitions)
{
    struct bus_outbox *ob = calloc(1, sizeof(*ob));
    if (ob == NULL)
        return SW_ENOMEM;
    ob->partitions = partitions ? partitions : 1;
    ob->m_published = metrics_get(METRIC_COUNTER, "shouwen_bus_published_total",
                                  "Events handed to the PUB socket after commit", NULL);
    *out = ob;
    return SW_OK;
}

void bus_outbox_clear(struct bus_outbox *ob)
{
    outbox_chunks_free(ob);
    for (size_t i = 0; i < ob->n; i++)
        free(ob->items[i].bytes);
    ob->n = 0;
}

void bus_outbox_free(struct bus_outbox *ob)
{
    if (ob == NULL)
        return;
    bus_outbox_clear(ob);
    free(ob->items);
    free(ob);
}

size_t bus_outbox_len(const struct bus_outbox *ob)
{
    return ob->n;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

sw_err bus_outbox_add(struct bus_outbox *ob, Shouwen__V1__Envelope *env)
{
    if (env->type == NULL || env->type[0] == '\0' || strlen(env->type) > BUS_TYPE_MAX ||
        (env->site != NULL && strlen(env->site) > 64) ||
        (env->case_id != NULL && strlen(env->case_id) > 36) ||
        (env->event_id != NULL && strlen(env->event_id) > 36))
        return SW_EINVAL;
    if (ob->n == ob->cap) {
        size_t nc = ob->cap ? ob->cap * 2 : 64;
        struct bus_item *p = realloc(ob->items, nc * sizeof(*p));
        if (p == NULL)
            return SW_ENOMEM;
        ob->items = p;
        ob->cap = nc;
    }
    struct bus_item *it = &ob->items[ob->n];
    memset(it, 0, sizeof(*it));
    if (env->event_id != NULL && env->event_id[0] != '\0')
        snprintf(it->event_id, sizeof(it->event_id), "%s", env->event_id);
    else if (bus_uuid_v7(it->event_id) != SW_OK)
        return SW_EIO;
    snprintf(it->type, sizeof(it->type), "%s", env->type);
    snprintf(it->site, sizeof(it->site), "%s", env->site ? env->site : "");
    snprintf(it->case_id, sizeof(it->case_id), "%s", env->case_id ? env->case_id : "");
    if (!pgcopy_uuid_bytes(it->event_id, it->event_uuid) ||
        (it->case_id[0] != '\0' && !pgcopy_uuid_bytes(it->case_id, it->case_uuid)))
        return SW_EINVAL;
    it->partition = bus_partition_of(it->case_id, it->event_id, ob->partitions);

    /* Pack a shallow copy carrying the filled fields; the caller's env is untouched. */
    Shouwen__V1__Envelope copy = *env;
    copy.event_id = it->event_id;
    copy.partition = it->partition;
    if (copy.time == 0)
        copy.time = now_us();
    it->len = shouwen__v1__envelope__get_packed_size(&copy);
    if (it->len > BUS_MSG_MAX - BUS_TYPE_MAX - BUS_HEADER_FIXED)
        return SW_ETOOBIG;
    it->bytes = malloc(it->len ? it->len : 1);
    if (it->bytes == NULL)
        return SW_ENOMEM;
    shouwen__v1__envelope__pack(&copy, it->bytes);
    ob->n++;
    return SW_OK;
}

/*
 * One INSERT ... VALUES ... RETURNING of events [start, start + k) of the
 * outbox (k at most BUS_COPY_FROM), built in `c`: its text, its parameters
 * (the payload in binary) and the partitions as text.  The text depends
 * only on k, so a session prepares at most BUS_COPY_FROM of them.
 */
struct outbox_chunk {
    size_t start, k;
    char *sql;
    const char **vals;
    int *lens, *fmts;
    char (*parts)[12];
};

enum { OUTBOX_COLS = 6 };

static void chunk_free(struct outbox_chunk *c)
{
    free(c->sql);
    free(c->vals);
    free(c->lens);
    free(c->fmts);
    free(c->parts);
    memset(c, 0, sizeof(*c));
}

static void outbox_chunks_free(struct bus_outbox *ob)
{
    for (size_t i = 0; i < ob->nchunks; i++)
        chunk_free(&ob->chunks[i]);
    free(ob->chunks);
    ob->chunks = NULL;
    ob->nchunks = 0;
}

static sw_err chunk_build(struct bus_outbox *ob, size_t start, size_t k, struct outbox_chunk *c)
{
    size_t cap = 120 + k * 64;
    c->start = start;
    c->k = k;
    c->sql = malloc(cap);
    c->vals = calloc(k * OUTBOX_COLS, sizeof(*c->vals));
    c->lens = calloc(k * OUTBOX_COLS, sizeof(*c->lens));
    c->fmts = calloc(k * OUTBOX_COLS, sizeof(*c->fmts));
    c->parts = calloc(k, sizeof(*c->parts));
    if (c->sql == NULL || c->vals == NULL || c->lens == NULL || c->fmts == NULL ||
        c->parts == NULL) {
        chunk_free(c);
        return SW_ENOMEM;
    }
    size_t o = (size_t)snprintf(c->sql, cap,
                                "INSERT INTO bus.events (event_id, type, site, case_id, "
                                "partition, payload) VALUES ");
    for (size_t i = 0; i < k; i++) {
        struct bus_item *it = &ob->items[start + i];
        int b = (int)(i * OUTBOX_COLS);
        o += (size_t)snprintf(c->sql + o, cap - o, "%s($%d,$%d,$%d,$%d,$%d,$%d)", i ? "," : "",
                              b + 1, b + 2, b + 3, b + 4, b + 5, b + 6);
        snprintf(c->parts[i], sizeof(c->parts[i]), "%u", it->partition);
        c->vals[b] = it->event_id;
        c->vals[b + 1] = it->type;
        c->vals[b + 2] = it->site[0] ? it->site : NULL;
        c->vals[b + 3] = it->case_id[0] ? it->case_id : NULL;
        c->vals[b + 4] = c->parts[i];
        c->vals[b + 5] = (const char *)it->bytes;
        c->lens[b + 5] = (int)it->len;
        c->fmts[b + 5] = 1;
    }
    snprintf(c->sql + o, cap - o, " RETURNING event_id::text, seq");
    return SW_OK;
}

/* The seqs a chunk's INSERT returned. */
static sw_err chunk_seqs(struct bus_outbox *ob, const struct outbox_chunk *c, const PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || (size_t)PQntuples(r) != c->k)
        return SW_EDB;
    for (size_t i = 0; i < c->k; i++) {
        const char *id = PQgetvalue(r, (int)i, 0);
        int64_t seq = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        /* RETURNING comes in VALUES order; look further only if it does not. */
        struct bus_item *it = &ob->items[c->start + i];
        if (strcmp(it->event_id, id) != 0)
            for (size_t j = 0; j < c->k; j++)
                if (strcmp(ob->items[c->start + j].event_id, id) == 0)
                    it = &ob->items[c->start + j];
        it->seq = seq;
    }
    return SW_OK;
}

/* Few events: one INSERT ... VALUES ... RETURNING is the fewest round trips. */
static sw_err outbox_insert(struct bus_outbox *ob, PGconn *tx, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    for (size_t start = 0; start < ob->n && rv == SW_OK; start += BUS_COPY_FROM) {
        size_t k = ob->n - start < BUS_COPY_FROM ? ob->n - start : BUS_COPY_FROM;
        struct outbox_chunk c;
        if (chunk_build(ob, start, k, &c) != SW_OK) {
            snprintf(err, errlen, "out of memory writing events");
            return SW_ENOMEM;
        }
        char name[32];
        snprintf(name, sizeof(name), "bus_outbox_%zu", k);
        PGresult *r =
            db_exec_prepared(tx, name, c.sql, (int)(k * OUTBOX_COLS), c.vals, c.lens, c.fmts);
        if (chunk_seqs(ob, &c, r) != SW_OK)
            rv = pq_fail(tx, "write events to the outbox", err, errlen);
        PQclear(r);
        chunk_free(&c);
    }
    return rv;
}

int bus_outbox_queries(struct bus_outbox *ob, struct db_query *qs, int max)
{
    outbox_chunks_free(ob);
    size_t need = (ob->n + BUS_COPY_FROM - 1) / BUS_COPY_FROM;
    if (need == 0)
        return 0;
    if (need > (size_t)max || (ob->chunks = calloc(need, sizeof(*ob->chunks))) == NULL)
        return -1;
    for (size_t i = 0; i < need; i++) {
        size_t start = i * BUS_COPY_FROM;
        size_t k = ob->n - start < BUS_COPY_FROM ? ob->n - start : BUS_COPY_FROM;
        if (chunk_build(ob, start, k, &ob->chunks[i]) != SW_OK) {
            outbox_chunks_free(ob);
            return -1;
        }
        ob->nchunks = i + 1;
        qs[i] = (struct db_query){.sql = ob->chunks[i].sql,
                                  .n = (int)(k * OUTBOX_COLS),
                                  .vals = ob->chunks[i].vals,
                                  .lens = ob->chunks[i].lens,
                                  .fmts = ob->chunks[i].fmts,
                                  .fixed = true};
    }
    return (int)need;
}

sw_err bus_outbox_written(struct bus_outbox *ob, PGresult *const *rs, int nq, char *err,
                          size_t errlen)
{
    sw_err rv = SW_OK;
    if ((size_t)nq != ob->nchunks) {
        snprintf(err, errlen, "%d results for %zu statements writing events", nq, ob->nchunks);
        rv = SW_EINVAL;
    }
    for (size_t i = 0; rv == SW_OK && i < ob->nchunks; i++)
        if (chunk_seqs(ob, &ob->chunks[i], rs[i]) != SW_OK) {
            snprintf(err, errlen, "write events to the outbox: not every event came back");
            rv = SW_EDB;
        }
    outbox_chunks_free(ob);
    return rv;
}

/*
 * Many events go in with COPY, far cheaper than a long INSERT: the
 * sequence numbers are taken first (nextval, in this transaction, exactly
 * as the column default would) so that they can go on the wire.  Few go in
 * with one INSERT, which costs fewer round trips.
 *
 * The sequence is named once per statement, in an uncorrelated subquery
 * (an InitPlan, evaluated once): pg_get_serial_sequence() is only stable,
 * so as the argument of nextval() it was evaluated again for every row,
 * each time a look-up in the catalogs and a cast of its text to regclass,
 * 2.1 us a number against 0.23 (BENCHMARKS.md, session 40).
 */
sw_err bus_outbox_write(struct bus_outbox *ob, PGconn *tx, char *err, size_t errlen)
{
    char count[24];
    sw_err rv = SW_OK;
    PGresult *r;

    if (ob->n == 0)
        return SW_OK;
    if (ob->n < BUS_COPY_FROM)
        return outbox_insert(ob, tx, err, errlen);
    snprintf(count, sizeof(count), "%zu", ob->n);
    const char *v[] = {count};
    r = PQexecParams(tx,
                     "SELECT nextval((SELECT pg_get_serial_sequence('bus.events', "
                     "'seq')::regclass)) FROM generate_series(1, $1::int)",
                     1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || (size_t)PQntuples(r) != ob->n) {
        rv = pq_fail(tx, "number events", err, errlen);
        PQclear(r);
        return rv;
    }
    for (size_t i = 0; i < ob->n; i++)
        ob->items[i].seq = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
    PQclear(r);

    struct pgcopy pc;
    rv = pgcopy_begin(&pc, tx,
                      "COPY bus.events (seq, event_id, type, site, case_id, partition, payload) "
                      "FROM STDIN (FORMAT binary)",
                      "write events to the outbox", err, errlen);
    for (size_t i = 0; i < ob->n && rv == SW_OK; i++) {
        struct bus_item *it = &ob->items[i];
        pgcopy_row(&pc, 7);
        pgcopy_int8(&pc, it->seq);
        pgcopy_bytes(&pc, it->event_uuid, 16);
        pgcopy_text(&pc, it->type);
        pgcopy_text(&pc, it->site[0] ? it->site : NULL);
        if (it->case_id[0])
            pgcopy_bytes(&pc, it->case_uuid, 16);
        else
            pgcopy_null(&pc);
        pgcopy_int4(&pc, (int32_t)it->partition);
        pgcopy_bytes(&pc, it->bytes, it->len);
    }
    sw_err end = pgcopy_end(&pc, err, errlen);
    if (rv == SW_OK)
        rv = end;
    if (rv == SW_OK)
        return SW_OK;
    for (size_t i = 0; i < ob->n; i++)
        ob->items[i].seq = 0;
    return rv;
}

/*
 * The message for item `first` and the items after it of the same type
 * not rung yet, as many as fit in BUS_BATCH_BYTES: `*k` of them, marked
 * rung.  One alone goes in the one-event layout.  NULL when nng has no
 * memory (they are marked all the same: a doorbell may be lost).
 */
static nng_msg *wire_message(struct bus_outbox *ob, size_t first, size_t *k)
{
    const char *type = ob->items[first].type;
    size_t n = 0, body = 0, stop = first;
    for (size_t j = first; j < ob->n; j++) {
        const struct bus_item *it = &ob->items[j];
        if (it->rung || strcmp(it->type, type) != 0)
            continue;
        if (n > 0 && body + BUS_RECORD_FIXED + it->len > BUS_BATCH_BYTES)
            break;
        n++;
        body += BUS_RECORD_FIXED + it->len;
        stop = j + 1;
    }
    *k = n;
    size_t tl = strlen(type);
    struct bus_item *one = &ob->items[first];
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, tl + BUS_HEADER_FIXED + (n == 1 ? one->len : body)) != 0)
        m = NULL;
    uint8_t *p = m != NULL ? nng_msg_body(m) : NULL;
    if (p != NULL) {
        memcpy(p, type, tl);
        p[tl] = 0;
        put_be32(p + tl + 1, n == 1 ? one->partition : BUS_WIRE_BATCH);
        put_be64(p + tl + 5, n == 1 ? (uint64_t)one->seq : (uint64_t)n);
        p += tl + BUS_HEADER_FIXED;
    }
    for (size_t j = first; j < stop; j++) {
        struct bus_item *it = &ob->items[j];
        if (it->rung || strcmp(it->type, type) != 0)
            continue;
        it->rung = true;
        if (p == NULL)
            continue;
        if (n > 1) {
            put_be32(p, it->partition);
            put_be64(p + 4, (uint64_t)it->seq);
            put_be32(p + 12, (uint32_t)it->len);
            p += BUS_RECORD_FIXED;
        }
        memcpy(p, it->bytes, it->len);
        p += it->len;
    }
    return m;
}

size_t bus_outbox_publish(struct bus_outbox *ob, nng_socket pub)
{
    size_t sent = 0;
    for (size_t i = 0; i < ob->n; i++)
        ob->items[i].rung = ob->items[i].seq <= 0; /* not written: nothing to ring for */
    for (size_t i = 0; i < ob->n; i++) {
        if (ob->items[i].rung)
            continue;
        size_t k;
        nng_msg *m = wire_message(ob, i, &k);
        if (m == NULL)
            continue;
        if (nng_sendmsg(pub, m, NNG_FLAG_NONBLOCK) != 0) {
            nng_msg_free(m);
            continue;
        }
        sent += k;
    }
    metric_add(ob->m_published, (int64_t)sent);
    bus_outbox_clear(ob);
    return sent;
}

/* ---- the consumer ----------------------------------------------------------------------- */

struct part {
    bool owned;
    bool dirty;     /* a doorbell rang, or the last batch was full */
    bool single;    /* one event per transaction until past fail_seq */
    char floor[24]; /* the window, as xid8 text */
    char top[24];
    int64_t last;
    int64_t fail_seq;
    int attempts;
    uint64_t bell_seq; /* a doorbell's event not handled yet: read again soon */
    long long bell_ms; /* when that doorbell rang */
    long long next_try_ms;
    struct metric *m_lag;
};

struct bus_consumer {
    struct bus_consumer_config cfg;
    char *name;
    char *db_url;
    char **types;
    size_t ntypes;
    /* The types as LIKE patterns, a text[] literal ({"case.registered%",...}):
     * the read leaves the other events in the table.  NULL: every type
     * comes back (no types, or not filter_types). */
    char *type_like;
    char **urls;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    _Atomic int owned;
    _Atomic uint64_t ownbits[BUS_PARTITIONS_MAX / 64]; /* what `owned` counts, for other threads */
    _Atomic uint64_t generation;                       /* ownership changes so far */
    struct db *db;
    nng_socket sub;
    int sub_fd; /* readable while a doorbell waits (NNG_OPT_RECVFD) */
    bool member;
    uint32_t nparts;
    struct part *parts;
    char lockkey[16];
    long long next_rebalance;
    long long next_catchup;
    long long next_lag; /* when the lag is counted again (BUS_LAG_EVERY_MS) */
    uint64_t *fp_seen;
    /* Recent seqs read and committed: a doorbell that arrives after its
     * event was read (by a batch a doorbell before it started) is not
     * chased, which would poll an empty window every millisecond. */
    uint64_t *done_seen;
    /* The wait before looking again for a doorbell's event that was not yet
     * final: 1 ms, doubled after each look that found nothing, to BELL_WAIT_MAX. */
    int bell_wait_ms;
    /* When the last look for events began (batch_wait_ms: the rate at
     * which they come in). */
    long long last_look_ms;
    struct metric *m_fast;
    struct metric *m_garbage;
    struct metric *m_dup;
    struct metric *m_handled_fast;
    struct metric *m_recovered;
    struct metric *m_empty;
    struct metric *m_skipped;
    struct metric *m_batches;
    struct metric *m_parked;
    struct metric *m_parked_waiting;
    struct metric *m_failures;
    struct metric *m_owned;
};

static _Thread_local struct bus_consumer *bus_self;

static int consumer_stopping(void)
{
    return bus_self != NULL && atomic_load(&bus_self->stop);
}

static bool type_wanted(const struct bus_consumer *c, const char *type)
{
    if (c->ntypes == 0)
        return true;
    for (size_t i = 0; i < c->ntypes; i++)
        if (strncmp(type, c->types[i], strlen(c->types[i])) == 0)
            return true;
    return false;
}

/* Run a statement that returns nothing of interest. */
static sw_err exec1(PGconn *db, const char *sql, int n, const char *const *vals, char *err,
                    size_t errlen)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    sw_err rv = SW_OK;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rv = pq_fail(db, sql, err, errlen);
    PQclear(r);
    return rv;
}

/* Open a transaction for the handler: keyed (db.h) if the consumer asked. */
static sw_err begin_handler(struct bus_consumer *c, PGconn *db, char *err, size_t errlen)
{
    PGresult *r = PQexec(db, c->cfg.keyed ? DB_BEGIN_KEYED : "BEGIN");
    sw_err rv = SW_OK;
    /* keyed, the last statement is the guards' SELECT */
    if (PQresultStatus(r) != (c->cfg.keyed ? PGRES_TUPLES_OK : PGRES_COMMAND_OK))
        rv = pq_fail(db, "begin a transaction", err, errlen);
    PQclear(r);
    return rv;
}

static void rollback(PGconn *db)
{
    PGresult *r = PQexec(db, "ROLLBACK");
    PQclear(r);
}

/*
 * A statement of the bus's own in a batch's transaction: the windows'
 * bounds or their events.  The first (*begun false) goes with the BEGIN,
 * and when keyed the guards, in one round trip (db_pipeline): a batch pays
 * no round trip of its own to open.  Each is prepared and kept
 * (db_exec_fixed), its generic plan made under the guards (db.h): in a
 * transaction that is not keyed, they are set around the statement alone
 * (DB_KEYED_GUARDS_SAVE, DB_KEYED_GUARDS_RESTORE) and the handler's
 * statements plan as they would have.  Planned anew each time, as they
 * were, these two cost notification, escalation and audit more than
 * running them did (the windows' 0.35 ms a call to plan, 0.5 to run).
 * Returns the statement's result; NULL when the BEGIN failed or the
 * session broke (the message is PQerrorMessage's, and PQpipelineStatus
 * tells an out-of-step session).
 */
static PGresult *tx_exec(struct bus_consumer *c, PGconn *db, bool *begun, const char *sql, int n,
                         const char *const *v, int binary)
{
    struct db_query qs[4];
    PGresult *out[4];
    char err[256];
    int nq = 0;
    bool opening = !*begun;
    if (opening)
        qs[nq++] = (struct db_query){.sql = "BEGIN"};
    if (opening || !c->cfg.keyed)
        qs[nq++] = (struct db_query){.sql = c->cfg.keyed ? DB_KEYED_GUARDS : DB_KEYED_GUARDS_SAVE,
                                     .fixed = true};
    int at = nq;
    qs[nq++] = (struct db_query){.sql = sql, .n = n, .vals = v, .binary = binary, .fixed = true};
    if (!c->cfg.keyed)
        qs[nq++] = (struct db_query){.sql = DB_KEYED_GUARDS_RESTORE, .fixed = true};
    if (db_pipeline(db, qs, nq, out, err, sizeof(err)) != SW_OK && out[at] == NULL)
        LOG(LOG_DEBUG, "BUS-READ", "consumer %s: %s", c->name, err);
    if (opening)
        *begun = PQresultStatus(out[0]) == PGRES_COMMAND_OK;
    for (int i = 0; i < nq; i++)
        if (i != at)
            PQclear(out[i]);
    return out[at];
}

/* Partition p is now owned here, or no longer. */
static void set_owned(struct bus_consumer *c, uint32_t p, bool owned)
{
    c->parts[p].owned = owned;
    uint64_t bit = (uint64_t)1 << (p % 64);
    if (owned)
        atomic_fetch_or(&c->ownbits[p / 64], bit);
    else
        atomic_fetch_and(&c->ownbits[p / 64], ~bit);
    atomic_fetch_add(&c->generation, 1);
}

/* The connection broke: everything owned is gone with it. */
static void consumer_lost(struct bus_consumer *c)
{
    db_reset(c->db);
    c->member = false;
    for (uint32_t p = 0; c->parts != NULL && p < c->nparts; p++)
        if (c->parts[p].owned)
            set_owned(c, p, false);
    /* the series is shared by the process's consumers of this name: each adds its own change */
    metric_add(c->m_owned, -(int64_t)atomic_exchange(&c->owned, 0));
}

static sw_err consumer_join(struct bus_consumer *c, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    uint32_t n = 0;
    sw_err rv = bus_partitions(db, &n, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (c->parts == NULL || n != c->nparts) {
        free(c->parts);
        c->parts = calloc(n, sizeof(*c->parts));
        if (c->parts == NULL)
            return SW_ENOMEM;
        c->nparts = n;
        for (uint32_t p = 0; p < n; p++) {
            char labels[160];
            snprintf(labels, sizeof(labels), "consumer=\"%s\",partition=\"%u\"", c->name, p);
            c->parts[p].m_lag =
                metrics_get(METRIC_GAUGE, "shouwen_bus_lag",
                            "Events of an owned partition not handled yet, counted up to " BUS_STR(
                                BUS_LAG_MAX) " (-1: not owned here)",
                            labels);
            metric_set(c->parts[p].m_lag, -1);
        }
    }
    const char *v[] = {c->name};
    PGresult *r =
        PQexecParams(db, "SELECT (hashtext($1) & 2147483647)::text", 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rv = pq_fail(db, "hash the consumer name", err, errlen);
        PQclear(r);
        return rv;
    }
    snprintf(c->lockkey, sizeof(c->lockkey), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *k[] = {c->lockkey};
    rv = exec1(db, "SELECT pg_advisory_lock_shared($1::int4, 2147483647)", 1, k, err, errlen);
    if (rv == SW_OK) {
        c->member = true;
        c->next_rebalance = 0;
    }
    return rv;
}

static sw_err claim(struct bus_consumer *c, uint32_t p, bool *got, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    char ps[12];
    snprintf(ps, sizeof(ps), "%u", p);
    const char *v[] = {c->lockkey, ps, c->name};
    PGresult *r = PQexecParams(db, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", 2, NULL, v,
                               NULL, NULL, 0);
    *got = false;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = pq_fail(db, "claim a partition", err, errlen);
        PQclear(r);
        return rv;
    }
    bool locked = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked)
        return SW_OK;
    const char *w[] = {c->name, ps};
    r = PQexecParams(db,
                     "SELECT window_floor::text, window_top::text, last_seq FROM bus.cursors "
                     "WHERE consumer = $1 AND partition = $2::int",
                     2, NULL, w, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = pq_fail(db, "read a cursor", err, errlen);
        PQclear(r);
        return rv;
    }
    struct part *pt = &c->parts[p];
    if (PQntuples(r) == 1) {
        snprintf(pt->floor, sizeof(pt->floor), "%s", PQgetvalue(r, 0, 0));
        snprintf(pt->top, sizeof(pt->top), "%s", PQgetvalue(r, 0, 1));
        pt->last = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    } else {
        snprintf(pt->floor, sizeof(pt->floor), "0");
        snprintf(pt->top, sizeof(pt->top), "0");
        pt->last = 0;
    }
    PQclear(r);
    set_owned(c, p, true);
    c->next_lag = 0; /* a partition taken over shows its lag at once */
    pt->dirty = true;
    pt->single = false;
    pt->attempts = 0;
    pt->next_try_ms = 0;
    *got = true;
    return SW_OK;
}

/*
 * Run the handler again on parked events an operator asked to replay
 * (shouwen-bus replay ID), for the partitions this replica owns: once
 * each; success marks them replayed, failure records the error and
 * withdraws the request.
 */
/* The handler on `n` events: the batch handler at once, or the handler on each in turn. */
static sw_err run_handler(struct bus_consumer *c, PGconn *db,
                          const Shouwen__V1__Envelope *const *envs, size_t n, size_t *failed,
                          char *herr, size_t herrlen)
{
    size_t ignored = 0;
    if (failed == NULL)
        failed = &ignored;
    *failed = 0;
    if (c->cfg.batch != NULL) {
        sw_err rv = c->cfg.batch(db, envs, n, c->cfg.arg, failed, herr, herrlen);
        if (*failed >= n)
            *failed = 0; /* not a valid index: blame the first */
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        sw_err rv = c->cfg.handler(db, envs[i], c->cfg.arg, herr, herrlen);
        if (rv != SW_OK) {
            *failed = i;
            return rv;
        }
    }
    return SW_OK;
}

static sw_err replay_parked(struct bus_consumer *c, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    const char *v[] = {c->name};
    PGresult *r = PQexecParams(db,
                               "SELECT d.id::text, d.partition::text, e.payload FROM "
                               "bus.dead_letters d JOIN bus.events e ON e.seq = d.seq "
                               "WHERE d.consumer = $1 AND d.replay_requested_at IS NOT NULL "
                               "AND d.replayed_at IS NULL ORDER BY d.id LIMIT 100",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = pq_fail(db, "read replay requests", err, errlen);
        PQclear(r);
        return rv;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        uint32_t p = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        if (p >= c->nparts || !c->parts[p].owned)
            continue;
        const char *id = PQgetvalue(r, i, 0);
        size_t blen = 0;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &blen);
        Shouwen__V1__Envelope *env =
            bytes ? shouwen__v1__envelope__unpack(NULL, blen, bytes) : NULL;
        PQfreemem(bytes);
        char herr[512] = "undecodable envelope in the outbox";
        sw_err hrv = begin_handler(c, db, err, errlen);
        if (hrv == SW_OK && c->cfg.begun != NULL)
            c->cfg.begun(c->cfg.arg);
        if (hrv == SW_OK)
            hrv = env ? run_handler(c, db, (const Shouwen__V1__Envelope *const *)&env, 1, NULL,
                                    herr, sizeof(herr))
                      : SW_EINVAL;
        if (env != NULL)
            shouwen__v1__envelope__free_unpacked(env, NULL);
        const char *iv[] = {id};
        if (hrv == SW_OK &&
            exec1(db, "UPDATE bus.dead_letters SET replayed_at = now() WHERE id = $1::bigint", 1,
                  iv, err, errlen) == SW_OK &&
            exec1(db, "COMMIT", 0, NULL, err, errlen) == SW_OK) {
            if (c->cfg.committed != NULL)
                c->cfg.committed(c->cfg.arg, 1);
            LOG(LOG_INFO, "BUS-REPLAYED", "consumer %s replayed parked event %s", c->name, id);
            continue;
        }
        rollback(db);
        if (PQstatus(db) == CONNECTION_BAD)
            break;
        const char *fv[] = {id, herr};
        exec1(db,
              "UPDATE bus.dead_letters SET replay_requested_at = NULL, attempts = attempts + 1, "
              "last_error = left($2, 10000) WHERE id = $1::bigint",
              2, fv, err, errlen);
        LOG(LOG_WARN, "BUS-REPLAY-FAILED", "consumer %s could not replay parked event %s: %s",
            c->name, id, herr);
    }
    PQclear(r);
    return PQstatus(db) == CONNECTION_BAD ? SW_EDBDOWN : SW_OK;
}

static sw_err rebalance(struct bus_consumer *c, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    const char *k[] = {c->lockkey};
    PGresult *r = PQexecParams(db,
                               "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND database = (SELECT oid FROM pg_database "
                               "WHERE datname = current_database()) AND classid = $1::oid "
                               "AND objid = 2147483647 AND objsubid = 2 AND granted",
                               1, NULL, k, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = pq_fail(db, "count the group's members", err, errlen);
        PQclear(r);
        return rv;
    }
    long members = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (members < 1)
        members = 1;
    int target = (int)((c->nparts + (uint32_t)members - 1) / (uint32_t)members);
    int owned = atomic_load(&c->owned);
    /* Give back the highest partitions first; they are claimed from the lowest. */
    for (uint32_t p = c->nparts; p-- > 0 && owned > target;) {
        if (!c->parts[p].owned)
            continue;
        char ps[12];
        snprintf(ps, sizeof(ps), "%u", p);
        const char *v[] = {c->lockkey, ps};
        sw_err rv = exec1(db, "SELECT pg_advisory_unlock($1::int4, $2::int4)", 2, v, err, errlen);
        if (rv != SW_OK)
            return rv;
        set_owned(c, p, false);
        metric_set(c->parts[p].m_lag, -1);
        owned--;
        LOG(LOG_INFO, "BUS-RELEASE", "consumer %s gives partition %u back (%ld members share %u)",
            c->name, p, members, c->nparts);
    }
    for (uint32_t p = 0; p < c->nparts && owned < target; p++) {
        bool got;
        if (c->parts[p].owned)
            continue;
        sw_err rv = claim(c, p, &got, err, errlen);
        if (rv != SW_OK)
            return rv;
        if (got) {
            owned++;
            LOG(LOG_INFO, "BUS-CLAIM", "consumer %s owns partition %u", c->name, p);
        }
    }
    metric_add(c->m_owned, (int64_t)owned - atomic_exchange(&c->owned, owned));
    sw_err rrv = replay_parked(c, err, errlen);
    if (rrv == SW_EDBDOWN)
        return rrv;
    /* The group's parked events still waiting for an operator (the same on every replica). */
    r = PQexecParams(db,
                     "SELECT count(*) FROM bus.dead_letters WHERE consumer = $1 AND "
                     "replayed_at IS NULL",
                     1, NULL, (const char *const[]){c->name}, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        metric_set(c->m_parked_waiting, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
    PQclear(r);
    /*
     * Lag: events of each owned partition not handled yet, counted up to
     * BUS_LAG_MAX, every BUS_LAG_EVERY_MS.  (It was counted whole, at each
     * rebalance, every second: the count reads the backlog, in the
     * consumer's own session, when it is furthest behind.  Escalation let
     * fall behind by a few thousand events a partition spent 0.8 ms a
     * count, 3.1 s of the database's time in a 20 s run; BENCHMARKS.md,
     * session 42.)  The window floor is never past its top, so "txid >=
     * top OR (txid >= floor AND seq > last)" is one range of the index
     * from the floor.
     */
    long long now = db_now_ms();
    bool count_lag = now >= c->next_lag;
    if (count_lag)
        c->next_lag = now + BUS_LAG_EVERY_MS;
    for (uint32_t p = 0; count_lag && p < c->nparts; p++) {
        struct part *pt = &c->parts[p];
        if (!pt->owned)
            continue;
        char ps[12], last[24];
        snprintf(ps, sizeof(ps), "%u", p);
        snprintf(last, sizeof(last), "%lld", (long long)pt->last);
        const char *v[] = {ps, pt->floor, pt->top, last};
        r = PQexecParams(db,
                         "SELECT count(*) FROM (SELECT FROM bus.events WHERE partition = $1::int "
                         "AND txid >= $2::xid8 AND (txid >= $3::xid8 OR seq > $4::bigint) "
                         "LIMIT " BUS_STR(BUS_LAG_MAX) ") s",
                         4, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            metric_set(pt->m_lag, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
        PQclear(r);
    }
    return SW_OK;
}

static long long backoff_ms(int attempts)
{
    long long ms = 100LL << (attempts < 6 ? attempts : 6);
    return ms > 5000 ? 5000 : ms;
}

static sw_err park(struct bus_consumer *c, uint32_t p, struct part *w, int64_t seq,
                   const char *event_id, const char *why, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    char ps[12], ss[24], at[12];
    snprintf(ps, sizeof(ps), "%u", p);
    snprintf(ss, sizeof(ss), "%lld", (long long)seq);
    snprintf(at, sizeof(at), "%d", w->attempts);
    const char *d[] = {c->name, ps, ss, event_id, at, why};
    const char *cur[] = {c->name, ps, w->floor, w->top, ss};
    sw_err rv = exec1(db, "BEGIN", 0, NULL, err, errlen);
    if (rv == SW_OK)
        rv = exec1(db,
                   "INSERT INTO bus.dead_letters (consumer, partition, seq, event_id, attempts, "
                   "last_error) VALUES ($1, $2::int, $3::bigint, $4::uuid, $5::int, left($6, "
                   "10000))",
                   6, d, err, errlen);
    if (rv == SW_OK)
        rv = exec1(db, CURSOR_INSERT "($1, $2::int, $3::xid8, $4::xid8, $5::bigint)" CURSOR_UPSERT,
                   5, cur, err, errlen);
    if (rv == SW_OK)
        rv = exec1(db, "COMMIT", 0, NULL, err, errlen);
    if (rv != SW_OK) {
        rollback(db);
        return rv;
    }
    w->last = seq;
    metric_add(c->m_parked, 1);
    LOG(LOG_WARN, "BUS-PARKED",
        "consumer %s parked event %s (partition %u, seq %lld) after %d attempts: %s", c->name,
        event_id, p, (long long)seq, w->attempts, why);
    return SW_OK;
}

/* Append "{a,b,c}" of the windows' fields for the partitions in `idx` (n of them). */
static void arr(struct buf *b, const uint32_t *ps, const struct part *w, const int *idx, int n,
                int field)
{
    buf_puts(b, "{");
    for (int j = 0; j < n; j++) {
        const struct part *x = &w[idx[j]];
        if (j > 0)
            buf_puts(b, ",");
        if (field == 0)
            buf_printf(b, "%u", ps[idx[j]]);
        else if (field == 1)
            buf_puts(b, x->floor);
        else if (field == 2)
            buf_puts(b, x->top);
        else
            buf_printf(b, "%lld", (long long)x->last);
    }
    buf_puts(b, "}");
}

/* clang-format off */
#define NEXT_WINDOWS_SQL(TYPES) \
    "SELECT f.f::text, least(s.x, greatest(coalesce(nn.nth, s.x), " \
    "(f.f::text::bigint + 1)::text::xid8))::text " \
    "FROM unnest($1::int[], $2::xid8[]) WITH ORDINALITY AS c(p, top, i) " \
    "CROSS JOIN (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) s " \
    "CROSS JOIN LATERAL (SELECT least(coalesce((SELECT min(txid) FROM bus.events " \
    "WHERE partition = c.p AND txid >= c.top " TYPES "), s.x), s.x) AS f) f " \
    "LEFT JOIN LATERAL (SELECT txid AS nth FROM bus.events WHERE partition = c.p " \
    "AND txid >= f.f ORDER BY txid OFFSET $3::int LIMIT 1) nn ON true ORDER BY c.i"
/* clang-format on */

/*
 * Move the windows of the partitions `idx` on: each starts at the smallest
 * txid past its current top that wrote an event of a wanted type, and ends
 * at xmin, or sooner: at the txid of the (batch_max + 1)th event of any
 * type, so that a window holds about one batch and reading it in seq order
 * never sorts a whole backlog (a window always holds at least one whole
 * transaction).  One query for all of them.  (Starting at the first wanted
 * event, not at the first event: a window of unwanted events only would
 * read as empty, and an empty read moves the window on again and reads
 * once more, two more statements for nothing; with the read filtering
 * types, escalation made 40% more of them.)
 */
static sw_err next_windows(struct bus_consumer *c, bool *begun, const uint32_t *ps, struct part *w,
                           const int *idx, int n, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    struct buf a0, a2;
    buf_init(&a0, 1 << 16);
    buf_init(&a2, 1 << 16);
    arr(&a0, ps, w, idx, n, 0);
    arr(&a2, ps, w, idx, n, 2);
    char off[12];
    snprintf(off, sizeof(off), "%d", c->cfg.batch_max);
    const char *v[] = {buf_cstr(&a0), buf_cstr(&a2), off, c->type_like};
    PGresult *r = tx_exec(c, db, begun,
                          c->type_like != NULL
                              ? NEXT_WINDOWS_SQL("AND txid < s.x AND type LIKE ANY ($4::text[])")
                              : NEXT_WINDOWS_SQL(""),
                          c->type_like != NULL ? 4 : 3, v, 0);
    sw_err rv = SW_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != n) {
        rv = pq_fail(db, "find the next windows", err, errlen);
    } else {
        for (int j = 0; j < n; j++) {
            struct part *x = &w[idx[j]];
            snprintf(x->floor, sizeof(x->floor), "%s", PQgetvalue(r, j, 0));
            snprintf(x->top, sizeof(x->top), "%s", PQgetvalue(r, j, 1));
            x->last = 0;
        }
    }
    PQclear(r);
    buf_free(&a0);
    buf_free(&a2);
    return rv;
}

/* clang-format off */
#define READ_SQL(TYPES) \
    "SELECT c.i::int4, e.seq, e.event_id::text, e.type, e.payload " \
    "FROM unnest($1::int[], $2::xid8[], $3::xid8[], $4::bigint[]) WITH ORDINALITY " \
    "AS c(p, f, t, l, i) CROSS JOIN LATERAL (SELECT seq, event_id, type, payload " \
    "FROM bus.events WHERE partition = c.p AND txid >= c.f AND txid < c.t AND seq > c.l " \
    TYPES "ORDER BY seq LIMIT $5::int) e ORDER BY c.i, e.seq"
/* clang-format on */

/* Read up to `limit` wanted events of each partition `idx`, in (partition order, seq). */
static sw_err read_windows(struct bus_consumer *c, bool *begun, const uint32_t *ps, struct part *w,
                           const int *idx, int n, int limit, PGresult **out, char *err,
                           size_t errlen)
{
    PGconn *db = db_conn(c->db);
    struct buf a[4];
    char lim[12];
    for (int f = 0; f < 4; f++) {
        buf_init(&a[f], 1 << 16);
        arr(&a[f], ps, w, idx, n, f);
    }
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *v[] = {buf_cstr(&a[0]), buf_cstr(&a[1]), buf_cstr(&a[2]), buf_cstr(&a[3]), lim,
                       c->type_like};
    /*
     * Only the wanted types come back: the others are most of the rows of
     * a consumer that wants few of them (routing reads one event of a
     * case's three).  A window is still read to its end, and a read of
     * fewer rows than asked still means so: the skipped rows are in the
     * same range of seqs, just not returned.
     */
    PGresult *r =
        tx_exec(c, db, begun,
                c->type_like != NULL ? READ_SQL("AND type LIKE ANY ($6::text[]) ") : READ_SQL(""),
                c->type_like != NULL ? 6 : 5, v, 1);
    for (int f = 0; f < 4; f++)
        buf_free(&a[f]);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        *out = NULL;
        return pq_fail(db, "read events", err, errlen);
    }
    *out = r;
    return SW_OK;
}

static int64_t row_seq(const PGresult *r, int i)
{
    return (int64_t)get_be((const uint8_t *)PQgetvalue(r, i, 1), 8);
}

/* Which entry of the set a row belongs to (1-based ordinality in column 0). */
static int row_k(const PGresult *r, int i)
{
    return (int)get_be((const uint8_t *)PQgetvalue(r, i, 0), 4) - 1;
}

/* After a handler failure at `seq` of partition p: retry alone later, or park it. */
static int handler_failed(struct bus_consumer *c, uint32_t p, struct part *w, int64_t seq,
                          const char *event_id, const char *herr, bool alone, char *err,
                          size_t errlen)
{
    struct part *pt = &c->parts[p];
    metric_add(c->m_failures, 1);
    if (pt->fail_seq == seq) {
        pt->attempts++;
    } else {
        pt->fail_seq = seq;
        pt->attempts = 1;
    }
    LOG(LOG_WARN, "BUS-HANDLER",
        "consumer %s: event %s (partition %u, seq %lld) failed (attempt %d): %s", c->name, event_id,
        p, (long long)seq, pt->attempts, herr);
    if (pt->attempts >= c->cfg.max_attempts && alone) {
        w->attempts = pt->attempts;
        if (park(c, p, w, seq, event_id, herr, err, errlen) != SW_OK) {
            if (PQstatus(db_conn(c->db)) == CONNECTION_BAD)
                consumer_lost(c);
            return -1;
        }
        memcpy(pt->floor, w->floor, sizeof(pt->floor));
        memcpy(pt->top, w->top, sizeof(pt->top));
        pt->last = w->last;
        pt->single = false;
        pt->attempts = 0;
        return 1;
    }
    /* Retry it alone, after a pause; the events before it go one by one. */
    pt->single = true;
    pt->next_try_ms = db_now_ms() + (alone ? backoff_ms(pt->attempts) : 0);
    return -1;
}

/*
 * Handle the next events of the partitions `ps` (np of them) in ONE
 * transaction: when busy, one commit covers up to batch_max events across
 * partitions, which is the lever for throughput and for latency alike.
 * A partition in single mode is always alone here.  Returns the number of
 * events read (handled, or skipped as not wanted: only without
 * filter_types), or -1 after an error.
 */
static int process_set(struct bus_consumer *c, const uint32_t *ps, int np, char *err, size_t errlen)
{
    PGconn *db = db_conn(c->db);
    struct part w[np];
    int idx[np], nidx = 0;
    int got[np];
    int ids[2][np]; /* the entries each read was made for: its rows' ordinality indexes these */
    PGresult *rows[2] = {NULL, NULL};
    int total = 0, handled = 0;
    bool alone = np == 1 && c->parts[ps[0]].single;
    bool begun = false; /* the transaction opened (with its first statement) */
    /* at most batch_max events per transaction, shared by the partitions in hand */
    int limit = alone ? 1 : (c->cfg.batch_max / np > 0 ? c->cfg.batch_max / np : 1);
    struct buf sql;

    buf_init(&sql, 1u << 20);
    for (int k = 0; k < np; k++) {
        w[k] = c->parts[ps[k]];
        got[k] = 0;
    }
    /* The BEGIN goes with the first statement (tx_exec); nothing read, nothing begun. */
    if (c->cfg.begun != NULL)
        c->cfg.begun(c->cfg.arg);
    /* Windows not yet chosen: choose them. */
    for (int k = 0; k < np; k++)
        if (strcmp(w[k].floor, w[k].top) == 0)
            idx[nidx++] = k;
    if (nidx > 0 && next_windows(c, &begun, ps, w, idx, nidx, err, errlen) != SW_OK)
        goto fail;
    /* Read every window; those that came back empty are done: move on and read once more. */
    for (int pass = 0; pass < 2; pass++) {
        nidx = 0;
        for (int k = 0; k < np; k++)
            if (got[k] == 0 && strcmp(w[k].floor, w[k].top) != 0)
                idx[nidx++] = k;
        if (nidx == 0)
            break;
        memcpy(ids[pass], idx, sizeof(int) * (size_t)nidx);
        if (read_windows(c, &begun, ps, w, idx, nidx, limit, &rows[pass], err, errlen) != SW_OK)
            goto fail;
        for (int i = 0; i < PQntuples(rows[pass]); i++)
            got[idx[row_k(rows[pass], i)]]++;
        if (pass == 1)
            break;
        int ndone = 0, done[np];
        for (int j = 0; j < nidx; j++) {
            int k = idx[j];
            if (got[k] == 0) {
                memcpy(w[k].floor, w[k].top, sizeof(w[k].floor)); /* window done */
                done[ndone++] = k;
            }
        }
        if (ndone == 0)
            break;
        if (next_windows(c, &begun, ps, w, done, ndone, err, errlen) != SW_OK)
            goto fail;
    }
    /* The wanted events, decoded, to the handler at once; the cursors move after. */
    int nrows = (rows[0] ? PQntuples(rows[0]) : 0) + (rows[1] ? PQntuples(rows[1]) : 0);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    Shouwen__V1__Envelope **envs = calloc((size_t)nrows + 1, sizeof(*envs));
    struct row_ref {
        int pass, i;
    } *ref = calloc((size_t)nrows + 1, sizeof(*ref));
    size_t nenv = 0, failed = 0;
    char herr[512] = "";
    sw_err hrv = SW_OK;
    if (envs == NULL || ref == NULL) {
        free(envs);
        free(ref);
        snprintf(err, errlen, "out of memory reading a batch");
        goto fail;
    }
    for (int pass = 0; hrv == SW_OK && pass < 2; pass++) {
        PGresult *r = rows[pass];
        for (int i = 0; hrv == SW_OK && r != NULL && i < PQntuples(r); i++) {
            if (!type_wanted(c, PQgetvalue(r, i, 3)))
                continue;
            ref[nenv] = (struct row_ref){pass, i};
            envs[nenv] = shouwen__v1__envelope__unpack(NULL, (size_t)PQgetlength(r, i, 4),
                                                       (const uint8_t *)PQgetvalue(r, i, 4));
            if (envs[nenv] == NULL) {
                snprintf(herr, sizeof(herr), "undecodable envelope in the outbox");
                failed = nenv;
                hrv = SW_EINVAL;
            }
            nenv++;
        }
    }
    if (hrv == SW_OK && nenv > 0)
        hrv = run_handler(c, db, (const Shouwen__V1__Envelope *const *)envs, nenv, &failed, herr,
                          sizeof(herr));
    for (size_t j = 0; j < nenv; j++)
        if (envs[j] != NULL)
            shouwen__v1__envelope__free_unpacked(envs[j], NULL);
    free(envs);
    if (hrv != SW_OK) {
        PGresult *r = rows[ref[failed].pass];
        int i = ref[failed].i, k = ids[ref[failed].pass][row_k(r, i)];
        int64_t seq = row_seq(r, i);
        char event_id[37];
        snprintf(event_id, sizeof(event_id), "%s", PQgetvalue(r, i, 2));
        free(ref);
        PQclear(rows[0]);
        PQclear(rows[1]);
        buf_free(&sql);
        if (PQpipelineStatus(db) != PQ_PIPELINE_OFF) {
            /* the handler's pipeline broke: the session is out of step, drop it */
            consumer_lost(c);
            snprintf(err, errlen, "%s", herr);
            LOG(LOG_WARN, "BUS-READ", "consumer %s: %s", c->name, err);
            return -1;
        }
        rollback(db);
        /* w[k] is still the cursor before this batch: when alone, just before this event */
        struct part pw = w[k];
        return handler_failed(c, ps[k], &pw, seq, event_id, herr, alone, err, errlen);
    }
    free(ref);
    handled = (int)nenv;
    for (int pass = 0; pass < 2; pass++) {
        PGresult *r = rows[pass];
        for (int i = 0; r != NULL && i < PQntuples(r); i++) {
            w[ids[pass][row_k(r, i)]].last = row_seq(r, i);
            total++;
        }
    }
    /* A window that gave fewer rows than asked is read to its end: close it now. */
    for (int k = 0; k < np; k++)
        if (got[k] > 0 && got[k] < limit)
            memcpy(w[k].floor, w[k].top, sizeof(w[k].floor));
    /*
     * Every moved cursor in one statement, and the COMMIT with it in one
     * round trip (the simple protocol: a failed INSERT stops the string
     * before the COMMIT).  The group's name goes in as a quoted literal;
     * the windows' ends are numbers PostgreSQL gave.
     */
    int first = 1;
    char *name = PQescapeLiteral(db, c->name, strlen(c->name));
    if (name == NULL) {
        pq_fail(db, "quote the consumer's name", err, errlen);
        goto fail;
    }
    buf_puts(&sql, CURSOR_INSERT);
    for (int k = 0; k < np; k++) {
        struct part *pt = &c->parts[ps[k]];
        if (w[k].last == pt->last && strcmp(w[k].floor, pt->floor) == 0 &&
            strcmp(w[k].top, pt->top) == 0)
            continue;
        buf_printf(&sql, "%s(%s, %u, '%s'::xid8, '%s'::xid8, %lld)", first ? "" : ",", name, ps[k],
                   w[k].floor, w[k].top, (long long)w[k].last);
        first = 0;
    }
    PQfreemem(name);
    buf_puts(&sql, CURSOR_UPSERT "; COMMIT");
    bool committed = !begun; /* nothing was read: nothing to commit */
    if (begun) {
        PGresult *cr = PQexec(db, first ? "COMMIT" : buf_cstr(&sql));
        committed = PQresultStatus(cr) == PGRES_COMMAND_OK;
        PQclear(cr);
    }
    if (!committed) {
        pq_fail(db, first ? "commit" : "move the cursors and commit", err, errlen);
        goto fail;
    }
    /* Committed: the cursors move, and the figures count. */
    if (total > 0)
        metric_add(c->m_batches, 1);
    for (int pass = 0; pass < 2; pass++) {
        PGresult *r = rows[pass];
        for (int i = 0; r != NULL && i < PQntuples(r); i++) {
            int k = ids[pass][row_k(r, i)];
            struct part *pt = &c->parts[ps[k]];
            int64_t seq = row_seq(r, i);
            c->done_seen[(uint64_t)seq % FP_SLOTS] = (uint64_t)seq;
            if (!type_wanted(c, PQgetvalue(r, i, 3))) {
                metric_add(c->m_skipped, 1);
                continue;
            }
            uint64_t *slot = &c->fp_seen[(uint64_t)seq % FP_SLOTS];
            metric_add(*slot == (uint64_t)seq ? c->m_handled_fast : c->m_recovered, 1);
            if (pt->bell_seq != 0 && (uint64_t)seq >= pt->bell_seq) {
                LOG(LOG_DEBUG, "BUS-BELL",
                    "partition %u seq %lld handled %lld ms after its doorbell", ps[k],
                    (long long)seq, db_now_ms() - pt->bell_ms);
                pt->bell_seq = 0;
            }
        }
    }
    for (int k = 0; k < np; k++) {
        struct part *pt = &c->parts[ps[k]];
        memcpy(pt->floor, w[k].floor, sizeof(pt->floor));
        memcpy(pt->top, w[k].top, sizeof(pt->top));
        pt->last = w[k].last;
        if (pt->single && pt->last >= pt->fail_seq)
            pt->single = false;
        if (pt->last >= pt->fail_seq)
            pt->attempts = 0;
        if (got[k] > 0)
            pt->dirty = true; /* more may be waiting: one more look costs one read */
    }
    PQclear(rows[0]);
    PQclear(rows[1]);
    buf_free(&sql);
    if (handled > 0 && c->cfg.committed != NULL)
        c->cfg.committed(c->cfg.arg, (size_t)handled);
    return total;
fail:
    PQclear(rows[0]);
    PQclear(rows[1]);
    buf_free(&sql);
    if (PQstatus(db) == CONNECTION_BAD || PQpipelineStatus(db) != PQ_PIPELINE_OFF)
        consumer_lost(c); /* gone, or out of step in a pipeline: a new session */
    else if (begun)
        rollback(db);
    LOG(LOG_WARN, "BUS-READ", "consumer %s: %s", c->name, err);
    return -1;
}

/*
 * What is wrong with an opened message's events, or NULL (`w`, a copy, is
 * stepped here).  The envelopes are checked for their framing, not
 * unpacked: nothing here uses them, and unpacking each one (a dozen
 * allocations) was most of a doorbell's cost in every consumer.
 */
static const char *events_fault(const struct bus_consumer *c, struct bus_wire w)
{
    while (bus_wire_next(&w)) {
        if (c->nparts > 0 && w.partition >= c->nparts)
            return "an event for a partition the bus does not have";
        if (!bus_envelope_framed(w.env, w.envlen))
            return "an undecodable envelope";
    }
    return NULL;
}

/* A doorbell: when every event in it is sound, they mark their partitions to be read. */
static void doorbell(struct bus_consumer *c, nng_msg *m)
{
    size_t len = nng_msg_len(m);
    struct bus_wire w;
    const char *fault = bus_wire_open(&w, nng_msg_body(m), len) != SW_OK ? "a malformed bus message"
                                                                         : events_fault(c, w);
    if (fault != NULL) {
        metric_add(c->m_garbage, 1);
        LOG(LOG_DEBUG, "BUS-GARBAGE", "consumer %s dropped %s (%zu bytes)", c->name, fault, len);
        return;
    }
    while (bus_wire_next(&w)) {
        uint64_t seq = w.seq;
        uint32_t part = w.partition;
        metric_add(c->m_fast, 1);
        uint64_t *slot = &c->fp_seen[seq % FP_SLOTS];
        if (*slot == seq)
            metric_add(c->m_dup, 1);
        *slot = seq;
        if (c->parts != NULL && part < c->nparts && c->parts[part].owned &&
            c->done_seen[seq % FP_SLOTS] != seq) {
            struct part *pt = &c->parts[part];
            pt->dirty = true;
            if (seq > pt->bell_seq) {
                pt->bell_seq = seq;
                pt->bell_ms = db_now_ms();
            }
        }
    }
}

/*
 * Waits at most `ms` for doorbells, then takes every one that came.  The
 * wait is poll(2) on the socket's NNG_OPT_RECVFD, not a receive with
 * NNG_OPT_RECVTIMEO: in nng 1.5.2 every receive that times out costs about
 * a millisecond of CPU in nng's aio expiry thread (it spins to the
 * millisecond's end), and a consumer waits so dozens of times a second,
 * idle or busy (1-3% of a core each in make bench, BENCHMARKS.md).
 */
static void wait_doorbells(struct bus_consumer *c, int ms)
{
    nng_msg *m;
    if (ms > 0) {
        struct pollfd p = {.fd = c->sub_fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            return; /* nothing came (or a signal): the caller looks again */
    }
    for (int i = 0; i < 100000 && nng_recvmsg(c->sub, &m, NNG_FLAG_NONBLOCK) == 0; i++) {
        doorbell(c, m);
        nng_msg_free(m);
    }
}

static void *consumer_main(void *arg)
{
    struct bus_consumer *c = arg;
    char err[1024];
    bus_self = c;
    while (!atomic_load(&c->stop)) {
        long long now = db_now_ms();
        if (db_tick(c->db, false, consumer_stopping) != SW_OK) {
            wait_doorbells(c, 100);
            continue;
        }
        if (!c->member && consumer_join(c, err, sizeof(err)) != SW_OK) {
            LOG(LOG_WARN, "BUS-JOIN", "consumer %s could not join its group: %s", c->name, err);
            consumer_lost(c);
            continue;
        }
        if (now >= c->next_rebalance) {
            if (rebalance(c, err, sizeof(err)) != SW_OK) {
                LOG(LOG_WARN, "BUS-REBALANCE", "consumer %s: %s", c->name, err);
                consumer_lost(c);
                continue;
            }
            c->next_rebalance = now + c->cfg.rebalance_ms;
        }
        bool catchup = now >= c->next_catchup;
        if (catchup)
            c->next_catchup = now + c->cfg.catchup_ms;
        int did = 0;
        bool bell = false, full = false;
        uint32_t set[c->nparts > 0 ? c->nparts : 1];
        int nset = 0;
        for (uint32_t p = 0; c->member && p < c->nparts && !atomic_load(&c->stop); p++) {
            struct part *pt = &c->parts[p];
            if (!pt->owned || (!pt->dirty && !catchup) || now < pt->next_try_ms)
                continue;
            pt->dirty = false;
            if (pt->single) {
                int n = process_set(c, &p, 1, err, sizeof(err));
                if (n == 0)
                    metric_add(c->m_empty, 1);
                if (n > 0) {
                    did += n;
                    pt->dirty = true;
                }
            } else {
                set[nset++] = p;
            }
        }
        /* The busy partitions together, batch_max events per transaction. */
        int first = 0;
        while (c->member && nset > 0 && first < nset && !atomic_load(&c->stop)) {
            long long t_start = db_now_ms();
            int n = process_set(c, set + first, nset - first, err, sizeof(err));
            LOG(LOG_DEBUG, "BUS-BATCH", "consumer %s: %d partitions, %d events, %lld ms", c->name,
                nset - first, n, db_now_ms() - t_start);
            if (n < 0)
                for (int k = first; k < nset; k++)
                    c->parts[set[k]].dirty = true; /* rolled back with the failure */
            if (n == 0)
                metric_add(c->m_empty, 1);
            if (n <= 0)
                break;
            did += n;
            if (n < c->cfg.batch_max)
                break;
            full = true;
            first++; /* a full batch: the rest go in the next transaction, fairly */
        }
        for (uint32_t p = 0; c->member && p < c->nparts; p++) {
            struct part *pt = &c->parts[p];
            /*
             * A doorbell's event can be committed yet not final for a moment
             * (an older transaction is still open): look again shortly, for
             * a second at most; after that the periodic catch-up has it.
             */
            if (pt->owned && pt->bell_seq != 0) {
                if (now - pt->bell_ms < 1000) {
                    pt->dirty = true;
                    bell = true;
                } else {
                    pt->bell_seq = 0;
                }
            }
        }
        /*
         * While writers' transactions overlap, a doorbell's event is often
         * not final for a few milliseconds, and a look every millisecond
         * found nothing again and again (notification, which keeps up,
         * made 115 empty reads a second in make bench, and nng's timer
         * thread spun on each 1 ms wait): the wait doubles while looks
         * find nothing.
         */
        if (did > 0 || !bell)
            c->bell_wait_ms = 1;
        int wait = did > 0 ? 0 : bell ? c->bell_wait_ms : 50;
        if (did == 0 && bell && c->bell_wait_ms < BELL_WAIT_MAX)
            c->bell_wait_ms *= 2;
        /*
         * A busy consumer's next batch starts batch_wait_ms after this one
         * began, not at once, so that it holds what came in meanwhile.  Every
         * transaction pays the same statements (the windows, the cursors,
         * the handler's own, the commit) however few events it carries;
         * under load, fewer and larger batches cost less per event
         * (BENCHMARKS.md).
         *
         * Busy means that the events which came in while this batch was
         * applied, what the next batch would hold if it began at once, are
         * BUS_WAIT_FROM or more: this batch's events over the time since
         * the last look that read any began, times how long this batch
         * took.  Not the size of the batch itself: after a wait a batch is
         * large because of the wait, and a consumer that keeps up easily
         * would go on waiting for ever once a burst had made it wait (at
         * 1,000 cases a second, routing's registered-to-routed p99 went
         * from 5 ms to 42 ms).  A quiet consumer and a full batch go
         * straight on; the wait ends early on stop.
         */
        long long took = db_now_ms() - now;
        long long span = now - c->last_look_ms;
        if (did > 0)
            c->last_look_ms = now; /* it read everything final until now */
        bool busy = did > 0 && !full && c->cfg.batch_wait_ms > 0 &&
                    (long long)did * took >= (long long)BUS_WAIT_FROM * (span > 0 ? span : 1);
        if (busy) {
            long long until = now + c->cfg.batch_wait_ms, left;
            while (!atomic_load(&c->stop) && (left = until - db_now_ms()) > 0)
                wait_doorbells(c, (int)left);
        } else {
            wait_doorbells(c, wait);
        }
    }
    if (db_conn(c->db) != NULL)
        db_reset(c->db); /* closing the session releases every lock */
    return NULL;
}

static char **dup_list(const char *const *list, size_t *n)
{
    size_t k = 0;
    while (list != NULL && list[k] != NULL)
        k++;
    char **out = calloc(k + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < k; i++) {
        out[i] = strdup(list[i]);
        if (out[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    *n = k;
    return out;
}

/*
 * The types as a text[] literal of LIKE patterns, each a prefix: "_", "%"
 * and "\\" escaped (LIKE's escape is the backslash), then quoted as array
 * elements.  NULL with *ok set when there are no types (every type is
 * wanted); NULL with *ok clear when out of memory.
 */
static char *like_array(char *const *types, size_t n, bool *ok)
{
    *ok = true;
    if (n == 0)
        return NULL;
    struct buf a, pat;
    buf_init(&a, 1 << 16);
    buf_init(&pat, 1 << 12);
    sw_err rv = buf_puts(&a, "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        buf_reset(&pat);
        for (const char *p = types[i]; rv == SW_OK && *p; p++) {
            if (*p == '_' || *p == '%' || *p == '\\')
                rv = buf_puts(&pat, "\\");
            if (rv == SW_OK)
                rv = buf_append(&pat, p, 1);
        }
        rv = rv ? rv : buf_puts(&pat, "%");
        rv = rv ? rv : buf_pg_elem(&a, i == 0, buf_cstr(&pat));
    }
    rv = rv ? rv : buf_puts(&a, "}");
    char *out = rv == SW_OK ? strdup(buf_cstr(&a)) : NULL;
    buf_free(&a);
    buf_free(&pat);
    *ok = out != NULL;
    return out;
}

static void free_list(char **list)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

static void consumer_free(struct bus_consumer *c)
{
    if (c == NULL)
        return;
    nng_close(c->sub);
    db_close(c->db);
    free(c->parts);
    free(c->fp_seen);
    free(c->done_seen);
    free_list(c->types);
    free(c->type_like);
    free_list(c->urls);
    free(c->name);
    free(c->db_url);
    free(c);
}

sw_err bus_consumer_start(struct bus_consumer **out, const struct bus_consumer_config *cfg,
                          char *err, size_t errlen)
{
    struct bus_consumer *c = calloc(1, sizeof(*c));
    size_t nurls = 0;
    int rv;
    char labels[160];
    if (c == NULL)
        goto nomem;
    if (cfg->name == NULL || cfg->name[0] == '\0' || strlen(cfg->name) > 100 ||
        strspn(cfg->name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(cfg->name)) {
        snprintf(err, errlen, "bad consumer name \"%s\": expected 1-100 of a-z 0-9 _ . -",
                 cfg->name ? cfg->name : "");
        free(c);
        return SW_EINVAL;
    }
    if ((cfg->handler == NULL) == (cfg->batch == NULL)) {
        snprintf(err, errlen, "consumer %s: give a handler or a batch handler, not %s", cfg->name,
                 cfg->handler == NULL ? "neither" : "both");
        free(c);
        return SW_EINVAL;
    }
    c->cfg = *cfg;
    if (c->cfg.batch_max <= 0)
        c->cfg.batch_max = 500;
    if (c->cfg.max_attempts <= 0)
        c->cfg.max_attempts = 5;
    if (c->cfg.catchup_ms <= 0)
        c->cfg.catchup_ms = 500;
    if (c->cfg.rebalance_ms <= 0)
        c->cfg.rebalance_ms = 1000;
    if (c->cfg.recv_buf <= 0)
        c->cfg.recv_buf = 4096;
    c->name = strdup(cfg->name);
    c->db_url = strdup(cfg->db_url);
    c->types = dup_list(cfg->types, &c->ntypes);
    bool like_ok = false;
    if (c->types != NULL)
        c->type_like = like_array(c->types, c->cfg.filter_types ? c->ntypes : 0, &like_ok);
    c->urls = dup_list(cfg->sub_urls, &nurls);
    c->fp_seen = calloc(FP_SLOTS, sizeof(*c->fp_seen));
    c->done_seen = calloc(FP_SLOTS, sizeof(*c->done_seen));
    c->bell_wait_ms = 1;
    if (c->name == NULL || c->db_url == NULL || c->types == NULL || !like_ok || c->urls == NULL ||
        c->fp_seen == NULL || c->done_seen == NULL)
        goto nomem;
    if (db_open(&c->db, c->db_url, c->name, 5000) != SW_OK)
        goto nomem;
    snprintf(labels, sizeof(labels), "consumer=\"%s\"", c->name);
    c->m_fast = metrics_get(METRIC_COUNTER, "shouwen_bus_fastpath_received_total",
                            "Valid doorbells received on the nng fast path", labels);
    c->m_garbage = metrics_get(METRIC_COUNTER, "shouwen_bus_garbage_total",
                               "Malformed bus messages dropped", labels);
    c->m_dup = metrics_get(METRIC_COUNTER, "shouwen_bus_duplicates_ignored_total",
                           "Doorbells for an event already seen", labels);
    c->m_handled_fast = metrics_get(METRIC_COUNTER, "shouwen_bus_handled_fast_total",
                                    "Events handled after their doorbell arrived", labels);
    c->m_recovered = metrics_get(METRIC_COUNTER, "shouwen_bus_recovered_total",
                                 "Events handled by catch-up, their doorbell lost", labels);
    c->m_empty = metrics_get(METRIC_COUNTER, "shouwen_bus_empty_reads_total",
                             "Reads of the outbox that found no event", labels);
    c->m_batches = metrics_get(METRIC_COUNTER, "shouwen_bus_batches_total",
                               "Transactions committed that read events (events per batch: "
                               "handled and skipped, divided by this)",
                               labels);
    c->m_skipped = metrics_get(METRIC_COUNTER, "shouwen_bus_skipped_total",
                               "Events read and skipped, of a type not wanted (none with "
                               "filter_types: the reads leave them in the table)",
                               labels);
    c->m_parked = metrics_get(METRIC_COUNTER, "shouwen_bus_parked_total",
                              "Events parked in bus.dead_letters", labels);
    c->m_parked_waiting = metrics_get(
        METRIC_GAUGE, "shouwen_bus_parked_waiting",
        "Parked events of this consumer group not replayed yet (bus.dead_letters)", labels);
    c->m_failures = metrics_get(METRIC_COUNTER, "shouwen_bus_handler_failures_total",
                                "Handler failures (each rolled back)", labels);
    c->m_owned = metrics_get(METRIC_GAUGE, "shouwen_bus_partitions_owned",
                             "Partitions this replica owns", labels);

    if ((rv = nng_sub0_open(&c->sub)) != 0 ||
        (rv = nng_socket_set_size(c->sub, NNG_OPT_RECVMAXSZ, BUS_MSG_MAX)) != 0 ||
        (rv = nng_socket_set_int(c->sub, NNG_OPT_RECVBUF, c->cfg.recv_buf)) != 0 ||
        /* a publisher that restarts is found again within half a second */
        (rv = nng_socket_set_ms(c->sub, NNG_OPT_RECONNMINT, 50)) != 0 ||
        (rv = nng_socket_set_ms(c->sub, NNG_OPT_RECONNMAXT, 500)) != 0 ||
        (rv = nng_socket_get_int(c->sub, NNG_OPT_RECVFD, &c->sub_fd)) != 0) {
        snprintf(err, errlen, "could not open the subscribe socket: %s", nng_strerror(rv));
        consumer_free(c);
        return SW_ENNG;
    }
    if (c->ntypes == 0)
        rv = nng_socket_set(c->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    for (size_t i = 0; i < c->ntypes && rv == 0; i++)
        rv = nng_socket_set(c->sub, NNG_OPT_SUB_SUBSCRIBE, c->types[i], strlen(c->types[i]));
    for (size_t i = 0; i < nurls && rv == 0; i++) {
        rv = tls_dial(c->sub, c->urls[i], NNG_FLAG_NONBLOCK);
        if (rv != 0)
            snprintf(err, errlen, "could not dial %s: %s", c->urls[i], nng_strerror(rv));
    }
    if (rv != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "could not subscribe: %s", nng_strerror(rv));
        consumer_free(c);
        return SW_ENNG;
    }
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        snprintf(err, errlen, "could not start the consumer thread");
        consumer_free(c);
        return SW_ENOMEM;
    }
    c->started = true;
    *out = c;
    return SW_OK;
nomem:
    snprintf(err, errlen, "out of memory starting a consumer");
    consumer_free(c);
    return SW_ENOMEM;
}

void bus_consumer_stop(struct bus_consumer *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    if (c->started)
        pthread_join(c->thread, NULL);
    consumer_free(c);
}

int bus_consumer_owned(const struct bus_consumer *c)
{
    return atomic_load(&((struct bus_consumer *)c)->owned);
}

uint64_t bus_consumer_generation(const struct bus_consumer *c)
{
    return atomic_load(&((struct bus_consumer *)c)->generation);
}

size_t bus_consumer_partitions(const struct bus_consumer *c, uint32_t *out, size_t max)
{
    struct bus_consumer *m = (struct bus_consumer *)c;
    size_t n = 0;
    for (uint32_t w = 0; w < BUS_PARTITIONS_MAX / 64; w++) {
        uint64_t bits = atomic_load(&m->ownbits[w]);
        for (uint32_t b = 0; bits != 0 && b < 64; b++, bits >>= 1)
            if ((bits & 1) && n < max)
                out[n++] = w * 64 + b;
    }
    return n;
}
