/*
 * err.c - descriptions for the project's error enum.
 */
#include "err.h"

const char *sw_strerror(sw_err err)
{
    switch (err) {
    case SW_OK:
        return "no error";
    case SW_ENOMEM:
        return "out of memory";
    case SW_EINVAL:
        return "invalid input";
    case SW_ERANGE:
        return "value out of range";
    case SW_EMISSING:
        return "required value missing";
    case SW_ENOTFOUND:
        return "not found";
    case SW_ECONFLICT:
        return "conflict";
    case SW_EDB:
        return "database error";
    case SW_EDBDOWN:
        return "database unreachable";
    case SW_ENNG:
        return "messaging error";
    case SW_EIO:
        return "i/o error";
    case SW_ETIMEDOUT:
        return "timed out";
    case SW_ECLOSED:
        return "closed";
    case SW_ETOOBIG:
        return "too big";
    }
    return "unknown error";
}
