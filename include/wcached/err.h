/*
 * wcached error codes.
 *
 * Every public function returns 0 on success or one of these negative codes. Messages for a
 * person are made once, at the edge (an HTTP Status or a log line), from wc_strerror() and the
 * context the edge knows; nothing below the edge prints.
 */
#ifndef WCACHED_ERR_H
#define WCACHED_ERR_H

typedef enum wc_err {
    WC_OK = 0,
    WC_ENOMEM = -1,    /* allocation failed; nothing was changed */
    WC_EINVAL = -2,    /* bad argument or unparsable input */
    WC_ENOENT = -3,    /* no such key */
    WC_EEXPIRED = -4,  /* resourceVersion older than the history kept (HTTP 410) */
    WC_EAGAIN = -5,    /* nothing to read now; the caller is woken when there is */
    WC_EOF = -6,       /* the stream has ended */
    WC_ESTALE = -7,    /* a duplicate or older revision; ignored */
    WC_ETIMEDOUT = -8, /* a wait ran out */
    WC_ENOTREADY = -9, /* the cache has not loaded its first list yet */
    WC_EIO = -10,      /* a transport failure (socket, TLS, HTTP status) */
    WC_EPROTO = -11,   /* the peer sent something that breaks its protocol */
    WC_ETOOBIG = -12,  /* input over a configured bound */
} wc_err;

/* A short, static description of an error code; never NULL. */
const char *wc_strerror(int err);

#endif
