/*
 * Shared fixtures for the cacher suites: a cacher on a fake clock, one-line puts and deletes,
 * and a reader that turns a watcher's bytes back into parsed events.
 */
#ifndef WCACHED_TEST_CACHER_HELPERS_H
#define WCACHED_TEST_CACHER_HELPERS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcached/cacher.h"
#include "wcached/selector.h"

/* A clock the test moves by hand. */
static _Atomic int64_t fake_now = 1000000;
static inline int64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

static inline wc_cacher *new_cacher(size_t ring, const char *index_field)
{
    wc_cacher_opts o;
    wc_cacher_opts_default(&o);
    o.ring_events = ring;
    o.index_field = index_field;
    o.now_ms = fake_clock;
    wc_cacher *c = wc_cacher_new(&o);
    cr_assert_not_null(c);
    return c;
}

/* Loads an empty state at `rev` so the cacher is ready. */
static inline void make_ready(wc_cacher *c, int64_t rev)
{
    cr_assert_eq(wc_cacher_replace(c, NULL, 0, rev, false), 0);
}

static inline wc_kv_spec spec_of(const char *key, const char *value, int64_t rev)
{
    wc_kv_spec s = {.key = key,
                    .key_len = strlen(key),
                    .value = value,
                    .value_len = value ? strlen(value) : 0,
                    .create_rev = rev,
                    .mod_rev = rev,
                    .version = 1};
    return s;
}

/* A state for wc_cacher_replace; the caller unrefs it. */
static inline wc_kv *kv_of(const char *key, const char *value, int64_t rev)
{
    wc_kv_spec s = spec_of(key, value, rev);
    return wc_kv_new(&s, NULL);
}

static inline int put(wc_cacher *c, const char *key, const char *value, int64_t rev)
{
    wc_kv_spec s = spec_of(key, value, rev);
    return wc_cacher_put(c, &s);
}

static inline int del(wc_cacher *c, const char *key, int64_t rev)
{
    return wc_cacher_delete(c, key, strlen(key), rev);
}

/* A transaction: puts of keys[i] = values[i] (a NULL value deletes the key), all at `rev`,
 * published as one batch. */
static inline int txn(wc_cacher *c, int64_t rev, const char *const *keys, const char *const *values,
                      size_t n)
{
    wc_change ch[64];
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) {
        ch[i] = (wc_change){.kv = spec_of(keys[i], values[i], rev), .deleted = !values[i]};
        ch[i].kv.value = values[i] ? values[i] : "";
    }
    return wc_cacher_apply(c, ch, n);
}

/* A pod-like object: {"metadata":{"name":N,"namespace":"ns","labels":{"app":APP}},
 * "spec":{"nodeName":NODE}}; APP or NODE may be NULL to leave them out. */
static inline char *pod(const char *name, const char *app, const char *node)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "metadata", "name", name, "namespace", "ns");
    if (app)
        json_object_set_new(json_object_get(o, "metadata"), "labels",
                            json_pack("{s:s}", "app", app));
    if (node)
        json_object_set_new(o, "spec", json_pack("{s:s}", "nodeName", node));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static inline int put_pod(wc_cacher *c, const char *key, const char *app, const char *node,
                          int64_t rev)
{
    char *v = pod(key, app, node);
    int r = put(c, key, v, rev);
    free(v);
    return r;
}

/* Options for a watch over a key prefix in the /keys family. */
static inline wc_watch_opts watch_opts(const char *prefix, int64_t rv)
{
    wc_watch_opts o;
    memset(&o, 0, sizeof(o));
    o.filter.family = WC_FAMILY_KEYS;
    o.filter.key = prefix;
    o.filter.key_len = strlen(prefix);
    o.filter.prefix = true;
    o.rv = rv;
    o.send_initial = rv == WC_RV_UNSET || rv == 0;
    return o;
}

static inline wc_watcher *watch(wc_cacher *c, wc_watch_opts o)
{
    wc_watcher *w = NULL;
    int64_t floor = -1;
    int rc = wc_cacher_watch(c, &o, &w, &floor);
    cr_assert_eq(rc, 0, "watch failed: %s", wc_strerror(rc));
    return w;
}

/* What a reader saw: parsed events, and whether the stream ended. */
typedef struct seen {
    json_t *ev[4096];
    size_t n;
    bool eof;
    char partial[1 << 16];
    size_t plen;
} seen;

/* Reads everything available now in chunks of `chunk` bytes, splitting lines. */
static inline void read_all(wc_watcher *w, seen *s, size_t chunk)
{
    char buf[8192];
    if (chunk > sizeof(buf))
        chunk = sizeof(buf);
    for (;;) {
        size_t n = 0;
        int rc = wc_watcher_read(w, buf, chunk, &n);
        if (rc == WC_EAGAIN)
            return;
        if (rc == WC_EOF) {
            s->eof = true;
            return;
        }
        cr_assert_eq(rc, 0, "read: %s", wc_strerror(rc));
        cr_assert_lt(s->plen + n, sizeof(s->partial));
        memcpy(s->partial + s->plen, buf, n);
        s->plen += n;
        char *nl;
        while ((nl = memchr(s->partial, '\n', s->plen)) != NULL) {
            size_t len = (size_t)(nl - s->partial);
            json_error_t err;
            json_t *j = json_loadb(s->partial, len, 0, &err);
            cr_assert_not_null(j, "bad line: %.*s (%s)", (int)len, s->partial, err.text);
            cr_assert_lt(s->n, 4096);
            s->ev[s->n++] = j;
            memmove(s->partial, nl + 1, s->plen - len - 1);
            s->plen -= len + 1;
        }
    }
}

static inline void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        json_decref(s->ev[i]);
    s->n = 0;
}

static inline const char *ev_type(const seen *s, size_t i)
{
    return json_string_value(json_object_get(s->ev[i], "type"));
}

/* metadata.resourceVersion of event i's object, as a number. */
static inline long long ev_rv(const seen *s, size_t i)
{
    json_t *md = json_object_get(json_object_get(s->ev[i], "object"), "metadata");
    return atoll(json_string_value(json_object_get(md, "resourceVersion")));
}

/* The key of event i in the /keys family, or metadata.name on the Kubernetes routes. */
static inline const char *ev_key(const seen *s, size_t i)
{
    json_t *o = json_object_get(s->ev[i], "object");
    json_t *k = json_object_get(o, "key");
    if (!k)
        k = json_object_get(json_object_get(o, "metadata"), "name");
    return json_string_value(k);
}

static inline void expect_event(const seen *s, size_t i, const char *type, const char *key,
                                long long rv)
{
    cr_assert_lt(i, s->n, "only %zu events, wanted #%zu", s->n, i);
    cr_assert_str_eq(ev_type(s, i), type, "event %zu", i);
    if (key)
        cr_assert_str_eq(ev_key(s, i), key, "event %zu", i);
    cr_assert_eq(ev_rv(s, i), rv, "event %zu rv %lld want %lld", i, ev_rv(s, i), rv);
}

#endif
