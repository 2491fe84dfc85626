/*
 * The reader's side of a cacheWatcher.
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

#include "watcher.h"

/* How many events the reader turns into frames per refill. */
#define WC_BATCH 64

static const char PRE_ADDED[] = "{\"type\":\"ADDED\",\"object\":";
static const char PRE_MODIFIED[] = "{\"type\":\"MODIFIED\",\"object\":";
static const char PRE_DELETED[] = "{\"type\":\"DELETED\",\"object\":";
static const char POST[] = "}\n";

int wc_watcher_in_resize(wc_watcher *w, size_t size)
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

/* Turns one event into at most one frame for this watcher. */
static void frame_event(wc_watcher *w, wc_event *ev)
{
    if (ev->rev <= w->min_rev)
        return;
    bool cur = ev->kv && wc_filter_match_object(&w->f, ev->kv);
    bool old = ev->prev && wc_filter_match_object(&w->f, ev->prev);
    const char *pre;
    size_t pre_len;
    const char *body = NULL;
    size_t len = 0;
    if (cur) {
        body = wc_kv_render(ev->kv, w->f.family, &len); /* ev->rev is its mod_rev */
        pre = old ? PRE_MODIFIED : PRE_ADDED;
        pre_len = old ? sizeof(PRE_MODIFIED) - 1 : sizeof(PRE_ADDED) - 1;
    } else if (old) {
        body = wc_event_render_deleted(ev, w->f.family, &len);
        pre = PRE_DELETED;
        pre_len = sizeof(PRE_DELETED) - 1;
    }
    if (!body)
        return;
    wc_frame *f = push_frame(w, pre, pre_len, body, len);
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
                size_t len = 0;
                const char *body =
                    wc_filter_match_object(&w->f, kv) ? wc_kv_render(kv, w->f.family, &len) : NULL;
                if (body) {
                    wc_frame *f = push_frame(w, PRE_ADDED, sizeof(PRE_ADDED) - 1, body, len);
                    f->kv = kv;
                } else {
                    wc_kv_unref(kv);
                }
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
        if (n == 0 && !bookmark && state == WC_W_LIVE)
            w->want_wake = true;
        if (n == 0 && w->in_size > WC_IN_SMALL)
            (void)wc_watcher_in_resize(w, WC_IN_SMALL); /* idle: give back a burst's room */
        pthread_mutex_unlock(&w->mu);

        if (n == 0 && !bookmark && state == WC_W_CATCHUP) {
            n = wc_watcher_catch_up(w, &batch, &cap, stack);
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
        const char *parts[3] = {f->pre, f->body, f->post};
        size_t lens[3] = {f->pre_len, f->body_len, f->post_len};
        size_t off = w->res_off;
        for (int p = 0; p < 3 && out < max; p++) {
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
