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

static void answer(nng_aio *aio, uint16_t status, const struct console_file *f, const char *text)
{
    nng_http_res *res = NULL;
    int rv = nng_http_res_alloc(&res);
    static const char *const headers[][2] = {
        {"Content-Security-Policy",
         "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
         "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"Cache-Control", "no-cache"},
    };
    for (size_t i = 0; rv == 0 && i < sizeof(headers) / sizeof(headers[0]); i++)
        rv = nng_http_res_set_header(res, headers[i][0], headers[i][1]);
    if (rv == 0)
        rv = nng_http_res_set_status(res, status);
    if (rv == 0 && f != NULL)
        rv = nng_http_res_set_header(res, "ETag", f->etag);
    if (rv == 0 && status == 200) {
        rv = nng_http_res_set_header(res, "Content-Type", f->ctype);
        if (rv == 0)
            rv = nng_http_res_set_data(res, f->data, f->len); /* kept until intake stops */
    } else if (rv == 0 && text != NULL) {
        rv = nng_http_res_set_header(res, "Content-Type", "text/plain; charset=utf-8");
        if (rv == 0)
            rv = nng_http_res_copy_data(res, text, strlen(text));
    }
    if (rv != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void console_handle(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    const char *uri = nng_http_req_get_uri(req);
    char path[CONSOLE_PATH_MAX];
    size_t n = strcspn(uri, "?#");
    if (n >= sizeof(path)) {
        answer(aio, 404, NULL, "no such file\n");
        return;
    }
    memcpy(path, uri, n);
    path[n] = '\0';
    const struct console_file *f = file_find(strcmp(path, "/") == 0 ? "/index.html" : path);
    if (f == NULL) {
        answer(aio, 404, NULL, "no such file\n");
        return;
    }
    const char *inm = nng_http_req_get_header(req, "If-None-Match");
    if (inm != NULL && strstr(inm, f->etag) != NULL) {
        answer(aio, 304, f, NULL);
        return;
    }
    answer(aio, 200, f, NULL);
}

sw_err console_open(nng_http_server *srv, const char *dir, char *err, size_t errlen)
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
    nng_http_handler *h = NULL;
    int nrv = 0;
    if (rv == SW_OK && ((nrv = nng_http_handler_alloc(&h, "/", console_handle)) != 0 ||
                        (nrv = nng_http_handler_set_method(h, "GET")) != 0 ||
                        (nrv = nng_http_handler_set_tree(h)) != 0 ||
                        (nrv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
                        (nrv = nng_http_server_add_handler(srv, h)) != 0)) {
        if (h != NULL)
            nng_http_handler_free(h);
        snprintf(err, errlen, "could not add the console's route: %s", nng_strerror(nrv));
        rv = SW_ENNG;
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
