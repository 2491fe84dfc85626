/*
 * libFuzzer target: arbitrary query strings through the list/watch parameter parser, and
 * arbitrary continue tokens through their decoder. The input is split at '&' and '=' into
 * parameters as MHD hands them over (a parameter without '=' has a NULL value); its first byte
 * also picks the legacy /watch/ form and whether an index field is configured.
 * Checked: the parser answers only 0, or WC_EINVAL with a 400 naming the problem and nothing
 * left owned; a parsed query keeps every bound (limit >= 0, 0 <= timeoutSeconds <= one year,
 * resourceVersion unset or >= 0, a continue token's revision >= 1 and no continue on a watch,
 * resourceVersionMatch only with a resourceVersion on a list, field selectors on supported
 * fields only). A token that decodes re-encodes to exactly itself (no lenient reading), and any
 * key encoded with any revision >= 1 decodes back to itself. See tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "wcached/err.h"

#define MAX_PARAMS 64
#define INDEX_FIELD "spec.nodeName"

static void check_fields(const wc_selector *s, bool indexed)
{
    for (size_t i = 0; s && i < wc_selector_count(s); i++) {
        const char *k = wc_selector_key(s, i);
        if (strcmp(k, "metadata.name") != 0 && strcmp(k, "metadata.namespace") != 0 &&
            !(indexed && strcmp(k, INDEX_FIELD) == 0))
            abort();
    }
}

static void check_query(int rc, const wc_http_query *q, const wc_http_error *e, bool watch_path,
                        bool indexed)
{
    if (rc != 0) {
        if (rc != WC_EINVAL || e->code != 400 || !e->message[0] || q->labels || q->fields ||
            q->cont_key)
            abort();
        return;
    }
    if (q->limit < 0 || q->timeout_s < 0 || q->timeout_s > WC_HTTP_MAX_TIMEOUT_SECONDS ||
        q->limit > WC_HTTP_MAX_PAGE_SIZE || (q->rv != WC_RV_UNSET && q->rv < 0) ||
        q->send_initial < -1 || q->send_initial > 1 || (watch_path && !q->watch) ||
        q->match > WC_HTTP_MATCH_EXACT)
        abort();
    if (q->has_continue && (q->cont_rv < 1 || !q->cont_key || q->watch || q->rv > 0 ||
                            strlen(q->cont_key) > q->cont_key_len))
        abort();
    if (!q->has_continue && q->cont_key)
        abort();
    if (!q->watch && q->match != WC_HTTP_MATCH_NONE && q->rv == WC_RV_UNSET)
        abort();
    if (!q->watch && q->send_initial >= 0)
        abort();
    check_fields(q->fields, indexed);
}

/* A token that decodes must be the very token of what it decodes to. */
static void check_token(const char *tok, size_t len)
{
    int64_t rv;
    char *key = NULL;
    size_t klen;
    int rc = wc_http_continue_decode(tok, len, &rv, &key, &klen);
    if (rc == WC_ENOMEM)
        return;
    if (rc != 0) {
        if (rc != WC_EINVAL || key)
            abort();
        return;
    }
    char *again = wc_http_continue_encode(rv, key, klen);
    if (again && (rv < 1 || strlen(again) != len || memcmp(again, tok, len) != 0))
        abort();
    free(again);
    free(key);
}

/* Any key, with any revision >= 1, comes back from its token unchanged. */
static void check_round_trip(const uint8_t *data, size_t size)
{
    uint64_t u = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        u = (u << 8) | data[i];
    int64_t rv = (int64_t)(u % INT64_MAX) + 1;
    char *tok = wc_http_continue_encode(rv, (const char *)data, size);
    if (!tok)
        return;
    int64_t rv2;
    char *key = NULL;
    size_t klen;
    int rc = wc_http_continue_decode(tok, strlen(tok), &rv2, &key, &klen);
    /* a key too long for a token is refused, never misread */
    if (rc == 0 && (rv2 != rv || klen != size || memcmp(key, data, size) != 0))
        abort();
    if (rc != 0 && (rc != WC_EINVAL || strlen(tok) <= WC_HTTP_MAX_TOKEN))
        abort();
    free(key);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool watch_path = data[0] & 1, indexed = data[0] & 2;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    size_t len = strlen(s);

    check_token(s, len);
    check_round_trip(data + 1, size - 1);

    wc_http_param params[MAX_PARAMS];
    size_t n = 0;
    for (char *p = s, *next; p && n < MAX_PARAMS; p = next) {
        next = strchr(p, '&');
        if (next)
            *next++ = '\0';
        char *eq = strchr(p, '=');
        if (eq)
            *eq++ = '\0';
        params[n].key = p;
        params[n].value = eq;
        n++;
    }
    wc_http_query q;
    wc_http_error e = {0};
    int rc = wc_http_query_parse(params, n, indexed ? INDEX_FIELD : NULL, NULL, watch_path, NULL,
                                 &q, &e);
    check_query(rc, &q, &e, watch_path, indexed);
    if (rc == 0)
        wc_http_query_free(&q);
    free(s);
    return 0;
}
