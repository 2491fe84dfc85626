/*
 * The upstream against a real etcd: paged list at one revision, ordered watch, resume after an
 * etcd restart with no gap and no duplicate, relist after compaction, consistent-read support,
 * and recovery from a failure injected at each local step of the upstream path (seam.h).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd.h"
#include "seam.h"
#include "wcached/upstream.h"

typedef struct rec {
    char kind; /* 'R' replace, 'P' put, 'D' delete, 'G' progress */
    char key[64];
    int64_t rev;
    size_t n;        /* replace: how many keys */
    int64_t max_mod; /* replace: newest mod_rev among them */
    int64_t head;    /* replace: where the history to take back starts; backfill: its end */
} rec;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    rec r[4096];
    size_t n;
    int live;
    wc_upstream_state state; /* the last one reported */
    int down;                /* WC_UP_DOWN reports */
    int down_match;          /* of which naming `needle` */
    const char *needle;      /* set before a failure is injected */
    char last_down[256];     /* the last DOWN reason, for messages */
} recorder;

static recorder R;
static struct wc_test_etcd etcd;
static wc_upstream *up;
static int64_t refill_revs; /* the next upstream's refill_revisions; 0 unless a test sets it */
/* A test's: the next list compacts etcd this many revisions into the window it refills, once. */
static int64_t compact_in_window;

static void add(rec x)
{
    pthread_mutex_lock(&R.mu);
    if (R.n < 4096)
        R.r[R.n++] = x;
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.mu);
}

static int s_replace(void *arg, const wc_kv_spec *kvs, size_t n, int64_t rev, int64_t from,
                     bool reset)
{
    if (compact_in_window && rev > from + compact_in_window) {
        wc_test_etcd_compact(&etcd, from + compact_in_window);
        compact_in_window = 0;
    }
    rec x = {.kind = reset ? 'X' : 'R', .rev = rev, .n = n, .head = from};
    for (size_t i = 0; i < n; i++)
        if (kvs[i].mod_rev > x.max_mod)
            x.max_mod = kvs[i].mod_rev;
    add(x);
    return 0;
}

static int s_apply(void *arg, const wc_change *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rec x = {.kind = ch[i].deleted ? 'D' : 'P', .rev = ch[i].kv.mod_rev};
        snprintf(x.key, sizeof(x.key), "%.*s", (int)ch[i].kv.key_len, ch[i].kv.key);
        add(x);
    }
    return 0;
}

static int s_progress(void *arg, int64_t rev)
{
    add((rec){.kind = 'G', .rev = rev});
    return 0;
}

static void s_state(void *arg, wc_upstream_state st, const char *reason)
{
    pthread_mutex_lock(&R.mu);
    if (st == WC_UP_LIVE)
        R.live++;
    R.state = st;
    if (st == WC_UP_DOWN) {
        R.down++;
        R.down_match += R.needle && strstr(reason, R.needle) != NULL;
        snprintf(R.last_down, sizeof(R.last_down), "%s", reason);
    }
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.mu);
}

/* The history a start took back: the sink's backfill ('H' in R: rev = from, head = to, n), its
 * changes here in order; or its abandon ('A'). */
typedef struct hrec {
    char kind; /* 'P' put, 'D' delete */
    char key[64];
    int64_t rev;
    int64_t prev_mod; /* the state before it (prev_kv): its mod revision; 0 when none */
    char prev_value[16];
} hrec;
static hrec Hist[2048];
static size_t hist_n;

static int s_backfill(void *arg, int64_t from, int64_t to, const wc_change *ch, size_t n)
{
    pthread_mutex_lock(&R.mu);
    hist_n = 0;
    for (size_t i = 0; i < n && hist_n < 2048; i++) {
        hrec *h = &Hist[hist_n++];
        memset(h, 0, sizeof(*h));
        h->kind = ch[i].deleted ? 'D' : 'P';
        h->rev = ch[i].kv.mod_rev;
        snprintf(h->key, sizeof(h->key), "%.*s", (int)ch[i].kv.key_len, ch[i].kv.key);
        if (ch[i].prev) {
            h->prev_mod = ch[i].prev->mod_rev;
            snprintf(h->prev_value, sizeof(h->prev_value), "%.*s", (int)ch[i].prev->value_len,
                     ch[i].prev->value);
        }
    }
    pthread_mutex_unlock(&R.mu);
    add((rec){.kind = 'H', .rev = from, .head = to, .n = n});
    return 0;
}

static void s_backfill_abandon(void *arg, const char *why)
{
    rec x = {.kind = 'A'};
    snprintf(x.key, sizeof(x.key), "%s", why);
    add(x);
}

static void setup(void)
{
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cond, NULL);
    R.n = 0;
    R.live = 0;
    R.state = WC_UP_CONNECTING;
    R.down = R.down_match = 0;
    R.needle = NULL;
    R.last_down[0] = '\0';
    hist_n = 0;
}

static void teardown(void)
{
    wc_upstream_free(up);
    up = NULL;
    refill_revs = 0;
    compact_in_window = 0;
    wc_test_etcd_stop(&etcd);
}

TestSuite(upstream, .init = setup, .fini = teardown, .timeout = 180);

/* Makes `up` (not started yet); user NULL for no etcd auth. */
static void new_upstream(const char *prefix, size_t page, bool all_members, const char *user,
                         const char *password)
{
    const char *eps[WC_TEST_ETCD_MAX];
    size_t n = all_members ? (size_t)etcd.members : 1;
    for (size_t i = 0; i < n; i++)
        eps[i] = wc_test_etcd_client_url(&etcd, (int)i);
    wc_upstream_opts o = {.endpoints = eps,
                          .n_endpoints = n,
                          .prefix = prefix,
                          .prefix_len = strlen(prefix),
                          .page_size = page,
                          .user = user,
                          .password = password,
                          .refill_revisions = refill_revs,
                          .sink = {.replace = s_replace,
                                   .apply = s_apply,
                                   .progress = s_progress,
                                   .backfill = s_backfill,
                                   .backfill_abandon = s_backfill_abandon,
                                   .state = s_state}};
    up = wc_upstream_new(&o);
    cr_assert_not_null(up);
}

static void start_upstream(const char *prefix, size_t page, bool all_members)
{
    new_upstream(prefix, page, all_members, NULL, NULL);
    cr_assert_eq(wc_upstream_start(up), 0);
}

/* Waits until pred holds (with R.mu held), up to 15 s. */
static bool wait_for(bool (*pred)(void *), void *arg)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 15;
    pthread_mutex_lock(&R.mu);
    bool ok = pred(arg);
    while (!ok && pthread_cond_timedwait(&R.cond, &R.mu, &until) == 0)
        ok = pred(arg);
    ok = pred(arg);
    pthread_mutex_unlock(&R.mu);
    return ok;
}

static bool saw_rev(void *arg)
{
    int64_t want = *(int64_t *)arg;
    for (size_t i = 0; i < R.n; i++)
        if ((R.r[i].kind == 'P' || R.r[i].kind == 'D') && R.r[i].rev >= want)
            return true;
    return false;
}

static bool replaces_at_least(void *arg)
{
    size_t want = *(size_t *)arg, got = 0;
    for (size_t i = 0; i < R.n; i++)
        got += R.r[i].kind == 'R';
    return got >= want;
}

static bool progress_at_least(void *arg)
{
    int64_t want = *(int64_t *)arg;
    for (size_t i = 0; i < R.n; i++)
        if (R.r[i].kind == 'G' && R.r[i].rev >= want)
            return true;
    return false;
}

static bool is_live(void *arg)
{
    return R.live >= *(int *)arg;
}

static int64_t put(const char *key, const char *value)
{
    int64_t rev;
    cr_assert_eq(wc_test_etcd_put(&etcd, key, value, &rev), 0);
    return rev;
}

/* Every put/delete after the first replace, as (kind, key, rev), in order. */
static size_t changes(rec *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < R.n && n < max; i++)
        if (R.r[i].kind == 'P' || R.r[i].kind == 'D')
            out[n++] = R.r[i];
    pthread_mutex_unlock(&R.mu);
    return n;
}

static void *writer(void *arg)
{
    char key[32];
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "/l/w%02d", i);
        wc_test_etcd_put(&etcd, key, "w", NULL);
    }
    return NULL;
}

Test(upstream, paged_list_is_one_snapshot_while_a_writer_writes)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    char key[32];
    for (int i = 0; i < 45; i++) {
        snprintf(key, sizeof(key), "/l/k%02d", i);
        put(key, "v");
    }
    pthread_t w;
    pthread_create(&w, NULL, writer, NULL);
    start_upstream("/l/", 7, false); /* at least 7 pages */
    size_t one = 1;
    cr_assert(wait_for(replaces_at_least, &one));
    pthread_join(w, NULL);
    pthread_mutex_lock(&R.mu);
    rec first = R.r[0];
    pthread_mutex_unlock(&R.mu);
    cr_assert_eq(first.kind, 'R');
    /* The snapshot holds exactly the keys written at or before its revision: 45 seeds plus
     * the writer's keys with revisions <= rev (the first seed is at revision 2). */
    size_t written_by_rev = (size_t)(first.rev - 1);
    cr_assert_eq(first.n, written_by_rev, "snapshot at %" PRId64 " has %zu keys", first.rev,
                 first.n);
    cr_assert_leq(first.max_mod, first.rev);
    /* And the watch continues exactly after it. */
    int64_t last = put("/l/zz", "end");
    cr_assert(wait_for(saw_rev, &last));
    rec ch[256];
    size_t n = changes(ch, 256);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ch[i].rev, first.rev + 1 + (int64_t)i, "change %zu", i);
}

/* A sink that takes the list page by page: 'B' begin (n: the count), 'p' a page (n keys, key:
 * its first), 'E' end; the keys of every page in order into paged_keys. */
static char paged_keys[64][16];
static size_t paged_n;
/* Every key of every page, bytes as they are (keys may hold any byte but NUL). */
static char paged_raw[256][32];
static size_t paged_raw_len[256], paged_raw_n;

static int s_list_begin(void *arg, int64_t count)
{
    add((rec){.kind = 'B', .n = (size_t)count});
    return 0;
}

static int s_list_page(void *arg, const wc_kv_spec *kvs, size_t n)
{
    rec x = {.kind = 'p', .n = n};
    snprintf(x.key, sizeof(x.key), "%.*s", (int)kvs[0].key_len, kvs[0].key);
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < n && paged_n < 64; i++)
        snprintf(paged_keys[paged_n++], sizeof(paged_keys[0]), "%.*s", (int)kvs[i].key_len,
                 kvs[i].key);
    for (size_t i = 0; i < n && paged_raw_n < 256; i++) {
        size_t len = kvs[i].key_len < 32 ? kvs[i].key_len : 32;
        memcpy(paged_raw[paged_raw_n], kvs[i].key, len);
        paged_raw_len[paged_raw_n++] = len;
    }
    pthread_mutex_unlock(&R.mu);
    add(x);
    return 0;
}

static int s_list_end(void *arg, int64_t rev, int64_t from, bool reset)
{
    add((rec){.kind = reset ? 'X' : 'E', .rev = rev, .head = from});
    return 0;
}

static bool ended(void *arg)
{
    for (size_t i = 0; i < R.n; i++)
        if (R.r[i].kind == 'E')
            return true;
    return false;
}

Test(upstream, a_paged_sink_gets_every_page_in_key_order_then_the_end)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    char key[32];
    int64_t last = 0;
    for (int i = 0; i < 45; i++) {
        snprintf(key, sizeof(key), "/g/k%02d", i);
        last = put(key, "v");
    }
    const char *eps[] = {wc_test_etcd_client_url(&etcd, 0)};
    wc_upstream_opts o = {.endpoints = eps,
                          .n_endpoints = 1,
                          .prefix = "/g/",
                          .prefix_len = 3,
                          .page_size = 7,
                          .sink = {.replace = s_replace,
                                   .list_begin = s_list_begin,
                                   .list_page = s_list_page,
                                   .list_end = s_list_end,
                                   .apply = s_apply,
                                   .progress = s_progress,
                                   .backfill = s_backfill,
                                   .backfill_abandon = s_backfill_abandon,
                                   .state = s_state}};
    paged_n = 0;
    up = wc_upstream_new(&o);
    cr_assert_not_null(up);
    cr_assert_eq(wc_upstream_start(up), 0);
    cr_assert(wait_for(ended, NULL));
    pthread_mutex_lock(&R.mu);
    cr_assert_eq(R.r[0].kind, 'B');
    cr_assert_eq(R.r[0].n, 45, "the count etcd reported");
    size_t pages = 0, keys = 0, i = 1;
    for (; i < R.n && R.r[i].kind == 'p'; i++) {
        pages++;
        keys += R.r[i].n;
        cr_assert_leq(R.r[i].n, 7);
    }
    /* A range of more than 4 pages is listed in key ranges at once, each paged on its own. */
    cr_assert_geq(pages, 7, "45 keys in pages of at most 7");
    cr_assert_eq(keys, 45);
    cr_assert_eq(R.r[i].kind, 'E', "the end follows the last page");
    cr_assert_eq(R.r[i].rev, last);
    for (int k = 0; k < 45; k++) {
        snprintf(key, sizeof(key), "/g/k%02d", k);
        cr_assert_str_eq(paged_keys[k], key, "every key once, in order");
    }
    for (size_t j = 0; j < R.n; j++)
        cr_assert_neq(R.r[j].kind, 'R', "replace is not called when the sink takes pages");
    pthread_mutex_unlock(&R.mu);
}

/* Orders keys as etcd does: bytes, then length. */
static int key_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t nx = strlen(x), ny = strlen(y);
    int c = memcmp(x, y, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

/* Starts a paged upstream on `prefix` with pages of `page` keys and waits for its list's end. */
static void list_paged_refill(const char *prefix, size_t page, int64_t refill)
{
    const char *eps[] = {wc_test_etcd_client_url(&etcd, 0)};
    wc_upstream_opts o = {.endpoints = eps,
                          .n_endpoints = 1,
                          .prefix = prefix,
                          .prefix_len = strlen(prefix),
                          .page_size = page,
                          .refill_revisions = refill,
                          .sink = {.replace = s_replace,
                                   .list_begin = s_list_begin,
                                   .list_page = s_list_page,
                                   .list_end = s_list_end,
                                   .apply = s_apply,
                                   .progress = s_progress,
                                   .backfill = s_backfill,
                                   .backfill_abandon = s_backfill_abandon,
                                   .state = s_state}};
    paged_n = paged_raw_n = 0;
    up = wc_upstream_new(&o);
    cr_assert_not_null(up);
    cr_assert_eq(wc_upstream_start(up), 0);
    cr_assert(wait_for(ended, NULL));
}

static void list_paged(const char *prefix, size_t page)
{
    list_paged_refill(prefix, page, 0);
}

/* The paged sink got the count, then the n keys of `want` (sorted) in more pages than half of
 * them (cut into key ranges, each paged on its own), each once and in order, then the end at
 * revision `rev`. */
static void handed_over_in_key_ranges(const char *const *want, size_t n, int64_t rev)
{
    pthread_mutex_lock(&R.mu);
    cr_assert_eq(R.r[0].kind, 'B');
    cr_assert_eq(R.r[0].n, n, "the count etcd reported");
    size_t pages = 0, i = 1;
    for (; i < R.n && R.r[i].kind == 'p'; i++)
        pages++;
    cr_assert_eq(R.r[i].kind, 'E', "the end follows the last page");
    cr_assert_eq(R.r[i].rev, rev, "listed at its revision");
    cr_assert_gt(pages, (n + 1) / 2, "cut into key ranges, each paged on its own");
    cr_assert_eq(paged_raw_n, n);
    for (size_t k = 0; k < n; k++) {
        cr_assert_eq(paged_raw_len[k], strlen(want[k]), "key %zu", k);
        cr_assert(memcmp(paged_raw[k], want[k], paged_raw_len[k]) == 0, "key %zu in order", k);
    }
    pthread_mutex_unlock(&R.mu);
}

/*
 * A big range is listed as disjoint key ranges at once, cut evenly on the two bytes after the
 * prefix its first and last keys share (cut i of 16: lo + (hi - lo) * i / 16): keys exactly at
 * the cuts, just below and above them, key ranges with no key at all, and keys with 0xff bytes
 * all come to the sink exactly once, in etcd's order, and nothing from outside the prefix.
 */
Test(upstream, a_list_in_key_ranges_at_once_hands_over_exactly_the_range)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    static char keys[128][16];
    const char *want[128];
    size_t n = 0;
    /* The first and last keys: lo = 0x0101, hi = 0xffff. */
    snprintf(keys[n++], 16, "/s/\x01\x01");
    snprintf(keys[n++], 16, "/s/\xff\xff\xff");
    snprintf(keys[n++], 16, "/s/\xff\xff");
    snprintf(keys[n++], 16, "/s/\xff");
    /* Around the first seven cuts; none between cuts 8 and 15: empty key ranges. */
    for (unsigned i = 1; i <= 7; i++) {
        unsigned c = 0x0101 + (0xffff - 0x0101) * i / 16;
        snprintf(keys[n++], 16, "/s/%c%c", c >> 8, c & 0xff);               /* at the cut */
        snprintf(keys[n++], 16, "/s/%c%c\xff", c >> 8, c & 0xff);           /* just above */
        snprintf(keys[n++], 16, "/s/%c%c\x01", c >> 8, c & 0xff);           /* just above */
        snprintf(keys[n++], 16, "/s/%c%c\xff\xff", c >> 8, (c - 1) & 0xff); /* just below */
        snprintf(keys[n++], 16, "/s/%c", c >> 8);                           /* below, shorter */
    }
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        want[i] = keys[i];
        last = put(keys[i], "v");
    }
    put("/s0", "outside");
    put("/r\xff", "outside");
    last = put("/s", "outside");
    qsort(want, n, sizeof(want[0]), key_cmp);
    size_t uniq = 0;
    for (size_t i = 0; i < n; i++)
        if (uniq == 0 || strcmp(want[uniq - 1], want[i]) != 0)
            want[uniq++] = want[i];
    list_paged("/s/", 2);
    handed_over_in_key_ranges(want, uniq, last);
}

/*
 * A start that refills lists in key ranges at etcd's current revision, the same as one that
 * does not: the highest keys deleted in the history it takes back (the last key now is well
 * below the last before) are not in it, and a key made since is: the keys now, each once, in
 * order; the history's window is announced with the list's end.
 */
Test(upstream, a_refilling_list_in_key_ranges_is_the_range_now)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    static char keys[64][16];
    const char *want[64];
    size_t n = 0;
    for (unsigned i = 0; i < 40; i++)
        snprintf(keys[n++], 16, "/s/%c%c", 0x10 + i * 5, 0x20 + i);
    snprintf(keys[n++], 16, "/s/\xf0\xf0");
    for (size_t i = 0; i < n; i++)
        put(keys[i], "v");
    /* The last key and the twenty below it gone, one more key. */
    int64_t rev;
    cr_assert_eq(wc_test_etcd_delete(&etcd, "/s/\xf0\xf0", &rev), 0);
    for (unsigned i = 20; i < 40; i++)
        cr_assert_eq(wc_test_etcd_delete(&etcd, keys[i], &rev), 0);
    int64_t head = put("/s/\x11", "later");
    size_t m = 0;
    for (unsigned i = 0; i < 20; i++)
        want[m++] = keys[i];
    want[m++] = "/s/\x11";
    qsort(want, m, sizeof(want[0]), key_cmp);
    list_paged_refill("/s/", 2, 22);
    handed_over_in_key_ranges(want, m, head);
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < R.n; i++)
        if (R.r[i].kind == 'E')
            cr_assert_eq(R.r[i].head, head - 22, "the history of 22 revisions is announced");
    pthread_mutex_unlock(&R.mu);
}

Test(upstream, a_paged_list_of_a_prefix_without_keys_is_an_empty_snapshot)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    for (int i = 0; i < 20; i++)
        put(i % 2 ? "/e0" : "/d/k", "outside");
    int64_t last = put("/e", "outside");
    list_paged("/e/", 2);
    pthread_mutex_lock(&R.mu);
    cr_assert_eq(R.r[0].kind, 'B');
    cr_assert_eq(R.r[0].n, 0);
    cr_assert_eq(R.r[1].kind, 'E', "no page, then the end");
    cr_assert_eq(R.r[1].rev, last);
    cr_assert_eq(paged_raw_n, 0);
    pthread_mutex_unlock(&R.mu);
}

Test(upstream, watch_delivers_every_write_in_order)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    start_upstream("/w/", 1000, false);
    int one = 1;
    cr_assert(wait_for(is_live, &one));
    int64_t revs[40];
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "/w/k%d", i % 5);
        if (i % 6 == 5) {
            cr_assert_eq(wc_test_etcd_delete(&etcd, key, &revs[i]), 0);
        } else {
            revs[i] = put(key, "x");
        }
        put("/outside", "o"); /* not in the range: never delivered */
    }
    cr_assert(wait_for(saw_rev, &revs[39]));
    rec ch[256];
    size_t n = changes(ch, 256);
    size_t k = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "/w/k%d", i % 5);
        bool deleted_existing = i % 6 == 5 && i >= 5; /* k0..k4 all exist by then */
        if (i % 6 == 5 && !deleted_existing)
            continue;
        cr_assert_lt(k, n);
        cr_assert_eq(ch[k].rev, revs[i], "change %zu", k);
        cr_assert_str_eq(ch[k].key, key);
        cr_assert_eq(ch[k].kind, i % 6 == 5 ? 'D' : 'P');
        k++;
    }
    cr_assert_eq(k, n, "nothing else delivered");
}

Test(upstream, resumes_after_an_etcd_restart_with_no_gap_and_no_duplicate)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    start_upstream("/r/", 1000, false);
    int one = 1;
    cr_assert(wait_for(is_live, &one));
    int64_t before = put("/r/a", "1");
    cr_assert(wait_for(saw_rev, &before));
    wc_test_etcd_kill_member(&etcd, 0);
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0);
    int64_t after = 0;
    for (int i = 0; i < 10; i++)
        after = put("/r/b", "2");
    cr_assert(wait_for(saw_rev, &after));
    int two = 2;
    cr_assert(wait_for(is_live, &two), "the watch was re-created");
    rec ch[64];
    size_t n = changes(ch, 64);
    cr_assert_eq(n, 11);
    for (size_t i = 1; i < n; i++)
        cr_assert_eq(ch[i].rev, ch[i - 1].rev + 1, "change %zu follows %zu", i, i - 1);
}

Test(upstream, compaction_while_cut_off_leads_to_a_relist)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 3), 0);
    start_upstream("/c/", 1000, false); /* reads member 0 only */
    int one = 1;
    cr_assert(wait_for(is_live, &one));
    put("/c/a", "1");
    wc_test_etcd_kill_member(&etcd, 0);
    /* While member 0 is down, the others move on and compact the history it needs. */
    int64_t last = 0;
    for (int i = 0; i < 5; i++)
        last = put("/c/b", "x");
    cr_assert_eq(wc_test_etcd_compact(&etcd, last), 0);
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0);
    size_t two = 2;
    cr_assert(wait_for(replaces_at_least, &two), "a second list after the compaction");
    pthread_mutex_lock(&R.mu);
    rec second = {0};
    for (size_t i = 0, k = 0; i < R.n; i++)
        if (R.r[i].kind == 'R' && ++k == 2)
            second = R.r[i];
    pthread_mutex_unlock(&R.mu);
    cr_assert_geq(second.rev, last);
    cr_assert_eq(second.n, 2, "/c/a and /c/b");
}

/* The first replace recorded (kind 'R'). */
static rec first_replace(void)
{
    rec r = {0};
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < R.n && !r.kind; i++)
        if (R.r[i].kind == 'R')
            r = R.r[i];
    pthread_mutex_unlock(&R.mu);
    return r;
}

/* How many lists ('R') the sink got. */
static size_t replaces(void)
{
    size_t n = 0;
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < R.n; i++)
        n += R.r[i].kind == 'R' || R.r[i].kind == 'X';
    pthread_mutex_unlock(&R.mu);
    return n;
}

static bool refill_checked(void *arg)
{
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    const uint64_t *want = arg; /* {waits, ends} at least */
    return st.refill_waits >= want[0] && st.refill_ends >= want[1];
}

/* Waits until the upstream's refill checks reach `waits` and `ends`, up to 15 s (the stats are
 * not the recorder's: polled). */
static bool wait_checks(uint64_t waits, uint64_t ends)
{
    uint64_t want[2] = {waits, ends};
    for (int i = 0; i < 1500 && !refill_checked(want); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return refill_checked(want);
}

/* An upstream on `prefix` that takes refill_revs revisions back (not started yet). */
static void new_refilling(const char *prefix, int64_t refill)
{
    refill_revs = refill;
    new_upstream(prefix, 1000, false, NULL, NULL);
}

static bool history_over(void *arg)
{
    for (size_t i = 0; i < R.n; i++)
        if (R.r[i].kind == 'H' || R.r[i].kind == 'A')
            return true;
    return false;
}

/* Waits for the history's end, handed over ('H', returned) or given up ('A', returned). */
static rec history_end(void)
{
    cr_assert(wait_for(history_over, NULL), "the history is handed over or given up");
    rec r = {0};
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < R.n && !r.kind; i++)
        if (R.r[i].kind == 'H' || R.r[i].kind == 'A')
            r = R.r[i];
    pthread_mutex_unlock(&R.mu);
    return r;
}

/* A start lists at etcd's current revision and hands that over at once; etcd's history before
 * it, taken back on the watch's stream, follows whole: every change of the window, in order,
 * deletions and changes of keys that were there before it with the state they replaced. */
Test(upstream, a_start_lists_at_etcds_revision_and_takes_the_history_back_behind_it)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    /* 30 changes under /f/ (a delete among them), each followed by a write outside it. */
    int64_t revs[30], mods[4] = {0};
    char key[32], val[8];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "/f/k%d", i % 4);
        snprintf(val, sizeof(val), "v%d", i);
        if (i % 7 == 6)
            cr_assert_eq(wc_test_etcd_delete(&etcd, key, &revs[i]), 0);
        else
            revs[i] = put(key, val);
        put("/outside", "o");
    }
    int64_t head = put("/outside", "last");
    new_refilling("/f/", 40);
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'H', "handed over");
    rec first = first_replace();
    cr_assert_eq(first.rev, head, "listed at etcd's revision");
    cr_assert_eq(h.rev, head - 40, "the history of 40 revisions back");
    cr_assert_eq(h.head, head);
    pthread_mutex_lock(&R.mu);
    size_t k = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "/f/k%d", i % 4);
        int64_t before = mods[i % 4];
        mods[i % 4] = i % 7 == 6 ? 0 : revs[i];
        if (revs[i] <= h.rev)
            continue;
        cr_assert_lt(k, hist_n, "change at %" PRId64 " missing", revs[i]);
        cr_assert_eq(Hist[k].rev, revs[i], "change %zu", k);
        cr_assert_str_eq(Hist[k].key, key);
        cr_assert_eq(Hist[k].kind, i % 7 == 6 ? 'D' : 'P');
        cr_assert_eq(Hist[k].prev_mod, before, "change %zu: the state it replaced", k);
        k++;
    }
    cr_assert_eq(k, hist_n, "exactly etcd's history: %zu changes, want %zu", hist_n, k);
    pthread_mutex_unlock(&R.mu);
    cr_assert_gt(k, 10);
    /* and the watch goes on from the list's revision */
    int64_t last = put("/f/k9", "after");
    cr_assert(wait_for(saw_rev, &last));
    rec ch[8];
    size_t n = changes(ch, 8);
    cr_assert_eq(n, 1, "the write after the list, only");
    cr_assert_eq(ch[0].rev, last);
}

/* Many keys changed in the window: the history goes back no further than the refill_revs-th
 * most recently changed key of the list, however few revisions that is (a bulk load changes
 * many keys in each of its revisions). */
Test(upstream, the_history_goes_back_no_further_than_the_most_recently_changed_keys)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    int64_t revs[20];
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "/m/k%02d", i);
        revs[i] = put(key, "x");
    }
    new_refilling("/m/", 10);
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'H');
    cr_assert_eq(h.rev, revs[10],
                 "from the 10th most recent change (%" PRId64 "), not 10 revisions back (%" PRId64
                 ")",
                 revs[10], revs[19] - 10);
    cr_assert_eq(h.head, revs[19]);
    pthread_mutex_lock(&R.mu);
    cr_assert_eq(hist_n, 9, "the changes after it");
    for (size_t i = 0; i < hist_n; i++) {
        cr_assert_eq(Hist[i].rev, revs[11 + i]);
        cr_assert_eq(Hist[i].prev_mod, 0, "a key made then has no state before");
    }
    pthread_mutex_unlock(&R.mu);
}

static atomic_bool asking;

/* Asks for progress every 20 ms while `asking`, as consistent reads do. */
static void *progress_asker(void *arg)
{
    while (atomic_load(&asking)) {
        wc_upstream_request_progress(up);
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    return NULL;
}

/* Nothing under the prefix in the window: etcd sends no history at all, and does not say when
 * it has none to send. After a quiet spell the upstream checks etcd: nothing under the prefix
 * changed in it, so the history is proven empty and handed over as such. Progress requests
 * answered meanwhile (consistent reads ask for them) do not keep it from being quiet. */
Test(upstream, a_history_that_etcd_sends_nothing_for_is_proven_empty_by_a_check)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    put("/q/a", "1");
    int64_t head = 0;
    for (int i = 0; i < 20; i++)
        head = put("/outside", "o");
    new_refilling("/q/", 10);
    wc_upstream_refill_quiet(up, 100);
    cr_assert_eq(wc_upstream_start(up), 0);
    atomic_store(&asking, true);
    pthread_t t;
    pthread_create(&t, NULL, progress_asker, NULL);
    rec h = history_end();
    atomic_store(&asking, false);
    pthread_join(t, NULL);
    cr_assert_eq(h.kind, 'H', "handed over, not given up: %s", h.key);
    cr_assert_eq(h.rev, head - 10);
    cr_assert_eq(h.n, 0);
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    cr_assert_geq(st.refill_ends, 1, "proven by a check");
    cr_assert_eq(st.backfills, 1);
    int one = 1;
    cr_assert(wait_for(is_live, &one), "live");
    int64_t last = put("/q/b", "2");
    cr_assert(wait_for(saw_rev, &last));
    rec ch[8];
    size_t n = changes(ch, 8);
    cr_assert_eq(n, 1, "the write after it, only");
    cr_assert_eq(ch[0].rev, last);
    cr_assert_eq(replaces(), 1);
}

Test(upstream, the_history_reaches_back_to_etcds_compaction_revision_at_most)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    int64_t mid = 0, head = 0;
    for (int i = 0; i < 40; i++) {
        head = put(i % 2 ? "/g/a" : "/g/b", "x");
        if (i == 17)
            mid = head;
    }
    cr_assert_eq(wc_test_etcd_compact(&etcd, mid), 0);
    new_refilling("/g/", 1000);
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'H');
    cr_assert_eq(h.rev, mid, "from the compaction revision");
    cr_assert_eq(h.n, (size_t)(head - mid), "every change after it");
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < hist_n; i++)
        cr_assert_eq(Hist[i].rev, mid + 1 + (int64_t)i);
    pthread_mutex_unlock(&R.mu);
}

/* ---- a history through several watches at once (wc_upstream_refill_span) ---------------- */

typedef struct written {
    pthread_mutex_t mu;
    int64_t rev[1024]; /* every change under the prefix, by revision; a transaction once */
    int count[1024];   /* changes at that revision (a transaction has several) */
    size_t n;
} written;

static written W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void note(int64_t rev, int count)
{
    pthread_mutex_lock(&W.mu);
    cr_assert_lt(W.n, 1024);
    W.rev[W.n] = rev;
    W.count[W.n++] = count;
    pthread_mutex_unlock(&W.mu);
}

/* A history under /s/ with dense and empty stretches, deletes and a transaction of three. */
static int64_t write_history(void)
{
    char key[32];
    int64_t rev = 0;
    bool there[23] = {false};
    for (int i = 0; i < 240; i++) {
        if (i >= 80 && i < 140) { /* a stretch with nothing under the prefix */
            put("/outside", "o");
            continue;
        }
        snprintf(key, sizeof(key), "/s/k%02d", i % 23);
        if (i % 11 == 10 && there[i % 23]) {
            cr_assert_eq(wc_test_etcd_delete(&etcd, key, &rev), 0);
            note(rev, 1);
            there[i % 23] = false;
        } else if (i == 170) {
            const char *keys[] = {"/s/t1", "/s/t2", "/s/t3"}, *vals[] = {"1", "2", "3"};
            cr_assert_eq(wc_test_etcd_txn_put(&etcd, keys, vals, 3, &rev), 0);
            note(rev, 3);
        } else {
            note(rev = put(key, "x"), 1);
            there[i % 23] = true;
        }
    }
    return rev;
}

/* A one-member etcd holding write_history()'s history, and an upstream on /s/ that takes 1,000
 * revisions back when it starts, through watches of `span` revisions each. Returns the
 * history's last revision. */
static int64_t refilling_upstream(int64_t span)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    W.n = 0;
    int64_t head = write_history();
    new_refilling("/s/", 1000);
    wc_upstream_refill_span(up, span);
    return head;
}

static void *live_writer(void *arg)
{
    char key[32];
    for (int i = 0; i < 40; i++) {
        int64_t rev;
        snprintf(key, sizeof(key), "/s/live%02d", i);
        if (wc_test_etcd_put(&etcd, key, "l", &rev) == 0)
            note(rev, 1);
    }
    return NULL;
}

/* The history handed over (h) is exactly what was written in (h.rev, h.head], each change once,
 * in revision order, a transaction whole; the changes the watch handed to apply are exactly
 * what was written after h.head, up to `upto`. */
static void exactly_what_was_written(rec h, int64_t upto)
{
    rec ch[1024];
    size_t n = changes(ch, 1024), k = 0, a = 0;
    pthread_mutex_lock(&R.mu);
    pthread_mutex_lock(&W.mu);
    for (size_t i = 0; i < W.n && W.rev[i] <= upto; i++) {
        if (W.rev[i] <= h.rev)
            continue;
        for (int c = 0; c < W.count[i]; c++) {
            if (W.rev[i] <= h.head) {
                cr_assert_lt(k, hist_n, "the history's change at %" PRId64 " is missing", W.rev[i]);
                cr_assert_eq(Hist[k].rev, W.rev[i], "history %zu: %" PRId64 ", want %" PRId64, k,
                             Hist[k].rev, W.rev[i]);
                k++;
            } else {
                cr_assert_lt(a, n, "the change at %" PRId64 " is missing", W.rev[i]);
                cr_assert_eq(ch[a].rev, W.rev[i], "change %zu: %" PRId64 ", want %" PRId64, a,
                             ch[a].rev, W.rev[i]);
                a++;
            }
        }
    }
    cr_assert_eq(k, hist_n, "no more in the history than was written");
    pthread_mutex_unlock(&W.mu);
    pthread_mutex_unlock(&R.mu);
    for (; a < n && ch[a].rev <= upto; a++)
        cr_assert_fail("a change at %" PRId64 " that was not written there", ch[a].rev);
}

/* A last write: once it reaches the sink, the sink holds the list at etcd's revision, exactly
 * the history before it, and exactly the writes after it. Returns the history's record. */
static rec ends_with_the_history(void)
{
    int64_t last = put("/s/zz", "end");
    note(last, 1);
    cr_assert(wait_for(saw_rev, &last), "the writes after the list reach the sink");
    rec h = history_end();
    cr_assert_eq(h.kind, 'H', "the history is handed over, not given up: %s", h.key);
    rec first = first_replace();
    cr_assert_eq(first.rev, h.head, "the history ends at the list's revision");
    exactly_what_was_written(h, last);
    return h;
}

/* A window of some 240 revisions taken through 16 watches of about 15 revisions each, while a
 * writer goes on: the history is handed over whole, once and in order, and the writes after
 * the list go on through the watch that stays. */
Test(upstream, a_history_through_several_watches_is_handed_over_in_order_once)
{
    int64_t head = refilling_upstream(7);
    pthread_t t;
    pthread_create(&t, NULL, live_writer, NULL);
    cr_assert_eq(wc_upstream_start(up), 0);
    pthread_join(t, NULL);
    rec h = ends_with_the_history();
    cr_assert_lt(h.rev, head - 200, "far enough back to need many watches");
    cr_assert_eq(replaces(), 1, "no relist");
}

/* The sink's list callback (s_replace) compacts etcd inside the window the history is about to
 * be taken from: its first watches are compacted away before they are read. The history is
 * given up; the watch that stays goes on, with no relist. */
Test(upstream, a_compaction_under_the_history_gives_it_up_and_the_watch_goes_on)
{
    refilling_upstream(7);
    compact_in_window = 100;
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'A', "given up");
    cr_assert(strstr(h.key, "compacted"), "why: %s", h.key);
    int64_t last = put("/s/zz", "end");
    cr_assert(wait_for(saw_rev, &last), "the watch goes on");
    rec ch[8];
    size_t n = changes(ch, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(ch[0].rev, last);
    cr_assert_eq(replaces(), 1, "no relist");
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    cr_assert_eq(st.backfills_lost, 1);
    cr_assert_eq(st.reconnects[WC_UPC_COMPACTED], 0);
}

/* A window of 39 revisions (the 40th most recently changed key, each key changed once, at a
 * revision of its own) through watches of 1 revision each: more than the 16 watches there are,
 * so each takes 3 and 13 are enough; none starts past the list's revision, so the writes that go
 * on after the list come through the watch that stays and never into the history. */
Test(upstream, a_history_wider_than_its_watches_ends_at_the_lists_revision)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    W.n = 0;
    char key[32];
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "/s/k%02d", i);
        note(put(key, "x"), 1);
    }
    new_refilling("/s/", 40);
    wc_upstream_refill_span(up, 1);
    pthread_t t;
    pthread_create(&t, NULL, live_writer, NULL);
    cr_assert_eq(wc_upstream_start(up), 0);
    pthread_join(t, NULL);
    rec h = ends_with_the_history();
    cr_assert_eq(h.head - h.rev, 39);
    cr_assert_eq(h.n, 39);
}

/* A history whose stream etcd is slow to serve (the seam holds it: etcd's responses wait in the
 * socket) while the prefix keeps changing: its quiet spells are checked, each finds history
 * still to come, and it waits for it. Once the stream flows, the history is handed over whole,
 * and the writes after the list follow. */
Test(upstream, a_history_gone_quiet_with_changes_still_to_come_waits_for_them)
{
    refilling_upstream(7);
    /* quiet spells of 0.9 s before its first response: the 8 checks it makes before it gives
     * up take over 7 s, more than this test needs on a busy machine */
    wc_upstream_refill_quiet(up, 300);
    wc_upstream_hold_watch(up, true);
    cr_assert_eq(wc_upstream_start(up), 0);
    pthread_t t;
    pthread_create(&t, NULL, live_writer, NULL);
    cr_assert(wait_checks(2, 0), "the quiet history is checked, and waits");
    pthread_join(t, NULL);
    cr_assert(wait_checks(3, 0), "and checked again after the writes");
    wc_upstream_hold_watch(up, false);
    ends_with_the_history();
    cr_assert_eq(replaces(), 1, "no relist");
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    cr_assert_eq(st.refill_ends, 0, "no end was claimed while history was still to come");
}

/* The window's changes under the prefix are a key made and deleted in it. The stream is held,
 * so the history goes quiet before they arrive: the check finds the state at the list's
 * revision the one at the window's start, and the history is handed over as empty, as a list
 * would show it (neither shows a trace of that key). When the held stream flows again, the
 * late changes are dropped, and the writes after the list follow exactly. */
Test(upstream, a_history_proven_by_a_check_drops_what_comes_late)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    put("/t/a", "1");
    for (int i = 0; i < 10; i++)
        put("/outside", "o");
    int64_t gone = 0;
    put("/t/tmp", "x");
    cr_assert_eq(wc_test_etcd_delete(&etcd, "/t/tmp", &gone), 0);
    for (int i = 0; i < 5; i++)
        put("/outside", "o");
    new_refilling("/t/", 15);
    wc_upstream_refill_quiet(up, 100);
    wc_upstream_hold_watch(up, true);
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'H');
    cr_assert_eq(h.n, 0);
    cr_assert_lt(h.rev, gone - 1, "a window from before the key was made");
    cr_assert(wait_checks(0, 1));
    wc_upstream_hold_watch(up, false);
    int64_t last = put("/t/b", "2");
    cr_assert(wait_for(saw_rev, &last));
    rec ch[8];
    size_t n = changes(ch, 8);
    cr_assert_eq(n, 1, "the write after the list, only (got %zu changes)", n);
    cr_assert_eq(ch[0].rev, last);
    cr_assert_str_eq(ch[0].key, "/t/b");
    cr_assert_eq(replaces(), 1, "no relist, no reset");
}

/* A history whose stream never flows: its checks keep finding changes still to come, and after
 * a bounded number of them it is given up, without a relist. */
Test(upstream, a_history_that_never_comes_is_given_up_after_its_checks)
{
    refilling_upstream(7);
    wc_upstream_refill_quiet(up, 100);
    wc_upstream_hold_watch(up, true);
    cr_assert_eq(wc_upstream_start(up), 0);
    rec h = history_end();
    cr_assert_eq(h.kind, 'A');
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    cr_assert_geq(st.refill_waits, 2, "checked, and waited, before giving it up");
    cr_assert_eq(st.refill_ends, 0);
    cr_assert_eq(st.backfills_lost, 1);
    cr_assert_eq(replaces(), 1, "no relist");
    wc_upstream_hold_watch(up, false);
    int64_t last = put("/s/zz", "end");
    cr_assert(wait_for(saw_rev, &last), "the watch goes on");
}

Test(upstream, current_rev_and_progress_requests_follow_etcd)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    start_upstream("/q/", 1000, false);
    int one = 1;
    cr_assert(wait_for(is_live, &one));
    int64_t elsewhere = put("/not-watched", "x");
    int64_t rev = 0;
    cr_assert_eq(wc_upstream_current_rev(up, &rev, 3000), 0);
    cr_assert_geq(rev, elsewhere);
    wc_upstream_request_progress(up);
    cr_assert(wait_for(progress_at_least, &rev),
              "a progress notification at etcd's revision, with nothing under the prefix");
}

/* ---- failures on the upstream's own side, injected at each step (seam.h) ------------------
 *
 * Each test makes one step fail while etcd is healthy and writes go on, then lets it succeed
 * again. What must hold: the upstream reports DOWN with a reason naming the step, again and
 * again (it backs off and retries: the thread does not end), counts each failure as "local",
 * and once the step works again it is LIVE by itself and every write under /f/ reaches the sink
 * exactly once: in the one list, or as a change after it, in order.
 */

#define FAIL_WRITES 16

typedef struct writes {
    int64_t rev[FAIL_WRITES]; /* of every write under /f/, in order; one key each */
    size_t n;
} writes;

static void write_key(writes *w, const char *key)
{
    cr_assert_lt(w->n, FAIL_WRITES);
    w->rev[w->n++] = put(key, "v");
}

static bool down_twice(void *arg)
{
    return R.down_match >= 2;
}

/* Live, and holding revision `want` (in a list or a change). */
static bool live_with_rev(void *arg)
{
    int64_t want = *(int64_t *)arg;
    if (R.state != WC_UP_LIVE)
        return false;
    for (size_t i = 0; i < R.n; i++)
        if (R.r[i].kind != 'G' && R.r[i].rev >= want)
            return true;
    return false;
}

/* Makes `mask` fail from now on and waits until two DOWN reports named `needle`. */
static void inject(uint32_t mask, const char *needle)
{
    pthread_mutex_lock(&R.mu);
    R.needle = needle;
    R.down_match = 0;
    pthread_mutex_unlock(&R.mu);
    wc_upstream_fail_at(up, mask);
}

static void wait_down_twice(void)
{
    bool ok = wait_for(down_twice, NULL);
    pthread_mutex_lock(&R.mu);
    cr_assert(ok, "two DOWN reports naming '%s'; got %d of %d, the last: '%s'", R.needle,
              R.down_match, R.down, R.last_down);
    pthread_mutex_unlock(&R.mu);
}

/* Exactly one list, then exactly the writes after its revision, once each and in order. */
static void delivered_exactly(const writes *w)
{
    pthread_mutex_lock(&R.mu);
    size_t lists = 0, in_list = 0, next = 0;
    int64_t list_rev = 0;
    for (size_t i = 0; i < R.n; i++) {
        const rec *x = &R.r[i];
        if (x->kind == 'R' || x->kind == 'X') {
            lists++;
            list_rev = x->rev;
            cr_assert_eq(lists, 1, "one list; another at %" PRId64, x->rev);
            for (next = 0; next < w->n && w->rev[next] <= list_rev; next++)
                in_list++;
            cr_assert_eq(x->n, in_list, "the list at %" PRId64 " holds every write up to it",
                         list_rev);
        } else if (x->kind == 'P' || x->kind == 'D') {
            cr_assert_eq(lists, 1, "a change before the list");
            cr_assert_lt(next, w->n, "a change no one wrote, at %" PRId64, x->rev);
            cr_assert_eq(x->rev, w->rev[next], "change %zu of the writes", next);
            next++;
        }
    }
    cr_assert_eq(lists, 1);
    cr_assert_eq(next, w->n, "every write delivered: %zu of %zu", next, w->n);
    pthread_mutex_unlock(&R.mu);
}

/* Every failure reported was counted once, as local, and nothing else failed. */
static void counted_as_local(void)
{
    wc_upstream_stats st;
    wc_upstream_stats_get(up, &st);
    pthread_mutex_lock(&R.mu);
    int down = R.down;
    pthread_mutex_unlock(&R.mu);
    cr_assert_geq(st.reconnects[WC_UPC_LOCAL], 2);
    cr_assert_eq(st.reconnects[WC_UPC_LOCAL], (uint64_t)down, "%" PRIu64 " counted, %d reported",
                 st.reconnects[WC_UPC_LOCAL], down);
    for (int c = 0; c < WC_UPC_COUNT; c++)
        if (c != WC_UPC_LOCAL)
            cr_assert_eq(st.reconnects[c], 0, "cause %s", wc_upstream_cause_name(c));
    cr_assert_str_eq(wc_upstream_cause_name(WC_UPC_LOCAL), "local");
}

/* Lets every step succeed again and checks the upstream comes back with nothing lost. */
static void clear_and_recover(writes *w)
{
    wc_upstream_fail_at(up, 0);
    write_key(w, "/f/after"); /* right away: in the list or a change, whichever comes */
    bool ok = wait_for(live_with_rev, &w->rev[w->n - 1]);
    pthread_mutex_lock(&R.mu);
    cr_assert(ok, "live again once the step works; state %d, last DOWN '%s'", (int)R.state,
              R.last_down);
    pthread_mutex_unlock(&R.mu);
    write_key(w, "/f/later"); /* once live: must come as a change */
    cr_assert(wait_for(saw_rev, &w->rev[w->n - 1]));
    delivered_exactly(w);
    counted_as_local();
}

/* The step fails from the start (the list, or the first watch, never gets through). */
static void fails_from_the_start(wc_upstream_step step, const char *needle, bool auth)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    if (auth)
        cr_assert_eq(wc_test_etcd_enable_auth(&etcd, "root", "secret"), 0);
    writes w = {0};
    write_key(&w, "/f/seed");
    new_upstream("/f/", 1000, false, auth ? "root" : NULL, auth ? "secret" : NULL);
    inject(WC_UPSTEP(step), needle);
    cr_assert_eq(wc_upstream_start(up), 0);
    wait_down_twice();
    char key[32];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "/f/k%d", i);
        write_key(&w, key); /* while it fails */
    }
    wait_down_twice(); /* still failing, still retrying */
    pthread_mutex_lock(&R.mu);
    cr_assert_eq(R.live, 0, "never live while the step fails");
    pthread_mutex_unlock(&R.mu);
    clear_and_recover(&w);
}

/* A live watch breaks (a watch response cannot be allocated) and, with `also` failing too,
 * cannot be opened again. */
static void breaks_while_live(uint32_t also, const char *needle)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    writes w = {0};
    write_key(&w, "/f/seed");
    start_upstream("/f/", 1000, false);
    int one = 1;
    cr_assert(wait_for(is_live, &one));
    inject(WC_UPSTEP(WC_UPSTEP_WATCH_ALLOC) | also, needle);
    char key[32];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "/f/k%d", i);
        write_key(&w, key);
    }
    wait_down_twice();
    clear_and_recover(&w);
}

Test(upstream, list_survives_curl_easy_init_failing)
{
    fails_from_the_start(WC_UPSTEP_POST_EASY_INIT, "list: curl_easy_init failed", false);
}

Test(upstream, list_survives_curl_slist_append_failing)
{
    fails_from_the_start(WC_UPSTEP_POST_SLIST, "list: curl_slist_append failed", false);
}

Test(upstream, list_survives_curl_easy_setopt_failing)
{
    fails_from_the_start(WC_UPSTEP_POST_SETOPT, "list: curl_easy_setopt(CURLOPT_", false);
}

Test(upstream, list_survives_its_request_not_allocated)
{
    fails_from_the_start(WC_UPSTEP_LIST_REQUEST, "list: out of memory for a range request", false);
}

Test(upstream, list_survives_its_snapshot_not_allocated)
{
    fails_from_the_start(WC_UPSTEP_LIST_ALLOC, "list: out of memory for the snapshot", false);
}

Test(upstream, auth_survives_its_request_not_allocated)
{
    fails_from_the_start(WC_UPSTEP_AUTH_REQUEST, "auth: out of memory for the request", true);
}

Test(upstream, watch_survives_its_create_request_not_allocated)
{
    fails_from_the_start(WC_UPSTEP_WATCH_REQUEST, "watch: out of memory for the create_request",
                         false);
}

Test(upstream, watch_survives_curl_easy_init_failing)
{
    fails_from_the_start(WC_UPSTEP_WATCH_EASY_INIT, "watch: curl_easy_init failed", false);
}

Test(upstream, watch_survives_curl_slist_append_failing)
{
    fails_from_the_start(WC_UPSTEP_WATCH_SLIST, "watch: curl_slist_append failed", false);
}

Test(upstream, watch_survives_curl_easy_setopt_failing)
{
    fails_from_the_start(WC_UPSTEP_WATCH_SETOPT, "watch: curl_easy_setopt(CURLOPT_", false);
}

Test(upstream, watch_survives_curl_multi_add_handle_failing)
{
    fails_from_the_start(WC_UPSTEP_WATCH_MULTI_ADD, "watch: curl_multi_add_handle failed", false);
}

Test(upstream, watch_survives_curl_multi_perform_failing)
{
    fails_from_the_start(WC_UPSTEP_WATCH_PERFORM, "watch: curl_multi_perform failed", false);
}

Test(upstream, live_watch_survives_a_response_not_allocated)
{
    breaks_while_live(0, "watch: out of memory for a watch response");
}

Test(upstream, live_watch_that_cannot_reopen_resumes_once_it_can)
{
    breaks_while_live(WC_UPSTEP(WC_UPSTEP_WATCH_MULTI_ADD), "watch: curl_multi_add_handle failed");
}
