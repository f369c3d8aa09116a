/*
 * cfg.c - reading and checking the settings table.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "cfg.h"

#define CFG_STRING_MAX_DEFAULT 4096
#define RUN_DIR_ENV            "SHOUWEN_RUN_DIR"

static void cfg__err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg__err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Replace every "{run}" in `def` by `run`; returns a malloc'd string or NULL. */
static char *cfg__expand(const char *def, const char *run)
{
    size_t n = 0;
    const char *p;
    for (p = def; *p; p++) {
        if (strncmp(p, "{run}", 5) == 0 && run != NULL) {
            n += strlen(run);
            p += 4;
        } else {
            n++;
        }
    }
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (p = def; *p; p++) {
        if (strncmp(p, "{run}", 5) == 0 && run != NULL) {
            size_t rl = strlen(run);
            memcpy(o, run, rl);
            o += rl;
            p += 4;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

sw_err cfg_parse_duration(const char *s, long long *ms)
{
    static const struct {
        const char *unit;
        long long mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char *end;
    if (*s < '0' || *s > '9')
        return SW_EINVAL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s)
        return SW_EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > LLONG_MAX / units[i].mult)
                return SW_EINVAL;
            *ms = v * units[i].mult;
            return SW_OK;
        }
    }
    return SW_EINVAL;
}

/* "300000" -> "5m": the largest unit that divides the value. */
static void cfg__fmt_ms(long long ms, char *out, size_t outlen)
{
    static const struct {
        const char *unit;
        long long mult;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].mult == 0) {
            snprintf(out, outlen, "%lld%s", ms / units[i].mult, units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%lldms", ms);
}

static void cfg__form(const struct cfg_def *d, char *out, size_t outlen)
{
    char lo[32], hi[32];
    switch (d->type) {
    case CFG_STRING:
        snprintf(out, outlen, "a string of %lld to %lld bytes", d->min, d->max);
        break;
    case CFG_INT:
        snprintf(out, outlen, "an integer from %lld to %lld", d->min, d->max);
        break;
    case CFG_BOOL:
        snprintf(out, outlen, "true or false");
        break;
    case CFG_ENUM:
        snprintf(out, outlen, "one of %s", d->choices);
        break;
    case CFG_DURATION:
        cfg__fmt_ms(d->min, lo, sizeof(lo));
        cfg__fmt_ms(d->max, hi, sizeof(hi));
        snprintf(out, outlen, "a duration from %s to %s, with unit ms, s, m, h or d", lo, hi);
        break;
    case CFG_NNG_URL:
        snprintf(out, outlen,
                 "an nng URL: ipc:///path, tcp://host:port, tls+tcp://host:port or inproc://name");
        break;
    case CFG_HOSTPORT:
        snprintf(out, outlen, "host:port (port 1-65535)");
        break;
    }
}

static int cfg__enum_index(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    int idx = 0;
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vl && strncmp(p, v, len) == 0)
            return idx;
        idx++;
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return -1;
}

static int cfg__check_hostport(const char *v)
{
    const char *colon;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close == v + 1 || close[1] != ':')
            return -1;
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v || memchr(v, ':', (size_t)(colon - v)) != NULL)
            return -1;
    }
    const char *port = colon + 1;
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
        return -1;
    long p = strtol(port, NULL, 10);
    return (p >= 1 && p <= 65535) ? 0 : -1;
}

static int cfg__check_nng_url(const char *v)
{
    static const char *const schemes[] = {"ipc://",  "tcp://",  "tls+tcp://", "inproc://",
                                          "tcp4://", "tcp6://", "ws://",      "wss://"};
    int known = 0;
    size_t vl = strlen(v);
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t sl = strlen(schemes[i]);
        if (vl > sl && strncmp(v, schemes[i], sl) == 0)
            known = 1;
    }
    if (!known)
        return -1;
    nng_url *url = NULL;
    if (nng_url_parse(&url, v) != 0)
        return -1;
    int rv = 0;
    if (strncmp(v, "ipc://", 6) != 0 && strncmp(v, "inproc://", 9) != 0 &&
        (url->u_port == NULL || url->u_port[0] == '\0' || strcmp(url->u_port, "0") == 0))
        rv = -1; /* a listener needs a port we can advertise */
    nng_url_free(url);
    return rv;
}

/* Check one value; on failure fill err and return the error. */
static sw_err cfg__parse(const struct cfg_def *d, const char *v, struct cfg_value *out, char *err,
                         size_t errlen)
{
    char form[160];
    cfg__form(d, form, sizeof(form));
    size_t len = strlen(v);

    if (d->type != CFG_STRING && len == 0) {
        cfg__err(err, errlen, "%s: empty value: expected %s", d->env, form);
        return SW_EINVAL;
    }
    switch (d->type) {
    case CFG_STRING:
        if ((long long)len < d->min || (long long)len > d->max) {
            cfg__err(err, errlen, "%s: value is %zu bytes long: expected %s", d->env, len, form);
            return SW_ERANGE;
        }
        return SW_OK;
    case CFG_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno == ERANGE || *end != '\0' || end == v || strchr(v, ' ') != NULL) {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s", d->env, v, form);
            return SW_EINVAL;
        }
        if (n < d->min || n > d->max) {
            cfg__err(err, errlen, "%s: value %lld out of range: expected %s", d->env, n, form);
            return SW_ERANGE;
        }
        out->num = n;
        return SW_OK;
    }
    case CFG_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            out->num = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            out->num = 0;
        else {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s", d->env, v, form);
            return SW_EINVAL;
        }
        return SW_OK;
    case CFG_ENUM: {
        int idx = cfg__enum_index(d->choices, v);
        if (idx < 0) {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s", d->env, v, form);
            return SW_EINVAL;
        }
        out->num = idx;
        return SW_OK;
    }
    case CFG_DURATION: {
        long long ms;
        if (cfg_parse_duration(v, &ms) != SW_OK) {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s (e.g. 250ms, 5s, 2m)",
                     d->env, v, form);
            return SW_EINVAL;
        }
        if (ms < d->min || ms > d->max) {
            cfg__err(err, errlen, "%s: value \"%s\" out of range: expected %s", d->env, v, form);
            return SW_ERANGE;
        }
        out->num = ms;
        return SW_OK;
    }
    case CFG_NNG_URL:
        if (cfg__check_nng_url(v) != 0) {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s", d->env, v, form);
            return SW_EINVAL;
        }
        return SW_OK;
    case CFG_HOSTPORT:
        if (cfg__check_hostport(v) != 0) {
            cfg__err(err, errlen, "%s: invalid value \"%s\": expected %s", d->env, v, form);
            return SW_EINVAL;
        }
        return SW_OK;
    }
    cfg__err(err, errlen, "%s: unknown setting type", d->env);
    return SW_EINVAL;
}

static void cfg__free_vals(struct cfg_value *vals, size_t n)
{
    if (vals == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(vals[i].str);
    free(vals);
}

sw_err cfg_load(struct cfg *out, const struct cfg_def *defs, size_t n, char *err, size_t errlen)
{
    sw_err rv = SW_OK;
    const char *run = NULL;
    struct cfg_value *vals = calloc(n ? n : 1, sizeof(*vals));
    if (vals == NULL) {
        cfg__err(err, errlen, "out of memory reading settings");
        return SW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cfg_def *d = &defs[i];
        const char *env = getenv(d->env);
        if (env != NULL) {
            vals[i].str = strdup(env);
            vals[i].from_env = true;
        } else if (d->def != NULL) {
            vals[i].str = cfg__expand(d->def, run);
        } else {
            cfg__err(err, errlen, "%s: required setting is missing (%s)", d->env, d->help);
            rv = SW_EMISSING;
            goto out;
        }
        if (vals[i].str == NULL) {
            cfg__err(err, errlen, "out of memory reading settings");
            rv = SW_ENOMEM;
            goto out;
        }
        rv = cfg__parse(d, vals[i].str, &vals[i], err, errlen);
        if (rv != SW_OK)
            goto out;
        if (strcmp(d->env, RUN_DIR_ENV) == 0)
            run = vals[i].str;
    }
    out->defs = defs;
    out->n = n;
    out->vals = vals;
    vals = NULL;
out:
    cfg__free_vals(vals, n);
    return rv;
}

void cfg_fini(struct cfg *c)
{
    if (c == NULL)
        return;
    cfg__free_vals(c->vals, c->n);
    c->vals = NULL;
    c->n = 0;
}

void cfg_help(FILE *f, const struct cfg_def *defs, size_t n)
{
    char form[160];
    fprintf(f, "Settings (environment variables):\n");
    for (size_t i = 0; i < n; i++) {
        cfg__form(&defs[i], form, sizeof(form));
        fprintf(f, "  %s\n      %s\n      form: %s\n      default: %s\n", defs[i].env, defs[i].help,
                form, defs[i].def ? defs[i].def : "(none: required)");
    }
    fprintf(f, "  {run} in a default stands for the value of " RUN_DIR_ENV ".\n");
}

static const struct cfg_value *cfg__find(const struct cfg *c, const char *env, cfg_type want)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->defs[i].env, env) == 0) {
            if (c->defs[i].type != want && !(want == CFG_STRING))
                abort(); /* bug: wrong accessor for this setting */
            return &c->vals[i];
        }
    }
    abort(); /* bug: the table has no such setting */
}

const char *cfg_str(const struct cfg *c, const char *env)
{
    return cfg__find(c, env, CFG_STRING)->str;
}

long long cfg_int(const struct cfg *c, const char *env)
{
    return cfg__find(c, env, CFG_INT)->num;
}

bool cfg_bool(const struct cfg *c, const char *env)
{
    return cfg__find(c, env, CFG_BOOL)->num != 0;
}

long long cfg_ms(const struct cfg *c, const char *env)
{
    return cfg__find(c, env, CFG_DURATION)->num;
}
