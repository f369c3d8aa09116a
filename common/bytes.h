/*
 * bytes.h - integers in network byte order (big-endian), for the bus's
 * wire header and PostgreSQL's binary COPY.
 */
#ifndef SHOUWEN_BYTES_H
#define SHOUWEN_BYTES_H

#include <stdint.h>

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

#endif
