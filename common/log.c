/*
 * log.c - JSON log lines with customer data masked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define LOG_LINE_MAX 8192

enum log_level log__min_level = LOG_INFO;
static char log_service[32] = "shouwen";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, enum log_level min)
{
    snprintf(log_service, sizeof(log_service), "%s", service);
    log__min_level = min;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_mask_phone(char *out, size_t outlen, const char *phone)
{
    if (outlen == 0)
        return;
    size_t n = strlen(phone);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        int keep = n >= 8 && (i < 3 || i >= n - 4);
        out[o++] = keep ? phone[i] : '*';
    }
    out[o] = '\0';
}

void log_mask_name(char *out, size_t outlen, const char *name)
{
    if (outlen == 0)
        return;
    size_t o = 0;
    int first = 1;
    const unsigned char *p = (const unsigned char *)name;
    while (*p) {
        size_t clen = 1;
        if (*p >= 0xf0)
            clen = 4;
        else if (*p >= 0xe0)
            clen = 3;
        else if (*p >= 0xc0)
            clen = 2;
        for (size_t k = 1; k < clen; k++)
            if (p[k] == '\0') {
                clen = k;
                break;
            }
        if (first) {
            if (o + clen + 1 > outlen)
                break;
            memcpy(out + o, p, clen);
            o += clen;
            first = 0;
        } else {
            if (o + 2 > outlen)
                break;
            out[o++] = '*';
        }
        p += clen;
    }
    out[o] = '\0';
}

void log_mask_text(char *text)
{
    for (char *p = text; *p;) {
        if (*p < '0' || *p > '9') {
            p++;
            continue;
        }
        char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p - start == 11 && start[0] == '1')
            memset(start + 3, '*', 4);
    }
}

static void log__time(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log__write(enum log_level level, const char *code, const struct log_field *fields,
                size_t nfields, const char *fmt, ...)
{
    char msg[2048];
    char ts[40];
    char masked[256];
    struct buf b;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_mask_text(msg);
    log__time(ts, sizeof(ts));

    sw_err rv = SW_OK;
    buf_init(&b, LOG_LINE_MAX);
    rv = buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"service\":", ts,
                    level_names[level < LOG_DEBUG || level > LOG_ERROR ? LOG_ERROR : level]);
    if (rv == SW_OK)
        rv = buf_json_string(&b, log_service);
    if (rv == SW_OK)
        rv = buf_puts(&b, ",\"code\":");
    if (rv == SW_OK)
        rv = buf_json_string(&b, code);
    if (rv == SW_OK)
        rv = buf_puts(&b, ",\"msg\":");
    if (rv == SW_OK)
        rv = buf_json_string(&b, msg);
    for (size_t i = 0; i < nfields; i++) {
        const char *v = fields[i].val;
        if (rv == SW_OK)
            rv = buf_puts(&b, ",");
        if (rv == SW_OK)
            rv = buf_json_string(&b, fields[i].key);
        if (rv == SW_OK)
            rv = buf_puts(&b, ":");
        if (v == NULL) {
            if (rv == SW_OK)
                rv = buf_puts(&b, "null");
            continue;
        }
        if (fields[i].kind == LOG_PHONE) {
            log_mask_phone(masked, sizeof(masked), v);
            v = masked;
        } else if (fields[i].kind == LOG_NAME) {
            log_mask_name(masked, sizeof(masked), v);
            v = masked;
        }
        if (rv == SW_OK)
            rv = buf_json_string(&b, v);
    }
    if (rv == SW_OK)
        rv = buf_puts(&b, "}\n");
    if (rv != SW_OK || b.data == NULL) {
        /* The line hit its ceiling: say so rather than write half a JSON object. */
        buf_free(&b);
        buf_init(&b, LOG_LINE_MAX);
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"error\",\"code\":\"LOG-TRUNCATED\"}\n", ts);
    }
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w; /* nowhere to report a failed log write */
    buf_free(&b);
}
