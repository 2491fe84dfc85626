/*
 * One key-value as etcd reports it: the plain description that moves from upstream/ to cacher/.
 * All pointers are borrowed for the duration of the call that receives the spec.
 */
#ifndef WCACHED_CHANGE_H
#define WCACHED_CHANGE_H

#include <stdbool.h>
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

/*
 * One change of a key as the upstream saw it: a put of `kv`, or (deleted) a delete of kv.key at
 * revision kv.mod_rev (the other fields unused). `prev` is the key's state before it when etcd
 * sent it (a watch with prev_kv: a start's history), else NULL. Borrowed like a spec.
 */
typedef struct wc_change {
    wc_kv_spec kv;
    bool deleted;
    const wc_kv_spec *prev;
} wc_change;

#endif
