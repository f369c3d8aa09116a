/*
 * err.h - the project's one error enum.
 *
 * Every fallible function in common/ and the services returns an
 * `sw_err`.  Codes from nng, libpq and the C library are translated into
 * these at the boundary, so callers never need to know which library
 * failed; the log line carries the library's own text next to the code.
 */
#ifndef SHOUWEN_ERR_H
#define SHOUWEN_ERR_H

typedef enum sw_err {
    SW_OK = 0,
    SW_ENOMEM,    /* out of memory */
    SW_EINVAL,    /* malformed input (names the field in the caller's message) */
    SW_ERANGE,    /* well-formed but out of bounds */
    SW_EMISSING,  /* a required value is absent */
    SW_ENOTFOUND, /* no such row, file, setting */
    SW_ECONFLICT, /* optimistic-lock or uniqueness conflict: retry or report */
    SW_EDB,       /* the database refused or failed */
    SW_EDBDOWN,   /* the database cannot be reached */
    SW_ENNG,      /* nng failed (socket, listener, http server) */
    SW_EIO,       /* an operating-system I/O call failed */
    SW_ETIMEDOUT, /* a deadline passed */
    SW_ECLOSED,   /* the object is shutting down */
    SW_ETOOBIG,   /* a bounded buffer would exceed its ceiling */
} sw_err;

/* sw_strerror returns a static, lower-case description of `err`. */
const char *sw_strerror(sw_err err);

#endif
