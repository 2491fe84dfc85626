/*
 * Wire encodings of states, made when a list, a get or an event needs them rather than kept
 * for a state's life.
 *
 * - The Kubernetes encoding is the state's raw value with its resourceVersion put in: a few
 *   pieces that point into the state (wc_kv_pieces), copied as they are sent.
 * - The /keys encoding wraps the value in a KeyValue object, escaped as jansson escapes it;
 *   it is written straight from the state's bytes. An event's /keys encoding is made once, by
 *   the first watcher that needs it, shared by every watcher, kept while the event lives and
 *   counted in the ring's bytes while the event is in the ring; a striped mutex makes sure
 *   two threads never encode the same event twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wcached/b64.h"
#include "wcached/parse.h"

/* Guards the first encoding of a kv or event (hashed by address), and an event's accounting.
 * Never held across I/O. */
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

static inline void put(char *out, size_t *o, const char *s, size_t n)
{
    if (out && n)
        memcpy(out + *o, s, n);
    *o += n;
}
#define PUT_LIT(out, o, lit) put(out, o, lit, sizeof(lit) - 1)

static void put_i64(char *out, size_t *o, int64_t v)
{
    char tmp[24];
    put(out, o, tmp, wc_i64_dec(v, tmp));
}

int wc_kv_pieces(const wc_kv *kv, int64_t rev, char digits[24], const char **p, size_t *n)
{
    if (!(kv->flags & WC_KV_OBJECT))
        return 0;
    size_t dn = wc_i64_dec(rev, digits);
    const char *base = kv->data + kv->base, *mid = kv->data + kv->mid;
    p[0] = base;
    n[0] = kv->pre;
    p[1] = mid;
    n[1] = kv->mid1;
    p[2] = digits;
    n[2] = dn;
    p[3] = mid + kv->mid1;
    n[3] = kv->mid_len - kv->mid1;
    p[4] = base + kv->post;
    n[4] = kv->base_len - kv->post;
    return WC_KV_PIECES;
}

/* A JSON string of bytes that may not be UTF-8: invalid bytes become U+FFFD. */
static void put_lossy(char *out, size_t *o, const char *s, size_t n, bool valid)
{
    if (valid) {
        *o += wc_json_escape(s, n, out ? out + *o : NULL);
        return;
    }
    PUT_LIT(out, o, "\"");
    size_t run = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && (unsigned char)s[i] < 0x80)
            continue;
        *o += wc_json_escape_raw(s + run, i - run, out ? out + *o : NULL);
        if (i < n)
            PUT_LIT(out, o, "\xEF\xBF\xBD");
        run = i + 1;
    }
    PUT_LIT(out, o, "\"");
}

static void put_b64(char *out, size_t *o, const char *s, size_t n)
{
    PUT_LIT(out, o, "\"");
    if (out)
        wc_b64_encode_to(s, n, out + *o, WC_B64_STD); /* its NUL lands on the closing quote */
    *o += (n + 2) / 3 * 4;
    PUT_LIT(out, o, "\"");
}

/* {"kind":"KeyValue","apiVersion":"wcached/v1","metadata":{"name":K,"resourceVersion":"R"},
 *  "key":K[,"keyBase64":B],"value":V|"valueBase64":B,"createRevision":..,"modRevision":..,
 *  "version":..,"lease":..} */
static size_t encode_keys(const wc_kv *kv, int64_t rev, char *out)
{
    size_t o = 0;
    bool key_ok = kv->flags & WC_KV_KEY_UTF8;
    PUT_LIT(out, &o,
            "{\"kind\":\"KeyValue\",\"apiVersion\":\"wcached/v1\",\"metadata\":{\"name\":");
    size_t k0 = o;
    put_lossy(out, &o, kv->key, kv->key_len, key_ok);
    size_t k1 = o;
    PUT_LIT(out, &o, ",\"resourceVersion\":\"");
    put_i64(out, &o, rev);
    PUT_LIT(out, &o, "\"},\"key\":");
    if (out)
        memcpy(out + o, out + k0, k1 - k0);
    o += k1 - k0;
    if (!key_ok) {
        PUT_LIT(out, &o, ",\"keyBase64\":");
        put_b64(out, &o, kv->key, kv->key_len);
    }
    if (kv->flags & WC_KV_VALUE_UTF8) {
        PUT_LIT(out, &o, ",\"value\":");
        o += wc_json_escape(kv->value, kv->value_len, out ? out + o : NULL);
    } else {
        PUT_LIT(out, &o, ",\"valueBase64\":");
        put_b64(out, &o, kv->value, kv->value_len);
    }
    PUT_LIT(out, &o, ",\"createRevision\":");
    put_i64(out, &o, kv->create_rev);
    PUT_LIT(out, &o, ",\"modRevision\":");
    put_i64(out, &o, rev); /* a state's own, or a deletion's */
    PUT_LIT(out, &o, ",\"version\":");
    put_i64(out, &o, kv->version);
    PUT_LIT(out, &o, ",\"lease\":");
    put_i64(out, &o, kv->lease);
    PUT_LIT(out, &o, "}");
    return o;
}

static size_t digits_of(int64_t v)
{
    size_t n = v < 0 ? 2 : 1;
    for (v = v < 0 ? -(v / 10) : v / 10; v; v /= 10)
        n++;
    return n;
}

void wc_kv_measure(wc_kv *kv)
{
    kv->keys_len = (uint32_t)(encode_keys(kv, 0, NULL) - 2 * digits_of(0));
}

size_t wc_kv_encode_at(const wc_kv *kv, wc_family family, int64_t rev, char *out)
{
    if (rev <= 0)
        rev = kv->mod_rev;
    if (family == WC_FAMILY_KEYS)
        return out ? encode_keys(kv, rev, out) : kv->keys_len + 2 * digits_of(rev);
    char digits[24];
    const char *p[WC_KV_PIECES];
    size_t n[WC_KV_PIECES];
    int np = wc_kv_pieces(kv, rev, digits, p, n);
    size_t o = 0;
    for (int i = 0; i < np; i++)
        put(out, &o, p[i], n[i]);
    return o;
}

size_t wc_kv_encode(const wc_kv *kv, wc_family family, char *out)
{
    return wc_kv_encode_at(kv, family, kv->mod_rev, out);
}

/* A new string of the encoding (NUL-terminated); NULL when the family cannot serve it or on
 * allocation failure. */
static char *encode_new(const wc_kv *kv, wc_family family, int64_t rev, size_t *len)
{
    *len = wc_kv_encode_at(kv, family, rev, NULL);
    if (*len == 0)
        return NULL;
    char *s = malloc(*len + 1);
    if (!s) {
        *len = 0;
        return NULL;
    }
    wc_kv_encode_at(kv, family, rev, s);
    s[*len] = '\0';
    return s;
}

char *wc_kv_encode_new(const wc_kv *kv, wc_family family, size_t *len)
{
    return encode_new(kv, family, kv->mod_rev, len);
}

/* The cache pattern shared by states and events: load-acquire, else encode once under the
 * stripe lock and publish with a release store. The length is kept in front of the bytes.
 * `ev`: the event whose accounting the encoding joins (NULL for a state). */
static const char *cached(_Atomic(char *) *slot, const void *owner, const wc_kv *kv,
                          wc_family family, int64_t rev, wc_event *ev, size_t *len)
{
    char *s = atomic_load_explicit(slot, memory_order_acquire);
    if (!s) {
        pthread_mutex_t *mu = stripe(owner);
        pthread_mutex_lock(mu);
        s = atomic_load_explicit(slot, memory_order_acquire);
        if (!s) {
            size_t n = wc_kv_encode_at(kv, family, rev, NULL);
            char *blob = n ? malloc(sizeof(size_t) + n + 1) : NULL;
            if (blob) {
                memcpy(blob, &n, sizeof(n));
                s = blob + sizeof(size_t);
                wc_kv_encode_at(kv, family, rev, s);
                s[n] = '\0';
                if (ev) {
                    size_t cost = (sizeof(size_t) + n + 1 + 8 + 15) & ~(size_t)15;
                    ev->enc_bytes += cost;
                    if (ev->acct)
                        atomic_fetch_add_explicit(ev->acct, cost, memory_order_relaxed);
                }
                atomic_store_explicit(slot, s, memory_order_release);
            }
        }
        pthread_mutex_unlock(mu);
    }
    if (!s) {
        *len = 0;
        return NULL;
    }
    memcpy(len, s - sizeof(size_t), sizeof(size_t));
    return s;
}

/* Frees a slot's encoding made by cached(). */
static void cached_free(char *s)
{
    if (s)
        free(s - sizeof(size_t));
}

const char *wc_kv_render(wc_kv *kv, wc_family family, size_t *len)
{
    if (family == WC_FAMILY_K8S && !(kv->flags & WC_KV_OBJECT)) {
        *len = 0;
        return NULL;
    }
    return cached(&kv->render[family], kv, kv, family, kv->mod_rev, NULL, len);
}

void wc_kv_render_free(wc_kv *kv)
{
    for (int f = 0; f < WC_FAMILY_COUNT; f++)
        cached_free(atomic_load_explicit(&kv->render[f], memory_order_relaxed));
}

const char *wc_event_keys(wc_event *ev, bool deleted, size_t *len)
{
    const wc_kv *kv = deleted ? ev->prev : ev->kv;
    if (!kv) {
        *len = 0;
        return NULL;
    }
    return cached(&ev->enc[deleted ? WC_ENC_KEYS_DEL : WC_ENC_KEYS], ev, kv, WC_FAMILY_KEYS,
                  deleted ? ev->rev : kv->mod_rev, ev, len);
}

void wc_event_enc_free(wc_event *ev)
{
    for (int f = 0; f < 2; f++)
        cached_free(atomic_load_explicit(&ev->enc[f], memory_order_relaxed));
}

void wc_event_enter_ring(wc_event *ev, atomic_size_t *acct)
{
    pthread_mutex_t *mu = stripe(ev);
    pthread_mutex_lock(mu);
    ev->acct = acct;
    if (ev->enc_bytes)
        atomic_fetch_add_explicit(acct, ev->enc_bytes, memory_order_relaxed);
    pthread_mutex_unlock(mu);
}

size_t wc_event_leave_ring(wc_event *ev)
{
    pthread_mutex_t *mu = stripe(ev);
    pthread_mutex_lock(mu);
    size_t n = ev->acct ? ev->enc_bytes : 0;
    if (ev->acct)
        atomic_fetch_sub_explicit(ev->acct, n, memory_order_relaxed);
    ev->acct = NULL;
    pthread_mutex_unlock(mu);
    return n;
}
