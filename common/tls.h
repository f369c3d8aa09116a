/*
 * tls.h - mutual TLS for the tls+tcp:// endpoints of the bus and of
 * intake's REP socket.
 *
 * A process has one identity: a certificate (chain) and its key, and one
 * CA bundle its peers' certificates must chain to.  tls_configure reads
 * and checks the three PEM files once at start; tls_listen and tls_dial
 * then apply them to any tls+tcp:// URL and behave as nng_listen and
 * nng_dial for every other scheme.  A listener requires and verifies the
 * dialer's certificate; a dialer verifies the listener's certificate and
 * its name (SHOUWEN_TLS_SERVER_NAME, or the URL's host), and presents its
 * own.  A peer without a certificate from the CA gets no connection.
 */
#ifndef SHOUWEN_TLS_H
#define SHOUWEN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "cfg.h"
#include "err.h"

/* The settings, in every service's table after SVC_COMMON_SETTINGS. */
// clang-format off
#define TLS_SETTINGS                                                                               \
    {"SHOUWEN_TLS_CERT", CFG_STRING, 0, 1024, "", NULL,                                            \
     "PEM certificate (chain) this process presents on tls+tcp:// endpoints; empty: none"},        \
        {"SHOUWEN_TLS_KEY", CFG_STRING, 0, 1024, "", NULL,                                         \
         "PEM private key of SHOUWEN_TLS_CERT (unencrypted; keep it readable by this user only)"}, \
        {"SHOUWEN_TLS_CA", CFG_STRING, 0, 1024, "", NULL,                                          \
         "PEM CA bundle that peers' certificates must chain to on tls+tcp:// endpoints"},          \
        {"SHOUWEN_TLS_SERVER_NAME", CFG_STRING, 0, 253, "", NULL,                                  \
         "Name a tls+tcp:// listener's certificate must carry; empty: the host of the URL dialed"}
// clang-format on

/*
 * tls_configure reads the files (all three paths set, or all empty: then
 * TLS is off and a tls+tcp:// URL is refused).  server_name may be empty.
 * On failure writes a message naming the setting and the reason.
 */
sw_err tls_configure(const char *cert, const char *key, const char *ca, const char *server_name,
                     char *err, size_t errlen);

/* tls_configure_from reads the four settings of TLS_SETTINGS from `c`. */
sw_err tls_configure_from(const struct cfg *c, char *err, size_t errlen);

/* Whether tls_configure was given the files. */
bool tls_enabled(void);

/* Whether `url` (or any of a comma-separated list) is a tls+tcp:// address. */
bool tls_url(const char *url);

/* nng_listen / nng_dial (flags as nng_dial's), with TLS applied to tls+tcp:// URLs. */
int tls_listen(nng_socket s, const char *url);
int tls_dial(nng_socket s, const char *url, int flags);

/*
 * Peers the tls+tcp:// listeners refused so far (failed handshakes: no
 * certificate, or one the CA did not sign), from nng's statistics.
 */
uint64_t tls_refused(void);

/* Frees what tls_configure read. */
void tls_fini(void);

#endif
