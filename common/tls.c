/*
 * tls.c - the PEM files of a process, applied to tls+tcp:// endpoints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "tls.h"

#define TLS_FILE_MAX (1 << 20)
#define TLS_SCHEME   "tls+tcp://"

#define TLS_LISTENERS_MAX 8

static struct {
    char *cert, *key, *ca;                     /* NUL-terminated PEM text; NULL: TLS off */
    char name[254];                            /* SHOUWEN_TLS_SERVER_NAME */
    nng_listener listeners[TLS_LISTENERS_MAX]; /* the tls+tcp:// ones, for tls_refused */
    int nlisteners;
} the;

/* Reads `path` whole, NUL-terminated, into *out. */
static sw_err slurp(const char *setting, const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read \"%s\": %s", setting, path, strerror(errno));
        return SW_ENOTFOUND;
    }
    char *b = malloc(TLS_FILE_MAX + 1);
    if (b == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", setting);
        return SW_ENOMEM;
    }
    size_t n = fread(b, 1, TLS_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == 0 || n > TLS_FILE_MAX) {
        free(b);
        snprintf(err, errlen, "%s: \"%s\" is %s", setting, path,
                 bad      ? "unreadable"
                 : n == 0 ? "empty"
                          : "larger than 1 MiB");
        return SW_EINVAL;
    }
    b[n] = '\0';
    if (strstr(b, "-----BEGIN ") == NULL) {
        free(b);
        snprintf(err, errlen, "%s: \"%s\" is not PEM (no -----BEGIN line)", setting, path);
        return SW_EINVAL;
    }
    *out = b;
    return SW_OK;
}

void tls_fini(void)
{
    free(the.cert);
    free(the.key);
    free(the.ca);
    memset(&the, 0, sizeof(the));
}

/* The certificate parses, has not expired, is valid already, and the key is its key. */
static sw_err check_pair(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    char why[200];
    sw_err rv = SW_EINVAL;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&pk);
    int r = mbedtls_x509_crt_parse(&crt, (const unsigned char *)the.cert, strlen(the.cert) + 1);
    if (r != 0) {
        mbedtls_strerror(r, why, sizeof(why));
        snprintf(err, errlen, "SHOUWEN_TLS_CERT: \"%s\": not a certificate: %s", cert_path, why);
        goto out;
    }
    if (mbedtls_x509_time_is_past(&crt.valid_to)) {
        snprintf(err, errlen, "SHOUWEN_TLS_CERT: \"%s\" expired on %04d-%02d-%02d", cert_path,
                 crt.valid_to.year, crt.valid_to.mon, crt.valid_to.day);
        goto out;
    }
    if (mbedtls_x509_time_is_future(&crt.valid_from)) {
        snprintf(err, errlen, "SHOUWEN_TLS_CERT: \"%s\" is not valid before %04d-%02d-%02d",
                 cert_path, crt.valid_from.year, crt.valid_from.mon, crt.valid_from.day);
        goto out;
    }
    r = mbedtls_pk_parse_key(&pk, (const unsigned char *)the.key, strlen(the.key) + 1, NULL, 0);
    if (r != 0) {
        mbedtls_strerror(r, why, sizeof(why));
        snprintf(err, errlen, "SHOUWEN_TLS_KEY: \"%s\": not an unencrypted private key: %s",
                 key_path, why);
        goto out;
    }
    if (mbedtls_pk_check_pair(&crt.pk, &pk) != 0) {
        snprintf(err, errlen, "SHOUWEN_TLS_KEY: \"%s\" is not the key of SHOUWEN_TLS_CERT \"%s\"",
                 key_path, cert_path);
        goto out;
    }
    rv = SW_OK;
out:
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&crt);
    return rv;
}

sw_err tls_configure(const char *cert, const char *key, const char *ca, const char *server_name,
                     char *err, size_t errlen)
{
    tls_fini();
    int set = (cert[0] != '\0') + (key[0] != '\0') + (ca[0] != '\0');
    if (set == 0)
        return SW_OK;
    if (set != 3) {
        snprintf(err, errlen,
                 "%s is empty: SHOUWEN_TLS_CERT, SHOUWEN_TLS_KEY and SHOUWEN_TLS_CA "
                 "are set together or not at all",
                 cert[0] == '\0'  ? "SHOUWEN_TLS_CERT"
                 : key[0] == '\0' ? "SHOUWEN_TLS_KEY"
                                  : "SHOUWEN_TLS_CA");
        return SW_EMISSING;
    }
    sw_err rv = slurp("SHOUWEN_TLS_CERT", cert, &the.cert, err, errlen);
    if (rv == SW_OK)
        rv = slurp("SHOUWEN_TLS_KEY", key, &the.key, err, errlen);
    if (rv == SW_OK)
        rv = slurp("SHOUWEN_TLS_CA", ca, &the.ca, err, errlen);
    if (rv == SW_OK)
        rv = check_pair(cert, key, err, errlen);
    if (rv == SW_OK) {
        /* the CA bundle as nng will take it */
        mbedtls_x509_crt chain;
        mbedtls_x509_crt_init(&chain);
        int r = mbedtls_x509_crt_parse(&chain, (const unsigned char *)the.ca, strlen(the.ca) + 1);
        mbedtls_x509_crt_free(&chain);
        if (r != 0) {
            char why[200];
            mbedtls_strerror(r, why, sizeof(why));
            snprintf(err, errlen, "SHOUWEN_TLS_CA: \"%s\": not a certificate bundle: %s", ca, why);
            rv = SW_EINVAL;
        }
    }
    if (rv != SW_OK) {
        tls_fini();
        return rv;
    }
    snprintf(the.name, sizeof(the.name), "%s", server_name);
    return SW_OK;
}

sw_err tls_configure_from(const struct cfg *c, char *err, size_t errlen)
{
    return tls_configure(cfg_str(c, "SHOUWEN_TLS_CERT"), cfg_str(c, "SHOUWEN_TLS_KEY"),
                         cfg_str(c, "SHOUWEN_TLS_CA"), cfg_str(c, "SHOUWEN_TLS_SERVER_NAME"), err,
                         errlen);
}

bool tls_enabled(void)
{
    return the.cert != NULL;
}

bool tls_url(const char *url)
{
    return url != NULL && strstr(url, TLS_SCHEME) != NULL;
}

static bool is_tls(const char *url)
{
    return strncmp(url, TLS_SCHEME, strlen(TLS_SCHEME)) == 0;
}

/* A configuration for one endpoint; NULL with an nng error in *rv. */
static nng_tls_config *endpoint_config(nng_tls_mode mode, const char *url, int *rv)
{
    nng_tls_config *tc = NULL;
    if (!tls_enabled()) {
        *rv = NNG_ENOTSUP;
        return NULL;
    }
    if ((*rv = nng_tls_config_alloc(&tc, mode)) != 0)
        return NULL;
    *rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
    if (*rv == 0)
        *rv = nng_tls_config_ca_chain(tc, the.ca, NULL);
    if (*rv == 0)
        *rv = nng_tls_config_own_cert(tc, the.cert, the.key, NULL);
    if (*rv == 0 && mode == NNG_TLS_MODE_CLIENT) {
        char host[254];
        const char *h = url + strlen(TLS_SCHEME), *end;
        if (*h == '[') {
            h++;
            end = strchr(h, ']');
        } else {
            end = strrchr(h, ':');
        }
        size_t n = end != NULL ? (size_t)(end - h) : strlen(h);
        if (n >= sizeof(host))
            n = sizeof(host) - 1;
        memcpy(host, h, n);
        host[n] = '\0';
        *rv = nng_tls_config_server_name(tc, the.name[0] != '\0' ? the.name : host);
    }
    if (*rv != 0) {
        nng_tls_config_free(tc);
        return NULL;
    }
    return tc;
}

int tls_listen(nng_socket s, const char *url)
{
    if (!is_tls(url))
        return nng_listen(s, url, NULL, 0);
    nng_listener l;
    int rv;
    nng_tls_config *tc = endpoint_config(NNG_TLS_MODE_SERVER, url, &rv);
    if (tc == NULL)
        return rv;
    if ((rv = nng_listener_create(&l, s, url)) == 0) {
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc);
        if (rv == 0)
            rv = nng_listener_start(l, 0);
        if (rv != 0)
            nng_listener_close(l);
        else if (the.nlisteners < TLS_LISTENERS_MAX)
            the.listeners[the.nlisteners++] = l;
    }
    nng_tls_config_free(tc); /* the listener holds its own reference */
    return rv;
}

int tls_dial(nng_socket s, const char *url, int flags)
{
    if (!is_tls(url))
        return nng_dial(s, url, NULL, flags);
    nng_dialer d;
    int rv;
    nng_tls_config *tc = endpoint_config(NNG_TLS_MODE_CLIENT, url, &rv);
    if (tc == NULL)
        return rv;
    if ((rv = nng_dialer_create(&d, s, url)) == 0) {
        rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc);
        if (rv == 0)
            rv = nng_dialer_start(d, flags);
        if (rv != 0)
            nng_dialer_close(d);
    }
    nng_tls_config_free(tc);
    return rv;
}

uint64_t tls_refused(void)
{
    nng_stat *all = NULL;
    uint64_t n = 0;
    if (the.nlisteners == 0 || nng_stats_get(&all) != 0)
        return 0;
    for (int i = 0; i < the.nlisteners; i++) {
        nng_stat *ls = nng_stat_find_listener(all, the.listeners[i]);
        /* nng counts failed handshakes (no or a bad certificate) as auth errors */
        nng_stat *auth = ls != NULL ? nng_stat_find(ls, "auth") : NULL;
        if (auth != NULL)
            n += nng_stat_value(auth);
    }
    nng_stats_free(all);
    return n;
}
