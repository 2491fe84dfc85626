/*
 * libFuzzer target: arbitrary bytes through the parsers of etcd's gateway requests that wcached
 * serves (http/etcd_req.c): a range request's body, and a watch body split into lines as a
 * session reads it. The first byte picks which (bit 0: watch lines) and the cached prefix the
 * ranges are held to (bits 1-2: none, "/p/", "/a\xff", "\xff\xff").
 * Checked: a range parses to 0 with a key and its bounds kept (sort order 0..2, target 0..4, key
 * and end NUL-terminated), or WC_EINVAL with a message and nothing held; a watch line is one of
 * the kinds, a create holding its key and end in etcd's forms (NULL for one key, "" for no
 * bound, never the "\0" form itself) and the other kinds holding nothing; spaces around a line
 * change nothing; and whether a range lies in the prefix agrees with a plain byte-by-byte
 * reference. See tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_req.h"
#include "wcached/err.h"

static const char *const PREFIXES[] = {"", "/p/", "/a\xff", "\xff\xff"};

/* [key, end) in the prefix, the slow way: the key starts with it, and end (NULL: the one key;
 * end_len 0: no bound) is at most the prefix's end (the prefix, its trailing 0xff bytes
 * dropped, its last byte raised; none when every byte is 0xff). */
static bool ref_in_prefix(const char *p, const char *key, size_t key_len, const char *end,
                          size_t end_len)
{
    size_t pl = strlen(p);
    if (pl == 0)
        return true;
    if (key_len < pl)
        return false;
    for (size_t i = 0; i < pl; i++)
        if (key[i] != p[i])
            return false;
    if (!end)
        return true;
    /* end <= the prefix's end, either of them possibly past every key. */
    size_t el = pl;
    while (el > 0 && (unsigned char)p[el - 1] == 0xff)
        el--;
    bool end_unbounded = end_len == 0, prefix_unbounded = el == 0;
    if (prefix_unbounded || end_unbounded)
        return prefix_unbounded;
    unsigned char pe[8];
    memcpy(pe, p, el);
    pe[el - 1]++;
    for (size_t i = 0; i < el && i < end_len; i++) {
        if ((unsigned char)end[i] != pe[i])
            return (unsigned char)end[i] < pe[i];
    }
    return end_len <= el;
}

static void check_prefix(const char *prefix, const char *key, size_t key_len, const char *end,
                         size_t end_len)
{
    if (wc_http_etcd_in_prefix(prefix, key, key_len, end, end_len) !=
        ref_in_prefix(prefix, key, key_len, end, end_len))
        abort();
}

static void check_range(const uint8_t *data, size_t size, const char *prefix)
{
    wc_http_etcd_range q;
    char err[256] = "";
    int rc = wc_http_etcd_range_parse((const char *)data, size, &q, err, sizeof(err));
    if (rc != 0) {
        if ((rc != WC_EINVAL && rc != WC_ENOMEM) || (rc == WC_EINVAL && !err[0]) || q.key || q.end)
            abort();
        return;
    }
    if (!q.key || q.key_len == 0 || q.key[q.key_len] != '\0' || q.sort_order < 0 ||
        q.sort_order > 2 || q.sort_target < 0 || q.sort_target > 4 ||
        (q.end && q.end[q.end_len] != '\0') || (!q.end && q.end_len))
        abort();
    const char *end;
    size_t end_len;
    wc_http_etcd_range_form(q.end, q.end_len, &end, &end_len);
    if ((end && end_len == 0 && !(q.end_len == 1 && q.end[0] == '\0')) || (!end && q.end_len != 0))
        abort();
    check_prefix(prefix, q.key, q.key_len, end, end_len);
    wc_http_etcd_range_free(&q);
}

/* Parses one line, checks what it holds; returns its kind (the request freed). */
static int watch_line(const char *p, size_t n, const char *prefix, wc_http_etcd_watch_req *keep)
{
    wc_http_etcd_watch_req r;
    bool oom;
    wc_http_etcd_watch_kind k = wc_http_etcd_watch_parse(p, n, &r, &oom);
    if (k != r.kind || (unsigned)k > WC_HTTP_ETCD_BAD || (oom && k != WC_HTTP_ETCD_BAD))
        abort();
    if (k != WC_HTTP_ETCD_CREATE) {
        if (r.key || r.end)
            abort();
        if (keep)
            *keep = r;
        return k;
    }
    if ((r.key && r.key[r.key_len] != '\0') || (!r.key && r.key_len) ||
        (r.end && r.end_len == 0 && r.end[0] != '\0') || (!r.end && r.end_len) ||
        (r.end && r.end_len == 1 && r.end[0] == '\0') || (r.end && r.end[r.end_len] != '\0'))
        abort();
    if (r.key)
        check_prefix(prefix, r.key, r.key_len, r.end, r.end_len);
    if (keep) {
        *keep = r;
        return k;
    }
    wc_http_etcd_watch_free(&r);
    return k;
}

/* The same line with spaces and tabs around it parses alike. */
static void check_padded(const char *p, size_t n, const char *prefix)
{
    wc_http_etcd_watch_req a, b;
    watch_line(p, n, prefix, &a);
    char *padded = malloc(n + 4);
    if (!padded)
        abort();
    padded[0] = ' ';
    padded[1] = '\t';
    memcpy(padded + 2, p, n);
    padded[n + 2] = ' ';
    padded[n + 3] = '\r';
    watch_line(padded, n + 4, prefix, &b);
    free(padded);
    bool same =
        a.kind == b.kind && a.key_len == b.key_len && a.end_len == b.end_len && !a.key == !b.key &&
        !a.end == !b.end && (!a.key || memcmp(a.key, b.key, a.key_len) == 0) &&
        (!a.end || memcmp(a.end, b.end, a.end_len) == 0) && a.start_revision == b.start_revision &&
        a.watch_id == b.watch_id && a.prev_kv == b.prev_kv &&
        a.progress_notify == b.progress_notify && a.noput == b.noput && a.nodelete == b.nodelete;
    wc_http_etcd_watch_free(&a);
    wc_http_etcd_watch_free(&b);
    if (!same)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *prefix = PREFIXES[(data[0] >> 1) & 3];
    bool watch = data[0] & 1;
    data++;
    size--;
    if (!watch) {
        check_range(data, size, prefix);
        return 0;
    }
    const char *p = (const char *)data;
    size_t n = size;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        check_padded(p, k, prefix);
        p += nl ? k + 1 : k;
        n -= nl ? k + 1 : k;
    }
    return 0;
}
