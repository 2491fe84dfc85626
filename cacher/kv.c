/*
 * Key-value states and events: the immutable, refcounted records that the store, the ring and
 * every watcher share. A state is parsed once when it is made (JSON object, index value) so
 * that no watcher ever parses a value again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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

/* Parses the value only when it looks like an object: most non-JSON values fail fast. */
static json_t *parse_object(const char *value, size_t len)
{
    size_t i = 0;
    while (i < len && (value[i] == ' ' || value[i] == '\n' || value[i] == '\t' || value[i] == '\r'))
        i++;
    if (i == len || value[i] != '{')
        return NULL;
    json_t *obj = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

wc_kv *wc_kv_new(const wc_kv_spec *spec, const char *index_field)
{
    size_t vlen = spec->value ? spec->value_len : 0;
    wc_kv *kv = malloc(sizeof(*kv) + spec->key_len + 1 + vlen + 1);
    if (!kv)
        return NULL;
    atomic_init(&kv->refs, 1);
    kv->create_rev = spec->create_rev;
    kv->mod_rev = spec->mod_rev;
    kv->version = spec->version;
    kv->lease = spec->lease;
    kv->key_len = spec->key_len;
    kv->value_len = vlen;
    kv->key = kv->data;
    kv->value = kv->data + spec->key_len + 1;
    if (spec->key_len)
        memcpy(kv->key, spec->key, spec->key_len);
    kv->key[spec->key_len] = '\0';
    if (vlen)
        memcpy(kv->value, spec->value, vlen);
    kv->value[vlen] = '\0';
    kv->obj = parse_object(kv->value, vlen);
    kv->index_value = NULL;
    for (int f = 0; f < WC_FAMILY_COUNT; f++) {
        atomic_init(&kv->render[f], NULL);
        kv->render_len[f] = 0;
    }
    if (kv->obj && index_field) {
        char tmp[64];
        size_t len = 0;
        const char *v = wc_json_path_string(kv->obj, index_field, tmp, sizeof(tmp), &len);
        if (v) {
            kv->index_value = strndup(v, len);
            if (!kv->index_value) {
                json_decref(kv->obj);
                free(kv);
                return NULL;
            }
        }
    }
    return kv;
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
    for (int f = 0; f < WC_FAMILY_COUNT; f++)
        free(atomic_load_explicit(&kv->render[f], memory_order_relaxed));
    json_decref(kv->obj);
    free(kv->index_value);
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

int64_t wc_kv_create_rev(const wc_kv *kv)
{
    return kv->create_rev;
}

bool wc_kv_is_object(const wc_kv *kv)
{
    return kv->obj != NULL;
}

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
    const wc_kv *k = kv ? kv : prev;
    ev->bytes = sizeof(*ev) + (k ? k->key_len : 0) + (kv ? kv->value_len : 0);
    for (int f = 0; f < WC_FAMILY_COUNT; f++) {
        atomic_init(&ev->del_render[f], NULL);
        ev->del_render_len[f] = 0;
    }
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
    for (int f = 0; f < WC_FAMILY_COUNT; f++) {
        free(atomic_load_explicit(&ev->del_render[f], memory_order_relaxed));
    }
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
