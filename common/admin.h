/*
 * admin.h - the small HTTP server every service runs for operators.
 *
 *   GET /healthz  200 while the process is alive and serving
 *   GET /readyz   200 when the service can do its work (its database is
 *                 reachable), else 503 with the reason
 *   GET /metrics  Prometheus text format 0.0.4
 *
 * Served by nng's HTTP server on its own threads.  The readiness answer
 * comes from a callback that must be fast and thread-safe (it reads
 * atomics; it never queries the database itself).
 */
#ifndef SHOUWEN_ADMIN_H
#define SHOUWEN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/*
 * Fills `why` (a short reason) and returns true when ready.  Called on an
 * nng thread.
 */
typedef bool (*admin_ready_fn)(void *arg, char *why, size_t whylen);

struct admin;

/*
 * admin_open starts serving on `hostport` ("127.0.0.1:7401").  On failure
 * (address in use, bad address) writes a message into `err` and returns
 * SW_ENNG.  Free with admin_close.
 */
sw_err admin_open(struct admin **out, const char *service, const char *hostport,
                  admin_ready_fn ready, void *arg, char *err, size_t errlen);

/* admin_close stops the server and frees it; accepts NULL. */
void admin_close(struct admin *a);

#endif
