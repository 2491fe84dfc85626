/* The one table of error descriptions (see include/wcached/err.h). */
#include "wcached/err.h"

const char *wc_strerror(int err)
{
    switch (err) {
    case WC_OK:
        return "success";
    case WC_ENOMEM:
        return "out of memory";
    case WC_EINVAL:
        return "invalid argument";
    case WC_ENOENT:
        return "not found";
    case WC_EEXPIRED:
        return "resource version too old";
    case WC_EAGAIN:
        return "nothing to read yet";
    case WC_EOF:
        return "end of stream";
    case WC_ESTALE:
        return "stale revision";
    case WC_ETIMEDOUT:
        return "timed out";
    case WC_ENOTREADY:
        return "cache not ready";
    case WC_EIO:
        return "i/o error";
    case WC_EPROTO:
        return "protocol error";
    case WC_ETOOBIG:
        return "too large";
    default:
        return "unknown error";
    }
}
