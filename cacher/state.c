/* The cacher's shared state: the clock, the states as of a past revision, the end; see
 * state.h. */
#include <stdlib.h>

#include "state.h"
#include "wcached/clock.h"

int64_t wc_cacher_mono_ms(void *arg)
{
    (void)arg;
    return wc_mono_ms();
}

int64_t wc_cacher_now(const wc_cacher *c)
{
    return c->o.now_ms(c->o.clock_arg);
}

uint64_t wc_cacher_seq_at_rev(const wc_cacher *c, int64_t rev)
{
    size_t i = wc_ring_after_rev(&c->ring, rev);
    if (i == c->ring.n)
        return c->seq;
    return i == 0 ? c->ring.floor_seq : wc_ring_at(&c->ring, i - 1)->seq;
}

/* One key's state at a past revision: what the oldest newer event replaced. */
typedef struct past_state {
    const char *key;
    size_t key_len;
    wc_kv *kv; /* borrowed from the event; NULL when the key did not exist */
    UT_hash_handle hh;
} past_state;

static int cmp_past(const void *a, const void *b)
{
    const past_state *x = *(past_state *const *)a, *y = *(past_state *const *)b;
    return wc_key_cmp(x->key, x->key_len, y->key, y->key_len);
}

int wc_cacher_collect_at(wc_cacher *c, const char *key, size_t key_len, bool prefix,
                         const char *from, size_t from_len, const char *to, size_t to_len,
                         int64_t rev, size_t max, wc_kv ***out, size_t *out_n)
{
    const wc_store *s = &c->store;
    size_t b, e;
    wc_store_range(s, key, key_len, prefix, &b, &e);
    if (from) {
        size_t f = wc_store_lower_bound(s, from, from_len);
        if (f > b)
            b = f < e ? f : e;
    }
    if (to) {
        size_t t = wc_store_lower_bound(s, to, to_len);
        if (t < e)
            e = t > b ? t : b;
    }
    /* The keys changed after rev, with their state at rev. */
    past_state *map = NULL, **sorted = NULL;
    size_t np = 0;
    int rc = 0;
    wc_filter range = {.key = key, .key_len = key_len, .prefix = prefix};
    for (size_t i = wc_ring_after_rev(&c->ring, rev); i < c->ring.n; i++) {
        wc_event *ev = wc_ring_at(&c->ring, i);
        const wc_kv *k = ev->kv ? ev->kv : ev->prev;
        if (!wc_filter_has_key(&range, k->key, k->key_len))
            continue;
        if (from && wc_key_cmp(k->key, k->key_len, from, from_len) < 0)
            continue;
        if (to && wc_key_cmp(k->key, k->key_len, to, to_len) >= 0)
            continue;
        past_state *p = NULL;
        HASH_FIND(hh, map, k->key, k->key_len, p);
        if (p)
            continue;
        p = malloc(sizeof(*p));
        if (!p) {
            rc = WC_ENOMEM;
            goto out;
        }
        p->key = k->key;
        p->key_len = k->key_len;
        p->kv = ev->prev;
        HASH_ADD_KEYPTR(hh, map, p->key, p->key_len, p);
        np++;
    }
    if (np) {
        sorted = malloc(np * sizeof(*sorted));
        if (!sorted) {
            rc = WC_ENOMEM;
            goto out;
        }
        size_t k = 0;
        past_state *p, *tmp;
        HASH_ITER(hh, map, p, tmp)
        {
            sorted[k++] = p;
        }
        qsort(sorted, np, sizeof(*sorted), cmp_past);
    }
    size_t cap = (e - b) + np;
    if (max && cap > max)
        cap = max;
    wc_kv **items = malloc((cap ? cap : 1) * sizeof(*items));
    if (!items) {
        rc = WC_ENOMEM;
        goto out;
    }
    size_t n = 0, i = b, j = 0;
    while ((i < e || j < np) && n < cap) {
        int cmp = i >= e    ? 1
                  : j >= np ? -1
                            : wc_key_cmp(s->v[i]->key, s->v[i]->key_len, sorted[j]->key,
                                         sorted[j]->key_len);
        wc_kv *pick;
        if (cmp < 0) {
            pick = s->v[i++];
        } else {
            pick = sorted[j++]->kv;
            if (cmp == 0)
                i++;
        }
        if (pick)
            items[n++] = wc_kv_ref(pick);
    }
    *out = items;
    *out_n = n;
out:
    free(sorted);
    past_state *p, *tmp;
    HASH_ITER(hh, map, p, tmp)
    {
        HASH_DEL(map, p);
        free(p);
    }
    return rc;
}

void wc_cacher_destroy(wc_cacher *c)
{
    wc_ring_free(&c->ring);
    wc_store_free(&c->store);
    pthread_cond_destroy(&c->rev_cond);
    pthread_mutex_destroy(&c->mu);
    free(c->index_field);
    free(c);
}
