/*
 * crypto.h - the few cryptographic pieces shouwen needs, on mbedTLS
 * (already under nng): SHA-256 of credentials, constant-time comparison,
 * and random secrets.
 */
#ifndef SHOUWEN_CRYPTO_H
#define SHOUWEN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* crypto_sha256 writes the SHA-256 of `len` bytes at `data` into out. */
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/* crypto_equal compares n bytes in time that does not depend on where they differ. */
bool crypto_equal(const void *a, const void *b, size_t n);

/*
 * crypto_random_hex writes 2 * nbytes lowercase hex digits of fresh
 * randomness (getrandom) and a NUL into out (2 * nbytes + 1 bytes).
 * Returns SW_EIO when the system gives no randomness.
 */
sw_err crypto_random_hex(char *out, size_t nbytes);

/* crypto_hex writes 2 * n hex digits of `in` and a NUL into out. */
void crypto_hex(const uint8_t *in, size_t n, char *out);

/* crypto_unhex reads exactly 2n hex digits (either case) of s into out; false otherwise. */
bool crypto_unhex(const char *s, uint8_t *out, size_t n);

#endif
