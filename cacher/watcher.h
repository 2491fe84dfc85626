/*
 * Private layout of a cacheWatcher, whose whole life is in watcher.c (registration, the input
 * queue, catch-up, the tick, the end, the reader's side); cacher.c calls the functions below.
 *
 * Locking, in one sentence each:
 * - wc_cacher.mu (state.h) guards the watcher sets and every field of a watcher marked (c).
 * - wc_watcher.mu guards the watcher's input queue and the fields marked (w); it is taken
 *   after wc_cacher.mu when both are needed, never the other way round.
 * - Fields marked (r) belong to the one reader thread that calls wc_watcher_read.
 * - A watcher's `state` is written with both locks held, so either lock is enough to read it.
 */
#ifndef WCACHED_WATCHER_PRIV_H
#define WCACHED_WATCHER_PRIV_H

#include "state.h"

typedef enum wc_wstate {
    WC_W_CATCHUP = 0, /* its next events come from the ring, pulled by the reader */
    WC_W_LIVE,        /* the producer pushes every new event onto its input queue */
    WC_W_ENDED,       /* unregistered; the reader drains what is queued, then EOF */
    WC_W_WAITING,     /* from a revision whose history is still coming (a backfill): nothing
                         is pushed or pulled until it is in (wc_watcher_wait_over) */
} wc_wstate;

/* A frame of the result queue: pre + body + post, the body shared and kept alive by ref. A
 * Kubernetes body is no string: it is `splice` at `splice_rev` (wc_kv_pieces), copied out of
 * the state as it is sent. */
typedef struct wc_frame {
    const char *pre, *body, *post;
    size_t pre_len, body_len, post_len;
    const wc_kv *splice; /* kept alive by ev or kv; NULL: body */
    int64_t splice_rev;
    int64_t rv;   /* what the reader may resume from once it has the frame; 0: nothing new */
    wc_event *ev; /* reference, or NULL */
    wc_kv *kv;    /* reference, or NULL */
    char *own;    /* body owned by the frame (bookmarks), or NULL */
} wc_frame;

struct wc_watcher {
    wc_cacher *c;
    /* Set before registration, then read-only. */
    wc_filter f;
    char *key;
    wc_selector *labels, *fields;
    char *kind, *api_version;
    bool allow_bookmarks;
    bool raw; /* frames carry the event only, for wc_watcher_read_events */
    int64_t deadline;
    int64_t min_rev; /* events at or below it are not sent (a watch from a future RV) */
    void (*wake)(void *arg);
    void *wake_arg;

    /* (c) */
    wc_watcher *prev, *next;
    wc_bucket *bucket; /* NULL: in the unindexed list */
    bool registered;
    uint64_t pos;      /* seq of the last event queued for it or pulled by it */
    int64_t pos_rev;   /* ... and its revision: a revision begun is always given whole */
    int64_t lag_since; /* when the producer found its queue full; 0 when not lagging */
    int64_t next_bookmark;
    bool pre_deadline_bookmark_done;

    wc_wstate state; /* see above */

    /* (w) */
    pthread_mutex_t mu;
    wc_event **in; /* a ring of in_size slots, grown on demand up to in_cap */
    size_t in_cap; /* the queue's bound (10, or 1000 for a watcher the index cannot narrow) */
    size_t in_size, in_head, in_n;
    bool want_wake;
    bool bookmark_pending;
    int64_t bookmark_rv;
    wc_end_reason end_reason;

    /* (r) */
    wc_kv **init; /* initial state still to send, references */
    size_t init_n, init_i;
    int64_t init_rev;
    bool init_end_pending;
    wc_frame *res;
    size_t res_n, res_i, res_cap, res_off;
    int64_t sent_rv;   /* the newest rv of a frame the reader has had whole */
    int64_t taken_rev; /* revision of the last event taken from the queue or the ring */
    int64_t out_rev;   /* revision of the last frame begun on the wire (-1: not an event) */
    bool cut;          /* ended for lagging: send only the rest of out_rev, then end */
    bool cut_done;     /* ... and a frame of another revision was dropped: out_rev is whole */
};

/* Pushes ev onto a live watcher's input queue when it is in the watcher's key range, or switches
 * the watcher to catch-up when the queue is full. Holds c->mu. */
void wc_watcher_push(wc_watcher *w, wc_event *ev, int64_t now);

/* Ends the watcher past its deadline or lag budget, or queues a due bookmark. Holds c->mu. */
void wc_watcher_tick_locked(wc_watcher *w, int64_t now);

/* A waiting watcher's history is in: it catches up from its revision (WC_W_CATCHUP), or ends
 * (WC_END_EXPIRED) when that revision is not in the ring after all. Holds c->mu. */
void wc_watcher_wait_over(wc_watcher *w);

/* Ends a registered watcher: unregisters it and wakes its reader. Holds c->mu. */
void wc_watcher_end_locked(wc_watcher *w, wc_end_reason why);

/* The input queue starts with room for IN_SMALL events and doubles, up to in_cap, only when a
 * burst fills it; an idle watcher gives the room back. So 10,000 idle wide watchers do not
 * hold 1,000 slots each. */
#define WC_IN_SMALL 16

#endif
