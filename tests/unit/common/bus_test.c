/*
 * bus_test.c - the bus's pure parts: the wire layouts (one event, a
 * batch), partitioning, the ids it makes, and what the outbox accepts
 * before anything reaches the database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "bus.h"
#include "db.h"

#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>

static void test_wire_takes_one_event(void **state)
{
    (void)state;
    static const uint8_t msg[] = {'c', 'a', 's', 'e', '.', 'x', 0, 0, 0,    0,   7,
                                  0,   0,   0,   0,   0,   0,   1, 2, 0xAA, 0xBB};
    struct bus_wire w;
    assert_int_equal(bus_wire_open(&w, msg, sizeof(msg)), SW_OK);
    assert_int_equal(w.typelen, 6);
    assert_memory_equal(w.type, "case.x", 6);
    assert_int_equal(w.count, 1);
    assert_true(bus_wire_next(&w));
    assert_int_equal(w.partition, 7);
    assert_int_equal(w.seq, 258);
    assert_int_equal(w.envlen, 2);
    assert_int_equal(w.env[0], 0xAA);
    assert_false(bus_wire_next(&w));
}

/* A batch of `n` records after "case.x\0": partition 3 + i, seq 100 + i, i + 1 bytes of 0xC0 + i.
 */
static size_t batch(uint8_t *out, uint64_t count, int n)
{
    static const uint8_t head[] = {'c', 'a', 's', 'e', '.', 'x', 0, 0xFF, 0xFF, 0xFF, 0xFF};
    size_t len = sizeof(head);
    memcpy(out, head, len);
    for (int k = 7; k >= 0; k--)
        out[len++] = (uint8_t)(count >> (8 * k));
    for (int i = 0; i < n; i++) {
        const uint8_t rec[] = {0, 0, 0, (uint8_t)(3 + i),   0, 0, 0, 0,
                               0, 0, 0, (uint8_t)(100 + i), 0, 0, 0, (uint8_t)(i + 1)};
        memcpy(out + len, rec, sizeof(rec));
        len += sizeof(rec);
        memset(out + len, 0xC0 + i, (size_t)i + 1);
        len += (size_t)i + 1;
    }
    return len;
}

static void test_wire_takes_a_batch(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = batch(msg, 3, 3);
    struct bus_wire w;
    assert_int_equal(bus_wire_open(&w, msg, len), SW_OK);
    assert_int_equal(w.typelen, 6);
    assert_memory_equal(w.type, "case.x", 6);
    assert_int_equal(w.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(bus_wire_next(&w));
        assert_int_equal(w.partition, 3 + i);
        assert_int_equal(w.seq, 100 + i);
        assert_int_equal(w.envlen, i + 1);
        assert_int_equal(w.env[0], 0xC0 + i);
        assert_int_equal(w.env[i], 0xC0 + i);
    }
    assert_false(bus_wire_next(&w));
}

static void test_wire_refuses_malformed_messages(void **state)
{
    (void)state;
    struct bus_wire w;
    static const uint8_t no_nul[] = "case.registered-without-a-terminator";
    static const uint8_t empty_type[14] = {0};
    static const uint8_t short_header[] = {'c', 0, 0, 0, 0, 1, 0, 0};
    uint8_t long_type[BUS_TYPE_MAX + 20];
    memset(long_type, 'a', sizeof(long_type));
    long_type[BUS_TYPE_MAX + 1] = 0;
    assert_int_equal(bus_wire_open(&w, no_nul, sizeof(no_nul) - 1), SW_EINVAL);
    assert_int_equal(bus_wire_open(&w, empty_type, sizeof(empty_type)), SW_EINVAL);
    assert_int_equal(bus_wire_open(&w, short_header, sizeof(short_header)), SW_EINVAL);
    assert_int_equal(bus_wire_open(&w, long_type, sizeof(long_type)), SW_EINVAL);
    assert_int_equal(bus_wire_open(&w, NULL, 0), SW_EINVAL);
    assert_false(bus_wire_next(&w)); /* a refused message has no events */

    uint8_t msg[256];
    size_t len = batch(msg, 3, 3);
    assert_int_equal(bus_wire_open(&w, msg, len - 1), SW_EINVAL); /* the last record cut short */
    assert_int_equal(bus_wire_open(&w, msg, 19 + 10), SW_EINVAL); /* cut inside the first */
    assert_int_equal(bus_wire_open(&w, msg, 19 + 17), SW_EINVAL); /* only the first of three */
    len = batch(msg, 2, 3);
    assert_int_equal(bus_wire_open(&w, msg, len), SW_EINVAL); /* bytes after the last */
    len = batch(msg, 4, 3);
    assert_int_equal(bus_wire_open(&w, msg, len), SW_EINVAL); /* fewer than it counts */
    len = batch(msg, 0, 0);
    assert_int_equal(bus_wire_open(&w, msg, len), SW_EINVAL); /* a batch of nothing */
    len = batch(msg, UINT64_MAX, 1);
    assert_int_equal(bus_wire_open(&w, msg, len), SW_EINVAL); /* a count no message can hold */
    len = batch(msg, 1, 1);
    msg[len - 5] = 0xFF; /* the first record's length, far past the end */
    assert_int_equal(bus_wire_open(&w, msg, len), SW_EINVAL);
}

/*
 * A doorbell's envelopes are checked for their framing only: every real
 * envelope is framed, and bytes that are not whole protobuf fields (cut
 * short, a length past the end, a wire type proto3 has not, a varint that
 * never ends, nothing at all) are not.
 */
static void test_envelope_framing(void **state)
{
    (void)state;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    Shouwen__V1__CaseRegistered reg = SHOUWEN__V1__CASE_REGISTERED__INIT;
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    reg.subject = "a leak in the basement";
    reg.description = "water on the floor of the garage";
    actor.staff_code = "ENG-HEAD";
    env.event_id = "0b6f1a52-64c2-4a1c-9a4e-000000000001";
    env.type = "case.registered";
    env.site = "SH01";
    env.case_id = "0b6f1a52-64c2-4a1c-9a4e-000000000002";
    env.case_version = 1;
    env.partition = 7;
    env.time = INT64_C(1764000000000000);
    env.actor = &actor;
    env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED;
    env.registered = &reg;
    uint8_t buf[512];
    size_t n = shouwen__v1__envelope__get_packed_size(&env);
    assert_true(n < sizeof(buf));
    assert_int_equal(shouwen__v1__envelope__pack(&env, buf), n);
    assert_true(bus_envelope_framed(buf, n));
    /* a prefix is framed exactly when protobuf-c can unpack it: when it ends between fields */
    int framed = 0;
    for (size_t cut = 1; cut < n; cut++) {
        Shouwen__V1__Envelope *e = shouwen__v1__envelope__unpack(NULL, cut, buf);
        assert_int_equal(bus_envelope_framed(buf, cut), e != NULL);
        framed += e != NULL;
        shouwen__v1__envelope__free_unpacked(e, NULL);
    }
    assert_in_range(framed, 5, 9); /* after event_id, type, site, case_id, ..., the actor */
    assert_false(bus_envelope_framed(buf, n - 1)); /* the last field cut short */

    static const uint8_t truncated[] = "\012\044truncated"; /* 36 bytes said, 9 there */
    static const uint8_t group[] = {0x0B, 0x0C};            /* wire types 3 and 4 */
    static const uint8_t wire6[] = {0x0E, 0x00};            /* wire type 6 */
    static const uint8_t endless[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x80, 0x80, 0x01}; /* 11 bytes */
    static const uint8_t fixed64[] = {0x09, 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t fixed32[] = {0x0D, 1, 2, 3, 4};
    static const uint8_t huge_len[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 'x'};
    assert_false(bus_envelope_framed(truncated, sizeof(truncated) - 1));
    assert_false(bus_envelope_framed(group, sizeof(group)));
    assert_false(bus_envelope_framed(wire6, sizeof(wire6)));
    assert_false(bus_envelope_framed(endless, sizeof(endless)));
    assert_false(bus_envelope_framed(huge_len, sizeof(huge_len)));
    assert_false(bus_envelope_framed(buf, 0));
    assert_false(bus_envelope_framed(NULL, 0));
    assert_true(bus_envelope_framed(fixed64, sizeof(fixed64)));
    assert_false(bus_envelope_framed(fixed64, sizeof(fixed64) - 1));
    assert_true(bus_envelope_framed(fixed32, sizeof(fixed32)));
    assert_false(bus_envelope_framed(fixed32, sizeof(fixed32) - 1));
    assert_false(bus_envelope_framed((const uint8_t *)"garbage", 7)); /* 'g': wire type 7 */
}

static void test_partition_follows_the_case_then_the_event(void **state)
{
    (void)state;
    const char *c = "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f11";
    uint32_t p = bus_partition_of(c, "11111111-1111-4111-8111-111111111111", 16);
    assert_true(p < 16);
    assert_int_equal(bus_partition_of(c, "22222222-2222-4222-8222-222222222222", 16), p);
    assert_int_equal(bus_partition_of("", "22222222-2222-4222-8222-222222222222", 16),
                     bus_partition_of(NULL, "22222222-2222-4222-8222-222222222222", 16));
    assert_int_equal(bus_partition_of(c, NULL, 0), 0);
}

static sw_err add(struct bus_outbox *ob, const char *event_id, const char *case_id)
{
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    env.type = "case.registered";
    env.site = "SH01";
    env.event_id = (char *)event_id;
    env.case_id = (char *)case_id;
    return bus_outbox_add(ob, &env);
}

/* The binary COPY sends ids as 16 bytes: a malformed id must stop at the door. */
static void test_outbox_refuses_ids_that_are_not_uuids(void **state)
{
    (void)state;
    struct bus_outbox *ob = NULL;
    assert_int_equal(bus_outbox_alloc(&ob, 16), SW_OK);
    assert_int_equal(add(ob, "", ""), SW_OK); /* a new event id, no case */
    assert_int_equal(add(ob, "0B6F1A52-64C2-4A1C-9A4E-3C1D2B0E9F11", ""), SW_OK);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f11"), SW_OK);
    assert_int_equal(bus_outbox_len(ob), 3);
    assert_int_equal(add(ob, "not-a-uuid", ""), SW_EINVAL);
    assert_int_equal(add(ob, "0b6f1a52x64c2-4a1c-9a4e-3c1d2b0e9f11", ""), SW_EINVAL);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f1g"), SW_EINVAL);
    assert_int_equal(add(ob, "", "0b6f1a52-64c2-4a1c-9a4e-3c1d2b0e9f1"), SW_EINVAL);
    assert_int_equal(bus_outbox_len(ob), 3); /* nothing refused was staged */
    bus_outbox_clear(ob);
    assert_int_equal(bus_outbox_len(ob), 0);
    bus_outbox_free(ob);
}

/*
 * What bus_outbox_publish puts on a real socket (nng, inproc://): the
 * outbox is filled and its INSERTs answered as PostgreSQL would (results
 * made with libpq, the seqs 1000 on), then published to a subscriber.
 */
struct published {
    nng_socket pub, sub;
    _Atomic int piped;
};

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    (void)ev;
    atomic_store(&((struct published *)arg)->piped, 1);
}

static void open_pair(struct published *t, const char *url, const char *subscribe)
{
    atomic_store(&t->piped, 0);
    assert_int_equal(nng_pub0_open(&t->pub), 0);
    assert_int_equal(nng_pipe_notify(t->pub, NNG_PIPE_EV_ADD_POST, on_pipe, t), 0);
    assert_int_equal(nng_listen(t->pub, url, NULL, 0), 0);
    assert_int_equal(nng_sub0_open(&t->sub), 0);
    assert_int_equal(nng_socket_set(t->sub, NNG_OPT_SUB_SUBSCRIBE, subscribe, strlen(subscribe)),
                     0);
    assert_int_equal(nng_socket_set_ms(t->sub, NNG_OPT_RECVTIMEO, 5000), 0);
    assert_int_equal(nng_socket_set_size(t->sub, NNG_OPT_RECVMAXSZ, BUS_MSG_MAX), 0);
    assert_int_equal(nng_dial(t->sub, url, NULL, 0), 0);
    for (int i = 0; i < 5000 && !atomic_load(&t->piped); i++)
        usleep(1000);
    assert_true(atomic_load(&t->piped));
}

/* Stage `n` events of types[i], each with `pad` bytes of description; write them "at" seq 1000 on.
 */
static struct bus_outbox *written(const char *const *types, int n, size_t pad)
{
    struct bus_outbox *ob = NULL;
    assert_int_equal(bus_outbox_alloc(&ob, 16), SW_OK);
    char *text = malloc(pad + 1);
    assert_non_null(text);
    memset(text, 'x', pad);
    text[pad] = '\0';
    char ids[n][37];
    for (int i = 0; i < n; i++) {
        Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
        Shouwen__V1__CaseRegistered reg = SHOUWEN__V1__CASE_REGISTERED__INIT;
        reg.description = text;
        env.type = (char *)types[i];
        env.site = "SH01";
        snprintf(ids[i], sizeof(ids[i]), "0b6f1a52-64c2-4a1c-9a4e-%012d", i);
        env.event_id = ids[i];
        env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_REGISTERED;
        env.registered = &reg;
        assert_int_equal(bus_outbox_add(ob, &env), SW_OK);
    }
    free(text);
    struct db_query qs[8];
    int nq = bus_outbox_queries(ob, qs, 8);
    assert_true(nq >= 1);
    PGresult *rs[8];
    int row = 0;
    for (int q = 0; q < nq; q++) {
        rs[q] = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
        PGresAttDesc cols[2] = {{.name = "event_id", .typid = 25, .typlen = -1, .atttypmod = -1},
                                {.name = "seq", .typid = 20, .typlen = 8, .atttypmod = -1}};
        assert_int_equal(PQsetResultAttrs(rs[q], 2, cols), 1);
        for (int r = 0; r < qs[q].n / 6; r++, row++) { /* six parameters per event */
            char seq[24];
            snprintf(seq, sizeof(seq), "%d", 1000 + row);
            assert_int_equal(PQsetvalue(rs[q], r, 0, ids[row], 36), 1);
            assert_int_equal(PQsetvalue(rs[q], r, 1, seq, (int)strlen(seq)), 1);
        }
    }
    assert_int_equal(row, n);
    char err[256];
    assert_int_equal(bus_outbox_written(ob, rs, nq, err, sizeof(err)), SW_OK);
    for (int q = 0; q < nq; q++)
        PQclear(rs[q]);
    return ob;
}

/* Receive one message; open it; check its type and count; return its seqs in `seqs`. */
static void receive(struct published *t, const char *type, size_t count, uint64_t *seqs)
{
    nng_msg *m = NULL;
    assert_int_equal(nng_recvmsg(t->sub, &m, 0), 0);
    struct bus_wire w;
    assert_int_equal(bus_wire_open(&w, nng_msg_body(m), nng_msg_len(m)), SW_OK);
    assert_int_equal(w.typelen, strlen(type));
    assert_memory_equal(w.type, type, w.typelen);
    assert_int_equal(w.count, count);
    for (size_t i = 0; bus_wire_next(&w); i++) {
        Shouwen__V1__Envelope *e = shouwen__v1__envelope__unpack(NULL, w.envlen, w.env);
        assert_non_null(e);
        assert_string_equal(e->type, type);
        assert_int_equal(w.partition, bus_partition_of(NULL, e->event_id, 16));
        seqs[i] = w.seq;
        shouwen__v1__envelope__free_unpacked(e, NULL);
    }
    nng_msg_free(m);
}

static void test_publish_rings_once_per_type(void **state)
{
    (void)state;
    static const char *const types[] = {"case.a", "case.b", "case.a", "case.c", "case.a", "case.b"};
    struct published t;
    open_pair(&t, "inproc://bus_test_types", "");
    struct bus_outbox *ob = written(types, 6, 10);
    assert_int_equal(bus_outbox_publish(ob, t.pub), 6);
    assert_int_equal(bus_outbox_len(ob), 0);
    uint64_t seqs[6] = {0};
    receive(&t, "case.a", 3, seqs); /* a batch, in the order written */
    assert_int_equal(seqs[0], 1000);
    assert_int_equal(seqs[1], 1002);
    assert_int_equal(seqs[2], 1004);
    receive(&t, "case.b", 2, seqs);
    assert_int_equal(seqs[0], 1001);
    assert_int_equal(seqs[1], 1005);
    receive(&t, "case.c", 1, seqs); /* alone: the one-event layout */
    assert_int_equal(seqs[0], 1003);
    nng_msg *m = NULL;
    assert_int_equal(nng_recvmsg(t.sub, &m, NNG_FLAG_NONBLOCK), NNG_EAGAIN); /* nothing more */
    bus_outbox_free(ob);
    nng_close(t.sub);
    nng_close(t.pub);

    /* a subscriber by type prefix gets that type's batch, and nothing else */
    open_pair(&t, "inproc://bus_test_prefix", "case.b");
    ob = written(types, 6, 10);
    assert_int_equal(bus_outbox_publish(ob, t.pub), 6);
    receive(&t, "case.b", 2, seqs);
    assert_int_equal(nng_socket_set_ms(t.sub, NNG_OPT_RECVTIMEO, 200), 0);
    assert_int_equal(nng_recvmsg(t.sub, &m, 0), NNG_ETIMEDOUT);
    bus_outbox_free(ob);
    nng_close(t.sub);
    nng_close(t.pub);
}

static void test_publish_splits_a_large_batch(void **state)
{
    (void)state;
    const char *types[40];
    for (int i = 0; i < 40; i++)
        types[i] = "case.registered";
    struct published t;
    open_pair(&t, "inproc://bus_test_split", "");
    /* 40 events of about 10 KB: more than BUS_BATCH_BYTES (256 KiB) in all */
    struct bus_outbox *ob = written(types, 40, 10000);
    assert_int_equal(bus_outbox_publish(ob, t.pub), 40);
    size_t got = 0;
    uint64_t next = 1000;
    int messages = 0;
    while (got < 40) {
        nng_msg *m = NULL;
        assert_int_equal(nng_recvmsg(t.sub, &m, 0), 0);
        assert_true(nng_msg_len(m) <= BUS_BATCH_BYTES + 64);
        struct bus_wire w;
        assert_int_equal(bus_wire_open(&w, nng_msg_body(m), nng_msg_len(m)), SW_OK);
        assert_true(w.count > 1);
        while (bus_wire_next(&w))
            assert_int_equal(w.seq, next++); /* every event once, in order */
        got += w.count;
        messages++;
        nng_msg_free(m);
    }
    assert_int_equal(got, 40);
    assert_int_equal(messages, 2);
    bus_outbox_free(ob);
    nng_close(t.sub);
    nng_close(t.pub);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

/*
 * The ids the services make are version 7: well formed, their first 48
 * bits the time they were made, in the order they were made (time, then
 * the fraction of the millisecond), and never the same twice.
 */
static void test_uuid_v7_is_time_ordered(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char ids[N][37];
    uint64_t before = now_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(bus_uuid_v7(ids[i]), SW_OK);
    uint64_t after = now_ms();
    for (int i = 0; i < N; i++) {
        const char *u = ids[i];
        assert_int_equal(strlen(u), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                assert_int_equal(u[k], '-');
            else
                assert_non_null(strchr("0123456789abcdef", u[k]));
        }
        assert_int_equal(u[14], '7');           /* the version */
        assert_non_null(strchr("89ab", u[19])); /* the variant */
        char hex[13];
        memcpy(hex, u, 8);
        memcpy(hex + 8, u + 9, 4);
        hex[12] = '\0';
        uint64_t ms = strtoull(hex, NULL, 16);
        assert_true(ms >= before && ms <= after);
        /* time and fraction (the first 18 characters) never go back */
        if (i > 0)
            assert_true(strncmp(ids[i - 1], u, 18) <= 0);
    }
    qsort(ids, N, sizeof(ids[0]), by_text);
    for (int i = 1; i < N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_takes_one_event),
        cmocka_unit_test(test_wire_takes_a_batch),
        cmocka_unit_test(test_wire_refuses_malformed_messages),
        cmocka_unit_test(test_envelope_framing),
        cmocka_unit_test(test_partition_follows_the_case_then_the_event),
        cmocka_unit_test(test_outbox_refuses_ids_that_are_not_uuids),
        cmocka_unit_test(test_uuid_v7_is_time_ordered),
        cmocka_unit_test(test_publish_rings_once_per_type),
        cmocka_unit_test(test_publish_splits_a_large_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
