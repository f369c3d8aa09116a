/*
 * fuzz_bus_wire - libFuzzer driver for what a consumer does with a
 * doorbell (common/bus.c doorbell): the bytes are opened as a bus message
 * (bus_wire_open: one event or a batch), each event is stepped to and its
 * Envelope's framing checked (bus_envelope_framed, what the consumer does)
 * and, beside it, unpacked (protobuf-c, from untrusted bytes).  Every event
 * must lie inside the message, there must be as many as the message says,
 * and an envelope protobuf-c can unpack must be framed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bus_wire w;
    if (bus_wire_open(&w, data, size) != SW_OK)
        return 0;
    size_t n = 0;
    while (bus_wire_next(&w)) {
        if (w.env < data || w.envlen > size || w.env + w.envlen > data + size)
            abort();
        bool framed = bus_envelope_framed(w.env, w.envlen);
        Shouwen__V1__Envelope *e = shouwen__v1__envelope__unpack(NULL, w.envlen, w.env);
        if (e != NULL && w.envlen > 0 && !framed)
            abort();
        if (e != NULL)
            shouwen__v1__envelope__free_unpacked(e, NULL);
        n++;
    }
    if (n != w.count)
        abort();
    return 0;
}
