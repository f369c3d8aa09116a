/*
 * fuzz_request - libFuzzer driver for the body of POST /v1/cases: the
 * bytes go to body_parse (http.c: depth limit, JSON, an object) and, when
 * they make an object, to reg_parse (handle_register.c: every field).
 * Everything is freed, so a leak is a finding too.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../services/intake/intake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    char msg[200];
    struct reg *r = NULL;
    struct field_error fe[INTAKE_MAX_FIELDS];
    if (body_parse((const char *)data, size, &body, msg, sizeof(msg)) != 0)
        return 0;
    /* with and without an Idempotency-Key header, as http.c may call it */
    if (reg_parse(body, NULL, &r, fe) == 0)
        reg_free(r);
    r = NULL;
    if (reg_parse(body, "fuzz-key", &r, fe) == 0)
        reg_free(r);
    json_decref(body);
    return 0;
}
