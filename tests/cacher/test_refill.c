/*
 * A start's refill on the cacher's side: a list at etcd's current revision H loads the cache and
 * serves readers at once, and the history of (R0, H] follows later (wc_cacher_backfill), put
 * before the ring's oldest event. Meanwhile a watch from a revision of that window waits for it
 * rather than being refused; once it is in, every revision at or after the floor gets exactly
 * the changes after it, deletions with the object they deleted. A history that does not come,
 * or comes wrong, ends the waiters, whose resume is then refused with 410 as before.
 */
#include "helpers.h"
#include "state.h"

typedef struct st {
    const char *key, *value;
    int64_t rev;
} st;

/* Loads the states (key, value, mod_rev) listed at `at`, the history of (from, at] to come. */
static int load(wc_cacher *c, const st *sts, size_t n, int64_t at, int64_t from, bool force)
{
    wc_kv_spec specs[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++)
        specs[i] = spec_of(sts[i].key, sts[i].value, sts[i].rev);
    return wc_cacher_refill_specs(c, specs, n, at, from, force);
}

/* A watch from rv: 0 and *w, or the error (and the floor it reported). */
static int try_watch(wc_cacher *c, int64_t rv, wc_watcher **w, int64_t *floor)
{
    wc_watch_opts o = watch_opts("/", rv);
    return wc_cacher_watch(c, &o, w, floor);
}

static atomic_int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakes, 1);
}

/* The history of the window (10, 16] of the keys listed at 16: what etcd's watch with prev_kv
 * sends. Before it (at 10): /a = a1 (5), /b = b1 (10). */
static wc_kv_spec a1, b1, h_a2, h_c1, h_b_del, h_a3, h_c2;
static wc_change hist[5];
static void history(void)
{
    a1 = spec_of("/a", "a1", 5);
    b1 = spec_of("/b", "b1", 10);
    h_a2 = spec_of("/a", "a2", 11);
    h_a2.create_rev = 5;
    h_c1 = spec_of("/c", "c1", 12);
    h_b_del = (wc_kv_spec){.key = "/b", .key_len = 2, .mod_rev = 14};
    h_a3 = spec_of("/a", "a3", 16); /* as listed (AT16): the same state */
    h_c2 = spec_of("/c", "c2", 16);
    hist[0] = (wc_change){.kv = h_a2, .prev = &a1};
    hist[1] = (wc_change){.kv = h_c1};
    hist[2] = (wc_change){.kv = h_b_del, .deleted = true, .prev = &b1};
    hist[3] = (wc_change){.kv = h_a3, .prev = &h_a2};
    hist[4] = (wc_change){.kv = h_c2, .prev = &h_c1};
}
static const st AT16[] = {{"/a", "a3", 16}, {"/c", "c2", 16}};

static const struct {
    const char *type, *key, *value;
    long long rv;
} WANT[] = {{"MODIFIED", "/a", "a2", 11}, {"ADDED", "/c", "c1", 12},    {"DELETED", "/b", "b1", 14},
            {"MODIFIED", "/a", "a3", 16}, {"MODIFIED", "/c", "c2", 16}, {"ADDED", "/d", "d1", 17}};

/* Event i of s is WANT[k], the object's value included (a deletion's is what it deleted). */
static void expect_want(const seen *s, size_t i, size_t k)
{
    expect_event(s, i, WANT[k].type, WANT[k].key, WANT[k].rv);
    json_t *v = json_object_get(json_object_get(s->ev[i], "object"), "value");
    cr_assert_str_eq(json_string_value(v), WANT[k].value, "event %zu", i);
}

Test(refill, readers_are_served_at_once_and_a_watch_inside_the_window_waits_for_the_history)
{
    history();
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
    cr_assert(wc_cacher_ready(c), "served from the list's revision on");
    wc_cacher_stats cs;
    wc_cacher_stats_get(c, &cs);
    cr_assert(cs.backfilling);
    cr_assert_eq(cs.floor, 16);
    wc_kv *kv = NULL;
    cr_assert_eq(wc_cacher_get(c, "/a", 2, &kv, NULL), 0);
    wc_kv_unref(kv);
    /* from H: served as ever */
    wc_watcher *live = NULL, *w = NULL, *early = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 16, &live, &floor), 0);
    /* from inside the window: it waits, its reader armed for a wake */
    wc_watch_opts o = watch_opts("/", 12);
    o.wake = count_wake;
    o.allow_bookmarks = true;
    cr_assert_eq(wc_cacher_watch(c, &o, &w, &floor), 0);
    /* from before it: 410, naming the floor it has now */
    cr_assert_eq(try_watch(c, 9, &early, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 16);
    /* a read at a revision of the window waits too; before it, 410 */
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    cr_assert_eq(wc_cacher_list(c, &f, 12, NULL, 0, 0, &l), WC_ENOTREADY);
    cr_assert_eq(wc_cacher_list(c, &f, 9, NULL, 0, 0, &l), WC_EEXPIRED);
    seen s = {0};
    read_all(w, &s, 4096);
    cr_assert_eq(s.n, 0, "nothing before the history");
    cr_assert_not(s.eof);
    /* a live change meanwhile reaches the watch from H, and not the waiting one */
    cr_assert_eq(put(c, "/d", "d1", 17), 0);
    atomic_store(&fake_now, atomic_load(&fake_now) + 60000);
    wc_cacher_tick(c); /* no bookmark either: it would claim revisions it has not had */
    read_all(w, &s, 4096);
    cr_assert_eq(s.n, 0, "nothing before the history");
    seen sl = {0};
    read_all(live, &sl, 4096);
    cr_assert_eq(sl.n, 1);
    expect_want(&sl, 0, 5);
    seen_free(&sl);
    int woken = atomic_load(&wakes);
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), 0);
    cr_assert_gt(atomic_load(&wakes), woken, "the waiting reader is woken");
    wc_cacher_stats_get(c, &cs);
    cr_assert_not(cs.backfilling);
    cr_assert_eq(cs.floor, 10, "the ring reaches back to R0");
    cr_assert_eq(cs.backfilled, 5);
    cr_assert_eq(cs.ring_events, 6);
    /* a key's newest state in the history is the store's own, not a second copy */
    cr_assert_eq(wc_ring_at(&c->ring, 3)->kv, wc_store_get(&c->store, "/a", 2));
    cr_assert_eq(wc_ring_at(&c->ring, 4)->kv, wc_store_get(&c->store, "/c", 2));
    cr_assert_eq(wc_ring_at(&c->ring, 0)->kv, wc_ring_at(&c->ring, 3)->prev, "nor of a2");
    read_all(w, &s, 4096);
    cr_assert_eq(s.n, 4, "the changes after 12: %zu", s.n);
    for (size_t i = 0; i < 4; i++)
        expect_want(&s, i, i + 2);
    seen_free(&s);
    wc_watcher_free(w);
    wc_watcher_free(live);
    wc_cacher_free(c);
}

/* Once it is in, a watch from every revision of the window gets exactly the changes after it,
 * and a list at one of them is the state etcd had then. */
Test(refill, a_watch_from_every_revision_of_the_window_gets_exactly_the_changes_after_it)
{
    history();
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
    cr_assert_eq(put(c, "/d", "d1", 17), 0);
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), 0);
    for (int64_t from = 10; from <= 17; from++) {
        wc_watcher *w = NULL;
        int64_t floor = -1;
        cr_assert_eq(try_watch(c, from, &w, &floor), 0, "watch from %lld", (long long)from);
        seen s = {0};
        read_all(w, &s, 4096);
        size_t k = 0;
        for (size_t i = 0; i < sizeof(WANT) / sizeof(WANT[0]); i++)
            if (WANT[i].rv > from)
                expect_want(&s, k++, i);
        cr_assert_eq(s.n, k, "watch from %lld: %zu events, want %zu", (long long)from, s.n, k);
        seen_free(&s);
        wc_watcher_free(w);
    }
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 9, &w, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 10);
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    int64_t revs[][3] = {{10, 5, 10}, {12, 11, 10}, {14, 11, 12}};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(wc_cacher_list(c, &f, revs[i][0], NULL, 0, 0, &l), 0);
        cr_assert_eq(l.n,
                     revs[i][0] < 12   ? 2
                     : revs[i][0] < 14 ? 3
                                       : 2,
                     "at %lld", (long long)revs[i][0]);
        cr_assert_eq(wc_kv_mod_rev(l.items[0]), revs[i][1], "/a as of %lld", (long long)revs[i][0]);
        cr_assert_eq(wc_kv_mod_rev(l.items[1]), revs[i][2], "/b or /c as of %lld",
                     (long long)revs[i][0]);
        wc_list_release(&l);
    }
    wc_cacher_free(c);
}

/* A ring with room for less than the history keeps its newest whole revisions: the floor goes
 * down only as far as they reach, and a watcher that waited from older than that ends. */
Test(refill, a_ring_too_small_for_the_history_keeps_its_newest_whole_revisions)
{
    history();
    wc_cacher *c = new_cacher(4, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
    cr_assert_eq(put(c, "/d", "d1", 17), 0);
    wc_watcher *old = NULL, *young = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 11, &old, &floor), 0);
    cr_assert_eq(try_watch(c, 14, &young, &floor), 0);
    /* room for 3 of 5: revision 16 (two) and 14 (one) */
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), 0);
    cr_assert_eq(wc_cacher_floor(c), 12);
    cr_assert(wc_watcher_ended(old));
    cr_assert_eq(wc_watcher_end_reason(old), WC_END_EXPIRED);
    seen s = {0};
    read_all(young, &s, 4096);
    cr_assert_eq(s.n, 3);
    for (size_t i = 0; i < 3; i++)
        expect_want(&s, i, i + 3);
    seen_free(&s);
    cr_assert_eq(try_watch(c, 11, &old, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 12);
    /* a ring of 2 after one live event: one left, and 16 does not fit whole */
    wc_cacher *d = new_cacher(2, NULL);
    cr_assert_eq(load(d, AT16, 2, 16, 10, false), 0);
    cr_assert_eq(put(d, "/d", "d1", 17), 0);
    cr_assert_eq(wc_cacher_backfill(d, 10, 16, hist, 5), 0);
    cr_assert_eq(wc_cacher_floor(d), 16, "no room for a whole revision");
    wc_cacher_free(d);
    wc_watcher_free(old);
    wc_watcher_free(young);
    wc_cacher_free(c);
}

/* The upstream lost the history (a compaction under it, a broken stream): the waiters end and
 * their resume is refused, as without a refill. */
Test(refill, an_abandoned_history_ends_the_waiters_and_refuses_its_revisions_again)
{
    history();
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 12, &w, &floor), 0);
    wc_cacher_backfill_abandon(c);
    cr_assert(wc_watcher_ended(w));
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_EXPIRED);
    seen s = {0};
    read_all(w, &s, 4096);
    cr_assert(s.eof);
    cr_assert_eq(s.n, 0);
    wc_watcher_free(w);
    cr_assert_eq(try_watch(c, 12, &w, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 16);
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    cr_assert_eq(wc_cacher_list(c, &f, 12, NULL, 0, 0, &l), WC_EEXPIRED);
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), WC_ESTALE, "too late");
    cr_assert_eq(wc_cacher_floor(c), 16);
    wc_cacher_free(c);
}

/* What does not fit the window announced, or cannot be told truthfully, is refused, and the
 * waiters hear of it. */
Test(refill, a_history_that_cannot_be_told_is_refused)
{
    history();
    struct {
        int64_t from;
        size_t at;   /* the change moved to revision `rev`, or 99 */
        int64_t rev; /* ... or, with rev 0, left without its previous state */
        int rc;
    } cases[] = {
        {10, 4, 17, WC_EINVAL}, /* a change past the window's end */
        {10, 0, 10, WC_EINVAL}, /* ... at its start */
        {10, 3, 13, WC_EINVAL}, /* out of order */
        {10, 2, 0, WC_EPROTO},  /* a deletion without what it deleted */
        {10, 0, 0, WC_EPROTO},  /* a change of a key made before it, without what it replaced */
        {9, 99, 0, WC_ESTALE},  /* not the window announced: the wait goes on */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        wc_cacher *c = new_cacher(100, NULL);
        cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
        wc_watcher *w = NULL;
        int64_t floor = -1;
        cr_assert_eq(try_watch(c, 12, &w, &floor), 0);
        wc_change h[5];
        memcpy(h, hist, sizeof(h));
        if (cases[i].at < 5 && cases[i].rev)
            h[cases[i].at].kv.mod_rev = cases[i].rev;
        else if (cases[i].at < 5)
            h[cases[i].at].prev = NULL;
        cr_assert_eq(wc_cacher_backfill(c, cases[i].from, 16, h, 5), cases[i].rc, "case %zu", i);
        bool announced = cases[i].rc != WC_ESTALE;
        cr_assert_eq(wc_watcher_ended(w), announced, "case %zu", i);
        cr_assert_eq(wc_cacher_floor(c), 16, "case %zu", i);
        wc_cacher_stats cs;
        wc_cacher_stats_get(c, &cs);
        cr_assert_eq(cs.ring_events, 0, "case %zu", i);
        cr_assert_eq(cs.backfilling, !announced, "case %zu", i);
        wc_watcher_free(w);
        wc_cacher_free(c);
    }
}

/* A relist that drops the history (force) awaits its own; the old one's watchers end, waiting
 * or not, and the old history is refused. One that follows the history awaits none. */
Test(refill, a_reset_awaits_its_own_history_and_a_relist_none)
{
    history();
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 50);
    cr_assert_eq(put(c, "/a", "1", 51), 0);
    wc_watcher *w = watch(c, watch_opts("/", 51));
    cr_assert_eq(load(c, AT16, 2, 16, 10, true), 0);
    cr_assert(wc_watcher_ended(w), "the old history's watchers end");
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_RESET);
    wc_watcher_free(w);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_backfill(c, 40, 50, NULL, 0), WC_ESTALE);
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), 0);
    cr_assert_eq(wc_cacher_floor(c), 10);
    /* a relist that follows: nothing awaited, however it is called */
    const st at20[] = {{"/a", "a3", 16}, {"/c", "c2", 16}, {"/e", "e", 18}};
    cr_assert_eq(load(c, at20, 3, 20, 12, false), 0);
    wc_cacher_stats cs;
    wc_cacher_stats_get(c, &cs);
    cr_assert_not(cs.backfilling);
    cr_assert_eq(cs.rev, 20);
    cr_assert_eq(cs.floor, 10);
    wc_cacher_free(c);
}

/* A list with nothing before it to take back awaits nothing. */
Test(refill, a_load_without_a_window_awaits_nothing)
{
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 16, false), 0);
    wc_cacher_stats cs;
    wc_cacher_stats_get(c, &cs);
    cr_assert_not(cs.backfilling);
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 12, &w, &floor), WC_EEXPIRED);
    wc_cacher_free(c);
}

/* The history came through buffers of its own: the next tick hands freed memory back. */
Test(refill, the_tick_after_the_history_trims)
{
    history();
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(load(c, AT16, 2, 16, 10, false), 0);
    cr_assert(c->trim_due, "the list landed");
    wc_cacher_tick(c);
    cr_assert_not(c->trim_due, "the tick trimmed");
    cr_assert_eq(wc_cacher_backfill(c, 10, 16, hist, 5), 0);
    cr_assert(c->trim_due, "the history is in");
    wc_cacher_tick(c);
    cr_assert(c->trim_due, "and once more: the buffers it came in are freed after it");
    wc_cacher_tick(c);
    cr_assert_not(c->trim_due);
    wc_cacher_free(c);
}

/* A refill's history comes in responses of thousands of changes, whose states are made on every
 * core: applied at once, they make the same ring and store as one transaction after another. */
static void history_of(wc_change *ch, char (*names)[24], char (*values)[96], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t rev = 11 + (int64_t)i / 3;                          /* transactions of three */
        snprintf(names[i], sizeof(names[i]), "/t/p%04zu", i % 700); /* updates too */
        snprintf(values[i], sizeof(values[i]),
                 "{\"metadata\":{\"name\":\"p%zu\"},\"spec\":{\"nodeName\":\"n%zu\"}}", i, i % 7);
        ch[i] = (wc_change){.kv = spec_of(names[i], values[i], rev), .deleted = i % 11 == 10};
        ch[i].kv.version = (int64_t)(i / 700) + 1;
    }
}

Test(refill, a_big_batch_of_changes_applies_as_one_at_a_time_does)
{
    enum { N = 2000 };
    static wc_change ch[N];
    static char names[N][24], values[N][96];
    history_of(ch, names, values, N);
    wc_cacher *at_once = new_cacher(4 * N, "spec.nodeName");
    wc_cacher *each = new_cacher(4 * N, "spec.nodeName");
    make_ready(at_once, 10);
    make_ready(each, 10);
    cr_assert_eq(wc_cacher_apply(at_once, ch, N), 0);
    /* one transaction (three changes) at a time, each made by the calling thread alone; a
     * deletion of a key the history has not made yet is skipped in both */
    for (size_t i = 0; i < N; i += 3)
        cr_assert_eq(wc_cacher_apply(each, &ch[i], i + 3 <= N ? 3 : N - i), 0, "change %zu", i);
    /* Every event from the start, and then the state, on a node's index and on the prefix. */
    const char *fields[] = {NULL, "spec.nodeName=n3"};
    for (size_t f = 0; f < 2; f++) {
        wc_watch_opts oa = watch_opts("/t/", 10), oe = oa;
        if (fields[f]) {
            cr_assert_eq(wc_selector_parse(WC_SEL_FIELD, fields[f], &oa.fields_owned, NULL), 0);
            cr_assert_eq(wc_selector_parse(WC_SEL_FIELD, fields[f], &oe.fields_owned, NULL), 0);
        }
        wc_watcher *wa = watch(at_once, oa), *we = watch(each, oe);
        static seen a, e;
        memset(&a, 0, sizeof(a));
        memset(&e, 0, sizeof(e));
        read_all(wa, &a, 8192);
        read_all(we, &e, 8192);
        cr_assert_gt(a.n, f ? 100 : 1000);
        cr_assert_eq(a.n, e.n);
        for (size_t i = 0; i < a.n; i++)
            cr_assert(json_equal(a.ev[i], e.ev[i]), "event %zu differs", i);
        seen_free(&a);
        seen_free(&e);
        wc_watcher_free(wa);
        wc_watcher_free(we);
    }
    wc_cacher_free(at_once);
    wc_cacher_free(each);
}
