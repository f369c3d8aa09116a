/*
 * notify.h - the parts of notification that do no I/O: message templates,
 * the signatures of webhooks and chat robots, MIME mail, retry timing and
 * rate limits.  Used by the notification service to send and by intake to
 * check a template when it is saved (so a bad one is refused then, never
 * discovered at send time).
 */
#ifndef SHOUWEN_NOTIFY_H
#define SHOUWEN_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* ---- templates --------------------------------------------------------------------------- */

/*
 * A template is text with variables written {{name}} (spaces inside the
 * braces are allowed).  "{{{{" is a literal "{{".  Names are those of
 * ntf_vars; anything else is refused.
 */
enum ntf_var {
    NTF_SITE,            /* site code */
    NTF_EVENT,           /* event type, "case.transferred" */
    NTF_CASE_NUMBER,     /* SH01-20261122-0007 */
    NTF_SUBJECT,         /* the case's subject */
    NTF_CASE_TYPE,       /* complaint, repair, ... */
    NTF_URGENCY,         /* normal, urgent, emergency */
    NTF_STATUS,          /* the case's status now */
    NTF_DEPARTMENT,      /* the department concerned (the receiving one for a transfer) */
    NTF_FROM_DEPARTMENT, /* where a transfer came from */
    NTF_HANDLER,         /* the appointed handler's name */
    NTF_OWNER,           /* the person now accountable */
    NTF_FIRST_RESPONDER, /* the natural first responder's name */
    NTF_RECIPIENT,       /* whom this message is for */
    NTF_ACTOR,           /* who caused the event */
    NTF_TIME,            /* when, in the site's time zone, "2026-11-23 14:05" */
    NTF_REASON,          /* a transfer's, return's, escalation's, ... reason */
    NTF_RESULT,          /* a resolution's result */
    NTF_LEVEL,           /* escalation level */
    NTF_DEADLINE,        /* the clock breached: handoff, first_contact, ... */
    NTF_DUE,             /* when it was due (site time) */
    NTF_CUSTOMER_NAME,   /* masked unless the recipient works the case */
    NTF_CUSTOMER_PHONE,  /* masked unless the recipient works the case */
    NTF_ROOM,            /* the customer's room or address */
    NTF_MESSAGE,         /* an emergency alert's or a review's text */
    NTF_SATISFACTION,    /* a callback's satisfaction */
    NTF_VARS
};

/* The variable names, indexed by enum ntf_var. */
extern const char *const ntf_var_names[NTF_VARS];

/*
 * ntf_template_check parses `text`: unbalanced braces, an empty or unknown
 * name are refused with a message naming the place ("at character 12:
 * unknown variable {{foo}}").  Returns SW_OK or SW_EINVAL.
 */
sw_err ntf_template_check(const char *text, char *err, size_t errlen);

/* ntf_render appends `text` with each variable replaced by vals[var] (NULL: empty). */
sw_err ntf_render(struct buf *out, const char *text, const char *const vals[NTF_VARS]);

/* Whether customers are told of events of this type (a receipt, progress, the result). */
bool ntf_customer_event(const char *event_type);

/* ---- signatures -------------------------------------------------------------------------- */

/* HMAC-SHA256 of msg under key. */
void ntf_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                     uint8_t out[32]);

/* Standard base64 of in into out (NUL-terminated); SW_ETOOBIG when it does not fit. */
sw_err ntf_base64(const uint8_t *in, size_t n, char *out, size_t outlen);

/*
 * Standard Webhooks: the value of the webhook-signature header,
 * "v1,<base64 of HMAC-SHA256(key, id "." timestamp "." body)>".  The key
 * is the base64 after "whsec_" when the secret has that prefix (as
 * Standard Webhooks secrets do), else the secret's bytes.
 */
sw_err ntf_webhook_signature(const char *secret, const char *id, int64_t timestamp,
                             const char *body, size_t bodylen, char *out, size_t outlen);

/*
 * DingTalk robot: "&timestamp=<ms>&sign=<urlencoded base64 of
 * HMAC-SHA256(secret, ms "\n" secret)>", appended to the robot's URL.
 */
sw_err ntf_dingtalk_query(const char *secret, int64_t timestamp_ms, char *out, size_t outlen);

/* Feishu/Lark bot: base64 of HMAC-SHA256(key = seconds "\n" secret, message = ""). */
sw_err ntf_feishu_sign(const char *secret, int64_t timestamp_s, char *out, size_t outlen);

/* ---- mail -------------------------------------------------------------------------------- */

/*
 * ntf_mime appends an RFC 5322 message: From, To, Subject (RFC 2047
 * UTF-8 encoded-words when not plain ASCII), Date, Message-ID, a
 * text/plain UTF-8 body in base64 with CRLF line ends.  Header values with
 * CR or LF are refused (no header injection).
 */
sw_err ntf_mime(struct buf *out, const char *from, const char *to, const char *subject,
                const char *body, const char *message_id, int64_t now_s);

/* ---- delivery ---------------------------------------------------------------------------- */

/*
 * The wait before attempt `attempt` + 1 after a failed attempt `attempt`
 * (1-based): base * 2^(attempt-1), at most cap, then a random point in
 * its upper half (jitter, so retries of many deliveries spread out);
 * `rnd` is a uniform random number.  A server's Retry-After (ms; 0 when
 * absent) is a floor, itself capped.
 */
int64_t ntf_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd,
                       int64_t retry_after_ms);

/*
 * Whether a failed attempt is worth repeating: a transport error (no
 * answer, timeout, refused connection) or HTTP 408, 429, 5xx; SMTP 4xx.
 * Other answers are final.
 */
bool ntf_retryable(bool smtp, long code, bool transport_error);

/* A token bucket: `rate` tokens a second, at most `burst`. */
struct ntf_bucket {
    double tokens;
    int64_t at_us; /* when tokens was last brought up to date; 0: never (full) */
};

/* Takes one token: 0 when there was one, else microseconds until there will be. */
int64_t ntf_bucket_take(struct ntf_bucket *b, int64_t now_us, int rate, int burst);

/* "13800001234" -> "138****1234"; shorter numbers keep only their last two digits. */
void ntf_mask_phone(const char *phone, char *out, size_t outlen);

/* "张三" -> "张*", "Zhang San" -> "Z*": the first character (UTF-8) and a star. */
void ntf_mask_name(const char *name, char *out, size_t outlen);

#endif
