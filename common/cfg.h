/*
 * cfg.h - the settings table (Redis's standardConfig).
 *
 * Each service describes every setting it reads in one table: environment
 * variable, type, bounds, default and help.  cfg_load reads the
 * environment once at start, checks every value and either fills a
 * `struct cfg` or fails with a message that names the variable and the
 * accepted form; services then refuse to start.  `--help` prints the table.
 *
 * A default may contain "{run}", replaced by the value of SHOUWEN_RUN_DIR
 * (which must come earlier in the table): that is how one setting moves
 * the database socket and the ipc:// endpoints of a whole installation.
 */
#ifndef SHOUWEN_CFG_H
#define SHOUWEN_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef enum cfg_type {
    CFG_STRING,   /* min/max bound the length in bytes */
    CFG_INT,      /* min/max bound the value */
    CFG_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    CFG_ENUM,     /* one of `choices`, separated by '|' */
    CFG_DURATION, /* integer with unit ms, s, m, h or d; min/max in milliseconds */
    CFG_NNG_URL,  /* ipc://path, tcp://host:port, tls+tcp://host:port or inproc://name */
    CFG_HOSTPORT, /* host:port or [v6]:port, for HTTP listeners */
} cfg_type;

struct cfg_def {
    const char *env;
    cfg_type type;
    long long min;
    long long max;
    const char *def;     /* NULL: required */
    const char *choices; /* CFG_ENUM only */
    const char *help;
};

struct cfg_value {
    char *str;     /* the effective text (default expanded), always set */
    long long num; /* INT, BOOL (0/1), DURATION (ms), ENUM (index) */
    bool from_env; /* set by the environment rather than the default */
};

struct cfg {
    const struct cfg_def *defs;
    size_t n;
    struct cfg_value *vals;
};

/*
 * cfg_load reads and validates every setting of `defs` from the
 * environment.  On success fills `*out` (free with cfg_fini) and returns
 * SW_OK; on failure writes a one-line message into `err` and returns
 * SW_EINVAL, SW_ERANGE, SW_EMISSING or SW_ENOMEM, and `*out` is untouched.
 * `defs` must outlive `out`.
 */
sw_err cfg_load(struct cfg *out, const struct cfg_def *defs, size_t n, char *err, size_t errlen);

void cfg_fini(struct cfg *c);

/* cfg_help prints every setting with its form, default and help. */
void cfg_help(FILE *f, const struct cfg_def *defs, size_t n);

/*
 * Accessors by environment name.  Asking for a name the table does not
 * have, or with the wrong type, is a bug in our code and aborts.
 */
const char *cfg_str(const struct cfg *c, const char *env);
long long cfg_int(const struct cfg *c, const char *env);
bool cfg_bool(const struct cfg *c, const char *env);
long long cfg_ms(const struct cfg *c, const char *env);

/*
 * cfg_parse_duration parses "250ms", "5s", "2m", "1h", "1d" into
 * milliseconds.  Returns SW_OK or SW_EINVAL (no unit, bad number, overflow).
 */
sw_err cfg_parse_duration(const char *s, long long *ms);

#endif
