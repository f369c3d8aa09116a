/*
 * log.h - one JSON line per event on stderr.
 *
 * A line carries the time (UTC, milliseconds), the level, the service, a
 * stable event code ("SVC-READY", "DB-UNREACHABLE") that operators can
 * alert on, the message, and optional fields.  The level is tested before
 * any argument is formatted (Redis's serverLog), so a disabled debug line
 * costs one comparison.
 *
 * Customer data: fields of kind LOG_PHONE and LOG_NAME are always masked
 * ("138****1234", "张*"); as a last net, 11-digit mainland mobile numbers
 * that slip into a message text are masked too, but landlines and names
 * in free text are not.  Customer data goes in LOG_PHONE / LOG_NAME
 * fields only: never in the format string or a LOG_STR field.
 *
 * Thread-safe: each line is built in a private buffer and written with one
 * write(2), so lines from several threads never interleave.
 */
#ifndef SHOUWEN_LOG_H
#define SHOUWEN_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_kind {
    LOG_STR = 0, /* printed as is */
    LOG_PHONE,   /* a phone number: masked */
    LOG_NAME,    /* a person's name: masked */
};

struct log_field {
    const char *key;
    const char *val; /* NULL prints as null */
    enum log_kind kind;
};

extern enum log_level log__min_level;

/* log_init sets the service name (copied) and the lowest level written. */
void log_init(const char *service, enum log_level min);

/* log_level_parse maps "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s);

/* log__write formats and writes one line; call through the macros. */
void log__write(enum log_level level, const char *code, const struct log_field *fields,
                size_t nfields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define LOG(level, code, ...)                                                                      \
    do {                                                                                           \
        if ((level) >= log__min_level)                                                             \
            log__write((level), (code), NULL, 0, __VA_ARGS__);                                     \
    } while (0)

#define LOG_FIELDS(level, code, fields, nfields, ...)                                              \
    do {                                                                                           \
        if ((level) >= log__min_level)                                                             \
            log__write((level), (code), (fields), (nfields), __VA_ARGS__);                         \
    } while (0)

/*
 * log_mask_phone writes a masked copy of `phone` into `out` (size `outlen`):
 * the first 3 and last 4 digits of numbers of 8 characters or more are kept
 * ("13800001234" -> "138****1234"), shorter ones are masked whole.
 */
void log_mask_phone(char *out, size_t outlen, const char *phone);

/*
 * log_mask_name keeps the first character (UTF-8 aware) and replaces every
 * other character by '*': "张三丰" -> "张**", "Alice" -> "A****".
 */
void log_mask_name(char *out, size_t outlen, const char *name);

/* log_mask_text masks, in place, every 11-digit run that starts with 1. */
void log_mask_text(char *text);

#endif
