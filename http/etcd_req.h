/*
 * The requests of etcd's JSON gateway that wcached serves (etcd_api.c), decoded from their
 * bytes with nothing else: a range request's body and one line of a watch body. They answer
 * as etcd 3.4's gateway reads them (the proto's names and their camelCase forms, int64 as a
 * number or a string, bytes as standard base64, enums by name or number, null as absent), so
 * the answers can carry the gateway's own messages. Kept apart so a fuzz target can reach them
 * (tests/fuzz/fuzz_etcd_req.c). Any thread; nothing here is shared.
 */
#ifndef WC_HTTP_ETCD_REQ_H
#define WC_HTTP_ETCD_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A RangeRequest. key and end are malloc'd and NUL-terminated (the bytes may hold NULs too);
 * end is as sent (NULL when absent): wc_http_etcd_range_form says what it means. */
typedef struct wc_http_etcd_range {
    char *key, *end;
    size_t key_len, end_len;
    int64_t limit, revision, min_mod, max_mod, min_create, max_create;
    int sort_order;  /* 0 NONE, 1 ASCEND, 2 DESCEND */
    int sort_target; /* 0 KEY, 1 VERSION, 2 CREATE, 3 MOD, 4 VALUE */
    bool serializable, keys_only, count_only;
} wc_http_etcd_range;

/*
 * Decodes a range request's body (n bytes at p; p may be NULL when n is 0) into q. 0; WC_EINVAL
 * with the gateway's message in err (and q holding nothing); WC_ENOMEM. A request with no key
 * is WC_EINVAL ("etcdserver: key is not provided"), as etcd answers it.
 */
int wc_http_etcd_range_parse(const char *p, size_t n, wc_http_etcd_range *q, char *err,
                             size_t err_len);

/* Frees what q holds (q itself is the caller's). */
void wc_http_etcd_range_free(wc_http_etcd_range *q);

/*
 * etcd's range_end forms: absent or empty (the one key: *out NULL), "\0" (every key from key
 * on: *out "" with *out_len 0), or a bound (*out = end).
 */
void wc_http_etcd_range_form(const char *end, size_t end_len, const char **out, size_t *out_len);

/*
 * True when [key, end) lies in the cached `prefix` ("" or NULL: the whole key space), with end
 * in the form wc_http_etcd_range_form gives (NULL: the one key; end_len 0: no bound).
 */
bool wc_http_etcd_in_prefix(const char *prefix, const char *key, size_t key_len, const char *end,
                            size_t end_len);

typedef enum wc_http_etcd_watch_kind {
    WC_HTTP_ETCD_IGNORED = 0, /* a blank line, or an object with no request the gateway knows */
    WC_HTTP_ETCD_CREATE,
    WC_HTTP_ETCD_CANCEL,
    WC_HTTP_ETCD_PROGRESS,
    WC_HTTP_ETCD_BAD, /* not a JSON object, or a field that does not decode: the gateway stops
                         reading the body there */
} wc_http_etcd_watch_kind;

/* One line of a watch body. For a create, key and end are malloc'd (the caller owns them; see
 * wc_http_etcd_watch_free) with end in the form wc_http_etcd_range_form gives: NULL for the
 * one key, "" with end_len 0 for no bound, else the bound. */
typedef struct wc_http_etcd_watch_req {
    wc_http_etcd_watch_kind kind;
    char *key, *end;
    size_t key_len, end_len;
    int64_t start_revision; /* 0: from now */
    int64_t watch_id;       /* a create's: -1 when none was given; a cancel's: the one named */
    bool prev_kv, progress_notify, noput, nodelete;
} wc_http_etcd_watch_req;

/*
 * Decodes one line (n bytes at p, without its '\n'; spaces, tabs and '\r' around it are
 * trimmed) into r, and returns r->kind. Out of memory is WC_HTTP_ETCD_BAD with *oom set (else
 * *oom is false); r holds nothing unless the kind is WC_HTTP_ETCD_CREATE.
 */
wc_http_etcd_watch_kind wc_http_etcd_watch_parse(const char *p, size_t n, wc_http_etcd_watch_req *r,
                                                 bool *oom);

/* Frees what r holds (r itself is the caller's). */
void wc_http_etcd_watch_free(wc_http_etcd_watch_req *r);

#endif
