/*
 * auditlog_test.c - the audit chain's bytes: entry hashes, the site key,
 * its id and checkpoint signatures, against vectors computed with Python's
 * hashlib and hmac from the layout documented in auditlog.h; hex decoding
 * (crypto_unhex); and who an actor is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auditlog.h"
#include "crypto.h"

#define SITE "11111111-2222-4333-8444-555555555555"

static void hex_of(const uint8_t *h, char out[65])
{
    crypto_hex(h, AUDIT_HASH_LEN, out);
    out[64] = '\0';
}

static void test_chain_hashes(void **state)
{
    (void)state;
    uint8_t zero[AUDIT_HASH_LEN] = {0}, h1[AUDIT_HASH_LEN], h2[AUDIT_HASH_LEN];
    char hex[65];
    struct audit_entry e = {
        .site_id = SITE,
        .seq = 1,
        .event_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        .type = "case.registered",
        .case_id = "99999999-8888-4777-8666-555555555555",
        .actor = "li.desk for wu.tech",
        .event_us = 1764000000123456,
        .recorded_us = 1764000000654321,
    };
    crypto_sha256("envelope", 8, e.payload_sha256);
    audit_hash(zero, &e, h1);
    hex_of(h1, hex);
    assert_string_equal(hex, "f2a198e5c0759bd94bf40cc8ebbbc0debe158067f1a5b7461da24635ef279481");

    struct audit_entry e2 = e;
    e2.seq = 2;
    e2.event_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeef";
    e2.type = "audit.verified";
    e2.case_id = "";
    e2.actor = "key:k1";
    e2.event_us = 1764000000999999;
    e2.recorded_us = 1764000001000000;
    audit_hash(h1, &e2, h2);
    hex_of(h2, hex);
    assert_string_equal(hex, "1940bcd295bf4eac89d1cf2bbdb17674e5a0f3944d88b4da36cd7de902e9b81c");

    /* any field changed, or another previous hash: another hash */
    uint8_t x[AUDIT_HASH_LEN];
    e2.actor = "key:k2";
    audit_hash(h1, &e2, x);
    assert_false(crypto_equal(x, h2, AUDIT_HASH_LEN));
    e2.actor = "key:k1";
    audit_hash(zero, &e2, x);
    assert_false(crypto_equal(x, h2, AUDIT_HASH_LEN));
    e2.recorded_us++;
    audit_hash(h1, &e2, x);
    assert_false(crypto_equal(x, h2, AUDIT_HASH_LEN));
}

static void test_checkpoint_signature(void **state)
{
    (void)state;
    const char *master = "master-secret-of-at-least-32-characters";
    uint8_t key[AUDIT_HASH_LEN], h1[AUDIT_HASH_LEN], sig[AUDIT_HASH_LEN];
    char hex[65], kid[17];
    audit_site_key(master, strlen(master), SITE, key);
    hex_of(key, hex);
    assert_string_equal(hex, "2a0fe151ea74422381de4c34256f02b6171754895846c50016ebbdce8b4113cc");
    audit_key_id(key, kid);
    assert_string_equal(kid, "b5eb21e11fc7bfb4");
    static const char h1hex[] = "f2a198e5c0759bd94bf40cc8ebbbc0debe158067f1a5b7461da24635ef279481";
    for (size_t i = 0; i < AUDIT_HASH_LEN; i++) {
        unsigned v;
        sscanf(h1hex + 2 * i, "%2x", &v);
        h1[i] = (uint8_t)v;
    }
    audit_checkpoint_sign(key, SITE, 2, h1, 1764000002000000, sig);
    hex_of(sig, hex);
    assert_string_equal(hex, "e13466ab45320dd69bfcdce0bea83c7cd88544dbbab1bc9a35a442055fcb2055");
    /* another site's key differs */
    uint8_t other[AUDIT_HASH_LEN];
    audit_site_key(master, strlen(master), "11111111-2222-4333-8444-555555555556", other);
    assert_false(crypto_equal(key, other, AUDIT_HASH_LEN));
}

static void test_unhex(void **state)
{
    (void)state;
    uint8_t b[4], in[4] = {0x00, 0x9f, 0xA0, 0xff};
    char hex[9];
    crypto_hex(in, 4, hex);
    assert_true(crypto_unhex(hex, b, 4));
    assert_memory_equal(b, in, 4);
    assert_true(crypto_unhex("009FA0FF", b, 4)); /* either case */
    assert_memory_equal(b, in, 4);
    assert_false(crypto_unhex("009fa0f", b, 4));   /* short */
    assert_false(crypto_unhex("009fa0fff", b, 4)); /* long */
    assert_false(crypto_unhex("009fa0fg", b, 4));  /* not hex */
    assert_false(crypto_unhex("", b, 1));
}

static void test_actor(void **state)
{
    (void)state;
    char out[AUDIT_ACTOR_MAX + 1];
    Shouwen__V1__Actor a = SHOUWEN__V1__ACTOR__INIT;
    audit_actor(NULL, out);
    assert_string_equal(out, "");
    audit_actor(&a, out);
    assert_string_equal(out, "");
    a.staff_code = "li.desk";
    audit_actor(&a, out);
    assert_string_equal(out, "li.desk");
    a.on_behalf_of = "wu.tech";
    audit_actor(&a, out);
    assert_string_equal(out, "li.desk for wu.tech");
    a.staff_code = "";
    a.api_key_id = "k-1";
    a.external_system = "hotline";
    audit_actor(&a, out);
    assert_string_equal(out, "key:k-1");
    a.api_key_id = "";
    audit_actor(&a, out);
    assert_string_equal(out, "system:hotline");
    /* a line break cannot forge a field of the canonical bytes */
    a.external_system = "evil\ncase.closed";
    audit_actor(&a, out);
    assert_string_equal(out, "system:evil?case.closed");
    /* cut on a character boundary */
    char longname[400];
    memset(longname, 'x', sizeof(longname));
    for (size_t i = 0; i + 3 <= sizeof(longname) - 1; i += 3)
        memcpy(longname + i, "\xe7\x8e\x8b", 3); /* 王 */
    longname[sizeof(longname) - 1] = '\0';
    a.external_system = longname;
    audit_actor(&a, out);
    assert_true(strlen(out) <= AUDIT_ACTOR_MAX);
    size_t n = strlen(out) - strlen("system:");
    assert_int_equal(n % 3, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_hashes),
        cmocka_unit_test(test_checkpoint_signature),
        cmocka_unit_test(test_unhex),
        cmocka_unit_test(test_actor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
