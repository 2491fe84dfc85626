/*
 * libFuzzer target: arbitrary keys and values through the cacher's state path — JSON object
 * detection, index extraction, both encodings (UTF-8 checks, base64), a put, a list and a watch
 * — and every encoding must be valid JSON. The state made by the scan (json.c) must be the one
 * jansson's tree makes, field for field and byte for byte. Build and run: see
 * tests/fuzz/README.md.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wcached/cacher.h"

static void check_json(const char *s, size_t len)
{
    if (!s)
        return;
    json_t *j = json_loadb(s, len, JSON_ALLOW_NUL, NULL);
    if (!j)
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* First byte splits key from value. */
    if (size < 1)
        return 0;
    size_t klen = data[0] % (size);
    const char *key = (const char *)data + 1;
    if (klen > size - 1)
        klen = size - 1;
    const char *val = key + klen;
    size_t vlen = size - 1 - klen;
    wc_kv_spec s = {.key = key,
                    .key_len = klen,
                    .value = val,
                    .value_len = vlen,
                    .create_rev = 2,
                    .mod_rev = 2,
                    .version = 1};
    wc_kv *kv = wc_kv_new(&s, "spec.nodeName");
    if (!kv)
        return 0;
    wc_kv *tree = wc_kv_new_tree(&s, "spec.nodeName");
    if (tree && !wc_kv_same(kv, tree))
        abort();
    wc_kv_unref(tree);
    size_t len;
    check_json(wc_kv_render(kv, WC_FAMILY_KEYS, &len), len);
    check_json(wc_kv_render(kv, WC_FAMILY_K8S, &len), len);
    wc_kv_unref(kv);

    /* The default ring (300,000 slots, calloc'd and zeroed for every input) cost nine tenths
     * of the run time; one input publishes at most two events. */
    wc_cacher_opts co;
    wc_cacher_opts_default(&co);
    co.ring_events = 16;
    co.ring_bytes = 1 << 20;
    wc_cacher *c = wc_cacher_new(&co);
    if (!c)
        abort();
    wc_cacher_replace(c, NULL, 0, 1, false);
    wc_watch_opts o;
    memset(&o, 0, sizeof(o));
    o.filter.family = (data[0] & 1) ? WC_FAMILY_K8S : WC_FAMILY_KEYS;
    o.filter.key = "";
    o.filter.prefix = true;
    o.rv = 1;
    wc_watcher *w = NULL;
    wc_cacher_watch(c, &o, &w, NULL);
    wc_cacher_put(c, &s);
    wc_cacher_delete(c, key, klen, 3);
    char buf[4096];
    size_t n;
    while (w && wc_watcher_read(w, buf, sizeof(buf), &n) == 0)
        ;
    wc_list l;
    if (wc_cacher_list(c, &o.filter, 0, NULL, 0, 0, &l) == 0)
        wc_list_release(&l);
    if (w)
        wc_watcher_free(w);
    wc_cacher_free(c);
    return 0;
}
