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
 * One key's state. Immutable after wc_kv_new() except for the encodings wc_kv_render keeps,
 * which are published once with a release store under a striped lock (render.c) and never
 * change after. Everything lives in one allocation: the struct, then key and value (each
 * NUL-terminated), the index value, and the layout of the Kubernetes encoding (see
 * wc_kv_pieces).
 */
#define WC_KV_OBJECT 1u     /* the value parsed as a JSON object */
#define WC_KV_KEY_UTF8 2u   /* the key is UTF-8 */
#define WC_KV_VALUE_UTF8 4u /* the value is UTF-8 */

struct wc_kv {
    atomic_uint refs;
    unsigned flags;
    int64_t create_rev, mod_rev, version, lease;
    size_t key_len, value_len;
    char *key;               /* points into data[] */
    char *value;             /* points into data[] */
    const char *index_value; /* the index field's value as a string, or NULL; into data[] */
    /* The Kubernetes encoding at revision R: base[0..pre) mid[0..mid1) R mid[mid1..mid_len)
     * base[post..base_len). base is the raw value (without blanks around it) or, when the
     * value is not written as jansson writes it, the encoding itself less the digits. */
    uint32_t base, mid; /* offsets into data[] */
    uint32_t base_len, pre, post;
    uint32_t mid1, mid_len;
    uint32_t keys_len;   /* the /keys encoding's length less its two revisions' digits */
    uint32_t alloc;      /* bytes of the allocation */
    uint32_t index_hash; /* wc_index_hash(index_value), 0 without one */
    _Atomic(char *) render[WC_FAMILY_COUNT]; /* kept by wc_kv_render only */
    char data[];
};

/* FNV-1a of an index value: a catch-up compares it before the value itself (watcher.c). */
static inline uint32_t wc_index_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/*
 * One change. Immutable once published except for its /keys encodings, made lazily by the
 * first watcher that needs one and shared by all (the Kubernetes encoding needs none: it is
 * spliced from the state as it is sent). `seq` numbers every published event; it orders events
 * that share a revision (a txn) and is what watchers use as their position in the ring.
 */
typedef enum wc_ev_enc {
    WC_ENC_KEYS = 0,     /* the new state under /keys */
    WC_ENC_KEYS_DEL = 1, /* the deleted state under /keys, at the deletion's revision */
} wc_ev_enc;

struct wc_event {
    atomic_uint refs;
    wc_ev_type type;
    int64_t rev;
    uint64_t seq;
    wc_kv *kv;    /* new state (a reference), NULL for DELETED */
    wc_kv *prev;  /* old state (a reference), NULL for ADDED */
    size_t bytes; /* what the ring counts for it: the event and the state it replaced */
    /* Encodings made later are added to *acct (the ring's count) while the event is in the
     * ring; both fields under the event's stripe lock (render.c). */
    atomic_size_t *acct;
    size_t enc_bytes;
    _Atomic(char *) enc[2]; /* wc_ev_enc; each a wc_enc_blob's bytes, see render.c */
};

/* wc_kv_new made from jansson's tree alone, never by the scanner (json.c): the reference the
 * scanner is held to by tests and the fuzz target. */
wc_kv *wc_kv_new_tree(const wc_kv_spec *spec, const char *index_field);

/* True when two states hold the same fields and bytes (their encodings' layouts included). */
bool wc_kv_same(const wc_kv *a, const wc_kv *b);

/* Makes an event holding new references to kv and prev. NULL on allocation failure. */
wc_event *wc_event_new(wc_ev_type type, int64_t rev, wc_kv *kv, wc_kv *prev);

/*
 * The /keys encoding of an event's new state (`deleted` false) or of its deleted state at the
 * deletion's revision, made once and shared; owned by the event. NULL on allocation failure.
 */
const char *wc_event_keys(wc_event *ev, bool deleted, size_t *len);

/* Free the encodings wc_kv_render kept for a state, and those of an event (render.c). */
void wc_kv_render_free(wc_kv *kv);
void wc_event_enc_free(wc_event *ev);

/* The ring takes in an event: its encodings, made now or later, are added to *acct (the ring's
 * count) until it leaves. */
void wc_event_enter_ring(wc_event *ev, atomic_size_t *acct);

/* The ring lets go of an event: its later encodings are no longer counted (render.c). Returns
 * the bytes of encodings that were counted for it. */
size_t wc_event_leave_ring(wc_event *ev);

/* The Kubernetes encoding of a state at revision `rev` as up to 5 pieces, pointing into the
 * state and into `digits`; returns the count (0 when the value is not an object). */
#define WC_KV_PIECES 5
int wc_kv_pieces(const wc_kv *kv, int64_t rev, char digits[24], const char **p, size_t *n);

/* The encoding of `kv` in `family` at revision `rev`, written to out (NULL: only measured);
 * the length. 0 when the family cannot serve the value. */
size_t wc_kv_encode_at(const wc_kv *kv, wc_family family, int64_t rev, char *out);

/* Fills kv->keys_len (render.c), once its other fields are set. */
void wc_kv_measure(wc_kv *kv);

/* Bytes the state holds in memory, malloc's overhead included. */
size_t wc_kv_mem(const wc_kv *kv);

/* A label's value (NULL when absent or not a string); tmp and heap as for wc_kv_field. */
const char *wc_kv_label(const wc_kv *kv, const char *name, char *tmp, size_t tmp_len, char **heap,
                        size_t *len);

/* A field path's value as a string, as wc_json_path_string tells it of the parsed value, read
 * from the raw text. A decoded string may be put in tmp or in a
 * malloc'd *heap (which the caller frees, and which may be replaced). NULL when absent. */
const char *wc_kv_field(const wc_kv *kv, const char *path, char *tmp, size_t tmp_len, char **heap,
                        size_t *len);

/* Looks up a field path ("metadata.name", "spec.nodeName") in a JSON object as a string:
 * strings as they are, numbers and booleans in their JSON text into `tmp`. NULL if absent. */
const char *wc_json_path_string(json_t *obj, const char *path, char *tmp, size_t tmp_len,
                                size_t *len);

/* json.c: the same lookup in JSON text that jansson accepted (see wc_kv_field). */
const char *wc_json_raw_path(const char *s, size_t n, const char *path, char *tmp, size_t tmp_len,
                             char **heap, size_t *len);

/* json.c: metadata.labels[name] when it is a string, as wc_json_raw_path tells strings. */
const char *wc_json_raw_label(const char *s, size_t n, const char *name, char *tmp, size_t tmp_len,
                              char **heap, size_t *len);

/* json.c: s[0..n) as a JSON string the way jansson writes it, quotes included, into out (NULL:
 * only measured); the length. */
size_t wc_json_escape(const char *s, size_t n, char *out);
/* ... without the quotes. */
size_t wc_json_escape_raw(const char *s, size_t n, char *out);

/* json.c: when s[0..n) is a JSON object that jansson accepts (JSON_REJECT_DUPLICATES) and
 * whose tokens are written as jansson writes them, true with out[0..*out_len) set to
 * json_dumps(JSON_COMPACT) of it with metadata.resourceVersion set to the string rv[0..rvn)
 * and *rv_at to where rv's bytes start in out; false otherwise (the caller asks jansson). The value
 * must be UTF-8 (wc_utf8_valid): the scan does not check it again. out has room for n + rvn +
 * WC_JSON_K8S_EXTRA bytes; after false its contents are undefined. */
#define WC_JSON_K8S_EXTRA 64
bool wc_json_k8s_encode(const char *s, size_t n, const char *rv, size_t rvn, char *out,
                        size_t *out_len, size_t *rv_at);

/* json.c: in a compact encoding of an object, where the value of metadata.resourceVersion
 * starts (just after its opening quote). False when it has none. */
bool wc_json_find_rv(const char *s, size_t n, size_t *at);

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
