/*
 * The cacher's shared state, private to cacher/: the lock, the store, the ring and the
 * revisions that cacher.c (the producer side and lists) and watcher.c (each watcher's life)
 * both read, and what both need of them: the clock, the states as of a past revision, and the
 * cacher's end.
 *
 * Locking, in one sentence: wc_cacher.mu guards every field below (and the watcher fields
 * marked (c) in watcher.h); it is never held across I/O.
 */
#ifndef WCACHED_CACHER_STATE_H
#define WCACHED_CACHER_STATE_H

#include <uthash.h>

#include "internal.h"
#include "ring.h"
#include "store.h"

/* Watchers whose field selector pins the index field to one value. */
typedef struct wc_bucket {
    char *value;
    uint32_t hash;        /* wc_index_hash(value) */
    wc_watcher *watchers; /* utlist DL list through prev/next */
    UT_hash_handle hh;
} wc_bucket;

#define WC_SEQ_BASE ((uint64_t)1 << 40)

struct wc_cacher {
    wc_cacher_opts o;
    char *index_field;

    pthread_mutex_t mu;
    pthread_cond_t rev_cond; /* signalled when rev_done or ready changes; uses mu */
    bool loaded;             /* a list is loaded: the producer may publish */
    bool ready;              /* loaded: readers are served */
    /* A start's history is coming (wc_cacher_backfill): the changes of (backfill_from,
     * backfill_to], to go before the ring's oldest event. A watch from a revision in
     * [backfill_from, backfill_to) waits for it (WC_W_WAITING); a list at one answers
     * WC_ENOTREADY meanwhile. */
    bool backfilling;
    int64_t backfill_from, backfill_to;
    int64_t rev;      /* newest revision published (event or progress) */
    int64_t rev_done; /* every change at or below it is published: no txn half-applied */
    uint64_t seq;     /* sequence number of the newest event; they start at WC_SEQ_BASE, so that
                         a backfill's history has the numbers below the first */
    wc_store store;
    wc_ring ring;
    wc_watcher *unindexed;           /* utlist DL list */
    wc_bucket *buckets;              /* uthash by value */
    wc_cacher_stats st;              /* counters; rev/floor/keys/ring filled on read */
    atomic_uint_fast64_t frames_out; /* counted by readers without the lock */
    bool freeing; /* wc_cacher_free was called; the last watcher to close frees it */
    size_t alive; /* watchers made and not yet closed */
    int trim_due; /* a list was loaded, or a history put in the ring: the next ticks (this
                   * many) hand freed memory back (cacher.c) */
};

/* CLOCK_MONOTONIC in ms: the clock of a cacher given none. */
int64_t wc_cacher_mono_ms(void *arg);

/* The cacher's clock, in ms. */
int64_t wc_cacher_now(const wc_cacher *c);

/* The position (sequence number) just after every change at or below `rev`. Holds c->mu. */
uint64_t wc_cacher_seq_at_rev(const wc_cacher *c, int64_t rev);

/*
 * Collects references to the states in [from, to) of the exact key or prefix as of revision
 * `rev` (>= the ring's floor) into a new array: the store's states, with the keys changed
 * after `rev` replaced by what the oldest newer event replaced. `from` and `to` may be NULL (no
 * bound). Stops after `max` states (0: no bound). 0 or WC_ENOMEM. Holds c->mu.
 */
int wc_cacher_collect_at(wc_cacher *c, const char *key, size_t key_len, bool prefix,
                         const char *from, size_t from_len, const char *to, size_t to_len,
                         int64_t rev, size_t max, wc_kv ***out, size_t *out_n);

/* Frees the cacher's state and the cacher; the last watcher is closed. */
void wc_cacher_destroy(wc_cacher *c);

#endif
