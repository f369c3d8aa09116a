/*
 * notify.c - templates, signatures, MIME mail, retry timing and rate
 * limits for notification (see notify.h).  No I/O.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "notify.h"

const char *const ntf_var_names[NTF_VARS] = {
    [NTF_SITE] = "site",
    [NTF_EVENT] = "event",
    [NTF_CASE_NUMBER] = "case_number",
    [NTF_SUBJECT] = "subject",
    [NTF_CASE_TYPE] = "case_type",
    [NTF_URGENCY] = "urgency",
    [NTF_STATUS] = "status",
    [NTF_DEPARTMENT] = "department",
    [NTF_FROM_DEPARTMENT] = "from_department",
    [NTF_HANDLER] = "handler",
    [NTF_OWNER] = "owner",
    [NTF_FIRST_RESPONDER] = "first_responder",
    [NTF_RECIPIENT] = "recipient",
    [NTF_ACTOR] = "actor",
    [NTF_TIME] = "time",
    [NTF_REASON] = "reason",
    [NTF_RESULT] = "result",
    [NTF_LEVEL] = "level",
    [NTF_DEADLINE] = "deadline",
    [NTF_DUE] = "due",
    [NTF_CUSTOMER_NAME] = "customer_name",
    [NTF_CUSTOMER_PHONE] = "customer_phone",
    [NTF_ROOM] = "room",
    [NTF_MESSAGE] = "message",
    [NTF_SATISFACTION] = "satisfaction",
};

/* ---- templates --------------------------------------------------------------------------- */

/*
 * One step of the scan: at text[i], either a literal run (kind 0, up to the
 * next "{{"), an escaped "{{{{" (kind 1), or a variable (kind 2, *var set).
 * Returns the length consumed, or 0 with err set.
 */
static size_t scan(const char *text, size_t i, int *kind, enum ntf_var *var, char *err,
                   size_t errlen)
{
    const char *p = text + i;
    if (strncmp(p, "{{{{", 4) == 0) {
        *kind = 1;
        return 4;
    }
    if (strncmp(p, "{{", 2) != 0) {
        const char *next = strstr(p, "{{");
        const char *close = strstr(p, "}}");
        if (close != NULL && (next == NULL || close < next)) {
            snprintf(err, errlen,
                     "at character %zu: '}}' without '{{' (write a lone brace pair "
                     "as part of the text only after an opening one)",
                     (size_t)(close - text) + 1);
            return 0;
        }
        *kind = 0;
        return next != NULL ? (size_t)(next - p) : strlen(p);
    }
    const char *q = p + 2;
    while (*q == ' ')
        q++;
    const char *name = q;
    while ((*q >= 'a' && *q <= 'z') || *q == '_' || (*q >= '0' && *q <= '9'))
        q++;
    size_t n = (size_t)(q - name);
    while (*q == ' ')
        q++;
    if (strncmp(q, "}}", 2) != 0) {
        const char *end = strstr(p, "}}");
        if (end == NULL)
            snprintf(err, errlen, "at character %zu: '{{' without '}}'", i + 1);
        else
            snprintf(err, errlen,
                     "at character %zu: a variable name is lower-case letters, "
                     "digits and '_', as in {{case_number}}",
                     i + 1);
        return 0;
    }
    if (n == 0) {
        snprintf(err, errlen, "at character %zu: empty variable {{}}", i + 1);
        return 0;
    }
    for (int v = 0; v < NTF_VARS; v++) {
        if (strlen(ntf_var_names[v]) == n && memcmp(ntf_var_names[v], name, n) == 0) {
            *kind = 2;
            *var = (enum ntf_var)v;
            return (size_t)(q + 2 - p);
        }
    }
    snprintf(err, errlen, "at character %zu: unknown variable {{%.*s}} (known: ", i + 1,
             (int)(n > 64 ? 64 : n), name);
    size_t used = strlen(err);
    for (int v = 0; v < NTF_VARS && used + 1 < errlen; v++) {
        int w = snprintf(err + used, errlen - used, "%s%s", v ? ", " : "", ntf_var_names[v]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used + 2 < errlen)
        memcpy(err + used, ")", 2);
    return 0;
}

sw_err ntf_template_check(const char *text, char *err, size_t errlen)
{
    size_t i = 0, len = strlen(text);
    while (i < len) {
        int kind;
        enum ntf_var var;
        size_t n = scan(text, i, &kind, &var, err, errlen);
        if (n == 0)
            return SW_EINVAL;
        i += n;
    }
    return SW_OK;
}

sw_err ntf_render(struct buf *out, const char *text, const char *const vals[NTF_VARS])
{
    size_t i = 0, len = strlen(text);
    char err[8];
    sw_err rv = SW_OK;
    while (rv == SW_OK && i < len) {
        int kind;
        enum ntf_var var = NTF_SITE;
        size_t n = scan(text, i, &kind, &var, err, sizeof(err));
        if (n == 0) /* checked when saved; a bad one now is copied as it is */
            return buf_puts(out, text + i);
        if (kind == 0)
            rv = buf_append(out, text + i, n);
        else if (kind == 1)
            rv = buf_puts(out, "{{");
        else if (vals[var] != NULL)
            rv = buf_puts(out, vals[var]);
        i += n;
    }
    return rv;
}

bool ntf_customer_event(const char *event_type)
{
    static const char *const events[] = {"case.registered", "case.progress", "case.resolved",
                                         "case.resolved_on_spot"};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (strcmp(event_type, events[i]) == 0)
            return true;
    return false;
}

/* ---- signatures -------------------------------------------------------------------------- */

void ntf_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                     uint8_t out[32])
{
    /* fails only for bad arguments; ours are never bad */
    (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, keylen, msg, msglen,
                          out);
}

sw_err ntf_base64(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t w = 0;
    if (mbedtls_base64_encode((unsigned char *)out, outlen, &w, in, n) != 0)
        return SW_ETOOBIG;
    return SW_OK;
}

sw_err ntf_webhook_signature(const char *secret, const char *id, int64_t timestamp,
                             const char *body, size_t bodylen, char *out, size_t outlen)
{
    uint8_t key[768];
    size_t keylen = 0;
    if (strncmp(secret, "whsec_", 6) == 0) {
        const char *b = secret + 6;
        if (mbedtls_base64_decode(key, sizeof(key), &keylen, (const unsigned char *)b, strlen(b)) !=
            0)
            return SW_EINVAL;
    } else {
        keylen = strlen(secret);
        if (keylen > sizeof(key))
            return SW_ETOOBIG;
        memcpy(key, secret, keylen);
    }
    /* HMAC over id "." timestamp "." body, streamed so the body is not copied */
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    char ts[24];
    int tn = snprintf(ts, sizeof(ts), ".%lld.", (long long)timestamp);
    uint8_t mac[32];
    int bad = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    bad = bad ? bad : mbedtls_md_hmac_starts(&ctx, key, keylen);
    bad = bad ? bad : mbedtls_md_hmac_update(&ctx, (const unsigned char *)id, strlen(id));
    bad = bad ? bad : mbedtls_md_hmac_update(&ctx, (const unsigned char *)ts, (size_t)tn);
    bad = bad ? bad : mbedtls_md_hmac_update(&ctx, (const unsigned char *)body, bodylen);
    bad = bad ? bad : mbedtls_md_hmac_finish(&ctx, mac);
    mbedtls_md_free(&ctx);
    if (bad)
        return SW_EINVAL;
    if (outlen < 4)
        return SW_ETOOBIG;
    out[0] = 'v';
    out[1] = '1';
    out[2] = ',';
    return ntf_base64(mac, sizeof(mac), out + 3, outlen - 3);
}

sw_err ntf_dingtalk_query(const char *secret, int64_t timestamp_ms, char *out, size_t outlen)
{
    char msg[1100];
    int n = snprintf(msg, sizeof(msg), "%lld\n%s", (long long)timestamp_ms, secret);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return SW_ETOOBIG;
    uint8_t mac[32];
    ntf_hmac_sha256(secret, strlen(secret), msg, (size_t)n, mac);
    char b64[64];
    if (ntf_base64(mac, sizeof(mac), b64, sizeof(b64)) != SW_OK)
        return SW_ETOOBIG;
    int w = snprintf(out, outlen, "&timestamp=%lld&sign=", (long long)timestamp_ms);
    if (w < 0 || (size_t)w >= outlen)
        return SW_ETOOBIG;
    size_t used = (size_t)w;
    for (const char *p = b64; *p != '\0'; p++) {
        bool plain = isalnum((unsigned char)*p) != 0;
        if (used + (plain ? 1 : 3) >= outlen)
            return SW_ETOOBIG;
        if (plain)
            out[used++] = *p;
        else
            used += (size_t)snprintf(out + used, outlen - used, "%%%02X", (unsigned char)*p);
    }
    out[used] = '\0';
    return SW_OK;
}

sw_err ntf_feishu_sign(const char *secret, int64_t timestamp_s, char *out, size_t outlen)
{
    char key[1100];
    int n = snprintf(key, sizeof(key), "%lld\n%s", (long long)timestamp_s, secret);
    if (n < 0 || (size_t)n >= sizeof(key))
        return SW_ETOOBIG;
    uint8_t mac[32];
    ntf_hmac_sha256(key, (size_t)n, "", 0, mac);
    return ntf_base64(mac, sizeof(mac), out, outlen);
}

/* ---- mail -------------------------------------------------------------------------------- */

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static bool ascii_printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* RFC 2047 encoded-words of at most 45 bytes of text each, never splitting a UTF-8 character. */
static sw_err put_encoded(struct buf *out, const char *s)
{
    size_t len = strlen(s), i = 0;
    sw_err rv = SW_OK;
    while (rv == SW_OK && i < len) {
        size_t n = len - i > 45 ? 45 : len - i;
        while (n > 1 && i + n < len && ((unsigned char)s[i + n] & 0xC0) == 0x80)
            n--;
        char b64[64];
        if (ntf_base64((const uint8_t *)s + i, n, b64, sizeof(b64)) != SW_OK)
            return SW_ETOOBIG;
        rv = buf_printf(out, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", b64);
        i += n;
    }
    return rv;
}

sw_err ntf_mime(struct buf *out, const char *from, const char *to, const char *subject,
                const char *body, const char *message_id, int64_t now_s)
{
    if (has_crlf(from) || has_crlf(to) || has_crlf(subject) || has_crlf(message_id))
        return SW_EINVAL;
    time_t t = (time_t)now_s;
    struct tm tm;
    char date[64];
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    sw_err rv =
        buf_printf(out, "Date: %s\r\nFrom: %s\r\nTo: %s\r\nMessage-ID: <%s>\r\nSubject: ", date,
                   from, to, message_id);
    if (rv == SW_OK)
        rv = ascii_printable(subject) ? buf_puts(out, subject) : put_encoded(out, subject);
    if (rv == SW_OK)
        rv = buf_puts(out, "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                           "Content-Transfer-Encoding: base64\r\n\r\n");
    size_t len = strlen(body);
    for (size_t i = 0; rv == SW_OK && i < len; i += 57) {
        char line[80];
        size_t n = len - i > 57 ? 57 : len - i;
        if (ntf_base64((const uint8_t *)body + i, n, line, sizeof(line)) != SW_OK)
            return SW_ETOOBIG;
        rv = buf_printf(out, "%s\r\n", line);
    }
    return rv;
}

/* ---- delivery ---------------------------------------------------------------------------- */

int64_t ntf_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd,
                       int64_t retry_after_ms)
{
    int64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    int64_t half = d / 2;
    d = half + (half > 0 ? (int64_t)(rnd % (uint64_t)(half + 1)) : 0);
    if (retry_after_ms > d)
        d = retry_after_ms > cap_ms ? cap_ms : retry_after_ms;
    return d;
}

bool ntf_retryable(bool smtp, long code, bool transport_error)
{
    if (transport_error)
        return true;
    if (smtp)
        return code >= 400 && code < 500;
    return code == 408 || code == 429 || code >= 500;
}

int64_t ntf_bucket_take(struct ntf_bucket *b, int64_t now_us, int rate, int burst)
{
    if (b->at_us == 0) {
        b->tokens = burst;
        b->at_us = now_us;
    }
    if (now_us > b->at_us) {
        b->tokens += (double)(now_us - b->at_us) * rate / 1e6;
        if (b->tokens > burst)
            b->tokens = burst;
        b->at_us = now_us;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    return (int64_t)((1.0 - b->tokens) * 1e6 / rate) + 1;
}

void ntf_mask_phone(const char *phone, char *out, size_t outlen)
{
    size_t n = strlen(phone);
    if (outlen == 0)
        return;
    if (n >= 7)
        snprintf(out, outlen, "%.3s****%s", phone, phone + n - 4);
    else if (n >= 2)
        snprintf(out, outlen, "****%s", phone + n - 2);
    else
        snprintf(out, outlen, "%s", n ? "****" : "");
}

void ntf_mask_name(const char *name, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    size_t n = 0;
    if (name[0] != '\0') {
        n = 1;
        while (name[n] != '\0' && ((unsigned char)name[n] & 0xC0) == 0x80)
            n++;
    }
    snprintf(out, outlen, "%.*s%s", (int)n, name, n ? "*" : "");
}
