/* The sorted store. */
#include "helpers.h"
#include "store.h"

static wc_kv *mk(const char *key, int64_t rev)
{
    wc_kv_spec s = spec_of(key, "v", rev);
    return wc_kv_new(&s, NULL);
}

static void expect_order(const wc_store *s, const char **keys, size_t n)
{
    cr_assert_eq(s->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(s->v[i]->key, keys[i], "at %zu", i);
}

Test(store, keeps_etcd_key_order_for_any_insert_order)
{
    wc_store s;
    wc_store_init(&s);
    const char *in[] = {"/b", "/a/x", "/a", "/c", "/a/", "/b0", "/"};
    for (size_t i = 0; i < 7; i++) {
        wc_kv *old;
        cr_assert_eq(wc_store_put(&s, mk(in[i], 1), &old), 0);
        cr_assert_null(old);
    }
    const char *want[] = {"/", "/a", "/a/", "/a/x", "/b", "/b0", "/c"};
    expect_order(&s, want, 7);
    wc_store_free(&s);
}

Test(store, put_replaces_and_returns_old_state)
{
    wc_store s;
    wc_store_init(&s);
    wc_kv *old;
    wc_store_put(&s, mk("/k", 1), &old);
    wc_store_put(&s, mk("/k", 2), &old);
    cr_assert_not_null(old);
    cr_assert_eq(old->mod_rev, 1);
    wc_kv_unref(old);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(wc_store_get(&s, "/k", 2)->mod_rev, 2);
    wc_store_free(&s);
}

Test(store, delete_known_and_unknown_keys)
{
    wc_store s;
    wc_store_init(&s);
    wc_kv *old;
    wc_store_put(&s, mk("/a", 1), &old);
    wc_store_put(&s, mk("/b", 1), &old);
    cr_assert_eq(wc_store_del(&s, "/zz", 3, &old), WC_ENOENT);
    cr_assert_null(old);
    cr_assert_eq(wc_store_del(&s, "/a", 2, &old), 0);
    cr_assert_str_eq(old->key, "/a");
    wc_kv_unref(old);
    cr_assert_null(wc_store_get(&s, "/a", 2));
    cr_assert_not_null(wc_store_get(&s, "/b", 2));
    wc_store_free(&s);
}

Test(store, prefix_and_exact_ranges)
{
    wc_store s;
    wc_store_init(&s);
    const char *in[] = {"/a", "/a/1", "/a/2", "/a0", "/b", "/b/\xff", "/b/\xff\xff"};
    wc_kv *old;
    for (size_t i = 0; i < 7; i++)
        wc_store_put(&s, mk(in[i], 1), &old);
    size_t b, e;
    wc_store_range(&s, "/a/", 3, true, &b, &e);
    cr_assert_eq(b, 1);
    cr_assert_eq(e, 3);
    wc_store_range(&s, "/a", 2, true, &b, &e);
    cr_assert_eq(e - b, 4);
    wc_store_range(&s, "/a", 2, false, &b, &e);
    cr_assert_eq(e - b, 1);
    wc_store_range(&s, "/b/\xff", 4, true, &b, &e);
    cr_assert_eq(e - b, 2);
    wc_store_range(&s, "/zz", 3, true, &b, &e);
    cr_assert_eq(e, b);
    wc_store_range(&s, "", 0, true, &b, &e);
    cr_assert_eq(e - b, 7);
    wc_store_free(&s);
}

Test(store, many_keys_stay_sorted_and_findable)
{
    wc_store s;
    wc_store_init(&s);
    char key[32];
    /* A permutation of 0..4999 by a multiplier coprime with 5000. */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "/k/%05d", (i * 7919) % 5000);
        wc_kv *old;
        cr_assert_eq(wc_store_put(&s, mk(key, i + 1), &old), 0);
        cr_assert_null(old);
    }
    for (size_t i = 1; i < s.n; i++)
        cr_assert_lt(strcmp(s.v[i - 1]->key, s.v[i]->key), 0);
    for (int i = 0; i < 5000; i += 37) {
        snprintf(key, sizeof(key), "/k/%05d", i);
        cr_assert_not_null(wc_store_get(&s, key, strlen(key)));
    }
    wc_store_free(&s);
}
