/*
 * crypto.c - SHA-256, constant-time comparison and random secrets.
 */
#include <errno.h>
#include <sys/random.h>

#include <mbedtls/sha256.h>

#include "crypto.h"

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    /* mbedtls_sha256 fails only for bad arguments; ours are never bad */
    (void)mbedtls_sha256_ret((const unsigned char *)data, len, out, 0);
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(x[i] ^ y[i]);
    return d == 0;
}

void crypto_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

bool crypto_unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = s[2 * i] != '\0' ? hexval(s[2 * i]) : -1;
        int lo = hi >= 0 && s[2 * i + 1] != '\0' ? hexval(s[2 * i + 1]) : -1;
        if (lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[2 * n] == '\0';
}

sw_err crypto_random_hex(char *out, size_t nbytes)
{
    uint8_t b[64];
    if (nbytes > sizeof(b))
        return SW_ERANGE;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(b + got, nbytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SW_EIO;
        }
        got += (size_t)n;
    }
    crypto_hex(b, nbytes, out);
    return SW_OK;
}
