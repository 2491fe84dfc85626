/* The bounded event ring. */
#include "helpers.h"
#include "ring.h"

static uint64_t seq;

/* A MODIFIED event at rev whose previous state has a value of value_len bytes: the ring counts
 * that state, which only the event keeps alive. */
static wc_event *ev_at(int64_t rev, size_t value_len)
{
    char *v = calloc(1, value_len + 1);
    memset(v, 'x', value_len);
    wc_kv_spec s = spec_of("/k", v, rev - 1), n = spec_of("/k", "new", rev);
    wc_kv *prev = wc_kv_new(&s, NULL), *kv = wc_kv_new(&n, NULL);
    free(v);
    wc_event *ev = wc_event_new(WC_EV_MODIFIED, rev, kv, prev);
    wc_kv_unref(kv);
    wc_kv_unref(prev);
    ev->seq = ++seq;
    return ev;
}

Test(ring, wraps_around_keeping_the_newest)
{
    wc_ring r;
    seq = 0;
    cr_assert_eq(wc_ring_init(&r, 4, 1 << 20, 10, 0), 0);
    for (int64_t rev = 11; rev <= 20; rev++)
        wc_ring_push(&r, ev_at(rev, 1));
    cr_assert_eq(r.n, 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(wc_ring_at(&r, i)->rev, 17 + (int64_t)i);
    cr_assert_eq(r.floor_rev, 16);
    cr_assert_eq(r.floor_seq, 6);
    wc_ring_free(&r);
}

Test(ring, byte_bound_evicts_oldest_but_keeps_newest)
{
    wc_ring r;
    seq = 0;
    wc_event *probe = ev_at(1, 1000);
    size_t one = probe->bytes;
    wc_event_unref(probe);
    cr_assert_eq(wc_ring_init(&r, 100, one * 3, 0, 0), 0);
    for (int64_t rev = 1; rev <= 10; rev++)
        wc_ring_push(&r, ev_at(rev, 1000));
    cr_assert_eq(r.n, 3);
    cr_assert_leq(r.bytes, one * 3);
    cr_assert_eq(wc_ring_at(&r, 0)->rev, 8);
    /* One event bigger than the whole bound still stays, alone. */
    wc_ring_push(&r, ev_at(11, 10000));
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.floor_rev, 10);
    wc_ring_free(&r);
}

Test(ring, after_rev_at_below_and_above_the_oldest)
{
    wc_ring r;
    seq = 0;
    wc_ring_init(&r, 8, 1 << 20, 100, 0);
    int64_t revs[] = {102, 105, 105, 109};
    for (size_t i = 0; i < 4; i++)
        wc_ring_push(&r, ev_at(revs[i], 1));
    cr_assert_eq(wc_ring_after_rev(&r, 100), 0);
    cr_assert_eq(wc_ring_after_rev(&r, 101), 0);
    cr_assert_eq(wc_ring_after_rev(&r, 102), 1);
    cr_assert_eq(wc_ring_after_rev(&r, 104), 1);
    cr_assert_eq(wc_ring_after_rev(&r, 105), 3); /* both events of the txn at 105 */
    cr_assert_eq(wc_ring_after_rev(&r, 109), 4);
    cr_assert_eq(wc_ring_after_rev(&r, 500), 4);
    wc_ring_free(&r);
}

Test(ring, after_seq_positions)
{
    wc_ring r;
    seq = 0;
    wc_ring_init(&r, 3, 1 << 20, 0, 0);
    for (int64_t rev = 1; rev <= 5; rev++)
        wc_ring_push(&r, ev_at(rev, 1));
    /* held: seq 3,4,5; floor_seq 2 */
    cr_assert_eq(r.floor_seq, 2);
    cr_assert_eq(wc_ring_after_seq(&r, 2), 0);
    cr_assert_eq(wc_ring_after_seq(&r, 3), 1);
    cr_assert_eq(wc_ring_after_seq(&r, 5), 3);
    wc_ring_reset(&r, 50, 5);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.floor_rev, 50);
    cr_assert_eq(wc_ring_after_seq(&r, 5), 0);
    wc_ring_free(&r);
}

Test(ring, an_event_counts_what_it_holds_and_its_encodings_as_they_are_made)
{
    wc_ring r;
    seq = 0;
    cr_assert_eq(wc_ring_init(&r, 100, 1 << 20, 0, 0), 0);
    wc_kv_spec made = spec_of("/k", "v", 1);
    wc_kv *kv = wc_kv_new(&made, NULL);
    wc_event *ev = wc_event_new(WC_EV_ADDED, 1, kv, NULL);
    wc_kv_unref(kv);
    /* A state it made is the store's: only the event itself counts. */
    cr_assert_leq(ev->bytes, sizeof(*ev) + 32);
    wc_event_unref(ev);
    /* A state it replaced is kept alive by the event alone: it counts, with malloc's overhead. */
    ev = ev_at(2, 1000);
    cr_assert_geq(ev->bytes, sizeof(*ev) + sizeof(*ev->kv) + 2 + 1000 + 2);
    cr_assert_leq(ev->bytes, sizeof(*ev) + sizeof(*ev->kv) + 2 + 1000 + 2 + 64);
    wc_ring_push(&r, ev);
    size_t before = wc_ring_bytes(&r);
    cr_assert_eq(before, ev->bytes);
    /* A watcher of /keys makes the event's encoding once: the ring counts it. */
    size_t len = 0;
    cr_assert_not_null(wc_event_keys(ev, false, &len));
    cr_assert_geq(wc_ring_bytes(&r), before + len);
    cr_assert_not_null(wc_event_keys(ev, false, &len));
    size_t after = wc_ring_bytes(&r);
    cr_assert_leq(after, before + len + 64, "made once, counted once");
    /* Leaving the ring takes the event's whole count away. */
    wc_event *keep = wc_event_ref(ev);
    wc_ring_reset(&r, 1, 1);
    cr_assert_eq(wc_ring_bytes(&r), 0);
    size_t l2 = 0;
    cr_assert_not_null(wc_event_keys(keep, false, &l2), "still served after the ring let go");
    cr_assert_eq(l2, len);
    const char *del = wc_event_keys(keep, true, &l2);
    cr_assert_not_null(strstr(del, "\"modRevision\":2"), "the replaced state at the event's: %s",
                       del);
    wc_event_unref(keep);
    wc_ring_free(&r);
}

Test(ring, the_byte_bound_includes_the_encodings)
{
    wc_ring r;
    seq = 0;
    wc_event *probe = ev_at(1, 1000);
    size_t one = probe->bytes;
    wc_event_unref(probe);
    cr_assert_eq(wc_ring_init(&r, 100, one * 4, 0, 0), 0);
    for (int64_t rev = 1; rev <= 4; rev++)
        wc_ring_push(&r, ev_at(rev, 1000));
    cr_assert_eq(r.n, 4);
    size_t len;
    for (size_t i = 0; i < r.n; i++)
        wc_event_keys(wc_ring_at(&r, i), false, &len);
    /* Four events with their encodings no longer fit: the next push evicts more than one. */
    wc_ring_push(&r, ev_at(5, 1000));
    cr_assert_lt(r.n, 4);
    cr_assert_leq(wc_ring_bytes(&r), one * 4);
    wc_ring_free(&r);
}

/* History put before the oldest event: it takes the sequence numbers just below the floor's,
 * wraps around the array like the rest, keeps whole revisions within the bounds, and lowers
 * the floor to what it holds; later pushes evict it first. */
Test(ring, history_goes_before_the_oldest_in_whole_revisions)
{
    wc_ring r;
    seq = 1000;
    cr_assert_eq(wc_ring_init(&r, 6, 1 << 20, 20, 1000), 0);
    wc_ring_push(&r, ev_at(21, 1));
    wc_ring_push(&r, ev_at(22, 1));
    /* the history of (10, 20]: revisions 12, 15, 15, 17, 20, 20 */
    int64_t revs[] = {12, 15, 15, 17, 20, 20};
    wc_event *h[6];
    for (size_t i = 0; i < 6; i++)
        h[i] = ev_at(revs[i], 1);
    /* room for 4: 20, 20, 17 and one of 15's two, which does not go in alone */
    size_t took = wc_ring_prepend(&r, h, 6, 10);
    cr_assert_eq(took, 3);
    cr_assert_eq(r.n, 5);
    cr_assert_eq(r.floor_rev, 15, "every change after 15 is held");
    cr_assert_eq(r.floor_seq, 997);
    int64_t want[] = {17, 20, 20, 21, 22};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(wc_ring_at(&r, i)->rev, want[i], "event %zu", i);
        cr_assert_eq(wc_ring_at(&r, i)->seq, 998 + i, "event %zu", i);
    }
    cr_assert_eq(wc_ring_after_seq(&r, 997), 0);
    cr_assert_eq(wc_ring_after_seq(&r, 1000), 3);
    cr_assert_eq(wc_ring_after_rev(&r, 20), 3);
    for (size_t i = 0; i < 3; i++)
        wc_event_unref(h[i]); /* the three that did not go in */
    /* the next pushes evict the history first */
    seq = 1002;
    wc_ring_push(&r, ev_at(23, 1));
    wc_ring_push(&r, ev_at(24, 1));
    cr_assert_eq(r.n, 6);
    cr_assert_eq(wc_ring_at(&r, 0)->rev, 20);
    cr_assert_eq(r.floor_rev, 17);
    cr_assert_eq(r.floor_seq, 998);
    wc_ring_free(&r);

    /* all of it, when it fits: the floor is where the history starts */
    seq = 1000;
    cr_assert_eq(wc_ring_init(&r, 16, 1 << 20, 20, 1000), 0);
    for (size_t i = 0; i < 6; i++)
        h[i] = ev_at(revs[i], 1);
    cr_assert_eq(wc_ring_prepend(&r, h, 6, 10), 6);
    cr_assert_eq(r.floor_rev, 10);
    cr_assert_eq(r.floor_seq, 994);
    cr_assert_eq(wc_ring_at(&r, 0)->rev, 12);
    wc_ring_free(&r);
}
