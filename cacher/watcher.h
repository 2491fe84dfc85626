/*
 * Private layout of the cacher and its watchers, shared by cacher.c (producer side,
 * registration, lists, tick) and watcher.c (the reader's side).
 *
 * Locking, in one sentence each:
 * - wc_cacher.mu guards the store, the ring, the revisions, the watcher sets and every field
 *   of a watcher marked (c); it is never held across I/O.
 * - wc_watcher.mu guards the watcher's input queue and the fields marked (w); it is taken
 *   after wc_cacher.mu when both are needed, never the other way round.
 * - Fields marked (r) belong to the one reader thread that calls wc_watcher_read.
 * - A watcher's `state` is written with both locks held, so either lock is enough to read it.
 */
#ifndef WCACHED_WATCHER_PRIV_H
#define WCACHED_WATCHER_PRIV_H

#include <uthash.h>

#include "internal.h"
#include "ring.h"
#include "store.h"

typedef enum wc_wstate {
    WC_W_CATCHUP = 0, /* its next events come from the ring, pulled by the reader */
    WC_W_LIVE,        /* the producer pushes every new event onto its input queue */
    WC_W_ENDED,       /* unregistered; the reader drains what is queued, then EOF */
} wc_wstate;

/* A frame of the result queue: pre + body + post, the body shared and kept alive by ref. */
typedef struct wc_frame {
    const char *pre, *body, *post;
    size_t pre_len, body_len, post_len;
    int64_t rv;   /* what the reader may resume from once it has the frame; 0: nothing new */
    wc_event *ev; /* reference, or NULL */
    wc_kv *kv;    /* reference, or NULL */
    char *own;    /* body owned by the frame (bookmarks), or NULL */
} wc_frame;

/* Watchers whose field selector pins the index field to one value. */
typedef struct wc_bucket {
    char *value;
    wc_watcher *watchers; /* utlist DL list through prev/next */
    UT_hash_handle hh;
} wc_bucket;

struct wc_watcher {
    wc_cacher *c;
    /* Set before registration, then read-only. */
    wc_filter f;
    char *key;
    wc_selector *labels, *fields;
    char *kind, *api_version;
    bool allow_bookmarks;
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

struct wc_cacher {
    wc_cacher_opts o;
    char *index_field;

    pthread_mutex_t mu;
    pthread_cond_t rev_cond; /* signalled when rev_done or ready changes; uses mu */
    bool ready;
    int64_t rev;      /* newest revision published (event or progress) */
    int64_t rev_done; /* every change at or below it is published: no txn half-applied */
    uint64_t seq;     /* sequence number of the newest event */
    wc_store store;
    wc_ring ring;
    wc_watcher *unindexed;           /* utlist DL list */
    wc_bucket *buckets;              /* uthash by value */
    wc_cacher_stats st;              /* counters; rev/floor/keys/ring filled on read */
    atomic_uint_fast64_t frames_out; /* counted by readers without the lock */
    bool freeing; /* wc_cacher_free was called; the last watcher to close frees it */
    size_t alive; /* watchers made and not yet closed */
};

/* Clock of the cacher. */
int64_t wc_cacher_now(const wc_cacher *c);

/* Ends a registered watcher: unregisters it and wakes its reader. Holds c->mu. */
void wc_watcher_end_locked(wc_watcher *w, wc_end_reason why);

/*
 * Pulls about `*cap` events the reader has not seen from the ring into `*out` (references),
 * always up to the end of a revision: a revision with more events than fit grows the array
 * (malloc'd in place of `stack` when *out is `stack`, realloc'd after; the caller frees it
 * when it is not `stack`). Switches the watcher to live when it reaches the newest event, or
 * ends it when its position has left the ring. Returns the count. Takes c->mu.
 */
size_t wc_watcher_catch_up(wc_watcher *w, wc_event ***out, size_t *cap, wc_event **stack);

/* The input queue starts with room for IN_SMALL events and doubles, up to in_cap, only when a
 * burst fills it; an idle watcher gives the room back. So 10,000 idle wide watchers do not
 * hold 1,000 slots each. */
#define WC_IN_SMALL 16

/* Moves the queued events into a ring of `size` slots (>= in_n). 0, or WC_ENOMEM with nothing
 * changed. Holds w->mu. */
int wc_watcher_in_resize(wc_watcher *w, size_t size);

#endif
