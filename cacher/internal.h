/*
 * Private layout of the cacher's objects, shared by the files of cacher/ and by its unit tests.
 * Nothing outside cacher/ and tests/cacher/ includes this header.
 */
#ifndef WCACHED_CACHER_INTERNAL_H
#define WCACHED_CACHER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "wcached/cacher.h"
#include "wcached/selector.h"

/*
 * One key's state. Immutable after wc_kv_new() except for the lazily made encodings, which are
 * published once with a release store under a striped lock (render.c) and never change after.
 * Key and value are stored inline after the struct, each NUL-terminated.
 */
struct wc_kv {
    atomic_uint refs;
    int64_t create_rev, mod_rev, version, lease;
    size_t key_len, value_len;
    char *key;         /* points into data[] */
    char *value;       /* points into data[] */
    json_t *obj;       /* the value parsed, when it is a JSON object; else NULL */
    char *index_value; /* the index field's value in obj as a string, or NULL */
    _Atomic(char *) render[WC_FAMILY_COUNT];
    size_t render_len[WC_FAMILY_COUNT]; /* written before render[] is published */
    char data[];
};

/*
 * One change. Immutable once published except for the DELETED encodings, made lazily like a
 * kv's. `seq` numbers every published event; it orders events that share a revision (a txn)
 * and is what watchers use as their position in the ring.
 */
struct wc_event {
    atomic_uint refs;
    wc_ev_type type;
    int64_t rev;
    uint64_t seq;
    wc_kv *kv;    /* new state (a reference), NULL for DELETED */
    wc_kv *prev;  /* old state (a reference), NULL for ADDED */
    size_t bytes; /* what the ring accounts for it */
    _Atomic(char *) del_render[WC_FAMILY_COUNT];
    size_t del_render_len[WC_FAMILY_COUNT];
};

/* Makes an event holding new references to kv and prev. NULL on allocation failure. */
wc_event *wc_event_new(wc_ev_type type, int64_t rev, wc_kv *kv, wc_kv *prev);

/*
 * The object of a DELETED frame: the last state with metadata.resourceVersion set to the
 * deletion's revision (as Kubernetes does). Cached on the event. NULL when the family cannot
 * serve the value.
 */
const char *wc_event_render_deleted(wc_event *ev, wc_family family, size_t *len);

/* Renders `kv` in `family` with metadata.resourceVersion `rev` (and, under /keys,
 * modRevision `mod_rev`) into a new malloc'd string; NULL when the family cannot serve it or on
 * allocation failure. Used by the caches above. */
char *wc_render_kv(const wc_kv *kv, wc_family family, int64_t rev, int64_t mod_rev, size_t *len);

/* Looks up a field path ("metadata.name", "spec.nodeName") in a JSON object as a string:
 * strings as they are, numbers and booleans in their JSON text into `tmp`. NULL if absent. */
const char *wc_json_path_string(json_t *obj, const char *path, char *tmp, size_t tmp_len,
                                size_t *len);

/* etcd's key order: bytewise, a prefix before its extensions. */
static inline int wc_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r != 0)
        return r;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* True when key lies in the filter's range (exact key, or prefix). */
static inline bool wc_filter_has_key(const wc_filter *f, const char *key, size_t len)
{
    if (f->prefix)
        return len >= f->key_len && memcmp(key, f->key, f->key_len) == 0;
    return len == f->key_len && memcmp(key, f->key, len) == 0;
}

/* Selectors only (no key range, no family): used for ADDED/DELETED-on-match-change. */
bool wc_filter_match_object(const wc_filter *f, const wc_kv *kv);

#endif
