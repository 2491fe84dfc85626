/*
 * The store: the current state of every key, kept as a sorted array of state references in
 * etcd's key order. Lookup is a binary search (O(log n)); a range or a page is a contiguous
 * slice; a new key costs a memmove of the tail, which stays cheap (one 100,000-key store moves
 * at most 800 KB) and buys cache-friendly, allocation-free ordered iteration for lists.
 * Not thread-safe: the cacher's lock guards it.
 */
#ifndef WCACHED_STORE_H
#define WCACHED_STORE_H

#include "internal.h"

typedef struct wc_store {
    wc_kv **v;
    size_t n, cap;
} wc_store;

void wc_store_init(wc_store *s);
/* Releases every state and the array. */
void wc_store_free(wc_store *s);

/* Index of the first key >= key (n when none). */
size_t wc_store_lower_bound(const wc_store *s, const char *key, size_t len);

/* The state of key (borrowed), or NULL. */
wc_kv *wc_store_get(const wc_store *s, const char *key, size_t len);

/*
 * Sets key's state to kv, taking over the caller's reference. The replaced state, if any, is
 * handed to the caller in *old (else *old = NULL). Returns 0 or WC_ENOMEM (nothing changed).
 */
int wc_store_put(wc_store *s, wc_kv *kv, wc_kv **old);

/* Makes room for `n` states, so that puts of new keys up to that count cannot fail.
 * 0, or WC_ENOMEM with nothing changed. */
int wc_store_reserve(wc_store *s, size_t n);

/* Removes key; its state goes to the caller in *old. Returns 0 or WC_ENOENT. */
int wc_store_del(wc_store *s, const char *key, size_t len, wc_kv **old);

/* The slice [*begin, *end) of keys in the range of an exact key or a prefix. */
void wc_store_range(const wc_store *s, const char *key, size_t len, bool prefix, size_t *begin,
                    size_t *end);

#endif
