/* The bounded event ring; see ring.h. */
#include <stdlib.h>

#include "ring.h"

int wc_ring_init(wc_ring *r, size_t cap, size_t max_bytes, int64_t rev, uint64_t seq)
{
    r->v = calloc(cap ? cap : 1, sizeof(*r->v));
    if (!r->v)
        return WC_ENOMEM;
    r->cap = cap ? cap : 1;
    r->head = r->n = 0;
    r->bytes = 0;
    atomic_init(&r->enc_bytes, 0);
    r->max_bytes = max_bytes;
    r->floor_rev = rev;
    r->floor_seq = seq;
    return 0;
}

void wc_ring_reset(wc_ring *r, int64_t rev, uint64_t seq)
{
    for (size_t i = 0; i < r->n; i++) {
        wc_event_leave_ring(wc_ring_at(r, i));
        wc_event_unref(wc_ring_at(r, i));
    }
    r->head = r->n = 0;
    r->bytes = 0;
    r->floor_rev = rev;
    r->floor_seq = seq;
}

void wc_ring_free(wc_ring *r)
{
    wc_ring_reset(r, 0, 0);
    free(r->v);
    r->v = NULL;
}

static void evict_oldest(wc_ring *r)
{
    wc_event *old = r->v[r->head];
    r->v[r->head] = NULL;
    r->head = (r->head + 1) % r->cap;
    r->n--;
    r->bytes -= old->bytes;
    wc_event_leave_ring(old);
    r->floor_rev = old->rev;
    r->floor_seq = old->seq;
    wc_event_unref(old);
}

void wc_ring_push(wc_ring *r, wc_event *ev)
{
    if (r->n == r->cap)
        evict_oldest(r);
    while (r->n > 0 && wc_ring_bytes(r) + ev->bytes > r->max_bytes)
        evict_oldest(r);
    r->v[(r->head + r->n) % r->cap] = ev;
    r->n++;
    r->bytes += ev->bytes;
    wc_event_enter_ring(ev, &r->enc_bytes);
}

size_t wc_ring_prepend(wc_ring *r, wc_event **evs, size_t n, int64_t from)
{
    size_t k = 0, bytes = wc_ring_bytes(r);
    while (k < n && r->n + k < r->cap && bytes + evs[n - 1 - k]->bytes <= r->max_bytes &&
           (uint64_t)k < r->floor_seq)
        bytes += evs[n - 1 - k++]->bytes;
    /* Whole revisions: the oldest one taken goes too when an older event of it does not fit. */
    while (k > 0 && k < n && evs[n - k]->rev == evs[n - k - 1]->rev)
        k--;
    for (size_t i = 0; i < k; i++) {
        wc_event *ev = evs[n - k + i];
        ev->seq = r->floor_seq - k + 1 + i;
        r->bytes += ev->bytes;
        wc_event_enter_ring(ev, &r->enc_bytes);
        r->v[(r->head + r->cap - k + i) % r->cap] = ev;
    }
    r->head = (r->head + r->cap - k) % r->cap;
    r->n += k;
    r->floor_seq -= k;
    r->floor_rev = k < n ? evs[n - k - 1]->rev : from;
    return k;
}

size_t wc_ring_after_rev(const wc_ring *r, int64_t rev)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (wc_ring_at(r, mid)->rev <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t wc_ring_after_seq(const wc_ring *r, uint64_t seq)
{
    if (r->n == 0 || seq < r->floor_seq)
        return 0;
    /* Sequence numbers in the ring are consecutive. */
    uint64_t first = wc_ring_at(r, 0)->seq;
    if (seq < first)
        return 0;
    uint64_t idx = seq - first + 1;
    return idx > r->n ? r->n : (size_t)idx;
}
