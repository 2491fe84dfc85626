/*
 * The cacher: its producer side, its lists and gets, and its watcher sets.
 *
 * The upstream thread publishes each batch of changes here: under the cacher lock the store's
 * entry is swapped, an immutable event is appended to the ring, and the event is pushed
 * (watcher.c) to every live watcher the index trigger selects (the watchers of the old and
 * new object's index value, plus the unindexed ones). Pushing never blocks: a watcher whose
 * queue is full is switched to catch-up, like etcd's unsynced watchers, and its reader pulls
 * the missed events from the ring itself; if it has not caught up within the slow-reader
 * budget, or its position leaves the ring, it is ended and the reader resumes by replay.
 *
 * A relist turns the difference between the store and the list into events at each key's own
 * revision. Lists are served from the store, or at a past revision by undoing the ring's newer
 * events (state.c). A watcher's own life, registration included, is in watcher.c.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utlist.h>

#include "watcher.h"

/* Fills every unset (zero) field of `o` with its default. */
static void fill_defaults(wc_cacher_opts *o)
{
    if (!o->ring_events)
        o->ring_events = WC_CACHER_RING_EVENTS;
    if (!o->ring_bytes)
        o->ring_bytes = WC_CACHER_RING_BYTES;
    if (!o->input_cap)
        o->input_cap = WC_CACHER_INPUT_CAP;
    if (!o->input_cap_wide)
        o->input_cap_wide = WC_CACHER_INPUT_CAP_WIDE;
    if (o->slow_budget_ms <= 0)
        o->slow_budget_ms = WC_CACHER_SLOW_BUDGET_MS;
    if (o->bookmark_ms <= 0)
        o->bookmark_ms = WC_CACHER_BOOKMARK_MS;
    if (!o->now_ms)
        o->now_ms = wc_cacher_mono_ms;
}

void wc_cacher_opts_default(wc_cacher_opts *o)
{
    memset(o, 0, sizeof(*o));
    fill_defaults(o);
}

wc_cacher *wc_cacher_new(const wc_cacher_opts *o)
{
    wc_cacher *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (o)
        c->o = *o;
    fill_defaults(&c->o);
    if (o && o->index_field && *o->index_field) {
        c->index_field = strdup(o->index_field);
        if (!c->index_field) {
            free(c);
            return NULL;
        }
    }
    c->o.index_field = c->index_field;
    wc_store_init(&c->store);
    c->seq = WC_SEQ_BASE;
    if (wc_ring_init(&c->ring, c->o.ring_events, c->o.ring_bytes, 0, c->seq) != 0) {
        free(c->index_field);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->rev_cond, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

/* Calls fn on every registered watcher; fn may end (unregister) the watcher it is given. */
static void each_watcher(wc_cacher *c, void (*fn)(wc_watcher *w, void *arg), void *arg)
{
    wc_watcher *w, *tmp;
    DL_FOREACH_SAFE(c->unindexed, w, tmp)
    {
        fn(w, arg);
    }
    wc_bucket *b, *btmp;
    HASH_ITER(hh, c->buckets, b, btmp)
    {
        DL_FOREACH_SAFE(b->watchers, w, tmp)
        {
            fn(w, arg);
        }
    }
}

static void tick_with(wc_watcher *w, void *arg)
{
    wc_watcher_tick_locked(w, *(int64_t *)arg);
}

static void end_with(wc_watcher *w, void *arg)
{
    wc_watcher_end_locked(w, *(wc_end_reason *)arg);
}

void wc_cacher_free(wc_cacher *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->freeing = true;
    wc_end_reason why = WC_END_SHUTDOWN;
    each_watcher(c, end_with, &why);
    bool last = c->alive == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        wc_cacher_destroy(c);
}

static void after_dispatch(wc_cacher *c)
{
    if (c->o.after_dispatch)
        c->o.after_dispatch(c->o.hook_arg);
}

/* ---------------------------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------------------------- */

static void deliver_bucket(wc_cacher *c, const char *value, wc_event *ev, int64_t now)
{
    if (!value)
        return;
    wc_bucket *b = NULL;
    HASH_FIND_STR(c->buckets, value, b);
    if (!b)
        return;
    wc_watcher *w, *tmp;
    DL_FOREACH_SAFE(b->watchers, w, tmp)
    {
        wc_watcher_push(w, ev, now);
    }
}

/* Appends ev to the ring and hands it to the watchers that may want it. Takes over the
 * caller's reference. Holds c->mu. */
static void publish(wc_cacher *c, wc_event *ev)
{
    ev->seq = ++c->seq;
    c->st.events_in++;
    if (ev->kv && !wc_kv_is_object(ev->kv))
        c->st.non_object++;
    wc_ring_push(&c->ring, ev);
    int64_t now = (c->unindexed || c->buckets) ? wc_cacher_now(c) : 0;
    if (c->index_field) {
        const char *nv = ev->kv ? ev->kv->index_value : NULL;
        const char *pv = ev->prev ? ev->prev->index_value : NULL;
        deliver_bucket(c, nv, ev, now);
        if (pv && (!nv || strcmp(nv, pv) != 0))
            deliver_bucket(c, pv, ev, now);
    }
    wc_watcher *w, *tmp;
    DL_FOREACH_SAFE(c->unindexed, w, tmp)
    {
        wc_watcher_push(w, ev, now);
    }
}

/*
 * Publishes one change of a batch. `kv` is the new state (a reference, consumed) or NULL for a
 * delete. A change at or below the last complete revision, or below the batch's previous one,
 * is a duplicate: counted and skipped, like a delete of a key the cache does not hold. Holds
 * c->mu. Returns 0, WC_ESTALE, WC_ENOENT or WC_ENOMEM.
 */
static int apply_one(wc_cacher *c, const wc_change *ch, wc_kv *kv)
{
    const wc_kv_spec *s = &ch->kv;
    int64_t rev = s->mod_rev;
    wc_kv *cur = wc_store_get(&c->store, s->key, s->key_len);
    if (rev < c->rev || rev <= c->rev_done || (cur && cur->mod_rev >= rev)) {
        c->st.events_stale++;
        wc_kv_unref(kv);
        return WC_ESTALE;
    }
    if (ch->deleted && !cur) {
        c->st.deletes_unknown++;
        return WC_ENOENT;
    }
    wc_event *ev = ch->deleted ? wc_event_new(WC_EV_DELETED, rev, NULL, cur)
                               : wc_event_new(cur ? WC_EV_MODIFIED : WC_EV_ADDED, rev, kv, cur);
    if (!ev) {
        wc_kv_unref(kv);
        return WC_ENOMEM;
    }
    wc_kv *old = NULL;
    if (ch->deleted) {
        wc_store_del(&c->store, s->key, s->key_len, &old);
    } else if (wc_store_put(&c->store, kv, &old) != 0) {
        wc_kv_unref(kv);
        wc_event_unref(ev);
        return WC_ENOMEM;
    }
    wc_kv_unref(old); /* the event holds its own reference */
    c->rev = rev;
    publish(c, ev);
    return 0;
}

/* Marks every change up to the cache's newest revision complete. Holds c->mu. */
static void complete(wc_cacher *c)
{
    if (c->rev > c->rev_done) {
        c->rev_done = c->rev;
        pthread_cond_broadcast(&c->rev_cond);
    }
}

#define KV_BATCH_MIN 512   /* states of a batch below which one thread makes them all */
#define KV_BATCH_THREADS 8 /* threads that make a batch's states, at most */
static int make_kvs(const wc_kv_spec *specs, size_t n, const char *index_field, wc_kv **out);

/* The new states of n changes into kvs (NULL for a deletion), made outside the lock: the
 * producer's lock hold time is what readers wait on. A big batch (a refill's history comes
 * in responses of thousands of changes) is made on every core, as a list's pages are. */
static int change_kvs(wc_cacher *c, const wc_change *ch, size_t n, wc_kv **kvs)
{
    size_t puts = 0;
    for (size_t i = 0; i < n; i++)
        puts += !ch[i].deleted;
    wc_kv_spec *specs = puts >= KV_BATCH_MIN ? malloc(puts * sizeof(*specs)) : NULL;
    wc_kv **made = specs ? calloc(puts, sizeof(*made)) : NULL;
    if (made) {
        for (size_t i = 0, k = 0; i < n; i++)
            if (!ch[i].deleted)
                specs[k++] = ch[i].kv;
        int rc = make_kvs(specs, puts, c->index_field, made);
        for (size_t i = 0, k = 0; i < n; i++)
            kvs[i] = ch[i].deleted ? NULL : made[k++];
        free(made);
        free(specs);
        return rc;
    }
    free(specs);
    for (size_t i = 0; i < n; i++) {
        kvs[i] = ch[i].deleted ? NULL : wc_kv_new(&ch[i].kv, c->index_field);
        if (!ch[i].deleted && !kvs[i])
            return WC_ENOMEM;
    }
    return 0;
}

int wc_cacher_apply(wc_cacher *c, const wc_change *ch, size_t n)
{
    if (n == 0)
        return 0;
    wc_kv *one, **kvs = n == 1 ? &one : calloc(n, sizeof(*kvs));
    if (!kvs)
        return WC_ENOMEM;
    int rc = change_kvs(c, ch, n, kvs);
    size_t done = 0, applied = 0;
    pthread_mutex_lock(&c->mu);
    if (rc == 0 && !c->loaded)
        rc = WC_ENOTREADY;
    for (; rc == 0 && done < n; done++) {
        int r = apply_one(c, &ch[done], kvs[done]);
        if (r == 0)
            applied++;
        else if (r == WC_ENOMEM)
            rc = r;
        else if (n == 1)
            rc = r; /* one change: say why it was skipped */
    }
    /* A batch left half-applied (no memory) keeps its revision open: the upstream relists. */
    if (rc == 0 || rc == WC_ESTALE || rc == WC_ENOENT)
        complete(c);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = done; i < n; i++)
        wc_kv_unref(kvs[i]);
    if (kvs != &one)
        free(kvs);
    if (applied)
        after_dispatch(c);
    return rc;
}

int wc_cacher_put(wc_cacher *c, const wc_kv_spec *spec)
{
    wc_change ch = {.kv = *spec};
    return wc_cacher_apply(c, &ch, 1);
}

int wc_cacher_delete(wc_cacher *c, const char *key, size_t key_len, int64_t rev)
{
    wc_change ch = {.kv = {.key = key, .key_len = key_len, .mod_rev = rev}, .deleted = true};
    return wc_cacher_apply(c, &ch, 1);
}

int wc_cacher_progress(wc_cacher *c, int64_t rev)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (!c->loaded) {
        rc = WC_ENOTREADY;
    } else if (rev < c->rev) {
        c->st.events_stale++;
        rc = WC_ESTALE;
    } else {
        c->rev = rev;
        complete(c);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * A start's history, put before the ring's oldest event
 * ------------------------------------------------------------------------------------- */

static void wait_over_with(wc_watcher *w, void *arg)
{
    (void)arg;
    wc_watcher_wait_over(w);
}

/* Ends the backfill under way, if any: the watchers that waited for it catch up, or end when
 * their revision is not in the ring. Holds c->mu. */
static void backfill_over(wc_cacher *c)
{
    if (!c->backfilling)
        return;
    c->backfilling = false;
    each_watcher(c, wait_over_with, NULL);
}

/* The key each backfilled change is of: its last change in the history, and its newest state
 * so far while the events are made (NULL: absent). */
typedef struct hist_key {
    const char *key;
    size_t len;
    size_t last_i; /* its last change */
    bool seen;     /* an event of it is made */
    wc_kv *last;   /* ... and its state after it (borrowed from the event; NULL: absent) */
    UT_hash_handle hh;
} hist_key;

/*
 * The events of a history: each change's new state, and its previous one: the key's newest
 * state earlier in the history, or, for its first change, the state etcd sent with it
 * (prev_kv). A key's last change is, unless the key changed since, the store's state: the event
 * takes the store's (the store changes on this thread only), and no copy of it is made, so that
 * nothing made here is freed at once between what stays (which would leave holes in the heap).
 * The other new states are made on every core for a big history, as a list's. n events into
 * evs, or an error with nothing left made.
 */
static int history_events(wc_cacher *c, int64_t from, int64_t to, const wc_change *ch, size_t n,
                          wc_event **evs)
{
    wc_kv **kvs = calloc(n ? n : 1, sizeof(*kvs));
    hist_key *keys = calloc(n ? n : 1, sizeof(*keys)), *map = NULL;
    wc_change *made = calloc(n ? n : 1, sizeof(*made));
    size_t *at = calloc(n ? n : 1, sizeof(*at));
    int rc = kvs && keys && made && at ? 0 : WC_ENOMEM;
    size_t nkeys = 0, nmade = 0, done = 0;
    /* 1. The keys, each one's last change, and the order. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const wc_kv_spec *s = &ch[i].kv;
        if (s->mod_rev <= from || s->mod_rev > to || (i > 0 && s->mod_rev < ch[i - 1].kv.mod_rev)) {
            rc = WC_EINVAL; /* outside the window, or out of order */
            break;
        }
        hist_key *k = NULL;
        HASH_FIND(hh, map, s->key, s->key_len, k);
        if (!k) {
            k = &keys[nkeys++];
            k->key = s->key;
            k->len = s->key_len;
            HASH_ADD_KEYPTR(hh, map, k->key, k->len, k);
        }
        k->last_i = i;
    }
    /* 2. The last states the store holds. */
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; rc == 0 && i < nkeys; i++) {
        const wc_change *last = &ch[keys[i].last_i];
        wc_kv *cur = last->deleted ? NULL : wc_store_get(&c->store, keys[i].key, keys[i].len);
        if (cur && cur->mod_rev == last->kv.mod_rev && cur->value_len == last->kv.value_len)
            kvs[keys[i].last_i] = wc_kv_ref(cur);
    }
    pthread_mutex_unlock(&c->mu);
    /* 3. The other new states, in one batch. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!ch[i].deleted && !kvs[i]) {
            made[nmade] = ch[i];
            at[nmade++] = i;
        }
    if (rc == 0 && nmade) {
        wc_kv **fresh = calloc(nmade, sizeof(*fresh));
        rc = fresh ? change_kvs(c, made, nmade, fresh) : WC_ENOMEM;
        for (size_t j = 0; fresh && j < nmade; j++)
            kvs[at[j]] = fresh[j];
        free(fresh);
    }
    /* 4. The events. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const wc_kv_spec *s = &ch[i].kv;
        hist_key *k = NULL;
        HASH_FIND(hh, map, s->key, s->key_len, k);
        wc_kv *prev = k->seen && k->last ? wc_kv_ref(k->last) : NULL;
        if (!k->seen && ch[i].prev) {
            prev = wc_kv_new(ch[i].prev, c->index_field);
            if (!prev) {
                rc = WC_ENOMEM;
                break;
            }
        }
        /* A deletion, or a change of a key made before it, without the state it replaced
         * (etcd leaves prev_kv out when that revision was compacted meanwhile): it cannot be
         * told truthfully. */
        if (!prev && (ch[i].deleted || s->create_rev < s->mod_rev)) {
            rc = WC_EPROTO;
            break;
        }
        evs[i] = ch[i].deleted
                     ? wc_event_new(WC_EV_DELETED, s->mod_rev, NULL, prev)
                     : wc_event_new(prev ? WC_EV_MODIFIED : WC_EV_ADDED, s->mod_rev, kvs[i], prev);
        wc_kv_unref(prev);
        if (!evs[i]) {
            rc = WC_ENOMEM;
            break;
        }
        done++;
        k->seen = true;
        k->last = evs[i]->kv;
    }
    HASH_CLEAR(hh, map);
    for (size_t i = 0; kvs && i < n; i++)
        wc_kv_unref(kvs[i]); /* the events hold their own references */
    free(kvs);
    free(keys);
    free(made);
    free(at);
    if (rc != 0)
        for (size_t i = 0; i < done; i++)
            wc_event_unref(evs[i]);
    return rc;
}

int wc_cacher_backfill(wc_cacher *c, int64_t from, int64_t to, const wc_change *ch, size_t n)
{
    wc_event **evs = malloc((n ? n : 1) * sizeof(*evs));
    int rc = evs ? history_events(c, from, to, ch, n, evs) : WC_ENOMEM;
    bool made = rc == 0;
    size_t taken = 0;
    pthread_mutex_lock(&c->mu);
    bool awaited = c->backfilling && c->backfill_from == from && c->backfill_to == to;
    if (!awaited || (rc == 0 && c->ring.floor_rev != to))
        rc = WC_ESTALE; /* another list since, or the ring let go of its oldest already */
    if (rc == 0) {
        taken = wc_ring_prepend(&c->ring, evs, n, from);
        c->st.backfilled += taken;
        c->trim_due = 2; /* once more: the upstream frees the buffers it came in after this */
    }
    if (awaited)
        backfill_over(c); /* done, or given up: the watchers that waited hear either way */
    pthread_mutex_unlock(&c->mu);
    if (made)
        for (size_t i = 0; i + taken < n; i++)
            wc_event_unref(evs[i]); /* the oldest, for which the ring had no room, or all */
    free(evs);
    after_dispatch(c);
    return rc;
}

void wc_cacher_backfill_abandon(wc_cacher *c)
{
    pthread_mutex_lock(&c->mu);
    backfill_over(c);
    pthread_mutex_unlock(&c->mu);
    after_dispatch(c);
}

static int cmp_kv_ptr(const void *a, const void *b)
{
    const wc_kv *x = *(wc_kv *const *)a, *y = *(wc_kv *const *)b;
    return wc_key_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* Loads a sorted, de-duplicated copy of kvs into the (empty) store. Holds c->mu. */
static int load(wc_cacher *c, wc_kv **sorted, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wc_kv *old = NULL;
        if (wc_store_put(&c->store, wc_kv_ref(sorted[i]), &old) != 0) {
            wc_kv_unref(sorted[i]);
            return WC_ENOMEM;
        }
        wc_kv_unref(old);
    }
    return 0;
}

/* Events of a relist in the order they are published: by revision, then by key. */
static int cmp_event_ptr(const void *a, const void *b)
{
    const wc_event *x = *(wc_event *const *)a, *y = *(wc_event *const *)b;
    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    const wc_kv *kx = x->kv ? x->kv : x->prev, *ky = y->kv ? y->kv : y->prev;
    return wc_key_cmp(kx->key, kx->key_len, ky->key, ky->key_len);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Gives the relist's deletions (the events of evs with rev 0, in key order) revisions of their
 * own: etcd no longer knows when a key was deleted, only that it was after the cache's revision
 * and at or before the list's `rev`. They take the newest revisions of that gap that no put of
 * the relist uses, in key order; when the gap has fewer free revisions than deletions (keys
 * changed in one transaction), the rest share `rev`. Returns WC_ENOMEM with nothing changed.
 * Holds c->mu.
 */
static int date_deletions(wc_cacher *c, wc_event **evs, size_t ne, size_t ndel, int64_t rev)
{
    int64_t *used = malloc((ne + ndel + 1) * sizeof(*used));
    if (!used)
        return WC_ENOMEM;
    int64_t *free_revs = used + ne; /* ndel slots after the puts' revisions */
    size_t nused = 0, nfree = 0;
    for (size_t k = 0; k < ne; k++)
        if (evs[k]->type != WC_EV_DELETED)
            used[nused++] = evs[k]->rev;
    qsort(used, nused, sizeof(*used), cmp_i64);
    size_t u = nused;
    for (int64_t r = rev; r > c->rev && nfree < ndel; r--) {
        while (u > 0 && used[u - 1] > r)
            u--;
        if (u > 0 && used[u - 1] == r)
            continue;
        free_revs[nfree++] = r; /* newest first */
    }
    size_t d = 0;
    for (size_t k = 0; k < ne; k++)
        if (evs[k]->type == WC_EV_DELETED) {
            evs[k]->rev = d < nfree ? free_revs[nfree - 1 - d] : rev;
            d++;
        }
    free(used);
    return 0;
}

/*
 * Turns the difference between the store and the sorted list at `rev` into events that tell
 * the truth: a new or changed key at its own mod_revision, a deletion at a revision of the gap
 * (see date_deletions), published in revision order as one change. Events are made first, so
 * an allocation failure changes nothing. Sets *diverged, and changes nothing, when the list
 * cannot follow the cache's history: a key changed at or below the cache's complete revision,
 * or a deletion with no revision left after it. The store has room for every new key. Holds
 * c->mu.
 */
static int diff_into_events(wc_cacher *c, wc_kv **sorted, size_t n, int64_t rev, bool *diverged)
{
    size_t cap = 16, ne = 0, ndel = 0;
    wc_event **evs = malloc(cap * sizeof(*evs));
    if (!evs)
        return WC_ENOMEM;
    *diverged = false;
    /* A change the cache has not seen is newer than its complete revision, and not older than
     * the newest revision it published (a batch may have been cut short after it). */
    int64_t lo = c->rev;
    size_t i = 0, j = 0;
    const wc_store *s = &c->store;
    while (i < s->n || j < n) {
        wc_kv *a = i < s->n ? s->v[i] : NULL;
        wc_kv *b = j < n ? sorted[j] : NULL;
        int cmp = !a ? 1 : !b ? -1 : wc_key_cmp(a->key, a->key_len, b->key, b->key_len);
        wc_event *ev = NULL;
        if (cmp < 0) {
            ev = wc_event_new(WC_EV_DELETED, 0, NULL, a);
            ndel++;
            i++;
        } else {
            bool same = cmp == 0 && a->mod_rev == b->mod_rev;
            if (same &&
                (a->value_len != b->value_len || memcmp(a->value, b->value, a->value_len) != 0)) {
                *diverged = true; /* one revision, two values */
                goto fail;
            }
            i += cmp == 0;
            j++;
            if (same)
                continue;
            if (b->mod_rev > rev || b->mod_rev < lo || b->mod_rev <= c->rev_done) {
                *diverged = true;
                goto fail;
            }
            ev = wc_event_new(cmp == 0 ? WC_EV_MODIFIED : WC_EV_ADDED, b->mod_rev, b,
                              cmp == 0 ? a : NULL);
        }
        if (!ev)
            goto fail;
        if (ne == cap) {
            wc_event **more = realloc(evs, cap * 2 * sizeof(*evs));
            if (!more) {
                wc_event_unref(ev);
                goto fail;
            }
            evs = more;
            cap *= 2;
        }
        evs[ne++] = ev;
    }
    if (ndel > 0 && rev <= c->rev_done) {
        *diverged = true; /* a key is gone, but no revision has passed */
        goto fail;
    }
    if (date_deletions(c, evs, ne, ndel, rev) != 0)
        goto fail;
    qsort(evs, ne, sizeof(*evs), cmp_event_ptr);
    for (size_t k = 0; k < ne; k++) {
        wc_kv *old = NULL, *kv = evs[k]->kv;
        int rc = kv ? wc_store_put(&c->store, wc_kv_ref(kv), &old)
                    : wc_store_del(&c->store, evs[k]->prev->key, evs[k]->prev->key_len, &old);
        wc_kv_unref(old);
        if (rc != 0) {
            /* Not for lack of room (it was reserved): the store is not what the diff saw. The
             * caller reloads it from the list, which does not depend on what was applied. */
            if (kv)
                wc_kv_unref(kv);
            *diverged = true;
            goto fail;
        }
    }
    for (size_t k = 0; k < ne; k++)
        publish(c, evs[k]);
    free(evs);
    return 0;
fail:
    for (size_t k = 0; k < ne; k++)
        wc_event_unref(evs[k]);
    free(evs);
    return *diverged ? 0 : WC_ENOMEM;
}

/* wc_cacher_replace, with the history of (from, rev] to follow when the cache is loaded from
 * scratch (see wc_cacher_refill_specs). */
static int replace_from(wc_cacher *c, wc_kv *const *kvs, size_t n, int64_t rev, int64_t from,
                        bool force)
{
    wc_kv **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (!sorted)
        return WC_ENOMEM;
    /* A list comes in key order, each key once: sorted only when it does not. */
    bool in_order = true;
    for (size_t i = 1; i < n && in_order; i++)
        in_order = cmp_kv_ptr(&kvs[i - 1], &kvs[i]) < 0;
    if (n) {
        memcpy(sorted, kvs, n * sizeof(*sorted));
        if (!in_order)
            qsort(sorted, n, sizeof(*sorted), cmp_kv_ptr);
    }
    /* The later of two equal keys wins. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && cmp_kv_ptr(&sorted[m - 1], &sorted[i]) == 0)
            sorted[m - 1] = sorted[i];
        else
            sorted[m++] = sorted[i];
    }
    int rc = 0;
    bool dispatched = false;
    pthread_mutex_lock(&c->mu);
    bool reset = !c->loaded || force;
    if (c->loaded && rev < c->rev && !force) {
        c->st.events_stale++;
        rc = WC_ESTALE;
    } else if (!reset) {
        rc = wc_store_reserve(&c->store, c->store.n + m);
        if (rc == 0)
            rc = diff_into_events(c, sorted, m, rev, &reset);
        if (rc == 0 && !reset) {
            if (rev > c->rev)
                c->rev = rev;
            complete(c);
            c->st.relists++;
            dispatched = true;
        }
    }
    if (rc == 0 && reset) {
        if (c->loaded) {
            /* The list cannot follow the history the watchers saw: end them all. */
            wc_end_reason why = WC_END_RESET;
            each_watcher(c, end_with, &why);
            dispatched = true;
            c->st.relists++;
            c->st.resets++;
        }
        wc_store_free(&c->store);
        /* Make room first so that loading cannot fail half-way. */
        rc = wc_store_reserve(&c->store, m);
        if (rc == 0)
            rc = load(c, sorted, m);
        /* The ring starts at the list's revision: a watch from it or later is complete, and
         * a backfill puts the history before it there. */
        wc_ring_reset(&c->ring, rev, c->seq);
        c->rev = c->rev_done = rev;
        c->loaded = c->ready = rc == 0;
        c->backfilling = rc == 0 && from >= 0 && from < rev;
        c->backfill_from = from;
        c->backfill_to = rev;
        pthread_cond_broadcast(&c->rev_cond);
    }
    if (rc == 0)
        c->trim_due = 1;
    pthread_mutex_unlock(&c->mu);
    free(sorted);
    if (dispatched)
        after_dispatch(c);
    return rc;
}

int wc_cacher_replace(wc_cacher *c, wc_kv *const *kvs, size_t n, int64_t rev, bool force)
{
    return replace_from(c, kvs, n, rev, rev, force);
}

/* Makes states [from, to) of a list; a NULL slot is an allocation failure. */
typedef struct kv_batch {
    const wc_kv_spec *specs;
    wc_kv **out;
    size_t from, to;
    const char *index_field;
} kv_batch;

static void *kv_batch_run(void *arg)
{
    kv_batch *b = arg;
    for (size_t i = b->from; i < b->to; i++)
        b->out[i] = wc_kv_new(&b->specs[i], b->index_field);
    return NULL;
}

/* A list's states: each parses its value once, which is most of a cold start's work, so a batch
 * of them (a whole list, or a page of one as it arrives, while etcd serves the next) is split
 * over the machine's cores (KV_BATCH_MIN, KV_BATCH_THREADS). */

static int make_kvs(const wc_kv_spec *specs, size_t n, const char *index_field, wc_kv **out)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t parts = n < KV_BATCH_MIN || cores < 2 ? 1 : (size_t)cores;
    if (parts > KV_BATCH_THREADS)
        parts = KV_BATCH_THREADS;
    kv_batch b[KV_BATCH_THREADS];
    pthread_t t[KV_BATCH_THREADS];
    bool started[KV_BATCH_THREADS] = {false};
    for (size_t p = 0; p < parts; p++) {
        b[p] = (kv_batch){.specs = specs,
                          .out = out,
                          .from = n * p / parts,
                          .to = n * (p + 1) / parts,
                          .index_field = index_field};
        if (p > 0)
            started[p] = pthread_create(&t[p], NULL, kv_batch_run, &b[p]) == 0;
    }
    for (size_t p = 0; p < parts; p++)
        if (!started[p])
            kv_batch_run(&b[p]); /* this thread's part, and any a thread could not take */
    for (size_t p = 1; p < parts; p++)
        if (started[p])
            pthread_join(t[p], NULL);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!out[i])
            rc = WC_ENOMEM;
    return rc;
}

int wc_cacher_refill_specs(wc_cacher *c, const wc_kv_spec *specs, size_t n, int64_t rev,
                           int64_t from, bool force)
{
    wc_kv **kvs = malloc((n ? n : 1) * sizeof(*kvs));
    if (!kvs)
        return WC_ENOMEM;
    int rc = make_kvs(specs, n, c->index_field, kvs);
    if (rc == 0)
        rc = replace_from(c, kvs, n, rev, from, force);
    for (size_t i = 0; i < n; i++)
        wc_kv_unref(kvs[i]); /* NULL where a state could not be made */
    free(kvs);
    return rc;
}

int wc_cacher_replace_specs(wc_cacher *c, const wc_kv_spec *specs, size_t n, int64_t rev,
                            bool force)
{
    return wc_cacher_refill_specs(c, specs, n, rev, rev, force);
}

struct wc_cacher_loader {
    wc_cacher *c;
    wc_kv **kvs;
    size_t n, cap;
};

static void load_progress(wc_cacher *c, bool loading, uint64_t keys, uint64_t bytes,
                          int64_t expected)
{
    pthread_mutex_lock(&c->mu);
    c->st.loading = loading;
    c->st.load_keys = keys;
    c->st.load_bytes = bytes;
    c->st.load_expected = expected;
    pthread_mutex_unlock(&c->mu);
}

wc_cacher_loader *wc_cacher_load_begin(wc_cacher *c, int64_t expected)
{
    wc_cacher_loader *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->c = c;
    size_t cap = expected > 0 && expected < (int64_t)1 << 32 ? (size_t)expected : 1024;
    l->kvs = malloc(cap * sizeof(*l->kvs));
    if (!l->kvs) {
        free(l);
        return NULL;
    }
    l->cap = cap;
    load_progress(c, true, 0, 0, expected > 0 ? expected : 0);
    return l;
}

int wc_cacher_load_add(wc_cacher_loader *l, const wc_kv_spec *specs, size_t n)
{
    if (l->n + n > l->cap) {
        size_t cap = l->cap * 2;
        while (cap < l->n + n)
            cap *= 2;
        wc_kv **more = realloc(l->kvs, cap * sizeof(*more));
        if (!more)
            return WC_ENOMEM;
        l->kvs = more;
        l->cap = cap;
    }
    int rc = make_kvs(specs, n, l->c->index_field, l->kvs + l->n);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            wc_kv_unref(l->kvs[l->n + i]); /* NULL where a state could not be made */
        return rc;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += l->kvs[l->n + i]->key_len + l->kvs[l->n + i]->value_len;
    l->n += n;
    pthread_mutex_lock(&l->c->mu);
    l->c->st.load_keys = l->n;
    l->c->st.load_bytes += bytes;
    pthread_mutex_unlock(&l->c->mu);
    return 0;
}

void wc_cacher_load_abort(wc_cacher_loader *l)
{
    if (!l)
        return;
    load_progress(l->c, false, 0, 0, 0);
    for (size_t i = 0; i < l->n; i++)
        wc_kv_unref(l->kvs[i]);
    free(l->kvs);
    free(l);
}

int wc_cacher_load_end(wc_cacher_loader *l, int64_t rev, int64_t from, bool force)
{
    int rc = replace_from(l->c, l->kvs, l->n, rev, from, force);
    wc_cacher_load_abort(l);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Readers' side
 * ------------------------------------------------------------------------------------- */

bool wc_cacher_ready(wc_cacher *c)
{
    pthread_mutex_lock(&c->mu);
    bool r = c->ready;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int64_t wc_cacher_rev(wc_cacher *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t r = c->rev_done;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int64_t wc_cacher_floor(wc_cacher *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t r = c->ring.floor_rev;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int wc_cacher_wait_rev(wc_cacher *c, int64_t rev, int64_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->ready || c->rev_done < rev) {
        if (pthread_cond_timedwait(&c->rev_cond, &c->mu, &until) != 0) {
            rc = c->ready ? WC_ETIMEDOUT : WC_ENOTREADY;
            if (c->ready && c->rev_done >= rev)
                rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int wc_cacher_get(wc_cacher *c, const char *key, size_t key_len, wc_kv **out, int64_t *rev)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (!c->ready) {
        rc = WC_ENOTREADY;
    } else {
        wc_kv *kv = wc_store_get(&c->store, key, key_len);
        if (kv)
            *out = wc_kv_ref(kv);
        else
            rc = WC_ENOENT;
        if (rev)
            *rev = c->rev_done;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* True when the history of `rev` is still coming (a backfill): a read at it waits. Holds c->mu. */
static bool history_coming(const wc_cacher *c, int64_t rev)
{
    return c->backfilling && rev >= c->backfill_from && rev < c->ring.floor_rev;
}

int wc_cacher_list(wc_cacher *c, const wc_filter *f, int64_t at_rev, const char *start,
                   size_t start_len, size_t limit, wc_list *out)
{
    memset(out, 0, sizeof(*out));
    bool plain =
        wc_selector_empty(f->labels) && wc_selector_empty(f->fields) && f->family == WC_FAMILY_KEYS;
    wc_kv **items = NULL;
    size_t n = 0;
    int rc;
    pthread_mutex_lock(&c->mu);
    int64_t rev = at_rev > 0 ? at_rev : c->rev_done;
    if (!c->ready || history_coming(c, rev))
        rc = WC_ENOTREADY;
    else if (rev < c->ring.floor_rev)
        rc = WC_EEXPIRED;
    else if (rev > c->rev_done)
        rc = WC_ETIMEDOUT;
    else
        rc = wc_cacher_collect_at(c, f->key, f->key_len, f->prefix, start, start_len, NULL, 0, rev,
                                  plain && limit ? limit + 1 : 0, &items, &n);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
        return rc;
    /* Selectors are evaluated outside the lock. */
    size_t kept = 0, i = 0;
    for (; i < n; i++) {
        if (!wc_filter_match_object(f, items[i])) {
            wc_kv_unref(items[i]);
            continue;
        }
        if (limit && kept == limit)
            break;
        items[kept++] = items[i];
    }
    if (i < n) {
        out->more = true;
        out->next_key = strndup(items[i]->key, items[i]->key_len);
        out->next_key_len = items[i]->key_len;
        for (; i < n; i++)
            wc_kv_unref(items[i]);
        if (!out->next_key) {
            for (size_t k = 0; k < kept; k++)
                wc_kv_unref(items[k]);
            free(items);
            return WC_ENOMEM;
        }
    }
    out->items = items;
    out->n = kept;
    out->rev = rev;
    return 0;
}

int wc_cacher_range(wc_cacher *c, const char *key, size_t key_len, const char *end, size_t end_len,
                    int64_t at_rev, wc_list *out)
{
    memset(out, 0, sizeof(*out));
    int rc;
    pthread_mutex_lock(&c->mu);
    int64_t rev = at_rev > 0 ? at_rev : c->rev_done;
    if (!c->ready || history_coming(c, rev))
        rc = WC_ENOTREADY;
    else if (rev < c->ring.floor_rev)
        rc = WC_EEXPIRED;
    else if (rev > c->rev_done)
        rc = WC_ETIMEDOUT;
    else if (!end)
        rc = wc_cacher_collect_at(c, key, key_len, false, NULL, 0, NULL, 0, rev, 0, &out->items,
                                  &out->n);
    else
        rc = wc_cacher_collect_at(c, "", 0, true, key, key_len, end_len ? end : NULL, end_len, rev,
                                  0, &out->items, &out->n);
    out->rev = c->rev_done;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void wc_list_release(wc_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        wc_kv_unref(l->items[i]);
    free(l->items);
    free(l->next_key);
    memset(l, 0, sizeof(*l));
}

void wc_cacher_stats_get(wc_cacher *c, wc_cacher_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->rev = c->rev_done;
    out->floor = c->ring.floor_rev;
    out->backfilling = c->backfilling;
    out->keys = c->store.n;
    out->ring_events = c->ring.n;
    out->ring_bytes = wc_ring_bytes(&c->ring);
    out->frames_out = atomic_load_explicit(&c->frames_out, memory_order_relaxed);
    pthread_mutex_unlock(&c->mu);
}

void wc_cacher_tick(wc_cacher *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t now = wc_cacher_now(c);
    each_watcher(c, tick_with, &now);
    bool trim = c->trim_due > 0;
    if (trim)
        c->trim_due--;
    pthread_mutex_unlock(&c->mu);
    after_dispatch(c);
    /* A list (the first one, or a relist) passed through buffers of about its own size, the
     * upstream's and the states' parse, freed by now but kept by malloc among the states that
     * stayed: handing those pages back is what makes the process's size that of its cache. */
    if (trim)
        malloc_trim(0);
}
