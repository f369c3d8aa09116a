/*
 * proto_roundtrip_test.c - every message in proto/ survives pack, unpack and
 * re-pack byte for byte with every field value intact, and unpacking hostile
 * bytes never crashes.
 *
 * The round trip is generic: each message is filled from its protobuf-c
 * descriptor (every scalar type, strings, bytes, enums with a real value,
 * repeated fields with two elements, nested messages, one member of each
 * oneof per iteration so that every member is exercised), so a field added
 * to a .proto is tested without touching this file. A message added to a
 * .proto must be listed in all_messages[] below: the test reads the .proto
 * sources (from the repository root, or $SHOUWEN_PROTO_DIR) and fails, naming
 * the message, until it is. The same reading checks the contract's own rules:
 * the compatibility note atop every file, every event in Envelope's oneof and
 * in its type-string table, every command in Command's oneof, every enum's 0
 * value named *_UNSPECIFIED.
 */
#define _POSIX_C_SOURCE 200809L /* opendir(), readdir(): the test lists proto/ */

#include <ctype.h>
#include <dirent.h>
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
 * fail_msg() that the compiler and the analyzer know does not return: cmocka
 * 1.1's _fail() longjmps out of the test but is not declared noreturn, so
 * the abort() is never reached; it only says so.
 */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fail_msg(__VA_ARGS__);                                                                     \
        abort();                                                                                   \
    } while (0)

/* Nested messages deeper than this are left unset (guards recursive types). */
#define MAX_DEPTH 8

/*
 * Every message of proto/shouwen/v1/, by file. test_every_proto_message_is_listed
 * fails, naming the message, when a .proto defines one that is not here.
 */
static const ProtobufCMessageDescriptor *const all_messages[] = {
    /* common.proto */
    &shouwen__v1__actor__descriptor,
    &shouwen__v1__customer__descriptor,
    &shouwen__v1__handoff__descriptor,
    /* commands.proto */
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
    /* events.proto */
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
    &shouwen__v1__review_requested__descriptor,
    /* envelope.proto */
    &shouwen__v1__envelope__descriptor,
    /* intake.proto */
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

#define N_ROOTS (sizeof(roots) / sizeof(roots[0]))

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    assert_non_null(p);
    return p;
}

/* strdup() is POSIX, not C11; this is the one copy the test needs. */
static char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = xcalloc(1, len);
    memcpy(copy, s, len);
    return copy;
}

static bool in_all_messages(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < N_MESSAGES; i++)
        if (all_messages[i] == d)
            return true;
    return false;
}

/* ---- a fixture with every protobuf type ------------------------------------------------ */

/*
 * The contract does not use every protobuf type (yet): no float, no fixed64,
 * no packed repeated scalars, no proto3 `optional`. This message has one of
 * each, plus a oneof of a scalar, a string and a message, so that the filler
 * and the comparison below are proven on every type before a .proto needs
 * it. Its descriptor is written as protoc-c would generate it (fields in
 * number order, names sorted in by_name, one number range);
 * test_fixture_descriptor_is_consistent checks that.
 */
typedef struct {
    ProtobufCMessage base;
    int32_t v_int32;
    int32_t v_sint32;
    int32_t v_sfixed32;
    uint32_t v_uint32;
    uint32_t v_fixed32;
    int64_t v_int64;
    int64_t v_sint64;
    int64_t v_sfixed64;
    uint64_t v_uint64;
    uint64_t v_fixed64;
    float v_float;
    double v_double;
    protobuf_c_boolean v_bool;
    int v_enum;
    char *v_string;
    ProtobufCBinaryData v_bytes;
    Shouwen__V1__Actor *v_message;
    size_t n_r_sint64;
    int64_t *r_sint64; /* packed */
    size_t n_r_fixed32;
    uint32_t *r_fixed32; /* not packed */
    size_t n_r_double;
    double *r_double; /* packed */
    size_t n_r_bool;
    protobuf_c_boolean *r_bool; /* packed */
    size_t n_r_enum;
    int *r_enum; /* packed */
    size_t n_r_string;
    char **r_string;
    size_t n_r_bytes;
    ProtobufCBinaryData *r_bytes;
    size_t n_r_message;
    Shouwen__V1__Customer **r_message;
    protobuf_c_boolean has_o_uint64; /* proto3 `optional` */
    uint64_t o_uint64;
    uint32_t pick_case;
    union {
        int32_t pick_sint32;
        char *pick_string;
        Shouwen__V1__Handoff *pick_message;
    };
} AllTypes;

static const ProtobufCMessageDescriptor all_types_descriptor;

static void all_types_init(ProtobufCMessage *m)
{
    AllTypes *t = (AllTypes *)m;
    memset(t, 0, sizeof *t);
    t->base.descriptor = &all_types_descriptor;
    t->v_string = (char *)protobuf_c_empty_string;
}

#define FIXTURE_FIELD(field, number, lab, typ, desc, flg)                                          \
    {                                                                                              \
        .name = #field, .id = (number), .label = PROTOBUF_C_LABEL_##lab,                           \
        .type = PROTOBUF_C_TYPE_##typ, .offset = offsetof(AllTypes, field), .descriptor = (desc),  \
        .flags = (flg),                                                                            \
    }
#define FIXTURE_REPEATED(field, number, typ, desc, flg)                                            \
    {                                                                                              \
        .name = #field, .id = (number), .label = PROTOBUF_C_LABEL_REPEATED,                        \
        .type = PROTOBUF_C_TYPE_##typ, .quantifier_offset = offsetof(AllTypes, n_##field),         \
        .offset = offsetof(AllTypes, field), .descriptor = (desc), .flags = (flg),                 \
    }
#define FIXTURE_ONEOF(field, number, typ, desc)                                                    \
    {                                                                                              \
        .name = #field, .id = (number), .label = PROTOBUF_C_LABEL_NONE,                            \
        .type = PROTOBUF_C_TYPE_##typ, .quantifier_offset = offsetof(AllTypes, pick_case),         \
        .offset = offsetof(AllTypes, field), .descriptor = (desc),                                 \
        .flags = PROTOBUF_C_FIELD_FLAG_ONEOF,                                                      \
    }

static const ProtobufCFieldDescriptor all_types_fields[] = {
    FIXTURE_FIELD(v_int32, 1, NONE, INT32, NULL, 0),
    FIXTURE_FIELD(v_sint32, 2, NONE, SINT32, NULL, 0),
    FIXTURE_FIELD(v_sfixed32, 3, NONE, SFIXED32, NULL, 0),
    FIXTURE_FIELD(v_uint32, 4, NONE, UINT32, NULL, 0),
    FIXTURE_FIELD(v_fixed32, 5, NONE, FIXED32, NULL, 0),
    FIXTURE_FIELD(v_int64, 6, NONE, INT64, NULL, 0),
    FIXTURE_FIELD(v_sint64, 7, NONE, SINT64, NULL, 0),
    FIXTURE_FIELD(v_sfixed64, 8, NONE, SFIXED64, NULL, 0),
    FIXTURE_FIELD(v_uint64, 9, NONE, UINT64, NULL, 0),
    FIXTURE_FIELD(v_fixed64, 10, NONE, FIXED64, NULL, 0),
    FIXTURE_FIELD(v_float, 11, NONE, FLOAT, NULL, 0),
    FIXTURE_FIELD(v_double, 12, NONE, DOUBLE, NULL, 0),
    FIXTURE_FIELD(v_bool, 13, NONE, BOOL, NULL, 0),
    FIXTURE_FIELD(v_enum, 14, NONE, ENUM, &shouwen__v1__role__descriptor, 0),
    {
        .name = "v_string",
        .id = 15,
        .label = PROTOBUF_C_LABEL_NONE,
        .type = PROTOBUF_C_TYPE_STRING,
        .offset = offsetof(AllTypes, v_string),
        .default_value = &protobuf_c_empty_string,
    },
    FIXTURE_FIELD(v_bytes, 16, NONE, BYTES, NULL, 0),
    FIXTURE_FIELD(v_message, 17, NONE, MESSAGE, &shouwen__v1__actor__descriptor, 0),
    FIXTURE_REPEATED(r_sint64, 18, SINT64, NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    FIXTURE_REPEATED(r_fixed32, 19, FIXED32, NULL, 0),
    FIXTURE_REPEATED(r_double, 20, DOUBLE, NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    FIXTURE_REPEATED(r_bool, 21, BOOL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    FIXTURE_REPEATED(r_enum, 22, ENUM, &shouwen__v1__channel__descriptor,
                     PROTOBUF_C_FIELD_FLAG_PACKED),
    FIXTURE_REPEATED(r_string, 23, STRING, NULL, 0),
    FIXTURE_REPEATED(r_bytes, 24, BYTES, NULL, 0),
    FIXTURE_REPEATED(r_message, 25, MESSAGE, &shouwen__v1__customer__descriptor, 0),
    {
        .name = "o_uint64",
        .id = 26,
        .label = PROTOBUF_C_LABEL_OPTIONAL,
        .type = PROTOBUF_C_TYPE_UINT64,
        .quantifier_offset = offsetof(AllTypes, has_o_uint64),
        .offset = offsetof(AllTypes, o_uint64),
    },
    FIXTURE_ONEOF(pick_sint32, 27, SINT32, NULL),
    FIXTURE_ONEOF(pick_string, 28, STRING, NULL),
    FIXTURE_ONEOF(pick_message, 29, MESSAGE, &shouwen__v1__handoff__descriptor),
};

#define N_FIXTURE_FIELDS (sizeof(all_types_fields) / sizeof(all_types_fields[0]))

/* Field indices in name order (o_uint64, pick_message, pick_sint32, ...). */
static const unsigned all_types_by_name[] = {
    25, 28, 26, 27, 20, 23, 19, 21, 18, 24, 17, 22, 12, 15, 11,
    13, 4,  9,  10, 0,  5,  16, 2,  7,  1,  6,  14, 3,  8,
};

static const ProtobufCIntRange all_types_ranges[] = {{1, 0}, {0, N_FIXTURE_FIELDS}};

static const ProtobufCMessageDescriptor all_types_descriptor = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "shouwen.test.AllTypes",
    .short_name = "AllTypes",
    .c_name = "AllTypes",
    .package_name = "shouwen.test",
    .sizeof_message = sizeof(AllTypes),
    .n_fields = N_FIXTURE_FIELDS,
    .fields = all_types_fields,
    .fields_sorted_by_name = all_types_by_name,
    .n_field_ranges = 1,
    .field_ranges = all_types_ranges,
    .message_init = all_types_init,
};

/* ---- descriptor helpers ---------------------------------------------------------------- */

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* A proto2 / proto3-`optional` scalar or bytes field, with its has_ flag. */
static bool has_presence_flag(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL && !is_oneof(f) &&
           f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING;
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

static protobuf_c_boolean presence(const void *msg, const ProtobufCFieldDescriptor *f)
{
    protobuf_c_boolean has;
    memcpy(&has, cat(msg, f->quantifier_offset), sizeof has);
    return has;
}

static size_t repeated_count(const void *msg, const ProtobufCFieldDescriptor *f)
{
    size_t n;
    memcpy(&n, cat(msg, f->quantifier_offset), sizeof n);
    return n;
}

static const char *repeated_array(const void *msg, const ProtobufCFieldDescriptor *f)
{
    const char *array;
    memcpy(&array, cat(msg, f->offset), sizeof array);
    return array;
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
    FAIL("unknown protobuf-c type %d", (int)type);
    return 0;
}

/* ---- building messages by hand ----------------------------------------------------------- */

static ProtobufCMessage *build(const ProtobufCMessageDescriptor *d, unsigned depth, unsigned iter);

/* Writes one non-default value of f's type into slot; `n` varies it. */
static void fill_value(const ProtobufCFieldDescriptor *f, void *slot, unsigned depth, unsigned iter,
                       unsigned n)
{
    char text[160];
    /* Non-ASCII on purpose: 首问 in UTF-8. */
    snprintf(text, sizeof text, "%s-%u-%u-\xe9\xa6\x96\xe9\x97\xae", f->name, iter, n);

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        /* Negative values take 10 bytes as int32 and exercise zig-zag as sint32. */
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
        char *s = xstrdup(text);
        memcpy(slot, &s, sizeof s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b;
        b.len = 5 + n;
        b.data = xcalloc(1, b.len);
        for (size_t k = 0; k < b.len; k++)
            b.data[k] = (uint8_t)(0xf0 + k); /* bytes that are not UTF-8, and a 0x00 */
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

    if (has_presence_flag(f)) {
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
            size_t n = repeated_count(m, f);
            char *array = (char *)repeated_array(m, f);
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

static void compare_messages(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path,
                             unsigned *compared);

/* Compares one value of f's type at ea and eb; `path` names it in a failure. */
static void compare_value(const ProtobufCFieldDescriptor *f, const void *ea, const void *eb,
                          const char *path, unsigned *compared)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t va, vb;
        memcpy(&va, ea, sizeof va);
        memcpy(&vb, eb, sizeof vb);
        if (va != vb)
            FAIL("%s: %d != %d", path, (int)va, (int)vb);
        break;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t va, vb;
        memcpy(&va, ea, sizeof va);
        memcpy(&vb, eb, sizeof vb);
        if (va != vb)
            FAIL("%s: %u != %u", path, (unsigned)va, (unsigned)vb);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        /* Bit for bit: a float must come back exactly as it went. */
        if (memcmp(ea, eb, element_size(f->type)) != 0)
            FAIL("%s: the %zu-byte values differ", path, element_size(f->type));
        break;
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean va, vb;
        memcpy(&va, ea, sizeof va);
        memcpy(&vb, eb, sizeof vb);
        if ((va != 0) != (vb != 0))
            FAIL("%s: %d != %d", path, (int)va, (int)vb);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa, *sb;
        memcpy(&sa, ea, sizeof sa);
        memcpy(&sb, eb, sizeof sb);
        if (sa == NULL || sb == NULL)
            FAIL("%s: a string is NULL", path);
        else if (strcmp(sa, sb) != 0)
            FAIL("%s: \"%s\" != \"%s\"", path, sa, sb);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData ba, bb;
        memcpy(&ba, ea, sizeof ba);
        memcpy(&bb, eb, sizeof bb);
        if (ba.len != bb.len || (ba.len > 0 && memcmp(ba.data, bb.data, ba.len) != 0))
            FAIL("%s: bytes differ (%zu vs %zu bytes)", path, ba.len, bb.len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *ma, *mb;
        memcpy(&ma, ea, sizeof ma); // NOLINT(bugprone-sizeof-expression): the pointer itself
        memcpy(&mb, eb, sizeof mb); // NOLINT(bugprone-sizeof-expression): the pointer itself
        if ((ma == NULL) != (mb == NULL))
            FAIL("%s: present on one side only", path);
        if (ma != NULL)
            compare_messages(ma, mb, path, compared);
        return; /* the nested message's own values were counted */
    }
    }
    (*compared)++;
}

/*
 * Compares every field of a and b (same descriptor) by value, recursing into
 * nested and repeated messages; adds the number of values compared.
 */
static void compare_messages(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path,
                             unsigned *compared)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    if (b->descriptor != d)
        FAIL("%s: descriptors differ (%s vs %s)", path, d->name, b->descriptor->name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, f->name);
        if (is_oneof(f) && oneof_case(a, f) != oneof_case(b, f))
            FAIL("%s: oneof case differs: %u != %u", sub, (unsigned)oneof_case(a, f),
                 (unsigned)oneof_case(b, f));
        if (!field_selected(a, f))
            continue;
        if (has_presence_flag(f)) {
            if (presence(a, f) != presence(b, f))
                FAIL("%s: has_ flag differs", sub);
            if (!presence(a, f))
                continue;
        }
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            compare_value(f, cat(a, f->offset), cat(b, f->offset), sub, compared);
            continue;
        }
        size_t n = repeated_count(a, f);
        if (n != repeated_count(b, f))
            FAIL("%s: %zu elements != %zu", sub, n, repeated_count(b, f));
        const char *pa = repeated_array(a, f), *pb = repeated_array(b, f);
        for (size_t k = 0; k < n; k++) {
            char elem[560];
            snprintf(elem, sizeof elem, "%s[%zu]", sub, k);
            size_t es = element_size(f->type);
            compare_value(f, pa + k * es, pb + k * es, elem, compared);
        }
    }
}

/* Counts the leaf values build() set in m, to prove compare_messages saw them all. */
static unsigned count_values(const ProtobufCMessage *m)
{
    unsigned n = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_selected(m, f) || (has_presence_flag(f) && !presence(m, f)))
            continue;
        size_t count = 1;
        const char *p = cat(m, f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = repeated_count(m, f);
            p = repeated_array(m, f);
        }
        for (size_t k = 0; k < count; k++) {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
                n++;
                continue;
            }
            const ProtobufCMessage *sub;
            memcpy(&sub, p + k * sizeof sub, // NOLINT(bugprone-sizeof-expression): pointers
                   sizeof sub);              // NOLINT(bugprone-sizeof-expression): the pointer
            if (sub != NULL)
                n += count_values(sub);
        }
    }
    return n;
}

static uint8_t *pack_alloc(const ProtobufCMessage *m, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xcalloc(1, size > 0 ? size : 1);
    *len = protobuf_c_message_pack(m, buf);
    assert_int_equal(*len, size);
    return buf;
}

/* ---- the .proto sources ------------------------------------------------------------------ */

#define MAX_PROTO_FILES    32
#define MAX_PROTO_MESSAGES 256
#define MAX_PROTO_ENUMS    64
#define MAX_PROTO_BYTES    ((size_t)1 << 20)
#define MAX_NAME           160
#define MAX_SCOPES         32

struct proto_name {
    char file[64];       /* e.g. "events.proto" */
    char name[MAX_NAME]; /* full name, e.g. "shouwen.v1.CaseRegistered" */
};

struct proto_sources {
    char dir[512];
    size_t n_files;
    char files[MAX_PROTO_FILES][64];
    size_t n_messages;
    struct proto_name messages[MAX_PROTO_MESSAGES];
    size_t n_enums;
    struct proto_name enums[MAX_PROTO_ENUMS];
};

/* Static: too big for the stack, and reloaded by each test that needs it. */
static struct proto_sources sources;

struct token {
    const char *s;
    size_t len;
};

static bool tok_is(const struct token *t, const char *word)
{
    return t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

static bool is_ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

/*
 * The next token of .proto text at *p: an identifier (dots included, so
 * "shouwen.v1" is one), a number, a quoted string, or one punctuation
 * character. Comments and blanks are skipped. Returns false at the end.
 */
static bool next_token(const char **p, struct token *t)
{
    const char *s = *p;
    for (;;) {
        while (*s != '\0' && isspace((unsigned char)*s))
            s++;
        if (s[0] == '/' && s[1] == '/') {
            while (*s != '\0' && *s != '\n')
                s++;
        } else if (s[0] == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            s = end != NULL ? end + 2 : s + strlen(s);
        } else {
            break;
        }
    }
    if (*s == '\0')
        return false;
    t->s = s;
    if (isalnum((unsigned char)*s) || *s == '_') {
        while (isalnum((unsigned char)*s) || *s == '_' || *s == '.')
            s++;
    } else if (*s == '"' || *s == '\'') {
        char quote = *s++;
        while (*s != '\0' && *s != quote)
            s += (s[0] == '\\' && s[1] != '\0') ? 2 : 1;
        if (*s != '\0')
            s++;
    } else {
        s++;
    }
    t->len = (size_t)(s - t->s);
    *p = s;
    return true;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        FAIL("could not open %s", path);
    char *text = xcalloc(1, MAX_PROTO_BYTES + 1);
    size_t n = fread(text, 1, MAX_PROTO_BYTES + 1, fp);
    fclose(fp);
    if (n > MAX_PROTO_BYTES) {
        free(text);
        FAIL("%s: larger than %zu bytes", path, MAX_PROTO_BYTES);
    }
    return text;
}

static void record_name(struct proto_name *list, size_t *n, size_t max, const char *file,
                        const char *full)
{
    if (*n >= max)
        FAIL("%s: more than %zu names of one kind; raise the limit in this test", file, max);
    snprintf(list[*n].file, sizeof list[*n].file, "%s", file);
    snprintf(list[*n].name, sizeof list[*n].name, "%s", full);
    (*n)++;
}

/*
 * Finds every `message` and `enum` definition in one .proto text, nested ones
 * included, and records their full names ("shouwen.v1.Outer.Inner").
 */
static void parse_proto(const char *file, const char *text, struct proto_sources *src)
{
    size_t cap = strlen(text) + 1;
    struct token *tok = xcalloc(cap, sizeof *tok);
    size_t n = 0;
    const char *p = text;
    while (n < cap && next_token(&p, &tok[n]))
        n++;

    char package[MAX_NAME] = "";
    char scope[MAX_SCOPES][MAX_NAME]; /* a message's name, or "" for any other block */
    size_t depth = 0;
    const char *problem = NULL;
    for (size_t i = 0; i < n && problem == NULL; i++) {
        if (tok_is(&tok[i], "package") && i + 2 < n && tok_is(&tok[i + 2], ";")) {
            snprintf(package, sizeof package, "%.*s", (int)tok[i + 1].len, tok[i + 1].s);
            i += 2;
        } else if ((tok_is(&tok[i], "message") || tok_is(&tok[i], "enum")) && i + 2 < n &&
                   is_ident_start(tok[i + 1].s[0]) && tok_is(&tok[i + 2], "{")) {
            /* `string message = 4;` is a field named message, not a definition. */
            char full[MAX_NAME];
            int len = snprintf(full, sizeof full, "%s", package);
            for (size_t k = 0; k < depth && len >= 0 && (size_t)len < sizeof full; k++)
                if (scope[k][0] != '\0')
                    len += snprintf(full + len, sizeof full - (size_t)len, ".%s", scope[k]);
            if (len >= 0 && (size_t)len < sizeof full)
                len += snprintf(full + len, sizeof full - (size_t)len, ".%.*s", (int)tok[i + 1].len,
                                tok[i + 1].s);
            if (package[0] == '\0')
                problem = "a definition before the package statement";
            else if (len < 0 || (size_t)len >= sizeof full || depth >= MAX_SCOPES)
                problem = "a name too long or nested too deep for this test";
            if (problem != NULL)
                break;
            if (tok_is(&tok[i], "message")) {
                record_name(src->messages, &src->n_messages, MAX_PROTO_MESSAGES, file, full);
                snprintf(scope[depth], sizeof scope[depth], "%.*s", (int)tok[i + 1].len,
                         tok[i + 1].s);
            } else {
                record_name(src->enums, &src->n_enums, MAX_PROTO_ENUMS, file, full);
                scope[depth][0] = '\0';
            }
            depth++;
            i += 2;
        } else if (tok_is(&tok[i], "{")) {
            if (depth >= MAX_SCOPES)
                problem = "blocks nested too deep for this test";
            else
                scope[depth++][0] = '\0';
        } else if (tok_is(&tok[i], "}")) {
            if (depth == 0)
                problem = "a '}' without its '{'";
            else
                depth--;
        }
    }
    free(tok);
    if (problem == NULL && depth != 0)
        problem = "a '{' without its '}'";
    if (problem == NULL && strcmp(package, "shouwen.v1") != 0)
        problem = "package is not shouwen.v1";
    if (problem != NULL)
        FAIL("%s/%s: %s", src->dir, file, problem);
}

/* The path of `file` in the loaded .proto folder, into out[size]. */
static void proto_path(char *out, size_t size, const char *file)
{
    int len = snprintf(out, size, "%s/%s", sources.dir, file);
    if (len < 0 || (size_t)len >= size)
        FAIL("%s/%s: path too long for this test", sources.dir, file);
}

static int compare_file_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/*
 * Loads every .proto of proto/shouwen/v1 into `sources`. The folder is
 * $SHOUWEN_PROTO_DIR if set, else found from this file's path as compiled
 * (the Makefile compiles from the repository root and runs the tests there).
 */
static void load_sources(void)
{
    struct proto_sources *src = &sources;
    memset(src, 0, sizeof *src);
    const char *env = getenv("SHOUWEN_PROTO_DIR");
    if (env != NULL && env[0] != '\0') {
        snprintf(src->dir, sizeof src->dir, "%s", env);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        int dir_len = slash != NULL ? (int)(slash - __FILE__) : 1;
        snprintf(src->dir, sizeof src->dir, "%.*s/../../../proto/shouwen/v1", dir_len,
                 slash != NULL ? __FILE__ : ".");
    }

    DIR *dir = opendir(src->dir);
    if (dir == NULL)
        FAIL("could not open the .proto folder %s: run from the repository root or set "
             "SHOUWEN_PROTO_DIR",
             src->dir);
    const struct dirent *entry;
    bool too_many = false;
    while ((entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len <= 6 || strcmp(entry->d_name + len - 6, ".proto") != 0)
            continue;
        if (src->n_files >= MAX_PROTO_FILES || len >= sizeof src->files[0]) {
            too_many = true;
            break;
        }
        memcpy(src->files[src->n_files++], entry->d_name, len + 1);
    }
    closedir(dir);
    if (too_many)
        FAIL("%s: too many .proto files or too long a name for this test", src->dir);
    if (src->n_files == 0)
        FAIL("%s: no .proto files", src->dir);
    qsort(src->files, src->n_files, sizeof src->files[0], compare_file_names);

    for (size_t i = 0; i < src->n_files; i++) {
        char path[640];
        proto_path(path, sizeof path, src->files[i]);
        char *text = read_text(path);
        parse_proto(src->files[i], text, src);
        free(text);
    }
}

static const char *file_of_message(const char *full_name)
{
    for (size_t i = 0; i < sources.n_messages; i++)
        if (strcmp(sources.messages[i].name, full_name) == 0)
            return sources.messages[i].file;
    return NULL;
}

/* ---- tests: the contract is complete ------------------------------------------------------ */

static void test_fixture_descriptor_is_consistent(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &all_types_descriptor;
    assert_int_equal(sizeof all_types_by_name / sizeof all_types_by_name[0], d->n_fields);
    for (unsigned i = 0; i < d->n_fields; i++) {
        assert_int_equal(d->fields[i].id, i + 1); /* the single number range */
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, d->fields[i].name);
        if (f != &d->fields[i])
            FAIL("all_types_by_name[] is not in name order at %s", d->fields[i].name);
        assert_ptr_equal(protobuf_c_message_descriptor_get_field(d, d->fields[i].id), f);
    }
}

static void test_every_proto_message_is_listed(void **state)
{
    (void)state;
    load_sources();
    for (size_t i = 0; i < sources.n_messages; i++) {
        bool listed = false;
        for (size_t j = 0; j < N_MESSAGES && !listed; j++)
            listed = strcmp(all_messages[j]->name, sources.messages[i].name) == 0;
        if (!listed)
            FAIL("%s defines %s but all_messages[] in %s does not list it: add its "
                 "descriptor so that its round trip is tested",
                 sources.messages[i].file, sources.messages[i].name, __FILE__);
    }
    for (size_t j = 0; j < N_MESSAGES; j++) {
        assert_int_equal(all_messages[j]->magic, PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
        assert_string_equal(all_messages[j]->package_name, "shouwen.v1");
        if (file_of_message(all_messages[j]->name) == NULL)
            FAIL("all_messages[] lists %s, which no .proto in %s defines (stale build/gen?)",
                 all_messages[j]->name, sources.dir);
        for (size_t k = j + 1; k < N_MESSAGES; k++)
            if (all_messages[j] == all_messages[k])
                FAIL("%s is listed twice in all_messages[]", all_messages[j]->name);
    }
    assert_int_equal(sources.n_messages, N_MESSAGES);
}

static void walk(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **seen,
                 size_t *n_seen)
{
    for (size_t i = 0; i < *n_seen; i++)
        if (seen[i] == d)
            return;
    if (!in_all_messages(d))
        FAIL("%s is reachable but missing from all_messages[]", d->name);
    assert_true(*n_seen < N_MESSAGES);
    seen[(*n_seen)++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            walk(d->fields[i].descriptor, seen, n_seen);
}

static void test_every_message_hangs_off_a_root(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *seen[N_MESSAGES];
    size_t n_seen = 0;
    for (size_t i = 0; i < N_ROOTS; i++)
        walk(roots[i], seen, &n_seen);
    /* Nothing is defined but unused: a new top-level message is added to roots[] too. */
    for (size_t i = 0; i < N_MESSAGES; i++) {
        bool found = false;
        for (size_t j = 0; j < n_seen && !found; j++)
            found = seen[j] == all_messages[i];
        if (!found)
            FAIL("%s is not reachable from Envelope, Command, SubmitCase or "
                 "SubmitCaseReply: use it, or add it to roots[] if it travels alone",
                 all_messages[i]->name);
    }
    assert_int_equal(n_seen, N_MESSAGES);
}

/*
 * Every message of `file` (but `except`) is the type of exactly one member of
 * `oneof_owner`'s oneof, and every member's type comes from `file`.
 */
static void check_oneof_covers_file(const ProtobufCMessageDescriptor *oneof_owner, const char *file,
                                    const char *except)
{
    unsigned members = 0;
    for (unsigned i = 0; i < oneof_owner->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &oneof_owner->fields[i];
        if (!is_oneof(f))
            continue;
        members++;
        const ProtobufCMessageDescriptor *type = f->descriptor;
        const char *from = f->type == PROTOBUF_C_TYPE_MESSAGE ? file_of_message(type->name) : NULL;
        if (from == NULL || strcmp(from, file) != 0)
            FAIL("%s.%s: its type should be a message of %s", oneof_owner->name, f->name, file);
    }
    unsigned expected = 0;
    for (size_t i = 0; i < sources.n_messages; i++) {
        const struct proto_name *m = &sources.messages[i];
        if (strcmp(m->file, file) != 0 || strcmp(m->name, except) == 0)
            continue;
        expected++;
        unsigned uses = 0;
        for (unsigned j = 0; j < oneof_owner->n_fields; j++) {
            const ProtobufCFieldDescriptor *f = &oneof_owner->fields[j];
            if (is_oneof(f) && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, m->name) == 0)
                uses++;
        }
        if (uses != 1)
            FAIL("%s (from %s) is in %s's oneof %u times, not once", m->name, file,
                 oneof_owner->name, uses);
    }
    assert_int_equal(members, expected);
}

static void test_oneofs_carry_every_event_and_command(void **state)
{
    (void)state;
    load_sources();
    check_oneof_covers_file(&shouwen__v1__envelope__descriptor, "events.proto", "");
    check_oneof_covers_file(&shouwen__v1__command__descriptor, "commands.proto",
                            "shouwen.v1.Command");
}

static bool is_dotted_type(const char *s)
{
    const char *dot = strchr(s, '.');
    if (dot == NULL || dot == s || dot[1] == '\0' || strchr(dot + 1, '.') != NULL)
        return false;
    for (const char *c = s; *c != '\0'; c++)
        if (!(islower((unsigned char)*c) || *c == '_' || *c == '.'))
            return false;
    return true;
}

/* envelope.proto's header documents `oneof member -> dotted type`: all of them, once. */
static void test_envelope_type_table_is_complete(void **state)
{
    (void)state;
    load_sources();
    char path[640];
    proto_path(path, sizeof path, "envelope.proto");
    char *text = read_text(path);
    const char *marker = "Oneof member -> dotted `type`:";
    const char *line = strstr(text, marker);
    if (line == NULL) {
        free(text);
        FAIL("%s: no \"%s\" table", path, marker);
    }
    line = strchr(line, '\n');

    enum { MAX_ROWS = 128 };
    static char members[MAX_ROWS][64], types[MAX_ROWS][64];
    size_t rows = 0;
    while (line != NULL && rows < MAX_ROWS) {
        line++;
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        char row[256], first[64], second[64], extra[2];
        if (len >= sizeof row)
            break;
        memcpy(row, line, len);
        row[len] = '\0';
        /* "//   member   type" and nothing more; anything else ends the table. */
        if (strncmp(row, "//", 2) != 0 ||
            sscanf(row + 2, "%63s %63s %1s", first, second, extra) != 2)
            break;
        memcpy(members[rows], first, sizeof first);
        memcpy(types[rows], second, sizeof second);
        rows++;
        line = eol;
    }
    free(text);

    const ProtobufCMessageDescriptor *env = &shouwen__v1__envelope__descriptor;
    unsigned oneof_members = 0;
    for (unsigned i = 0; i < env->n_fields; i++) {
        if (!is_oneof(&env->fields[i]))
            continue;
        oneof_members++;
        unsigned found = 0;
        for (size_t r = 0; r < rows; r++)
            found += strcmp(members[r], env->fields[i].name) == 0;
        if (found != 1)
            FAIL("envelope.proto's type table has Envelope.%s %u times, not once",
                 env->fields[i].name, found);
    }
    assert_int_equal(rows, oneof_members);
    for (size_t r = 0; r < rows; r++) {
        if (!is_dotted_type(types[r]))
            FAIL("envelope.proto: %s -> \"%s\" is not a dotted lower-case type", members[r],
                 types[r]);
        for (size_t s = r + 1; s < rows; s++)
            if (strcmp(types[r], types[s]) == 0)
                FAIL("envelope.proto: type \"%s\" is given to %s and %s", types[r], members[r],
                     members[s]);
    }
}

/* Every .proto opens with the compatibility rules (DESIGN: field numbers are never reused). */
static void test_every_proto_states_compatibility_rules(void **state)
{
    (void)state;
    load_sources();
    for (size_t i = 0; i < sources.n_files; i++) {
        char path[640];
        proto_path(path, sizeof path, sources.files[i]);
        char *text = read_text(path);
        char *syntax = strstr(text, "syntax");
        bool ok = syntax != NULL && strncmp(text, "//", 2) == 0;
        if (ok) {
            /* The header as prose: comment markers dropped, line breaks and runs of blanks
             * made one space, so the sentence may wrap anywhere. */
            size_t o = 0;
            for (const char *c = text; c < syntax; c++) {
                if (c[0] == '/' && c[1] == '/')
                    c++;
                else if (!isspace((unsigned char)*c))
                    text[o++] = *c;
                else if (o > 0 && text[o - 1] != ' ')
                    text[o++] = ' ';
            }
            text[o] = '\0';
            ok = strstr(text, "never reused") != NULL && strstr(text, "`reserved`") != NULL;
        }
        free(text);
        if (!ok)
            FAIL("%s: must open with a comment saying field numbers are never reused and "
                 "removed fields are `reserved`",
                 path);
    }
}

static void upper_snake(const char *camel, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; camel[i] != '\0' && o + 2 < size; i++) {
        if (i > 0 && isupper((unsigned char)camel[i]))
            out[o++] = '_';
        out[o++] = (char)toupper((unsigned char)camel[i]);
    }
    out[o] = '\0';
}

/* Every enum: 0 is <ENUM>_UNSPECIFIED, every value carries the <ENUM>_ prefix. */
static void test_every_enum_starts_unspecified(void **state)
{
    (void)state;
    load_sources();
    const ProtobufCEnumDescriptor *seen[MAX_PROTO_ENUMS];
    size_t n_seen = 0;
    for (size_t m = 0; m < N_MESSAGES; m++) {
        for (unsigned i = 0; i < all_messages[m]->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &all_messages[m]->fields[i];
            if (f->type != PROTOBUF_C_TYPE_ENUM)
                continue;
            const ProtobufCEnumDescriptor *e = f->descriptor;
            bool known = false;
            for (size_t k = 0; k < n_seen && !known; k++)
                known = seen[k] == e;
            if (known)
                continue;
            assert_true(n_seen < MAX_PROTO_ENUMS);
            seen[n_seen++] = e;

            char prefix[MAX_NAME], unspecified[MAX_NAME + 16];
            upper_snake(e->short_name, prefix, sizeof prefix);
            snprintf(unspecified, sizeof unspecified, "%s_UNSPECIFIED", prefix);
            const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(e, 0);
            if (zero == NULL || strcmp(zero->name, unspecified) != 0)
                FAIL("%s: value 0 must be %s", e->name, unspecified);
            for (unsigned v = 0; v < e->n_values; v++)
                if (strncmp(e->values[v].name, prefix, strlen(prefix)) != 0 ||
                    e->values[v].name[strlen(prefix)] != '_')
                    FAIL("%s: %s lacks the %s_ prefix", e->name, e->values[v].name, prefix);
        }
    }
    /* The check above sees enums through fields: every enum defined must be used by one. */
    for (size_t i = 0; i < sources.n_enums; i++) {
        bool used = false;
        for (size_t k = 0; k < n_seen && !used; k++)
            used = strcmp(seen[k]->name, sources.enums[i].name) == 0;
        if (!used)
            FAIL("%s defines enum %s but no message field uses it", sources.enums[i].file,
                 sources.enums[i].name);
    }
    assert_int_equal(n_seen, sources.n_enums);
}

/* ---- tests: round trips ------------------------------------------------------------------ */

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
            FAIL("%s: packed to zero bytes", d->name);

        ProtobufCMessage *back = protobuf_c_message_unpack(d, NULL, len1, first);
        if (back == NULL)
            FAIL("%s: could not unpack what was packed (iteration %u)", d->name, iter);
        assert_true(protobuf_c_message_check(back));

        uint8_t *second = pack_alloc(back, &len2);
        if (len1 != len2 || memcmp(first, second, len1) != 0)
            FAIL("%s: re-packed bytes differ (iteration %u, %zu vs %zu bytes)", d->name, iter, len1,
                 len2);

        unsigned compared = 0;
        compare_messages(built, back, d->short_name, &compared);
        unsigned expected = count_values(built);
        if (compared != expected || compared == 0)
            FAIL("%s: compared %u values of the %u set (iteration %u)", d->name, compared, expected,
                 iter);

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
            FAIL("%s.%s: oneof member never exercised", d->name, d->fields[i].name);
    free(oneof_seen);
}

static void test_every_message_roundtrips(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_MESSAGES; i++)
        roundtrip_one(all_messages[i]);
}

static void test_every_protobuf_type_roundtrips(void **state)
{
    (void)state;
    roundtrip_one(&all_types_descriptor);
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
    free(buf);
    assert_non_null(back);
    assert_string_equal(back->type, "case.transferred");
    assert_string_equal(back->site, "SH01");
    assert_int_equal(back->case_version, 3);
    assert_int_equal(back->partition, 7);
    assert_int_equal(back->event_case, SHOUWEN__V1__ENVELOPE__EVENT_TRANSFERRED);
    assert_non_null(back->transferred);
    assert_non_null(back->transferred->handoff);
    assert_string_equal(back->transferred->handoff->to_department, "ENG");
    assert_true(back->transferred->copied_to_qa);
    assert_non_null(back->actor);
    assert_int_equal(back->actor->role, SHOUWEN__V1__ROLE__ROLE_RECEPTIONIST);
    assert_int_equal(back->time, INT64_C(1795305600000000));
    shouwen__v1__envelope__free_unpacked(back, NULL);

    /* The REQ/REP pair as intake answers it. */
    Shouwen__V1__Error err = SHOUWEN__V1__ERROR__INIT;
    err.code = SHOUWEN__V1__ERROR_CODE__ERROR_CODE_MISSING_FIELD;
    err.message = "customer phone is required";
    err.field = "customer.phone";
    Shouwen__V1__SubmitCaseReply reply = SHOUWEN__V1__SUBMIT_CASE_REPLY__INIT;
    reply.error = &err;
    len = shouwen__v1__submit_case_reply__get_packed_size(&reply);
    buf = xcalloc(1, len);
    assert_int_equal(shouwen__v1__submit_case_reply__pack(&reply, buf), len);
    Shouwen__V1__SubmitCaseReply *rback = shouwen__v1__submit_case_reply__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(rback);
    assert_string_equal(rback->case_id, ""); /* absent string: empty, never NULL */
    assert_non_null(rback->error);
    assert_int_equal(rback->error->code, SHOUWEN__V1__ERROR_CODE__ERROR_CODE_MISSING_FIELD);
    assert_string_equal(rback->error->field, "customer.phone");
    shouwen__v1__submit_case_reply__free_unpacked(rback, NULL);
}

/* ---- tests: hostile bytes ---------------------------------------------------------------- */

static void test_truncated_envelope_never_crashes(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &shouwen__v1__envelope__descriptor;
    unsigned iterations = iterations_for(d);
    unsigned failed = 0, parsed = 0;
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
            if (m != NULL) {
                /* A cut between two fields is a valid, shorter message. */
                assert_true(protobuf_c_message_check(m));
                size_t again;
                free(pack_alloc(m, &again));
                protobuf_c_message_free_unpacked(m, NULL);
                parsed++;
            } else {
                failed++;
            }
            free(prefix);
        }
        free(full);
        free_built(built);
    }
    /* Most cuts land inside a field and must be refused. */
    assert_true(failed > parsed);
}

/* Bytes that are not protobuf for any message at all. */
static const struct {
    const char *what;
    uint8_t bytes[16];
    size_t len;
} garbage[] = {
    {"varint tag longer than 10 bytes",
     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     12},
    {"string length past the end", {0x0a, 0x05, 'a', 'b'}, 4},
    {"length prefix of 4 GiB", {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}, 7},
    {"invalid wire type 7", {0x0f, 0x01}, 2},
    {"invalid wire type 6", {0x0e, 0x01}, 2},
    {"field number 0", {0x00, 0x01}, 2},
    {"nested message length past the end", {0x42, 0x7f, 0x0a, 0x01, 'x'}, 5},
    {"truncated varint", {0x28, 0x80}, 2},
    {"truncated fixed64", {0x09, 0x01, 0x02, 0x03}, 4},
    {"truncated fixed32", {0x0d, 0x01}, 2},
    {"valid field then a dangling tag", {0x18, 0x01, 0x22}, 3},
};

static void test_garbage_is_rejected(void **state)
{
    (void)state;
    for (size_t m = 0; m < N_MESSAGES; m++) {
        for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
            /* Exact-size copies again: no slack for an over-read to hide in. */
            uint8_t *bytes = malloc(garbage[i].len);
            assert_non_null(bytes);
            memcpy(bytes, garbage[i].bytes, garbage[i].len);
            ProtobufCMessage *msg =
                protobuf_c_message_unpack(all_messages[m], NULL, garbage[i].len, bytes);
            free(bytes);
            if (msg != NULL) {
                protobuf_c_message_free_unpacked(msg, NULL);
                FAIL("garbage accepted as %s: %s", all_messages[m]->name, garbage[i].what);
            }
        }
    }
}

/* A small deterministic generator (xorshift32): the same mutations on every run. */
static uint32_t next_random(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Flipped and overwritten bytes in valid messages: unpack may accept or refuse, never crash. */
static void test_mutated_roots_never_crash(void **state)
{
    (void)state;
    uint32_t seed = 0x5eed5eedu;
    for (size_t r = 0; r < N_ROOTS; r++) {
        unsigned iterations = iterations_for(roots[r]);
        for (unsigned iter = 0; iter < iterations; iter++) {
            ProtobufCMessage *built = build(roots[r], 0, iter);
            size_t len;
            uint8_t *packed = pack_alloc(built, &len);
            for (unsigned round = 0; round < 40; round++) {
                uint8_t *copy = malloc(len);
                assert_non_null(copy);
                memcpy(copy, packed, len);
                unsigned edits = 1 + next_random(&seed) % 4;
                for (unsigned e = 0; e < edits; e++) {
                    size_t pos = next_random(&seed) % len;
                    if (next_random(&seed) % 2 == 0)
                        copy[pos] ^= (uint8_t)(1u << (next_random(&seed) % 8));
                    else
                        copy[pos] = (uint8_t)next_random(&seed);
                }
                ProtobufCMessage *m = protobuf_c_message_unpack(roots[r], NULL, len, copy);
                if (m != NULL) {
                    size_t again;
                    free(pack_alloc(m, &again)); /* whatever was accepted packs again */
                    protobuf_c_message_free_unpacked(m, NULL);
                }
                free(copy);
            }
            free(packed);
            free_built(built);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_descriptor_is_consistent),
        cmocka_unit_test(test_every_proto_message_is_listed),
        cmocka_unit_test(test_every_message_hangs_off_a_root),
        cmocka_unit_test(test_oneofs_carry_every_event_and_command),
        cmocka_unit_test(test_envelope_type_table_is_complete),
        cmocka_unit_test(test_every_proto_states_compatibility_rules),
        cmocka_unit_test(test_every_enum_starts_unspecified),
        cmocka_unit_test(test_every_message_roundtrips),
        cmocka_unit_test(test_every_protobuf_type_roundtrips),
        cmocka_unit_test(test_typed_envelope_roundtrip),
        cmocka_unit_test(test_truncated_envelope_never_crashes),
        cmocka_unit_test(test_garbage_is_rejected),
        cmocka_unit_test(test_mutated_roots_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
