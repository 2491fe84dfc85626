/*
 * Truthful revisions against real etcd: a relist's events after etcd was restarted and compacted
 * behind wcached's back, and watch streams that the server ends (timeoutSeconds) while
 * transactions of several keys stream by. Readers behave like Kubernetes reflectors
 * (harness.h): they start from a state at a known revision, and whenever a stream ends they
 * watch again from the last resourceVersion they saw. Each reader's view is then held to
 * etcd's own range of the prefix, key by key, value and mod_revision, and each event to having
 * come once.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"
#include "harness.h"

static struct wc_test_etcd etcd;
static wc_test_daemon daemon_;

static void stop_all(void)
{
    wc_test_stop_all(&daemon_, &etcd);
}

TestSuite(relist, .fini = stop_all, .timeout = 120);

/* ---- views -------------------------------------------------------------------------- */

/* A reader's view of the prefix: one entry per key (a few dozen keys: a plain array). */
typedef struct view {
    wc_test_hist *kv;
    size_t n, cap;
} view;

static wc_test_hist *view_find(view *v, const char *key)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->kv[i].key, key) == 0)
            return &v->kv[i];
    return NULL;
}

static void view_put(view *v, const wc_test_hist *h)
{
    wc_test_hist *cur = view_find(v, h->key);
    if (!cur) {
        if (v->n == v->cap) {
            v->cap = v->cap ? v->cap * 2 : 32;
            v->kv = realloc(v->kv, v->cap * sizeof(*v->kv));
        }
        cur = &v->kv[v->n++];
        cur->key = strdup(h->key);
        cur->value = NULL;
        cur->deleted = false;
    }
    free(cur->value);
    cur->value = h->value ? strdup(h->value) : NULL;
    cur->mod_rev = h->mod_rev;
}

/* Removes key; false when the view did not hold it. */
static bool view_del(view *v, const char *key)
{
    wc_test_hist *cur = view_find(v, key);
    if (!cur)
        return false;
    free(cur->key);
    free(cur->value);
    *cur = v->kv[--v->n];
    return true;
}

static void view_free(view *v)
{
    wc_test_hist_free(v->kv, v->n);
    memset(v, 0, sizeof(*v));
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const wc_test_hist *)a)->key, ((const wc_test_hist *)b)->key);
}

/* Expects `who`'s view to be etcd's state `want` (in key order): the same keys, each with the
 * same value and mod_revision. */
static void expect_state(view *v, const wc_test_hist *want, size_t nwant, const char *who)
{
    qsort(v->kv, v->n, sizeof(*v->kv), cmp_key);
    size_t i = 0, j = 0;
    while (i < v->n || j < nwant) {
        int c = i == v->n ? 1 : j == nwant ? -1 : strcmp(v->kv[i].key, want[j].key);
        if (c < 0) {
            cr_expect_fail("%s holds %s (rev %" PRId64 "), which etcd does not", who, v->kv[i].key,
                           v->kv[i].mod_rev);
            i++;
        } else if (c > 0) {
            cr_expect_fail("%s misses %s (rev %" PRId64 ")", who, want[j].key, want[j].mod_rev);
            j++;
        } else {
            cr_expect_eq(v->kv[i].mod_rev, want[j].mod_rev,
                         "%s: %s at rev %" PRId64 ", etcd %" PRId64, who, want[j].key,
                         v->kv[i].mod_rev, want[j].mod_rev);
            cr_expect_str_eq(v->kv[i].value ? v->kv[i].value : "(none)", want[j].value,
                             "%s: value of %s", who, want[j].key);
            i++;
            j++;
        }
    }
}

static int cmp_change(const void *a, const void *b)
{
    const wc_test_hist *x = *(wc_test_hist *const *)a, *y = *(wc_test_hist *const *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->mod_rev > y->mod_rev) - (x->mod_rev < y->mod_rev);
}

/*
 * Checks reader i: no 410, revisions never going back, every object's resourceVersion its
 * modRevision, no change (key, revision) twice, no deletion of a key it did not hold, and its
 * view (the state at its start, init, with every event applied) equal to etcd's `want`.
 */
static void check_reader(wc_test_reader *r, int i, const wc_test_hist *init, size_t ninit,
                         const wc_test_hist *want, size_t nwant)
{
    char who[32];
    snprintf(who, sizeof(who), "reader %d", i);
    cr_expect_eq(atomic_load(&r->expired), 0, "%s was told to relist", who);
    cr_expect_eq(atomic_load(&r->backwards), 0, "%s: a stream went back in revisions", who);
    cr_expect_eq(atomic_load(&r->rv_lies), 0,
                 "%s: %d objects whose resourceVersion is not their modRevision", who,
                 atomic_load(&r->rv_lies));
    for (size_t k = 1; k < r->n; k++)
        cr_expect_geq(r->ev[k].mod_rev, r->ev[k - 1].mod_rev, "%s: event %zu goes back", who, k);
    const wc_test_hist **by_change = malloc((r->n + 1) * sizeof(*by_change));
    for (size_t k = 0; k < r->n; k++)
        by_change[k] = &r->ev[k];
    qsort(by_change, r->n, sizeof(*by_change), cmp_change);
    for (size_t k = 1; k < r->n; k++)
        cr_expect(cmp_change(&by_change[k - 1], &by_change[k]) != 0,
                  "%s saw %s at %" PRId64 " twice", who, by_change[k]->key, by_change[k]->mod_rev);
    free(by_change);
    view v = {0};
    for (size_t k = 0; k < ninit; k++)
        view_put(&v, &init[k]);
    for (size_t k = 0; k < r->n; k++) {
        if (!r->ev[k].deleted)
            view_put(&v, &r->ev[k]);
        else
            cr_expect(view_del(&v, r->ev[k].key),
                      "%s: DELETED %s at %" PRId64 ", a key it did not hold", who, r->ev[k].key,
                      r->ev[k].mod_rev);
    }
    expect_state(&v, want, nwant, who);
    view_free(&v);
}

/* ---- etcd and the daemon -------------------------------------------------------------- */

/* One etcd member, and wcached caching /t/ only: revisions outside it are gaps to it. */
static void start_etcd_and_daemon(void)
{
    static const char *const args[] = {"--etcd-prefix", "/t/", NULL};
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, args, true), 0, "see %s",
                 daemon_.log_path);
}

/* etcd's own state of /t/ (*n keys); *rev gets its revision. */
static wc_test_hist *etcd_state(size_t *n, int64_t *rev)
{
    wc_test_hist *s = NULL;
    cr_assert_eq(wc_test_etcd_range(wc_test_etcd_client_url(&etcd, 0), "/t/", &s, n, rev), 0,
                 "etcd's range of /t/");
    return s;
}

/* Waits until wcached's cache holds revision rev, and every reader's first watch is in. */
static void wait_daemon(int64_t rev, int watchers)
{
    char path[128];
    snprintf(path, sizeof(path),
             "/keys/t/?resourceVersion=%" PRId64 "&resourceVersionMatch=NotOlderThan", rev);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, path, &r), 0);
    cr_assert_eq(r.code, 200, "%s", r.body);
    wc_test_resp_free(&r);
    for (int i = 0; i < 250 && wc_test_metric(daemon_.base, "wcached_watchers") < watchers; i++)
        usleep(20000);
    cr_assert_geq(wc_test_metric(daemon_.base, "wcached_watchers"), watchers);
}

/* wcached's consistent list of /t/ holds etcd's state `want`, and every object's
 * resourceVersion is its modRevision. */
static void expect_list(const wc_test_hist *want, size_t nwant)
{
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/keys/t/", &r), 0);
    cr_assert_eq(r.code, 200, "%s", r.body);
    json_t *l = wc_test_resp_json(&r);
    json_t *items = json_object_get(l, "items");
    view v = {0};
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *o = json_array_get(items, i);
        json_t *md = json_object_get(o, "metadata");
        const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *value = json_string_value(json_object_get(o, "value"));
        cr_assert(key && value, "%s", r.body);
        wc_test_hist h = {
            .key = strdup(key),
            .value = strdup(value),
            .mod_rev = json_integer_value(json_object_get(o, "modRevision")),
        };
        cr_expect_eq(rv ? atoll(rv) : -1, h.mod_rev, "list: %s says resourceVersion %s", h.key,
                     rv ? rv : "(none)");
        view_put(&v, &h);
        free(h.key);
        free(h.value);
    }
    expect_state(&v, want, nwant, "the list");
    view_free(&v);
    json_decref(l);
    wc_test_resp_free(&r);
}

/* One scripted write: a put, a delete, or a transaction that puts three keys at one revision. */
typedef struct op {
    char kind; /* 'p', 'd' or 't' */
    const char *k[3], *v[3];
} op;

static int64_t run_op(const op *o)
{
    int64_t rev = -1;
    int rc = o->kind == 'p'   ? wc_test_etcd_put(&etcd, o->k[0], o->v[0], &rev)
             : o->kind == 'd' ? wc_test_etcd_delete(&etcd, o->k[0], &rev)
                              : wc_test_etcd_txn_put(&etcd, o->k, o->v, 3, &rev);
    cr_assert_eq(rc, 0, "etcd: %c %s", o->kind, o->k[0]);
    return rev;
}

static int64_t run_ops(const op *ops, size_t n)
{
    int64_t rev = 0;
    for (size_t i = 0; i < n; i++)
        rev = run_op(&ops[i]);
    return rev;
}

/* ---- the tests ---------------------------------------------------------------------- */

Test(relist, readers_cut_anywhere_in_a_relist_resume_to_etcds_state)
{
    start_etcd_and_daemon();
    static const op before[] = {
        {'p', {"/t/k0"}, {"a0"}},          {'p', {"/t/k1"}, {"a1"}}, {'p', {"/t/k2"}, {"a2"}},
        {'p', {"/t/k3"}, {"a3"}},          {'p', {"/t/k4"}, {"a4"}}, {'p', {"/t/k5"}, {"a5"}},
        {'p', {"/t/k6"}, {"a6"}},          {'p', {"/t/k7"}, {"a7"}}, {'p', {"/t/k8"}, {"a8"}},
        {'p', {"/t/keep"}, {"untouched"}},
    };
    run_ops(before, sizeof(before) / sizeof(before[0]));
    size_t ninit;
    int64_t start;
    wc_test_hist *init = etcd_state(&ninit, &start);
    /* Reader i cuts each of its streams after i+1 events: together they cut the relist's
     * events at every place. */
    enum { R = 6 };
    wc_test_reader rs[R];
    for (int i = 0; i < R; i++)
        wc_test_readers_start(&rs[i], 1, daemon_.base,
                              &(wc_test_reader_opts){.prefix = "/t/", .cut_after = i + 1}, start);
    wait_daemon(start, R);

    /* Frozen, then cut off: etcd dies and comes back on its data, and while wcached cannot
     * see it, keys are added, changed (one twice), deleted (one re-created, one born and gone),
     * three put by one transaction, and the history compacted. */
    kill(daemon_.pid, SIGSTOP);
    wc_test_etcd_kill_member(&etcd, 0);
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0, "etcd restarts on its data");
    static const op frozen[] = {
        {'p', {"/t/n0"}, {"new0"}},
        {'p', {"/t/k1"}, {"b1"}},
        {'d', {"/t/k2"}, {NULL}},
        {'p', {"/t/n1"}, {"new1"}},
        {'d', {"/t/k3"}, {NULL}},
        {'p', {"/t/k4"}, {"b4"}},
        {'t', {"/t/k5", "/t/n2", "/t/k6"}, {"t5", "t-new2", "t6"}},
        {'p', {"/t/gone"}, {"briefly"}},
        {'d', {"/t/gone"}, {NULL}},
        {'d', {"/t/k7"}, {NULL}},
        {'p', {"/t/k1"}, {"c1"}},
        {'p', {"/x/outside"}, {"not ours"}},
        {'d', {"/t/k8"}, {NULL}},
        {'p', {"/t/k2"}, {"again2"}},
        {'p', {"/t/n3"}, {"new3"}},
    };
    int64_t last = run_ops(frozen, sizeof(frozen) / sizeof(frozen[0]));
    cr_assert_eq(wc_test_etcd_compact(&etcd, last), 0);
    kill(daemon_.pid, SIGCONT);
    /* The relist first (its list at `last`), then a change that streams live after it. */
    for (int t = 0; t < 500 && wc_test_metric(daemon_.base, "wcached_upstream_relists_total") < 1;
         t++)
        usleep(20000);
    cr_expect_geq(wc_test_metric(daemon_.base, "wcached_upstream_relists_total"), 1,
                  "wcached relisted");
    int64_t end = run_op(&(op){'p', {"/t/end"}, {"after"}});
    for (int i = 0; i < R; i++)
        cr_expect(wc_test_reader_wait(&rs[i], end, 30000), "reader %d stuck at %" PRId64, i,
                  atomic_load(&rs[i].rv));
    wc_test_readers_stop(rs, R);

    cr_expect_eq(wc_test_metric(daemon_.base, "wcached_upstream_resets_total"), 0,
                 "the relist followed the history (no reset)");
    size_t nwant;
    wc_test_hist *want = etcd_state(&nwant, NULL);
    for (int i = 0; i < R; i++) {
        check_reader(&rs[i], i, init, ninit, want, nwant);
        cr_expect_geq(atomic_load(&rs[i].rewatches), 1, "reader %d cut its stream", i);
        /* A deletion etcd no longer dates takes a revision of the gap no other event has. */
        for (size_t k = 0; k < rs[i].n; k++) {
            if (!rs[i].ev[k].deleted)
                continue;
            int64_t rev = rs[i].ev[k].mod_rev;
            cr_expect(rev > start && rev <= last,
                      "reader %d: %s deleted at %" PRId64 ", outside the gap (%" PRId64 ", %" PRId64
                      "]",
                      i, rs[i].ev[k].key, rev, start, last);
            int shared = 0;
            for (size_t m = 0; m < rs[i].n; m++)
                shared += m != k && rs[i].ev[m].mod_rev == rev;
            cr_expect_eq(shared, 0,
                         "reader %d: the deletion of %s shares revision %" PRId64
                         " with %d other events",
                         i, rs[i].ev[k].key, rev, shared);
        }
    }
    expect_list(want, nwant);
    wc_test_hist_free(want, nwant);
    wc_test_hist_free(init, ninit);
    wc_test_readers_free(rs, R);
}

/* ---- transactions under streams that time out ------------------------------------------ */

enum { TXN_MAX = 6000, TXN_KEYS = 30, TXN_VALUE = 4096 };

/* The transactions put: three keys each, at one revision. */
typedef struct txn_writer {
    int64_t rev[TXN_MAX]; /* of transaction i */
    int n;
    bool failed;
} txn_writer;

/* The keys of transaction i: three of a pool of TXN_KEYS, in turn. */
static void txn_keys(int i, char keys[3][16])
{
    for (int j = 0; j < 3; j++)
        snprintf(keys[j], sizeof(keys[j]), "/t/k%02d", (3 * i + j) % TXN_KEYS);
}

/* Puts transactions for at least ms milliseconds and at least `count` of them, as long as
 * they go through, TXN_MAX in all, and for 10 s at most. */
static void write_txns(txn_writer *w, int ms, int count)
{
    char values[3][TXN_VALUE];
    int64_t t0 = wc_test_now_ms();
    for (int done = 0; w->n < TXN_MAX && !w->failed; done++) {
        int64_t t = wc_test_now_ms() - t0;
        if ((t >= ms && done >= count) || t >= 10000)
            break;
        char keys[3][16];
        txn_keys(w->n, keys);
        const char *k[3], *v[3];
        for (int j = 0; j < 3; j++) {
            int len = snprintf(values[j], TXN_VALUE, "txn %d key %d ", w->n, j);
            memset(values[j] + len, 'x', TXN_VALUE - 1 - (size_t)len);
            values[j][TXN_VALUE - 1] = '\0';
            k[j] = keys[j];
            v[j] = values[j];
        }
        int64_t rev = -1;
        w->failed = wc_test_etcd_txn_put(&etcd, k, v, 3, &rev) != 0;
        if (!w->failed)
            w->rev[w->n++] = rev;
    }
}

/* Every transaction after reader i's start reached it whole: its three keys at its revision,
 * and nothing else there. */
static void expect_whole_transactions(wc_test_reader *r, int i, const txn_writer *w)
{
    int missed = 0, first = -1;
    size_t k = 0;
    for (int t = 0; t < w->n; t++) {
        if (w->rev[t] <= r->start_rv)
            continue;
        while (k < r->n && r->ev[k].mod_rev < w->rev[t])
            k++; /* the reader's events are in revision order (check_reader) */
        char keys[3][16];
        txn_keys(t, keys);
        bool seen[3] = {false, false, false};
        int others = 0;
        for (size_t m = k; m < r->n && r->ev[m].mod_rev == w->rev[t]; m++) {
            int j = 0;
            while (j < 3 && strcmp(r->ev[m].key, keys[j]) != 0)
                j++;
            if (j < 3 && !seen[j])
                seen[j] = true;
            else
                others++;
        }
        if (!seen[0] || !seen[1] || !seen[2] || others) {
            if (missed++ == 0)
                first = t;
        }
    }
    if (missed) {
        char keys[3][16];
        txn_keys(first, keys);
        int n = 0;
        for (size_t m = 0; m < r->n; m++)
            n += r->ev[m].mod_rev == w->rev[first];
        bool cut = false;
        for (int e = 0; e < atomic_load(&r->server_ends) && e < WC_TEST_READER_ENDS; e++)
            cut = cut || r->ends_at[e] == w->rev[first];
        cr_expect_fail("reader %d: %d transactions not seen whole; the first at revision %" PRId64
                       " (%s %s %s): %d of its events arrived%s",
                       i, missed, w->rev[first], keys[0], keys[1], keys[2], n,
                       cut ? ", and the server ended a stream right after them" : "");
    }
}

Test(relist, streams_that_time_out_never_split_a_transaction)
{
    start_etcd_and_daemon();
    run_op(&(op){'p', {"/t/start"}, {"0"}});
    size_t ninit;
    int64_t start;
    wc_test_hist *init = etcd_state(&ninit, &start);
    /* Every stream ends after a second, wherever the traffic is. Fast readers end while live.
     * Slow ones stall (a small receive buffer, reading nothing) while a few MiB of
     * transactions go by: their sockets fill up and their streams time out while wcached is
     * still sending them the past; then they read again, and resume while the transactions
     * go on. */
    enum { FAST = 3, SLOW = 3, R = FAST + SLOW, ROUNDS = 3 };
    wc_test_reader rs[R];
    wc_test_readers_start(rs, FAST, daemon_.base,
                          &(wc_test_reader_opts){.prefix = "/t/", .query = "&timeoutSeconds=1"},
                          start);
    wc_test_readers_start(
        rs + FAST, SLOW, daemon_.base,
        &(wc_test_reader_opts){.prefix = "/t/", .query = "&timeoutSeconds=1", .rcvbuf = 4096},
        start);
    wait_daemon(start, R);
    txn_writer *w = calloc(1, sizeof(*w));
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = FAST; i < R; i++)
            atomic_store(&rs[i].paused, true);
        /* 250 transactions of 12 KiB are more than a socket holds; in 2 s every stream's
         * deadline has passed. */
        write_txns(w, 2000, 250);
        for (int i = FAST; i < R; i++)
            atomic_store(&rs[i].paused, false);
        write_txns(w, 1000, 0);
    }
    cr_assert_not(w->failed, "transaction %d failed", w->n);
    int64_t end = run_op(&(op){'p', {"/t/end"}, {"after"}});
    for (int i = 0; i < R; i++)
        cr_expect(wc_test_reader_wait(&rs[i], end, 30000), "reader %d stuck at %" PRId64, i,
                  atomic_load(&rs[i].rv));
    wc_test_readers_stop(rs, R);

    size_t nwant;
    wc_test_hist *want = etcd_state(&nwant, NULL);
    int ends[R];
    for (int i = 0; i < R; i++) {
        check_reader(&rs[i], i, init, ninit, want, nwant);
        expect_whole_transactions(&rs[i], i, w);
        /* The ends this test is about: inside the transactions' stream (not the one after). */
        ends[i] = 0;
        for (int e = 0; e < atomic_load(&rs[i].server_ends) && e < WC_TEST_READER_ENDS; e++)
            ends[i] += rs[i].ends_at[e] >= w->rev[0] && rs[i].ends_at[e] < w->rev[w->n - 1];
        cr_expect_geq(ends[i], 1, "reader %d: no stream ended while transactions streamed", i);
    }
    cr_log_info("%d transactions; streams ended among them: %d %d %d (fast), %d %d %d (slow)", w->n,
                ends[0], ends[1], ends[2], ends[3], ends[4], ends[5]);
    wc_test_hist_free(want, nwant);
    wc_test_hist_free(init, ninit);
    wc_test_readers_free(rs, R);
    free(w);
}
