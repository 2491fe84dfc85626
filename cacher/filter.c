/*
 * Filters: the key range, family and selectors of a list or a watch, evaluated against a
 * state's parsed object. Selectors see labels from metadata.labels and fields by path; under
 * /keys, metadata.name is the key itself (as in the KeyValue object served there).
 */
#include <string.h>

#include "internal.h"

typedef struct lookup_ctx {
    const wc_filter *f;
    const wc_kv *kv;
    char tmp[64];
} lookup_ctx;

static const char *lookup(void *arg, wc_sel_kind kind, const char *name, size_t *len)
{
    lookup_ctx *ctx = arg;
    json_t *obj = ctx->kv->obj;
    if (kind == WC_SEL_LABEL) {
        json_t *labels = obj ? json_object_get(json_object_get(obj, "metadata"), "labels") : NULL;
        json_t *v = json_object_get(labels, name);
        if (!json_is_string(v))
            return NULL;
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (ctx->f->family == WC_FAMILY_KEYS && strcmp(name, "metadata.name") == 0) {
        *len = ctx->kv->key_len;
        return ctx->kv->key;
    }
    if (!obj)
        return NULL;
    return wc_json_path_string(obj, name, ctx->tmp, sizeof(ctx->tmp), len);
}

bool wc_filter_match_object(const wc_filter *f, const wc_kv *kv)
{
    if (f->family == WC_FAMILY_K8S && !kv->obj)
        return false;
    if (wc_selector_empty(f->labels) && wc_selector_empty(f->fields))
        return true;
    lookup_ctx ctx = {.f = f, .kv = kv};
    return wc_selector_match(f->labels, lookup, &ctx) && wc_selector_match(f->fields, lookup, &ctx);
}

bool wc_filter_match(const wc_filter *f, const wc_kv *kv)
{
    return wc_filter_has_key(f, kv->key, kv->key_len) && wc_filter_match_object(f, kv);
}
