/* The bounded event ring. */
#include "helpers.h"
#include "ring.h"

static uint64_t seq;

static wc_event *ev_at(int64_t rev, size_t value_len)
{
    char *v = calloc(1, value_len + 1);
    memset(v, 'x', value_len);
    wc_kv_spec s = spec_of("/k", v, rev);
    wc_kv *kv = wc_kv_new(&s, NULL);
    free(v);
    wc_event *ev = wc_event_new(WC_EV_MODIFIED, rev, kv, NULL);
    wc_kv_unref(kv);
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
