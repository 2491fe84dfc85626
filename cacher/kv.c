/*
 * Key-value states and events: the immutable, refcounted records that the store, the ring and
 * every watcher share.
 *
 * A state is parsed once, when it is made, and the tree is not kept: holding the cache in
 * memory is wcached's whole job, and a tree costs several times the text it came from. What
 * the parse leaves behind, in the state's one allocation after its key and raw value:
 * - the index field's value, which every change is dispatched by; selectors read labels and
 *   fields from the raw text (json.c), which the parse proved to be well-formed;
 * - the layout of its Kubernetes encoding, which is the raw value with its resourceVersion put
 *   in: a prefix of the value, a few bytes before the revision's digits, a few after, the rest
 *   of the value. When the value is not written the way jansson writes it (spaces, other
 *   escapes, other number forms), the encoding minus the digits is kept instead of a splice.
 * Both are worked out from jansson's own encoding of the object, so what is served is byte for
 * byte what dumping the tree would give. That encoding is written by one scan of the value
 * (wc_json_k8s_encode) when the value is written the way jansson writes it, which is what
 * etcd usually holds; only other values are parsed into a tree and dumped, at several times
 * the cost.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wcached/parse.h"

const char *wc_json_path_string(json_t *obj, const char *path, char *tmp, size_t tmp_len,
                                size_t *len)
{
    json_t *cur = obj;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t seg = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, p, seg);
        p += seg;
        if (*p == '.')
            p++;
    }
    if (!cur)
        return NULL;
    if (json_is_string(cur)) {
        *len = json_string_length(cur);
        return json_string_value(cur);
    }
    int n = -1;
    if (json_is_integer(cur))
        n = snprintf(tmp, tmp_len, "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
    else if (json_is_real(cur))
        n = snprintf(tmp, tmp_len, "%.17g", json_real_value(cur));
    else if (json_is_boolean(cur))
        n = snprintf(tmp, tmp_len, "%s", json_is_true(cur) ? "true" : "false");
    if (n < 0 || (size_t)n >= tmp_len)
        return NULL;
    *len = (size_t)n;
    return tmp;
}

/* True when the value's first byte after blanks opens an object: most non-JSON values stop
 * here. */
static bool looks_like_object(const char *value, size_t len)
{
    size_t i = 0;
    while (i < len && (value[i] == ' ' || value[i] == '\n' || value[i] == '\t' || value[i] == '\r'))
        i++;
    return i < len && value[i] == '{';
}

/* jansson's tree of the value when it is an object (duplicate keys refused), else NULL. */
static json_t *parse_object(const char *value, size_t len)
{
    json_t *obj = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ---------------------------------------------------------------------------------------
 * Labels and fields, read from the raw text
 * ------------------------------------------------------------------------------------- */

const char *wc_kv_label(const wc_kv *kv, const char *name, char *tmp, size_t tmp_len, char **heap,
                        size_t *len)
{
    if (!(kv->flags & WC_KV_OBJECT))
        return NULL;
    return wc_json_raw_label(kv->value, kv->value_len, name, tmp, tmp_len, heap, len);
}

const char *wc_kv_field(const wc_kv *kv, const char *path, char *tmp, size_t tmp_len, char **heap,
                        size_t *len)
{
    if (!(kv->flags & WC_KV_OBJECT))
        return NULL;
    return wc_json_raw_path(kv->value, kv->value_len, path, tmp, tmp_len, heap, len);
}

/* ---------------------------------------------------------------------------------------
 * The Kubernetes encoding's layout
 * ------------------------------------------------------------------------------------- */

/* A splice whose inserted bytes exceed this keeps the whole encoding instead. */
#define MID_MAX 200

/* jansson's encoding of the object with metadata.resourceVersion = rv (a shallow copy: the
 * parsed tree is not modified), compact; NULL on allocation failure. */
static char *dump_k8s(json_t *obj, const char *rv)
{
    json_t *o = json_copy(obj);
    if (!o)
        return NULL;
    json_t *md = json_object_get(o, "metadata");
    md = json_is_object(md) ? json_copy(md) : json_object();
    char *s = NULL;
    if (md && json_object_set_new(md, "resourceVersion", json_string(rv)) == 0 &&
        json_object_set_new(o, "metadata", md) == 0)
        s = json_dumps(o, JSON_COMPACT);
    else
        json_decref(md);
    json_decref(o);
    return s;
}

typedef struct layout {
    char *enc;           /* jansson's encoding at the state's mod_rev (owned) */
    size_t enc_len;      /* ... */
    size_t d0, d1;       /* where its digits are */
    bool splice;         /* the raw value (without blanks around it) serves as the base */
    size_t lo, base_len; /* splice: the base is value[lo..lo + base_len) */
    size_t pre, post;    /* splice: base[0..pre) enc[pre..d0) DIGITS enc[d1..) base[post..) */
    size_t mid1, mid2;
} layout;

/* The length of the bytes a and b start with alike, up to n: eight at a time while they
 * agree. */
static size_t same_prefix(const char *a, const char *b, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n && wc_word8(a + i) == wc_word8(b + i))
        i += 8;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The length of the bytes a[..n) and b[..n) end with alike. */
static size_t same_suffix(const char *a_end, const char *b_end, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n && wc_word8(a_end - i - 8) == wc_word8(b_end - i - 8))
        i += 8;
    while (i < n && a_end[-(ptrdiff_t)i - 1] == b_end[-(ptrdiff_t)i - 1])
        i++;
    return i;
}

/* How l->enc (the encoding at the state's revision, its rvn digits at l->d0) splices into the
 * raw value. */
static void plan_k8s(const char *value, size_t value_len, size_t rvn, layout *l)
{
    l->d1 = l->d0 + rvn;
    /* The raw value without the blanks around it against the encoding: a common prefix that
     * stops at the digits, a common suffix that starts after them. */
    size_t lo = 0, hi = value_len;
    while (lo < hi &&
           (value[lo] == ' ' || value[lo] == '\n' || value[lo] == '\t' || value[lo] == '\r'))
        lo++;
    while (hi > lo && (value[hi - 1] == ' ' || value[hi - 1] == '\n' || value[hi - 1] == '\t' ||
                       value[hi - 1] == '\r'))
        hi--;
    size_t p = same_prefix(value + lo, l->enc, l->d0 < hi - lo ? l->d0 : hi - lo);
    size_t tail = l->enc_len - l->d1, room = hi - (lo + p);
    size_t q = same_suffix(value + hi, l->enc + l->enc_len, tail < room ? tail : room);
    l->mid1 = l->d0 - p;
    l->mid2 = l->enc_len - q - l->d1;
    l->splice = l->mid1 + l->mid2 <= MID_MAX;
    l->lo = lo;
    l->pre = p;
    l->post = hi - q - lo;
    l->base_len = hi - lo;
}

/* ---------------------------------------------------------------------------------------
 * States
 * ------------------------------------------------------------------------------------- */

size_t wc_kv_mem(const wc_kv *kv)
{
    /* malloc's own word and rounding to 16 bytes */
    return (kv->alloc + 8 + 15) & ~(size_t)15;
}

/* The encoding at the state's revision into l->enc: made by the scanner when it takes the
 * value (and `tree` is false), else from jansson's tree, which *obj then holds. True when the
 * value is an object; false when it is not, or with *fail set when the encoding could not be
 * made (out of memory), and then the state is not made either. */
static bool encode_k8s(const char *value, size_t vlen, bool utf8, const char *rv, size_t rvn,
                       bool tree, json_t **obj, layout *l, bool *fail)
{
    *obj = NULL;
    *fail = false;
    if (!looks_like_object(value, vlen))
        return false;
    if (!tree && utf8) {
        l->enc = malloc(vlen + rvn + WC_JSON_K8S_EXTRA);
        if (!l->enc) {
            *fail = true;
            return false;
        }
        if (wc_json_k8s_encode(value, vlen, rv, rvn, l->enc, &l->enc_len, &l->d0))
            return true;
        free(l->enc);
        l->enc = NULL;
    }
    *obj = parse_object(value, vlen);
    if (!*obj)
        return false;
    l->enc = dump_k8s(*obj, rv);
    if (!l->enc) {
        *fail = true;
        return false;
    }
    l->enc_len = strlen(l->enc);
    if (!wc_json_find_rv(l->enc, l->enc_len, &l->d0) || l->d0 + rvn > l->enc_len) {
        *fail = true; /* cannot happen: the encoding was made with it */
        return false;
    }
    return true;
}

static wc_kv *kv_new(const wc_kv_spec *spec, const char *index_field, bool tree)
{
    size_t vlen = spec->value ? spec->value_len : 0;
    const char *value = vlen ? spec->value : "";
    bool value_utf8 = wc_utf8_valid(value, vlen);
    char rv[24];
    size_t rvn = wc_i64_dec(spec->mod_rev, rv);
    json_t *obj = NULL;
    layout l = {0};
    wc_kv *kv = NULL;
    char tmp[64], *heap = NULL;
    const char *index_value = NULL;
    size_t index_len = 0;
    bool fail;
    bool is_object = encode_k8s(value, vlen, value_utf8, rv, rvn, tree, &obj, &l, &fail);
    if (fail)
        goto out;
    if (is_object && index_field) {
        if (obj)
            index_value = wc_json_path_string(obj, index_field, tmp, sizeof(tmp), &index_len);
        else
            index_value =
                wc_json_raw_path(value, vlen, index_field, tmp, sizeof(tmp), &heap, &index_len);
        if (index_value)
            index_len++; /* its NUL */
    }
    if (is_object)
        plan_k8s(value, vlen, rvn, &l);
    size_t base_len = 0, mid_len = 0;
    if (is_object && l.splice)
        mid_len = l.mid1 + l.mid2;
    else if (is_object)
        base_len = l.enc_len - (l.d1 - l.d0);
    size_t size = sizeof(*kv) + spec->key_len + 1 + vlen + 1 + index_len + mid_len + base_len;
    /* Offsets are 32-bit: etcd's requests stop far below 4 GiB. */
    kv = size <= UINT32_MAX ? malloc(size) : NULL;
    if (!kv)
        goto out;
    atomic_init(&kv->refs, 1);
    kv->flags = is_object ? WC_KV_OBJECT : 0;
    kv->create_rev = spec->create_rev;
    kv->mod_rev = spec->mod_rev;
    kv->version = spec->version;
    kv->lease = spec->lease;
    kv->key_len = spec->key_len;
    kv->value_len = vlen;
    kv->alloc = (uint32_t)size;
    char *o = kv->data;
    kv->key = o;
    if (spec->key_len)
        memcpy(o, spec->key, spec->key_len);
    o[spec->key_len] = '\0';
    o += spec->key_len + 1;
    kv->value = o;
    if (vlen)
        memcpy(o, value, vlen);
    o[vlen] = '\0';
    o += vlen + 1;
    kv->index_value = NULL;
    kv->index_hash = 0;
    if (index_value) {
        memcpy(o, index_value, index_len - 1);
        o[index_len - 1] = '\0';
        kv->index_value = o;
        kv->index_hash = wc_index_hash(o);
        o += index_len;
    }
    kv->base = kv->base_len = kv->pre = kv->post = 0;
    kv->mid = kv->mid1 = kv->mid_len = 0;
    if (is_object && l.splice) {
        memcpy(o, l.enc + l.pre, l.mid1);
        memcpy(o + l.mid1, l.enc + l.d1, l.mid2);
        kv->mid = (uint32_t)(o - kv->data);
        kv->mid1 = (uint32_t)l.mid1;
        kv->mid_len = (uint32_t)mid_len;
        kv->base = (uint32_t)(kv->value + l.lo - kv->data);
        kv->base_len = (uint32_t)l.base_len;
        kv->pre = (uint32_t)l.pre;
        kv->post = (uint32_t)l.post;
    } else if (is_object) {
        memcpy(o, l.enc, l.d0);
        memcpy(o + l.d0, l.enc + l.d1, l.enc_len - l.d1);
        kv->base = (uint32_t)(o - kv->data);
        kv->base_len = (uint32_t)base_len;
        kv->pre = kv->post = (uint32_t)l.d0;
    }
    if (wc_utf8_valid(kv->key, kv->key_len))
        kv->flags |= WC_KV_KEY_UTF8;
    if (value_utf8)
        kv->flags |= WC_KV_VALUE_UTF8;
    wc_kv_measure(kv);
    for (int i = 0; i < WC_FAMILY_COUNT; i++)
        atomic_init(&kv->render[i], NULL);
out:
    json_decref(obj);
    free(l.enc);
    free(heap);
    return kv;
}

wc_kv *wc_kv_new(const wc_kv_spec *spec, const char *index_field)
{
    return kv_new(spec, index_field, false);
}

wc_kv *wc_kv_new_tree(const wc_kv_spec *spec, const char *index_field)
{
    return kv_new(spec, index_field, true);
}

bool wc_kv_same(const wc_kv *a, const wc_kv *b)
{
    if (a->flags != b->flags || a->create_rev != b->create_rev || a->mod_rev != b->mod_rev ||
        a->version != b->version || a->lease != b->lease || a->key_len != b->key_len ||
        a->value_len != b->value_len || a->alloc != b->alloc || a->base != b->base ||
        a->mid != b->mid || a->base_len != b->base_len || a->pre != b->pre || a->post != b->post ||
        a->mid1 != b->mid1 || a->mid_len != b->mid_len || a->keys_len != b->keys_len ||
        (a->index_value == NULL) != (b->index_value == NULL))
        return false;
    if (a->index_value && a->index_value - a->data != b->index_value - b->data)
        return false;
    return memcmp(a->data, b->data, a->alloc - sizeof(*a)) == 0;
}

wc_kv *wc_kv_ref(wc_kv *kv)
{
    atomic_fetch_add_explicit(&kv->refs, 1, memory_order_relaxed);
    return kv;
}

void wc_kv_unref(wc_kv *kv)
{
    if (!kv || atomic_fetch_sub_explicit(&kv->refs, 1, memory_order_acq_rel) != 1)
        return;
    wc_kv_render_free(kv);
    free(kv);
}

const char *wc_kv_key(const wc_kv *kv, size_t *len)
{
    if (len)
        *len = kv->key_len;
    return kv->key;
}

const char *wc_kv_value(const wc_kv *kv, size_t *len)
{
    if (len)
        *len = kv->value_len;
    return kv->value;
}

int64_t wc_kv_mod_rev(const wc_kv *kv)
{
    return kv->mod_rev;
}

int64_t wc_kv_version(const wc_kv *kv)
{
    return kv->version;
}

int64_t wc_kv_lease(const wc_kv *kv)
{
    return kv->lease;
}

int64_t wc_kv_create_rev(const wc_kv *kv)
{
    return kv->create_rev;
}

bool wc_kv_is_object(const wc_kv *kv)
{
    return (kv->flags & WC_KV_OBJECT) != 0;
}

/* ---------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------- */

wc_event *wc_event_new(wc_ev_type type, int64_t rev, wc_kv *kv, wc_kv *prev)
{
    wc_event *ev = malloc(sizeof(*ev));
    if (!ev)
        return NULL;
    atomic_init(&ev->refs, 1);
    ev->type = type;
    ev->rev = rev;
    ev->seq = 0;
    ev->kv = kv ? wc_kv_ref(kv) : NULL;
    ev->prev = prev ? wc_kv_ref(prev) : NULL;
    /* What the event keeps alive beyond the store: the state it replaced or deleted, which the
     * store let go of (the state it made is the store's while it is the key's newest, and the
     * next event of the key counts it); plus the event itself. */
    ev->bytes = ((sizeof(*ev) + 8 + 15) & ~(size_t)15) + (prev ? wc_kv_mem(prev) : 0);
    ev->acct = NULL;
    ev->enc_bytes = 0;
    for (int f = 0; f < WC_FAMILY_COUNT; f++)
        atomic_init(&ev->enc[f], NULL);
    return ev;
}

wc_event *wc_event_ref(wc_event *ev)
{
    atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    return ev;
}

void wc_event_unref(wc_event *ev)
{
    if (!ev || atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    wc_event_enc_free(ev);
    wc_kv_unref(ev->kv);
    wc_kv_unref(ev->prev);
    free(ev);
}

wc_ev_type wc_event_type(const wc_event *ev)
{
    return ev->type;
}

int64_t wc_event_rev(const wc_event *ev)
{
    return ev->rev;
}

const wc_kv *wc_event_kv(const wc_event *ev)
{
    return ev->kv;
}

const wc_kv *wc_event_prev(const wc_event *ev)
{
    return ev->prev;
}
