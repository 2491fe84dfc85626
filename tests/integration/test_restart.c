/*
 * A restart without a relist storm: readers watch, wcached is stopped (SIGTERM, and later
 * kill -9) while writes go on, and it starts again on the same address. Ready as soon as its
 * list at etcd's revision is in, it takes the history etcd kept back into its ring behind it;
 * every reader, re-watching from the last resourceVersion it saw as a Kubernetes reflector does,
 * waits for that history if it needs it and gets exactly etcd's history: no 410, no relist, no
 * change missed or repeated. A reader older than etcd's compaction still gets 410.
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
static wc_test_daemon upper;    /* a wcached that daemon_ reads instead of etcd (a tier) */
static const char *upstream_at; /* daemon_'s --etcd-endpoints: etcd's, or upper's */
static char base[64];           /* the daemon's address, the same across its restarts */
static char listen_at[64];      /* --listen for a restart: that address */

static void stop_all(void)
{
    if (upper.pid > 0)
        wc_test_daemon_stop(&upper, SIGTERM);
    wc_test_stop_all(&daemon_, &etcd);
}

TestSuite(restart, .fini = stop_all, .timeout = 240);

/* Starts (or restarts) wcached caching /t/ with the extra NULL-terminated args, on the
 * address it had before once it had one. */
static void start_daemon(const char *const *extra)
{
    const char *args[16] = {"--etcd-prefix", "/t/"};
    size_t n = 2;
    if (listen_at[0]) {
        args[n++] = "--listen";
        args[n++] = listen_at;
    }
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert_eq(
        wc_test_daemon_start(&daemon_, upstream_at ? upstream_at : etcd.endpoints, args, true), 0,
        "see %s", daemon_.log_path);
    if (!listen_at[0]) {
        snprintf(base, sizeof(base), "%s", daemon_.base);
        snprintf(listen_at, sizeof(listen_at), "%.56s", daemon_.base + strlen("http://"));
    }
    cr_assert_str_eq(daemon_.base, base, "the restart listens where the readers look");
}

/* True when the daemon's log holds `needle`. */
static bool log_has(const char *needle)
{
    FILE *f = fopen(daemon_.log_path, "r");
    cr_assert_not_null(f, "%s", daemon_.log_path);
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* True once the daemon's log holds `needle`, waiting up to 15 s for it. */
static bool log_comes(const char *needle)
{
    for (int i = 0; i < 1500; i++) {
        if (log_has(needle))
            return true;
        usleep(10000);
    }
    return false;
}

/* ---- a writer that never stops ------------------------------------------------------ */

typedef struct writer {
    pthread_t th;
    atomic_bool stop;
    atomic_int ops;
    atomic_bool failed;
} writer;

/* Puts, deletes, three-key transactions under /t/ and writes outside it, in turn, every few
 * milliseconds: what readers must see exactly, whether wcached runs or not. */
static void *write_main(void *arg)
{
    writer *w = arg;
    for (int i = 0; !atomic_load(&w->stop); i++) {
        char key[32], v[3][32];
        snprintf(key, sizeof(key), "/t/k%02d", i % 17);
        int rc;
        if (i % 11 == 10) {
            const char *k[3] = {"/t/x0", "/t/x1", "/t/x2"}, *vals[3];
            for (int j = 0; j < 3; j++) {
                snprintf(v[j], sizeof(v[j]), "txn%d-%d", i, j);
                vals[j] = v[j];
            }
            rc = wc_test_etcd_txn_put(&etcd, k, vals, 3, NULL);
        } else if (i % 7 == 6) {
            rc = wc_test_etcd_delete(&etcd, key, NULL);
        } else if (i % 3 == 2) {
            rc = wc_test_etcd_put(&etcd, "/u/outside", "not ours", NULL);
        } else {
            snprintf(v[0], sizeof(v[0]), "v%d", i);
            rc = wc_test_etcd_put(&etcd, key, v[0], NULL);
        }
        if (rc != 0)
            atomic_store(&w->failed, true);
        atomic_fetch_add(&w->ops, 1);
        usleep(3000);
    }
    return NULL;
}

/* Lets the writer do at least n more operations. */
static void writes_go_on(writer *w, int n)
{
    int until = atomic_load(&w->ops) + n;
    for (int t = 0; t < 3000 && atomic_load(&w->ops) < until; t++)
        usleep(10000);
    cr_assert_geq(atomic_load(&w->ops), until, "the writer is stuck");
}

/* ---- checks ------------------------------------------------------------------------- */

/* Reader i saw exactly etcd's history after its start: the same changes, in the same order,
 * with the same values. */
static void expect_history(const wc_test_reader *r, int i, const wc_test_hist *h, size_t nh)
{
    cr_expect_eq(atomic_load(&r->expired), 0, "reader %d got 410 and would relist", i);
    cr_expect_eq(atomic_load(&r->rv_lies), 0, "reader %d: resourceVersion is not modRevision", i);
    size_t k = 0;
    for (; k < r->n && k < nh; k++) {
        const wc_test_hist *a = &r->ev[k], *b = &h[k];
        bool same = a->mod_rev == b->mod_rev && a->deleted == b->deleted &&
                    strcmp(a->key, b->key) == 0 &&
                    (a->deleted || (a->value && b->value && strcmp(a->value, b->value) == 0));
        if (!same) {
            cr_expect_fail("reader %d, change %zu: %s %s at %" PRId64 ", etcd: %s %s at %" PRId64,
                           i, k, a->deleted ? "DELETED" : "PUT", a->key, a->mod_rev,
                           b->deleted ? "DELETED" : "PUT", b->key, b->mod_rev);
            return;
        }
    }
    cr_expect_eq(r->n, nh, "reader %d saw %zu changes, etcd has %zu", i, r->n, nh);
}

/* The first event of a watch from rv: its type ("ERROR" for 410). */
static char *first_event_type(int64_t rv, int64_t *code)
{
    char path[160];
    snprintf(path, sizeof(path), "/keys/t/?watch=1&resourceVersion=%" PRId64, rv);
    wc_test_watch *w = wc_test_watch_open(base, path);
    cr_assert_not_null(w);
    cr_assert_eq(wc_test_watch_code(w), 200);
    json_t *ev = wc_test_watch_next(w, 5000);
    cr_assert_not_null(ev, "no event from %" PRId64, rv);
    char *type = strdup(wc_test_ev_type(ev));
    *code = json_integer_value(json_object_get(json_object_get(ev, "object"), "code"));
    json_decref(ev);
    wc_test_watch_close(w);
    return type;
}

/* ---- the test ----------------------------------------------------------------------- */

/* Readers watch daemon_ while it is stopped with SIGTERM, then killed, each time restarted
 * with writes going on: every reader ends with exactly etcd's history, no 410, no relist. */
static void readers_ride_out_restarts(void)
{
    writer w = {0};
    pthread_create(&w.th, NULL, write_main, &w);
    writes_go_on(&w, 20);
    size_t n0;
    int64_t start;
    wc_test_hist *s0 = NULL;
    cr_assert_eq(wc_test_etcd_range(wc_test_etcd_client_url(&etcd, 0), "/t/", &s0, &n0, &start), 0);
    wc_test_hist_free(s0, n0);
    /* Readers from one revision: half read every stream through, half cut theirs after a few
     * events and re-watch, so re-watches land everywhere, downtime included. */
    enum { R = 6 };
    wc_test_reader rs[R];
    for (int i = 0; i < R; i++)
        wc_test_readers_start(&rs[i], 1, base,
                              &(wc_test_reader_opts){.prefix = "/t/", .cut_after = i % 2 ? i : 0},
                              start);
    writes_go_on(&w, 50);

    /* Stopped cleanly; writes go on while it is down; back on the same address. */
    cr_assert_eq(wc_test_daemon_stop(&daemon_, SIGTERM), 0);
    writes_go_on(&w, 100);
    start_daemon(NULL);
    cr_expect(log_comes("ring refilled"), "the start refilled the ring (see %s)", daemon_.log_path);
    writes_go_on(&w, 50);

    /* Killed; the same. */
    cr_assert_eq(wc_test_daemon_stop(&daemon_, SIGKILL), 128 + SIGKILL);
    writes_go_on(&w, 100);
    start_daemon(NULL);
    cr_expect(log_comes("ring refilled"), "the start refilled the ring (see %s)", daemon_.log_path);
    cr_expect_eq(wc_test_metric(base, "wcached_upstream_refills_total{outcome=\"in\"}"), 1);
    cr_expect_eq(wc_test_metric(base, "wcached_upstream_refills_total{outcome=\"lost\"}"), 0);
    writes_go_on(&w, 50);
    atomic_store(&w.stop, true);
    pthread_join(w.th, NULL);
    cr_assert_not(atomic_load(&w.failed), "a write failed");
    int64_t end = 0;
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/end", "after", &end), 0);
    for (int i = 0; i < R; i++)
        cr_expect(wc_test_reader_wait(&rs[i], end, 30000), "reader %d stuck at %" PRId64, i,
                  atomic_load(&rs[i].rv));
    wc_test_readers_stop(rs, R);
    cr_expect_eq(wc_test_metric(base, "wcached_upstream_relists_total"), 0);

    wc_test_hist *h = NULL;
    size_t nh = 0;
    cr_assert_eq(
        wc_test_etcd_history(wc_test_etcd_client_url(&etcd, 0), "/t/", start + 1, 1500, &h, &nh),
        0);
    cr_assert_gt(nh, 300, "etcd's history after the readers' start: %zu changes", nh);
    for (int i = 0; i < R; i++) {
        expect_history(&rs[i], i, h, nh);
        cr_expect_geq(atomic_load(&rs[i].rewatches), 2, "reader %d re-watched", i);
    }
    wc_test_hist_free(h, nh);
    wc_test_readers_free(rs, R);
}

Test(restart, readers_resume_across_sigterm_and_kill_9_with_no_410_and_no_relist)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/first", "0", NULL), 0);
    start_daemon(NULL);
    readers_ride_out_restarts();

    /* etcd compacts; after the next restart a reader from before the compaction gets 410 (and
     * one from the compaction revision on does not). */
    int64_t compact = 0;
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/mark", "1", &compact), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(wc_test_etcd_put(&etcd, "/t/after", "x", NULL), 0);
    cr_assert_eq(wc_test_etcd_compact(&etcd, compact), 0);
    cr_assert_eq(wc_test_daemon_stop(&daemon_, SIGTERM), 0);
    start_daemon(NULL);
    int64_t code = 0;
    char *type = first_event_type(compact - 1, &code);
    cr_expect_str_eq(type, "ERROR", "a reader older than etcd's compaction");
    cr_expect_eq(code, 410);
    free(type);
    type = first_event_type(compact, &code);
    cr_expect_str_eq(type, "ADDED", "a reader at etcd's compaction revision");
    free(type);
    cr_expect_eq(wc_test_metric(base, "wcached_ring_oldest_revision"), (double)compact);
    /* /readyz says how far back the ring reaches. */
    wc_test_resp r;
    cr_assert_eq(wc_test_get(base, "/readyz", &r), 0);
    cr_expect_eq(r.code, 200);
    char want[96];
    snprintf(want, sizeof(want), "watches resume from resourceVersion %" PRId64 " on", compact);
    cr_expect(strstr(r.body, want), "/readyz says: %s", r.body);
    wc_test_resp_free(&r);
}

/* --refill-revisions 0: a start lists at the current revision as before, and a reader from
 * before it gets 410. */
Test(restart, without_the_refill_a_reader_from_before_the_start_gets_410)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    int64_t before = 0;
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/a", "1", &before), 0);
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/a", "2", NULL), 0);
    static const char *const off[] = {"--refill-revisions", "0", NULL};
    start_daemon(off);
    int64_t code = 0;
    char *type = first_event_type(before, &code);
    cr_expect_str_eq(type, "ERROR");
    cr_expect_eq(code, 410);
    free(type);
}

/* A wcached in a tier below another takes its history back from the upper one's ring: the
 * same restarts, readers of the lower one, the same exact histories with no 410. */
Test(restart, a_tier_below_another_wcached_refills_from_its_ring)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_etcd_put(&etcd, "/t/first", "0", NULL), 0);
    static const char *const upper_args[] = {"--etcd-prefix", "/t/", NULL};
    cr_assert_eq(wc_test_daemon_start(&upper, etcd.endpoints, upper_args, true), 0, "see %s",
                 upper.log_path);
    upstream_at = upper.base;
    start_daemon(NULL);
    readers_ride_out_restarts();
    cr_expect_eq(wc_test_metric(upper.base, "wcached_upstream_relists_total"), 0);
    upstream_at = NULL;
}
