/*
 * calendar.c - working-day calendars: a TZif reader, the POSIX rule of a
 * zone's footer, working periods, holidays and make-up days, working-time
 * arithmetic and an iCalendar reader.  See calendar.h.
 *
 * TZif (RFC 8536): a version 1 block with 32-bit times, then (version 2
 * and later) the same data with 64-bit times and a footer line holding a
 * POSIX TZ string for instants after the last transition.  Only the
 * 64-bit block and the footer are used; leap-second records are skipped
 * (they do not change civil time).
 */
#include "calendar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TZ_FILE_MAX (1 << 20) /* the largest zone is about 4 KiB */

/* ---- dates ----------------------------------------------------------------------------- */

/* After Howard Hinnant's civil-date algorithms (public domain). */
int32_t cal_days_from_civil(int year, int month, int day)
{
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

void cal_civil_from_days(int32_t days, int *year, int *month, int *day)
{
    int64_t z = (int64_t)days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

int cal_iso_weekday(int32_t days)
{
    /* 1970-01-01 was a Thursday (4) */
    int r = (int)(((int64_t)days % 7 + 7 + 3) % 7);
    return r + 1;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static sw_err ymd(int y, int m, int d, int32_t *days)
{
    if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
        return SW_EINVAL;
    *days = cal_days_from_civil(y, m, d);
    return SW_OK;
}

sw_err cal_parse_date(const char *s, int32_t *days)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4) ||
        !digits(s + 5, 2) || !digits(s + 8, 2))
        return SW_EINVAL;
    return ymd(num(s, 4), num(s + 5, 2), num(s + 8, 2), days);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- time zones ------------------------------------------------------------------------ */

/* A POSIX TZ rule ("EST5EDT,M3.2.0,M11.1.0"): offsets in seconds east. */
struct posix_rule {
    int32_t std_off, dst_off;
    bool has_dst;
    struct {
        char form; /* 'M', 'J' (1-365, no Feb 29) or 'n' (0-365) */
        int m, w, d, n;
        int32_t time; /* seconds after local midnight, may be negative or past 24 h */
    } start, end;
};

struct cal_tz {
    char name[CAL_TZ_NAME_MAX + 1];
    size_t ntrans;
    int64_t *trans; /* UTC seconds, ascending */
    uint8_t *idx;   /* type of each transition */
    size_t ntypes;
    int32_t *offs; /* utoff of each type */
    bool has_rule;
    struct posix_rule rule;
};

static void set_err(char *err, size_t errlen, const char *fmt, const char *a)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, a);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* [+-]hh[:mm[:ss]] -> seconds; hours up to 167 (RFC 8536's extension). */
static const char *posix_time(const char *p, int32_t *out)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (*p < '0' || *p > '9')
        return NULL;
    int32_t h = 0, m = 0, s = 0;
    while (*p >= '0' && *p <= '9' && h <= 167)
        h = h * 10 + (*p++ - '0');
    if (h > 167)
        return NULL;
    if (*p == ':') {
        p++;
        if (!digits(p, 2))
            return NULL;
        m = num(p, 2);
        p += 2;
        if (*p == ':') {
            p++;
            if (!digits(p, 2))
                return NULL;
            s = num(p, 2);
            p += 2;
        }
    }
    if (m > 59 || s > 59)
        return NULL;
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *posix_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q == NULL || q - p < 4 ? NULL : q + 1;
    }
    const char *q = p;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - p < 3 ? NULL : q;
}

static const char *posix_date(const char *p, char *form, int *m, int *w, int *d, int *n,
                              int32_t *time)
{
    *time = 7200; /* 02:00 by default */
    if (*p == 'M') {
        p++;
        char *e;
        long mm = strtol(p, &e, 10);
        if (e == p || *e != '.' || mm < 1 || mm > 12)
            return NULL;
        p = e + 1;
        long ww = strtol(p, &e, 10);
        if (e == p || *e != '.' || ww < 1 || ww > 5)
            return NULL;
        p = e + 1;
        long dd = strtol(p, &e, 10);
        if (e == p || dd < 0 || dd > 6)
            return NULL;
        p = e;
        *form = 'M';
        *m = (int)mm;
        *w = (int)ww;
        *d = (int)dd;
    } else {
        *form = 'n';
        if (*p == 'J') {
            *form = 'J';
            p++;
        }
        char *e;
        long nn = strtol(p, &e, 10);
        if (e == p || nn < (*form == 'J' ? 1 : 0) || nn > 365)
            return NULL;
        p = e;
        *n = (int)nn;
    }
    if (*p == '/') {
        p = posix_time(p + 1, time);
        if (p == NULL)
            return NULL;
    }
    return p;
}

static bool posix_parse(const char *s, struct posix_rule *r)
{
    memset(r, 0, sizeof(*r));
    const char *p = posix_name(s);
    int32_t off;
    if (p == NULL || (p = posix_time(p, &off)) == NULL)
        return false;
    r->std_off = -off; /* POSIX counts west as positive */
    if (*p == '\0')
        return true;
    if ((p = posix_name(p)) == NULL)
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if ((p = posix_time(p, &off)) == NULL)
            return false;
        r->dst_off = -off;
    }
    if (*p != ',') /* a DST name without rules: no rule to follow */
        return false;
    p = posix_date(p + 1, &r->start.form, &r->start.m, &r->start.w, &r->start.d, &r->start.n,
                   &r->start.time);
    if (p == NULL || *p != ',')
        return false;
    p = posix_date(p + 1, &r->end.form, &r->end.m, &r->end.w, &r->end.d, &r->end.n, &r->end.time);
    return p != NULL && *p == '\0';
}

/* Local seconds (from 1970) of a rule's date and time in `year`. */
static int64_t rule_local(int year, char form, int m, int w, int d, int n, int32_t time)
{
    int32_t day;
    if (form == 'M') {
        int32_t first = cal_days_from_civil(year, m, 1);
        int wd0 = cal_iso_weekday(first) % 7; /* 0 = Sunday */
        int dom = 1 + (d - wd0 + 7) % 7 + (w - 1) * 7;
        while (dom > month_days(year, m))
            dom -= 7;
        day = first + dom - 1;
    } else if (form == 'J') {
        /* 1..365, February 29 never counted */
        day = cal_days_from_civil(year, 1, 1) + n - 1;
        if (is_leap(year) && n >= 60)
            day++;
    } else {
        day = cal_days_from_civil(year, 1, 1) + n;
    }
    return (int64_t)day * 86400 + time;
}

static int32_t rule_offset(const struct posix_rule *r, int64_t utc)
{
    if (!r->has_dst)
        return r->std_off;
    int y, mo, d;
    cal_civil_from_days((int32_t)floor_div(utc + r->std_off, 86400), &y, &mo, &d);
    /* the start is given in standard local time, the end in daylight time */
    int64_t s = rule_local(y, r->start.form, r->start.m, r->start.w, r->start.d, r->start.n,
                           r->start.time) -
                r->std_off;
    int64_t e = rule_local(y, r->end.form, r->end.m, r->end.w, r->end.d, r->end.n, r->end.time) -
                r->dst_off;
    bool dst = s < e ? (utc >= s && utc < e) : !(utc >= e && utc < s);
    return dst ? r->dst_off : r->std_off;
}

int32_t cal_tz_offset(const struct cal_tz *tz, int64_t utc_s)
{
    if (tz->ntrans == 0)
        return tz->has_rule ? rule_offset(&tz->rule, utc_s) : tz->offs[0];
    if (utc_s < tz->trans[0])
        return tz->offs[0];
    if (utc_s >= tz->trans[tz->ntrans - 1] && tz->has_rule)
        return rule_offset(&tz->rule, utc_s);
    size_t lo = 0, hi = tz->ntrans; /* the last transition at or before utc_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= utc_s)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offs[tz->idx[lo]];
}

int64_t cal_tz_local_to_utc(const struct cal_tz *tz, int64_t local_s)
{
    int32_t before = cal_tz_offset(tz, local_s - 86400);
    int32_t after = cal_tz_offset(tz, local_s + 86400);
    int64_t u1 = local_s - before, u2 = local_s - after;
    bool ok1 = cal_tz_offset(tz, u1) == before, ok2 = cal_tz_offset(tz, u2) == after;
    if (ok1 && ok2)
        return u1 < u2 ? u1 : u2;
    if (ok2)
        return u2;
    if (ok1)
        return u1;
    return u1; /* in the gap: the offset before it, which lands after it */
}

const char *cal_tz_name(const struct cal_tz *tz)
{
    return tz->name;
}

void cal_tz_free(struct cal_tz *tz)
{
    if (tz == NULL)
        return;
    free(tz->trans);
    free(tz->idx);
    free(tz->offs);
    free(tz);
}

struct tzhead {
    uint32_t isut, isstd, leap, time, type, chars;
};

static bool read_head(const uint8_t *p, size_t len, struct tzhead *h, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    *version = p[4] == 0 ? 1 : p[4] - '0';
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    return h->type >= 1 && h->type <= 256 && h->time <= 100000 && h->leap <= 10000 &&
           h->chars <= 65536 && h->isut <= h->type && h->isstd <= h->type;
}

static size_t body_len(const struct tzhead *h, size_t tsize)
{
    return (size_t)h->time * tsize + h->time + (size_t)h->type * 6 + h->chars +
           (size_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

sw_err cal_tz_parse(const uint8_t *data, size_t len, const char *name, struct cal_tz **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    struct tzhead h;
    int version;
    if (!read_head(data, len, &h, &version)) {
        set_err(err, errlen, "%s: not a TZif time-zone file", name);
        return SW_EINVAL;
    }
    size_t tsize = 4;
    const uint8_t *p = data + 44;
    size_t left = len - 44;
    if (version >= 2) { /* skip the 32-bit block */
        size_t skip = body_len(&h, 4);
        if (skip > left || !read_head(p + skip, left - skip, &h, &version)) {
            set_err(err, errlen, "%s: a truncated TZif file", name);
            return SW_EINVAL;
        }
        p += skip + 44;
        left -= skip + 44;
        tsize = 8;
    }
    size_t need = body_len(&h, tsize);
    if (need > left) {
        set_err(err, errlen, "%s: a truncated TZif file", name);
        return SW_EINVAL;
    }
    struct cal_tz *tz = calloc(1, sizeof(*tz));
    if (tz == NULL)
        return SW_ENOMEM;
    snprintf(tz->name, sizeof(tz->name), "%s", name);
    tz->ntrans = h.time;
    tz->ntypes = h.type;
    tz->trans = calloc(h.time + 1, sizeof(*tz->trans));
    tz->idx = calloc(h.time + 1, 1);
    tz->offs = calloc(h.type, sizeof(*tz->offs));
    if (tz->trans == NULL || tz->idx == NULL || tz->offs == NULL) {
        cal_tz_free(tz);
        return SW_ENOMEM;
    }
    for (size_t i = 0; i < h.time; i++) {
        tz->trans[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
            cal_tz_free(tz);
            set_err(err, errlen, "%s: TZif transitions out of order", name);
            return SW_EINVAL;
        }
    }
    p += h.time * tsize;
    for (size_t i = 0; i < h.time; i++) {
        tz->idx[i] = p[i];
        if (p[i] >= h.type) {
            cal_tz_free(tz);
            set_err(err, errlen, "%s: a TZif transition names a missing type", name);
            return SW_EINVAL;
        }
    }
    p += h.time;
    for (size_t i = 0; i < h.type; i++) {
        int32_t off = (int32_t)be32(p + i * 6);
        if (off < -89999 || off > 93599) {
            cal_tz_free(tz);
            set_err(err, errlen, "%s: a TZif offset out of range", name);
            return SW_EINVAL;
        }
        tz->offs[i] = off;
    }
    p += need - h.time * tsize - h.time; /* the rest of the block */
    left -= need;
    if (version >= 2 && left >= 2 && p[0] == '\n') {
        const uint8_t *nl = memchr(p + 1, '\n', left - 1);
        if (nl != NULL && nl - p - 1 > 0 && nl - p - 1 < 128) {
            char footer[128];
            memcpy(footer, p + 1, (size_t)(nl - p - 1));
            footer[nl - p - 1] = '\0';
            tz->has_rule = posix_parse(footer, &tz->rule);
        }
    }
    *out = tz;
    return SW_OK;
}

static bool tz_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CAL_TZ_NAME_MAX || name[0] == '/' || name[0] == '.' ||
        strstr(name, "..") != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '_' || ch == '-' || ch == '+'))
            return false;
    }
    return true;
}

static sw_err utc_zone(struct cal_tz **out)
{
    struct cal_tz *tz = calloc(1, sizeof(*tz));
    if (tz == NULL || (tz->offs = calloc(1, sizeof(*tz->offs))) == NULL) {
        free(tz);
        return SW_ENOMEM;
    }
    snprintf(tz->name, sizeof(tz->name), "UTC");
    tz->ntypes = 1;
    *out = tz;
    return SW_OK;
}

sw_err cal_tz_load(const char *name, struct cal_tz **out, char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL || !tz_name_ok(name)) {
        set_err(err, errlen, "\"%s\" is not an IANA time zone name such as Asia/Shanghai",
                name == NULL ? "" : name);
        return SW_EINVAL;
    }
    const char *dir = getenv("TZDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/usr/share/zoneinfo";
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if ((errno == ENOENT || errno == ENOTDIR) && strcmp(name, "UTC") == 0)
            return utc_zone(out); /* no time-zone database installed: UTC needs none */
        if (errno == ENOENT || errno == ENOTDIR) {
            set_err(err, errlen, "unknown time zone \"%s\" (not in the IANA database)", name);
            return SW_ENOTFOUND;
        }
        set_err(err, errlen, "cannot read the time zone file of %s", name);
        return SW_EIO;
    }
    uint8_t *buf = malloc(TZ_FILE_MAX);
    if (buf == NULL) {
        fclose(f);
        return SW_ENOMEM;
    }
    size_t len = fread(buf, 1, TZ_FILE_MAX, f);
    bool too_big = len == TZ_FILE_MAX;
    fclose(f);
    sw_err rv;
    if (too_big) {
        set_err(err, errlen, "%s: not a TZif time-zone file (too large)", name);
        rv = SW_EINVAL;
    } else {
        rv = cal_tz_parse(buf, len, name, out, err, errlen);
    }
    free(buf);
    return rv;
}

/* ---- working periods ------------------------------------------------------------------- */

static const char *hhmm(const char *p, int *minutes, bool end)
{
    if (!digits(p, 2) || p[2] != ':' || !digits(p + 3, 2))
        return NULL;
    int h = num(p, 2), m = num(p + 3, 2);
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end)))
        return NULL;
    *minutes = h * 60 + m;
    return p + 5;
}

static int cmp_period(const void *a, const void *b)
{
    const struct cal_period *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

sw_err cal_parse_hours(const char *text, struct cal_period *out, size_t *n, char *err,
                       size_t errlen)
{
    *n = 0;
    const char *p = text == NULL ? "" : text;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        set_err(err, errlen, "%s",
                "no working hours: give periods such as 09:00-12:00,13:30-18:00");
        return SW_EINVAL;
    }
    while (*p != '\0') {
        int s, e;
        const char *start = p;
        const char *q = hhmm(p, &s, false);
        if (q == NULL || *q != '-' || (q = hhmm(q + 1, &e, true)) == NULL) {
            char what[32];
            snprintf(what, sizeof(what), "%.*s", (int)strcspn(start, ","), start);
            set_err(err, errlen, "\"%s\" is not a period of the form HH:MM-HH:MM (00:00 to 24:00)",
                    what);
            return SW_EINVAL;
        }
        if (e <= s) {
            char what[32];
            snprintf(what, sizeof(what), "%.11s", start);
            set_err(err, errlen,
                    "%s ends before it starts: split a period across midnight in two "
                    "(22:00-24:00,00:00-06:00)",
                    what);
            return SW_EINVAL;
        }
        if (*n == CAL_PERIODS_MAX) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "more than %d working periods in a day", CAL_PERIODS_MAX);
            return SW_ERANGE;
        }
        out[*n].start = (int16_t)s;
        out[*n].end = (int16_t)e;
        (*n)++;
        p = q;
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            while (*p == ' ')
                p++;
            if (*p == '\0') {
                set_err(err, errlen, "%s", "a comma with no period after it");
                return SW_EINVAL;
            }
        } else if (*p != '\0') {
            set_err(err, errlen, "unexpected \"%s\" after a period (separate periods by commas)",
                    p);
            return SW_EINVAL;
        }
    }
    qsort(out, *n, sizeof(*out), cmp_period);
    for (size_t i = 1; i < *n; i++) {
        if (out[i].start < out[i - 1].end) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "%02d:%02d-%02d:%02d overlaps %02d:%02d-%02d:%02d",
                         out[i].start / 60, out[i].start % 60, out[i].end / 60, out[i].end % 60,
                         out[i - 1].start / 60, out[i - 1].start % 60, out[i - 1].end / 60,
                         out[i - 1].end % 60);
            return SW_EINVAL;
        }
    }
    return SW_OK;
}

void cal_format_hours(const struct cal_period *p, size_t n, char *out, size_t outlen)
{
    size_t used = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%02d:%02d-%02d:%02d", i ? "," : "",
                         p[i].start / 60, p[i].start % 60, p[i].end / 60, p[i].end % 60);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

/* ---- calendars ------------------------------------------------------------------------- */

sw_err cal_init(struct calendar *c, const char *tz_name, const char *hours, uint8_t rest, char *err,
                size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if ((rest & 0xfe) == 0xfe) {
        set_err(err, errlen, "%s", "every weekday is a rest day: at least one must be worked");
        return SW_EINVAL;
    }
    sw_err rv = cal_parse_hours(hours, c->periods, &c->nperiods, err, errlen);
    if (rv != SW_OK)
        return rv;
    rv = cal_tz_load(tz_name, &c->tz, err, errlen);
    if (rv != SW_OK)
        return rv;
    c->rest = rest & 0xfe;
    for (size_t i = 0; i < c->nperiods; i++)
        c->day_work_us += (int64_t)(c->periods[i].end - c->periods[i].start) * 60000000LL;
    return SW_OK;
}

void cal_free(struct calendar *c)
{
    if (c == NULL)
        return;
    cal_tz_free(c->tz);
    free(c->days);
    memset(c, 0, sizeof(*c));
}

static const struct cal_exception *find_day(const struct calendar *c, int32_t day, size_t *at)
{
    size_t lo = 0, hi = c->ndays;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->days[mid].day < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at != NULL)
        *at = lo;
    return lo < c->ndays && c->days[lo].day == day ? &c->days[lo] : NULL;
}

sw_err cal_add_exception(struct calendar *c, int32_t day, enum cal_day_kind kind)
{
    size_t at;
    struct cal_exception *e = (struct cal_exception *)find_day(c, day, &at);
    if (e != NULL) {
        e->kind = kind;
        return SW_OK;
    }
    struct cal_exception *d = realloc(c->days, (c->ndays + 1) * sizeof(*d));
    if (d == NULL)
        return SW_ENOMEM;
    c->days = d;
    memmove(&d[at + 1], &d[at], (c->ndays - at) * sizeof(*d));
    d[at].day = day;
    d[at].kind = kind;
    c->ndays++;
    return SW_OK;
}

int32_t cal_local_day(const struct calendar *c, int64_t t_us)
{
    int64_t s = floor_div(t_us, 1000000);
    return (int32_t)floor_div(s + cal_tz_offset(c->tz, s), 86400);
}

bool cal_is_working_day(const struct calendar *c, int32_t day)
{
    const struct cal_exception *e = find_day(c, day, NULL);
    if (e != NULL)
        return e->kind == CAL_WORKDAY;
    return (c->rest & (1u << cal_iso_weekday(day))) == 0;
}

/* The UTC bounds (microseconds) of period i of local day `day`. */
static void period_bounds(const struct calendar *c, int32_t day, size_t i, int64_t *s, int64_t *e)
{
    int64_t base = (int64_t)day * 86400;
    *s = cal_tz_local_to_utc(c->tz, base + (int64_t)c->periods[i].start * 60) * 1000000;
    *e = cal_tz_local_to_utc(c->tz, base + (int64_t)c->periods[i].end * 60) * 1000000;
}

sw_err cal_add_working(const struct calendar *c, int64_t from_us, int64_t amount_us, int64_t *out)
{
    *out = from_us;
    if (amount_us <= 0)
        return SW_OK;
    int64_t left = amount_us;
    int32_t day = cal_local_day(c, from_us) - 1; /* a period of the day before may reach in */
    for (int i = 0; i < CAL_SCAN_DAYS; i++, day++) {
        if (!cal_is_working_day(c, day))
            continue;
        for (size_t k = 0; k < c->nperiods; k++) {
            int64_t s, e;
            period_bounds(c, day, k, &s, &e);
            if (e <= from_us || e <= s)
                continue;
            int64_t at = s > from_us ? s : from_us;
            if (left <= e - at) {
                *out = at + left;
                return SW_OK;
            }
            left -= e - at;
        }
    }
    return SW_ERANGE;
}

sw_err cal_add_working_days(const struct calendar *c, int64_t from_us, int64_t n, int64_t *out)
{
    if (n > 0 && c->day_work_us > INT64_MAX / n)
        return SW_ERANGE;
    return cal_add_working(c, from_us, n * c->day_work_us, out);
}

int64_t cal_working_between(const struct calendar *c, int64_t from_us, int64_t to_us)
{
    if (to_us <= from_us)
        return 0;
    int64_t sum = 0;
    int32_t last = cal_local_day(c, to_us) + 1;
    for (int32_t day = cal_local_day(c, from_us) - 1; day <= last; day++) {
        if (!cal_is_working_day(c, day))
            continue;
        for (size_t k = 0; k < c->nperiods; k++) {
            int64_t s, e;
            period_bounds(c, day, k, &s, &e);
            if (s < from_us)
                s = from_us;
            if (e > to_us)
                e = to_us;
            if (e > s)
                sum += e - s;
        }
    }
    return sum;
}

bool cal_holidays_missing(const struct calendar *c, int64_t now_us, int *year)
{
    int y, m, d;
    cal_civil_from_days(cal_local_day(c, now_us), &y, &m, &d);
    int check[2] = {y, y + 1};
    int n = m >= 11 ? 2 : 1;
    for (int i = 0; i < n; i++) {
        int32_t lo = cal_days_from_civil(check[i], 1, 1),
                hi = cal_days_from_civil(check[i] + 1, 1, 1);
        size_t at;
        (void)find_day(c, lo, &at);
        bool found = false;
        for (; at < c->ndays && c->days[at].day < hi; at++)
            if (c->days[at].kind == CAL_HOLIDAY) {
                found = true;
                break;
            }
        if (!found) {
            *year = check[i];
            return true;
        }
    }
    return false;
}

/* ---- iCalendar ------------------------------------------------------------------------- */

#define ICS_LINE_MAX 4096

struct ics_event {
    bool open;
    int start_line;
    int32_t start, end; /* end exclusive; -1: not given */
    int32_t duration;   /* days; -1: not given */
    bool workday;
    char summary[256];
};

static void ics_err(char *err, size_t errlen, int line, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "line %d: %s", line, why);
}

/* Case-insensitive "does the name part of a content line equal `name`". */
static bool prop_is(const char *line, size_t namelen, const char *name)
{
    return strlen(name) == namelen && strncasecmp(line, name, namelen) == 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

/* Unescapes TEXT (\\, \; \, \n) into out. */
static void ics_text(const char *v, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = v; *p && o + 1 < outlen; p++) {
        if (*p == '\\' && p[1] != '\0') {
            p++;
            out[o++] = (*p == 'n' || *p == 'N') ? ' ' : *p;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* A DATE value: YYYYMMDD, optionally with VALUE=DATE; a DATE-TIME is refused. */
static bool ics_date(const char *params, const char *v, int32_t *day, const char **why)
{
    if (strlen(v) != 8 || !digits(v, 8)) {
        *why = strchr(v, 'T') != NULL || (params != NULL && contains_ci(params, "VALUE=DATE-TIME"))
                   ? "the date has a time: holidays and make-up days are whole days "
                     "(DTSTART;VALUE=DATE:20261001)"
                   : "not a date of the form YYYYMMDD";
        return false;
    }
    if (ymd(num(v, 4), num(v + 4, 2), num(v + 6, 2), day) != SW_OK) {
        *why = "not a real date";
        return false;
    }
    return true;
}

/* DURATION of whole days: P3D or P1W (a time part is refused). */
static bool ics_duration(const char *v, int32_t *days)
{
    if (v[0] == '+')
        v++;
    if (v[0] != 'P')
        return false;
    v++;
    size_t n = strspn(v, "0123456789");
    if (n == 0 || n > 4)
        return false;
    int k = num(v, n);
    if (v[n] == 'D' && v[n + 1] == '\0')
        *days = k;
    else if (v[n] == 'W' && v[n + 1] == '\0')
        *days = k * 7;
    else
        return false;
    return *days >= 1 && *days <= 366;
}

static sw_err ics_line(const char *line, int lineno, struct ics_event *ev, int *depth,
                       bool *seen_cal, cal_ics_fn fn, void *arg, char *err, size_t errlen)
{
    size_t namelen = strcspn(line, ";:");
    const char *colon = strchr(line, ':');
    if (colon == NULL || namelen == 0) {
        ics_err(err, errlen, lineno, "not a content line (NAME:value)");
        return SW_EINVAL;
    }
    const char *v = colon + 1;
    char params[256] = "";
    if (line[namelen] == ';')
        snprintf(params, sizeof(params), "%.*s", (int)(colon - line - namelen - 1),
                 line + namelen + 1);
    if (prop_is(line, namelen, "BEGIN")) {
        if (!*seen_cal) {
            if (strcasecmp(v, "VCALENDAR") != 0) {
                ics_err(err, errlen, lineno, "an iCalendar file starts with BEGIN:VCALENDAR");
                return SW_EINVAL;
            }
            *seen_cal = true;
            *depth = 1;
            return SW_OK;
        }
        if (*depth == 0) {
            ics_err(err, errlen, lineno, "BEGIN after END:VCALENDAR");
            return SW_EINVAL;
        }
        if (strcasecmp(v, "VEVENT") == 0) {
            if (ev->open) {
                ics_err(err, errlen, lineno, "BEGIN:VEVENT inside another VEVENT");
                return SW_EINVAL;
            }
            memset(ev, 0, sizeof(*ev));
            ev->open = true;
            ev->start_line = lineno;
            ev->start = ev->end = ev->duration = -1;
        }
        (*depth)++;
        if (*depth > 16) {
            ics_err(err, errlen, lineno, "components nested too deeply");
            return SW_EINVAL;
        }
        return SW_OK;
    }
    if (!*seen_cal) {
        ics_err(err, errlen, lineno, "an iCalendar file starts with BEGIN:VCALENDAR");
        return SW_EINVAL;
    }
    if (*depth == 0) {
        ics_err(err, errlen, lineno, "content after END:VCALENDAR");
        return SW_EINVAL;
    }
    if (prop_is(line, namelen, "END")) {
        (*depth)--;
        if (strcasecmp(v, "VEVENT") == 0) {
            if (!ev->open) {
                ics_err(err, errlen, lineno, "END:VEVENT without BEGIN:VEVENT");
                return SW_EINVAL;
            }
            ev->open = false;
            if (ev->start < 0) {
                ics_err(err, errlen, ev->start_line, "an event without DTSTART");
                return SW_EINVAL;
            }
            int32_t end = ev->end >= 0       ? ev->end
                          : ev->duration > 0 ? ev->start + ev->duration
                                             : ev->start + 1;
            if (end <= ev->start || end - ev->start > 366) {
                ics_err(err, errlen, ev->start_line,
                        "the event's DTEND is not after its DTSTART, or it spans more than 366 "
                        "days");
                return SW_EINVAL;
            }
            bool workday = ev->workday || contains_ci(ev->summary, "workday") ||
                           strstr(ev->summary, "补班") != NULL ||
                           strstr(ev->summary, "上班") != NULL;
            for (int32_t d = ev->start; d < end; d++) {
                sw_err rv = fn(d, workday ? CAL_WORKDAY : CAL_HOLIDAY, ev->summary, arg);
                if (rv != SW_OK) {
                    ics_err(err, errlen, ev->start_line, "the event was refused");
                    return rv;
                }
            }
        } else if (strcasecmp(v, "VCALENDAR") == 0 && *depth != 0) {
            ics_err(err, errlen, lineno, "END:VCALENDAR with a component still open");
            return SW_EINVAL;
        }
        return SW_OK;
    }
    if (!ev->open)
        return SW_OK; /* properties of the calendar or of other components */
    const char *why = NULL;
    if (prop_is(line, namelen, "DTSTART")) {
        if (!ics_date(params, v, &ev->start, &why)) {
            ics_err(err, errlen, lineno, why);
            return SW_EINVAL;
        }
    } else if (prop_is(line, namelen, "DTEND")) {
        if (!ics_date(params, v, &ev->end, &why)) {
            ics_err(err, errlen, lineno, why);
            return SW_EINVAL;
        }
    } else if (prop_is(line, namelen, "DURATION")) {
        if (!ics_duration(v, &ev->duration)) {
            ics_err(err, errlen, lineno, "DURATION must be whole days, 1 to 366 (P3D, P1W)");
            return SW_EINVAL;
        }
    } else if (prop_is(line, namelen, "SUMMARY")) {
        ics_text(v, ev->summary, sizeof(ev->summary));
    } else if (prop_is(line, namelen, "CATEGORIES")) {
        if (contains_ci(v, "WORKDAY"))
            ev->workday = true;
    } else if (prop_is(line, namelen, "X-SHOUWEN-KIND")) {
        if (strcasecmp(v, "workday") == 0)
            ev->workday = true;
        else if (strcasecmp(v, "holiday") != 0) {
            ics_err(err, errlen, lineno, "X-SHOUWEN-KIND is holiday or workday");
            return SW_EINVAL;
        }
    } else if (prop_is(line, namelen, "RRULE") || prop_is(line, namelen, "RDATE")) {
        ics_err(err, errlen, lineno,
                "repeating events (RRULE, RDATE) are not read: list each year's dates");
        return SW_EINVAL;
    }
    return SW_OK;
}

sw_err cal_ics_parse(const char *text, size_t len, cal_ics_fn fn, void *arg, char *err,
                     size_t errlen)
{
    char *line = malloc(ICS_LINE_MAX + 1);
    if (line == NULL)
        return SW_ENOMEM;
    struct ics_event ev = {.open = false};
    int depth = 0, lineno = 0, start_line = 0, last = 0;
    bool seen_cal = false;
    size_t used = 0;
    sw_err rv = SW_OK;
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* a byte-order mark */
    while (i <= len && rv == SW_OK) {
        /* one physical line */
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t n = e;
        if (n > i && text[n - 1] == '\r')
            n--;
        lineno++;
        bool folded = i < len && (text[i] == ' ' || text[i] == '\t') && used > 0;
        if (!folded && used > 0) {
            line[used] = '\0';
            rv = ics_line(line, start_line, &ev, &depth, &seen_cal, fn, arg, err, errlen);
            used = 0;
            if (rv != SW_OK)
                break;
        }
        size_t from = folded ? i + 1 : i;
        if (memchr(text + from, '\0', n - from) != NULL) {
            ics_err(err, errlen, lineno, "a NUL byte");
            rv = SW_EINVAL;
            break;
        }
        if (n > from) {
            last = lineno;
            if (!folded)
                start_line = lineno;
            if (used + (n - from) > ICS_LINE_MAX) {
                ics_err(err, errlen, start_line, "a content line longer than 4096 bytes");
                rv = SW_EINVAL;
                break;
            }
            memcpy(line + used, text + from, n - from);
            used += n - from;
        }
        if (e >= len)
            break;
        i = e + 1;
    }
    if (rv == SW_OK && used > 0) {
        line[used] = '\0';
        rv = ics_line(line, start_line, &ev, &depth, &seen_cal, fn, arg, err, errlen);
    }
    free(line);
    if (rv != SW_OK)
        return rv;
    if (!seen_cal) {
        ics_err(err, errlen, last, "no BEGIN:VCALENDAR: not an iCalendar file");
        return SW_EINVAL;
    }
    if (depth != 0) {
        ics_err(err, errlen, last, "the file ends inside a component (a missing END)");
        return SW_EINVAL;
    }
    return SW_OK;
}
