/*
 * A refill (wc_cacher_refill_specs): the cache loads a list at an older revision R0 and the
 * history after it comes as ordinary changes. Readers are held back until the history reaches
 * etcd's revision at the list; the ring's floor is R0, so a watch from any revision at or after
 * it gets exactly the changes after it, and one from before it gets 410, as ever; a ring too
 * small for the history raises the floor as it evicts.
 */
#include "helpers.h"
#include "state.h"

/* Loads the states (key, value, mod_rev) listed at r0, with the history up to `until` to come. */
typedef struct st {
    const char *key, *value;
    int64_t rev;
} st;

static int refill(wc_cacher *c, const st *sts, size_t n, int64_t r0, int64_t until, bool force)
{
    wc_kv_spec specs[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++)
        specs[i] = spec_of(sts[i].key, sts[i].value, sts[i].rev);
    return wc_cacher_refill_specs(c, specs, n, r0, until, force);
}

/* A watch from rv: 0 and *w, or the error (and the floor it reported). */
static int try_watch(wc_cacher *c, int64_t rv, wc_watcher **w, int64_t *floor)
{
    wc_watch_opts o = watch_opts("/", rv);
    return wc_cacher_watch(c, &o, w, floor);
}

Test(refill, readers_wait_until_the_history_reaches_the_revision_etcd_had)
{
    wc_cacher *c = new_cacher(100, NULL);
    st at10[] = {{"/a", "a1", 5}, {"/b", "b1", 10}};
    cr_assert_eq(refill(c, at10, 2, 10, 15, false), 0);
    cr_assert_not(wc_cacher_ready(c), "held until revision 15");
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 10, &w, &floor), WC_ENOTREADY);
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), WC_ENOTREADY);
    wc_kv *kv = NULL;
    cr_assert_eq(wc_cacher_get(c, "/a", 2, &kv, NULL), WC_ENOTREADY);
    cr_assert_eq(wc_cacher_wait_rev(c, 11, 10), WC_ENOTREADY);
    /* The producer publishes the history meanwhile. */
    cr_assert_eq(put(c, "/a", "a2", 12), 0);
    cr_assert_eq(del(c, "/b", 13), 0);
    cr_assert_not(wc_cacher_ready(c));
    /* The history's last revisions were outside the range: a progress notification ends it. */
    cr_assert_eq(wc_cacher_progress(c, 15), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_rev(c), 15);
    cr_assert_eq(wc_cacher_floor(c), 10, "the ring reaches back to the list's revision");
    wc_cacher_free(c);
}

Test(refill, an_event_at_or_past_the_end_makes_it_ready)
{
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_eq(refill(c, NULL, 0, 3, 7, false), 0);
    cr_assert_eq(put(c, "/x", "1", 5), 0);
    cr_assert_not(wc_cacher_ready(c));
    cr_assert_eq(put(c, "/x", "2", 8), 0, "a change after etcd's revision at the list");
    cr_assert(wc_cacher_ready(c));
    wc_cacher_free(c);
}

Test(refill, a_refill_with_no_history_is_ready_at_once)
{
    wc_cacher *c = new_cacher(100, NULL);
    st at9[] = {{"/a", "a", 9}};
    cr_assert_eq(refill(c, at9, 1, 9, 9, false), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_floor(c), 9);
    wc_cacher_free(c);
}

/* A watch from every revision of the window gets exactly the changes after it. */
Test(refill, a_watch_from_inside_the_window_gets_exactly_the_changes_after_it)
{
    wc_cacher *c = new_cacher(100, NULL);
    st at10[] = {{"/a", "a1", 5}, {"/b", "b1", 10}};
    cr_assert_eq(refill(c, at10, 2, 10, 16, false), 0);
    cr_assert_eq(put(c, "/a", "a2", 11), 0);
    cr_assert_eq(put(c, "/c", "c1", 12), 0);
    cr_assert_eq(del(c, "/b", 14), 0);
    const char *keys[] = {"/a", "/c"}, *vals[] = {"a3", "c2"};
    cr_assert_eq(txn(c, 16, keys, vals, 2), 0);
    cr_assert(wc_cacher_ready(c));
    /* What etcd's history says comes after each revision. */
    struct {
        const char *type, *key;
        long long rv;
    } hist[] = {{"MODIFIED", "/a", 11},
                {"ADDED", "/c", 12},
                {"DELETED", "/b", 14},
                {"MODIFIED", "/a", 16},
                {"MODIFIED", "/c", 16}};
    for (int64_t from = 10; from <= 16; from++) {
        wc_watcher *w = NULL;
        int64_t floor = -1;
        cr_assert_eq(try_watch(c, from, &w, &floor), 0, "watch from %lld", (long long)from);
        seen s = {0};
        read_all(w, &s, 4096);
        size_t k = 0;
        for (size_t i = 0; i < sizeof(hist) / sizeof(hist[0]); i++)
            if (hist[i].rv > from)
                expect_event(&s, k++, hist[i].type, hist[i].key, hist[i].rv);
        cr_assert_eq(s.n, k, "watch from %lld: %zu events, want %zu", (long long)from, s.n, k);
        seen_free(&s);
        wc_watcher_free(w);
    }
    /* Before the window: 410, naming the floor. */
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 9, &w, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 10);
    /* A list at a revision of the window is the state etcd had then. */
    wc_list l;
    wc_filter f = {.family = WC_FAMILY_KEYS, .key = "/", .key_len = 1, .prefix = true};
    cr_assert_eq(wc_cacher_list(c, &f, 12, NULL, 0, 0, &l), 0);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(wc_kv_mod_rev(l.items[0]), 11, "/a as of 12");
    cr_assert_eq(wc_kv_mod_rev(l.items[1]), 10, "/b as of 12");
    cr_assert_eq(wc_kv_mod_rev(l.items[2]), 12, "/c as of 12");
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_list(c, &f, 9, NULL, 0, 0, &l), WC_EEXPIRED);
    wc_cacher_free(c);
}

Test(refill, a_ring_smaller_than_the_history_raises_the_floor_as_it_evicts)
{
    wc_cacher *c = new_cacher(3, NULL);
    cr_assert_eq(refill(c, NULL, 0, 100, 110, false), 0);
    for (int64_t r = 101; r <= 110; r++)
        cr_assert_eq(put(c, "/k", "v", r), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_floor(c), 107, "the ring holds 108..110");
    wc_watcher *w = NULL;
    int64_t floor = -1;
    cr_assert_eq(try_watch(c, 106, &w, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 107);
    cr_assert_eq(try_watch(c, 107, &w, &floor), 0);
    seen s = {0};
    read_all(w, &s, 4096);
    cr_assert_eq(s.n, 3);
    expect_event(&s, 0, "MODIFIED", "/k", 108);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

/* A relist that drops the history (force) starts a refill again: its readers wait anew and the
 * floor is the new list's revision. */
Test(refill, a_reset_refills_and_holds_readers_again)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 50);
    cr_assert_eq(put(c, "/a", "1", 51), 0);
    wc_watcher *w = watch(c, watch_opts("/", 51));
    st at20[] = {{"/z", "z", 20}};
    cr_assert_eq(refill(c, at20, 1, 20, 30, true), 0);
    cr_assert(wc_watcher_ended(w), "the old history's watchers end");
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_RESET);
    wc_watcher_free(w);
    cr_assert_not(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_progress(c, 30), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_floor(c), 20);
    wc_cacher_free(c);
}

/* A relist that follows the history is not a refill: readers are served throughout. */
Test(refill, a_relist_that_follows_the_history_does_not_hold_readers)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 10);
    cr_assert_eq(put(c, "/a", "1", 11), 0);
    st at20[] = {{"/a", "1", 11}, {"/b", "b", 18}};
    cr_assert_eq(refill(c, at20, 2, 20, 25, false), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_rev(c), 20);
    cr_assert_eq(wc_cacher_floor(c), 10);
    wc_cacher_free(c);
}

/* The history came through buffers of its own: the cache hands freed memory back at the tick
 * after it becomes ready, not only after the list landed. */
Test(refill, the_tick_after_it_becomes_ready_trims)
{
    wc_cacher *c = new_cacher(100, NULL);
    st at10[] = {{"/a", "a1", 5}};
    cr_assert_eq(refill(c, at10, 1, 10, 15, false), 0);
    cr_assert(c->trim_due, "the list landed");
    wc_cacher_tick(c);
    cr_assert_not(c->trim_due, "the tick trimmed");
    cr_assert_eq(put(c, "/a", "a2", 12), 0);
    cr_assert_not(c->trim_due, "not ready yet");
    cr_assert_eq(wc_cacher_progress(c, 15), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert(c->trim_due, "ready now");
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
