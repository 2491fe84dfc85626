/*
 * Truthful revisions: the events a relist makes carry each key's own mod_revision, in revision
 * order, a deletion a revision of its own; and a stream the server ends never ends between two
 * events of one revision (an etcd transaction), so a reader that resumes from the last
 * resourceVersion it saw misses nothing and repeats nothing.
 */
#include "helpers.h"

/* A cacher on the fake clock with a small input queue. */
static wc_cacher *small_queue_cacher(size_t input_cap)
{
    wc_cacher_opts o;
    wc_cacher_opts_default(&o);
    o.ring_events = 1000;
    o.input_cap = input_cap;
    o.slow_budget_ms = 100;
    o.bookmark_ms = 1000;
    o.now_ms = fake_clock;
    wc_cacher *c = wc_cacher_new(&o);
    cr_assert_not_null(c);
    return c;
}

/* Replaces the cache with the states (key, value, mod_rev) listed at `rev`. */
typedef struct st {
    const char *key, *value;
    int64_t rev;
} st;

static int relist(wc_cacher *c, const st *sts, size_t n, int64_t rev)
{
    wc_kv *kvs[32];
    cr_assert_leq(n, 32);
    for (size_t i = 0; i < n; i++)
        kvs[i] = kv_of(sts[i].key, sts[i].value, sts[i].rev);
    int rc = wc_cacher_replace(c, kvs, n, rev, false);
    for (size_t i = 0; i < n; i++)
        wc_kv_unref(kvs[i]);
    return rc;
}

/* modRevision of event i's object (the /keys family). */
static long long ev_mod_rev(const seen *s, size_t i)
{
    json_t *o = json_object_get(s->ev[i], "object");
    return (long long)json_integer_value(json_object_get(o, "modRevision"));
}

/* Every event of s is at a revision greater than the one before it. */
static void expect_strictly_increasing(const seen *s)
{
    for (size_t i = 1; i < s->n; i++)
        cr_assert_gt(ev_rv(s, i), ev_rv(s, i - 1), "event %zu at %lld after %lld", i, ev_rv(s, i),
                     ev_rv(s, i - 1));
}

Test(revisions, relist_events_carry_each_keys_own_revision_in_revision_order)
{
    wc_cacher *c = new_cacher(100, NULL);
    st first[] = {{"/a", "1", 2}, {"/b", "1", 3}, {"/c", "1", 4}, {"/e", "1", 5}};
    cr_assert_eq(relist(c, first, 4, 6), 0);
    wc_watcher *w = watch(c, watch_opts("/", 6));
    /* While the cache was cut off: /b changed at 15, /d was added at 9, /c and /e deleted,
     * /a untouched; the list is at 20. */
    st second[] = {{"/a", "1", 2}, {"/b", "2", 15}, {"/d", "1", 9}};
    cr_assert_eq(relist(c, second, 3, 20), 0);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 4);
    expect_event(&s, 0, "ADDED", "/d", 9);
    expect_event(&s, 1, "MODIFIED", "/b", 15);
    /* The deletions take the newest free revisions of (6, 20], in key order. */
    expect_event(&s, 2, "DELETED", "/c", 19);
    expect_event(&s, 3, "DELETED", "/e", 20);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(ev_mod_rev(&s, i), ev_rv(&s, i), "event %zu", i);
    expect_strictly_increasing(&s);
    cr_assert_eq(wc_cacher_rev(c), 20);

    /* A list right after says the same revisions for the same states. */
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), 0);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(wc_kv_mod_rev(l.items[0]), 2);
    cr_assert_eq(wc_kv_mod_rev(l.items[1]), 15);
    cr_assert_eq(wc_kv_mod_rev(l.items[2]), 9);
    wc_list_release(&l);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, deletions_skip_the_revisions_the_puts_use)
{
    wc_cacher *c = new_cacher(100, NULL);
    st first[] = {{"/a", "1", 2}, {"/b", "1", 3}, {"/c", "1", 4}, {"/x", "1", 5}, {"/y", "1", 5}};
    cr_assert_eq(relist(c, first, 5, 10), 0);
    wc_watcher *w = watch(c, watch_opts("/", 10));
    /* Puts at 12 and 15 leave 11, 13 and 14 free for three deletions. */
    st second[] = {{"/x", "2", 12}, {"/y", "2", 15}};
    cr_assert_eq(relist(c, second, 2, 15), 0);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 5);
    expect_event(&s, 0, "DELETED", "/a", 11);
    expect_event(&s, 1, "MODIFIED", "/x", 12);
    expect_event(&s, 2, "DELETED", "/b", 13);
    expect_event(&s, 3, "DELETED", "/c", 14);
    expect_event(&s, 4, "MODIFIED", "/y", 15);
    expect_strictly_increasing(&s);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, a_gap_with_no_free_revision_left_shares_the_lists_revision)
{
    wc_cacher *c = new_cacher(100, NULL);
    st first[] = {{"/a", "1", 2}, {"/b", "1", 3}, {"/x", "1", 4}, {"/y", "1", 4}};
    cr_assert_eq(relist(c, first, 4, 10), 0);
    wc_watcher *w = watch(c, watch_opts("/", 10));
    /* 11 and 12 are both taken by puts (etcd deleted /a and /b in those transactions). */
    st second[] = {{"/x", "2", 11}, {"/y", "2", 12}};
    cr_assert_eq(relist(c, second, 2, 12), 0);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 4);
    expect_event(&s, 0, "MODIFIED", "/x", 11);
    expect_event(&s, 1, "DELETED", "/a", 12);
    expect_event(&s, 2, "DELETED", "/b", 12);
    expect_event(&s, 3, "MODIFIED", "/y", 12);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, resuming_from_any_event_of_a_relist_gets_exactly_the_rest)
{
    wc_cacher *c = new_cacher(100, NULL);
    st first[] = {{"/a", "1", 2}, {"/b", "1", 3}, {"/c", "1", 4}, {"/d", "1", 5}, {"/e", "1", 6}};
    cr_assert_eq(relist(c, first, 5, 8), 0);
    wc_watcher *w = watch(c, watch_opts("/", 8));
    st second[] = {{"/a", "2", 20}, {"/c", "2", 11}, {"/e", "2", 17}, {"/f", "1", 12}};
    cr_assert_eq(relist(c, second, 4, 22), 0);
    seen all = {0};
    read_all(w, &all, 8192);
    cr_assert_eq(all.n, 6); /* 3 changed, 1 added, /b and /d deleted */
    expect_strictly_increasing(&all);
    for (size_t i = 0; i < all.n; i++) {
        wc_watcher *r = watch(c, watch_opts("/", ev_rv(&all, i)));
        seen rest = {0};
        read_all(r, &rest, 8192);
        cr_assert_eq(rest.n, all.n - i - 1, "resumed from event %zu", i);
        for (size_t k = 0; k < rest.n; k++)
            expect_event(&rest, k, ev_type(&all, i + 1 + k), ev_key(&all, i + 1 + k),
                         ev_rv(&all, i + 1 + k));
        seen_free(&rest);
        wc_watcher_free(r);
    }
    seen_free(&all);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, a_list_that_cannot_follow_the_history_resets_it)
{
    wc_cacher *c = new_cacher(100, NULL);
    st first[] = {{"/a", "1", 2}, {"/b", "1", 3}};
    cr_assert_eq(relist(c, first, 2, 10), 0);
    wc_watcher *w = watch(c, watch_opts("/", 10));
    /* /b has another value at a revision the cache already holds: not the same history. */
    st second[] = {{"/a", "1", 2}, {"/b", "2", 7}};
    cr_assert_eq(relist(c, second, 2, 12), 0);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 0, "no event of another history");
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_RESET);
    wc_cacher_stats stats;
    wc_cacher_stats_get(c, &stats);
    cr_assert_eq(stats.resets, 1);
    cr_assert_eq(wc_cacher_floor(c), 12);
    wc_kv *kv = NULL;
    cr_assert_eq(wc_cacher_get(c, "/b", 2, &kv, NULL), 0);
    cr_assert_eq(wc_kv_mod_rev(kv), 7);
    wc_kv_unref(kv);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

/* Publishes a transaction putting `n` keys /t/<rev>-<i> at `rev`. */
static void txn_at(wc_cacher *c, int64_t rev, size_t n)
{
    char names[8][48];
    const char *keys[8], *vals[8];
    cr_assert_leq(n, 8);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "/t/%lld-%zu", (long long)rev, i);
        keys[i] = names[i];
        vals[i] = "v";
    }
    cr_assert_eq(txn(c, rev, keys, vals, n), 0);
}

/* Reads `bytes` bytes (or what there is) from w into s. */
static void read_some(wc_watcher *w, seen *s, size_t bytes)
{
    char buf[8192];
    size_t n = 0;
    cr_assert_leq(bytes, sizeof(buf));
    cr_assert_eq(wc_watcher_read(w, buf, bytes, &n), 0);
    memcpy(s->partial + s->plen, buf, n);
    s->plen += n;
}

/* Ends w for lagging: txns of 3 until its queue overflows, then past the budget. */
static void make_it_lag(wc_cacher *c, int64_t *rev)
{
    for (int i = 0; i < 4; i++)
        txn_at(c, ++*rev, 3);
    atomic_fetch_add(&fake_now, 1000);
    wc_cacher_tick(c);
}

/* Every revision in s has all `per` events of its transaction. */
static void expect_whole_revisions(const seen *s, size_t per)
{
    cr_assert_eq(s->n % per, 0, "%zu events: a transaction was cut", s->n);
    for (size_t i = 0; i < s->n; i++)
        cr_assert_eq(ev_rv(s, i), ev_rv(s, i - i % per), "event %zu", i);
}

Test(revisions, a_lagging_end_finishes_the_transaction_begun_on_the_wire)
{
    wc_cacher *c = small_queue_cacher(4);
    make_ready(c, 10);
    int64_t rev = 10;
    wc_watcher *w = watch(c, watch_opts("/t/", 10));
    txn_at(c, ++rev, 3);
    /* The reader has begun the first event of revision 11, no more. */
    seen s = {0};
    read_some(w, &s, 20);
    make_it_lag(c, &rev);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_SLOW);
    cr_assert_eq(s.n, 3, "the rest of revision 11 and nothing after it: %zu events", s.n);
    expect_whole_revisions(&s, 3);
    cr_assert_eq(wc_watcher_rv(w), 11);
    /* The reader resumes from what it saw and gets every later transaction whole. */
    wc_watcher *r = watch(c, watch_opts("/t/", ev_rv(&s, s.n - 1)));
    seen rest = {0};
    read_all(r, &rest, 8192);
    cr_assert_eq(rest.n, 12);
    cr_assert_eq(ev_rv(&rest, 0), 12);
    expect_whole_revisions(&rest, 3);
    seen_free(&rest);
    wc_watcher_free(r);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, a_lagging_end_between_revisions_sends_nothing_more)
{
    wc_cacher *c = small_queue_cacher(4);
    make_ready(c, 10);
    int64_t rev = 10;
    wc_watcher *w = watch(c, watch_opts("/t/", 10));
    txn_at(c, ++rev, 3);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 3);
    make_it_lag(c, &rev);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(s.n, 3, "nothing after the end: %zu events", s.n);
    cr_assert_eq(wc_watcher_rv(w), 11);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, a_timeout_ends_after_everything_queued_and_between_revisions)
{
    wc_cacher *c = small_queue_cacher(4);
    make_ready(c, 10);
    int64_t rev = 10;
    wc_watch_opts o = watch_opts("/t/", 10);
    o.deadline_ms = atomic_load(&fake_now) + 500;
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192); /* caught up: live */
    /* The queue holds four events: the second transaction goes in whole, past the bound, and
     * the third finds it full: the watcher is behind, at a revision boundary. */
    for (int i = 0; i < 3; i++)
        txn_at(c, ++rev, 3);
    atomic_fetch_add(&fake_now, 600);
    wc_cacher_tick(c);
    read_all(w, &s, 7);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_TIMEOUT);
    cr_assert_eq(s.n, 6, "two whole transactions: %zu events", s.n);
    expect_whole_revisions(&s, 3);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, catch_up_takes_a_transaction_larger_than_a_batch_whole)
{
    wc_cacher *c = small_queue_cacher(4);
    make_ready(c, 10);
    wc_watch_opts o = watch_opts("/t/", 10);
    o.deadline_ms = atomic_load(&fake_now) + 500;
    wc_watcher *w = watch(c, o);
    /* 70 keys at revision 11, then 2 at 12: more than one batch (64) of the ring at once. */
    wc_change ch[72];
    char names[72][16];
    for (int i = 0; i < 72; i++) {
        snprintf(names[i], sizeof(names[i]), "/t/%02d", i);
        ch[i] = (wc_change){.kv = spec_of(names[i], "v", i < 70 ? 11 : 12)};
    }
    cr_assert_eq(wc_cacher_apply(c, ch, 72), 0);
    /* The reader takes one frame, then the watcher is ended by its deadline. */
    seen s = {0};
    read_some(w, &s, 30);
    atomic_fetch_add(&fake_now, 600);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    size_t at11 = 0;
    for (size_t i = 0; i < s.n; i++)
        at11 += ev_rv(&s, i) == 11;
    cr_assert_eq(at11, 70, "revision 11 whole: %zu of 70", at11);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(revisions, a_bookmark_follows_every_event_of_its_revision)
{
    wc_cacher *c = small_queue_cacher(10);
    make_ready(c, 10);
    wc_watch_opts o = watch_opts("/t/", 10);
    o.allow_bookmarks = true;
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192); /* arms the wake: the watcher is live */
    txn_at(c, 11, 3);
    atomic_fetch_add(&fake_now, 2000);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 4);
    for (size_t i = 0; i < 3; i++)
        expect_event(&s, i, "ADDED", NULL, 11);
    cr_assert_str_eq(ev_type(&s, 3), "BOOKMARK");
    cr_assert_eq(ev_rv(&s, 3), 11);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}
