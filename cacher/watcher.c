/*
 * A cacheWatcher's whole life: registration, the input queue the producer pushes onto, the
 * tick that ends it or queues a bookmark, the end, and the reader's side.
 *
 * Registration (wc_cacher_watch) fixes the watcher's position in the ring under the same lock
 * the producer takes, so replay and live delivery meet with no gap and no duplicate. A watcher
 * is always given whole revisions (an etcd transaction is never split), so it can always end
 * between them.
 *
 * wc_watcher_read() moves a watcher's events through two queues, like Kubernetes' input and
 * result channels. It first hands out what is left of the result queue (frames: a fixed
 * prefix, the event's shared encoding, a fixed suffix). When that is empty it refills it, in
 * this order: the initial state as ADDED frames; the initial-events-end BOOKMARK; the events
 * the producer pushed onto the input queue; or, when the watcher is catching up, events pulled
 * from the ring. Each event passes the watcher's selectors with the previous object too, so an
 * object that starts matching arrives as ADDED and one that stops matching as DELETED.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "watcher.h"

/* How many events the reader turns into frames per refill. */
#define WC_BATCH 64

static const char PRE_ADDED[] = "{\"type\":\"ADDED\",\"object\":";
static const char PRE_MODIFIED[] = "{\"type\":\"MODIFIED\",\"object\":";
static const char PRE_DELETED[] = "{\"type\":\"DELETED\",\"object\":";
static const char POST[] = "}\n";

/* Moves the queued events into a ring of `size` slots (>= in_n). 0, or WC_ENOMEM with nothing
 * changed. Holds w->mu. */
static int in_resize(wc_watcher *w, size_t size)
{
    if (size < w->in_n || size == 0)
        return WC_EINVAL;
    wc_event **in = malloc(size * sizeof(*in));
    if (!in)
        return WC_ENOMEM;
    for (size_t i = 0; i < w->in_n; i++)
        in[i] = w->in[(w->in_head + i) % w->in_size];
    free(w->in);
    w->in = in;
    w->in_head = 0;
    w->in_size = size;
    return 0;
}

static int res_reserve(wc_watcher *w, size_t n)
{
    if (w->res_cap >= n)
        return 0;
    wc_frame *r = realloc(w->res, n * sizeof(*r));
    if (!r)
        return WC_ENOMEM;
    w->res = r;
    w->res_cap = n;
    return 0;
}

static void frame_release(wc_frame *f)
{
    wc_event_unref(f->ev);
    wc_kv_unref(f->kv);
    free(f->own);
}

static wc_frame *push_frame(wc_watcher *w, const char *pre, size_t pre_len, const char *body,
                            size_t body_len)
{
    wc_frame *f = &w->res[w->res_n++];
    memset(f, 0, sizeof(*f));
    f->pre = pre;
    f->pre_len = pre_len;
    f->body = body;
    f->body_len = body_len;
    f->post = POST;
    f->post_len = sizeof(POST) - 1;
    return f;
}

/* Sets a frame's body: kv's encoding in the watcher's family at `rev`, spliced for Kubernetes;
 * for /keys, `shared` (an event's encoding) or else a new string owned by the frame. False
 * when there is no body (the family cannot serve it, or no memory). */
static bool frame_body(wc_watcher *w, wc_frame *f, const wc_kv *kv, int64_t rev, const char *shared,
                       size_t shared_len)
{
    if (w->f.family == WC_FAMILY_K8S) {
        f->body_len = wc_kv_encode_at(kv, WC_FAMILY_K8S, rev, NULL);
        f->splice = kv;
        f->splice_rev = rev;
        return f->body_len > 0;
    }
    if (shared) {
        f->body = shared;
        f->body_len = shared_len;
        return true;
    }
    size_t len = wc_kv_encode_at(kv, WC_FAMILY_KEYS, rev, NULL);
    f->own = malloc(len);
    if (!f->own)
        return false;
    wc_kv_encode_at(kv, WC_FAMILY_KEYS, rev, f->own);
    f->body = f->own;
    f->body_len = len;
    return true;
}

/* Turns one event into at most one frame for this watcher. */
static void frame_event(wc_watcher *w, wc_event *ev)
{
    if (ev->rev <= w->min_rev)
        return;
    if (w->raw) {
        wc_frame *f = push_frame(w, "", 0, "", 0);
        f->ev = wc_event_ref(ev);
        f->rv = ev->rev;
        return;
    }
    bool cur = ev->kv && wc_filter_match_object(&w->f, ev->kv);
    bool old = ev->prev && wc_filter_match_object(&w->f, ev->prev);
    const char *pre;
    size_t pre_len;
    const wc_kv *kv;
    int64_t rev;
    if (cur) {
        kv = ev->kv;
        rev = ev->rev; /* its mod_rev */
        pre = old ? PRE_MODIFIED : PRE_ADDED;
        pre_len = old ? sizeof(PRE_MODIFIED) - 1 : sizeof(PRE_ADDED) - 1;
    } else if (old) {
        kv = ev->prev;
        rev = ev->rev; /* a deleted object carries the deletion's revision */
        pre = PRE_DELETED;
        pre_len = sizeof(PRE_DELETED) - 1;
    } else {
        return;
    }
    const char *shared = NULL;
    size_t len = 0;
    if (w->f.family == WC_FAMILY_KEYS) {
        shared = wc_event_keys(ev, !cur, &len);
        if (!shared)
            return;
    }
    wc_frame *f = push_frame(w, pre, pre_len, NULL, 0);
    if (!frame_body(w, f, kv, rev, shared, len)) {
        w->res_n--;
        return;
    }
    f->ev = wc_event_ref(ev);
    f->rv = ev->rev;
}

/* A BOOKMARK frame at `rev`; the initial-events-end one carries Kubernetes' annotation. */
static void frame_bookmark(wc_watcher *w, int64_t rev, bool initial_end)
{
    char *s = NULL;
    int n =
        asprintf(&s,
                 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\",\"apiVersion\":\"%s\","
                 "\"metadata\":{\"resourceVersion\":\"%" PRId64 "\"%s}}}\n",
                 w->kind, w->api_version, rev,
                 initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "");
    if (n < 0)
        return; /* a bookmark is a courtesy: losing one under memory pressure is harmless */
    wc_frame *f = push_frame(w, "", 0, s, (size_t)n);
    f->post = "";
    f->post_len = 0;
    f->own = s;
    f->rv = rev;
}

/* False when the index alone tells that ev is not for w: w's field selector pins the index field
 * to a value that neither the new state nor the previous one holds (what the producer's
 * dispatch decides for a live watcher, cacher.c). Holds c->mu. */
static bool in_bucket(const wc_watcher *w, const wc_event *ev)
{
    const wc_bucket *b = w->bucket;
    if (!b)
        return true;
    const wc_kv *kv = ev->kv, *prev = ev->prev;
    return (kv && kv->index_value && kv->index_hash == b->hash &&
            strcmp(kv->index_value, b->value) == 0) ||
           (prev && prev->index_value && prev->index_hash == b->hash &&
            strcmp(prev->index_value, b->value) == 0);
}

/*
 * Pulls about `*cap` events the reader has not seen from the ring into `*out` (references),
 * always up to the end of a revision: a revision with more events than fit grows the array
 * (malloc'd in place of `stack` when *out is `stack`, realloc'd after; the caller frees it
 * when it is not `stack`). Switches the watcher to live when it reaches the newest event, or
 * ends it when its position has left the ring. Returns the count. Takes c->mu.
 */
static size_t catch_up(wc_watcher *w, wc_event ***out, size_t *cap, wc_event **stack)
{
    wc_cacher *c = w->c;
    size_t n = 0, max = *cap;
    pthread_mutex_lock(&c->mu);
    if (!w->registered) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    if (w->pos < c->ring.floor_seq) {
        wc_watcher_end_locked(w, WC_END_EXPIRED);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    size_t i = wc_ring_after_seq(&c->ring, w->pos);
    /* Look at a bounded window per lock hold, even when most events are filtered out, but
     * always stop between revisions: the rest of a revision begun is taken, growing the
     * batch, so that the watcher's position never falls inside a transaction. */
    size_t window = max * 16;
    for (size_t seen = 0; i < c->ring.n; i++, seen++) {
        wc_event *ev = wc_ring_at(&c->ring, i);
        if ((n >= max || seen >= window) && ev->rev != w->pos_rev)
            break;
        const wc_kv *k = ev->kv ? ev->kv : ev->prev;
        if (in_bucket(w, ev) && wc_filter_has_key(&w->f, k->key, k->key_len)) {
            if (n == *cap) {
                wc_event **more = *out == stack ? malloc(*cap * 2 * sizeof(*more))
                                                : realloc(*out, *cap * 2 * sizeof(*more));
                if (!more)
                    break; /* without memory: stop here, inside the revision */
                if (*out == stack)
                    memcpy(more, stack, n * sizeof(*more));
                *out = more;
                *cap *= 2;
            }
            (*out)[n++] = wc_event_ref(ev);
        }
        w->pos = ev->seq;
        w->pos_rev = ev->rev;
    }
    if (i == c->ring.n) {
        pthread_mutex_lock(&w->mu);
        w->state = WC_W_LIVE;
        pthread_mutex_unlock(&w->mu);
        if (w->lag_since) {
            w->lag_since = 0;
            c->st.watchers_lagging--;
        }
    } else if (!w->lag_since) {
        /* Behind the ring's head after a pull: the budget to catch up starts now, as for a
         * watcher whose queue overflowed, so a reader that stops pulling is ended too. */
        w->lag_since = wc_cacher_now(c);
        c->st.watchers_lagging++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/*
 * Refills the (empty) result queue. Returns the number of frames made, 0 when nothing is
 * ready (the wake is armed), WC_EOF when the stream is over, or WC_ENOMEM.
 */
static int refill(wc_watcher *w)
{
    w->res_n = w->res_i = w->res_off = 0;
    for (;;) {
        /* After a lagging end: more only while the revision on the wire may go on. */
        if (w->cut && (w->cut_done || w->out_rev <= 0 || w->taken_rev != w->out_rev))
            return WC_EOF;
        /* 1. The initial state. */
        if (w->init_i < w->init_n) {
            if (res_reserve(w, WC_BATCH) != 0)
                return WC_ENOMEM;
            while (w->init_i < w->init_n && w->res_n < WC_BATCH) {
                wc_kv *kv = w->init[w->init_i];
                w->init[w->init_i++] = NULL;
                wc_frame *f = NULL;
                if (wc_filter_match_object(&w->f, kv)) {
                    f = push_frame(w, PRE_ADDED, sizeof(PRE_ADDED) - 1, NULL, 0);
                    if (frame_body(w, f, kv, kv->mod_rev, NULL, 0)) {
                        f->kv = kv;
                    } else {
                        frame_release(f);
                        w->res_n--;
                        f = NULL;
                    }
                }
                if (!f)
                    wc_kv_unref(kv);
            }
            if (w->init_i == w->init_n) {
                free(w->init);
                w->init = NULL;
                w->init_n = w->init_i = 0;
            }
            if (w->res_n)
                return (int)w->res_n;
            continue;
        }
        /* 2. The end of the initial state. */
        if (w->init_end_pending) {
            if (res_reserve(w, 1) != 0)
                return WC_ENOMEM;
            w->init_end_pending = false;
            frame_bookmark(w, w->sent_rv, true);
            if (w->res_n)
                return (int)w->res_n;
            continue;
        }
        /* 3. Events: from the input queue, or pulled from the ring while catching up. After a
         * lagging end, only the rest of the revision already begun on the wire. */
        wc_event *stack[WC_BATCH], **batch = stack;
        size_t n = 0, cap = WC_BATCH;
        bool bookmark = false;
        int64_t bookmark_rv = 0;
        wc_wstate state;
        pthread_mutex_lock(&w->mu);
        while (n < WC_BATCH && w->in_n > 0) {
            wc_event *ev = w->in[w->in_head];
            if (w->cut && ev->rev != w->out_rev)
                break;
            batch[n++] = ev;
            w->in_head = (w->in_head + 1) % w->in_size;
            w->in_n--;
        }
        if (w->cut && n == 0) {
            pthread_mutex_unlock(&w->mu);
            return WC_EOF;
        }
        state = w->state;
        if (!w->cut && w->in_n == 0 && w->bookmark_pending) {
            bookmark = true;
            bookmark_rv = w->bookmark_rv;
            w->bookmark_pending = false;
        }
        if (n == 0 && !bookmark && (state == WC_W_LIVE || state == WC_W_WAITING))
            w->want_wake = true;
        if (n == 0 && w->in_size > WC_IN_SMALL)
            (void)in_resize(w, WC_IN_SMALL); /* idle: give back a burst's room */
        pthread_mutex_unlock(&w->mu);

        if (n == 0 && !bookmark && state == WC_W_CATCHUP) {
            n = catch_up(w, &batch, &cap, stack);
            if (n == 0) {
                /* Now live (loop to arm the wake), or ended. */
                continue;
            }
        }
        if (n == 0 && !bookmark) {
            if (state == WC_W_ENDED)
                return WC_EOF;
            /* Going idle: an idle stream should cost little, so give back the room a burst
             * (initial state, catch-up) took; a steady stream keeps its small array. */
            if (w->res_cap > 16) {
                free(w->res);
                w->res = NULL;
                w->res_cap = 0;
            }
            return 0;
        }
        if (res_reserve(w, n + 1) != 0) {
            for (size_t i = 0; i < n; i++)
                wc_event_unref(batch[i]);
            if (batch != stack)
                free(batch);
            return WC_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            frame_event(w, batch[i]);
            w->taken_rev = batch[i]->rev;
            wc_event_unref(batch[i]);
        }
        if (batch != stack)
            free(batch);
        if (bookmark) {
            /* Never behind what the reader has had or is about to have. */
            int64_t rv = bookmark_rv > w->taken_rev ? bookmark_rv : w->taken_rev;
            frame_bookmark(w, rv > w->sent_rv ? rv : w->sent_rv, false);
        }
        if (w->res_n)
            return (int)w->res_n;
    }
}

/* The revision a frame belongs to; -1 for frames that are not an event of the ring (the
 * initial state, bookmarks), which never continue a revision. */
static int64_t frame_rev(const wc_frame *f)
{
    return f->ev ? f->ev->rev : -1;
}

/* Copies frames from the result queue into buf; returns the bytes copied. After a lagging end,
 * stops at the first frame that does not continue the revision on the wire and drops the rest. */
static size_t drain(wc_watcher *w, char *buf, size_t max)
{
    size_t out = 0;
    while (w->res_i < w->res_n && out < max) {
        wc_frame *f = &w->res[w->res_i];
        if (w->res_off == 0) {
            if (w->cut && (frame_rev(f) < 0 || frame_rev(f) != w->out_rev)) {
                for (size_t i = w->res_i; i < w->res_n; i++)
                    frame_release(&w->res[i]);
                w->res_i = w->res_n;
                w->cut_done = true;
                break;
            }
            w->out_rev = frame_rev(f);
        }
        const char *parts[2 + WC_KV_PIECES];
        size_t lens[2 + WC_KV_PIECES];
        char digits[24];
        int np = 0;
        parts[np] = f->pre;
        lens[np++] = f->pre_len;
        if (f->splice) {
            np += wc_kv_pieces(f->splice, f->splice_rev, digits, parts + np, lens + np);
        } else {
            parts[np] = f->body;
            lens[np++] = f->body_len;
        }
        parts[np] = f->post;
        lens[np++] = f->post_len;
        size_t off = w->res_off;
        for (int p = 0; p < np && out < max; p++) {
            if (off >= lens[p]) {
                off -= lens[p];
                continue;
            }
            size_t take = lens[p] - off;
            if (take > max - out)
                take = max - out;
            memcpy(buf + out, parts[p] + off, take);
            out += take;
            w->res_off += take;
            off = 0;
        }
        if (w->res_off == f->pre_len + f->body_len + f->post_len) {
            if (f->rv > w->sent_rv)
                w->sent_rv = f->rv;
            frame_release(f);
            w->res_i++;
            w->res_off = 0;
            atomic_fetch_add_explicit(&w->c->frames_out, 1, memory_order_relaxed);
        }
    }
    return out;
}

int wc_watcher_read(wc_watcher *w, char *buf, size_t max, size_t *n)
{
    size_t out = 0;
    *n = 0;
    if (max == 0)
        return WC_EINVAL;
    if (!w->cut) {
        /* A watcher ended for lagging sends no more than the end of the revision its reader
         * has begun: the reader resumes from there without missing a transaction's rest. */
        pthread_mutex_lock(&w->mu);
        w->cut = w->state == WC_W_ENDED &&
                 (w->end_reason == WC_END_SLOW || w->end_reason == WC_END_EXPIRED);
        pthread_mutex_unlock(&w->mu);
    }
    for (;;) {
        out += drain(w, buf + out, max - out);
        if (out == max)
            break;
        int r = refill(w);
        if (r > 0)
            continue;
        if (out > 0)
            break;
        return r == WC_EOF ? WC_EOF : (r == 0 ? WC_EAGAIN : r);
    }
    *n = out;
    return 0;
}

int wc_watcher_read_events(wc_watcher *w, wc_event **out, size_t max, size_t *n, int64_t *progress)
{
    *n = 0;
    *progress = 0;
    if (max == 0)
        return WC_EINVAL;
    for (;;) {
        while (w->res_i < w->res_n && *n < max) {
            wc_frame *f = &w->res[w->res_i++];
            if (f->ev) {
                out[(*n)++] = f->ev;
                f->ev = NULL;
            } else if (f->rv > *progress) {
                *progress = f->rv;
            }
            if (f->rv > w->sent_rv)
                w->sent_rv = f->rv;
            frame_release(f);
            atomic_fetch_add_explicit(&w->c->frames_out, 1, memory_order_relaxed);
        }
        if (*n == max)
            return 0;
        int r = refill(w);
        if (r > 0)
            continue;
        if (*n || *progress)
            return 0;
        return r == WC_EOF ? WC_EOF : (r == 0 ? WC_EAGAIN : r);
    }
}

static const struct {
    const char *name, *text;
} end_reasons[WC_END_COUNT] = {
    [WC_END_CLOSED] = {"closed", "closed"},
    [WC_END_TIMEOUT] = {"timeout", "timeoutSeconds reached"},
    [WC_END_SLOW] = {"slow", "too slow"},
    [WC_END_EXPIRED] = {"expired", "fell out of the event ring"},
    [WC_END_RESET] = {"reset", "upstream history reset"},
    [WC_END_SHUTDOWN] = {"shutdown", "shutting down"},
};

const char *wc_end_reason_name(wc_end_reason r)
{
    return (unsigned)r < WC_END_COUNT ? end_reasons[r].name : "?";
}

const char *wc_end_reason_text(wc_end_reason r)
{
    return (unsigned)r < WC_END_COUNT ? end_reasons[r].text : "?";
}

bool wc_watcher_ended(wc_watcher *w)
{
    pthread_mutex_lock(&w->mu);
    bool ended = w->state == WC_W_ENDED;
    pthread_mutex_unlock(&w->mu);
    return ended;
}

wc_end_reason wc_watcher_end_reason(wc_watcher *w)
{
    pthread_mutex_lock(&w->mu);
    wc_end_reason r = w->end_reason;
    pthread_mutex_unlock(&w->mu);
    return r;
}

int64_t wc_watcher_rv(wc_watcher *w)
{
    return w->sent_rv;
}

/* ---------------------------------------------------------------------------------------
 * The producer's side of a watcher: registration, the input queue, the tick, the end
 * ------------------------------------------------------------------------------------- */

void wc_watcher_push(wc_watcher *w, wc_event *ev, int64_t now)
{
    wc_cacher *c = w->c;
    if (w->state != WC_W_LIVE)
        return;
    const wc_kv *k = ev->kv ? ev->kv : ev->prev;
    if (!wc_filter_has_key(&w->f, k->key, k->key_len))
        return;
    pthread_mutex_lock(&w->mu);
    /* The rest of a revision the watcher has begun always goes in, past the bound if need be
     * (a transaction is bounded by etcd's own limit), so what a watcher is given ends between
     * revisions and its stream can end there. */
    bool begun = w->pos_rev == ev->rev;
    bool room = begun || w->in_n < w->in_cap;
    if (room && w->in_n == w->in_size) {
        size_t size = w->in_size * 2;
        if (size > w->in_cap && !begun)
            size = w->in_cap;
        room = in_resize(w, size) == 0; /* without memory: full, as at the bound */
    }
    if (!room) {
        w->state = WC_W_CATCHUP;
        w->lag_since = now;
        c->st.watchers_lagging++;
    } else {
        w->in[(w->in_head + w->in_n) % w->in_size] = wc_event_ref(ev);
        w->in_n++;
        w->pos = ev->seq;
        w->pos_rev = ev->rev;
        if (w->want_wake) {
            w->want_wake = false;
            if (w->wake)
                w->wake(w->wake_arg);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

static void schedule_bookmark(wc_cacher *c, wc_watcher *w, int64_t now)
{
    w->next_bookmark = now + c->o.bookmark_ms;
    if (w->deadline && !w->pre_deadline_bookmark_done) {
        int64_t pre = w->deadline - 1000;
        if (pre < now)
            pre = now;
        if (pre < w->next_bookmark)
            w->next_bookmark = pre;
    }
}

static void watcher_free(wc_watcher *w);

static wc_watcher *watcher_new(wc_cacher *c, const wc_watch_opts *o)
{
    wc_watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->c = c;
    w->f = o->filter;
    w->key = malloc(o->filter.key_len + 1);
    w->kind = strdup(o->kind ? o->kind : "KeyValue");
    w->api_version = strdup(o->api_version ? o->api_version : "wcached/v1");
    if (!w->key || !w->kind || !w->api_version) {
        watcher_free(w);
        return NULL;
    }
    if (o->filter.key_len)
        memcpy(w->key, o->filter.key, o->filter.key_len);
    w->key[o->filter.key_len] = '\0';
    w->f.key = w->key;
    w->labels = o->labels_owned;
    w->fields = o->fields_owned;
    w->f.labels = w->labels;
    w->f.fields = w->fields;
    w->allow_bookmarks = o->allow_bookmarks;
    w->raw = o->raw_events;
    w->deadline = o->deadline_ms;
    w->wake = o->wake;
    w->wake_arg = o->wake_arg;
    w->init_end_pending = o->initial_end_bookmark;
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

static void watcher_free(wc_watcher *w)
{
    for (size_t i = 0; i < w->in_n; i++)
        wc_event_unref(w->in[(w->in_head + i) % w->in_size]);
    free(w->in);
    for (size_t i = w->init_i; i < w->init_n; i++)
        wc_kv_unref(w->init[i]);
    free(w->init);
    for (size_t i = w->res_i; i < w->res_n; i++) {
        wc_event_unref(w->res[i].ev);
        wc_kv_unref(w->res[i].kv);
        free(w->res[i].own);
    }
    free(w->res);
    wc_selector_free(w->labels);
    wc_selector_free(w->fields);
    free(w->key);
    free(w->kind);
    free(w->api_version);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int wc_cacher_watch(wc_cacher *c, const wc_watch_opts *o, wc_watcher **out, int64_t *floor_out)
{
    wc_watcher *w = watcher_new(c, o);
    if (!w)
        return WC_ENOMEM;
    const char *pinned = c->index_field ? wc_selector_exact(w->f.fields, c->index_field) : NULL;
    w->in_cap = c->index_field && !pinned ? c->o.input_cap_wide : c->o.input_cap;
    w->in_size = w->in_cap < WC_IN_SMALL ? w->in_cap : WC_IN_SMALL;
    w->in = malloc(w->in_size * sizeof(*w->in));
    wc_bucket *fresh = NULL;
    if (pinned) {
        fresh = calloc(1, sizeof(*fresh));
        if (fresh) {
            fresh->value = strdup(pinned);
            fresh->hash = wc_index_hash(pinned);
        }
    }
    if (!w->in || (pinned && (!fresh || !fresh->value))) {
        if (fresh)
            free(fresh->value);
        free(fresh);
        w->labels = w->fields = NULL; /* still the caller's on failure */
        watcher_free(w);
        return WC_ENOMEM;
    }

    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (!c->ready || c->freeing) {
        rc = WC_ENOTREADY;
        goto fail;
    }
    int64_t now = wc_cacher_now(c);
    bool from_state = o->rv == WC_RV_UNSET || o->rv == 0;
    /* From a revision whose history is coming: it waits for it. */
    bool waits =
        !from_state && o->rv < c->ring.floor_rev && c->backfilling && o->rv >= c->backfill_from;
    if (!from_state && o->rv < c->ring.floor_rev && !waits) {
        if (floor_out)
            *floor_out = c->ring.floor_rev;
        rc = WC_EEXPIRED;
        goto fail;
    }
    if (o->send_initial) {
        rc = wc_cacher_collect_at(c, w->f.key, w->f.key_len, w->f.prefix, NULL, 0, NULL, 0,
                                  c->rev_done, 0, &w->init, &w->init_n);
        if (rc != 0)
            goto fail;
        w->init_rev = c->rev_done;
        w->pos = wc_cacher_seq_at_rev(c, c->rev_done);
        w->sent_rv = c->rev_done;
    } else if (from_state) {
        w->pos = wc_cacher_seq_at_rev(c, c->rev_done);
        w->sent_rv = c->rev_done;
    } else {
        w->min_rev = o->rv;
        w->pos = wc_cacher_seq_at_rev(c, o->rv < c->rev_done ? o->rv : c->rev_done);
        w->sent_rv = o->rv;
    }
    if (pinned) {
        wc_bucket *b = NULL;
        HASH_FIND_STR(c->buckets, pinned, b);
        if (!b) {
            b = fresh;
            fresh = NULL;
            HASH_ADD_KEYPTR(hh, c->buckets, b->value, strlen(b->value), b);
        }
        w->bucket = b;
        DL_APPEND(b->watchers, w);
    } else {
        DL_APPEND(c->unindexed, w);
    }
    w->registered = true;
    w->state = waits ? WC_W_WAITING : WC_W_CATCHUP;
    schedule_bookmark(c, w, now);
    c->st.watchers++;
    c->alive++;
    pthread_mutex_unlock(&c->mu);
    if (fresh) {
        free(fresh->value);
        free(fresh);
    }
    *out = w;
    return 0;
fail:
    pthread_mutex_unlock(&c->mu);
    if (fresh) {
        free(fresh->value);
        free(fresh);
    }
    w->labels = w->fields = NULL;
    watcher_free(w);
    return rc;
}

/* Removes a registered watcher from its set. Holds c->mu. */
static void unregister(wc_watcher *w)
{
    wc_cacher *c = w->c;
    if (!w->registered)
        return;
    if (w->bucket) {
        wc_bucket *b = w->bucket;
        DL_DELETE(b->watchers, w);
        if (!b->watchers) {
            HASH_DEL(c->buckets, b);
            free(b->value);
            free(b);
        }
        w->bucket = NULL;
    } else {
        DL_DELETE(c->unindexed, w);
    }
    if (w->lag_since)
        c->st.watchers_lagging--;
    w->lag_since = 0;
    w->registered = false;
    c->st.watchers--;
}

void wc_watcher_wait_over(wc_watcher *w)
{
    wc_cacher *c = w->c;
    if (w->state != WC_W_WAITING)
        return;
    if (w->min_rev < c->ring.floor_rev) {
        wc_watcher_end_locked(w, WC_END_EXPIRED);
        return;
    }
    w->pos = wc_cacher_seq_at_rev(c, w->min_rev);
    pthread_mutex_lock(&w->mu);
    w->state = WC_W_CATCHUP;
    if (w->want_wake) {
        w->want_wake = false;
        if (w->wake)
            w->wake(w->wake_arg);
    }
    pthread_mutex_unlock(&w->mu);
}

void wc_watcher_end_locked(wc_watcher *w, wc_end_reason why)
{
    if (!w->registered)
        return;
    unregister(w);
    w->c->st.ended[why]++;
    pthread_mutex_lock(&w->mu);
    w->state = WC_W_ENDED;
    w->end_reason = why;
    /* An end is news even to a reader that is not waiting: one stuck behind a full socket
     * must hear it to cut its stream off. */
    w->want_wake = false;
    if (w->wake)
        w->wake(w->wake_arg);
    pthread_mutex_unlock(&w->mu);
}

void wc_watcher_free(wc_watcher *w)
{
    wc_cacher *c = w->c;
    pthread_mutex_lock(&c->mu);
    if (w->registered) {
        unregister(w);
        c->st.ended[WC_END_CLOSED]++;
    }
    bool last = --c->alive == 0 && c->freeing;
    pthread_mutex_unlock(&c->mu);
    watcher_free(w);
    if (last)
        wc_cacher_destroy(c);
}

/* Queues a BOOKMARK at the cache's revision: every event up to it is queued already, as the
 * watcher is live. Holds c->mu. */
static void queue_bookmark(wc_watcher *w)
{
    pthread_mutex_lock(&w->mu);
    w->bookmark_pending = true;
    w->bookmark_rv = w->c->rev_done;
    if (w->want_wake) {
        w->want_wake = false;
        if (w->wake)
            w->wake(w->wake_arg);
    }
    pthread_mutex_unlock(&w->mu);
}

void wc_watcher_tick_locked(wc_watcher *w, int64_t now)
{
    wc_cacher *c = w->c;
    bool bookmarks = w->allow_bookmarks && w->state == WC_W_LIVE;
    if (w->deadline && now >= w->deadline) {
        /* A tick late for the last second still sends the bookmark promised before the end. */
        if (bookmarks && !w->pre_deadline_bookmark_done)
            queue_bookmark(w);
        wc_watcher_end_locked(w, WC_END_TIMEOUT);
        return;
    }
    if (w->lag_since && now - w->lag_since > c->o.slow_budget_ms) {
        wc_watcher_end_locked(w, WC_END_SLOW);
        return;
    }
    if (w->state == WC_W_CATCHUP && w->pos < c->ring.floor_seq) {
        wc_watcher_end_locked(w, WC_END_EXPIRED);
        return;
    }
    if (!bookmarks || now < w->next_bookmark)
        return;
    queue_bookmark(w);
    if (w->deadline && now >= w->deadline - 1000)
        w->pre_deadline_bookmark_done = true;
    schedule_bookmark(c, w, now);
}
