/*
 * Wire encodings of states. Each state is encoded at most once per family, by whichever thread
 * first needs it, and the bytes are shared by every list and watcher that serves it. The
 * encoding is published with a release store; a striped mutex makes sure two threads never
 * encode the same state twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wcached/b64.h"
#include "wcached/parse.h"

/* Guards the first encoding of a kv or event (hashed by address). Never held across I/O. */
#define RENDER_STRIPES 64
static pthread_mutex_t render_locks[RENDER_STRIPES] = {
    [0 ... RENDER_STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t *stripe(const void *p)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return &render_locks[(h >> 40) % RENDER_STRIPES];
}

/* A JSON string for bytes that may not be UTF-8: invalid bytes become U+FFFD. */
static json_t *lossy_string(const char *s, size_t n)
{
    if (wc_utf8_valid(s, n))
        return json_stringn(s, n);
    char *buf = malloc(n * 3 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            buf[o++] = (char)c;
        } else {
            buf[o++] = (char)0xEF;
            buf[o++] = (char)0xBF;
            buf[o++] = (char)0xBD;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

static json_t *render_keys(const wc_kv *kv, int64_t rev, int64_t mod_rev)
{
    char rv[24];
    snprintf(rv, sizeof(rv), "%" PRId64, rev);
    json_t *o = json_object();
    json_t *md = json_object();
    json_t *name = lossy_string(kv->key, kv->key_len);
    if (!o || !md || !name)
        goto fail;
    json_object_set_new(o, "kind", json_string("KeyValue"));
    json_object_set_new(o, "apiVersion", json_string("wcached/v1"));
    json_object_set(md, "name", name);
    json_object_set_new(md, "resourceVersion", json_string(rv));
    json_object_set_new(o, "metadata", md);
    md = NULL;
    json_object_set_new(o, "key", name);
    name = NULL;
    if (!wc_utf8_valid(kv->key, kv->key_len)) {
        char *b = wc_b64_encode(kv->key, kv->key_len, WC_B64_STD);
        if (!b)
            goto fail;
        json_object_set_new(o, "keyBase64", json_string(b));
        free(b);
    }
    if (wc_utf8_valid(kv->value, kv->value_len)) {
        json_object_set_new(o, "value", json_stringn(kv->value, kv->value_len));
    } else {
        char *b = wc_b64_encode(kv->value, kv->value_len, WC_B64_STD);
        if (!b)
            goto fail;
        json_object_set_new(o, "valueBase64", json_string(b));
        free(b);
    }
    json_object_set_new(o, "createRevision", json_integer(kv->create_rev));
    json_object_set_new(o, "modRevision", json_integer(mod_rev));
    json_object_set_new(o, "version", json_integer(kv->version));
    json_object_set_new(o, "lease", json_integer(kv->lease));
    return o;
fail:
    json_decref(o);
    json_decref(md);
    json_decref(name);
    return NULL;
}

/* A shallow copy of the object with metadata (also copied) carrying the resourceVersion;
 * the shared parsed object is never modified. */
static json_t *render_k8s(const wc_kv *kv, int64_t rev)
{
    char rv[24];
    snprintf(rv, sizeof(rv), "%" PRId64, rev);
    json_t *o = json_copy(kv->obj);
    if (!o)
        return NULL;
    json_t *md = json_object_get(o, "metadata");
    md = json_is_object(md) ? json_copy(md) : json_object();
    if (!md || json_object_set_new(md, "resourceVersion", json_string(rv)) != 0 ||
        json_object_set_new(o, "metadata", md) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *wc_render_kv(const wc_kv *kv, wc_family family, int64_t rev, int64_t mod_rev, size_t *len)
{
    *len = 0;
    if (family == WC_FAMILY_K8S && !kv->obj)
        return NULL;
    json_t *o = family == WC_FAMILY_K8S ? render_k8s(kv, rev) : render_keys(kv, rev, mod_rev);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s)
        *len = strlen(s);
    return s;
}

/* The cache pattern shared by states and events: load-acquire, else encode once under the
 * stripe lock and publish with a release store. */
static const char *cached(_Atomic(char *) *slot, size_t *slot_len, const void *owner,
                          const wc_kv *kv, wc_family family, int64_t rev, int64_t mod_rev,
                          size_t *len)
{
    char *s = atomic_load_explicit(slot, memory_order_acquire);
    if (!s) {
        pthread_mutex_t *mu = stripe(owner);
        pthread_mutex_lock(mu);
        s = atomic_load_explicit(slot, memory_order_acquire);
        if (!s) {
            size_t n = 0;
            s = wc_render_kv(kv, family, rev, mod_rev, &n);
            if (s) {
                *slot_len = n;
                atomic_store_explicit(slot, s, memory_order_release);
            }
        }
        pthread_mutex_unlock(mu);
    }
    *len = s ? *slot_len : 0;
    return s;
}

const char *wc_kv_render(wc_kv *kv, wc_family family, size_t *len)
{
    if (family == WC_FAMILY_K8S && !kv->obj) {
        *len = 0;
        return NULL;
    }
    return cached(&kv->render[family], &kv->render_len[family], kv, kv, family, kv->mod_rev,
                  kv->mod_rev, len);
}

const char *wc_event_render_deleted(wc_event *ev, wc_family family, size_t *len)
{
    if (!ev->prev || (family == WC_FAMILY_K8S && !ev->prev->obj)) {
        *len = 0;
        return NULL;
    }
    return cached(&ev->del_render[family], &ev->del_render_len[family], ev, ev->prev, family,
                  ev->rev, ev->rev, len);
}
