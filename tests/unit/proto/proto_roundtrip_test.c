/*
 * proto_roundtrip_test.c - every message in proto/ survives pack, unpack and
 * re-pack byte for byte, and unpacking hostile bytes never crashes.
 *
 * The test is generic: it fills each message from its protobuf-c descriptor
 * (every scalar type, strings, bytes, enums, repeated fields with two
 * elements, nested messages, one member of each oneof per iteration so that
 * every member is exercised), so a field added to a .proto is tested without
 * touching this file. A message added to a .proto must be added to
 * all_messages[] below; the reachability test fails until it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <protobuf-c/protobuf-c.h>

#include "shouwen/v1/commands.pb-c.h"
#include "shouwen/v1/common.pb-c.h"
#include "shouwen/v1/envelope.pb-c.h"
#include "shouwen/v1/events.pb-c.h"
#include "shouwen/v1/intake.pb-c.h"

/*
 * The number of `message` definitions in the files of proto/shouwen/v1/.
 * When you add or remove a message, update this count AND all_messages[]
 * below; `cat proto/shouwen/v1/[a-z]*.proto | grep -c '^message'` counts them.
 */
#define EXPECTED_MESSAGE_COUNT 54

/* Nested messages deeper than this are left unset (guards recursive types). */
#define MAX_DEPTH 8

static const ProtobufCMessageDescriptor *const all_messages[] = {
    /* common.proto (3) */
    &shouwen__v1__actor__descriptor,
    &shouwen__v1__customer__descriptor,
    &shouwen__v1__handoff__descriptor,
    /* commands.proto (21) */
    &shouwen__v1__register_case__descriptor,
    &shouwen__v1__resolve_case_on_spot__descriptor,
    &shouwen__v1__assign_case__descriptor,
    &shouwen__v1__transfer_case__descriptor,
    &shouwen__v1__accept_case__descriptor,
    &shouwen__v1__return_case__descriptor,
    &shouwen__v1__forward_case__descriptor,
    &shouwen__v1__record_first_contact__descriptor,
    &shouwen__v1__record_progress__descriptor,
    &shouwen__v1__resolve_case__descriptor,
    &shouwen__v1__record_callback__descriptor,
    &shouwen__v1__reopen_case__descriptor,
    &shouwen__v1__escalate_case__descriptor,
    &shouwen__v1__designate_lead_department__descriptor,
    &shouwen__v1__refer_case_out__descriptor,
    &shouwen__v1__close_case_unresolvable__descriptor,
    &shouwen__v1__wait_for_party__descriptor,
    &shouwen__v1__resume_case__descriptor,
    &shouwen__v1__request_leader_callback__descriptor,
    &shouwen__v1__acknowledge_emergency__descriptor,
    &shouwen__v1__command__descriptor,
    /* events.proto (26) */
    &shouwen__v1__case_registered__descriptor,
    &shouwen__v1__case_resolved_on_spot__descriptor,
    &shouwen__v1__case_assigned__descriptor,
    &shouwen__v1__case_transferred__descriptor,
    &shouwen__v1__case_accepted__descriptor,
    &shouwen__v1__case_returned__descriptor,
    &shouwen__v1__case_forwarded__descriptor,
    &shouwen__v1__case_first_contact__descriptor,
    &shouwen__v1__case_progress__descriptor,
    &shouwen__v1__case_resolved__descriptor,
    &shouwen__v1__case_callback__descriptor,
    &shouwen__v1__case_reopened__descriptor,
    &shouwen__v1__case_escalated__descriptor,
    &shouwen__v1__case_lead_designated__descriptor,
    &shouwen__v1__case_referred_out__descriptor,
    &shouwen__v1__case_closed_unresolvable__descriptor,
    &shouwen__v1__case_waiting__descriptor,
    &shouwen__v1__case_resumed__descriptor,
    &shouwen__v1__case_leader_callback_requested__descriptor,
    &shouwen__v1__case_deadline_breached__descriptor,
    &shouwen__v1__violation_recorded__descriptor,
    &shouwen__v1__emergency_alerted__descriptor,
    &shouwen__v1__emergency_acknowledged__descriptor,
    &shouwen__v1__notification_delivered__descriptor,
    &shouwen__v1__notification_failed__descriptor,
    &shouwen__v1__audit_verified__descriptor,
    /* envelope.proto (1) */
    &shouwen__v1__envelope__descriptor,
    /* intake.proto (3) */
    &shouwen__v1__submit_case__descriptor,
    &shouwen__v1__error__descriptor,
    &shouwen__v1__submit_case_reply__descriptor,
};

#define N_MESSAGES (sizeof(all_messages) / sizeof(all_messages[0]))

/* The messages that travel on their own; everything else hangs off them. */
static const ProtobufCMessageDescriptor *const roots[] = {
    &shouwen__v1__envelope__descriptor,
    &shouwen__v1__command__descriptor,
    &shouwen__v1__submit_case__descriptor,
    &shouwen__v1__submit_case_reply__descriptor,
};

static bool in_all_messages(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < N_MESSAGES; i++)
        if (all_messages[i] == d)
            return true;
    return false;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    assert_non_null(p);
    return p;
}

/* ---- descriptor helpers ---------------------------------------------------------------- */

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

static void *at(void *msg, unsigned offset)
{
    return (char *)msg + offset;
}

static const void *cat(const void *msg, unsigned offset)
{
    return (const char *)msg + offset;
}

static uint32_t oneof_case(const void *msg, const ProtobufCFieldDescriptor *f)
{
    uint32_t c;
    memcpy(&c, cat(msg, f->quantifier_offset), sizeof c);
    return c;
}

/* Index of oneof member f within its oneof, and the oneof's size. */
static void oneof_position(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                           unsigned *index, unsigned *size)
{
    *index = 0;
    *size = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &d->fields[i];
        if (!is_oneof(g) || g->quantifier_offset != f->quantifier_offset)
            continue;
        if (g == f)
            *index = *size;
        (*size)++;
    }
}

/* Iterations needed so that every member of every oneof in d is set once. */
static unsigned iterations_for(const ProtobufCMessageDescriptor *d)
{
    unsigned n = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        unsigned index, size;
        if (!is_oneof(&d->fields[i]))
            continue;
        oneof_position(d, &d->fields[i], &index, &size);
        if (size > n)
            n = size;
    }
    return n;
}

/* Is field f present in msg (for oneof members: is it the selected one)? */
static bool field_selected(const void *msg, const ProtobufCFieldDescriptor *f)
{
    return !is_oneof(f) || oneof_case(msg, f) == f->id;
}

static size_t element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    fail_msg("unknown protobuf-c type %d", (int)type);
    return 0;
}

/* ---- building messages by hand ----------------------------------------------------------- */

static ProtobufCMessage *build(const ProtobufCMessageDescriptor *d, unsigned depth, unsigned iter);

/* Writes one non-default value of f's type into slot; `n` varies it. */
static void fill_value(const ProtobufCFieldDescriptor *f, void *slot, unsigned depth, unsigned iter,
                       unsigned n)
{
    char text[160];
    snprintf(text, sizeof text, "%s-%u-%u-\xe9\xa6\x96\xe9\x97\xae", f->name, iter, n);

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t v = (n % 2 == 0) ? -123456 - (int32_t)n : 7 + (int32_t)n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v = 4000000000u - n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = (n % 2 == 0) ? INT64_C(1795305600123456) + n : -INT64_C(9000000000) - n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = UINT64_C(18000000000000000000) + n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = 1.5f + (float)n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = -2.25 - (double)n;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = 1;
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        assert_true(e->n_values >= 2); /* _UNSPECIFIED and at least one real value */
        int v = 0;
        /* A valid non-zero value, different across iterations. */
        for (unsigned k = 0; k < e->n_values && v == 0; k++)
            v = e->values[(k + iter + n) % e->n_values].value;
        assert_int_not_equal(v, 0);
        memcpy(slot, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s = strdup(text);
        assert_non_null(s);
        memcpy(slot, &s, sizeof s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        b.len = 5 + n;
        b.data = xcalloc(1, b.len);
        for (size_t k = 0; k < b.len; k++)
            b.data[k] = (uint8_t)(0xf0 + k); /* includes bytes that are not UTF-8 */
        memcpy(slot, &b, sizeof b);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m = build(f->descriptor, depth + 1, iter);
        memcpy(slot, &m, sizeof m); // NOLINT(bugprone-sizeof-expression): the pointer itself
        break;
    }
    }
}

static void fill_field(const ProtobufCMessageDescriptor *d, void *msg,
                       const ProtobufCFieldDescriptor *f, unsigned depth, unsigned iter)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 >= MAX_DEPTH)
        return; /* leave it NULL: deep enough */

    if (is_oneof(f)) {
        unsigned index, size;
        oneof_position(d, f, &index, &size);
        if (index != iter % size)
            return;
        uint32_t c = f->id;
        memcpy(at(msg, f->quantifier_offset), &c, sizeof c);
        fill_value(f, at(msg, f->offset), depth, iter, 0);
        return;
    }

    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = 2;
        size_t es = element_size(f->type);
        char *array = xcalloc(n, es);
        for (size_t k = 0; k < n; k++)
            fill_value(f, array + k * es, depth, iter, (unsigned)k);
        memcpy(at(msg, f->quantifier_offset), &n, sizeof n);
        memcpy(at(msg, f->offset), &array, sizeof array);
        return;
    }

    /* proto2-style `optional` scalars keep a has_ flag; set it. */
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
        protobuf_c_boolean has = 1;
        memcpy(at(msg, f->quantifier_offset), &has, sizeof has);
    }
    fill_value(f, at(msg, f->offset), depth, iter, 1);
}

static ProtobufCMessage *build(const ProtobufCMessageDescriptor *d, unsigned depth, unsigned iter)
{
    assert_int_equal(d->magic, PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    void *msg = xcalloc(1, d->sizeof_message);
    protobuf_c_message_init(d, msg);
    for (unsigned i = 0; i < d->n_fields; i++)
        fill_field(d, msg, &d->fields[i], depth, iter);
    return msg;
}

static void free_built(ProtobufCMessage *m);

static void free_value(const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s;
        memcpy(&s, slot, sizeof s);
        if (s != NULL && s != f->default_value && s != protobuf_c_empty_string)
            free(s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        memcpy(&b, slot, sizeof b);
        free(b.data);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m;
        memcpy(&m, slot, sizeof m); // NOLINT(bugprone-sizeof-expression): the pointer itself
        free_built(m);
        break;
    }
    default:
        break;
    }
}

/* Frees a message made by build(): every allocation was ours, none came from unpack. */
static void free_built(ProtobufCMessage *m)
{
    if (m == NULL)
        return;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_selected(m, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            char *array;
            memcpy(&n, cat(m, f->quantifier_offset), sizeof n);
            memcpy(&array, cat(m, f->offset), sizeof array);
            size_t es = element_size(f->type);
            for (size_t k = 0; k < n; k++)
                free_value(f, array + k * es);
            free(array);
        } else {
            free_value(f, cat(m, f->offset));
        }
    }
    free(m);
}

/* ---- comparing -------------------------------------------------------------------------- */

/*
 * Compares every string in a and b (same descriptor), recursing into nested
 * and repeated messages; returns how many strings were compared.
 */
static unsigned compare_strings(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    unsigned compared = 0;
    if (a == NULL || b == NULL) {
        fail_msg("compare_strings: a message is missing (%p, %p)", (const void *)a,
                 (const void *)b);
        return 0;
    }
    const ProtobufCMessageDescriptor *d = a->descriptor;
    assert_ptr_equal(d, b->descriptor);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (is_oneof(f) && oneof_case(a, f) != oneof_case(b, f))
            fail_msg("%s.%s: oneof case differs: %u != %u", d->name, f->name, oneof_case(a, f),
                     oneof_case(b, f));
        if (!field_selected(a, f))
            continue;
        size_t n = 1;
        const char *pa = cat(a, f->offset), *pb = cat(b, f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t nb;
            memcpy(&n, cat(a, f->quantifier_offset), sizeof n);
            memcpy(&nb, cat(b, f->quantifier_offset), sizeof nb);
            assert_int_equal(n, nb);
            /* The slot holds a pointer to the element array: follow it. */
            memcpy(&pa, cat(a, f->offset), sizeof(const char *));
            memcpy(&pb, cat(b, f->offset), sizeof(const char *));
        }
        for (size_t k = 0; k < n; k++) {
            const void *ea = pa + k * element_size(f->type);
            const void *eb = pb + k * element_size(f->type);
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const char *sa, *sb;
                memcpy(&sa, ea, sizeof sa);
                memcpy(&sb, eb, sizeof sb);
                assert_non_null(sa);
                assert_non_null(sb);
                if (strcmp(sa, sb) != 0)
                    fail_msg("%s.%s: \"%s\" != \"%s\"", d->name, f->name, sa, sb);
                compared++;
            } else {
                const ProtobufCMessage *ma, *mb;
                memcpy(&ma, ea,
                       sizeof ma); // NOLINT(bugprone-sizeof-expression): the pointer itself
                memcpy(&mb, eb,
                       sizeof mb); // NOLINT(bugprone-sizeof-expression): the pointer itself
                assert_true((ma == NULL) == (mb == NULL));
                if (ma != NULL)
                    compared += compare_strings(ma, mb);
            }
        }
    }
    return compared;
}

static uint8_t *pack_alloc(const ProtobufCMessage *m, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xcalloc(1, size > 0 ? size : 1);
    *len = protobuf_c_message_pack(m, buf);
    assert_int_equal(*len, size);
    return buf;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_message_count_matches_protos(void **state)
{
    (void)state;
    /* Update EXPECTED_MESSAGE_COUNT and all_messages[] together when a .proto changes. */
    assert_int_equal(N_MESSAGES, EXPECTED_MESSAGE_COUNT);
    for (size_t i = 0; i < N_MESSAGES; i++) {
        assert_int_equal(all_messages[i]->magic, PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
        assert_string_equal(all_messages[i]->package_name, "shouwen.v1");
        for (size_t j = i + 1; j < N_MESSAGES; j++)
            if (all_messages[i] == all_messages[j])
                fail_msg("%s is listed twice in all_messages[]", all_messages[i]->name);
    }
}

static void walk(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **seen,
                 size_t *n_seen)
{
    for (size_t i = 0; i < *n_seen; i++)
        if (seen[i] == d)
            return;
    if (!in_all_messages(d))
        fail_msg("%s is reachable but missing from all_messages[]: add it and update "
                 "EXPECTED_MESSAGE_COUNT",
                 d->name);
    assert_true(*n_seen < N_MESSAGES);
    seen[(*n_seen)++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            walk(d->fields[i].descriptor, seen, n_seen);
}

static void test_every_reachable_message_is_listed(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *seen[N_MESSAGES];
    size_t n_seen = 0;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
        walk(roots[i], seen, &n_seen);
    /* Every listed message hangs off a root: nothing is defined but unused. */
    for (size_t i = 0; i < N_MESSAGES; i++) {
        bool found = false;
        for (size_t j = 0; j < n_seen; j++)
            found = found || seen[j] == all_messages[i];
        if (!found)
            fail_msg("%s is not reachable from Envelope, Command, SubmitCase or "
                     "SubmitCaseReply",
                     all_messages[i]->name);
    }
    assert_int_equal(n_seen, N_MESSAGES);
}

static void roundtrip_one(const ProtobufCMessageDescriptor *d)
{
    unsigned iterations = iterations_for(d);
    bool *oneof_seen = xcalloc(d->n_fields + 1, sizeof *oneof_seen);

    for (unsigned iter = 0; iter < iterations; iter++) {
        ProtobufCMessage *built = build(d, 0, iter);
        assert_true(protobuf_c_message_check(built));

        size_t len1, len2;
        uint8_t *first = pack_alloc(built, &len1);
        if (len1 == 0)
            fail_msg("%s: packed to zero bytes", d->name);

        ProtobufCMessage *back = protobuf_c_message_unpack(d, NULL, len1, first);
        if (back == NULL)
            fail_msg("%s: could not unpack what was packed (iteration %u)", d->name, iter);
        assert_true(protobuf_c_message_check(back));

        uint8_t *second = pack_alloc(back, &len2);
        if (len1 != len2 || memcmp(first, second, len1) != 0)
            fail_msg("%s: re-packed bytes differ (iteration %u, %zu vs %zu bytes)", d->name, iter,
                     len1, len2);

        if (compare_strings(built, back) == 0)
            fail_msg("%s: no string field was compared", d->name);

        for (unsigned i = 0; i < d->n_fields; i++)
            if (is_oneof(&d->fields[i]) && oneof_case(back, &d->fields[i]) == d->fields[i].id)
                oneof_seen[i] = true;

        free(first);
        free(second);
        protobuf_c_message_free_unpacked(back, NULL);
        free_built(built);
    }

    for (unsigned i = 0; i < d->n_fields; i++)
        if (is_oneof(&d->fields[i]) && !oneof_seen[i])
            fail_msg("%s.%s: oneof member never exercised", d->name, d->fields[i].name);
    free(oneof_seen);
}

static void test_every_message_roundtrips(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_MESSAGES; i++)
        roundtrip_one(all_messages[i]);
}

static void test_envelope_oneof_has_every_event(void **state)
{
    (void)state;
    /* Every events.proto message is a member of Envelope.event. */
    const ProtobufCMessageDescriptor *env = &shouwen__v1__envelope__descriptor;
    unsigned members = 0;
    for (unsigned i = 0; i < env->n_fields; i++)
        if (is_oneof(&env->fields[i]))
            members++;
    assert_int_equal(members, 26);
    const ProtobufCMessageDescriptor *cmd = &shouwen__v1__command__descriptor;
    members = 0;
    for (unsigned i = 0; i < cmd->n_fields; i++)
        if (is_oneof(&cmd->fields[i]))
            members++;
    assert_int_equal(members, 20);
}

static void test_truncated_envelope_never_crashes(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &shouwen__v1__envelope__descriptor;
    unsigned iterations = iterations_for(d);
    for (unsigned iter = 0; iter < iterations; iter++) {
        ProtobufCMessage *built = build(d, 0, iter);
        size_t len;
        uint8_t *full = pack_alloc(built, &len);
        for (size_t cut = 0; cut < len; cut++) {
            /* An exact-size copy, so a read past the end is caught by ASan and valgrind. */
            uint8_t *prefix = malloc(cut > 0 ? cut : 1);
            assert_non_null(prefix);
            memcpy(prefix, full, cut);
            ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, cut, prefix);
            if (m != NULL)
                protobuf_c_message_free_unpacked(m, NULL);
            free(prefix);
        }
        free(full);
        free_built(built);
    }
}

static void test_garbage_is_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"varint tag longer than 10 bytes",
         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         12},
        {"string length past the end", {0x0a, 0x05, 'a', 'b'}, 4},
        {"invalid wire type 7", {0x0f, 0x01}, 2},
        {"field number 0", {0x00, 0x01}, 2},
        {"nested message length past the end", {0x42, 0x7f, 0x0a, 0x01, 'x'}, 5},
        {"truncated varint", {0x28, 0x80}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Shouwen__V1__Envelope *env =
            shouwen__v1__envelope__unpack(NULL, cases[i].len, cases[i].bytes);
        if (env != NULL) {
            shouwen__v1__envelope__free_unpacked(env, NULL);
            fail_msg("garbage accepted as an Envelope: %s", cases[i].what);
        }
        Shouwen__V1__SubmitCase *sc =
            shouwen__v1__submit_case__unpack(NULL, cases[i].len, cases[i].bytes);
        if (sc != NULL) {
            shouwen__v1__submit_case__free_unpacked(sc, NULL);
            fail_msg("garbage accepted as a SubmitCase: %s", cases[i].what);
        }
    }
}

static void test_typed_envelope_roundtrip(void **state)
{
    (void)state;
    /* The generated API as services use it: a case.transferred envelope. */
    Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
    actor.staff_code = "S0042";
    actor.role = SHOUWEN__V1__ROLE__ROLE_RECEPTIONIST;
    Shouwen__V1__Handoff handoff = SHOUWEN__V1__HANDOFF__INIT;
    handoff.from_department = "FRONT";
    handoff.to_department = "ENG";
    handoff.reason = "water leak in the ceiling";
    handoff.time = INT64_C(1795305600000000);
    Shouwen__V1__CaseTransferred transferred = SHOUWEN__V1__CASE_TRANSFERRED__INIT;
    transferred.handoff = &handoff;
    transferred.copied_to_qa = 1;
    transferred.transfer_count = 1;
    Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
    env.event_id = "0b6f3a52-3c8e-4f0e-9d7e-6f1c2a9b8e11";
    env.type = "case.transferred";
    env.site = "SH01";
    env.case_id = "6a1d8c4e-2f7b-4c55-a1b3-9e0f5d7c3b21";
    env.case_version = 3;
    env.partition = 7;
    env.time = INT64_C(1795305600000000);
    env.actor = &actor;
    env.event_case = SHOUWEN__V1__ENVELOPE__EVENT_TRANSFERRED;
    env.transferred = &transferred;

    size_t len = shouwen__v1__envelope__get_packed_size(&env);
    uint8_t *buf = xcalloc(1, len);
    assert_int_equal(shouwen__v1__envelope__pack(&env, buf), len);
    Shouwen__V1__Envelope *back = shouwen__v1__envelope__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_string_equal(back->type, "case.transferred");
    assert_int_equal(back->event_case, SHOUWEN__V1__ENVELOPE__EVENT_TRANSFERRED);
    assert_non_null(back->transferred);
    assert_non_null(back->transferred->handoff);
    assert_string_equal(back->transferred->handoff->to_department, "ENG");
    assert_true(back->transferred->copied_to_qa);
    assert_int_equal(back->actor->role, SHOUWEN__V1__ROLE__ROLE_RECEPTIONIST);
    assert_int_equal(back->time, INT64_C(1795305600000000));
    shouwen__v1__envelope__free_unpacked(back, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_count_matches_protos),
        cmocka_unit_test(test_every_reachable_message_is_listed),
        cmocka_unit_test(test_envelope_oneof_has_every_event),
        cmocka_unit_test(test_every_message_roundtrips),
        cmocka_unit_test(test_truncated_envelope_never_crashes),
        cmocka_unit_test(test_garbage_is_rejected),
        cmocka_unit_test(test_typed_envelope_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
