/*
 * fuzz_http_head - libFuzzer driver for the request head parser of
 * intake's HTTP server (http_head_parse, httpd.c), which sees every byte
 * a client sends before anything else does.  The bytes are copied into a
 * buffer of exactly their length (so a read past the end is caught), the
 * head is parsed in place, and every part it returns is checked to lie
 * inside the buffer and to hold no byte the parser should have refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/intake/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *buf, long end, const char *s)
{
    if (s < buf || s >= buf + end || s + strlen(s) >= buf + end)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    struct http_head h;
    long n = http_head_parse(buf, size, &h);
    if (n > 0) {
        if ((size_t)n > size || h.minor < 0 || h.minor > 9 || h.n < 0 || h.n > HTTPD_HEADERS_MAX)
            abort();
        inside(buf, n, h.method);
        inside(buf, n, h.uri);
        if (h.method[0] == '\0' || h.uri[0] == '\0' || strchr(h.uri, ' ') != NULL)
            abort();
        for (int i = 0; i < h.n; i++) {
            inside(buf, n, h.name[i]);
            inside(buf, n, h.value[i]);
            if (h.name[i][0] == '\0' || strpbrk(h.name[i], " \t:\r\n") != NULL ||
                strpbrk(h.value[i], "\r\n") != NULL)
                abort();
        }
    } else if (n != 0 && n != -400 && n != -431 && n != -505) {
        abort();
    }
    free(buf);
    return 0;
}
