/* The sorted-array store; see store.h for the trade-offs. */
#include <stdlib.h>
#include <string.h>

#include "store.h"

void wc_store_init(wc_store *s)
{
    s->v = NULL;
    s->n = s->cap = 0;
}

void wc_store_free(wc_store *s)
{
    for (size_t i = 0; i < s->n; i++)
        wc_kv_unref(s->v[i]);
    free(s->v);
    wc_store_init(s);
}

size_t wc_store_lower_bound(const wc_store *s, const char *key, size_t len)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (wc_key_cmp(s->v[mid]->key, s->v[mid]->key_len, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

wc_kv *wc_store_get(const wc_store *s, const char *key, size_t len)
{
    size_t i = wc_store_lower_bound(s, key, len);
    if (i < s->n && wc_key_cmp(s->v[i]->key, s->v[i]->key_len, key, len) == 0)
        return s->v[i];
    return NULL;
}

int wc_store_reserve(wc_store *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    wc_kv **v = realloc(s->v, n * sizeof(*v));
    if (!v)
        return WC_ENOMEM;
    s->v = v;
    s->cap = n;
    return 0;
}

int wc_store_put(wc_store *s, wc_kv *kv, wc_kv **old)
{
    *old = NULL;
    size_t i;
    /* Initial lists arrive in key order: appending is the common case. */
    if (s->n == 0 ||
        wc_key_cmp(s->v[s->n - 1]->key, s->v[s->n - 1]->key_len, kv->key, kv->key_len) < 0)
        i = s->n;
    else
        i = wc_store_lower_bound(s, kv->key, kv->key_len);
    if (i < s->n && wc_key_cmp(s->v[i]->key, s->v[i]->key_len, kv->key, kv->key_len) == 0) {
        *old = s->v[i];
        s->v[i] = kv;
        return 0;
    }
    if (s->n == s->cap && wc_store_reserve(s, s->cap ? s->cap * 2 : 64) != 0)
        return WC_ENOMEM;
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
    s->v[i] = kv;
    s->n++;
    return 0;
}

int wc_store_del(wc_store *s, const char *key, size_t len, wc_kv **old)
{
    *old = NULL;
    size_t i = wc_store_lower_bound(s, key, len);
    if (i == s->n || wc_key_cmp(s->v[i]->key, s->v[i]->key_len, key, len) != 0)
        return WC_ENOENT;
    *old = s->v[i];
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
    s->n--;
    return 0;
}

/* True when `key` starts with `prefix`. */
static bool has_prefix(const wc_kv *kv, const char *prefix, size_t len)
{
    return kv->key_len >= len && memcmp(kv->key, prefix, len) == 0;
}

void wc_store_range(const wc_store *s, const char *key, size_t len, bool prefix, size_t *begin,
                    size_t *end)
{
    size_t b = wc_store_lower_bound(s, key, len);
    size_t e = b;
    if (!prefix) {
        if (e < s->n && s->v[e]->key_len == len && memcmp(s->v[e]->key, key, len) == 0)
            e++;
    } else {
        /* Keys with the prefix are contiguous from b; find the first that lacks it. */
        size_t lo = b, hi = s->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (has_prefix(s->v[mid], key, len))
                lo = mid + 1;
            else
                hi = mid;
        }
        e = lo;
    }
    *begin = b;
    *end = e;
}
