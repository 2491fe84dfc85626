/*
 * wcached: the daemon. It reads its options (options.c), wires the three stages together and
 * handles signals:
 *
 *   etcd --> upstream (its own thread) --sink--> cacher --wake/after_dispatch--> http --> readers
 *
 * The upstream's sink callbacks feed the cacher; the HTTP server asks the daemon, through its
 * callbacks, whether the upstream is live and what etcd's current revision is. SIGTERM or
 * SIGINT stops the upstream, ends every stream cleanly and exits 0.
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "wcached/cacher.h"
#include "wcached/clock.h"
#include "wcached/http.h"
#include "wcached/log.h"
#include "wcached/parse.h"
#include "wcached/upstream.h"

/* What the upstream last said, for /readyz and /metrics. Guarded by its own mutex. */
typedef struct daemon_state {
    wc_cacher *cacher;
    wc_upstream *upstream;
    pthread_mutex_t mu;
    wc_upstream_state up_state;
    char up_reason[128];
    char last_failure[256];       /* the last "down" reason, kept while retrying, for /readyz */
    const char *const *endpoints; /* for the endpoint metric */
    size_t n_endpoints;
    char logged_down[128]; /* the last "down" reason logged, and when: repeats are rate-limited */
    time_t logged_down_at;
    atomic_uint_fast64_t up_changes[3]; /* transitions into each state */
    /* The start's refill (land_list, sink_backfill): written on the upstream thread under mu. */
    bool loaded;                    /* a list was loaded */
    bool refilling;                 /* its history is still coming: readers from it wait */
    int64_t refill_from, refill_to; /* the history's window: (from, to], to being the list's */
    int64_t refill_t0;              /* when the list landed */
    /* A list being loaded page by page: the upstream thread's alone. */
    wc_cacher_loader *loader;
    int last_decile; /* the last tenth of the expected count logged */
} daemon_state;

/* ---------------------------------------------------------------------------------------
 * The upstream's sink: etcd's changes into the cacher
 * ------------------------------------------------------------------------------------- */

/* A whole list into the cache: `kvs` (n), or what the page-by-page loader holds when kvs is
 * NULL. */
static int land_list(daemon_state *d, const wc_kv_spec *kvs, size_t n, int64_t rev, int64_t from,
                     bool reset)
{
    pthread_mutex_lock(&d->mu);
    bool first = !d->loaded;
    pthread_mutex_unlock(&d->mu);
    wc_cacher_stats before, after;
    wc_cacher_stats_get(d->cacher, &before);
    int rc;
    if (kvs) {
        rc = wc_cacher_refill_specs(d->cacher, kvs, n, rev, from, reset);
    } else {
        n = before.load_keys;
        rc = wc_cacher_load_end(d->loader, rev, from, reset);
        d->loader = NULL;
    }
    wc_cacher_stats_get(d->cacher, &after);
    bool refilling = rc == 0 && after.backfilling;
    pthread_mutex_lock(&d->mu);
    d->loaded = d->loaded || rc == 0;
    if (refilling) {
        d->refilling = true;
        d->refill_from = from;
        d->refill_to = rev;
        d->refill_t0 = wc_mono_ms();
    }
    pthread_mutex_unlock(&d->mu);
    if (rc == 0 && !reset && after.resets > before.resets)
        wc_log(WC_LOG_WARN,
               "cache: the list at revision %" PRId64 " cannot follow the history held (a key "
               "changed at a revision already served): dropped the history, ended every "
               "stream, reloaded %zu keys",
               rev, n);
    else if (rc == 0 && reset && !first)
        wc_log(WC_LOG_WARN,
               "cache: etcd's history went back or another cluster answers: dropped the "
               "history, ended every stream, reloaded %zu keys at revision %" PRId64,
               n, rev);
    else if (rc == 0)
        wc_log(WC_LOG_INFO, "cache: %s %zu keys at revision %" PRId64,
               first ? "loaded" : "relisted", n, rev);
    else
        wc_log(WC_LOG_WARN, "cache: list at revision %" PRId64 " refused: %s", rev,
               wc_strerror(rc));
    if (refilling)
        wc_log(WC_LOG_INFO,
               "cache: serving readers; taking etcd's history of revisions (%" PRId64 ", %" PRId64
               "] back into the ring: watches from inside it wait for it",
               from, rev);
    return rc;
}

static int sink_replace(void *arg, const wc_kv_spec *kvs, size_t n, int64_t rev, int64_t from,
                        bool reset)
{
    return land_list(arg, kvs, n, rev, from, reset);
}

/* A list page by page: the states of a page are made while etcd sends the next. */
static int sink_list_begin(void *arg, int64_t count)
{
    daemon_state *d = arg;
    wc_cacher_load_abort(d->loader); /* a list that failed half-way, if any */
    d->loader = wc_cacher_load_begin(d->cacher, count);
    d->last_decile = 0;
    if (count > 0)
        wc_log(WC_LOG_INFO, "cache: listing %" PRId64 " keys", count);
    return d->loader ? 0 : WC_ENOMEM;
}

static int sink_list_page(void *arg, const wc_kv_spec *kvs, size_t n)
{
    daemon_state *d = arg;
    int rc = wc_cacher_load_add(d->loader, kvs, n);
    wc_cacher_stats st;
    wc_cacher_stats_get(d->cacher, &st);
    if (rc == 0 && st.load_expected > 0) {
        int decile = (int)(st.load_keys * 10 / (uint64_t)st.load_expected);
        if (decile > d->last_decile && decile < 10) {
            d->last_decile = decile;
            wc_log(WC_LOG_INFO,
                   "cache: loading: %" PRIu64 " of %" PRId64 " keys (%d%%), %.1f MB so far",
                   st.load_keys, st.load_expected, decile * 10, (double)st.load_bytes / 1e6);
        }
    }
    return rc;
}

static int sink_list_end(void *arg, int64_t rev, int64_t from, bool reset)
{
    daemon_state *d = arg;
    return land_list(d, NULL, 0, rev, from, reset);
}

static void sink_list_abort(void *arg)
{
    daemon_state *d = arg;
    wc_cacher_load_abort(d->loader);
    d->loader = NULL;
}

static int sink_apply(void *arg, const wc_change *changes, size_t n)
{
    daemon_state *d = arg;
    return wc_cacher_apply(d->cacher, changes, n);
}

static int sink_progress(void *arg, int64_t rev)
{
    daemon_state *d = arg;
    return wc_cacher_progress(d->cacher, rev);
}

/* The start's history is in: into the ring, before its oldest event. */
static int sink_backfill(void *arg, int64_t from, int64_t to, const wc_change *changes, size_t n)
{
    daemon_state *d = arg;
    int rc = wc_cacher_backfill(d->cacher, from, to, changes, n);
    wc_cacher_stats st;
    wc_cacher_stats_get(d->cacher, &st);
    pthread_mutex_lock(&d->mu);
    int64_t took = wc_mono_ms() - d->refill_t0;
    d->refilling = false;
    pthread_mutex_unlock(&d->mu);
    if (rc == 0)
        wc_log(WC_LOG_INFO,
               "cache: ring refilled with %zu changes of revisions (%" PRId64 ", %" PRId64
               "] %" PRId64 " ms after the list (it holds %" PRIu64 " events); watches resume "
               "from revision %" PRId64 " on (older: 410 Expired)",
               n, from, to, took, st.ring_events, st.floor);
    else
        wc_log(WC_LOG_WARN,
               "cache: the history of revisions (%" PRId64 ", %" PRId64 "] was refused (%s): "
               "watches resume from revision %" PRId64 " on (older: 410 Expired)",
               from, to, wc_strerror(rc), st.floor);
    return rc;
}

static void sink_backfill_abandon(void *arg, const char *why)
{
    daemon_state *d = arg;
    wc_cacher_backfill_abandon(d->cacher);
    pthread_mutex_lock(&d->mu);
    int64_t from = d->refill_from, to = d->refill_to;
    d->refilling = false;
    pthread_mutex_unlock(&d->mu);
    wc_log(WC_LOG_WARN,
           "cache: etcd's history of revisions (%" PRId64 ", %" PRId64 "] could not be taken "
           "back (%s): watches resume from revision %" PRId64 " on (older: 410 Expired)",
           from, to, why ? why : "?", wc_cacher_floor(d->cacher));
}

static const char *const state_names[] = {"connecting", "live", "down"};

static void sink_state(void *arg, wc_upstream_state st, const char *reason)
{
    daemon_state *d = arg;
    const char *why = reason ? reason : "";
    time_t now = time(NULL);
    pthread_mutex_lock(&d->mu);
    d->up_state = st;
    snprintf(d->up_reason, sizeof(d->up_reason), "%s", why);
    /* While etcd stays unreachable the same failure repeats with every retry: log it when it
     * changes, and again every 30 s. */
    bool log_down =
        st == WC_UP_DOWN && (strcmp(d->logged_down, why) != 0 || now - d->logged_down_at >= 30);
    if (log_down) {
        snprintf(d->logged_down, sizeof(d->logged_down), "%s", why);
        d->logged_down_at = now;
    }
    if (st == WC_UP_DOWN)
        snprintf(d->last_failure, sizeof(d->last_failure), "%s", why);
    if (st == WC_UP_LIVE)
        d->logged_down[0] = d->last_failure[0] = '\0';
    pthread_mutex_unlock(&d->mu);
    if ((unsigned)st < 3)
        atomic_fetch_add(&d->up_changes[st], 1);
    wc_log_level level = st == WC_UP_DOWN   ? WC_LOG_WARN
                         : st == WC_UP_LIVE ? WC_LOG_INFO
                                            : WC_LOG_DEBUG;
    if (st != WC_UP_DOWN || log_down)
        wc_log(level, "upstream: %s%s%s", (unsigned)st < 3 ? state_names[st] : "?",
               *why ? ": " : "", why);
}

/* ---------------------------------------------------------------------------------------
 * The server's callbacks
 * ------------------------------------------------------------------------------------- */

static bool http_ready(void *arg, char *reason, size_t reason_len)
{
    daemon_state *d = arg;
    bool ready = wc_cacher_ready(d->cacher);
    int64_t floor = wc_cacher_floor(d->cacher);
    wc_cacher_stats st;
    wc_cacher_stats_get(d->cacher, &st);
    pthread_mutex_lock(&d->mu);
    bool live = ready && d->up_state == WC_UP_LIVE;
    char cache[160] = "";
    if (!d->loaded && st.loading && st.load_expected > 0)
        snprintf(cache, sizeof(cache),
                 "loading the initial list: %" PRIu64 " of %" PRId64 " keys (%d%%), %.1f MB so "
                 "far; ",
                 st.load_keys, st.load_expected,
                 (int)(st.load_keys * 100 / (uint64_t)st.load_expected),
                 (double)st.load_bytes / 1e6);
    else if (!d->loaded && st.loading)
        snprintf(cache, sizeof(cache),
                 "loading the initial list: %" PRIu64 " keys, %.1f MB so far; ", st.load_keys,
                 (double)st.load_bytes / 1e6);
    else if (!d->loaded)
        snprintf(cache, sizeof(cache), "initial list not loaded yet; ");
    if (live && d->refilling)
        snprintf(reason, reason_len,
                 "watches resume from resourceVersion %" PRId64 " on (the ring's oldest); "
                 "etcd's history of (%" PRId64 ", %" PRId64 "] is coming: watches from it wait "
                 "for it",
                 floor, d->refill_from, d->refill_to);
    else if (live)
        snprintf(reason, reason_len,
                 "watches resume from resourceVersion %" PRId64 " on (the ring's oldest)%s", floor,
                 d->refill_to ? "; the start took etcd's history back into it" : "");
    else
        snprintf(reason, reason_len, "%supstream watch is %s%s%s%s%s", cache,
                 state_names[d->up_state], d->up_reason[0] ? ": " : "", d->up_reason,
                 d->last_failure[0] && d->up_state != WC_UP_DOWN ? "; last failure: " : "",
                 d->up_state != WC_UP_DOWN ? d->last_failure : "");
    pthread_mutex_unlock(&d->mu);
    return live;
}

static int http_current_rev(void *arg, int64_t *rev)
{
    daemon_state *d = arg;
    return wc_upstream_current_rev(d->upstream, rev, 2000);
}

static void http_etcd_header(void *arg, uint64_t *cluster_id, uint64_t *member_id,
                             int64_t *raft_term)
{
    daemon_state *d = arg;
    wc_upstream_header(d->upstream, cluster_id, member_id, raft_term);
}

static void http_request_progress(void *arg)
{
    daemon_state *d = arg;
    wc_upstream_request_progress(d->upstream);
}

/* A labelled sample: name{key="value"} v. */
static void labelled(FILE *out, const char *name, const char *key, const char *value, uint64_t v)
{
    char labels[256];
    snprintf(labels, sizeof(labels), "%s=\"%s\"", key, value);
    wc_http_metric_u64(out, name, labels, v);
}

/* The allocator's own count, over every thread's arena: what the heap holds in live blocks, and
 * what it has from the system for them (free space kept for reuse included; not all of it is
 * resident). Unlike RSS, the bytes in use do not move with where freed blocks happen to lie, so
 * a leak shows in them at once (bench/soak.sh r3 checks it). */
static void heap_metrics(FILE *out)
{
    struct mallinfo2 mi = mallinfo2();
    wc_http_metric_family(out, "wcached_heap_inuse_bytes", "gauge",
                          "Bytes the allocator has handed out and not had back.");
    wc_http_metric_u64(out, "wcached_heap_inuse_bytes", NULL, mi.uordblks + mi.hblkhd);
    wc_http_metric_family(out, "wcached_heap_held_bytes", "gauge",
                          "Bytes the allocator holds from the system, in use or kept free.");
    wc_http_metric_u64(out, "wcached_heap_held_bytes", NULL, mi.arena + mi.hblkhd);
}

static void http_metrics(void *arg, FILE *out)
{
    daemon_state *d = arg;
    pthread_mutex_lock(&d->mu);
    wc_upstream_state st = d->up_state;
    pthread_mutex_unlock(&d->mu);
    wc_http_metric_family(out, "wcached_upstream_state", "gauge",
                          "Upstream watch state (1 for the current one).");
    for (int i = 0; i < 3; i++)
        labelled(out, "wcached_upstream_state", "state", state_names[i], (int)st == i);
    wc_http_metric_family(out, "wcached_upstream_state_changes_total", "counter",
                          "Upstream transitions into each state.");
    for (int i = 0; i < 3; i++)
        labelled(out, "wcached_upstream_state_changes_total", "state", state_names[i],
                 (uint64_t)atomic_load(&d->up_changes[i]));
    wc_upstream_stats us;
    wc_upstream_stats_get(d->upstream, &us);
    wc_http_metric_family(out, "wcached_upstream_reconnects_total", "counter",
                          "Upstream lists and watches that failed or ended, by cause (local: on "
                          "wcached's side, such as allocation or libcurl set-up).");
    for (int i = 0; i < WC_UPC_COUNT; i++)
        labelled(out, "wcached_upstream_reconnects_total", "cause",
                 wc_upstream_cause_name((wc_upstream_cause)i), us.reconnects[i]);
    wc_http_metric_family(out, "wcached_upstream_relists_total", "counter",
                          "Lists after the first one.");
    wc_http_metric_u64(out, "wcached_upstream_relists_total", NULL, us.relists);
    wc_http_metric_family(out, "wcached_upstream_resets_total", "counter",
                          "Lists that dropped the history (another cluster, or one that went "
                          "back).");
    wc_http_metric_u64(out, "wcached_upstream_resets_total", NULL, us.resets);
    wc_http_metric_family(out, "wcached_upstream_refill_checks_total", "counter",
                          "Checks of a start's refill that went quiet short of its end: history "
                          "still to come (it waits), or its end proven.");
    labelled(out, "wcached_upstream_refill_checks_total", "outcome", "wait", us.refill_waits);
    labelled(out, "wcached_upstream_refill_checks_total", "outcome", "end", us.refill_ends);
    wc_http_metric_family(out, "wcached_upstream_refills_total", "counter",
                          "Starts' refills: etcd's history before the list taken back into the "
                          "ring (in), or given up (lost: compacted while read, a stream that "
                          "broke, checks that could not prove its end).");
    labelled(out, "wcached_upstream_refills_total", "outcome", "in", us.backfills);
    labelled(out, "wcached_upstream_refills_total", "outcome", "lost", us.backfills_lost);
    wc_http_metric_family(out, "wcached_upstream_endpoint", "gauge",
                          "The etcd endpoint in use (1).");
    for (size_t i = 0; i < d->n_endpoints; i++)
        labelled(out, "wcached_upstream_endpoint", "url", d->endpoints[i], i == us.endpoint);
    int64_t lag = us.etcd_rev - wc_cacher_rev(d->cacher);
    wc_http_metric_family(out, "wcached_upstream_lag_revisions", "gauge",
                          "etcd's newest reported revision minus the cache's.");
    wc_http_metric_i64(out, "wcached_upstream_lag_revisions", NULL, lag > 0 ? lag : 0);
    wc_http_metric_family(out, "wcached_upstream_last_message_age_seconds", "gauge",
                          "Time since the last message on the upstream watch (-1 before the "
                          "first).");
    wc_http_metric_f64(out, "wcached_upstream_last_message_age_seconds", NULL,
                       us.last_msg_age_ms < 0 ? -1.0 : (double)us.last_msg_age_ms / 1000.0);
    heap_metrics(out);
}

/* ---------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------- */

/* True when the listen address is a loopback one (127.0.0.0/8, ::1, localhost). */
static bool loopback(const char *listen)
{
    char host[256];
    uint16_t port;
    if (wc_parse_listen(listen, host, sizeof(host), &port) != 0)
        return false;
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* SIGHUP: the --etcd-token-file again; the token in force stays when the file has none. */
static void reload_bearer(const wc_config *cfg, wc_upstream *u)
{
    if (!cfg->etcd_token_file)
        return;
    char bearer[WC_UPSTREAM_TOKEN_MAX];
    if (wc_config_read_token(cfg->etcd_token_file, bearer, sizeof(bearer)) != 0)
        wc_log(WC_LOG_WARN,
               "SIGHUP: --etcd-token-file '%s' holds no token; the previous one "
               "stays in force",
               cfg->etcd_token_file);
    else if (wc_upstream_set_bearer(u, bearer) != 0)
        wc_log(WC_LOG_WARN, "SIGHUP: out of memory for the --etcd-token-file token; the "
                            "previous one stays in force");
    else
        wc_log(WC_LOG_INFO, "SIGHUP: --etcd-token-file read again");
    memset(bearer, 0, sizeof(bearer));
}

/*
 * glibc reads its tunables only as a process starts, so wcached starts itself once more with
 * the ones below, each unless GLIBC_TUNABLES already sets it (the operator's choice stays):
 *
 * - glibc.malloc.tcache_count=0. glibc gives each thread a cache of freed small blocks, up
 *   to 7 of each size, outside its arenas. A stream's blocks are made on an HTTP
 *   thread and freed on a pump thread, so after a crowd of readers left, each thread's cache
 *   still holds blocks scattered over pages that are otherwise free, and neither malloc_trim nor
 *   later mallocs give those pages back: about a megabyte, 7% of an idle sidecar (R3 in
 *   docs/RELIABILITY.md). With none, the blocks go back to their arenas at once. The cost is
 *   small: watch streams are sent from encodings made once, so the allocator is not on the way
 *   of a delivery (W1: 2% of wcached's CPU in malloc and free without the caches).
 * - glibc.malloc.mmap_threshold=4 MiB and glibc.malloc.trim_threshold=2 MiB. Left to
 *   itself, glibc raises its threshold for mmap to the size of each mmapped block freed (up to
 *   32 MiB), and its threshold for giving an arena's free top back to twice that: after a
 *   list's buffers, each thread's arena keeps up to tens of MB of free top, which malloc_trim
 *   does not hand back outside the main arena. W8 measured the process at 1.4x to 2.3x its data
 *   from one start to the next. Fixed, they stay where they are set: a block of 4 MiB or more
 *   (an unpaged list's response) is mapped and unmapped, and an arena's free top beyond 2 MiB
 *   goes back as it is freed. Lower thresholds cost CPU: with glibc's starting 128 KiB for
 *   both, a start's etcd pages (about 1.5 MB each) mapped one by one and arenas shrunk and
 *   grown again at every page took a third more CPU to load W8's 100,000 keys; with a higher
 *   trim threshold (8 MiB) the arenas' tops were back to about 25 MB.
 * - glibc.malloc.mxfast=0. A freed block of 128 bytes or less (a key a page of etcd's decoded)
 *   goes to a "fast" list unmerged, and pins the free space on either side of it: after a
 *   start, the arenas of the threads that parsed its pages kept 4 to 10 MB each of free space
 *   that a later malloc_trim merged into their tops, which glibc gives back outside the main
 *   arena only when a big block is freed there again. W8's 100,000 keys measured 1.32x to 1.53x
 *   their bytes from one start to the next; with no fast lists, 1.31x to 1.32x in four of four.
 *   No cost above noise in W1 and a storm of 10,000 reconnections (+0 to 4% CPU).
 *
 * The cost of starting again is one exec. Not done under a sanitizer or valgrind (their
 * allocators are their own) nor when it cannot (no /proc): it goes on as it is.
 */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define WC_MALLOC_TUNABLES 1
static const struct {
    const char *name;
    long value;
} malloc_tunable[] = {
    {"glibc.malloc.tcache_count", 0},
    {"glibc.malloc.mmap_threshold", 4L << 20},
    {"glibc.malloc.trim_threshold", 2L << 20},
    {"glibc.malloc.mxfast", 0},
};
#define N_TUNABLES (sizeof(malloc_tunable) / sizeof(malloc_tunable[0]))
#endif

static void malloc_tunables(char **argv)
{
#ifdef WC_MALLOC_TUNABLES
    const char *t = getenv("GLIBC_TUNABLES");
    /* Under valgrind, whose allocator is its own: started again, the process would leave it. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return;
    char exe[4096], v[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
        return;
    exe[n] = '\0'; /* its own path, so the process keeps its name (not "exe") */
    int k = snprintf(v, sizeof(v), "%s", t ? t : "");
    bool added = false;
    for (size_t i = 0; i < N_TUNABLES && k >= 0 && (size_t)k < sizeof(v); i++) {
        if (t && strstr(t, malloc_tunable[i].name))
            continue; /* the operator's */
        k += snprintf(v + k, sizeof(v) - (size_t)k, "%s%s=%ld", k ? ":" : "",
                      malloc_tunable[i].name, malloc_tunable[i].value);
        added = true;
    }
    if (!added || k < 0 || (size_t)k >= sizeof(v) || setenv("GLIBC_TUNABLES", v, 1) != 0)
        return;
    execv(exe, argv);
    if (t) /* not started again: as before */
        setenv("GLIBC_TUNABLES", t, 1);
    else
        unsetenv("GLIBC_TUNABLES");
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    malloc_tunables(argv);
    wc_config cfg;
    bool done = false;
    int rc = wc_config_parse(&cfg, argc, argv, &done);
    if (rc || done)
        return rc;
    wc_log_set_level(cfg.log_level);
    wc_log_set_format(cfg.log_format);

    /* Signals are taken by sigwait in this thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    daemon_state d = {
        .up_state = WC_UP_CONNECTING, .endpoints = cfg.endpoints, .n_endpoints = cfg.n_endpoints};
    pthread_mutex_init(&d.mu, NULL);
    wc_http_hook *hook = wc_http_hook_new();
    wc_cacher_opts co;
    wc_cacher_opts_default(&co);
    co.ring_events = cfg.ring_events;
    co.ring_bytes = cfg.ring_bytes;
    co.index_field = cfg.index_field;
    co.slow_budget_ms = cfg.slow_budget_ms;
    co.after_dispatch = wc_http_after_dispatch;
    co.hook_arg = hook;
    d.cacher = hook ? wc_cacher_new(&co) : NULL;

    char bearer[WC_UPSTREAM_TOKEN_MAX] = "";
    if (cfg.etcd_token_file && wc_config_read_token(cfg.etcd_token_file, bearer, sizeof(bearer))) {
        fprintf(stderr, "wcached: --etcd-token-file: '%s' holds no token\n", cfg.etcd_token_file);
        return 2;
    }
    wc_upstream_opts uo = {
        .endpoints = cfg.endpoints,
        .n_endpoints = cfg.n_endpoints,
        .prefix = cfg.prefix,
        .prefix_len = strlen(cfg.prefix),
        .cacert = cfg.cacert,
        .cert = cfg.cert,
        .key = cfg.key,
        .user = cfg.user,
        .password = cfg.password,
        .bearer = bearer,
        /* The ring cannot hold more events than this, nor fewer per revision than one. */
        .refill_revisions = cfg.refill_revisions < (int64_t)cfg.ring_events
                                ? cfg.refill_revisions
                                : (int64_t)cfg.ring_events,
        .sink = {.arg = &d,
                 .replace = sink_replace,
                 .list_begin = sink_list_begin,
                 .list_page = sink_list_page,
                 .list_end = sink_list_end,
                 .list_abort = sink_list_abort,
                 .apply = sink_apply,
                 .progress = sink_progress,
                 .backfill = sink_backfill,
                 .backfill_abandon = sink_backfill_abandon,
                 .state = sink_state},
    };
    d.upstream = d.cacher ? wc_upstream_new(&uo) : NULL;
    memset(cfg.password, 0, sizeof(cfg.password)); /* the upstream keeps its own copy */
    memset(bearer, 0, sizeof(bearer));
    if (!d.upstream) {
        wc_log(WC_LOG_ERROR, "out of memory at start-up");
        return 1;
    }

    wc_http_opts ho;
    wc_http_opts_default(&ho);
    ho.listen = cfg.listen;
    ho.k8s_prefix = cfg.k8s_prefix;
    ho.index_field = cfg.index_field;
    ho.cacher = d.cacher;
    ho.hook = hook;
    ho.resources = cfg.resources;
    ho.threads = cfg.http_threads;
    ho.coalesce_ms = cfg.coalesce_ms;
    ho.max_connections = cfg.max_connections;
    ho.max_watches = cfg.max_watches;
    ho.max_requests_inflight = cfg.max_requests_inflight;
    ho.max_header_bytes = cfg.max_header_bytes;
    ho.max_query_params = cfg.max_query_params;
    ho.max_uri_bytes = cfg.max_uri_bytes;
    ho.max_page_size = cfg.max_page_size;
    ho.max_timeout_s = cfg.max_timeout_s;
    ho.max_watches_per_user = cfg.max_watches_per_user;
    ho.header_timeout_ms = cfg.header_timeout_ms;
    ho.cb_arg = &d;
    ho.ready = http_ready;
    ho.current_rev = http_current_rev;
    ho.request_progress = http_request_progress;
    ho.etcd_header = http_etcd_header;
    ho.etcd_prefix = cfg.prefix;
    ho.metrics = http_metrics;
    ho.token_auth_file = cfg.token_auth_file;
    ho.authorization_policy_file = cfg.authorization_policy_file;
    ho.tls_cert_file = cfg.tls_cert_file;
    ho.tls_key_file = cfg.tls_key_file;
    ho.client_ca_file = cfg.client_ca_file;
    wc_http *http = NULL;
    rc = wc_http_new(&ho, &http);
    char why[512];
    if (rc == 0 && wc_http_load_auth(http, why, sizeof(why)) != 0) {
        fprintf(stderr, "wcached: %s\n", why);
        wc_http_free(http);
        wc_upstream_free(d.upstream);
        wc_cacher_load_abort(d.loader); /* a list cut short by the stop */
        wc_cacher_free(d.cacher);
        wc_http_hook_free(hook);
        return 2;
    }
    if (rc == 0)
        rc = wc_http_start(http);
    if (rc != 0) {
        wc_log(WC_LOG_ERROR, "cannot serve on %s: %s", cfg.listen, wc_strerror(rc));
        wc_http_free(http);
        wc_upstream_free(d.upstream);
        wc_cacher_load_abort(d.loader); /* a list cut short by the stop */
        wc_cacher_free(d.cacher);
        wc_http_hook_free(hook);
        return 1;
    }
    wc_log(WC_LOG_INFO, "listening on %s://%s (etcd %s, prefix '%s', ring %zu events)",
           cfg.tls_cert_file ? "https" : "http", wc_http_address(http), cfg.endpoints[0],
           cfg.prefix, cfg.ring_events);
    if (!loopback(cfg.listen) && !cfg.token_auth_file && !cfg.client_ca_file)
        wc_log(WC_LOG_WARN,
               "listening on %s beyond loopback with no authentication: anyone who "
               "can reach it reads everything under the prefix",
               cfg.listen);
    rc = wc_upstream_start(d.upstream);
    if (rc != 0) {
        wc_log(WC_LOG_ERROR, "cannot start the upstream: %s", wc_strerror(rc));
        wc_http_free(http);
        wc_upstream_free(d.upstream);
        wc_cacher_load_abort(d.loader); /* a list cut short by the stop */
        wc_cacher_free(d.cacher);
        wc_http_hook_free(hook);
        return 1;
    }

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP)
            break;
        if (wc_http_load_auth(http, why, sizeof(why)) == 0)
            wc_log(WC_LOG_INFO, "SIGHUP: token, policy and TLS files read again");
        else
            wc_log(WC_LOG_WARN, "SIGHUP: %s; the previous ones stay in force", why);
        reload_bearer(&cfg, d.upstream);
    }
    wc_log(WC_LOG_INFO, "%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* The server first: its threads call into the upstream (consistent reads). The upstream
     * keeps feeding the cacher meanwhile, which is safe: streams end one by one. */
    wc_http_stop(http);
    wc_upstream_stop(d.upstream);
    wc_http_free(http);
    wc_upstream_free(d.upstream);
    wc_cacher_load_abort(d.loader); /* a list cut short by the stop */
    wc_cacher_free(d.cacher);
    wc_http_hook_free(hook);
    pthread_mutex_destroy(&d.mu);
    wc_log(WC_LOG_INFO, "stopped");
    return 0;
}
