/*
 * One key-value as etcd reports it: the plain description that moves from upstream/ to cacher/.
 * All pointers are borrowed for the duration of the call that receives the spec.
 */
#ifndef WCACHED_KV_H
#define WCACHED_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct wc_kv_spec {
    const char *key;
    size_t key_len;
    const char *value; /* raw bytes, not base64; may hold NULs */
    size_t value_len;
    int64_t create_rev;
    int64_t mod_rev;
    int64_t version;
    int64_t lease;
} wc_kv_spec;

#endif
