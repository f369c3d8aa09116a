/*
 * svc.c - the common life of a service: start, loop, stop.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "admin.h"
#include "log.h"
#include "metrics.h"
#include "svc.h"
#include "tls.h"

#define SVC_RECV_MAX (1u << 20) /* no service accepts a bus message over 1 MiB */

struct svc {
    const struct svc_desc *desc;
    struct cfg cfg;
    struct db *db;
    struct admin *admin;
    nng_socket pub;
    bool pub_open;
    void *data;
};

static _Atomic int stop_seen;

int svc_stopping(void)
{
    sigset_t pending;
    if (atomic_load(&stop_seen))
        return 1;
    if (sigpending(&pending) != 0)
        return 0;
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

const struct cfg *svc_cfg(struct svc *s)
{
    return &s->cfg;
}

struct db *svc_db(struct svc *s)
{
    return s->db;
}

void *svc_pub_socket(struct svc *s)
{
    return s->pub_open ? &s->pub : NULL;
}

void *svc_data(struct svc *s)
{
    return s->data;
}

void svc_set_data(struct svc *s, void *data)
{
    s->data = data;
}

static bool svc__ready(void *arg, char *why, size_t whylen)
{
    struct svc *s = arg;
    if (svc_stopping()) {
        snprintf(why, whylen, "stopping");
        return false;
    }
    if (!db_ready(s->db)) {
        char err[400];
        db_last_error(s->db, err, sizeof(err));
        snprintf(why, whylen, "database unreachable: %s", err[0] ? err : "not connected yet");
        return false;
    }
    if (s->desc->ready != NULL && !s->desc->ready(s, why, whylen))
        return false;
    snprintf(why, whylen, "database reachable");
    return true;
}

static void svc__usage(FILE *f, const struct svc_desc *d)
{
    fprintf(
        f,
        "usage: shouwen-%s [--help | --check-config]\n\n%s\n\n"
        "  --check-config  check the settings, print them, exit 0 (or 1 naming the bad one)\n\n",
        d->name, d->summary);
    cfg_help(f, d->settings, d->nsettings);
}

/* Print a setting's value with any password in a connection string hidden. */
static void svc__print_setting(const char *env, const char *val)
{
    char out[1100];
    const char *p = strstr(val, "://");
    const char *at = p ? strchr(p + 3, '@') : NULL;
    const char *colon = p ? strchr(p + 3, ':') : NULL;
    if (at != NULL && colon != NULL && colon < at) /* scheme://user:secret@host */
        snprintf(out, sizeof(out), "%.*s***%s", (int)(colon + 1 - val), val, at);
    else
        snprintf(out, sizeof(out), "%s", val);
    char *pw = strstr(out, "password=");
    if (pw != NULL) { /* key=value form (quoted or not), or a URI query parameter */
        const char *end = pw + 9;
        if (*end == '\'') {
            for (end++; *end && *end != '\''; end++)
                if (*end == '\\' && end[1] != '\0')
                    end++;
            if (*end == '\'')
                end++;
        } else {
            while (*end && *end != ' ' && *end != '&')
                end++;
        }
        char rest[1100];
        snprintf(rest, sizeof(rest), "%s", end);
        snprintf(pw, sizeof(out) - (size_t)(pw - out), "password=***%s", rest);
    }
    printf("%s=%s\n", env, out);
}

static sw_err svc__open_pub(struct svc *s, const char *url, char *err, size_t errlen)
{
    int rv;
    if ((rv = nng_pub0_open(&s->pub)) != 0) {
        snprintf(err, errlen, "could not open the publish socket: %s", nng_strerror(rv));
        return SW_ENNG;
    }
    s->pub_open = true;
    if ((rv = nng_socket_set_size(s->pub, NNG_OPT_RECVMAXSZ, SVC_RECV_MAX)) != 0 ||
        (rv = tls_listen(s->pub, url)) != 0) {
        snprintf(err, errlen, "could not listen for publishing on %s: %s", url, nng_strerror(rv));
        return SW_ENNG;
    }
    return SW_OK;
}

/*
 * The TLS files, when the table has them; and no tls+tcp:// address
 * without them (the PUB and REP addresses, the SUB_URLS lists).
 */
static sw_err svc__tls(const struct cfg *c, char *err, size_t errlen)
{
    bool has = false;
    for (size_t i = 0; i < c->n; i++)
        has = has || strcmp(c->defs[i].env, "SHOUWEN_TLS_CERT") == 0;
    if (has) {
        sw_err rv = tls_configure_from(c, err, errlen);
        if (rv != SW_OK)
            return rv;
    }
    for (size_t i = 0; i < c->n && !tls_enabled(); i++) {
        const char *env = c->defs[i].env;
        size_t n = strlen(env);
        bool url =
            c->defs[i].type == CFG_NNG_URL || (n > 9 && strcmp(env + n - 9, "_SUB_URLS") == 0);
        if (url && tls_url(c->vals[i].str)) {
            snprintf(err, errlen,
                     "%s names a tls+tcp:// address, but SHOUWEN_TLS_CERT, SHOUWEN_TLS_KEY and "
                     "SHOUWEN_TLS_CA are not set",
                     env);
            return SW_EMISSING;
        }
    }
    return SW_OK;
}

int svc_main(const struct svc_desc *d, int argc, char **argv)
{
    struct svc s = {.desc = d};
    char err[1024];
    sigset_t sigs;
    int code = 1;
    bool announced = false;
    bool check_only = false;
    long long last_check = 0;

    /* Before any thread exists, so that every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            svc__usage(stdout, d);
            return 0;
        }
        if (strcmp(argv[i], "--check-config") == 0 && argc == 2) {
            check_only = true;
            continue;
        }
        fprintf(stderr, "shouwen-%s: unknown argument \"%s\" (try --help)\n", d->name, argv[i]);
        return 2;
    }

    log_init(d->name, LOG_INFO);
    if (cfg_load(&s.cfg, d->settings, d->nsettings, err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "CFG-INVALID", "refusing to start: %s", err);
        return 1;
    }
    if (svc__tls(&s.cfg, err, sizeof(err)) != SW_OK ||
        (d->check != NULL && d->check(&s.cfg, err, sizeof(err)) != SW_OK)) {
        LOG(LOG_ERROR, "CFG-INVALID", "refusing to start: %s", err);
        tls_fini();
        cfg_fini(&s.cfg);
        return 1;
    }
    if (check_only) {
        tls_fini();
        for (size_t i = 0; i < s.cfg.n; i++)
            svc__print_setting(d->settings[i].env, s.cfg.vals[i].str);
        cfg_fini(&s.cfg);
        return 0;
    }
    log_init(d->name, (enum log_level)log_level_parse(cfg_str(&s.cfg, "SHOUWEN_LOG_LEVEL")));
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    metric_set(metrics_get(METRIC_GAUGE, "shouwen_up", "1 while the service runs", NULL), 1);
    if (db_open(&s.db, cfg_str(&s.cfg, "SHOUWEN_DATABASE_URL"), d->name,
                cfg_ms(&s.cfg, "SHOUWEN_DB_RETRY_MAX")) != SW_OK) {
        LOG(LOG_ERROR, "SVC-NOMEM", "refusing to start: out of memory");
        goto out;
    }
    if (admin_open(&s.admin, d->name, cfg_str(&s.cfg, d->admin_env), svc__ready, &s, err,
                   sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "ADMIN-LISTEN", "refusing to start: %s (%s)", err, d->admin_env);
        goto out;
    }
    if (d->pub_env != NULL &&
        svc__open_pub(&s, cfg_str(&s.cfg, d->pub_env), err, sizeof(err)) != SW_OK) {
        LOG(LOG_ERROR, "BUS-LISTEN", "refusing to start: %s (%s)", err, d->pub_env);
        goto out;
    }
    if (d->start != NULL && d->start(&s) != SW_OK)
        goto out; /* the hook logged why */

    struct metric *m_tls = metrics_get(
        METRIC_COUNTER, "shouwen_tls_refused_total",
        "Peers refused by the tls+tcp:// listeners (no certificate, or not from SHOUWEN_TLS_CA)",
        NULL);
    long long check_every = cfg_ms(&s.cfg, "SHOUWEN_DB_CHECK_INTERVAL");
    for (;;) {
        long long now = db_now_ms();
        bool check = now - last_check >= check_every;
        if (check) {
            last_check = now;
            if (tls_enabled())
                metric_set(m_tls, (int64_t)tls_refused());
        }
        if (db_tick(s.db, check, svc_stopping) == SW_OK && !announced) {
            LOG(LOG_INFO, "SVC-READY", "%s ready: admin http://%s%s%s", d->name,
                cfg_str(&s.cfg, d->admin_env), d->pub_env ? ", publishing on " : "",
                d->pub_env ? cfg_str(&s.cfg, d->pub_env) : "");
            announced = true;
        }
        if (d->tick != NULL && db_ready(s.db))
            d->tick(&s);

        struct timespec ts = {.tv_sec = 0, .tv_nsec = SVC_TICK_MS * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&sigs, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            atomic_store(&stop_seen, 1);
            LOG(LOG_INFO, "SVC-STOP", "%s stopping on %s", d->name,
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            LOG(LOG_ERROR, "SVC-SIGNAL", "could not wait for signals: %s", strerror(errno));
            goto out;
        }
    }
    code = 0;
out:
    if (d->stop != NULL)
        d->stop(&s);
    admin_close(s.admin);
    if (s.pub_open)
        nng_close(s.pub);
    db_close(s.db);
    cfg_fini(&s.cfg);
    tls_fini();
    if (code == 0)
        LOG(LOG_INFO, "SVC-STOPPED", "%s stopped", d->name);
    return code;
}
