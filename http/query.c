/*
 * Query parameters of list and watch, checked the way the Kubernetes apiserver checks its
 * ListOptions: each value on its own (a bad one names its parameter in a 400 Status), then the
 * combinations (resourceVersionMatch needs a resourceVersion, sendInitialEvents needs a watch
 * with resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true, ...).
 *
 * Continue tokens are ours to design: base64url of {"v":1,"rv":RV,"start":"<base64url key>"},
 * where RV pins every page of one list to one revision and the key is relative to the listed
 * range, so a token cannot move a list outside the range it came from. A token is untrusted
 * input like any other and is decoded strictly: only the exact bytes the encoder makes.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

enum {
    P_WATCH,
    P_RV,
    P_RV_MATCH,
    P_BOOKMARKS,
    P_TIMEOUT,
    P_SEND_INITIAL,
    P_LABELS,
    P_FIELDS,
    P_LIMIT,
    P_CONTINUE,
    P_COUNT
};

static const char *const NAMES[P_COUNT] = {
    [P_WATCH] = "watch",
    [P_RV] = "resourceVersion",
    [P_RV_MATCH] = "resourceVersionMatch",
    [P_BOOKMARKS] = "allowWatchBookmarks",
    [P_TIMEOUT] = "timeoutSeconds",
    [P_SEND_INITIAL] = "sendInitialEvents",
    [P_LABELS] = "labelSelector",
    [P_FIELDS] = "fieldSelector",
    [P_LIMIT] = "limit",
    [P_CONTINUE] = "continue",
};

static int bad_value(wc_http_error *err, int p, const char *value, const char *why)
{
    char q[WC_HTTP_QUOTE_MAX];
    return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                        "invalid value for parameter \"%s\": \"%s\": %s", NAMES[p],
                        wc_http_quote(value, strlen(value), q), why);
}

static int forbidden(wc_http_error *err, int p, const char *why)
{
    return wc_http_fail(err, WC_EINVAL, 400, "BadRequest", "parameter \"%s\": %s", NAMES[p], why);
}

/* True when `k` is one of the NULL-terminated `labels` (NULL: none). */
static bool listed(const char *const *labels, const char *k)
{
    for (; labels && *labels; labels++)
        if (strcmp(*labels, k) == 0)
            return true;
    return false;
}

static int parse_selector(wc_sel_kind kind, int p, const char *v, const char *index_field,
                          const char *const *fields, wc_selector **out, wc_http_error *err)
{
    wc_sel_error se = {0, NULL};
    int rc = wc_selector_parse(kind, v, out, &se);
    if (rc == WC_ENOMEM)
        return rc;
    if (rc != 0) {
        char q[WC_HTTP_QUOTE_MAX];
        return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                            "invalid value for parameter \"%s\": \"%s\": unable to parse "
                            "requirement: %s at position %zu",
                            NAMES[p], wc_http_quote(v, strlen(v), q),
                            se.what ? se.what : "syntax error", se.pos);
    }
    if (kind != WC_SEL_FIELD)
        return 0;
    for (size_t i = 0; i < wc_selector_count(*out); i++) {
        const char *k = wc_selector_key(*out, i);
        if (strcmp(k, "metadata.name") == 0 || strcmp(k, "metadata.namespace") == 0 ||
            (index_field && strcmp(k, index_field) == 0) || listed(fields, k))
            continue;
        char q[WC_HTTP_QUOTE_MAX];
        wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                     "invalid value for parameter \"%s\": field label not supported: \"%s\" "
                     "(supported: metadata.name, metadata.namespace%s%s)",
                     NAMES[p], wc_http_quote(k, strlen(k), q), index_field ? ", " : "",
                     index_field ? index_field : "");
        wc_selector_free(*out);
        *out = NULL;
        return WC_EINVAL;
    }
    return 0;
}

/* Parses one decoded, non-empty value into q. */
static int parse_one(int p, const char *v, const char *index_field, const char *const *fields,
                     const wc_http_query_bounds *bounds, wc_http_query *q, wc_http_error *err)
{
    bool b;
    int64_t n;
    switch (p) {
    case P_WATCH:
    case P_BOOKMARKS:
    case P_SEND_INITIAL:
        if (wc_http_parse_bool(v, &b) != 0)
            return bad_value(err, p, v, "must be true or false");
        if (p == P_WATCH)
            q->watch = b;
        else if (p == P_BOOKMARKS)
            q->allow_bookmarks = b;
        else
            q->send_initial = b;
        return 0;
    case P_RV:
        if (wc_parse_i64(v, strlen(v), 0, INT64_MAX, &n) != 0)
            return bad_value(err, p, v, "must be a non-negative decimal resource version");
        q->rv = n;
        return 0;
    case P_RV_MATCH:
        if (strcmp(v, "NotOlderThan") == 0)
            q->match = WC_HTTP_MATCH_NOT_OLDER;
        else if (strcmp(v, "Exact") == 0)
            q->match = WC_HTTP_MATCH_EXACT;
        else
            return bad_value(err, p, v, "supported values: \"Exact\", \"NotOlderThan\"");
        return 0;
    case P_TIMEOUT:
        if (wc_parse_i64(v, strlen(v), 0, INT64_MAX, &n) != 0)
            return bad_value(err, p, v, "must be a non-negative number of seconds");
        if (n > bounds->max_timeout_s) {
            char why[64];
            snprintf(why, sizeof(why), "must be at most %" PRId64 " seconds",
                     bounds->max_timeout_s);
            return bad_value(err, p, v, why);
        }
        q->timeout_s = n;
        return 0;
    case P_LIMIT:
        if (wc_parse_i64(v, strlen(v), 0, INT64_MAX, &n) != 0)
            return bad_value(err, p, v, "must be a non-negative integer");
        q->limit = n > bounds->max_limit ? bounds->max_limit : n;
        return 0;
    case P_LABELS:
        return parse_selector(WC_SEL_LABEL, p, v, index_field, fields, &q->labels, err);
    case P_FIELDS:
        return parse_selector(WC_SEL_FIELD, p, v, index_field, fields, &q->fields, err);
    case P_CONTINUE: {
        size_t len = strlen(v);
        int rc = wc_http_continue_decode(v, len, &q->cont_rv, &q->cont_key, &q->cont_key_len);
        if (rc == WC_ENOMEM)
            return rc;
        if (rc != 0)
            return bad_value(err, p, v, "not a continue token issued by this server");
        q->has_continue = true;
        return 0;
    }
    default:
        return 0;
    }
}

/* The combinations Kubernetes forbids (its ValidateListOptions). */
static int cross_check(const wc_http_query *q, wc_http_error *err)
{
    if (q->watch) {
        if (q->send_initial >= 0 && q->match != WC_HTTP_MATCH_NOT_OLDER)
            return forbidden(err, P_SEND_INITIAL,
                             "sendInitialEvents requires resourceVersionMatch=NotOlderThan");
        if (q->send_initial == 1 && !q->allow_bookmarks)
            return forbidden(err, P_SEND_INITIAL,
                             "sendInitialEvents requires allowWatchBookmarks=true");
        if (q->match != WC_HTTP_MATCH_NONE && q->send_initial < 0)
            return forbidden(err, P_RV_MATCH,
                             "resourceVersionMatch is forbidden for watch "
                             "unless sendInitialEvents is provided");
        if (q->has_continue)
            return forbidden(err, P_CONTINUE, "continue is forbidden for watch");
        return 0;
    }
    if (q->send_initial >= 0)
        return forbidden(err, P_SEND_INITIAL, "sendInitialEvents is forbidden for list");
    if (q->match != WC_HTTP_MATCH_NONE) {
        if (q->rv == WC_RV_UNSET)
            return forbidden(err, P_RV_MATCH,
                             "resourceVersionMatch is forbidden unless resourceVersion is "
                             "provided");
        if (q->has_continue)
            return forbidden(err, P_RV_MATCH,
                             "resourceVersionMatch is forbidden when continue is provided");
        if (q->match == WC_HTTP_MATCH_EXACT && q->rv == 0)
            return forbidden(err, P_RV_MATCH,
                             "resourceVersionMatch \"Exact\" is forbidden for "
                             "resourceVersion \"0\"");
    }
    if (q->has_continue && q->rv > 0)
        return forbidden(err, P_CONTINUE,
                         "specifying resourceVersion is not allowed when "
                         "using continue");
    return 0;
}

int wc_http_query_parse(const wc_http_param *params, size_t n, const char *index_field,
                        const char *const *fields, bool watch_path,
                        const wc_http_query_bounds *bounds, wc_http_query *q, wc_http_error *err)
{
    static const wc_http_query_bounds defaults = {.max_limit = WC_HTTP_MAX_PAGE_SIZE,
                                                  .max_timeout_s = WC_HTTP_MAX_TIMEOUT_SECONDS};
    if (!bounds)
        bounds = &defaults;
    memset(q, 0, sizeof(*q));
    q->rv = WC_RV_UNSET;
    q->send_initial = -1;
    const char *raw[P_COUNT] = {0};
    bool seen[P_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        char key[32];
        size_t klen = strlen(params[i].key);
        size_t dlen;
        if (klen >= sizeof(key) || wc_http_unescape(params[i].key, klen, key, &dlen) != 0)
            continue; /* not a name we know */
        for (int p = 0; p < P_COUNT; p++) {
            if (strcmp(key, NAMES[p]) == 0 && !seen[p]) {
                seen[p] = true;
                raw[p] = params[i].value;
            }
        }
    }
    int rc = 0;
    char *v = NULL;
    for (int p = 0; p < P_COUNT && rc == 0; p++) {
        if (!raw[p] || !raw[p][0])
            continue; /* absent or empty: unset, as Kubernetes reads it */
        size_t len = strlen(raw[p]), dlen;
        if (len > WC_HTTP_MAX_PARAM) {
            rc = wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                              "invalid value for parameter \"%s\": longer than %d bytes", NAMES[p],
                              WC_HTTP_MAX_PARAM);
            break;
        }
        v = malloc(len + 1);
        if (!v) {
            rc = WC_ENOMEM;
            break;
        }
        if (wc_http_unescape(raw[p], len, v, &dlen) != 0) {
            char qb[WC_HTTP_QUOTE_MAX];
            rc = wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                              "invalid value for parameter \"%s\": \"%s\": malformed "
                              "percent-encoding",
                              NAMES[p], wc_http_quote(raw[p], len, qb));
        } else {
            rc = parse_one(p, v, index_field, fields, bounds, q, err);
        }
        free(v);
        v = NULL;
    }
    if (rc == 0 && watch_path)
        q->watch = true;
    if (rc == 0)
        rc = cross_check(q, err);
    if (rc != 0)
        wc_http_query_free(q);
    return rc;
}

void wc_http_query_free(wc_http_query *q)
{
    wc_selector_free(q->labels);
    wc_selector_free(q->fields);
    free(q->cont_key);
    q->labels = q->fields = NULL;
    q->cont_key = NULL;
}

/* ---------------------------------------------------------------------------------------
 * Continue tokens
 * ------------------------------------------------------------------------------------- */

char *wc_http_continue_encode(int64_t rv, const char *key, size_t key_len)
{
    char *k64 = malloc(4 * ((key_len + 2) / 3) + 1);
    if (!k64)
        return NULL;
    wc_b64_encode_to(key, key_len, k64, WC_B64_URL);
    wc_buf b = {0};
    wc_buf_printf(&b, "{\"v\":1,\"rv\":%" PRId64 ",\"start\":\"%s\"}", rv, k64);
    free(k64);
    if (b.oom) {
        wc_buf_free(&b);
        return NULL;
    }
    char *tok = malloc(4 * ((b.len + 2) / 3) + 1);
    if (tok)
        wc_b64_encode_to(b.p, b.len, tok, WC_B64_URL);
    wc_buf_free(&b);
    return tok;
}

int wc_http_continue_decode(const char *tok, size_t len, int64_t *rv, char **key, size_t *key_len)
{
    if (len == 0 || len > WC_HTTP_MAX_TOKEN)
        return WC_EINVAL;
    char *raw = malloc(3 * (len / 4) + 3);
    if (!raw)
        return WC_ENOMEM;
    size_t raw_len;
    int rc = WC_EINVAL;
    json_t *j = NULL;
    char *k = NULL;
    if (wc_b64_decode_to(tok, len, raw, &raw_len, WC_B64_URL) != 0)
        goto out;
    json_error_t je;
    j = json_loadb(raw, raw_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j) || json_object_size(j) != 3)
        goto out;
    json_t *v = json_object_get(j, "v"), *r = json_object_get(j, "rv"),
           *s = json_object_get(j, "start");
    if (!json_is_integer(v) || json_integer_value(v) != 1 || !json_is_integer(r) ||
        json_integer_value(r) < 1 || !json_is_string(s))
        goto out;
    const char *s64 = json_string_value(s);
    size_t s64_len = json_string_length(s);
    k = malloc(3 * (s64_len / 4) + 3);
    if (!k) {
        rc = WC_ENOMEM;
        goto out;
    }
    size_t klen;
    if (wc_b64_decode_to(s64, s64_len, k, &klen, WC_B64_URL) != 0)
        goto out;
    k[klen] = '\0';
    /* Only the very bytes this server issues: JSON would also take reordered members, spaces
     * or escapes, and a token must read one way only. */
    char *again = wc_http_continue_encode(json_integer_value(r), k, klen);
    if (!again) {
        rc = WC_ENOMEM;
        goto out;
    }
    bool same = strlen(again) == len && memcmp(again, tok, len) == 0;
    free(again);
    if (!same)
        goto out;
    *rv = json_integer_value(r);
    *key = k;
    *key_len = klen;
    k = NULL;
    rc = 0;
out:
    free(k);
    json_decref(j);
    free(raw);
    return rc;
}
