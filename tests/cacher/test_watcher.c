/* cacheWatchers: replay, live delivery, selectors, index routing, slow readers, bookmarks. */
#include "helpers.h"

static int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    wakes++;
}

Test(watcher, replay_from_rv_then_live_in_order)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 10);
    put(c, "/a", "1", 11);
    put(c, "/b", "2", 12);
    put(c, "/a", "3", 13);
    wc_watcher *w = watch(c, watch_opts("/", 11));
    put(c, "/c", "4", 14);
    del(c, "/b", 15);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 4);
    expect_event(&s, 0, "ADDED", "/b", 12);
    expect_event(&s, 1, "MODIFIED", "/a", 13);
    expect_event(&s, 2, "ADDED", "/c", 14);
    expect_event(&s, 3, "DELETED", "/b", 15);
    cr_assert_not(s.eof);
    cr_assert_eq(wc_watcher_rv(w), 15);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, unset_rv_sends_state_as_added_then_live)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/x/2", "b", 2);
    put(c, "/x/1", "a", 3);
    put(c, "/y", "other", 4);
    wc_watcher *w = watch(c, watch_opts("/x/", WC_RV_UNSET));
    put(c, "/x/3", "c", 5);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 3);
    expect_event(&s, 0, "ADDED", "/x/1", 3);
    expect_event(&s, 1, "ADDED", "/x/2", 2);
    expect_event(&s, 2, "ADDED", "/x/3", 5);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, send_initial_events_ends_with_annotated_bookmark)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/x/1", "a", 2);
    wc_cacher_progress(c, 9);
    wc_watch_opts o = watch_opts("/x/", 0);
    o.initial_end_bookmark = true;
    o.allow_bookmarks = true;
    o.kind = "Pod";
    o.api_version = "v1";
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/x/1", 2);
    cr_assert_str_eq(ev_type(&s, 1), "BOOKMARK");
    cr_assert_eq(ev_rv(&s, 1), 9);
    json_t *obj = json_object_get(s.ev[1], "object");
    cr_assert_str_eq(json_string_value(json_object_get(obj, "kind")), "Pod");
    json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
    cr_assert_str_eq(json_string_value(json_object_get(ann, "k8s.io/initial-events-end")), "true");
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, rv_at_floor_is_served_and_below_is_expired)
{
    wc_cacher *c = new_cacher(3, NULL);
    make_ready(c, 10);
    for (int64_t r = 11; r <= 15; r++)
        put(c, "/k", "v", r);
    /* ring holds 13,14,15: floor 12 */
    cr_assert_eq(wc_cacher_floor(c), 12);
    wc_watch_opts o = watch_opts("/", 11);
    wc_watcher *w = NULL;
    int64_t floor = 0;
    cr_assert_eq(wc_cacher_watch(c, &o, &w, &floor), WC_EEXPIRED);
    cr_assert_eq(floor, 12);
    cr_assert_null(w);
    w = watch(c, watch_opts("/", 12));
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 3);
    expect_event(&s, 0, "MODIFIED", "/k", 13);
    seen_free(&s);
    wc_watcher_free(w);
    w = watch(c, watch_opts("/", 14));
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 1);
    expect_event(&s, 0, "MODIFIED", "/k", 15);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, sparse_revisions_between_floor_and_oldest_are_served)
{
    wc_cacher *c = new_cacher(2, NULL);
    make_ready(c, 10);
    put(c, "/k", "v", 20);
    put(c, "/k", "v", 30);
    put(c, "/k", "v", 40); /* evicts 20: floor 20, oldest held 30 */
    wc_watcher *w = watch(c, watch_opts("/", 25));
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "MODIFIED", "/k", 30);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, future_rv_skips_events_up_to_it)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 10);
    wc_watcher *w = watch(c, watch_opts("/", 12));
    put(c, "/a", "1", 11);
    put(c, "/a", "2", 12);
    put(c, "/a", "3", 13);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 1);
    expect_event(&s, 0, "MODIFIED", "/a", 13);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, stale_duplicate_and_unknown_changes_are_ignored_and_counted)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 10);
    cr_assert_eq(put(c, "/a", "x", 9), WC_ESTALE);
    cr_assert_eq(put(c, "/a", "x", 10), WC_ESTALE);
    cr_assert_eq(put(c, "/a", "1", 11), 0);
    cr_assert_eq(put(c, "/a", "1", 11), WC_ESTALE); /* same key, same rev */
    cr_assert_eq(put(c, "/b", "1", 11), WC_ESTALE); /* revision 11 was complete */
    const char *keys[] = {"/b", "/c"}, *vals[] = {"1", "1"};
    cr_assert_eq(txn(c, 12, keys, vals, 2), 0);
    cr_assert_eq(del(c, "/nope", 13), WC_ENOENT);
    cr_assert_eq(del(c, "/a", 10), WC_ESTALE);
    cr_assert_eq(wc_cacher_progress(c, 5), WC_ESTALE);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.events_in, 3);
    cr_assert_eq(st.events_stale, 6);
    cr_assert_eq(st.deletes_unknown, 1);
    cr_assert_eq(st.keys, 3);
    wc_cacher_free(c);
}

Test(watcher, not_ready_cacher_refuses_changes_and_watches)
{
    wc_cacher *c = new_cacher(100, NULL);
    cr_assert_not(wc_cacher_ready(c));
    cr_assert_eq(put(c, "/a", "1", 1), WC_ENOTREADY);
    wc_watch_opts o = watch_opts("/", 0);
    wc_watcher *w = NULL;
    cr_assert_eq(wc_cacher_watch(c, &o, &w, NULL), WC_ENOTREADY);
    wc_list l;
    wc_filter f = o.filter;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), WC_ENOTREADY);
    cr_assert_eq(wc_cacher_wait_rev(c, 1, 10), WC_ENOTREADY);
    wc_cacher_free(c);
}

Test(watcher, txn_events_share_a_revision_published_as_one_change)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 10);
    const char *keys[] = {"/a", "/b"}, *vals[] = {"1", "1"};
    cr_assert_eq(txn(c, 11, keys, vals, 2), 0);
    cr_assert_eq(wc_cacher_rev(c), 11);
    wc_watcher *w = watch(c, watch_opts("/", 10));
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/a", 11);
    expect_event(&s, 1, "ADDED", "/b", 11);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, label_selector_transitions_added_modified_deleted)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/p/", 1);
    cr_assert_eq(wc_selector_parse(WC_SEL_LABEL, "app=web", &o.labels_owned, NULL), 0);
    wc_watcher *w = watch(c, o);
    put_pod(c, "/p/a", "db", NULL, 2);  /* never matches: never sent */
    put_pod(c, "/p/a", "web", NULL, 3); /* starts matching: ADDED */
    put_pod(c, "/p/a", "web", "n", 4);  /* still matches: MODIFIED */
    put_pod(c, "/p/a", "db", NULL, 5);  /* stops matching: DELETED */
    put_pod(c, "/p/b", "web", NULL, 6);
    del(c, "/p/b", 7);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 5);
    expect_event(&s, 0, "ADDED", "/p/a", 3);
    expect_event(&s, 1, "MODIFIED", "/p/a", 4);
    expect_event(&s, 2, "DELETED", "/p/a", 5);
    /* The DELETED object is the last matching state, at the change's revision. */
    cr_assert_not_null(strstr(
        json_string_value(json_object_get(json_object_get(s.ev[2], "object"), "value")), "web"));
    expect_event(&s, 3, "ADDED", "/p/b", 6);
    expect_event(&s, 4, "DELETED", "/p/b", 7);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, k8s_family_serves_objects_and_leaves_out_non_json)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/registry/pods/", 1);
    o.filter.family = WC_FAMILY_K8S;
    wc_watcher *w = watch(c, o);
    put_pod(c, "/registry/pods/ns/a", NULL, NULL, 2);
    put(c, "/registry/pods/ns/b", "\x6b\x38\x73\x00protobuf", 3);
    put(c, "/registry/pods/ns/a", "not json any more", 4);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/registry/pods/ns/a", 2);
    /* An object replaced by garbage stops matching: the reader sees it go. */
    expect_event(&s, 1, "DELETED", "/registry/pods/ns/a", 4);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.non_object, 2);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, field_selector_on_name_in_keys_family)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/", 1);
    cr_assert_eq(wc_selector_parse(WC_SEL_FIELD, "metadata.name!=/b", &o.fields_owned, NULL), 0);
    wc_watcher *w = watch(c, o);
    put(c, "/a", "1", 2);
    put(c, "/b", "1", 3);
    put(c, "/c", "1", 4);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/a", 2);
    expect_event(&s, 1, "ADDED", "/c", 4);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

static wc_watcher *node_watch(wc_cacher *c, const char *node, int64_t rv)
{
    wc_watch_opts o = watch_opts("/p/", rv);
    char sel[64];
    snprintf(sel, sizeof(sel), "spec.nodeName=%s", node);
    cr_assert_eq(wc_selector_parse(WC_SEL_FIELD, sel, &o.fields_owned, NULL), 0);
    return watch(c, o);
}

Test(watcher, index_routes_events_to_their_nodes_only)
{
    wc_cacher *c = new_cacher(100, "spec.nodeName");
    make_ready(c, 1);
    wc_watcher *na = node_watch(c, "node-a", 1);
    wc_watcher *nb = node_watch(c, "node-b", 1);
    wc_watcher *all = watch(c, watch_opts("/p/", 1));
    seen a = {0}, b = {0}, u = {0};
    /* Live first: a new watcher catches up from the ring, which knows nothing of the index. */
    read_all(na, &a, 8192);
    read_all(nb, &b, 8192);
    read_all(all, &u, 8192);
    put_pod(c, "/p/1", NULL, "node-a", 2);
    put_pod(c, "/p/2", NULL, "node-b", 3);
    put_pod(c, "/p/1", NULL, "node-b", 4); /* moves: a sees DELETED, b sees ADDED */
    put_pod(c, "/p/3", NULL, NULL, 5);     /* unscheduled: only the unindexed watcher */
    read_all(na, &a, 8192);
    read_all(nb, &b, 8192);
    read_all(all, &u, 8192);
    cr_assert_eq(a.n, 2);
    expect_event(&a, 0, "ADDED", "/p/1", 2);
    expect_event(&a, 1, "DELETED", "/p/1", 4);
    cr_assert_eq(b.n, 2);
    expect_event(&b, 0, "ADDED", "/p/2", 3);
    expect_event(&b, 1, "ADDED", "/p/1", 4);
    cr_assert_eq(u.n, 4);
    seen_free(&a);
    seen_free(&b);
    seen_free(&u);
    wc_watcher_free(na);
    wc_watcher_free(nb);
    wc_watcher_free(all);
    wc_cacher_free(c);
}

Test(watcher, index_narrows_a_catch_up_from_the_ring_as_it_does_live_events)
{
    /* The same changes as above, in the ring before the watchers come: a catch-up skips other
     * nodes' events by the index, and a pod that moved still reaches both nodes. */
    wc_cacher *c = new_cacher(2000, "spec.nodeName");
    make_ready(c, 1);
    enum { R = 1500 };
    put_pod(c, "/p/1", NULL, "node-a", 2);
    for (int64_t r = 3; r < R; r++) /* more than a pull looks at: another node's changes */
        put_pod(c, "/p/x", NULL, "node-c", r);
    put_pod(c, "/p/2", NULL, "node-b", R);
    put_pod(c, "/p/1", NULL, "node-b", R + 1);
    put_pod(c, "/p/3", NULL, NULL, R + 2);
    put_pod(c, "/p/2", NULL, "node-b", R + 3);
    wc_watcher *na = node_watch(c, "node-a", 1);
    wc_watcher *nb = node_watch(c, "node-b", 1);
    wc_watcher *nb2 = node_watch(c, "node-b", R); /* from inside the ring */
    seen a = {0}, b = {0}, b2 = {0};
    read_all(na, &a, 8192);
    read_all(nb, &b, 8192);
    read_all(nb2, &b2, 8192);
    cr_assert_eq(a.n, 2);
    expect_event(&a, 0, "ADDED", "/p/1", 2);
    expect_event(&a, 1, "DELETED", "/p/1", R + 1);
    cr_assert_eq(b.n, 3);
    expect_event(&b, 0, "ADDED", "/p/2", R);
    expect_event(&b, 1, "ADDED", "/p/1", R + 1);
    expect_event(&b, 2, "MODIFIED", "/p/2", R + 3);
    cr_assert_eq(b2.n, 2);
    expect_event(&b2, 0, "ADDED", "/p/1", R + 1);
    expect_event(&b2, 1, "MODIFIED", "/p/2", R + 3);
    /* and live after it, as before */
    put_pod(c, "/p/1", NULL, "node-a", R + 4);
    read_all(na, &a, 8192);
    read_all(nb, &b, 8192);
    cr_assert_eq(a.n, 3);
    expect_event(&a, 2, "ADDED", "/p/1", R + 4);
    cr_assert_eq(b.n, 4);
    expect_event(&b, 3, "DELETED", "/p/1", R + 4);
    seen_free(&a);
    seen_free(&b);
    seen_free(&b2);
    wc_watcher_free(na);
    wc_watcher_free(nb);
    wc_watcher_free(nb2);
    wc_cacher_free(c);
}

Test(watcher, indexed_watchers_do_not_get_other_nodes_events_queued)
{
    /* With 10 slots, a node-a watcher that never reads must not fill up from node-b traffic. */
    wc_cacher *c = new_cacher(1000, "spec.nodeName");
    make_ready(c, 1);
    wc_watcher *na = node_watch(c, "node-a", 1);
    seen s = {0};
    read_all(na, &s, 8192); /* live: a watcher still catching up has no queue to fill */
    for (int64_t r = 2; r < 200; r++)
        put_pod(c, "/p/x", NULL, "node-b", r);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 0);
    put_pod(c, "/p/y", NULL, "node-a", 200);
    read_all(na, &s, 8192);
    cr_assert_eq(s.n, 1);
    expect_event(&s, 0, "ADDED", "/p/y", 200);
    seen_free(&s);
    wc_watcher_free(na);
    wc_cacher_free(c);
}

Test(watcher, unindexed_watcher_gets_the_wide_queue_when_an_index_exists)
{
    wc_cacher *c = new_cacher(5000, "spec.nodeName");
    make_ready(c, 1);
    wc_watcher *wide = watch(c, watch_opts("/p/", 1));
    wc_watcher *narrow = node_watch(c, "n", 1);
    /* Go live first: a watcher starts by catching up from the ring. */
    seen s = {0};
    read_all(wide, &s, 8192);
    read_all(narrow, &s, 8192);
    for (int64_t r = 2; r < 502; r++)
        put_pod(c, "/p/x", NULL, "n", r);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    /* 500 events overflow the narrow watcher's 10 slots but not the wide one's 1000. */
    cr_assert_eq(st.watchers_lagging, 1);
    wc_watcher_free(wide);
    wc_watcher_free(narrow);
    wc_cacher_free(c);
}

Test(watcher, wide_queue_grows_to_its_bound_in_order_and_no_further)
{
    /* The wide queue starts small and grows under a burst: it must keep the order across a
     * growth that happens with the ring wrapped, hold exactly 1000 events, and lag at 1001. */
    wc_cacher *c = new_cacher(5000, "spec.nodeName");
    make_ready(c, 1);
    wc_watcher *wide = watch(c, watch_opts("/p/", 1));
    seen s = {0};
    read_all(wide, &s, 8192);
    int64_t r = 2;
    /* Rounds of 10 in, 10 out walk the queue's head around its small start, more than once. */
    for (int round = 0; round < 5; round++) {
        for (int k = 0; k < 10; k++, r++)
            put_pod(c, "/p/x", NULL, "n", r);
        read_all(wide, &s, 8192);
        cr_assert_eq(s.n, 10);
        expect_event(&s, 9, "MODIFIED", "/p/x", r - 1);
        seen_free(&s);
    }
    int64_t first = r;
    for (; r < first + 1000; r++) /* 1000: the bound, reached by doubling from the small start */
        put_pod(c, "/p/x", NULL, "n", r);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 0);
    put_pod(c, "/p/x", NULL, "n", r++);
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 1);
    /* Everything arrives once, in order: the 1000 queued, then the last from the ring. */
    for (int i = 0; i < 4 && s.n < 1001; i++)
        read_all(wide, &s, 8192);
    cr_assert_eq(s.n, 1001);
    for (size_t i = 0; i < s.n; i++)
        expect_event(&s, i, "MODIFIED", "/p/x", first + (int64_t)i);
    seen_free(&s);
    /* Drained and idle, then another burst: the queue serves it again from its small start. */
    for (int64_t k = 0; k < 100; k++, r++)
        put_pod(c, "/p/x", NULL, "n", r);
    read_all(wide, &s, 8192);
    cr_assert_eq(s.n, 100);
    expect_event(&s, 99, "MODIFIED", "/p/x", r - 1);
    seen_free(&s);
    wc_watcher_free(wide);
    wc_cacher_free(c);
}

Test(watcher, overflowing_reader_catches_up_from_the_ring_without_gap)
{
    wc_cacher *c = new_cacher(1000, NULL);
    make_ready(c, 1);
    wc_watcher *w = watch(c, watch_opts("/", 1));
    seen s = {0};
    read_all(w, &s, 8192); /* live now */
    for (int64_t r = 2; r <= 101; r++)
        put(c, "/k", "v", r);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 1);
    read_all(w, &s, 100); /* small reads: frames split across calls */
    cr_assert_eq(s.n, 100);
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(ev_rv(&s, i), (long long)i + 2);
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 0);
    put(c, "/k", "v", 102); /* live again */
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 101);
    cr_assert_eq(ev_rv(&s, 100), 102);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, slow_reader_is_ended_after_the_budget_and_fast_ones_keep_order)
{
    wc_cacher *c = new_cacher(10000, NULL);
    make_ready(c, 1);
    wc_watcher *slow = watch(c, watch_opts("/", 1));
    wc_watcher *fast = watch(c, watch_opts("/", 1));
    seen s = {0}, f = {0};
    read_all(slow, &s, 8192);
    read_all(fast, &f, 8192);
    for (int64_t r = 2; r <= 50; r++) {
        put(c, "/k", "v", r);
        read_all(fast, &f, 8192);
    }
    atomic_fetch_add(&fake_now, 1000);
    wc_cacher_tick(c);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.ended[WC_END_SLOW], 0, "still within the budget");
    atomic_fetch_add(&fake_now, 1500);
    wc_cacher_tick(c);
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.ended[WC_END_SLOW], 1);
    /* The slow reader had begun nothing on the wire: it gets the end at once, none of the 10
     * queued events (it would take them only to be told to re-watch). */
    read_all(slow, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(slow), WC_END_SLOW);
    cr_assert_eq(s.n, 0, "nothing after a lagging end, got %zu", s.n);
    cr_assert_eq(wc_watcher_rv(slow), 1);
    cr_assert_eq(f.n, 49);
    for (size_t i = 0; i < f.n; i++)
        cr_assert_eq(ev_rv(&f, i), (long long)i + 2);
    /* It resumes from its last RV by replay, with nothing skipped. */
    int64_t resume = wc_watcher_rv(slow);
    wc_watcher_free(slow);
    wc_watcher *again = watch(c, watch_opts("/", resume));
    read_all(again, &s, 8192);
    cr_assert_eq(s.n, 49);
    for (size_t i = 0; i < s.n; i++)
        cr_assert_eq(ev_rv(&s, i), (long long)i + 2);
    seen_free(&s);
    seen_free(&f);
    wc_watcher_free(again);
    wc_watcher_free(fast);
    wc_cacher_free(c);
}

Test(watcher, lagging_reader_whose_position_left_the_ring_is_ended_expired)
{
    wc_cacher *c = new_cacher(20, NULL);
    make_ready(c, 1);
    wc_watcher *w = watch(c, watch_opts("/", 1));
    seen s = {0};
    read_all(w, &s, 8192);
    for (int64_t r = 2; r <= 60; r++)
        put(c, "/k", "v", r);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_EXPIRED);
    /* What it got before the end is a gapless prefix: the 10 queued events. */
    cr_assert_eq(s.n, 10, "got %zu", s.n);
    for (size_t i = 0; i < s.n; i++)
        cr_assert_eq(ev_rv(&s, i), (long long)i + 2);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, bookmarks_come_periodically_and_never_ahead_of_events)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/", 1);
    o.allow_bookmarks = true;
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192);
    put(c, "/a", "1", 2);
    wc_cacher_progress(c, 7);
    atomic_fetch_add(&fake_now, 31000);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/a", 2);
    cr_assert_str_eq(ev_type(&s, 1), "BOOKMARK");
    cr_assert_eq(ev_rv(&s, 1), 7);
    /* No bookmark before the period comes round again. */
    atomic_fetch_add(&fake_now, 1000);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 2);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, watcher_without_bookmarks_gets_none)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watcher *w = watch(c, watch_opts("/", 1));
    seen s = {0};
    read_all(w, &s, 8192); /* live: the tick queues bookmarks for live watchers only */
    atomic_fetch_add(&fake_now, 120000);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 0);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, deadline_sends_a_bookmark_just_before_and_then_ends)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 4);
    wc_watch_opts o = watch_opts("/", 4);
    o.allow_bookmarks = true;
    o.deadline_ms = atomic_load(&fake_now) + 5000;
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192);
    atomic_fetch_add(&fake_now, 4200);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(ev_type(&s, 0), "BOOKMARK");
    cr_assert_not(s.eof);
    atomic_fetch_add(&fake_now, 1000);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_TIMEOUT);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, a_tick_late_for_the_last_second_still_sends_the_bookmark_before_the_end)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 4);
    wc_watch_opts o = watch_opts("/", 4);
    o.allow_bookmarks = true;
    o.deadline_ms = atomic_load(&fake_now) + 5000;
    wc_watcher *w = watch(c, o);
    seen s = {0};
    read_all(w, &s, 8192);
    put(c, "/a", "1", 5);
    /* The last tick before the deadline came too early, the next one after it. */
    atomic_fetch_add(&fake_now, 3900);
    wc_cacher_tick(c);
    atomic_fetch_add(&fake_now, 1200);
    wc_cacher_tick(c);
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_TIMEOUT);
    cr_assert_eq(s.n, 2);
    expect_event(&s, 0, "ADDED", "/a", 5);
    expect_event(&s, 1, "BOOKMARK", NULL, 5);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, wake_fires_once_when_data_arrives_for_a_waiting_reader)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/", 1);
    o.wake = count_wake;
    wc_watcher *w = watch(c, o);
    wakes = 0;
    char buf[256];
    size_t n;
    cr_assert_eq(wc_watcher_read(w, buf, sizeof(buf), &n), WC_EAGAIN);
    put(c, "/a", "1", 2);
    put(c, "/a", "2", 3);
    cr_assert_eq(wakes, 1, "one wake for a reader that has not read yet");
    cr_assert_eq(wc_watcher_read(w, buf, sizeof(buf), &n), 0);
    cr_assert_gt(n, 0);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(watcher, an_end_wakes_a_reader_that_is_not_waiting)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watch_opts o = watch_opts("/", 1);
    o.wake = count_wake;
    wc_watcher *w = watch(c, o);
    put(c, "/a", "1", 2);
    /* One short read: the watcher goes live, and its reader has more to read, so it is not
     * waiting (it is, say, stuck behind a full socket): events do not wake it, its end does. */
    char buf[8];
    size_t n;
    cr_assert_eq(wc_watcher_read(w, buf, sizeof(buf), &n), 0);
    wakes = 0;
    put(c, "/a", "2", 3);
    cr_assert_eq(wakes, 0);
    cr_assert_not(wc_watcher_ended(w));
    wc_cacher_free(c); /* ends every watcher */
    cr_assert_eq(wakes, 1);
    cr_assert(wc_watcher_ended(w));
    seen s = {0};
    memcpy(s.partial, buf, n); /* the start of the first line */
    s.plen = n;
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_SHUTDOWN);
    seen_free(&s);
    wc_watcher_free(w);
}

Test(watcher, closing_mid_frame_and_freeing_the_cacher_leak_nothing)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    wc_watcher *w1 = watch(c, watch_opts("/", 1));
    wc_watcher *w2 = watch(c, watch_opts("/", 1));
    put(c, "/a", "a long enough value to split", 2);
    char buf[8];
    size_t n;
    cr_assert_eq(wc_watcher_read(w1, buf, sizeof(buf), &n), 0);
    cr_assert_eq(n, 8);
    wc_watcher_free(w1); /* mid-frame */
    wc_cacher_free(c);   /* w2 is ended, not freed: its reader still holds it */
    seen s = {0};
    read_all(w2, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w2), WC_END_SHUTDOWN);
    seen_free(&s);
    wc_watcher_free(w2); /* the last close frees the cacher: ASan checks both */
}

Test(watcher, a_reader_that_stops_pulling_its_catch_up_is_ended_after_the_budget)
{
    wc_cacher *c = new_cacher(10000, NULL);
    make_ready(c, 1);
    for (int64_t r = 2; r <= 300; r++)
        put(c, "/k", "v", r);
    /* A watch from far back: its reader pulls once, then stops (its socket is full). */
    wc_watcher *w = watch(c, watch_opts("/", 1));
    char buf[64];
    size_t n = 0;
    cr_assert_eq(wc_watcher_read(w, buf, sizeof(buf), &n), 0);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.watchers_lagging, 1, "behind the ring's head after a pull");
    atomic_fetch_add(&fake_now, 1000);
    wc_cacher_tick(c);
    cr_assert_not(wc_watcher_ended(w), "within the budget");
    atomic_fetch_add(&fake_now, 1500);
    wc_cacher_tick(c);
    cr_assert(wc_watcher_ended(w));
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_SLOW);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

/* A raw watcher hands over the events themselves, and its bookmarks as progress. */
Test(watcher, raw_events_are_the_events_in_order)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/r/a", "1", 2);
    wc_watch_opts o = {
        .filter = {.family = WC_FAMILY_KEYS, .key = "/r/", .key_len = 3, .prefix = true},
        .rv = 1,
        .raw_events = true,
        .allow_bookmarks = true};
    wc_watcher *w = NULL;
    cr_assert_eq(wc_cacher_watch(c, &o, &w, NULL), 0);
    put(c, "/r/a", "2", 3);
    put(c, "/x", "outside", 4);
    del(c, "/r/a", 5);
    wc_event *evs[8];
    size_t n = 0;
    int64_t progress = 0;
    cr_assert_eq(wc_watcher_read_events(w, evs, 8, &n, &progress), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(wc_event_type(evs[0]), WC_EV_ADDED);
    cr_assert_eq(wc_event_type(evs[1]), WC_EV_MODIFIED);
    cr_assert_eq(wc_event_rev(evs[1]), 3);
    cr_assert_eq(wc_event_type(evs[2]), WC_EV_DELETED);
    size_t vl;
    cr_assert_str_eq(wc_kv_value(wc_event_prev(evs[2]), &vl), "2", "the delete's previous state");
    for (size_t i = 0; i < n; i++)
        wc_event_unref(evs[i]);
    cr_assert_eq(wc_watcher_read_events(w, evs, 8, &n, &progress), WC_EAGAIN);
    atomic_fetch_add(&fake_now, WC_CACHER_BOOKMARK_MS + 1000);
    wc_cacher_progress(c, 9);
    wc_cacher_tick(c);
    cr_assert_eq(wc_watcher_read_events(w, evs, 8, &n, &progress), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(progress, 9, "a bookmark is a progress at the cache's revision");
    wc_watcher_free(w);
    wc_cacher_free(c);
}
