/*
 * Answers: every response leaves through wc_http_respond(), which marks a connection kept for
 * probes to close after it, notes the code for the request's latency, and counts it by code.
 * The rest are its shapes: a copied or taken body, a Status, the Status of an error code.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "http_internal.h"

enum MHD_Result wc_http_respond(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                struct MHD_Response *resp, const char *ctype)
{
    if (!resp)
        return MHD_NO;                 /* out of memory: MHD closes the connection */
    if (wc_http_conn_probe_only(conn)) /* its room is for the next probe */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    wc_http_conn_answered(conn, code);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES && code < 600)
        atomic_fetch_add_explicit(&h->codes[code], 1, memory_order_relaxed);
    return ret;
}

/* libmicrohttpd takes a response's bytes as `void *` but never writes them: the one place
 * where const is set aside. */
static void *mhd_bytes(const void *p)
{
    return (void *)(uintptr_t)p;
}

enum MHD_Result wc_http_respond_copy(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                     const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, mhd_bytes(body), MHD_RESPMEM_MUST_COPY);
    return wc_http_respond(h, conn, code, resp, ctype);
}

/* Takes over `body` (malloc'd). */
enum MHD_Result wc_http_respond_take(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                     const char *ctype, char *body, size_t len)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(body);
    return wc_http_respond(h, conn, code, resp, ctype);
}

enum MHD_Result wc_http_respond_status(wc_http *h, struct MHD_Connection *conn,
                                       const wc_http_error *e)
{
    size_t len;
    char *body = wc_http_status_json(e, &len);
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (e->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", e->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (e->code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return wc_http_respond(h, conn, (unsigned)e->code, resp, "application/json");
}

/* A Status for an error code of the cacher or the waiter. */
enum MHD_Result wc_http_respond_err(wc_http *h, struct MHD_Connection *conn, int rc, int64_t want,
                                    bool from_continue)
{
    wc_http_error e;
    switch (rc) {
    case WC_ENOTREADY:
        if (want > 0 && wc_cacher_ready(h->o.cacher))
            wc_http_fail(&e, rc, 429, "TooManyRequests",
                         "the history at resourceVersion %" PRId64 " is being taken back from "
                         "etcd after a start; please retry",
                         want);
        else
            wc_http_fail(&e, rc, 429, "TooManyRequests",
                         "the cache is being initialized; please retry");
        e.retry_after = 1;
        break;
    case WC_ETIMEDOUT:
        wc_http_fail(&e, rc, 504, "Timeout",
                     "Too large resource version: %" PRId64 ", current: %" PRId64, want,
                     wc_cacher_rev(h->o.cacher));
        e.cause = "ResourceVersionTooLarge";
        e.retry_after = 1;
        break;
    case WC_EEXPIRED:
        if (from_continue)
            wc_http_fail(&e, rc, 410, "Expired",
                         "The provided continue parameter is too old to display a consistent "
                         "list result. You can start a new list without the continue "
                         "parameter.");
        else
            wc_http_fail(&e, rc, 410, "Expired",
                         "The resourceVersion for the provided list is too old.");
        break;
    case WC_EIO:
        wc_http_fail(&e, rc, 503, "ServiceUnavailable",
                     "etcd did not tell its current revision: a consistent read is not "
                     "possible now");
        e.retry_after = 1;
        break;
    case WC_EOF:
        wc_http_fail(&e, rc, 503, "ServiceUnavailable", "the server is shutting down");
        e.retry_after = 1;
        break;
    default:
        wc_http_fail(&e, rc, 500, "InternalError", "internal error: %s", wc_strerror(rc));
        break;
    }
    return wc_http_respond_status(h, conn, &e);
}
