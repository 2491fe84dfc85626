/*
 * The ring: the most recent events in publication order, bounded by a count and by bytes:
 * what its events hold in memory (each event, the state it keeps alive, and the /keys
 * encodings watchers made of it, malloc's overhead included), so that the bound caps what the
 * process holds for its history.
 * It holds every event with a sequence number in (floor_seq, last_seq] and, in revision terms,
 * every change with a revision in (floor_rev, last_rev]: a watch from RV N is complete iff
 * N >= floor_rev. Evicting an event raises floor_rev to its revision. Not thread-safe: the
 * cacher's lock guards it.
 */
#ifndef WCACHED_RING_H
#define WCACHED_RING_H

#include "internal.h"

typedef struct wc_ring {
    wc_event **v;
    size_t cap, head, n;     /* v[head] is the oldest; n events */
    size_t bytes, max_bytes; /* the events and their states, counted when they enter */
    atomic_size_t enc_bytes; /* their encodings, counted as readers make them (render.c) */
    int64_t floor_rev;       /* all changes after this revision are held */
    uint64_t floor_seq;      /* all events after this sequence number are held */
} wc_ring;

/* 0 or WC_ENOMEM. cap >= 1. The ring starts at floor `rev` with sequence `seq`. */
int wc_ring_init(wc_ring *r, size_t cap, size_t max_bytes, int64_t rev, uint64_t seq);
void wc_ring_free(wc_ring *r);
/* Drops every event and restarts the history at revision rev / sequence seq. */
void wc_ring_reset(wc_ring *r, int64_t rev, uint64_t seq);

/* Appends ev (taking over the caller's reference), evicting the oldest events while the ring
 * is over either bound; the newest event always stays. */
void wc_ring_push(wc_ring *r, wc_event *ev);

/*
 * Puts history before the ring's oldest event: evs[0..n) in publication order, every one at or
 * below the floor revision and after `from`. As many of the newest as fit both bounds go in,
 * in whole revisions; they take the sequence numbers just below the floor's, and the floor
 * goes down to what the ring now holds (`from` when all went in). Takes over the references
 * of those that went in and returns their count: the oldest n minus that are the caller's.
 */
size_t wc_ring_prepend(wc_ring *r, wc_event **evs, size_t n, int64_t from);

/* The bytes the ring's events hold now. */
static inline size_t wc_ring_bytes(const wc_ring *r)
{
    return r->bytes + atomic_load_explicit(&r->enc_bytes, memory_order_relaxed);
}

/* The i-th oldest event held (borrowed), 0 <= i < n. */
static inline wc_event *wc_ring_at(const wc_ring *r, size_t i)
{
    return r->v[(r->head + i) % r->cap];
}

/* Index of the first event with revision > rev (n when none). */
size_t wc_ring_after_rev(const wc_ring *r, int64_t rev);
/* Index of the first event with sequence > seq (n when none); seq >= floor_seq. */
size_t wc_ring_after_seq(const wc_ring *r, uint64_t seq);

#endif
