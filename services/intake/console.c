/*
 * console.c - the web console's files (services/intake/console/), served
 * by intake at the root of its HTTP address beside the API under /v1/.
 *
 * The folder is read once when intake starts, into memory: a few small
 * files, so every answer is a lookup and a copy, and nothing under the
 * folder can be reached but the files that were there (no path is ever
 * joined to a request's).  Only known kinds of file are served (HTML, CSS,
 * JavaScript, SVG, JSON, images, fonts, text); hidden files, symbolic links
 * and anything else are left out.  "/" is index.html.
 *
 * Every answer carries a strong ETag (an If-None-Match that matches is
 * 304), Cache-Control: no-cache (the browser checks again each time, so a
 * new version shows after a restart), and headers that keep the page to
 * itself: a Content-Security-Policy allowing only its own scripts, styles
 * and connections, no framing, no MIME sniffing, no referrer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "intake.h"
#include "log.h"

#define CONSOLE_FILES_MAX 512
#define CONSOLE_BYTES_MAX (32u << 20)
#define CONSOLE_PATH_MAX  256
#define CONSOLE_DEPTH_MAX 6

struct console_file {
    char path[CONSOLE_PATH_MAX]; /* "/js/app.js" */
    char *data;
    size_t len;
    const char *ctype;
    char etag[24];
};

struct console {
    struct console_file *files;
    size_t n;
    size_t bytes;
};

static struct console C;

static const struct {
    const char *ext;
    const char *ctype;
} kinds[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
    {".webmanifest", "application/manifest+json"},
};

static const char *kind_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t e = strlen(kinds[i].ext);
        if (n > e && strcmp(name + n - e, kinds[i].ext) == 0)
            return kinds[i].ctype;
    }
    return NULL;
}

/* Characters a served path may hold: no escapes, no "..", nothing odd. */
static bool name_ok(const char *s)
{
    if (s[0] == '.' || s[0] == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

static sw_err file_load(const char *full, const char *path, const char *ctype, off_t size,
                        char *err, size_t errlen)
{
    if (C.n == CONSOLE_FILES_MAX || C.bytes + (size_t)size > CONSOLE_BYTES_MAX) {
        snprintf(err, errlen, "the console folder holds more than %d files or %u MiB",
                 CONSOLE_FILES_MAX, CONSOLE_BYTES_MAX >> 20);
        return SW_EINVAL;
    }
    FILE *f = fopen(full, "rb");
    char *data = malloc((size_t)size + 1);
    size_t got = f != NULL && data != NULL ? fread(data, 1, (size_t)size, f) : 0;
    if (f != NULL)
        fclose(f);
    if (data == NULL || got != (size_t)size) {
        free(data);
        snprintf(err, errlen, "could not read %s: %s", full,
                 data == NULL ? "out of memory" : "short read");
        return SW_EINVAL;
    }
    struct console_file *cf = &C.files[C.n++];
    snprintf(cf->path, sizeof(cf->path), "%s", path);
    cf->data = data;
    cf->len = (size_t)size;
    cf->ctype = ctype;
    uint8_t sum[32];
    char hex[65];
    crypto_sha256(data, (size_t)size, sum);
    crypto_hex(sum, 32, hex);
    snprintf(cf->etag, sizeof(cf->etag), "\"%.16s\"", hex);
    C.bytes += (size_t)size;
    return SW_OK;
}

/* Load the files under dir (the folder `path` of the site, "" at the top). */
static sw_err dir_load(const char *dir, const char *path, int depth, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "could not open the console folder %s: %s", dir, strerror(errno));
        return SW_EINVAL;
    }
    sw_err rv = SW_OK;
    struct dirent *e;
    while (rv == SW_OK && (e = readdir(d)) != NULL) {
        char full[1024], sub[CONSOLE_PATH_MAX];
        struct stat st;
        if (!name_ok(e->d_name))
            continue; /* ".", "..", hidden files, odd names */
        int fl = snprintf(full, sizeof(full), "%s/%s", dir, e->d_name);
        int sl = snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (fl < 0 || (size_t)fl >= sizeof(full) || sl < 0 || (size_t)sl >= sizeof(sub) ||
            lstat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < CONSOLE_DEPTH_MAX) {
            rv = dir_load(full, sub, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            const char *ctype = kind_of(e->d_name);
            if (ctype != NULL)
                rv = file_load(full, sub, ctype, st.st_size, err, errlen);
        }
    }
    closedir(d);
    return rv;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct console_file *)a)->path, ((const struct console_file *)b)->path);
}

static const struct console_file *file_find(const char *path)
{
    struct console_file key;
    if (strlen(path) >= sizeof(key.path))
        return NULL;
    snprintf(key.path, sizeof(key.path), "%s", path);
    return bsearch(&key, C.files, C.n, sizeof(C.files[0]), file_cmp);
}

static void answer(struct hreq *r, uint16_t status, const struct console_file *f, const char *text)
{
    static const char common[] =
        "Content-Security-Policy: default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "X-Frame-Options: DENY\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "Cache-Control: no-cache\r\n";
    char head[sizeof(common) + 200];
    const char *ctype = status == 200 ? f->ctype : text != NULL ? "text/plain; charset=utf-8" : "";
    snprintf(head, sizeof(head), "%s%s%s%s%s%s%s", common, f != NULL ? "ETag: " : "",
             f != NULL ? f->etag : "", f != NULL ? "\r\n" : "", ctype[0] ? "Content-Type: " : "",
             ctype, ctype[0] ? "\r\n" : "");
    if (status == 200)
        hreq_reply(r, status, head, f->data, f->len, 0);
    else
        hreq_reply(r, status, head, text, text != NULL ? strlen(text) : 0, 0);
}

bool console_handle(struct hreq *r)
{
    if (C.files == NULL)
        return false; /* no console: the caller answers 404 */
    const char *method = hreq_method(r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        answer(r, 405, NULL, "method not allowed: the console's files are read with GET\n");
        return true;
    }
    const char *uri = hreq_uri(r);
    char path[CONSOLE_PATH_MAX];
    size_t n = strcspn(uri, "?#");
    if (n >= sizeof(path)) {
        answer(r, 404, NULL, "no such file\n");
        return true;
    }
    memcpy(path, uri, n);
    path[n] = '\0';
    const struct console_file *f = file_find(strcmp(path, "/") == 0 ? "/index.html" : path);
    if (f == NULL) {
        answer(r, 404, NULL, "no such file\n");
        return true;
    }
    const char *inm = hreq_header(r, "If-None-Match");
    if (inm != NULL && strstr(inm, f->etag) != NULL) {
        answer(r, 304, f, NULL);
        return true;
    }
    answer(r, 200, f, NULL);
    return true;
}

sw_err console_open(const char *dir, char *err, size_t errlen)
{
    if (dir == NULL || dir[0] == '\0')
        return SW_OK; /* no console */
    C.files = calloc(CONSOLE_FILES_MAX, sizeof(C.files[0]));
    if (C.files == NULL) {
        snprintf(err, errlen, "out of memory loading the console");
        return SW_ENOMEM;
    }
    sw_err rv = dir_load(dir, "", 0, err, errlen);
    if (rv == SW_OK)
        qsort(C.files, C.n, sizeof(C.files[0]), file_cmp);
    if (rv == SW_OK && file_find("/index.html") == NULL) {
        snprintf(err, errlen, "the console folder %s has no index.html", dir);
        rv = SW_EINVAL;
    }
    if (rv != SW_OK) {
        console_close();
        return rv;
    }
    LOG(LOG_INFO, "INTAKE-CONSOLE", "web console: %zu files (%zu bytes) from %s", C.n, C.bytes,
        dir);
    return SW_OK;
}

void console_close(void)
{
    for (size_t i = 0; i < C.n; i++)
        free(C.files[i].data);
    free(C.files);
    memset(&C, 0, sizeof(C));
}
