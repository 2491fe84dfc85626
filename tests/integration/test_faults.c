/*
 * Upstream faults with real etcd members: members killed under load, the whole cluster
 * restarted with history compacted while wcached is frozen, another cluster at the same
 * address. Readers behave like Kubernetes reflectors (watch from an RV; when a stream ends,
 * watch again from the last RV seen) and their streams are checked against etcd's own history
 * or final state: every change once, in order, no gap, and no reader forced to relist.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

TestSuite(faults, .fini = stop_all, .timeout = 300);

/* ---- readers ----------------------------------------------------------------------- */

static void start_readers(wc_test_reader *rs, int n, int64_t rv)
{
    wc_test_readers_start(rs, n, daemon_.base, &(wc_test_reader_opts){.prefix = "/f/"}, rv);
}

/* Waits until every reader has seen `rev`, then stops them. */
static void finish_readers(wc_test_reader *rs, int n, int64_t rev)
{
    for (int i = 0; i < n; i++)
        cr_expect(wc_test_reader_wait(&rs[i], rev, 30000), "reader %d stuck at %" PRId64, i,
                  atomic_load(&rs[i].rv));
    wc_test_readers_stop(rs, n);
}

/* Every reader's stream is exactly etcd's history after its start: each change once, in
 * order, no gap. */
static void check_against_history(wc_test_reader *rs, int n)
{
    wc_test_hist *h = NULL;
    size_t nh = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(wc_test_etcd_history(wc_test_etcd_client_url(&etcd, 0), "/f/",
                                          rs[i].start_rv + 1, 2000, &h, &nh),
                     0);
        cr_expect_eq(rs[i].n, nh, "reader %d saw %zu changes, etcd has %zu", i, rs[i].n, nh);
        for (size_t k = 0; k < nh && k < rs[i].n; k++) {
            cr_assert_eq(rs[i].ev[k].mod_rev, h[k].mod_rev, "reader %d change %zu", i, k);
            cr_assert_str_eq(rs[i].ev[k].key, h[k].key, "reader %d change %zu", i, k);
            cr_assert_eq(rs[i].ev[k].deleted, h[k].deleted, "reader %d change %zu", i, k);
        }
        cr_expect_eq(atomic_load(&rs[i].expired), 0, "reader %d had to relist", i);
        wc_test_hist_free(h, nh);
    }
}

/* ---- writers ------------------------------------------------------------------------ */

typedef struct writer {
    pthread_t th;
    atomic_bool stop;
    _Atomic int writes;
} writer;

static void *write_loop(void *arg)
{
    writer *w = arg;
    char key[32], val[32];
    for (int i = 0; !atomic_load(&w->stop) && i < 100000; i++) {
        snprintf(key, sizeof(key), "/f/k%02d", i % 20);
        snprintf(val, sizeof(val), "v%d", i);
        int rc = (i % 11 == 10) ? wc_test_etcd_delete(&etcd, key, NULL)
                                : wc_test_etcd_put(&etcd, key, val, NULL);
        if (rc == 0)
            atomic_fetch_add(&w->writes, 1);
        usleep(rc == 0 ? 5000 : 50000); /* ~150 writes/s; slower while members are down */
    }
    return NULL;
}

static int64_t put(const char *key, const char *value)
{
    int64_t rev = -1;
    for (int i = 0; i < 100 && wc_test_etcd_put(&etcd, key, value, &rev) != 0; i++)
        usleep(100000);
    cr_assert_gt(rev, 0, "put %s", key);
    return rev;
}

/* ---- the tests ---------------------------------------------------------------------- */

Test(faults, killing_each_member_in_turn_loses_nothing)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 3), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, NULL, true), 0, "see %s",
                 daemon_.log_path);
    int64_t start = put("/f/start", "0");
    enum { N = 4 };
    wc_test_reader rs[N];
    start_readers(rs, N, start);
    writer w = {0};
    pthread_create(&w.th, NULL, write_loop, &w);
    /* wcached reads from member 0 first: it goes down first. */
    for (int m = 0; m < 3; m++) {
        usleep(1500000);
        wc_test_etcd_kill_member(&etcd, m);
        usleep(1500000);
        cr_assert_eq(wc_test_etcd_restart_member(&etcd, m), 0, "member %d restarts", m);
    }
    usleep(1000000);
    atomic_store(&w.stop, true);
    pthread_join(w.th, NULL);
    int64_t end = put("/f/end", "1");
    finish_readers(rs, N, end);
    check_against_history(rs, N);
    cr_expect_gt(atomic_load(&w.writes), 100, "a steady write load ran: %d writes",
                 atomic_load(&w.writes));
    double reconnects =
        wc_test_metric(daemon_.base, "wcached_upstream_reconnects_total{cause=\"transport\"}");
    cr_expect_geq(reconnects, 1, "the upstream did fail over");
    wc_test_readers_free(rs, N);
}

Test(faults, whole_cluster_restart_and_compaction_while_frozen)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, NULL, true), 0);
    /* The expected final state, kept by the test as it writes. */
    char keys[10][16], vals[10][16];
    bool present[10] = {0};
    for (int i = 0; i < 10; i++) {
        snprintf(keys[i], sizeof(keys[i]), "/f/k%d", i);
        snprintf(vals[i], sizeof(vals[i]), "a%d", i);
        put(keys[i], vals[i]);
        present[i] = true;
    }
    int64_t start = put("/f/start", "0");
    enum { N = 3 };
    wc_test_reader rs[N];
    start_readers(rs, N, start);
    usleep(500000);
    /* Frozen, then cut off: the whole cluster restarts before anything else is written, so
     * no change can reach wcached through a socket buffer. */
    kill(daemon_.pid, SIGSTOP);
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0);
    int64_t last = 0;
    for (int i = 0; i < 10; i++) {
        if (i % 3 == 0) {
            wc_test_etcd_delete(&etcd, keys[i], &last);
            present[i] = false;
        } else {
            snprintf(vals[i], sizeof(vals[i]), "b%d", i);
            last = put(keys[i], vals[i]);
        }
    }
    cr_assert_eq(wc_test_etcd_compact(&etcd, last), 0);
    kill(daemon_.pid, SIGCONT);
    int64_t end = put("/f/end", "1");
    finish_readers(rs, N, end);
    /* Every reader's view, applied change by change from the start, equals etcd's state. */
    for (int r = 0; r < N; r++) {
        cr_expect_eq(atomic_load(&rs[r].expired), 0, "reader %d had to relist", r);
        for (int i = 0; i < 10; i++) {
            int last_ev = -1;
            for (size_t k = 0; k < rs[r].n; k++)
                if (strcmp(rs[r].ev[k].key, keys[i]) == 0)
                    last_ev = (int)k;
            bool deleted = last_ev >= 0 && rs[r].ev[last_ev].deleted;
            if (!present[i])
                cr_expect(deleted, "reader %d: %s should be gone", r, keys[i]);
            else
                cr_expect(last_ev >= 0 && !deleted, "reader %d: %s should be there (changed)", r,
                          keys[i]);
        }
        for (size_t k = 1; k < rs[r].n; k++)
            cr_expect_geq(rs[r].ev[k].mod_rev, rs[r].ev[k - 1].mod_rev, "reader %d in order", r);
    }
    json_t *l = NULL;
    wc_test_resp resp;
    cr_assert_eq(wc_test_get(daemon_.base, "/keys/f/", &resp), 0);
    l = wc_test_resp_json(&resp);
    size_t want = 2; /* /f/start and /f/end */
    for (int i = 0; i < 10; i++)
        want += present[i];
    cr_assert_eq(json_array_size(json_object_get(l, "items")), want, "%s", resp.body);
    json_decref(l);
    wc_test_resp_free(&resp);
    cr_expect_geq(wc_test_metric(daemon_.base, "wcached_upstream_relists_total"), 1);
    wc_test_readers_free(rs, N);
}

/* Reads w until it ends (it must), closes it, and waits for the daemon's one upstream reset. */
static void expect_one_reset(wc_test_watch *w)
{
    json_t *ev;
    while ((ev = wc_test_watch_next(w, 20000)) != NULL)
        json_decref(ev);
    cr_assert(wc_test_watch_ended(w), "the stream from before the reset was ended");
    wc_test_watch_close(w);
    for (int i = 0; i < 200 && wc_test_metric(daemon_.base, "wcached_upstream_resets_total") < 1;
         i++)
        usleep(50000);
    cr_assert_eq(wc_test_metric(daemon_.base, "wcached_upstream_resets_total"), 1);
}

/* A watch from `rv`, a revision the reset made meaningless, is refused (not streamed). */
static void expect_watch_refused(int64_t rv)
{
    char path[128];
    snprintf(path, sizeof(path), "/keys/f/?watch=1&resourceVersion=%" PRId64, rv);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, path, &r), 0);
    cr_assert_neq(r.code, 200, "%ld %s", r.code, r.body);
    wc_test_resp_free(&r);
}

Test(faults, another_cluster_at_the_same_address_resets_instead_of_going_back)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, NULL, true), 0);
    int64_t old = 0;
    for (int i = 0; i < 30; i++)
        old = put("/f/old", "x");
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/f/?watch=1");
    cr_assert_not_null(w);
    cr_assert_eq(wc_test_etcd_replace_cluster(&etcd), 0);
    int64_t fresh = put("/f/new", "y");
    cr_assert_lt(fresh, old, "the new cluster's revisions are lower");
    /* The old stream ends: its revisions mean nothing in the new cluster. */
    expect_one_reset(w);
    /* The cache now serves the new cluster, and only it, once the reset's list is in (readers
     * get 429 until then). */
    wc_test_resp r;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(wc_test_get(daemon_.base, "/keys/f/", &r), 0);
        if (r.code != 429)
            break;
        wc_test_resp_free(&r);
        usleep(50000);
    }
    cr_assert_eq(r.code, 200, "%s", r.body);
    json_t *l = wc_test_resp_json(&r);
    json_t *items = json_object_get(l, "items");
    cr_assert_eq(json_array_size(items), 1, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "key")), "/f/new");
    json_decref(l);
    wc_test_resp_free(&r);
    /* A reader resuming from the old cluster's revision is not served a stream of the new
     * cluster's changes as if they came after it. */
    expect_watch_refused(old);
}

Test(faults, a_member_restored_from_an_older_snapshot_does_not_take_the_cache_back)
{
    /* The same cluster (same ID) comes back from a backup older than what the cache holds:
     * its revisions restart below the cache's. Serving its changes as new would replay old
     * revisions to readers; wcached must notice, reset, and refuse the lost revisions. */
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, NULL, true), 0);
    put("/f/kept", "before the snapshot");
    cr_assert_eq(wc_test_etcd_snapshot(&etcd, "backup.db"), 0);
    int64_t old = 0;
    for (int i = 0; i < 30; i++)
        old = put("/f/lost", "after the snapshot");
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/f/?watch=1");
    cr_assert_not_null(w);
    for (int i = 0; i < 200 && wc_test_metric(daemon_.base, "wcached_cache_revision") < old; i++)
        usleep(50000);
    cr_assert_eq(wc_test_etcd_restore(&etcd, "backup.db"), 0);
    int64_t fresh = put("/f/new", "after the restore");
    cr_assert_lt(fresh, old, "the restored cluster's revisions are lower");
    /* The stream from before the restore ends: its revisions are gone from etcd. */
    expect_one_reset(w);
    /* The reset lists the restored cluster at its revision (and takes its history back). */
    for (int i = 0; i < 100 && wc_test_metric(daemon_.base, "wcached_cache_revision") < fresh; i++)
        usleep(50000);
    cr_assert_geq(wc_test_metric(daemon_.base, "wcached_cache_revision"), fresh);
    /* The cache now holds the restored state: the key written after the snapshot is gone. */
    wc_test_resp r;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(wc_test_get(daemon_.base, "/keys/f/", &r), 0);
        if (r.code == 200 && strstr(r.body, "/f/new"))
            break;
        wc_test_resp_free(&r);
        usleep(50000);
    }
    json_t *l = wc_test_resp_json(&r);
    json_t *items = json_object_get(l, "items");
    cr_assert_eq(json_array_size(items), 2, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "key")),
                     "/f/kept");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "key")), "/f/new");
    json_decref(l);
    wc_test_resp_free(&r);
    /* A reader resuming from a lost revision is not served the restored cluster's changes as
     * if they came after it. */
    expect_watch_refused(old);
}

Test(faults, while_etcd_is_down_the_last_state_is_served)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, etcd.endpoints, NULL, true), 0);
    put("/f/a", "1");
    int64_t rev = put("/f/b", "2");
    /* Wait until the cache has it, then take etcd away. */
    char path[96];
    snprintf(path, sizeof(path),
             "/keys/f/?resourceVersion=%" PRId64 "&resourceVersionMatch=NotOlderThan", rev);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, path, &r), 0);
    cr_assert_eq(r.code, 200);
    wc_test_resp_free(&r);
    wc_test_watch *live = wc_test_watch_open(daemon_.base, "/keys/f/?watch=1&resourceVersion=0");
    cr_assert_not_null(live);
    wc_test_etcd_kill_member(&etcd, 0);
    for (int i = 0; i < 100; i++) {
        if (wc_test_get(daemon_.base, "/readyz", &r) == 0 && r.code == 503)
            break;
        wc_test_resp_free(&r);
        usleep(50000);
    }
    cr_assert_eq(r.code, 503, "/readyz says the upstream is gone");
    cr_assert_not_null(strstr(r.body, "upstream"), "%s", r.body);
    wc_test_resp_free(&r);
    /* Any-state reads and new watches are still served from the cache. */
    cr_assert_eq(wc_test_get(daemon_.base, "/keys/f/?resourceVersion=0", &r), 0);
    cr_assert_eq(r.code, 200, "%s", r.body);
    json_t *l = wc_test_resp_json(&r);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 2);
    json_decref(l);
    wc_test_resp_free(&r);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/f/?watch=1&resourceVersion=0");
    cr_assert_not_null(w);
    cr_assert_eq(wc_test_watch_code(w), 200);
    int n = 0;
    json_t *ev;
    while ((ev = wc_test_watch_next(w, 1500)) != NULL) {
        if (strcmp(wc_test_ev_type(ev), "ADDED") == 0)
            n++;
        json_decref(ev);
    }
    cr_assert_eq(n, 2, "the last known state");
    cr_assert_not(wc_test_watch_ended(live), "streams already open stay open");
    /* etcd comes back and the streams carry on. */
    cr_assert_eq(wc_test_etcd_restart_member(&etcd, 0), 0);
    int64_t after = put("/f/c", "3");
    bool seen = false;
    while (!seen && (ev = wc_test_watch_next(live, 15000)) != NULL) {
        seen = wc_test_ev_rv(ev) == after;
        json_decref(ev);
    }
    cr_assert(seen, "the change after etcd came back reached the open stream");
    wc_test_watch_close(w);
    wc_test_watch_close(live);
}
