/* Lists, gets, pages at one revision, and relists turned into events. */
#include "helpers.h"
#include "internal.h"

static wc_filter keys_filter(const char *prefix)
{
    wc_filter f = {
        .family = WC_FAMILY_KEYS, .key = prefix, .key_len = strlen(prefix), .prefix = true};
    return f;
}

static void expect_keys(const wc_list *l, const char **keys, size_t n)
{
    cr_assert_eq(l->n, n, "got %zu items, want %zu", l->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(wc_kv_key(l->items[i], NULL), keys[i], "item %zu", i);
}

Test(list, lists_a_prefix_in_key_order_at_the_cache_revision)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/b/2", "x", 2);
    put(c, "/a", "x", 3);
    put(c, "/b/1", "x", 4);
    put(c, "/c", "x", 5);
    wc_cacher_progress(c, 5);
    wc_filter f = keys_filter("/b/");
    wc_list l;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), 0);
    const char *want[] = {"/b/1", "/b/2"};
    expect_keys(&l, want, 2);
    cr_assert_eq(l.rev, 5);
    cr_assert_not(l.more);
    wc_list_release(&l);
    wc_cacher_free(c);
}

Test(list, pages_stay_consistent_while_the_state_changes)
{
    wc_cacher *c = new_cacher(1000, NULL);
    make_ready(c, 1);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "/k/%02d", i);
        put(c, key, "v1", 2 + i);
    }
    wc_cacher_progress(c, 11);
    wc_filter f = keys_filter("/k/");
    wc_list p1;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 4, &p1), 0);
    cr_assert_eq(p1.n, 4);
    cr_assert(p1.more);
    cr_assert_str_eq(p1.next_key, "/k/04");
    /* Between pages: a key of the next page is deleted, one modified, one added. */
    del(c, "/k/05", 12);
    put(c, "/k/06", "v2", 13);
    put(c, "/k/045", "new", 14);
    wc_cacher_progress(c, 14);
    wc_list p2, p3;
    cr_assert_eq(wc_cacher_list(c, &f, p1.rev, p1.next_key, p1.next_key_len, 4, &p2), 0);
    const char *want2[] = {"/k/04", "/k/05", "/k/06", "/k/07"};
    expect_keys(&p2, want2, 4);
    cr_assert_str_eq(wc_kv_value(p2.items[2], NULL), "v1", "the state at the first page's rev");
    cr_assert_eq(wc_cacher_list(c, &f, p1.rev, p2.next_key, p2.next_key_len, 4, &p3), 0);
    const char *want3[] = {"/k/08", "/k/09"};
    expect_keys(&p3, want3, 2);
    cr_assert_not(p3.more);
    wc_list_release(&p1);
    wc_list_release(&p2);
    wc_list_release(&p3);
    wc_cacher_free(c);
}

Test(list, exact_past_revision_expired_and_future)
{
    wc_cacher *c = new_cacher(3, NULL);
    make_ready(c, 1);
    put(c, "/a", "1", 2);
    put(c, "/a", "2", 3);
    put(c, "/b", "1", 4);
    put(c, "/a", "3", 5);
    wc_cacher_progress(c, 5);
    wc_filter f = keys_filter("/");
    wc_list l;
    /* ring holds 3,4,5: floor 2 */
    cr_assert_eq(wc_cacher_list(c, &f, 2, NULL, 0, 0, &l), 0);
    const char *at2[] = {"/a"};
    expect_keys(&l, at2, 1);
    cr_assert_str_eq(wc_kv_value(l.items[0], NULL), "1");
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_list(c, &f, 4, NULL, 0, 0, &l), 0);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(wc_kv_value(l.items[0], NULL), "2");
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_list(c, &f, 1, NULL, 0, 0, &l), WC_EEXPIRED);
    cr_assert_eq(wc_cacher_list(c, &f, 6, NULL, 0, 0, &l), WC_ETIMEDOUT);
    wc_cacher_free(c);
}

Test(list, selectors_and_limit_count_matching_items_only)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put_pod(c, "/p/1", "web", NULL, 2);
    put_pod(c, "/p/2", "db", NULL, 3);
    put_pod(c, "/p/3", "web", NULL, 4);
    put(c, "/p/4", "not json", 5);
    put_pod(c, "/p/5", "web", NULL, 6);
    wc_cacher_progress(c, 6);
    wc_filter f = keys_filter("/p/");
    f.family = WC_FAMILY_K8S;
    wc_selector *sel = NULL;
    cr_assert_eq(wc_selector_parse(WC_SEL_LABEL, "app in (web)", &sel, NULL), 0);
    f.labels = sel;
    wc_list l;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 2, &l), 0);
    const char *want[] = {"/p/1", "/p/3"};
    expect_keys(&l, want, 2);
    cr_assert(l.more);
    cr_assert_str_eq(l.next_key, "/p/5");
    wc_list_release(&l);
    f.labels = NULL;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), 0);
    cr_assert_eq(l.n, 4, "the non-JSON value is left out of the Kubernetes family");
    wc_list_release(&l);
    wc_selector_free(sel);
    wc_cacher_free(c);
}

Test(list, get_one_key)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/a", "1", 2);
    wc_cacher_progress(c, 5);
    wc_kv *kv = NULL;
    int64_t rev = 0;
    cr_assert_eq(wc_cacher_get(c, "/a", 2, &kv, &rev), 0);
    cr_assert_str_eq(wc_kv_value(kv, NULL), "1");
    cr_assert_eq(rev, 5, "the cache's revision, not the key's");
    wc_kv_unref(kv);
    cr_assert_eq(wc_cacher_get(c, "/b", 2, &kv, &rev), WC_ENOENT);
    wc_cacher_free(c);
}

Test(list, initial_load_is_quiet_and_makes_the_cache_ready)
{
    wc_cacher *c = new_cacher(100, NULL);
    wc_kv *kvs[] = {kv_of("/b", "1", 3), kv_of("/a", "1", 2)};
    cr_assert_eq(wc_cacher_replace(c, kvs, 2, 7, false), 0);
    cr_assert(wc_cacher_ready(c));
    cr_assert_eq(wc_cacher_rev(c), 7);
    cr_assert_eq(wc_cacher_floor(c), 7);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.events_in, 0);
    cr_assert_eq(st.keys, 2);
    wc_kv_unref(kvs[0]);
    wc_kv_unref(kvs[1]);
    wc_cacher_free(c);
}

Test(list, relist_turns_the_difference_into_events_for_live_watchers)
{
    wc_cacher *c = new_cacher(100, NULL);
    wc_kv *first[] = {kv_of("/a", "1", 2), kv_of("/b", "1", 3), kv_of("/c", "1", 4)};
    wc_cacher_replace(c, first, 3, 5, false);
    wc_watcher *w = watch(c, watch_opts("/", 5));
    seen s = {0};
    read_all(w, &s, 8192);
    /* After compaction: /a unchanged, /b modified, /c deleted, /d added, at rev 20. */
    wc_kv *second[] = {kv_of("/a", "1", 2), kv_of("/b", "2", 15), kv_of("/d", "1", 18)};
    cr_assert_eq(wc_cacher_replace(c, second, 3, 20, false), 0);
    read_all(w, &s, 8192);
    cr_assert_eq(s.n, 3);
    /* Each change at its key's own revision, in revision order; the deletion, whose revision
     * etcd no longer knows, at the newest free revision of the gap. */
    expect_event(&s, 0, "MODIFIED", "/b", 15);
    expect_event(&s, 1, "ADDED", "/d", 18);
    expect_event(&s, 2, "DELETED", "/c", 20);
    json_t *obj = json_object_get(s.ev[0], "object");
    cr_assert_eq(json_integer_value(json_object_get(obj, "modRevision")), 15);
    cr_assert_not(s.eof, "live watchers keep going");
    cr_assert_eq(wc_cacher_rev(c), 20);
    /* An older snapshot is refused. */
    cr_assert_eq(wc_cacher_replace(c, second, 3, 19, false), WC_ESTALE);
    for (int i = 0; i < 3; i++) {
        wc_kv_unref(first[i]);
        wc_kv_unref(second[i]);
    }
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(list, forced_replace_ends_watchers_and_restarts_history)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 50);
    put(c, "/a", "1", 51);
    wc_watcher *w = watch(c, watch_opts("/", 50));
    wc_kv *older[] = {kv_of("/z", "1", 5)};
    cr_assert_eq(wc_cacher_replace(c, older, 1, 10, true), 0);
    seen s = {0};
    read_all(w, &s, 8192);
    cr_assert(s.eof);
    cr_assert_eq(wc_watcher_end_reason(w), WC_END_RESET);
    cr_assert_eq(wc_cacher_rev(c), 10);
    wc_kv *kv = NULL;
    cr_assert_eq(wc_cacher_get(c, "/a", 2, &kv, NULL), WC_ENOENT);
    wc_kv_unref(older[0]);
    seen_free(&s);
    wc_watcher_free(w);
    wc_cacher_free(c);
}

Test(list, wait_rev_returns_when_the_cache_catches_up_or_times_out)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    cr_assert_eq(wc_cacher_wait_rev(c, 1, 10), 0);
    cr_assert_eq(wc_cacher_wait_rev(c, 2, 20), WC_ETIMEDOUT);
    wc_cacher_progress(c, 3);
    cr_assert_eq(wc_cacher_wait_rev(c, 2, 20), 0);
    wc_cacher_free(c);
}

Test(list, a_list_loaded_page_by_page_shows_its_progress_and_lands_as_one_replace)
{
    wc_cacher *c = new_cacher(100, "spec.nodeName");
    wc_cacher_loader *l = wc_cacher_load_begin(c, 3);
    cr_assert_not_null(l);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert(st.loading);
    cr_assert_eq(st.load_expected, 3);
    cr_assert_eq(st.load_keys, 0);
    wc_kv_spec page1[] = {spec_of("/p/a", "{\"spec\":{\"nodeName\":\"n1\"}}", 4),
                          spec_of("/p/b", "plain", 5)};
    cr_assert_eq(wc_cacher_load_add(l, page1, 2), 0);
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.load_keys, 2);
    cr_assert_eq(st.load_bytes, 4 + page1[0].value_len + 4 + 5);
    cr_assert_not(wc_cacher_ready(c), "nothing is served before the end");
    wc_kv_spec page2[] = {spec_of("/p/c", "{}", 6)};
    cr_assert_eq(wc_cacher_load_add(l, page2, 1), 0);
    cr_assert_eq(wc_cacher_load_end(l, 9, 9, false), 0);
    cr_assert(wc_cacher_ready(c));
    wc_cacher_stats_get(c, &st);
    cr_assert_not(st.loading);
    cr_assert_eq(st.keys, 3);
    cr_assert_eq(wc_cacher_rev(c), 9);
    wc_kv *kv = NULL;
    cr_assert_eq(wc_cacher_get(c, "/p/a", 4, &kv, NULL), 0);
    cr_assert_str_eq(kv->index_value, "n1", "states are made with the index field");
    wc_kv_unref(kv);
    wc_cacher_free(c);
}

Test(list, an_aborted_load_leaves_the_cache_as_it_was)
{
    wc_cacher *c = new_cacher(100, NULL);
    wc_cacher_loader *l = wc_cacher_load_begin(c, 0);
    wc_kv_spec page[] = {spec_of("/a", "1", 2)};
    cr_assert_eq(wc_cacher_load_add(l, page, 1), 0);
    wc_cacher_load_abort(l);
    cr_assert_not(wc_cacher_ready(c));
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_not(st.loading);
    cr_assert_eq(st.keys, 0);
    wc_cacher_free(c);
}

/* etcd's range: [key, end) at a revision, "no end" and one key. */
Test(list, etcd_ranges_at_past_revisions)
{
    wc_cacher *c = new_cacher(100, NULL);
    make_ready(c, 1);
    put(c, "/a", "1", 2);
    put(c, "/b", "1", 3);
    put(c, "/c", "1", 4);
    put(c, "/b", "2", 5);
    del(c, "/a", 6);
    put(c, "/d", "1", 7);
    wc_list l;
    cr_assert_eq(wc_cacher_range(c, "/b", 2, "/d", 2, 0, &l), 0);
    const char *now[] = {"/b", "/c"};
    expect_keys(&l, now, 2);
    cr_assert_eq(l.rev, 7, "the cache's revision, whatever the range");
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_range(c, "/a", 2, "/c", 2, 4, &l), 0);
    const char *at4[] = {"/a", "/b"};
    expect_keys(&l, at4, 2);
    size_t vl;
    cr_assert_str_eq(wc_kv_value(l.items[1], &vl), "1", "/b as it was at 4");
    cr_assert_eq(l.rev, 7);
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_range(c, "/b", 2, "", 0, 0, &l), 0, "no end: every key from /b");
    const char *tail[] = {"/b", "/c", "/d"};
    expect_keys(&l, tail, 3);
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_range(c, "/a", 2, NULL, 0, 5, &l), 0, "one key, at 5");
    const char *one[] = {"/a"};
    expect_keys(&l, one, 1);
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_range(c, "/a", 2, NULL, 0, 0, &l), 0, "deleted since");
    cr_assert_eq(l.n, 0);
    wc_list_release(&l);
    cr_assert_eq(wc_cacher_range(c, "/a", 2, NULL, 0, 8, &l), WC_ETIMEDOUT, "a future revision");
    wc_cacher_free(c);
}

Test(list, etcd_range_below_the_ring_is_expired)
{
    wc_cacher *c = new_cacher(2, NULL);
    make_ready(c, 1);
    for (int i = 0; i < 5; i++)
        put(c, "/k", "v", 2 + i);
    wc_list l;
    cr_assert_eq(wc_cacher_range(c, "/k", 2, NULL, 0, 2, &l), WC_EEXPIRED);
    cr_assert_eq(wc_cacher_range(c, "/k", 2, NULL, 0, wc_cacher_floor(c), &l), 0);
    wc_list_release(&l);
    wc_cacher_free(c);
}

Test(list, a_list_out_of_key_order_loads_and_diffs_as_one_in_order)
{
    /* A list comes from etcd in key order, which the load takes as it is; one that is not
     * (a sink that gathers its own) is sorted first, for the load and for a relist's diff. */
    wc_cacher *c = new_cacher(100, NULL);
    wc_kv *first[] = {kv_of("/c", "1", 4), kv_of("/a", "1", 2), kv_of("/b", "1", 3)};
    cr_assert_eq(wc_cacher_replace(c, first, 3, 7, false), 0);
    wc_filter f = keys_filter("/");
    wc_list l;
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), 0);
    const char *want[] = {"/a", "/b", "/c"};
    expect_keys(&l, want, 3);
    wc_list_release(&l);
    /* the relist: /b changed, /a went, /d came; three events, and the store in key order */
    wc_kv *second[] = {kv_of("/d", "1", 9), kv_of("/c", "1", 4), kv_of("/b", "2", 8)};
    cr_assert_eq(wc_cacher_replace(c, second, 3, 10, false), 0);
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    cr_assert_eq(st.events_in, 3);
    cr_assert_eq(wc_cacher_list(c, &f, 0, NULL, 0, 0, &l), 0);
    const char *want2[] = {"/b", "/c", "/d"};
    expect_keys(&l, want2, 3);
    wc_list_release(&l);
    for (size_t i = 0; i < 3; i++) {
        wc_kv_unref(first[i]);
        wc_kv_unref(second[i]);
    }
    wc_cacher_free(c);
}
