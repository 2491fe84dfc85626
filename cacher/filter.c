/*
 * Filters: the key range, family and selectors of a list or a watch, evaluated against a
 * state's kept labels and fields (kv.c). Selectors see labels from metadata.labels and fields by
 * path; under /keys, metadata.name is the key itself (as in the KeyValue object served there).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct lookup_ctx {
    const wc_filter *f;
    const wc_kv *kv;
    char tmp[64];
    char *heap; /* a long decoded string (wc_kv_field), freed after the match */
} lookup_ctx;

static const char *lookup(void *arg, wc_sel_kind kind, const char *name, size_t *len)
{
    lookup_ctx *ctx = arg;
    if (kind == WC_SEL_LABEL)
        return wc_kv_label(ctx->kv, name, ctx->tmp, sizeof(ctx->tmp), &ctx->heap, len);
    if (ctx->f->family == WC_FAMILY_KEYS && strcmp(name, "metadata.name") == 0) {
        *len = ctx->kv->key_len;
        return ctx->kv->key;
    }
    return wc_kv_field(ctx->kv, name, ctx->tmp, sizeof(ctx->tmp), &ctx->heap, len);
}

bool wc_filter_match_object(const wc_filter *f, const wc_kv *kv)
{
    if (f->family == WC_FAMILY_K8S && !wc_kv_is_object(kv))
        return false;
    if (wc_selector_empty(f->labels) && wc_selector_empty(f->fields))
        return true;
    lookup_ctx ctx = {.f = f, .kv = kv};
    bool m =
        wc_selector_match(f->labels, lookup, &ctx) && wc_selector_match(f->fields, lookup, &ctx);
    free(ctx.heap);
    return m;
}

bool wc_filter_match(const wc_filter *f, const wc_kv *kv)
{
    return wc_filter_has_key(f, kv->key, kv->key_len) && wc_filter_match_object(f, kv);
}
