/*
 * fuzz_submit_case - libFuzzer driver for what intake's REP socket does
 * with a request: the bytes are unpacked as a shouwen.v1.SubmitCase
 * (protobuf-c, from untrusted bytes) and, when they unpack, turned into a
 * registration by rep_submit_to_reg (rep.c: SubmitCase -> the JSON of the
 * HTTP API -> reg_parse).  Everything is freed, so a leak is a finding too.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../services/intake/intake.h"
#include "shouwen/v1/intake.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reg *r = NULL;
    struct field_error fe[INTAKE_MAX_FIELDS];
    Shouwen__V1__SubmitCase *m = shouwen__v1__submit_case__unpack(NULL, size, data);
    if (m == NULL)
        return 0;
    if (rep_submit_to_reg(m, &r, fe) == 0)
        reg_free(r);
    shouwen__v1__submit_case__free_unpacked(m, NULL);
    return 0;
}
