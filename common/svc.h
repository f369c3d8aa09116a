/*
 * svc.h - what every shouwen service does the same way: read its
 * settings, log, serve its admin port, keep its database connection, open
 * its bus endpoint, run its loop and stop cleanly on SIGTERM or SIGINT.
 *
 * A service's main() fills a `struct svc_desc` and calls svc_main().
 * Signals are blocked in every thread before any is created and taken
 * synchronously by the loop (sigtimedwait), so no work ever runs in a
 * signal handler; a stop is seen within SVC_TICK_MS.
 */
#ifndef SHOUWEN_SVC_H
#define SHOUWEN_SVC_H

#include <stdbool.h>

#include "cfg.h"
#include "db.h"
#include "err.h"

#ifndef SHOUWEN_DEFAULT_RUN_DIR
#define SHOUWEN_DEFAULT_RUN_DIR "/var/run/shouwen"
#endif

#define SVC_TICK_MS 100

/* Settings every service reads, first in every table. */
// clang-format off
#define SVC_COMMON_SETTINGS                                                                        \
    {"SHOUWEN_RUN_DIR", CFG_STRING, 1, 200, SHOUWEN_DEFAULT_RUN_DIR, NULL,                        \
     "Folder for runtime state: the private database's socket and the ipc:// endpoints"},         \
        {"SHOUWEN_DATABASE_URL", CFG_STRING, 1, 1024,                                              \
         "host={run}/pg port=5432 dbname=shouwen user=shouwen", NULL,                              \
         "PostgreSQL connection, as a postgresql:// URI or key=value string"},                     \
        {"SHOUWEN_LOG_LEVEL", CFG_ENUM, 0, 0, "info", "debug|info|warn|error",                     \
         "Lowest level of log line written to stderr"},                                            \
        {"SHOUWEN_DB_RETRY_MAX", CFG_DURATION, 100, 300000, "5s", NULL,                            \
         "Longest wait between attempts to reach the database"},                                   \
        {"SHOUWEN_DB_CHECK_INTERVAL", CFG_DURATION, 100, 60000, "1s", NULL,                        \
         "How often a connected service checks that its database still answers"}

/* The admin listener of service NAME ("INTAKE") with its default address. */
#define SVC_ADMIN_SETTING(NAME, ADDR)                                                              \
    {                                                                                              \
        "SHOUWEN_" NAME "_ADMIN_ADDR", CFG_HOSTPORT, 0, 0, ADDR, NULL,                             \
            "Address of the admin HTTP server (/healthz, /readyz, /metrics)"                       \
    }

/* The bus endpoint where service NAME publishes its events. */
#define SVC_PUB_SETTING(NAME, URL)                                                                 \
    {                                                                                              \
        "SHOUWEN_" NAME "_PUB_URL", CFG_NNG_URL, 0, 0, URL, NULL,                                  \
            "nng address where this service publishes its events (listens)"                        \
    }

// clang-format on

struct svc;

struct svc_desc {
    const char *name;    /* "intake": logs, metrics, application_name */
    const char *summary; /* one line for --help */
    const struct cfg_def *settings;
    size_t nsettings;
    const char *admin_env; /* the SVC_ADMIN_SETTING name */
    const char *pub_env;   /* the SVC_PUB_SETTING name, or NULL */
    /* Optional hooks, all on the main thread. */
    /* Checks between settings that the table cannot express; also run by --check-config. */
    sw_err (*check)(const struct cfg *c, char *err, size_t errlen);
    sw_err (*start)(struct svc *s); /* after settings, admin and bus are up */
    void (*tick)(struct svc *s);    /* every SVC_TICK_MS or sooner */
    /* Whether the service's own work is ready (after the database is), and if not
     * why: called on an nng thread, so it must be fast and read atomics only. */
    bool (*ready)(struct svc *s, char *why, size_t whylen);
    /* Once on the way out, also after a failed start; before the database closes. */
    void (*stop)(struct svc *s);
};

/*
 * svc_main runs the service until SIGTERM or SIGINT and returns the
 * process exit code: 0 after a clean stop, 1 when it cannot start (bad
 * setting, address in use), 2 for a bad command line.
 */
int svc_main(const struct svc_desc *d, int argc, char **argv);

/* Accessors for hooks. */
const struct cfg *svc_cfg(struct svc *s);
struct db *svc_db(struct svc *s);
void *svc_pub_socket(struct svc *s); /* nng_socket* or NULL */
void *svc_data(struct svc *s);
void svc_set_data(struct svc *s, void *data);

/* svc_stopping: a stop signal is pending.  Any thread. */
int svc_stopping(void);

#endif
